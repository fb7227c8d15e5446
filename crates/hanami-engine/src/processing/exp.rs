//! `e^x` of an `f32`, for the sigmoid of output-hexagon neurons and outputs (spec §3.5),
//! computed by the engine itself so that every platform gets the same bits.
//!
//! The method and its constants are those of Arm's optimized-routines (`math/expf.c` and
//! `math/exp2f_data.c`, MIT licence), which glibc's `expf` uses too: `x · 32/ln 2 = k + r`
//! with an integer `k`, `2^(k/32)` from a table of 32 entries and `2^(r/32)` from a cubic
//! polynomial, all in `f64`, rounded to `f32` once. The fused multiply-adds are those of
//! glibc's build for CPUs with FMA (the original's platform), which a test checks here.

/// `2^(i/32)` for `i` in `0..32`, with `i << 47` subtracted from the bits, so that adding
/// `k << 47` to entry `k % 32` gives `2^(k/32)`.
pub(super) static TABLE: [u64; 32] = [
    0x3ff0_0000_0000_0000,
    0x3fef_d9b0_d315_8574,
    0x3fef_b558_6cf9_890f,
    0x3fef_9301_d012_5b51,
    0x3fef_72b8_3c7d_517b,
    0x3fef_5487_3168_b9aa,
    0x3fef_387a_6e75_6238,
    0x3fef_1e9d_f51f_dee1,
    0x3fef_06fe_0a31_b715,
    0x3fee_f1a7_373a_a9cb,
    0x3fee_dea6_4c12_3422,
    0x3fee_ce08_6061_892d,
    0x3fee_bfda_d536_2a27,
    0x3fee_b42b_569d_4f82,
    0x3fee_ab07_dd48_5429,
    0x3fee_a47e_b03a_5585,
    0x3fee_a09e_667f_3bcd,
    0x3fee_9f75_e8ec_5f74,
    0x3fee_a114_73eb_0187,
    0x3fee_a589_994c_ce13,
    0x3fee_ace5_422a_a0db,
    0x3fee_b737_b0cd_c5e5,
    0x3fee_c491_82a3_f090,
    0x3fee_d503_b23e_255d,
    0x3fee_e89f_995a_d3ad,
    0x3fee_ff76_f2fb_5e47,
    0x3fef_199b_dd85_529c,
    0x3fef_3720_dcef_9069,
    0x3fef_5818_dcfb_a487,
    0x3fef_7c97_337b_9b5f,
    0x3fef_a4af_a2a4_90da,
    0x3fef_d076_5b6e_4540,
];

/// `32 / ln 2`.
const INV_LN2_N: u64 = 0x4047_1547_652b_82fe;
/// The polynomial's coefficients, highest power first: `2^(r/32) ≈ C0·r³ + C1·r² + C2·r + 1`.
const POLY: [u64; 3] = [
    0x3ebc_6af8_4b91_2394,
    0x3f2e_bfce_50fa_c4f3,
    0x3f96_2e42_ff0c_52d6,
];
/// `1.5 · 2^52`: adding it rounds to an integer, which then stands in the low bits.
const SHIFT: u64 = 0x4338_0000_0000_0000;

/// `2^(i/32)` (less `i << 47` in the bits) for `i` in `0..32`.
#[inline(always)]
pub(super) fn table(i: usize) -> u64 {
    TABLE[i]
}

/// `32 / ln 2`.
#[inline(always)]
pub(super) fn inv_ln2_n() -> f64 {
    f64::from_bits(INV_LN2_N)
}

/// Coefficient `i` of the polynomial.
#[inline(always)]
pub(super) fn poly(i: usize) -> f64 {
    f64::from_bits(POLY[i])
}

/// The rounding shift.
#[inline(always)]
pub(super) fn shift() -> f64 {
    f64::from_bits(SHIFT)
}

/// Whether `exp` leaves `x` to the platform: `|x| ≥ 88` (where `e^x` overflows or comes near
/// the subnormals), infinite or NaN.
#[inline(always)]
pub(super) fn outside(bits: u32) -> bool {
    (bits >> 20) & 0x7ff >= 0x42b
}

/// `e^x`; see the module documentation.
pub(crate) fn exp(x: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has FMA.
        return unsafe { exp_fma(x) };
    }
    exp_fused(x)
}

/// [`exp_fused`] compiled with FMA instructions.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma")]
fn exp_fma(x: f32) -> f32 {
    exp_fused(x)
}

/// The computation, with `f64::mul_add` for every fused multiply-add.
#[inline(always)]
fn exp_fused(x: f32) -> f32 {
    if outside(x.to_bits()) {
        return x.exp();
    }
    let xd = f64::from(x);
    let kd = inv_ln2_n().mul_add(xd, shift());
    let ki = kd.to_bits();
    let kd = kd - shift();
    let r = inv_ln2_n().mul_add(xd, -kd);
    let s = f64::from_bits(table((ki % 32) as usize).wrapping_add(ki << 47));
    let z = poly(0).mul_add(r, poly(1));
    let r2 = r * r;
    let y = poly(2).mul_add(r, 1.0);
    let y = z.mul_add(r2, y);
    (y * s) as f32
}

/// `1 / (1 + e^-x)` in `f32`; also the potential of an output-hexagon neuron with summed input
/// `x` (a neuron without input gets exactly 0.5, since `e^0` is 1).
#[inline]
pub(crate) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_exact_where_it_is_known() {
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-0.0), 1.0);
        assert_eq!(sigmoid(0.0), 0.5);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert!(exp(f32::NAN).is_nan());
        assert_eq!(exp(100.0), f32::INFINITY);
        assert_eq!(exp(-200.0), 0.0);
    }

    #[test]
    fn exp_is_within_one_ulp_of_the_true_value() {
        let (first, last) = ((-87.0f32).to_bits(), 87.0f32.to_bits());
        for bits in (0..last)
            .step_by(101)
            .chain((0x8000_0000..first).step_by(101))
        {
            let x = f32::from_bits(bits);
            let exact = f64::from(x).exp();
            let got = exp(x);
            let ulp = f64::from(f32::from_bits(got.to_bits() + 1) - got);
            assert!(
                (f64::from(got) - exact).abs() <= ulp,
                "exp({x}): {got} vs {exact}"
            );
        }
    }

    /// Where the platform is glibc on x86-64 with FMA (the original's), its `expf` computes the
    /// same bits for every `f32` below 88 in magnitude (beyond, `exp` takes the platform's).
    #[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
    #[test]
    fn exp_matches_glibc_with_fma() {
        use rayon::prelude::*;
        if !std::arch::is_x86_feature_detected!("fma") {
            return;
        }
        let below = 0x42b0_0000u32;
        let wrong: Vec<u32> = (0..below)
            .into_par_iter()
            .chain((0x8000_0000..0x8000_0000 | below).into_par_iter())
            .filter(|&bits| {
                let x = f32::from_bits(bits);
                let (ours, theirs) = (exp(x), x.exp());
                ours.to_bits() != theirs.to_bits() && !(ours.is_nan() && theirs.is_nan())
            })
            .take_any(10)
            .collect();
        assert!(wrong.is_empty(), "exp differs from glibc at {wrong:x?}");
    }
}
