//! The section walks with AVX-512 (x86-64, chosen at run time): the same arithmetic as
//! [`super::forward`] and [`super::backward`], bit for bit. Where a walk stops is one vector
//! comparison of the section's border prefix sums with the potential instead of a loop that
//! exits on the data.
//!
//! - Forward, the planned walks of `planned` with this module's search of where each signal
//!   ends (on `f32` copies of the prefix sums, sixteen at a time, confirmed on one exact sum,
//!   and kept for the backward walk of the same cycle) and its copies of the passed synapses
//!   into the queue of adds.
//! - Request batches walk a section for up to 16 rows at once, one row per lane, each lane's
//!   terms added in processing order (`walk_group`); the synapses where the lanes' signals
//!   end are taken after the walk, lane after lane (`end_lanes`).
//! - Backward, the walk ends where the forward walk ended (unless that one was clamped to
//!   the section's range or grew); the weight updates and error terms of 16 synapses are
//!   computed at once, with the targets' deltas and potentials looked up in registers. The
//!   error terms are stored sixteen at a time and still added one by one in synapse order,
//!   all sixteen of each stored vector whatever the walk's length (the lanes past its end
//!   hold `−0.0`, which changes no sum).
//!
//! - Around the walks, sixteen values at a time: the neuron updates with their `log2`
//!   (`log2_where`, the bits of `super::log2`), the injection's firing test, and which lanes
//!   of a request batch's group of rows fired each neuron.
//!
//! (Adding the forward weights in registers too, 64 targets at a time, was measured and was
//! slower than the scalar adds of the ~22 synapses a walk passes; see `docs/benchmarks.md`.)

use std::arch::x86_64::{
    __m256, __m512, __m512d, __m512i, _CMP_GT_OQ, _CMP_LT_OQ, _CMP_NLE_UQ, _mm_loadu_si128,
    _mm256_castpd_ps, _mm256_castps_pd, _mm512_add_epi32, _mm512_add_epi64, _mm512_add_pd,
    _mm512_add_ps, _mm512_and_si512, _mm512_castpd_ps, _mm512_castpd_si512, _mm512_castps_pd,
    _mm512_castps_si512, _mm512_castps256_ps512, _mm512_castps512_ps256, _mm512_castsi512_pd,
    _mm512_castsi512_ps, _mm512_castsi512_si256, _mm512_cmp_pd_mask, _mm512_cmp_ps_mask,
    _mm512_cmpeq_epi32_mask, _mm512_cmpge_epu32_mask, _mm512_cvtepi32_pd, _mm512_cvtepu8_epi32,
    _mm512_cvtepu32_epi64, _mm512_cvtpd_ps, _mm512_cvtps_pd, _mm512_div_ps, _mm512_extractf64x4_pd,
    _mm512_extracti64x4_epi64, _mm512_fmadd_pd, _mm512_fmsub_pd, _mm512_i32gather_epi32,
    _mm512_i32gather_ps, _mm512_insertf64x4, _mm512_loadu_pd, _mm512_loadu_ps, _mm512_loadu_si512,
    _mm512_mask_add_ps, _mm512_mask_blend_epi32, _mm512_mask_blend_epi64, _mm512_mask_blend_ps,
    _mm512_mask_i32gather_ps, _mm512_mask_loadu_pd, _mm512_mask_loadu_ps, _mm512_mask_storeu_ps,
    _mm512_mask_sub_epi32, _mm512_mask_sub_pd, _mm512_maskz_add_ps, _mm512_maskz_loadu_ps,
    _mm512_mul_pd, _mm512_mul_ps, _mm512_mullo_epi32, _mm512_permutex2var_epi64,
    _mm512_permutex2var_pd, _mm512_permutex2var_ps, _mm512_set1_epi8, _mm512_set1_epi32,
    _mm512_set1_epi64, _mm512_set1_pd, _mm512_set1_ps, _mm512_setr_epi32, _mm512_setzero_ps,
    _mm512_setzero_si512, _mm512_slli_epi64, _mm512_srai_epi32, _mm512_srli_epi32,
    _mm512_storeu_ps, _mm512_storeu_si512, _mm512_sub_epi32, _mm512_sub_pd, _mm512_sub_ps,
    _mm512_test_epi32_mask, _mm512_test_epi64_mask, _mm512_xor_si512,
};

use super::backward::SYNAPSE_LEARNING_RATE;
use super::forward::{NeuronParams, THRESHOLD, target_index};
use super::planned::{self, QueuedSection};
use super::rows::{GroupSources, LANES, LaneSums, end_lanes, walk_group_lanes};
use super::{BlockTask, Sources};
use super::{exp, log2};
use crate::network::{
    Connection, ConnectionBlock, NEURONS_PER_BLOCK, Neuron, SYNAPSES_PER_SECTION, Section,
    WALK_THRESHOLD, bits, low_bits,
};

/// Whether this CPU has the instructions the walk uses.
pub(crate) fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

/// 64 `f32` values, one per neuron of a block, in four registers.
type Row = [__m512; 4];

