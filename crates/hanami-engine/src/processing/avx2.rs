//! The section walks with AVX2 (x86-64, chosen at run time where AVX-512 is missing), bit
//! for bit the results of the portable walks:
//!
//! - Forward, the planned walks of `planned` with an AVX2 search of where each signal ends
//!   (eight rounded ends at a time) and AVX2 copies of the passed synapses into the queue.
//! - Backward, the planned walks with the weight updates and error terms of eight synapses
//!   at a time: the targets' deltas loaded one by one and whether they are active looked up
//!   in a bit mask, the weights written back whole (gathers and masked stores are slow on
//!   AMD cores: without them a training step took about 12 % less on a Zen 3 core).
//! - Request batches, the lane walks of [`super::avx512::walk_group`] with the sixteen lanes
//!   of a group of rows in two 256-bit registers of `f32` and, for the exact comparisons of
//!   where the signals end, four registers of `f64`; each source's potentials in the lanes
//!   are loaded from a copy that lays them out neuron by neuron (`GroupSources::
//!   lane_potentials`), not gathered from the rows (1.5-3.5 % less per request batch).
//! - Request batches' neuron updates, eight neurons at a time, and their output sigmoids,
//!   eight at a time in `f64` with fused multiply-adds, the bits of `super::exp::sigmoid`.
//!
//! The `f64` registers hold the lanes in the order 0, 1, 4, 5 | 2, 3, 6, 7 (and the same for
//! the upper eight), so that one `vshufps` of two comparison results gives the eight `f32`
//! lane masks in their natural order.

use std::arch::x86_64::{
    __m256, __m256d, __m256i, _CMP_GT_OQ, _CMP_LT_OQ, _CMP_NLE_UQ, _mm_cvtsi64_si128,
    _mm256_add_ps, _mm256_and_ps, _mm256_and_si256, _mm256_blendv_pd, _mm256_blendv_ps,
    _mm256_castpd_ps, _mm256_castps_si256, _mm256_castps256_ps128, _mm256_castsi256_pd,
    _mm256_castsi256_ps, _mm256_cmp_pd, _mm256_cmp_ps, _mm256_cmpeq_epi32, _mm256_cmpeq_epi64,
    _mm256_cmpgt_epi32, _mm256_cvtepu8_epi32, _mm256_cvtps_pd, _mm256_extractf128_ps,
    _mm256_loadu_ps, _mm256_loadu_si256, _mm256_maskload_ps, _mm256_movemask_ps, _mm256_mul_ps,
    _mm256_or_ps, _mm256_permutevar8x32_ps, _mm256_set1_epi8, _mm256_set1_epi32,
    _mm256_set1_epi64x, _mm256_set1_pd, _mm256_set1_ps, _mm256_setr_epi32, _mm256_setr_epi64x,
    _mm256_setr_ps, _mm256_setzero_ps, _mm256_setzero_si256, _mm256_shuffle_ps, _mm256_slli_epi32,
    _mm256_srlv_epi32, _mm256_storeu_ps, _mm256_storeu_si256, _mm256_sub_epi32, _mm256_sub_pd,
    _mm256_sub_ps, _mm256_testz_ps,
};

use super::backward::SYNAPSE_LEARNING_RATE;
use super::exp;
use super::forward::{NeuronParams, THRESHOLD, target_index};
use super::planned::{self, QueuedSection};
use super::rows::{GroupSources, LANES, LaneSums, end_lanes, walk_group_lanes};
use super::{BlockTask, Sources};
use crate::network::{
    Connection, ConnectionBlock, NEURONS_PER_BLOCK, SYNAPSES_PER_SECTION, Section, WALK_THRESHOLD,
    low_bits,
};

