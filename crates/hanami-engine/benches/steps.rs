//! Criterion benchmarks of one training step and one request step on the seed template
//! (784 inputs, 10 outputs), after the network has grown on 3,000 synthetic digit-like
//! samples, so that the step cost resembles MNIST training.

use criterion::Criterion;
use hanami_engine::Cluster;

const TEMPLATE: &str = "version: 1 settings: neuron_cooldown: 10000000.0 refractory_time: 1 \
    max_connection_distance: 1 enable_reduction: false hexagons: 1,1,1 2,1,1 3,1,1 \
    inputs: picture: target: 1,1,1 number_of_inputs: 784 \
    outputs: label: target: 3,1,1 number_of_outputs: 10";

/// Ten noisy stroke patterns on a 28×28 grid, about 150 lit pixels each like MNIST digits.
fn sample(i: usize) -> (Vec<f32>, Vec<f32>) {
    let class = i % 10;
    let mut state = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut pixels = vec![0.0f32; 784];
    for row in 4..24 {
        for col in 4..24 {
            let on = match class {
                0 => (row as i32 - 14).pow(2) + (col as i32 - 14).pow(2) < 64,
                1 => col / 3 == 4,
                2 => row / 3 == (col / 3),
                3 => row % 7 < 2,
                4 => col % 7 < 2,
                5 => (row + col) % 9 < 2,
                6 => row < 12 && col < 14,
                7 => row > 14,
                8 => (row / 4 + col / 4) % 2 == 0,
                _ => col > 14 && row < 18,
            };
            if on && next() % 10 < 8 {
                pixels[row * 28 + col] = (next() % 200 + 55) as f32;
            }
        }
    }
    let mut label = vec![0.0f32; 10];
    label[class] = 1.0;
    (pixels, label)
}

fn grown_cluster() -> Cluster {
    let mut cluster = Cluster::from_template_text(TEMPLATE, 1).expect("template parses");
    for i in 0..3000 {
        let (x, y) = sample(i);
        cluster
            .train_step(&[("picture", &x)], &[("label", &y)])
            .expect("train step");
    }
    cluster
}

fn steps(c: &mut Criterion) {
    let samples: Vec<_> = (0..100).map(sample).collect();
    let mut cluster = grown_cluster();
    let mut i = 0;
    c.bench_function("train_step", |b| {
        b.iter(|| {
            let (x, y) = &samples[i % samples.len()];
            i += 1;
            cluster
                .train_step(&[("picture", x)], &[("label", y)])
                .expect("train step");
        })
    });
    c.bench_function("request_step", |b| {
        b.iter(|| {
            let (x, _) = &samples[i % samples.len()];
            i += 1;
            cluster
                .request_step(&[("picture", x)])
                .expect("request step");
            std::hint::black_box(cluster.output("label"));
        })
    });
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    steps(&mut criterion);
    criterion.final_summary();
}