/// Loads 64 values.
#[inline]
#[target_feature(enable = "avx512f")]
fn load_row(values: &[f32; NEURONS_PER_BLOCK]) -> Row {
    // SAFETY: each load reads 16 values inside the array.
    std::array::from_fn(|j| unsafe { _mm512_loadu_ps(values.as_ptr().add(16 * j)) })
}

/// `table[index]` in every lane, for indices below 64 (only the low 6 bits count).
#[inline]
#[target_feature(enable = "avx512f")]
fn lookup(table: &Row, index: __m512i) -> __m512 {
    let low = _mm512_permutex2var_ps(table[0], index, table[1]);
    let high = _mm512_permutex2var_ps(table[2], index, table[3]);
    let upper = _mm512_test_epi32_mask(index, _mm512_set1_epi32(32));
    _mm512_mask_blend_ps(upper, low, high)
}

/// 16 bytes from `bytes[16 * part..]`, widened to 32-bit lanes.
#[inline]
#[target_feature(enable = "avx512f")]
fn widen(bytes: &[u8; 64], part: usize) -> __m512i {
    assert!(part < 4);
    // SAFETY: `part < 4`, so the 16 bytes lie inside the array.
    _mm512_cvtepu8_epi32(unsafe { _mm_loadu_si128(bytes.as_ptr().add(16 * part).cast()) })
}

/// Where one 4-byte field (at byte `offset` in a [`Neuron`]) of sixteen consecutive neuron
/// records lies, in 4-byte words from the first record: the offsets of a gather.
#[inline]
#[target_feature(enable = "avx512f")]
fn neuron_field(offset: usize) -> __m512i {
    const WORDS: i32 = (std::mem::size_of::<Neuron>() / 4) as i32;
    _mm512_add_epi32(
        _mm512_mullo_epi32(
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            _mm512_set1_epi32(WORDS),
        ),
        _mm512_set1_epi32((offset / 4) as i32),
    )
}

/// The neuron update (`forward::update_neurons`) of 16, 32, 48 or 64 neurons, sixteen at a
/// time, with the same arithmetic: returns the neurons that fired as a bit mask.
#[target_feature(enable = "avx512f")]
pub(super) fn update_neurons(
    neurons: &mut [Neuron],
    potentials: &mut [f32],
    params: &NeuronParams,
) -> u64 {
    let count = neurons.len();
    assert!(
        count <= 64 && count.is_multiple_of(16) && potentials.len() == count,
        "whole groups of sixteen neurons"
    );
    let input_at = neuron_field(std::mem::offset_of!(Neuron, input));
    let refractory_at = neuron_field(std::mem::offset_of!(Neuron, refractory));
    let mut active = 0u64;
    for j in 0..count / 16 {
        let group = &mut neurons[16 * j..16 * (j + 1)];
        let base = group.as_ptr().cast::<u8>();
        // SAFETY: the offsets address the `input` and `refractory` fields (both 4 bytes, at
        // 4-byte-aligned offsets) of the group's 16 neurons.
        let (input, refractory) = unsafe {
            (
                _mm512_i32gather_ps::<4>(input_at, base.cast()),
                _mm512_i32gather_epi32::<4>(refractory_at, base.cast()),
            )
        };
        // SAFETY: 16 potentials inside the slice (`16 · (j + 1) ≤ count`).
        let potential = unsafe { _mm512_loadu_ps(potentials.as_ptr().add(16 * j)) };
        let (value, refractory, fired) = update_sixteen(potential, refractory, input, params);
        // SAFETY: as for the load.
        unsafe { _mm512_storeu_ps(potentials.as_mut_ptr().add(16 * j), value) };
        let mut countdowns = [0u32; 16];
        // SAFETY: sixteen values.
        unsafe { _mm512_storeu_si512(countdowns.as_mut_ptr().cast(), refractory) };
        for (neuron, &refractory) in group.iter_mut().zip(&countdowns) {
            *neuron = Neuron {
                input: 0.0,
                delta: 0.0,
                new_lower_bound: 0.0,
                potential_range: f32::MAX,
                refractory,
            };
        }
        active |= u64::from(fired) << (16 * j);
    }
    log2_where(potentials, active);
    active
}

/// The neuron update (`forward::update_values`) of a block held as separate values, sixteen
/// at a time, with the arithmetic of [`update_neurons`]: returns the neurons that fired.
#[target_feature(enable = "avx512f")]
pub(super) fn update_values(
    inputs: &[f32; NEURONS_PER_BLOCK],
    refractory: &mut [u32; NEURONS_PER_BLOCK],
    potentials: &mut [f32; NEURONS_PER_BLOCK],
    params: &NeuronParams,
) -> u64 {
    let mut active = 0u64;
    for j in 0..NEURONS_PER_BLOCK / 16 {
        // SAFETY: sixteen values inside each array of 64 (`16 · (j + 1) ≤ 64`).
        let (potential, countdown, input) = unsafe {
            (
                _mm512_loadu_ps(potentials.as_ptr().add(16 * j)),
                _mm512_loadu_si512(refractory.as_ptr().add(16 * j).cast()),
                _mm512_loadu_ps(inputs.as_ptr().add(16 * j)),
            )
        };
        let (value, countdown, fired) = update_sixteen(potential, countdown, input, params);
        // SAFETY: as for the loads.
        unsafe {
            _mm512_storeu_ps(potentials.as_mut_ptr().add(16 * j), value);
            _mm512_storeu_si512(refractory.as_mut_ptr().add(16 * j).cast(), countdown);
        }
        active |= u64::from(fired) << (16 * j);
    }
    log2_where(potentials, active);
    active
}