/// Whether this CPU has the instructions the walks use (AVX2, and FMA for the sigmoids, which
/// must fuse as the scalar ones do; every x86-64 CPU with AVX2 in servers has it).
pub(crate) fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// The neuron update of a block held as separate values (`forward::update_values`), eight
/// neurons at a time with the arithmetic of `forward::update_one`, before the activation's
/// logarithm: returns the neurons that fired.
#[target_feature(enable = "avx2")]
pub(super) fn update_values(
    inputs: &[f32; NEURONS_PER_BLOCK],
    refractory: &mut [u32; NEURONS_PER_BLOCK],
    potentials: &mut [f32; NEURONS_PER_BLOCK],
    params: &NeuronParams,
) -> u64 {
    use std::arch::x86_64::{_mm256_div_ps, _mm256_min_epu32};
    let (zero, one) = (_mm256_setzero_si256(), _mm256_set1_epi32(1));
    let cooldown = _mm256_set1_ps(params.cooldown);
    let overflow = _mm256_set1_ps(params.overflow);
    let refractory_time = _mm256_set1_epi32(params.refractory_time as i32);
    let mut active = 0u64;
    for j in 0..NEURONS_PER_BLOCK / 8 {
        // SAFETY: eight values inside each array of 64 (`8 · (j + 1) ≤ 64`).
        let (potential, countdown, input) = unsafe {
            (
                _mm256_loadu_ps(potentials.as_ptr().add(8 * j)),
                _mm256_loadu_si256(refractory.as_ptr().add(8 * j).cast()),
                _mm256_loadu_ps(inputs.as_ptr().add(8 * j)),
            )
        };
        let p = _mm256_div_ps(potential, cooldown);
        // The countdown stops at 0.
        let countdown = _mm256_sub_epi32(countdown, _mm256_min_epu32(countdown, one));
        let ready = _mm256_cmpeq_epi32(countdown, zero);
        // +0.0 where the neuron is not ready, as in the scalar update.
        let added = _mm256_and_ps(_mm256_mul_ps(overflow, input), _mm256_castsi256_ps(ready));
        let p = _mm256_add_ps(p, added);
        let countdown = _mm256_castps_si256(_mm256_blendv_ps(
            _mm256_castsi256_ps(countdown),
            _mm256_castsi256_ps(refractory_time),
            _mm256_castsi256_ps(ready),
        ));
        let fired = _mm256_cmp_ps::<_CMP_GT_OQ>(p, _mm256_setzero_ps());
        let value = _mm256_and_ps(_mm256_add_ps(p, _mm256_set1_ps(1.0)), fired);
        // SAFETY: as for the loads.
        unsafe {
            _mm256_storeu_ps(potentials.as_mut_ptr().add(8 * j), value);
            _mm256_storeu_si256(refractory.as_mut_ptr().add(8 * j).cast(), countdown);
        }
        active |= u64::from(_mm256_movemask_ps(fired) as u8) << (8 * j);
    }
    active
}

/// `sigmoid` (`exp::sigmoid`, the same bits) of sixteen values, eight at a time in two halves
/// of four `f64`.
#[target_feature(enable = "avx2,fma")]
pub(super) fn sigmoid_array(values: &[f32; 16]) -> [f32; 16] {
    let mut out = [0.0f32; 16];
    for half in 0..2 {
        // SAFETY: eight values inside each array (`8 · half + 8 ≤ 16`).
        unsafe {
            let x = _mm256_loadu_ps(values.as_ptr().add(8 * half));
            _mm256_storeu_ps(out.as_mut_ptr().add(8 * half), sigmoid_eight(x));
        }
    }
    let outside = |x: f32| exp::outside((-x).to_bits());
    for (value, &x) in out.iter_mut().zip(values) {
        if outside(x) {
            *value = exp::sigmoid(x);
        }
    }
    out
}

