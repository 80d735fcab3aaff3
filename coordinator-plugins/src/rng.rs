//! A small seeded random stream (SplitMix64) for lock tokens, nonces,
//! jitter and id suffixes.
//!
//! None of these values is a secret; they must be unique with overwhelming
//! probability and reproducible from one seed in simulations, which is what
//! SplitMix64 gives in ten lines (the same generator the core machine and
//! the testkit use).

use std::sync::atomic::{AtomicU64, Ordering};

/// A thread-safe SplitMix64 stream.
#[derive(Debug)]
pub(crate) struct Rng {
    state: AtomicU64,
}

impl Rng {
    /// A stream starting from `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            state: AtomicU64::new(seed),
        }
    }

    /// A stream seeded from the OS (`coordinator_runtime::os_seed`), or from `seed`.
    pub(crate) fn seeded(seed: Option<u64>) -> Self {
        Self::new(seed.unwrap_or_else(coordinator_runtime::os_seed))
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&self) -> u64 {
        let mut z = self
            .state
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform value in `0..bound` (0 when `bound` is 0).
    pub(crate) fn below(&self, bound: u64) -> u64 {
        if bound == 0 {
            0
        } else {
            self.next_u64() % bound
        }
    }

    /// 16 hex digits, for tokens and nonces.
    pub(crate) fn token(&self) -> String {
        format!("{:016x}", self.next_u64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_streams_repeat_and_differ() {
        let a = Rng::new(7);
        let b = Rng::new(7);
        let c = Rng::new(8);
        let xs: Vec<u64> = (0..4).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..4).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs[0], c.next_u64());
        assert!(a.below(10) < 10);
        assert_eq!(a.below(0), 0);
        assert_eq!(a.token().len(), 16);
    }
}
