//! A small learning task for the unit tests of the processing modules: eight inputs, two
//! classes, class `i % 2` lighting its four inputs with values from 100 to 149.

use crate::{Cluster, ClusterOptions, Template, Walks};

/// A cluster of the seed template's shape for the task, with eight inputs `x` and two
/// outputs `y`.
pub(crate) fn cluster(seed: u64, threads: usize) -> Cluster {
    cluster_with("    neuron_cooldown: 10000000.0\n", seed, threads)
}

/// The cluster of [`cluster`] with other settings (template lines, each indented by four
/// spaces and ending in a newline).
pub(crate) fn cluster_with(settings: &str, seed: u64, threads: usize) -> Cluster {
    let template = Template::parse(&format!(
        "version: 1\nsettings:\n{settings}hexagons:\n    1,1,1\n    2,1,1\n    3,1,1\n\
         inputs:\n    x:\n        target: 1,1,1\n        number_of_inputs: 8\n\
         outputs:\n    y:\n        target: 3,1,1\n        number_of_outputs: 2\n",
    ))
    .expect("the template parses");
    let options = ClusterOptions {
        seed,
        threads,
        ..ClusterOptions::default()
    };
    Cluster::new(&template, options).expect("the cluster builds")
}

/// The inputs of sample `i`.
pub(crate) fn inputs(i: usize) -> Vec<f32> {
    (0..8)
        .map(|j| {
            if j / 4 == i % 2 {
                (100 + (i * 7 + j) % 50) as f32
            } else {
                0.0
            }
        })
        .collect()
}

/// The expected outputs of sample `i`: its class one-hot.
pub(crate) fn expected(i: usize) -> [f32; 2] {
    [i.is_multiple_of(2) as u8 as f32, (i % 2 == 1) as u8 as f32]
}

/// Trains `cluster` on samples `rows`, every input interface with the sample's inputs.
pub(crate) fn train(cluster: &mut Cluster, rows: std::ops::Range<usize>) {
    let names: Vec<String> = cluster.inputs.iter().map(|i| i.name.clone()).collect();
    for i in rows {
        let values = inputs(i);
        let given: Vec<(&str, &[f32])> = names.iter().map(|n| (n.as_str(), &values[..])).collect();
        cluster
            .train_step(&given, &[("y", &expected(i))])
            .expect("a training step");
    }
}

/// Thread counts for the tests of request batches, each with the fastest walks this CPU runs,
/// and two threads with each of its other walks, as `(threads, walks)`.
pub(crate) fn setups(threads: &[usize]) -> Vec<(usize, Walks)> {
    let mut walks: Vec<Walks> = Walks::supported().collect();
    let best = walks.pop().expect("the portable walks run everywhere");
    let others = walks.into_iter().map(|walks| (2, walks));
    threads.iter().map(|&t| (t, best)).chain(others).collect()
}