/// `sigmoid` of eight values, right where `exp` computes `e^-x` itself (`exp::outside` false
/// for `-x`); the other lanes are for the caller to replace.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn sigmoid_eight(x: __m256) -> __m256 {
    use std::arch::x86_64::{
        _mm256_add_epi64, _mm256_castpd_si256, _mm256_cvtpd_ps, _mm256_div_ps, _mm256_fmadd_pd,
        _mm256_fmsub_pd, _mm256_i64gather_epi64, _mm256_mul_pd, _mm256_set_m128, _mm256_slli_epi64,
        _mm256_xor_si256,
    };
    let table = &exp::TABLE;
    let (inv_ln2_n, shift) = (
        _mm256_set1_pd(exp::inv_ln2_n()),
        _mm256_set1_pd(exp::shift()),
    );
    let c: [__m256d; 3] = std::array::from_fn(|i| _mm256_set1_pd(exp::poly(i)));
    // `-x` flips the sign bit (also of zeros, which `0 − x` would not).
    let minus_x = _mm256_castsi256_ps(_mm256_xor_si256(
        _mm256_castps_si256(x),
        _mm256_set1_epi32(i32::MIN),
    ));
    let half = |part: usize| {
        let lanes = if part == 0 {
            _mm256_castps256_ps128(minus_x)
        } else {
            _mm256_extractf128_ps::<1>(minus_x)
        };
        let xd = _mm256_cvtps_pd(lanes);
        let kd = _mm256_fmadd_pd(inv_ln2_n, xd, shift);
        let ki = _mm256_castpd_si256(kd);
        let kd = _mm256_sub_pd(kd, shift);
        let r = _mm256_fmsub_pd(inv_ln2_n, xd, kd);
        let index = _mm256_and_si256(ki, _mm256_set1_epi64x(31));
        // SAFETY: the indices lie in 0..32, inside the table.
        let entry = unsafe { _mm256_i64gather_epi64::<8>(table.as_ptr().cast(), index) };
        let s = _mm256_castsi256_pd(_mm256_add_epi64(entry, _mm256_slli_epi64::<47>(ki)));
        let z = _mm256_fmadd_pd(c[0], r, c[1]);
        let r2 = _mm256_mul_pd(r, r);
        let y = _mm256_fmadd_pd(c[2], r, _mm256_set1_pd(1.0));
        let y = _mm256_fmadd_pd(z, r2, y);
        _mm256_cvtpd_ps(_mm256_mul_pd(y, s))
    };
    let e = _mm256_set_m128(half(1), half(0));
    let one = _mm256_set1_ps(1.0);
    _mm256_div_ps(one, _mm256_add_ps(one, e))
}

/// Bit `j` set: `values[j] > 0.0` (false for NaN), for up to 64 values.
#[target_feature(enable = "avx2")]
pub(super) fn positive_bits(values: &[f32]) -> u64 {
    assert!(values.len() <= 64, "at most 64 values");
    let (eights, rest) = values.as_chunks::<8>();
    let mut bits = 0u64;
    for (j, eight) in eights.iter().enumerate() {
        // SAFETY: eight values inside the chunk.
        let eight = unsafe { _mm256_loadu_ps(eight.as_ptr()) };
        let positive = _mm256_cmp_ps::<_CMP_GT_OQ>(eight, _mm256_setzero_ps());
        bits |= u64::from(_mm256_movemask_ps(positive) as u8) << (8 * j);
    }
    for (k, &value) in rest.iter().enumerate() {
        bits |= u64::from(value > 0.0) << (8 * eights.len() + k);
    }
    bits
}

/// The forward walks of one block (`forward::process_synapses`), planned
/// (`planned::process_synapses`).
#[target_feature(enable = "avx2")]
pub(super) fn process_synapses(
    task: &mut BlockTask<'_>,
    sources: &Sources<'_>,
    growth: bool,
    creation_enabled: bool,
) {
    let reach = |section: &Section, len, threshold| reach(section, len, threshold);
    let copy = |section: &Section, reach, queued: &mut QueuedSection<'_>| {
        copy_passed(section, reach, queued);
    };
    planned::process_synapses(task, sources, (growth, creation_enabled), reach, copy);
}

/// How many synapses a signal passes fully: the positions `k` of the chain before the first
/// with `ends[k] < threshold` false (false for NaN). Searched on the rounded ends (eight at a
/// time, as far as the chain goes) and confirmed with one exact end; searched again on the
/// exact ends, one by one, in the rare case that an end rounds to the threshold itself.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn reach(section: &Section, len: usize, threshold: f64) -> usize {
    let len = len.min(SYNAPSES_PER_SECTION);
    let bound = _mm256_set1_ps(threshold as f32);
    let mut mask = 0u64;
    for j in 0..len.div_ceil(8) {
        // SAFETY: `8 · j < 64`, so the eight values lie inside `rounded_ends`.
        let ends = unsafe { _mm256_loadu_ps(section.rounded_ends.as_ptr().add(8 * j)) };
        let below = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_LT_OQ>(ends, bound)) as u8;
        mask |= u64::from(below) << (8 * j);
    }
    // Every end before `guess` rounds below the rounded threshold, so it lies below the exact
    // one (rounding keeps the order); the end at `guess` may round to the threshold itself.
    let guess = (!(mask & low_bits(len))).trailing_zeros() as usize;
    if guess < len && section.ends[guess] < threshold {
        let passes = section.ends[..len]
            .iter()
            .position(|&end| !crate::network::passes(end, threshold));
        passes.unwrap_or(len)
    } else {
        guess
    }
}