/// The update of sixteen neurons from their potentials, refractory countdowns and summed
/// inputs, before the activation's logarithm: the new potentials (`p + 1` where a neuron
/// fired, else 0), the new countdowns and the neurons that fired.
#[inline]
#[target_feature(enable = "avx512f")]
fn update_sixteen(
    potential: __m512,
    refractory: __m512i,
    input: __m512,
    params: &NeuronParams,
) -> (__m512, __m512i, u16) {
    let (zero, one) = (_mm512_setzero_si512(), _mm512_set1_epi32(1));
    let p = _mm512_div_ps(potential, _mm512_set1_ps(params.cooldown));
    // The countdown stops at 0.
    let counting = _mm512_test_epi32_mask(refractory, refractory);
    let refractory = _mm512_mask_sub_epi32(refractory, counting, refractory, one);
    let ready = _mm512_cmpeq_epi32_mask(refractory, zero);
    // (The scalar update adds +0.0 to the others, which changes only −0.0, and that does
    // not fire either way.)
    let p = _mm512_mask_add_ps(
        p,
        ready,
        p,
        _mm512_mul_ps(_mm512_set1_ps(params.overflow), input),
    );
    let refractory = _mm512_mask_blend_epi32(
        ready,
        refractory,
        _mm512_set1_epi32(params.refractory_time as i32),
    );
    let fired = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(p, _mm512_setzero_ps());
    (
        _mm512_maskz_add_ps(fired, p, _mm512_set1_ps(1.0)),
        refractory,
        fired,
    )
}

/// `sigmoid` (`super::exp::sigmoid`, the same bits) of sixteen values.
#[target_feature(enable = "avx512f")]
pub(super) fn sigmoid_lanes(x: __m512) -> __m512 {
    let table: [__m512i; 4] = std::array::from_fn(|q| {
        let entries: [u64; 8] = std::array::from_fn(|i| exp::table(8 * q + i));
        // SAFETY: eight values inside the array.
        unsafe { _mm512_loadu_si512(entries.as_ptr().cast()) }
    });
    let (inv_ln2_n, shift) = (
        _mm512_set1_pd(exp::inv_ln2_n()),
        _mm512_set1_pd(exp::shift()),
    );
    let c: [__m512d; 3] = std::array::from_fn(|i| _mm512_set1_pd(exp::poly(i)));
    // `-x` flips the sign bit (also of zeros, which `0 − x` would not).
    let minus_x = _mm512_castsi512_ps(_mm512_xor_si512(
        _mm512_castps_si512(x),
        _mm512_set1_epi32(i32::MIN),
    ));
    let half = |part: usize| -> __m256 {
        let lanes = if part == 0 {
            _mm512_castps512_ps256(minus_x)
        } else {
            _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(minus_x)))
        };
        let xd = _mm512_cvtps_pd(lanes);
        let kd = _mm512_fmadd_pd(inv_ln2_n, xd, shift);
        let ki = _mm512_castpd_si512(kd);
        let kd = _mm512_sub_pd(kd, shift);
        let r = _mm512_fmsub_pd(inv_ln2_n, xd, kd);
        let index = _mm512_and_si512(ki, _mm512_set1_epi64(31));
        let low = _mm512_permutex2var_epi64(table[0], index, table[1]);
        let high = _mm512_permutex2var_epi64(table[2], index, table[3]);
        let upper = _mm512_test_epi64_mask(index, _mm512_set1_epi64(16));
        let entry = _mm512_mask_blend_epi64(upper, low, high);
        let s = _mm512_castsi512_pd(_mm512_add_epi64(entry, _mm512_slli_epi64::<47>(ki)));
        let z = _mm512_fmadd_pd(c[0], r, c[1]);
        let r2 = _mm512_mul_pd(r, r);
        let y = _mm512_fmadd_pd(c[2], r, _mm512_set1_pd(1.0));
        let y = _mm512_fmadd_pd(z, r2, y);
        _mm512_cvtpd_ps(_mm512_mul_pd(y, s))
    };
    let e = join_halves(half(0), half(1));
    let one = _mm512_set1_ps(1.0);
    let result = _mm512_div_ps(one, _mm512_add_ps(one, e));
    // Lanes where `exp` takes the platform's (|x| ≥ 88, infinities, NaN).
    let top = _mm512_and_si512(
        _mm512_srli_epi32::<20>(_mm512_castps_si512(minus_x)),
        _mm512_set1_epi32(0x7ff),
    );
    let outside = _mm512_cmpge_epu32_mask(top, _mm512_set1_epi32(0x42b));
    if outside == 0 {
        return result;
    }
    let mut values = [0.0f32; 16];
    let mut inputs = [0.0f32; 16];
    // SAFETY: sixteen values each.
    unsafe {
        _mm512_storeu_ps(values.as_mut_ptr(), result);
        _mm512_storeu_ps(inputs.as_mut_ptr(), x);
    }
    for lane in bits(u64::from(outside)) {
        values[lane] = exp::sigmoid(inputs[lane]);
    }
    // SAFETY: sixteen values.
    unsafe { _mm512_loadu_ps(values.as_ptr()) }
}

