//! `log2` of an `f32`, the activation of hidden neurons (spec §3.4), computed by the engine
//! itself so that every platform gets the same bits.
//!
//! The method and its constants are those of Arm's optimized-routines (`math/log2f.c` and
//! `math/log2f_data.c`, MIT licence), which glibc's `log2f` uses too: `x = 2^k · z` with `z`
//! in `[0x1.66p-1, 0x1.66p0)`, a table of 16 centres `c` for `log2(c)` and `1/c`, and a cubic
//! polynomial in `r = z/c − 1`, all in `f64` with fused multiply-adds, rounded to `f32` once.
//! With fused multiply-adds this is bit for bit what glibc's `log2f` returns on a CPU with
//! FMA (the original's platform), which a test checks here; where the CPU has no FMA,
//! `f64::mul_add` computes the same fused results in software.

/// `(1/c, log2(c))` for the 16 subintervals of `z`.
const TABLE: [(u64, u64); 16] = [
    (0x3ff6_61ec_79f8_f3be, 0xbfde_fec6_5b96_3019),
    (0x3ff5_71ed_4aaf_883d, 0xbfdb_0b68_32d4_fca4),
    (0x3ff4_9539_f0f0_10b0, 0xbfd7_418b_0a1f_b77b),
    (0x3ff3_c995_b0b8_0385, 0xbfd3_9de9_1a6d_cf7b),
    (0x3ff3_0d19_0c88_64a5, 0xbfd0_1d9b_f3f2_b631),
    (0x3ff2_5e22_7b0b_8ea0, 0xbfc9_7c1d_1b3b_7af0),
    (0x3ff1_bb4a_4a1a_343f, 0xbfc2_f9e3_93af_3c9f),
    (0x3ff1_2358_f08a_e5ba, 0xbfb9_60cb_bf78_8d5c),
    (0x3ff0_953f_4199_00a7, 0xbfaa_6f9d_b647_5fce),
    (0x3ff0_0000_0000_0000, 0x0000_0000_0000_0000),
    (0x3fee_608c_fd9a_47ac, 0x3fb3_38ca_9f24_f53d),
    (0x3fec_a4b3_1f02_6aa0, 0x3fc4_76a9_5438_91ba),
    (0x3feb_2036_576a_fce6, 0x3fce_840b_4ac4_e4d2),
    (0x3fe9_c2d1_63a1_aa2d, 0x3fd4_0645_f0c6_651c),
    (0x3fe8_86e6_0378_41ed, 0x3fd8_8e9c_2c1b_9ff8),
    (0x3fe7_67dc_f553_4862, 0x3fdc_e0a4_4eb1_7bcc),
];

/// The polynomial's coefficients, highest power first: `log2(1 + r) ≈ A0·r⁴ + A1·r³ + A2·r²
/// + A3·r`.
const POLY: [u64; 4] = [
    0xbfd7_12b6_f70a_7e4d,
    0x3fde_cabf_4968_32e0,
    0xbfe7_1547_9ffa_e3de,
    0x3ff7_1547_5f35_c8b8,
];

/// The bits of `0x1.66p-1`, the lower end of `z`'s range.
pub(super) const OFFSET: u32 = 0x3f33_0000;

/// `1/c` and `log2(c)` of subinterval `i`.
#[inline(always)]
pub(super) fn table(i: usize) -> (f64, f64) {
    let (invc, logc) = TABLE[i];
    (f64::from_bits(invc), f64::from_bits(logc))
}

/// Coefficient `i` of the polynomial.
#[inline(always)]
pub(super) fn poly(i: usize) -> f64 {
    f64::from_bits(POLY[i])
}

/// Whether `log2` leaves `x` to the platform: zero, subnormal, negative, infinite or NaN
/// (never the value of a neuron that fired, which is above 1).
#[inline(always)]
pub(super) fn outside(bits: u32) -> bool {
    bits.wrapping_sub(0x0080_0000) >= 0x7f80_0000 - 0x0080_0000
}

/// `log2(x)`; see the module documentation.
pub(crate) fn log2(x: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has FMA.
        return unsafe { log2_fma(x) };
    }
    log2_fused(x)
}

/// [`log2_fused`] compiled with FMA instructions.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma")]
fn log2_fma(x: f32) -> f32 {
    log2_fused(x)
}

/// The computation, with `f64::mul_add` for every fused multiply-add.
#[inline(always)]
fn log2_fused(x: f32) -> f32 {
    let bits = x.to_bits();
    if bits == 1.0f32.to_bits() {
        return 0.0;
    }
    if outside(bits) {
        return x.log2();
    }
    let tmp = bits.wrapping_sub(OFFSET);
    let i = ((tmp >> 19) % 16) as usize;
    let z = f64::from(f32::from_bits(bits.wrapping_sub(tmp & 0xff80_0000)));
    let k = (tmp as i32) >> 23;
    let (invc, logc) = table(i);
    let r = z.mul_add(invc, -1.0);
    let y0 = logc + f64::from(k);
    let r2 = r * r;
    let y = poly(1).mul_add(r, poly(2));
    let y = poly(0).mul_add(r2, y);
    let p = poly(3).mul_add(r, y0);
    y.mul_add(r2, p) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The values `1 + p` that neurons firing with potential `p` take their logarithm of:
    /// every 97th `f32` from 1 to `f32::MAX`, and all of `[1, 2)` in steps of 3 ulps.
    fn inputs() -> impl Iterator<Item = f32> {
        let one = 1.0f32.to_bits();
        let all = (one..f32::MAX.to_bits()).step_by(97);
        let near = (one..2.0f32.to_bits()).step_by(3);
        all.chain(near).map(f32::from_bits)
    }

    #[test]
    fn log2_is_exact_where_it_is_known() {
        for k in -20..=127 {
            let x = (2.0f32).powi(k);
            assert_eq!(log2(x), k as f32, "2^{k}");
        }
        assert_eq!(log2(f32::INFINITY), f32::INFINITY);
        assert!(log2(f32::NAN).is_nan());
        assert!(log2(-1.0).is_nan());
        assert_eq!(log2(0.0), f32::NEG_INFINITY);
    }

    #[test]
    fn log2_is_within_one_ulp_of_the_true_value() {
        for x in inputs() {
            let exact = f64::from(x).log2();
            let ulp = f64::from(f32::from_bits(log2(x).to_bits() + 1) - log2(x)).abs();
            let error = (f64::from(log2(x)) - exact).abs();
            assert!(
                error <= ulp.max(f64::from(f32::MIN_POSITIVE)),
                "{x}: {} vs {exact}",
                log2(x)
            );
        }
    }

    /// Where the platform is glibc on x86-64 with FMA (the original's), its `log2f` computes
    /// the same bits for every value a neuron can take the logarithm of: every `f32` from 1 to
    /// infinity. (Rounding the fused and the unfused computations differently is rare, so
    /// only all values tell them apart.)
    #[cfg(all(target_arch = "x86_64", target_os = "linux", target_env = "gnu"))]
    #[test]
    fn log2_matches_glibc_with_fma() {
        use rayon::prelude::*;
        if !std::arch::is_x86_feature_detected!("fma") {
            return;
        }
        let (first, last) = (1.0f32.to_bits(), f32::INFINITY.to_bits());
        let wrong: Vec<u32> = (first..=last)
            .into_par_iter()
            .filter(|&bits| {
                let x = f32::from_bits(bits);
                log2(x).to_bits() != x.log2().to_bits()
            })
            .take_any(10)
            .collect();
        assert!(wrong.is_empty(), "log2 differs from glibc at {wrong:x?}");
    }
}