/// Copies a section's target slots and its first `reach` weights into the queue
/// (`planned::Adds::passed`); the other weights are written as 0 without being read (masked
/// loads: a loop of plain copies as far as `reach` became a call of `memcpy` per walk).
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn copy_passed(section: &Section, reach: usize, queued: &mut QueuedSection<'_>) {
    let index_bits = _mm256_set1_epi8((NEURONS_PER_BLOCK - 1) as i8);
    let positions = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    // SAFETY: two times 32 target bytes inside the section's targets and the queue's slots,
    // and eight times eight weights inside the section's weights and the queue's values;
    // weights outside the masks are not read.
    unsafe {
        for half in 0..2 {
            let targets = _mm256_loadu_si256(section.target.as_ptr().add(32 * half).cast());
            let slots = queued.slots.as_mut_ptr().add(32 * half).cast();
            _mm256_storeu_si256(slots, _mm256_and_si256(targets, index_bits));
        }
        for j in 0..SYNAPSES_PER_SECTION / 8 {
            // Lanes `8j + l < reach`.
            let left = _mm256_set1_epi32(reach as i32 - 8 * j as i32);
            let wanted = _mm256_cmpgt_epi32(left, positions);
            let weights = _mm256_maskload_ps(section.weight.as_ptr().add(8 * j), wanted);
            _mm256_storeu_ps(queued.values.as_mut_ptr().add(8 * j).cast(), weights);
        }
    }
}

/// The backward walks of one block (`backward::backprop_sections`) with vector updates
/// (`planned::backprop_sections`).
#[target_feature(enable = "avx2")]
pub(super) fn backprop_sections(task: &mut BlockTask<'_>, sources: &Sources<'_>) {
    let deltas: [f32; NEURONS_PER_BLOCK] = std::array::from_fn(|j| task.neurons[j].delta);
    let active = positive_bits(&task.potentials[..NEURONS_PER_BLOCK]);
    // The forward walks' search, exact as the backward walk needs it.
    let reach = |section: &Section, len, threshold| reach(section, len, threshold);
    let update = |section: &mut Section, visited, terms: Option<&mut Vec<f32>>| {
        update_weights(section, visited, &deltas, active, terms)
    };
    planned::backprop_sections(task, sources, reach, update);
}