/// `sigmoid_lanes` of an array.
#[target_feature(enable = "avx512f")]
pub(super) fn sigmoid_array(values: &[f32; 16]) -> [f32; 16] {
    let mut out = [0.0f32; 16];
    // SAFETY: sixteen values each.
    unsafe {
        let x = _mm512_loadu_ps(values.as_ptr());
        _mm512_storeu_ps(out.as_mut_ptr(), sigmoid_lanes(x));
    }
    out
}

/// The potentials of a block of output-hexagon neurons (`output::output_potentials`), sixteen
/// at a time: `sigmoid` of the summed inputs, gathered from the neuron records. Leaves the
/// inputs as they are.
#[target_feature(enable = "avx512f")]
pub(super) fn output_potentials(neurons: &[Neuron], potentials: &mut [f32]) {
    let count = neurons.len();
    assert!(
        count.is_multiple_of(16) && potentials.len() == count,
        "whole groups of sixteen neurons"
    );
    let input_at = neuron_field(std::mem::offset_of!(Neuron, input));
    for (group, potentials) in neurons.chunks(16).zip(potentials.chunks_mut(16)) {
        // SAFETY: the offsets address the `input` fields (4 bytes, 4-byte aligned) of the
        // group's 16 neurons; 16 potentials lie in the chunk.
        unsafe {
            let input = _mm512_i32gather_ps::<4>(input_at, group.as_ptr().cast::<u8>().cast());
            _mm512_storeu_ps(potentials.as_mut_ptr(), sigmoid_lanes(input));
        }
    }
}

/// Replaces `values[j]` by `log2(values[j])` (`log2::log2`, the same bits) for every bit `j`
/// set in `which`, sixteen values at a time; up to 64 values.
#[target_feature(enable = "avx512f")]
pub(super) fn log2_where(values: &mut [f32], which: u64) {
    assert!(values.len() <= 64, "at most 64 values");
    let which = which & low_bits(values.len());
    let (minus_one, one) = (
        _mm512_set1_pd(-1.0),
        _mm512_set1_epi32(1.0f32.to_bits() as i32),
    );
    let table = |column: fn(usize) -> f64| -> [__m512d; 2] {
        let entries: [f64; 16] = std::array::from_fn(column);
        // SAFETY: eight values each, inside the array.
        unsafe {
            [
                _mm512_loadu_pd(entries.as_ptr()),
                _mm512_loadu_pd(entries.as_ptr().add(8)),
            ]
        }
    };
    let invc = table(|i| log2::table(i).0);
    let logc = table(|i| log2::table(i).1);
    let a: [__m512d; 4] = std::array::from_fn(|i| _mm512_set1_pd(log2::poly(i)));
    for j in 0..values.len().div_ceil(16) {
        let lanes = (which >> (16 * j)) as u16;
        if lanes == 0 {
            continue;
        }
        // SAFETY: `16 · j < len`; the lanes outside `lanes`, possibly beyond the end, are not
        // read or written.
        let x = unsafe { _mm512_maskz_loadu_ps(lanes, values.as_ptr().add(16 * j)) };
        let raw = _mm512_castps_si512(x);
        let tmp = _mm512_sub_epi32(raw, _mm512_set1_epi32(log2::OFFSET as i32));
        let index = _mm512_and_si512(_mm512_srli_epi32::<19>(tmp), _mm512_set1_epi32(15));
        let top = _mm512_and_si512(tmp, _mm512_set1_epi32(0xff80_0000u32 as i32));
        let z = _mm512_castsi512_ps(_mm512_sub_epi32(raw, top));
        let k = _mm512_srai_epi32::<23>(tmp);
        let half = |part: usize| -> __m256 {
            let (index, z, k) = if part == 0 {
                (
                    _mm512_castsi512_si256(index),
                    _mm512_castps512_ps256(z),
                    _mm512_castsi512_si256(k),
                )
            } else {
                (
                    _mm512_extracti64x4_epi64::<1>(index),
                    _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(z))),
                    _mm512_extracti64x4_epi64::<1>(k),
                )
            };
            let index = _mm512_cvtepu32_epi64(index);
            let invc = _mm512_permutex2var_pd(invc[0], index, invc[1]);
            let logc = _mm512_permutex2var_pd(logc[0], index, logc[1]);
            let r = _mm512_fmadd_pd(_mm512_cvtps_pd(z), invc, minus_one);
            let y0 = _mm512_add_pd(logc, _mm512_cvtepi32_pd(k));
            let r2 = _mm512_mul_pd(r, r);
            let y = _mm512_fmadd_pd(a[1], r, a[2]);
            let y = _mm512_fmadd_pd(a[0], r2, y);
            let p = _mm512_fmadd_pd(a[3], r, y0);
            _mm512_cvtpd_ps(_mm512_fmadd_pd(y, r2, p))
        };
        let result = join_halves(half(0), half(1));
        // log2(1) is 0 exactly; values outside the method's range take the scalar path.
        let result = _mm512_mask_blend_ps(
            _mm512_cmpeq_epi32_mask(raw, one),
            result,
            _mm512_setzero_ps(),
        );
        let outside = lanes
            & _mm512_cmpge_epu32_mask(
                _mm512_sub_epi32(raw, _mm512_set1_epi32(0x0080_0000)),
                _mm512_set1_epi32(0x7f80_0000 - 0x0080_0000),
            );
        // SAFETY: as for the load.
        unsafe { _mm512_mask_storeu_ps(values.as_mut_ptr().add(16 * j), lanes & !outside, result) };
        for lane in bits(u64::from(outside)) {
            let v = &mut values[16 * j + lane];
            *v = log2::log2(*v);
        }
    }
}

