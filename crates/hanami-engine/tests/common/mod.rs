//! Synthetic data shared by the integration tests.

#![allow(dead_code)]

use hanami_engine::{Cluster, ClusterOptions, Template, Walks};

/// Inputs per sample of the synthetic task.
pub const INPUTS: usize = 32;
/// Classes of the synthetic task.
pub const CLASSES: usize = 4;

/// A template for the synthetic task: input, hidden and output hexagon in a row.
pub fn template(reduction: bool) -> String {
    format!(
        "version: 1\nsettings:\n    neuron_cooldown: 10000000.0\n    enable_reduction: {reduction}\n\
         hexagons:\n    1,1,1\n    2,1,1\n    3,1,1\n\
         inputs:\n    x:\n        target: 1,1,1\n        number_of_inputs: {INPUTS}\n\
         outputs:\n    y:\n        target: 3,1,1\n        number_of_outputs: {CLASSES}\n"
    )
}

/// A cluster for the synthetic task.
pub fn cluster(seed: u64, threads: usize, reduction: bool) -> Cluster {
    let template = Template::parse(&template(reduction)).expect("template parses");
    Cluster::new(
        &template,
        ClusterOptions {
            seed,
            threads,
            ..ClusterOptions::default()
        },
    )
    .expect("cluster builds")
}

/// Sample `i`: class `i % 4` lights most of its own 8 inputs with values 50–250, plus a few
/// noise inputs elsewhere; the label is one-hot.
pub fn sample(i: usize) -> (Vec<f32>, Vec<f32>) {
    let class = i % CLASSES;
    let mut state = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut x = vec![0.0f32; INPUTS];
    for (j, v) in x.iter_mut().enumerate() {
        let own = j / (INPUTS / CLASSES) == class;
        let lit = if own {
            next() % 10 < 8
        } else {
            next() % 10 == 0
        };
        if lit {
            *v = (next() % 200 + 50) as f32;
        }
    }
    let mut y = vec![0.0f32; CLASSES];
    y[class] = 1.0;
    (x, y)
}

/// Trains on samples `from..to`.
pub fn train(cluster: &mut Cluster, from: usize, to: usize) {
    for i in from..to {
        let (x, y) = sample(i);
        cluster
            .train_step(&[("x", &x)], &[("y", &y)])
            .expect("train step");
    }
}

/// Argmax accuracy in percent on samples `from..to`.
pub fn accuracy(cluster: &mut Cluster, from: usize, to: usize) -> f64 {
    let mut correct = 0;
    for i in from..to {
        let (x, y) = sample(i);
        cluster.request_step(&[("x", &x)]).expect("request step");
        let out = cluster.output("y").expect("output y");
        if hanami_engine::argmax(out) == hanami_engine::argmax(&y) {
            correct += 1;
        }
    }
    correct as f64 * 100.0 / (to - from) as f64
}

/// Thread counts for the tests of request batches, each with the fastest walks this CPU runs,
/// and two threads with each of its other walks, as `(threads, walks)`.
pub fn setups(threads: &[usize]) -> Vec<(usize, Walks)> {
    let mut walks: Vec<Walks> = Walks::supported().collect();
    let best = walks.pop().expect("the portable walks run everywhere");
    let others = walks.into_iter().map(|walks| (2, walks));
    threads.iter().map(|&t| (t, best)).chain(others).collect()
}