/// The weight updates of the first `visited` synapses, eight at a time, with the targets'
/// deltas loaded one by one and their activity (bit `j` of `active`: `potential > 0`)
/// looked up: the results of `avx512::update_weights`.
#[inline]
#[target_feature(enable = "avx2")]
fn update_weights(
    section: &mut Section,
    visited: usize,
    deltas: &[f32; NEURONS_PER_BLOCK],
    active: u64,
    mut terms: Option<&mut Vec<f32>>,
) -> (u64, f32) {
    let visited = visited.min(SYNAPSES_PER_SECTION);
    let rate = _mm256_set1_ps(SYNAPSE_LEARNING_RATE);
    let zero = _mm256_setzero_ps();
    let positions = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let index_bits = _mm256_set1_epi32((NEURONS_PER_BLOCK - 1) as i32);
    let counted = section.unsettled != 0;
    let mut agree = 0u64;
    let mut sum = 0.0f32;
    if let Some(terms) = terms.as_deref_mut() {
        terms.reserve(SYNAPSES_PER_SECTION);
    }
    for j in 0..visited.div_ceil(8) {
        let take = (low_bits(visited) >> (8 * j)) as u8;
        // Lanes `8j + l < visited`.
        let taken = _mm256_cmpgt_epi32(_mm256_set1_epi32((visited - 8 * j) as i32), positions);
        let slots: [u8; 8] = section.target[8 * j..8 * j + 8]
            .try_into()
            .expect("eight target bytes");
        // Eight loads of the targets' deltas: a gather is slower on AMD cores.
        let delta = {
            let d = |l: usize| deltas[usize::from(slots[l]) & (NEURONS_PER_BLOCK - 1)];
            _mm256_setr_ps(d(0), d(1), d(2), d(3), d(4), d(5), d(6), d(7))
        };
        // SAFETY: eight weights inside the array (`j < 8`).
        let weight = unsafe { _mm256_loadu_ps(section.weight.as_ptr().add(8 * j)) };
        if counted {
            let bytes = _mm_cvtsi64_si128(i64::from_le_bytes(slots));
            let index = _mm256_and_si256(_mm256_cvtepu8_epi32(bytes), index_bits);
            let active = target_bits(active, index);
            let positive = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(weight, zero)) as u8;
            agree |= u64::from(!(active ^ positive) & take) << (8 * j);
        }
        if let Some(terms) = terms.as_deref_mut() {
            // All 8 lanes are written and added, those from `visited` on as `−0.0`, as in the
            // AVX-512 update.
            let product = _mm256_mul_ps(delta, weight);
            let lanes = _mm256_blendv_ps(_mm256_set1_ps(-0.0), product, _mm256_castsi256_ps(taken));
            // SAFETY: the vector has room for 64 more values (reserved above), and `j < 8`;
            // the 8 values read are those just written.
            unsafe {
                let stored = terms.as_mut_ptr().add(terms.len() + 8 * j);
                _mm256_storeu_ps(stored, lanes);
                for lane in 0..8 {
                    sum += *stored.add(lane);
                }
            }
        }
        let updated = _mm256_sub_ps(weight, _mm256_mul_ps(rate, delta));
        // The lanes from `visited` on keep their weights: written back as read (a masked
        // store is microcoded on AMD cores).
        let kept = _mm256_blendv_ps(weight, updated, _mm256_castsi256_ps(taken));
        // SAFETY: 8 weights inside the array.
        unsafe { _mm256_storeu_ps(section.weight.as_mut_ptr().add(8 * j), kept) };
    }
    if let Some(terms) = terms {
        // SAFETY: the `visited` values after the old length were written above.
        unsafe { terms.set_len(terms.len() + visited) };
    }
    (agree, sum)
}

/// Bit `l`: bit `index[l]` of `bits` (indices below 64), looked up in registers.
#[inline]
#[target_feature(enable = "avx2")]
fn target_bits(bits: u64, index: __m256i) -> u8 {
    let low = _mm256_castsi256_ps(_mm256_set1_epi32(bits as u32 as i32));
    let high = _mm256_castsi256_ps(_mm256_set1_epi32((bits >> 32) as u32 as i32));
    // Index bit 5 (which half) moved to the sign bit, which picks the half.
    let half = _mm256_castsi256_ps(_mm256_slli_epi32::<26>(index));
    let words = _mm256_castps_si256(_mm256_blendv_ps(low, high, half));
    let shift = _mm256_and_si256(index, _mm256_set1_epi32(31));
    let bit = _mm256_slli_epi32::<31>(_mm256_srlv_epi32(words, shift));
    _mm256_movemask_ps(_mm256_castsi256_ps(bit)) as u8
}

/// Sixteen lanes of `f32`: lanes 0-7 and 8-15.
type Lanes = [__m256; 2];

/// Eight lanes' all-ones (`true`) or zero masks from the bits of `bits`, lane `l` from bit
/// `l`.
#[inline]
#[target_feature(enable = "avx2")]
fn lane_masks(bits: u8) -> __m256 {
    let each = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    let set = _mm256_and_si256(_mm256_set1_epi32(i32::from(bits)), each);
    _mm256_castsi256_ps(_mm256_cmpeq_epi32(set, each))
}

/// The masks of [`lane_masks`] as `f64` lanes in the order of [`widen`].
#[inline]
#[target_feature(enable = "avx2")]
fn wide_lane_masks(bits: u8) -> [__m256d; 2] {
    let bits = _mm256_set1_epi64x(i64::from(bits));
    [
        _mm256_setr_epi64x(1, 2, 16, 32),
        _mm256_setr_epi64x(4, 8, 64, 128),
    ]
    .map(|each| _mm256_castsi256_pd(_mm256_cmpeq_epi64(_mm256_and_si256(bits, each), each)))
}