/// Bit `j` set: `values[j] > 0.0` (false for NaN), for up to 64 values.
#[target_feature(enable = "avx512f")]
pub(super) fn positive_bits(values: &[f32]) -> u64 {
    assert!(values.len() <= 64, "at most 64 values");
    let wanted = low_bits(values.len());
    let mut bits = 0u64;
    for j in 0..values.len().div_ceil(16) {
        let load = (wanted >> (16 * j)) as u16;
        // SAFETY: `16 · j < len`, so the pointer lies inside the slice; the lanes outside
        // `load`, beyond its end, are not read.
        let values = unsafe { _mm512_maskz_loadu_ps(load, values.as_ptr().add(16 * j)) };
        let positive = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(values, _mm512_setzero_ps());
        bits |= u64::from(positive & load) << (16 * j);
    }
    bits
}

/// Bit `k` set: the signal leaves more than the walk threshold after synapse `k`
/// (`ends[k] < threshold`, false for NaN, like [`crate::network::passes`]), for the `len`
/// synapses of the chain.
#[inline]
#[target_feature(enable = "avx512f")]
fn passed(section: &Section, len: usize, threshold: f64) -> u64 {
    let bound = _mm512_set1_pd(threshold);
    let beyond = _mm512_set1_pd(f64::INFINITY);
    let wanted = low_bits(len);
    let mut mask = 0u64;
    for j in 0..SYNAPSES_PER_SECTION / 8 {
        let load = (wanted >> (8 * j)) as u8;
        // SAFETY: the eight values lie inside `ends`; lanes outside `load` are not read.
        let ends = unsafe { _mm512_mask_loadu_pd(beyond, load, section.ends.as_ptr().add(8 * j)) };
        mask |= u64::from(_mm512_cmp_pd_mask::<_CMP_LT_OQ>(ends, bound)) << (8 * j);
    }
    mask
}

/// How many synapses a signal passes fully: the positions `k` of the chain before the first
/// with `ends[k] < threshold` false (false for NaN), like `passed`. Searched on the rounded
/// ends (16 at a time) and confirmed with one exact end; searched again on the exact ends in
/// the rare case that an end rounds to the threshold itself.
#[inline]
#[target_feature(enable = "avx512f")]
pub(super) fn reach(section: &Section, len: usize, threshold: f64) -> usize {
    let bound = _mm512_set1_ps(threshold as f32);
    let beyond = _mm512_set1_ps(f32::INFINITY);
    let wanted = low_bits(len);
    let mut mask = 0u64;
    for j in 0..SYNAPSES_PER_SECTION / 16 {
        let load = (wanted >> (16 * j)) as u16;
        // SAFETY: the sixteen values lie inside `rounded_ends`; lanes outside `load` are not
        // read.
        let ends = unsafe {
            _mm512_mask_loadu_ps(beyond, load, section.rounded_ends.as_ptr().add(16 * j))
        };
        mask |= u64::from(_mm512_cmp_ps_mask::<_CMP_LT_OQ>(ends, bound)) << (16 * j);
    }
    // Every end before `guess` rounds below the rounded threshold, so it lies below the exact
    // one (rounding keeps the order); the end at `guess` may round to the threshold itself.
    let guess = (!mask).trailing_zeros() as usize;
    if guess < len && section.ends[guess] < threshold {
        (!passed(section, len, threshold)).trailing_zeros() as usize
    } else {
        guess
    }
}

/// The forward walks of one block (`forward::process_synapses`), planned
/// (`planned::process_synapses`).
#[target_feature(enable = "avx512f")]
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

/// Copies a section's target slots and its first `reach` weights into the queue
/// (`planned::Adds::passed`); the other weights are written as 0 without being read.
#[inline]
#[target_feature(enable = "avx512f")]
pub(super) fn copy_passed(section: &Section, reach: usize, queued: &mut QueuedSection<'_>) {
    let wanted = low_bits(reach);
    // SAFETY: 64 target bytes and four times 16 weights inside the section's arrays and the
    // queue's arrays of 64; weights outside `wanted` are not read.
    unsafe {
        let targets = _mm512_loadu_si512(section.target.as_ptr().cast());
        let index_bits = _mm512_set1_epi8((NEURONS_PER_BLOCK - 1) as i8);
        _mm512_storeu_si512(
            queued.slots.as_mut_ptr().cast(),
            _mm512_and_si512(targets, index_bits),
        );
        for j in 0..SYNAPSES_PER_SECTION / 16 {
            let weights = _mm512_maskz_loadu_ps(
                (wanted >> (16 * j)) as u16,
                section.weight.as_ptr().add(16 * j),
            );
            _mm512_storeu_ps(queued.values.as_mut_ptr().add(16 * j).cast(), weights);
        }
    }
}

