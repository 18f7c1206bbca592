//! The scheduler's PRNG: xoshiro256** seeded through splitmix64.
//!
//! Self-contained on purpose: the interleaving of a run is a pure function of
//! the seed, so the generator must never change behind our back (as an
//! external `rand` upgrade could).

/// xoshiro256** (Blackman & Vigna), state expanded from a `u64` seed with
/// splitmix64 as the authors recommend.
#[derive(Clone, Debug)]
pub(super) struct Rng {
    s: [u64; 4],
}

impl Rng {
    pub(super) fn new(seed: u64) -> Self {
        let mut sm = seed;
        let mut next = || {
            sm = sm.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = sm;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Self { s: [next(), next(), next(), next()] }
    }

    #[cfg(test)]
    pub(super) fn from_state(s: [u64; 4]) -> Self {
        Self { s }
    }

    #[inline]
    pub(super) fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// A number in `0..n` (`n > 0`) by Lemire's multiply-shift: one
    /// multiplication, no division, no loop. The bias (at most n / 2^64) is
    /// irrelevant for picking among a few hundred threads.
    #[inline]
    pub(super) fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}