/// The bits of sixteen lane masks.
#[inline]
#[target_feature(enable = "avx2")]
fn mask_bits(masks: Lanes) -> u16 {
    _mm256_movemask_ps(masks[0]) as u16 | (_mm256_movemask_ps(masks[1]) as u16) << 8
}

/// Eight `f32` lanes widened to `f64` in the order 0, 1, 4, 5 and 2, 3, 6, 7 (see the module
/// documentation).
#[inline]
#[target_feature(enable = "avx2")]
fn widen(values: __m256) -> [__m256d; 2] {
    let order = _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7);
    let values = _mm256_permutevar8x32_ps(values, order);
    [
        _mm256_cvtps_pd(_mm256_castps256_ps128(values)),
        _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(values)),
    ]
}

/// The eight lane masks of `end < bound`, with `bound` in the order of [`widen`].
#[inline]
#[target_feature(enable = "avx2")]
fn below(end: __m256d, bound: &[__m256d; 2]) -> __m256 {
    let low = _mm256_castpd_ps(_mm256_cmp_pd::<_CMP_LT_OQ>(end, bound[0]));
    let high = _mm256_castpd_ps(_mm256_cmp_pd::<_CMP_LT_OQ>(end, bound[1]));
    // Per 128-bit half the low 32 bits of the first two `f64` masks of each, which are
    // the lanes in their natural order.
    _mm256_shuffle_ps::<0b10_00_10_00>(low, high)
}

/// The forward walks of a hexagon for the rows of one group at once, one row per lane, for
/// requests that leave the network as it is; see [`super::avx512::walk_group`], whose
/// results (the sums and the returned lanes whose request would grow) these are, bit for bit.
#[target_feature(enable = "avx2")]
pub(super) fn walk_group(
    blocks: &[ConnectionBlock],
    dim: usize,
    sources: &GroupSources<'_>,
    growth: bool,
    sums: &mut [f32],
) -> u16 {
    let load_sources = |sources: &GroupSources<'_>, hexagon: u32, neuron: u32, lanes: u16| {
        let potentials = sources.lane_potentials(hexagon, neuron);
        // SAFETY: two times eight values inside the sixteen lanes.
        let halves = unsafe {
            [
                _mm256_loadu_ps(potentials.as_ptr()),
                _mm256_loadu_ps(potentials.as_ptr().add(8)),
            ]
        };
        // The lanes that did not fire the neuron hold what an earlier group left: 0 instead.
        [0, 1].map(|half| _mm256_and_ps(halves[half], lane_masks((lanes >> (8 * half)) as u8)))
    };
    let walk =
        |section: &Section, connection: &Connection, potential, lanes, able, sums: &mut _| {
            walk_lanes(section, connection, potential, lanes, able, sums)
        };
    walk_group_lanes(blocks, dim, sources, growth, sums, load_sources, walk)
}

/// [`walk_lanes`] for the potentials of an array (for the tests).
#[cfg(test)]
#[target_feature(enable = "avx2")]
pub(super) fn walk_lanes_of(
    section: &Section,
    connection: &Connection,
    potentials: &[f32; LANES],
    lanes: u16,
    able: bool,
    sums: &mut LaneSums,
) -> u16 {
    // SAFETY: sixteen values inside the array.
    let potential = unsafe {
        [
            _mm256_loadu_ps(potentials.as_ptr()),
            _mm256_loadu_ps(potentials.as_ptr().add(8)),
        ]
    };
    walk_lanes(section, connection, potential, lanes, able, sums)
}