/// The forward walks of a hexagon (connection blocks `blocks`, `dim` of them per neuron block)
/// for the rows of one group at once, one row per lane, for requests that leave the network
/// as it is: every row's walks add to its lane of `sums` (neuron `n` of the hexagon has lanes
/// `LANES·n..`) in processing order, each target's terms in synapse order, so every lane gets
/// the bits of [`super::forward::walk_block_frozen`]. Returns the lanes whose request would
/// grow (their sums are then incomplete).
///
/// One pass over a section serves all rows whose source fired: the loop runs to where the
/// farthest signal ends, adding the weights each signal passes fully (a lane mask instead of
/// a branch); what the synapses where the signals end add is computed after the loop, lane
/// after lane (the lanes end at different synapses, and a branch at each of them was guessed
/// wrong often).
#[target_feature(enable = "avx512f")]
pub(super) fn walk_group(
    blocks: &[ConnectionBlock],
    dim: usize,
    sources: &GroupSources<'_>,
    growth: bool,
    sums: &mut [f32],
) -> u16 {
    let lane_numbers = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    let load_sources = |sources: &GroupSources<'_>, hexagon: u32, neuron: u32, lanes: u16| {
        let (potentials, neurons) = sources.potentials(hexagon);
        let offsets = _mm512_add_epi32(
            _mm512_mullo_epi32(lane_numbers, _mm512_set1_epi32(neurons as i32)),
            _mm512_set1_epi32(neuron as i32),
        );
        // SAFETY: the lanes in `lanes` are rows of the group, whose potentials lie inside
        // `potentials` (`GroupSources::potentials`); the other lanes are not read. The `i32`
        // offsets do not wrap: 16 rows of a hexagon's neurons (at most an input interface's
        // `MAX_INPUTS` + 64 for an input hexagon, far fewer for the others) stay below 2^31.
        unsafe {
            _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), lanes, offsets, potentials.as_ptr())
        }
    };
    let walk =
        |section: &Section, connection: &Connection, potential, lanes, able, sums: &mut _| {
            walk_lanes(section, connection, potential, lanes, able, sums)
        };
    walk_group_lanes(blocks, dim, sources, growth, sums, load_sources, walk)
}

/// Transposes a block's firing bits for a group of rows: bit `j` of `words[l]` (whether the
/// row in lane `l` fired neuron `j`) becomes bit `l` of `neurons[j]`.
#[target_feature(enable = "avx512f")]
pub(super) fn transpose_lanes(words: &[u64; LANES], neurons: &mut [u16; NEURONS_PER_BLOCK]) {
    // SAFETY: two loads of eight words inside the array.
    let (low, high) = unsafe {
        (
            _mm512_loadu_si512(words.as_ptr().cast()),
            _mm512_loadu_si512(words.as_ptr().add(8).cast()),
        )
    };
    for (j, neuron) in neurons.iter_mut().enumerate() {
        let bit = _mm512_set1_epi64(1 << j);
        *neuron = join(
            _mm512_test_epi64_mask(low, bit),
            _mm512_test_epi64_mask(high, bit),
        );
    }
}

/// Two masks of eight lanes as one of sixteen.
#[inline]
fn join(low: u8, high: u8) -> u16 {
    u16::from(low) | u16::from(high) << 8
}

/// The 16 lanes of two halves of eight.
#[inline]
#[target_feature(enable = "avx512f")]
fn join_halves(low: __m256, high: __m256) -> __m512 {
    _mm512_castpd_ps(_mm512_insertf64x4::<1>(
        _mm512_castps_pd(_mm512_castps256_ps512(low)),
        _mm256_castps_pd(high),
    ))
}

/// [`walk_lanes`] for the potentials of an array (for the tests).
#[cfg(test)]
#[target_feature(enable = "avx512f")]
pub(super) fn walk_lanes_of(
    section: &Section,
    connection: &Connection,
    potentials: &[f32; LANES],
    lanes: u16,
    able: bool,
    sums: &mut LaneSums,
) -> u16 {
    // SAFETY: sixteen values inside the array.
    let potential = unsafe { _mm512_loadu_ps(potentials.as_ptr()) };
    walk_lanes(section, connection, potential, lanes, able, sums)
}

