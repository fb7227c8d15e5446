//! Tests of the vector parts of every instruction set this CPU has (`avx512`, `avx2`)
//! against the scalar arithmetic, and helpers for the vector modules' own tests.

use super::forward::THRESHOLD;
use super::planned::QueuedSection;
use super::rows::{LANES, LaneSums};
use crate::network::{Connection, NEURONS_PER_BLOCK, Section};

/// Pseudo-random numbers from `seed`, one `pcg` step each.
pub(super) fn draws(mut seed: u32) -> impl FnMut() -> u32 {
    move || {
        seed = crate::rng::pcg_hash(seed);
        seed
    }
}

/// A chain of `len` synapses with these borders.
fn chain(borders: &[f32]) -> Section {
    let mut section = Section::UNSET;
    section.border[..borders.len()].copy_from_slice(borders);
    section.update_ends(borders.len());
    section
}

/// The vector parts of one instruction set, as safe functions.
pub(super) struct Parts {
    /// The instruction set.
    pub(super) name: &'static str,
    /// How many synapses a signal passes fully (`planned::plan`).
    pub(super) reach: fn(&Section, usize, f64) -> usize,
    /// The copy of a section's passed synapses into the queue (`planned::Adds::passed`).
    pub(super) copy: fn(&Section, usize, &mut QueuedSection<'_>),
    /// The lane walk of a section for sixteen rows' potentials.
    pub(super) walk_lanes:
        fn(&Section, &Connection, &[f32; LANES], u16, bool, &mut LaneSums) -> u16,
    /// The sigmoids of sixteen values (`exp::sigmoid`).
    pub(super) sigmoids: fn(&[f32; 16]) -> [f32; 16],
}

/// The vector parts of the instruction sets this CPU has.
pub(super) fn parts() -> Vec<Parts> {
    let mut parts = Vec::new();
    if super::avx2::available() {
        parts.push(Parts {
            name: "AVX2",
            // SAFETY (all four): the CPU has AVX2 and FMA (checked above).
            reach: |section, len, threshold| unsafe { super::avx2::reach(section, len, threshold) },
            copy: |section, reach, queued| unsafe {
                super::avx2::copy_passed(section, reach, queued)
            },
            walk_lanes: |section, connection, potentials, lanes, able, sums| unsafe {
                super::avx2::walk_lanes_of(section, connection, potentials, lanes, able, sums)
            },
            sigmoids: |values| unsafe { super::avx2::sigmoid_array(values) },
        });
    }
    if super::avx512::available() {
        parts.push(Parts {
            name: "AVX-512",
            // SAFETY (all four): the CPU has AVX-512 (checked above).
            reach: |section, len, threshold| unsafe {
                super::avx512::reach(section, len, threshold)
            },
            copy: |section, reach, queued| unsafe {
                super::avx512::copy_passed(section, reach, queued)
            },
            walk_lanes: |section, connection, potentials, lanes, able, sums| unsafe {
                super::avx512::walk_lanes_of(section, connection, potentials, lanes, able, sums)
            },
            sigmoids: |values| unsafe { super::avx512::sigmoid_array(values) },
        });
    }
    parts
}

#[test]
fn the_search_on_rounded_ends_finds_the_exact_reach() {
    // The positions before the first end that is not below the threshold.
    let exact = |section: &Section, len: usize, threshold: f64| {
        let ends = &section.ends[..len];
        ends.iter()
            .position(|&end| !crate::network::passes(end, threshold))
            .unwrap_or(len)
    };
    let parts = parts();
    // Ends that differ only beyond `f32` precision: 1, 1 + 2^-40, 1 + 2^-39, ...
    let tiny = (2.0f64).powi(-40) as f32;
    let close = chain(&[1.0, tiny, tiny, 3.0, 0.5]);
    assert_eq!(close.rounded_ends[0], close.rounded_ends[2]);
    let mut state = 0x2545_f491u32;
    let mut checked = 0;
    for len in 0..=5 {
        for k in 0..5 {
            for offset in [-1e-12, -1e-13, 0.0, 1e-13, 1e-12, 1e-3, -1e-3] {
                let threshold = close.ends[k] + offset;
                for parts in &parts {
                    let found = (parts.reach)(&close, len, threshold);
                    let what = format!("{} {len} {k} {offset}", parts.name);
                    assert_eq!(found, exact(&close, len, threshold), "{what}");
                    checked += 1;
                }
            }
        }
    }
    for _ in 0..2000 {
        let len = (crate::rng::pcg_hash(state) % 65) as usize;
        let borders: Vec<f32> = (0..len)
            .map(|_| {
                state = crate::rng::pcg_hash(state);
                (state % 1000) as f32 / 7.0 + if state.is_multiple_of(3) { tiny } else { 0.0 }
            })
            .collect();
        let section = chain(&borders);
        state = crate::rng::pcg_hash(state);
        let at = (state as usize) % (len + 1);
        let base = if at < len { section.ends[at] } else { 100.0 };
        for threshold in [base, base + 1e-12, base - 1e-12, base * 0.5, f64::NAN] {
            for parts in &parts {
                let found = (parts.reach)(&section, len, threshold);
                let what = format!("{} {borders:?} {threshold}", parts.name);
                assert_eq!(found, exact(&section, len, threshold), "{what}");
                checked += 1;
            }
        }
    }
    assert!(parts.is_empty() || checked > 10_000);
}

#[test]
fn lane_walks_are_the_one_row_walks() {
    let parts = parts();
    let mut next = draws(0x1b87_3593u32);
    let mut compared = 0;
    // Signals of finite potential that end whole (not in part) in a synapse: at the
    // first, and at one after it.
    let (mut whole_at_first, mut whole_later) = (0, 0);
    for round in 0..3000 {
        let len = (next() % 65) as usize;
        // Half the rounds take borders whose sums are exact, so that a potential can end
        // exactly where a synapse ends (random borders almost never let a signal end
        // whole); 41 and 47 also give `(1 / b) · b ≠ 1`.
        let exact = round % 4 < 2;
        let mut section = Section::UNSET;
        for k in 0..len {
            section.border[k] = match next() % 8 {
                _ if exact => [0.25, 0.5, 1.0, 41.0, 47.0][(next() % 5) as usize],
                0 => 1e-3,
                1 => 40.0,
                _ => (next() % 1000) as f32 / 100.0 + 0.01,
            };
            section.weight[k] = (next() % 2001) as f32 / 1000.0 - 1.0;
            section.target[k] = (next() % 256) as u8;
        }
        section.update_ends(len);
        let connection = Connection {
            lower_bound: (next() % 5) as f32 / 2.0,
            range: if next().is_multiple_of(4) {
                3.0
            } else {
                f32::MAX
            },
            tolerance: (next() % 50) as f32 / 100.0,
            len: len as u8,
            ..Connection::default()
        };
        let able = round % 2 == 0;
        // Potentials below the threshold, inside the first synapse, along the chain,
        // exactly at (or just past) the end of a synapse, beyond the chain, and NaN.
        let potentials: [f32; LANES] = std::array::from_fn(|_| match next() % 7 {
            0 => 0.0,
            1 => f32::NAN,
            2 => connection.lower_bound + section.border[0] * 0.7,
            3 => connection.lower_bound + 1e6,
            4 if len > 0 => {
                let end = section.ends[next() as usize % len] as f32;
                connection.lower_bound + end + [0.0, 4e-6][(next() % 2) as usize]
            }
            _ => connection.lower_bound + (next() % 20_000) as f32 / 100.0,
        });
        let lanes = (next() & 0xffff) as u16;
        let before: Vec<f32> = (0..NEURONS_PER_BLOCK * LANES)
            .map(|_| (next() % 1000) as f32 / 10.0 - 50.0)
            .collect();
        for parts in &parts {
            let mut sums = before.clone();
            let sums: &mut LaneSums = sums
                .as_mut_slice()
                .try_into()
                .expect("64 targets of 16 lanes");
            let grows = (parts.walk_lanes)(&section, &connection, &potentials, lanes, able, sums);
            for (lane, &potential) in potentials.iter().enumerate() {
                let column = |values: &[f32]| -> [u32; NEURONS_PER_BLOCK] {
                    std::array::from_fn(|t| values[t * LANES + lane].to_bits())
                };
                if lanes & (1 << lane) == 0 {
                    assert_eq!(
                        column(sums),
                        column(&before),
                        "{} lane {lane} left out",
                        parts.name
                    );
                    continue;
                }
                let mut inputs: [f32; NEURONS_PER_BLOCK] =
                    std::array::from_fn(|t| before[t * LANES + lane]);
                let walk = super::forward::walk_until_growth(
                    &section,
                    &connection,
                    &mut inputs,
                    potential,
                    able,
                );
                assert_eq!(
                    grows & (1 << lane) != 0,
                    walk.is_err(),
                    "{} round {round} lane {lane}",
                    parts.name
                );
                let start = f64::from((potential - connection.lower_bound).min(connection.range));
                let reach = section.ends[..len]
                    .iter()
                    .position(|&end| !crate::network::passes(end, start - THRESHOLD));
                if potential.is_finite()
                    && start > THRESHOLD
                    && let Some(reach) = reach
                    && section.ends[reach] <= start
                {
                    *if reach == 0 {
                        &mut whole_at_first
                    } else {
                        &mut whole_later
                    } += 1;
                }
                if walk.is_ok() {
                    assert_eq!(
                        column(sums),
                        inputs.map(f32::to_bits),
                        "{} round {round} lane {lane}",
                        parts.name
                    );
                    compared += 1;
                }
            }
        }
    }
    assert!(parts.is_empty() || compared > 10_000);
    assert!(
        parts.is_empty() || whole_at_first > 100 && whole_later > 1000,
        "{whole_at_first} {whole_later}"
    );
}

/// Every ninth `f32` (infinities and NaN included), sixteen at a time, plus the values around
/// 0 and the edges where `exp` takes the platform's.
#[test]
fn vector_sigmoids_are_the_scalar_ones() {
    use rayon::prelude::*;
    let special = [
        0.0f32,
        -0.0,
        88.0,
        -88.0,
        87.99,
        -87.99,
        1e-40,
        -1e-40,
        f32::MAX,
        f32::NAN,
        f32::NEG_INFINITY,
    ];
    for part in parts() {
        let check = |values: [f32; 16]| -> Vec<u32> {
            let sigmoids = (part.sigmoids)(&values);
            values
                .into_iter()
                .zip(sigmoids)
                .filter(|&(x, s)| {
                    let expected = super::exp::sigmoid(x);
                    s.to_bits() != expected.to_bits() && !(s.is_nan() && expected.is_nan())
                })
                .map(|(x, _)| x.to_bits())
                .collect()
        };
        let specials = check(std::array::from_fn(|i| special[i % special.len()]));
        assert!(specials.is_empty(), "{}: {specials:x?}", part.name);
        let wrong: Vec<u32> = (0..u32::MAX / 144)
            .into_par_iter()
            .flat_map_iter(|chunk| {
                check(std::array::from_fn(|i| {
                    f32::from_bits((chunk * 16 + i as u32) * 9)
                }))
            })
            .take_any(10)
            .collect();
        assert!(
            wrong.is_empty(),
            "{}: sigmoid differs at {wrong:x?}",
            part.name
        );
    }
}

/// The update of a block held as separate values (request batches) is the update of neuron
/// records (training steps), with every neuron update this CPU has, vector or not:
/// potentials above, at and below zero (−0.0 too), countdowns from 0 to 3, inputs of both
/// signs, several cooldowns and overflow factors.
#[test]
fn value_updates_are_the_record_updates() {
    use super::forward::{NeuronParams, update_neurons, update_values};
    use crate::cluster::Walks;
    use crate::network::Neuron;
    let mut draw = draws(7);
    let mut value = move || match draw() % 8 {
        0 => 0.0,
        1 => -0.0,
        _ => (draw() % 20_000) as f32 / 1000.0 - 10.0,
    };
    for round in 0..2_000 {
        let params = NeuronParams {
            cooldown: [1.0, 3.0, 1e7][round % 3],
            refractory_time: [1, 2, 3][round % 3],
            overflow: [1.0, 0.5, 3.0][round / 3 % 3],
        };
        let inputs: [f32; NEURONS_PER_BLOCK] = std::array::from_fn(|_| value());
        let starts: [f32; NEURONS_PER_BLOCK] = std::array::from_fn(|_| value());
        let countdowns: [u32; NEURONS_PER_BLOCK] =
            std::array::from_fn(|j| (j as u32 + round as u32) % 4);
        let records = || -> [Neuron; NEURONS_PER_BLOCK] {
            std::array::from_fn(|j| Neuron {
                input: inputs[j],
                refractory: countdowns[j],
                ..Neuron::default()
            })
        };
        let (mut expected, mut expected_potentials) = (records(), starts);
        let expected_active = update_neurons(
            Walks::Portable,
            &mut expected,
            &mut expected_potentials,
            0,
            &mut 0,
            &params,
        );
        for walks in Walks::supported() {
            let (mut refractory, mut potentials) = (countdowns, starts);
            let active = update_values(walks, &inputs, &mut refractory, &mut potentials, &params);
            let (mut updated, mut record_potentials) = (records(), starts);
            let record_active = update_neurons(
                walks,
                &mut updated,
                &mut record_potentials,
                0,
                &mut 0,
                &params,
            );
            for (active, potentials, refractory) in [
                (active, potentials, refractory),
                (
                    record_active,
                    record_potentials,
                    updated.map(|neuron| neuron.refractory),
                ),
            ] {
                assert_eq!(active, expected_active, "round {round}, {walks:?}");
                assert_eq!(
                    potentials.map(f32::to_bits),
                    expected_potentials.map(f32::to_bits),
                    "round {round}, {walks:?}"
                );
                assert_eq!(
                    refractory,
                    expected.map(|neuron| neuron.refractory),
                    "round {round}, {walks:?}"
                );
            }
        }
    }
}