/// One section walked for the rows in `lanes`, each with its source's `potential`: the
/// arithmetic of the AVX-512 `walk_lanes`. Returns the lanes whose walk would grow if `able`.
#[inline]
#[target_feature(enable = "avx2")]
fn walk_lanes(
    section: &Section,
    connection: &Connection,
    potential: Lanes,
    lanes: u16,
    able: bool,
    sums: &mut LaneSums,
) -> u16 {
    let range = _mm256_set1_ps(connection.range);
    let lower_bound = _mm256_set1_ps(connection.lower_bound);
    let remaining = potential.map(|potential| {
        let remaining = _mm256_sub_ps(potential, lower_bound);
        _mm256_blendv_ps(
            remaining,
            range,
            _mm256_cmp_ps::<_CMP_GT_OQ>(remaining, range),
        )
    });
    // A potential at or below the threshold drives nothing (NaN goes on, as in the one-row
    // walks).
    let threshold = _mm256_set1_ps(WALK_THRESHOLD);
    let alive = lanes
        & mask_bits(remaining.map(|remaining| _mm256_cmp_ps::<_CMP_NLE_UQ>(remaining, threshold)));
    if alive == 0 {
        return 0;
    }
    // Per lane, the bound the ends stay below while its signal leaves more than the
    // threshold; the lanes that are not alive get −∞, so that they never pass a synapse.
    let nowhere = _mm256_set1_pd(f64::NEG_INFINITY);
    let threshold = _mm256_set1_pd(THRESHOLD);
    let bound = |half: usize| {
        let alive = wide_lane_masks((alive >> (8 * half)) as u8);
        let start = widen(remaining[half]);
        [0, 1].map(|k| _mm256_blendv_pd(nowhere, _mm256_sub_pd(start[k], threshold), alive[k]))
    };
    let bounds = [bound(0), bound(1)];
    let len = usize::from(connection.len).min(SYNAPSES_PER_SECTION);
    // Per lane, how many synapses its signal passes fully.
    let mut walked = [_mm256_setzero_si256(); 2];
    // Hidden from the optimiser, as in the AVX-512 walks.
    let unchanged = std::hint::black_box(_mm256_set1_ps(-0.0));
    for pos in 0..len {
        let end = _mm256_set1_pd(section.ends[pos]);
        // Lanes whose signal leaves more than the threshold after this synapse.
        let still = [below(end, &bounds[0]), below(end, &bounds[1])];
        let weight = _mm256_set1_ps(section.weight[pos]);
        let target = &mut sums[target_index(section.target[pos]) * LANES..][..LANES];
        // SAFETY: the 16 values lie inside `target`.
        unsafe {
            for (half, &still) in still.iter().enumerate() {
                let value = _mm256_blendv_ps(unchanged, weight, still);
                let sum = _mm256_loadu_ps(target.as_ptr().add(8 * half));
                _mm256_storeu_ps(target.as_mut_ptr().add(8 * half), _mm256_add_ps(sum, value));
            }
        }
        // A mask of all ones is −1.
        walked =
            [0, 1].map(|half| _mm256_sub_epi32(walked[half], _mm256_castps_si256(still[half])));
        let any = _mm256_or_ps(still[0], still[1]);
        if _mm256_testz_ps(any, any) != 0 {
            break;
        }
    }
    // The signals that passed every synapse (the loop ends early only where none does);
    // such a signal outlasts the chain and grows it.
    let everything = _mm256_set1_epi32(len as i32);
    let passing = alive
        & mask_bits(
            walked.map(|walked| _mm256_castsi256_ps(_mm256_cmpeq_epi32(walked, everything))),
        );
    let lanes = || {
        let mut ats = [0u32; LANES];
        let mut starts = [0.0f32; LANES];
        // SAFETY: two times eight values stored into arrays of sixteen.
        unsafe {
            for half in 0..2 {
                _mm256_storeu_si256(ats.as_mut_ptr().add(8 * half).cast(), walked[half]);
                _mm256_storeu_ps(starts.as_mut_ptr().add(8 * half), remaining[half]);
            }
        }
        (ats, starts)
    };
    end_lanes(section, connection, (alive, passing, able), lanes, sums)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn target_bits_are_the_bits_at_the_indices() {
        if !available() {
            return;
        }
        let mut rng = Rng::new(7);
        for _ in 0..10_000 {
            let bits = rng.next_u64();
            let index: [i32; 8] = std::array::from_fn(|_| rng.below(64) as i32);
            let expected = (0..8).fold(0u8, |m, l| m | (((bits >> index[l]) & 1) as u8) << l);
            // SAFETY: AVX2 is available (checked above).
            let looked_up = unsafe { target_bits(bits, _mm256_loadu_si256(index.as_ptr().cast())) };
            assert_eq!(looked_up, expected, "bits {bits:#x}, indices {index:?}");
        }
    }
}