/// One section walked for the rows in `lanes`, each with its source's `potential`: the
/// arithmetic of `plan` and the adds of `walk_block_frozen`, lane by lane. Returns the lanes
/// whose walk would grow if `able`.
#[inline]
#[target_feature(enable = "avx512f")]
fn walk_lanes(
    section: &Section,
    connection: &Connection,
    potential: __m512,
    lanes: u16,
    able: bool,
    sums: &mut LaneSums,
) -> u16 {
    let range = _mm512_set1_ps(connection.range);
    let remaining = _mm512_sub_ps(potential, _mm512_set1_ps(connection.lower_bound));
    let remaining = _mm512_mask_blend_ps(
        _mm512_cmp_ps_mask::<_CMP_GT_OQ>(remaining, range),
        remaining,
        range,
    );
    // A potential at or below the threshold drives nothing (NaN goes on, as in the one-row
    // walks).
    let alive =
        lanes & _mm512_cmp_ps_mask::<_CMP_NLE_UQ>(remaining, _mm512_set1_ps(WALK_THRESHOLD));
    if alive == 0 {
        return 0;
    }
    let start_low = _mm512_cvtps_pd(_mm512_castps512_ps256(remaining));
    let start_high = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(
        _mm512_castps_pd(remaining),
    )));
    let threshold = _mm512_set1_pd(THRESHOLD);
    // The lanes that are not alive compare with −∞, so that they never pass a synapse and
    // the loop's masks need no `alive &`.
    let nowhere = _mm512_set1_pd(f64::NEG_INFINITY);
    let bound_low = _mm512_mask_sub_pd(nowhere, alive as u8, start_low, threshold);
    let bound_high = _mm512_mask_sub_pd(nowhere, (alive >> 8) as u8, start_high, threshold);
    let len = usize::from(connection.len).min(SYNAPSES_PER_SECTION);
    // Per lane, how many synapses its signal passes fully.
    let mut walked = _mm512_setzero_si512();
    // Hidden from the optimiser, which would otherwise turn the adds of −0.0 back into
    // masked stores.
    let unchanged = std::hint::black_box(_mm512_set1_ps(-0.0));
    for pos in 0..len {
        let end = _mm512_set1_pd(section.ends[pos]);
        // Lanes whose signal leaves more than the threshold after this synapse (the ends
        // never decrease, so these passed the synapses before it too).
        let still = join(
            _mm512_cmp_pd_mask::<_CMP_LT_OQ>(end, bound_low),
            _mm512_cmp_pd_mask::<_CMP_LT_OQ>(end, bound_high),
        );
        // The other lanes add −0.0, which leaves every value as it is; so the store is a
        // whole one, which a load of the same target in a later step can take its value
        // from (a masked store would make that load wait). A lane whose signal ends in this
        // synapse adds its value after the loop: it adds nothing else to this section's
        // targets before then, so each target still gets its terms in synapse order.
        let value = _mm512_mask_blend_ps(still, unchanged, _mm512_set1_ps(section.weight[pos]));
        let target = &mut sums[target_index(section.target[pos]) * LANES..][..LANES];
        // SAFETY: the 16 values lie inside `target`.
        unsafe {
            let sum = _mm512_loadu_ps(target.as_ptr());
            _mm512_storeu_ps(target.as_mut_ptr(), _mm512_add_ps(sum, value));
        }
        walked = _mm512_mask_sub_epi32(walked, still, walked, _mm512_set1_epi32(-1));
        if still == 0 {
            break;
        }
    }
    // The signals that passed every synapse (the loop ends early only where none does);
    // such a signal outlasts the chain and grows it.
    let passing = alive & _mm512_cmpeq_epi32_mask(walked, _mm512_set1_epi32(len as i32));
    let lanes = || {
        let mut ats = [0u32; LANES];
        let mut starts = [0.0f32; LANES];
        // SAFETY: sixteen values stored into arrays of sixteen.
        unsafe {
            _mm512_storeu_si512(ats.as_mut_ptr().cast(), walked);
            _mm512_storeu_ps(starts.as_mut_ptr(), remaining);
        }
        (ats, starts)
    };
    end_lanes(section, connection, (alive, passing, able), lanes, sums)
}

/// The backward walks of one block (`backward::backprop_sections`) with vector updates
/// (`planned::backprop_sections`).
#[target_feature(enable = "avx512f")]
pub(super) fn backprop_sections(task: &mut BlockTask<'_>, sources: &Sources<'_>) {
    let deltas: [f32; NEURONS_PER_BLOCK] = std::array::from_fn(|j| task.neurons[j].delta);
    let deltas = load_row(&deltas);
    let potentials: &[f32; NEURONS_PER_BLOCK] = (&*task.potentials)
        .try_into()
        .expect("a neuron block has 64 neurons");
    let potentials = load_row(potentials);
    let reach = |section: &Section, len, threshold| {
        (!passed(section, len, threshold)).trailing_zeros() as usize
    };
    let update = |section: &mut Section, visited, terms: Option<&mut Vec<f32>>| {
        update_weights(section, visited, &deltas, &potentials, terms)
    };
    planned::backprop_sections(task, sources, reach, update);
}

