//! Request batches run chunks of rows in groups of rows, the groups in parallel; whatever the
//! thread count, they must give exactly what one request cycle after another gives: the same
//! output bits for every row and the same cluster state afterwards.

mod common;

use std::sync::atomic::AtomicBool;

use common::{cluster, sample, setups, train};
use hanami_engine::{Cluster, ClusterOptions, RowError, RowsFn, Template};

/// Output bits of requests for samples `from..from + rows`, one `request_step` each.
fn stepped(cluster: &mut Cluster, from: usize, rows: usize) -> Vec<Vec<u32>> {
    (from..from + rows)
        .map(|i| {
            let (x, _) = sample(i);
            cluster.request_step(&[("x", &x)]).expect("request step");
            bits(cluster.output("y").expect("output y"))
        })
        .collect()
}

/// Output bits of the same requests through one `request_batch`, and its progress reports.
fn batched(cluster: &mut Cluster, from: usize, rows: usize) -> (Vec<Vec<u32>>, Vec<usize>) {
    let mut outputs = Vec::new();
    let mut progress = Vec::new();
    let mut source = RowsFn::new(
        rows,
        |row: usize, _: &str, values: &mut [f32]| -> Result<(), RowError> {
            values.copy_from_slice(&sample(from + row).0);
            Ok(())
        },
    );
    let outcome = cluster
        .request_batch(
            &mut source,
            &AtomicBool::new(false),
            &mut |done| progress.push(done),
            &mut |row, name, values| {
                assert_eq!((row, name), (outputs.len(), "y"));
                outputs.push(bits(values));
            },
        )
        .expect("request batch");
    assert_eq!((outcome.rows_done, outcome.cancelled), (rows, false));
    (outputs, progress)
}

fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

/// Checks batch against steps on two clusters in the same state.
fn assert_same(batch: &mut Cluster, steps: &mut Cluster, from: usize, rows: usize, what: &str) {
    let (outputs, progress) = batched(batch, from, rows);
    assert!(
        outputs == stepped(steps, from, rows),
        "{what}: outputs differ"
    );
    assert_eq!(progress, (1..=rows).collect::<Vec<_>>(), "{what}");
    assert!(batch.save() == steps.save(), "{what}: states differ");
}

#[test]
fn request_batches_equal_one_request_after_another() {
    // With vector walks (where the CPU has them) rows run in groups, one row per lane;
    // without, one row after another, in parallel where there are threads.
    for (threads, walks) in setups(&[1, 2, 3]) {
        // After 40 samples many requests still grow the network, so rows that change it run
        // as ordinary cycles between parallel runs; after 1,500 nearly none do.
        for trained in [40, 1500] {
            let what = format!("{threads} threads, {walks:?} walks, {trained} trained");
            let mut batch = cluster(21, threads, false);
            assert!(batch.set_walks(walks));
            let mut steps = cluster(21, 1, false);
            train(&mut batch, 0, trained);
            train(&mut steps, 0, trained);
            let before = steps.size();
            assert_same(&mut batch, &mut steps, 5000, 250, &what);
            if trained == 40 {
                assert!(steps.size().synapses > before.synapses, "{what}: no growth");
            }
            // Training goes on from the same state.
            train(&mut batch, 1500, 1600);
            train(&mut steps, 1500, 1600);
            assert!(
                batch.save() == steps.save(),
                "{what}: states differ after training"
            );
        }
    }
}

#[test]
fn a_pair_that_runs_some_cycles_alone_computes_the_same_bits() {
    // A two-thread cluster times a window of cycles on the calling thread alone after its
    // first 2,048 cycles of each kind (and keeps that way if it was faster), so these runs
    // cross from both threads to one, and possibly back, in training and in request rows.
    let mut pair = cluster(23, 2, false);
    let mut one = cluster(23, 1, false);
    train(&mut pair, 0, 3000);
    train(&mut one, 0, 3000);
    assert!(pair.save() == one.save(), "states differ after training");
    assert_same(&mut pair, &mut one, 5000, 3000, "request rows");
}

/// A template for the synthetic task with the given settings and hexagons (the last one takes
/// the output).
fn template(settings: &str, hexagons: &[&str]) -> Template {
    let list: String = hexagons.iter().map(|h| format!("    {h}\n")).collect();
    let text = format!(
        "version: 1\nsettings:\n{settings}hexagons:\n{list}\
         inputs:\n    x:\n        target: {}\n        number_of_inputs: {}\n\
         outputs:\n    y:\n        target: {}\n        number_of_outputs: {}\n",
        hexagons[0],
        common::INPUTS,
        hexagons[hexagons.len() - 1],
        common::CLASSES
    );
    Template::parse(&text).expect("template parses")
}

