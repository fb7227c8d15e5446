//! Randomness: the original's `pcg` hash for per-synapse draws, and the seeded generator that
//! each cluster owns in place of the C library's process-wide `rand()`.

/// `f32(RAND_MAX)` of glibc; `2147483647` rounds to `2^31` as an `f32`.
pub(crate) const RAND_MAX_F32: f32 = 2_147_483_647.0;

/// The 32-bit PCG output hash of the original (`pcg(x)` in spec notation), wrapping on `u32`.
#[inline]
pub(crate) fn pcg_hash(x: u32) -> u32 {
    let state = x.wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277_803_737);
    (word >> 22) ^ word
}

/// SplitMix64, a small generator whose whole state is one `u64`, so a checkpoint can carry it.
///
/// [`Rng::rand`] yields 31-bit values like glibc's `rand()`, so every place where the original
/// computes `rand() % n` keeps its distribution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Rng {
    state: u64,
}

impl Rng {
    /// A generator seeded with `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    /// The state to store in a checkpoint.
    pub(crate) fn state(&self) -> u64 {
        self.state
    }

    /// Rebuilds a generator from a stored state.
    pub(crate) fn from_state(state: u64) -> Self {
        Rng { state }
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `[0, 2^31)`, the range of glibc's `rand()`.
    pub(crate) fn rand(&mut self) -> u32 {
        (self.next_u64() >> 33) as u32
    }

    /// `rand() % n` for `n > 0`, as the original draws indices.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        debug_assert!(n > 0);
        self.rand() as usize % n
    }

    /// A uniform value in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcg_matches_the_reference_formula() {
        // Values computed by hand from the formula in the spec.
        assert_eq!(pcg_hash(0), {
            let s: u32 = 2_891_336_453;
            let w = ((s >> ((s >> 28) + 4)) ^ s).wrapping_mul(277_803_737);
            (w >> 22) ^ w
        });
        assert_ne!(pcg_hash(1), pcg_hash(2));
    }

    #[test]
    fn rand_stays_in_glibc_range_and_is_reproducible() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..1000 {
            let x = a.rand();
            assert!(x < (1 << 31));
            assert_eq!(x, b.rand());
        }
        assert_eq!(RAND_MAX_F32, 2_147_483_648.0);
    }
}
