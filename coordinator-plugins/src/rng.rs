//! A seeded random stream for lock tokens, nonces, jitter and id suffixes:
//! coordinator-core's [`SplitMix64`], shared by every clone of a handle.
//!
//! None of these values is a secret; they must be unique with overwhelming
//! probability and reproducible from one seed in simulations, which is what
//! SplitMix64 gives (the generator the core machine and the simulator draw
//! from too).

use std::sync::{Mutex, PoisonError};

use coordinator_core::SplitMix64;

/// A thread-safe [`SplitMix64`] stream.
#[derive(Debug)]
pub(crate) struct Rng {
    stream: Mutex<SplitMix64>,
}

impl Rng {
    /// A stream starting from `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            stream: Mutex::new(SplitMix64::new(seed)),
        }
    }

    /// A stream seeded from the OS (`coordinator_runtime::os_seed`), or from `seed`.
    pub(crate) fn seeded(seed: Option<u64>) -> Self {
        Self::new(seed.unwrap_or_else(coordinator_runtime::os_seed))
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&self) -> u64 {
        self.stream
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .next_u64()
    }

    /// A value in `0..bound` (0 when `bound` is 0), by remainder.
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
        assert_eq!(xs[0], SplitMix64::new(7).next_u64(), "core's stream");
        assert_ne!(xs[0], c.next_u64());
        assert!(a.below(10) < 10);
        assert_eq!(a.below(0), 0);
        assert_eq!(a.token().len(), 16);
    }
}