/// The weight updates of the first `visited` synapses (`w −= 0.05 · δ[target]`). Appends the
/// source's error terms `δ[target] · w` (old weights) to `terms` if given. Returns the
/// visited synapses whose weight sign (before the update) agrees with whether their target
/// is active, as a bit mask (only if the section has unsettled counters, else 0), and the
/// appended terms added one by one in synapse order to `+0.0` (`+0.0` without terms).
#[inline]
#[target_feature(enable = "avx512f")]
fn update_weights(
    section: &mut Section,
    visited: usize,
    deltas: &Row,
    potentials: &Row,
    mut terms: Option<&mut Vec<f32>>,
) -> (u64, f32) {
    // The raw accesses below rely on `j < 4`.
    let visited = visited.min(SYNAPSES_PER_SECTION);
    let rate = _mm512_set1_ps(SYNAPSE_LEARNING_RATE);
    let zero = _mm512_setzero_ps();
    let counted = section.unsettled != 0;
    let mut agree = 0u64;
    let mut sum = 0.0f32;
    if let Some(terms) = terms.as_deref_mut() {
        terms.reserve(SYNAPSES_PER_SECTION);
    }
    for j in 0..visited.div_ceil(16) {
        let take = (low_bits(visited) >> (16 * j)) as u16;
        let index = widen(&section.target, j);
        let delta = lookup(deltas, index);
        // SAFETY: 16 weights inside the array (`j < 4`).
        let weight = unsafe { _mm512_loadu_ps(section.weight.as_ptr().add(16 * j)) };
        if counted {
            let active = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(lookup(potentials, index), zero);
            let positive = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(weight, zero);
            agree |= u64::from(!(active ^ positive) & take) << (16 * j);
        }
        if let Some(terms) = terms.as_deref_mut() {
            // All 16 lanes are written, those from `visited` on as `−0.0` (beyond the length
            // set below), and all 16 are added: `−0.0` leaves every sum as it is, and the
            // number of adds no longer depends on where the walk ended, which the CPU
            // guesses wrong at almost every section. The adds read the lanes back from this
            // store, which they get at once (a masked store would make them wait until it
            // has reached the cache).
            let lanes =
                _mm512_mask_blend_ps(take, _mm512_set1_ps(-0.0), _mm512_mul_ps(delta, weight));
            // SAFETY: the vector has room for 64 more values (reserved above), and `j < 4`;
            // the 16 values read are those just written.
            unsafe {
                let stored = terms.as_mut_ptr().add(terms.len() + 16 * j);
                _mm512_storeu_ps(stored, lanes);
                for lane in 0..16 {
                    sum += *stored.add(lane);
                }
            }
        }
        let updated = _mm512_sub_ps(weight, _mm512_mul_ps(rate, delta));
        // SAFETY: 16 weights inside the array; only the visited lanes are written.
        unsafe { _mm512_mask_storeu_ps(section.weight.as_mut_ptr().add(16 * j), take, updated) };
    }
    if let Some(terms) = terms {
        // SAFETY: the `visited` values after the old length were written above.
        unsafe { terms.set_len(terms.len() + visited) };
    }
    (agree, sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_logarithms_are_the_scalar_ones() {
        if !available() {
            return;
        }
        let specials = [
            1.0,
            0.0,
            -0.0,
            -3.0,
            f32::INFINITY,
            f32::NAN,
            1e-40,
            f32::MAX,
            f32::MIN_POSITIVE,
            1.0 + f32::EPSILON,
        ];
        let mut state = 0x9e37_79b9u32;
        let mut values = Vec::with_capacity(64);
        let mut compared = 0;
        for round in 0..50_000u32 {
            let len = 1 + round as usize % 64;
            values.clear();
            for j in 0..len {
                state = crate::rng::pcg_hash(state);
                values.push(if state.is_multiple_of(17) {
                    specials[j % specials.len()]
                } else {
                    // Anything from 1 to f32::MAX, as `1 + p` of a neuron that fired.
                    f32::from_bits(0x3f80_0000 + state % (0x7f80_0000 - 0x3f80_0000))
                });
            }
            state = crate::rng::pcg_hash(state);
            let which = u64::from(state) << 32 | u64::from(crate::rng::pcg_hash(state));
            let before = values.clone();
            // SAFETY: the CPU has AVX-512 (checked above).
            unsafe { log2_where(&mut values, which) };
            for (j, (&after, &x)) in values.iter().zip(&before).enumerate() {
                let expected = if which >> j & 1 == 1 {
                    log2::log2(x)
                } else {
                    x
                };
                assert_eq!(after.to_bits(), expected.to_bits(), "log2({x}), lane {j}");
                compared += 1;
            }
        }
        assert!(compared > 1_000_000);
    }

    /// Every `f32` from 1 to infinity (all a neuron can take the logarithm of), 64 at a time.
    #[test]
    fn vector_logarithms_are_the_scalar_ones_everywhere() {
        use rayon::prelude::*;
        if !available() {
            return;
        }
        let (first, last) = (1.0f32.to_bits(), f32::INFINITY.to_bits());
        let wrong: Vec<u32> = (first / 64..=last / 64)
            .into_par_iter()
            .flat_map_iter(|chunk| {
                let values: [f32; 64] =
                    std::array::from_fn(|j| f32::from_bits(chunk * 64 + j as u32));
                let mut logs = values;
                // SAFETY: the CPU has AVX-512 (checked above).
                unsafe { log2_where(&mut logs, u64::MAX) };
                values
                    .into_iter()
                    .zip(logs)
                    .filter(|(x, log)| log.to_bits() != log2::log2(*x).to_bits())
                    .map(|(x, _)| x.to_bits())
                    .collect::<Vec<_>>()
            })
            .take_any(10)
            .collect();
        assert!(wrong.is_empty(), "vector log2 differs at {wrong:x?}");
    }
}