#[test]
fn carried_potentials_frozen_structure_and_deeper_networks_match_too() {
    let cases = [
        // Potential carried over from row to row, input taken every second row.
        (
            "    neuron_cooldown: 1.5\n    refractory_time: 2\n",
            vec!["1,1,1", "2,1,1", "3,1,1"],
        ),
        // Two hidden hexagons in a row.
        (
            "    neuron_cooldown: 10000000.0\n",
            vec!["1,1,1", "2,1,1", "3,1,1", "4,1,1"],
        ),
        // Requests that never grow.
        (
            "    neuron_cooldown: 10000000.0\n    request_growth: false\n",
            vec!["1,1,1", "2,1,1", "3,1,1"],
        ),
    ];
    for (settings, hexagons) in cases {
        let template = template(settings, &hexagons);
        let build = |threads| {
            Cluster::new(
                &template,
                ClusterOptions {
                    seed: 8,
                    threads,
                    ..ClusterOptions::default()
                },
            )
            .expect("cluster builds")
        };
        let (mut batch, mut steps) = (build(2), build(1));
        train(&mut batch, 0, 600);
        train(&mut steps, 0, 600);
        let what = format!("{settings:?} {hexagons:?}");
        assert_same(&mut batch, &mut steps, 7000, 200, &what);
    }
}

#[test]
fn read_errors_and_cancel_stop_a_parallel_batch_after_the_rows_before() {
    let mut batch = cluster(5, 2, false);
    let mut steps = cluster(5, 1, false);
    train(&mut batch, 0, 1500);
    train(&mut steps, 0, 1500);
    // Row 40 cannot be read: rows 0..40 are answered, the error names row 40.
    let mut outputs = Vec::new();
    let mut source = RowsFn::new(
        100,
        |row: usize, _: &str, values: &mut [f32]| -> Result<(), RowError> {
            if row == 40 {
                return Err("disk on fire".into());
            }
            values.copy_from_slice(&sample(6000 + row).0);
            Ok(())
        },
    );
    let error = batch
        .request_batch(
            &mut source,
            &AtomicBool::new(false),
            &mut |_| {},
            &mut |_, _, values| outputs.push(bits(values)),
        )
        .unwrap_err();
    assert!(
        matches!(error, hanami_engine::EngineError::Row { row: 40, .. }),
        "{error}"
    );
    assert!(outputs == stepped(&mut steps, 6000, 40));
    assert!(batch.save() == steps.save());

    // Cancelled while row 10 is being answered: the rows already read (up to the chunk's
    // 32) are finished, nothing after them.
    let cancel = AtomicBool::new(false);
    let mut answered = 0;
    let mut source = RowsFn::new(
        100,
        |row: usize, _: &str, values: &mut [f32]| -> Result<(), RowError> {
            values.copy_from_slice(&sample(7000 + row).0);
            Ok(())
        },
    );
    let outcome = batch
        .request_batch(
            &mut source,
            &cancel,
            &mut |done| {
                if done == 10 {
                    cancel.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            },
            &mut |_, _, _| answered += 1,
        )
        .unwrap();
    assert!(outcome.cancelled);
    assert!(
        outcome.rows_done >= 10 && outcome.rows_done < 100,
        "{outcome:?}"
    );
    assert_eq!(answered, outcome.rows_done);
    stepped(&mut steps, 7000, outcome.rows_done);
    assert!(batch.save() == steps.save());
}

/// A batch that stops at a row holding a value that is not finite leaves that row in the
/// input interface, as far as it was read and with 0 for that value (as a training batch
/// does), whichever way its rows ran: also where rows before it grew the network and ran as
/// ordinary cycles, which load their own row into the interface.
#[test]
fn a_batch_stopped_by_a_bad_row_leaves_that_row_in_the_interface() {
    for (threads, walks) in setups(&[1, 2]) {
        for trained in [40, 1500] {
            let what = format!("{threads} threads, {walks:?} walks, {trained} trained");
            let mut cluster = cluster(21, threads, false);
            assert!(cluster.set_walks(walks));
            train(&mut cluster, 0, trained);
            let mut bad = sample(9000).0;
            bad[3] = f32::NAN;
            let mut source = RowsFn::new(
                100,
                |row: usize, _: &str, values: &mut [f32]| -> Result<(), RowError> {
                    if row == 45 {
                        values.copy_from_slice(&bad);
                    } else {
                        values.copy_from_slice(&sample(5000 + row).0);
                    }
                    Ok(())
                },
            );
            let error = cluster
                .request_batch(
                    &mut source,
                    &AtomicBool::new(false),
                    &mut |_| {},
                    &mut |_, _, _| {},
                )
                .unwrap_err();
            assert!(error.to_string().contains("row 45"), "{what}: {error}");
            let mut left = bad.clone();
            left[3] = 0.0;
            assert_eq!(
                bits(cluster.input("x").unwrap()),
                bits(&left),
                "{what}: the interface does not hold the row that stopped the batch"
            );
        }
    }
}
