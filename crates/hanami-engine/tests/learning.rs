//! The engine learns a synthetic task, deterministically, and reduction keeps it bounded.

mod common;

use common::{accuracy, cluster, train};

#[test]
fn learns_the_synthetic_task() {
    for seed in [1, 2, 3] {
        let mut c = cluster(seed, 1, false);
        train(&mut c, 0, 3000);
        let acc = accuracy(&mut c, 100_000, 100_400);
        assert!(acc >= 90.0, "seed {seed}: accuracy {acc}%");
    }
}

#[test]
fn same_seed_gives_identical_state_and_thread_count_does_not_matter() {
    let mut a = cluster(7, 1, false);
    let mut b = cluster(7, 1, false);
    let mut c = cluster(7, 2, false);
    for cl in [&mut a, &mut b, &mut c] {
        train(cl, 0, 1500);
        accuracy(cl, 5000, 5100);
    }
    let saved = a.save();
    assert_eq!(saved, b.save());
    assert_eq!(saved, c.save());
    let mut d = cluster(8, 1, false);
    train(&mut d, 0, 1500);
    accuracy(&mut d, 5000, 5100);
    assert_ne!(
        saved,
        d.save(),
        "a different seed grows a different network"
    );
}

#[test]
fn reduction_completes_and_keeps_the_network_bounded() {
    let mut plain = cluster(3, 1, false);
    let mut reduced = cluster(3, 1, true);
    let mut sizes = Vec::new();
    for round in 0..10 {
        train(&mut plain, round * 1000, (round + 1) * 1000);
        train(&mut reduced, round * 1000, (round + 1) * 1000);
        sizes.push(reduced.size().synapses);
    }
    let plain_size = plain.size().synapses;
    let last = *sizes.last().unwrap();
    assert!(
        last < plain_size,
        "reduction removes synapses: {last} vs {plain_size}"
    );
    // Bounded: the second half of the run adds (almost) nothing.
    let max_second_half = *sizes[5..].iter().max().unwrap();
    assert!(
        max_second_half <= sizes[4] + sizes[4] / 5,
        "sizes {sizes:?}"
    );
    assert!(accuracy(&mut reduced, 100_000, 100_400) >= 80.0);
}
