//! SplitMix64: the workspace's one seeded generator, and the jittered
//! back-off drawn from it.
//!
//! * [`SplitMix64`]: a stream of 64-bit values from one `u64` seed. The
//!   election machine draws its jitter from it; the simulator its every
//!   choice; the store's fault injection, the runtime's seed derivation and
//!   the plugins' nonces and lock tokens use it too.
//! * [`splitmix64`] and [`mix64`]: the generator as a function of one value,
//!   to derive seeds or hash a few words.
//! * [`jittered_backoff`]: doubling pauses with up to 50% jitter.
//!
//! Nothing here reads the OS: seeds come from the caller (the runtime's
//! `os_seed` draws them from the OS).

use std::ops::Range;
use std::time::Duration;

use crate::time::duration_millis;

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and reproducible from
/// one `u64` seed. Its streams never change between releases, so a seed
/// replays a simulation exactly. Not for cryptography: use it for jitter,
/// nonces, tokens and simulations, whose values need to be unique with
/// overwhelming probability and reproducible, not secret.
///
/// # Examples
///
/// ```
/// use coordinator_core::SplitMix64;
/// let mut a = SplitMix64::new(7);
/// let mut b = SplitMix64::new(7);
/// assert_eq!(a.next_u64(), b.next_u64());
/// assert!(a.below(10) < 10);
/// assert!(a.up_to(10) <= 10);
/// ```
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// The generator's increment (2⁶⁴ divided by the golden ratio, odd).
    pub const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

    /// A stream starting from `seed`.
    pub const fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(Self::GAMMA);
        mix64(self.state)
    }

    /// A uniform value in `0..n` (`0` when `n` is `0`), by multiply-shift
    /// (no division; the bias is below 2⁻⁶⁴·n).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A value in `0..=max` (`0` when `max` is `0`), by remainder: the draw
    /// the election machine makes for its jitter.
    pub fn up_to(&mut self, max: u64) -> u64 {
        if max == 0 {
            0
        } else {
            self.next_u64() % (max.saturating_add(1)).max(1)
        }
    }

    /// A uniform value in `range` (its start when empty).
    pub fn in_range(&mut self, range: Range<u64>) -> u64 {
        range.start + self.below(range.end.saturating_sub(range.start))
    }

    /// A uniform float in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }

    /// A uniform float in `[lo, hi)`.
    pub fn between(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
}

/// The first value of the [`SplitMix64`] stream seeded with `x`: a good
/// 64-bit hash of one value, to derive a seed from another.
///
/// ```
/// use coordinator_core::{splitmix64, SplitMix64};
/// assert_eq!(splitmix64(42), SplitMix64::new(42).next_u64());
/// ```
pub fn splitmix64(x: u64) -> u64 {
    mix64(x.wrapping_add(SplitMix64::GAMMA))
}

/// SplitMix64's output function (Stafford's "Mix13"): a bijection of `u64`
/// whose every output bit depends on every input bit. [`splitmix64`] is
/// `mix64(x + GAMMA)`.
///
/// ```
/// use coordinator_core::{mix64, splitmix64, SplitMix64};
/// assert_eq!(mix64(7u64.wrapping_add(SplitMix64::GAMMA)), splitmix64(7));
/// assert_eq!(mix64(0), 0);
/// ```
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The pause before retry `attempt` (1, 2, …; 0 counts as 1): `first`
/// doubled for each earlier attempt (at most 16 times), at most `cap`, plus
/// up to half of that again drawn from `rng` (whole milliseconds), so that
/// clients that failed together do not retry together.
///
/// It draws as the election machine's own back-off does.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use coordinator_core::{jittered_backoff, SplitMix64};
/// let mut rng = SplitMix64::new(1);
/// let ms = Duration::from_millis;
/// let first = jittered_backoff(ms(100), ms(1_000), 1, &mut rng);
/// assert!(first >= ms(100) && first <= ms(150));
/// let third = jittered_backoff(ms(100), ms(1_000), 3, &mut rng);
/// assert!(third >= ms(400) && third <= ms(600));
/// let late = jittered_backoff(ms(100), ms(1_000), 40, &mut rng);
/// assert!(late >= ms(1_000) && late <= ms(1_500));
/// ```
pub fn jittered_backoff(
    first: Duration,
    cap: Duration,
    attempt: u32,
    rng: &mut SplitMix64,
) -> Duration {
    let exponent = attempt.saturating_sub(1).min(16);
    let base = first.saturating_mul(1u32 << exponent).min(cap);
    let spread = rng.up_to(duration_millis(base) / 2);
    base.saturating_add(Duration::from_millis(spread))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_bounds_hold() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
            assert!(a.up_to(9) <= 9);
            b.up_to(9);
        }
        assert_eq!(a.up_to(0), 0);
        assert_ne!(SplitMix64::new(1).next_u64(), SplitMix64::new(2).next_u64());
        let mut r = SplitMix64::new(1);
        for _ in 0..1000 {
            assert!(r.below(7) < 7);
            let u = r.unit();
            assert!((0.0..1.0).contains(&u));
            let x = r.in_range(10..20);
            assert!((10..20).contains(&x));
            let f = r.between(-1.0, 1.0);
            assert!((-1.0..1.0).contains(&f));
        }
        assert_eq!(r.below(0), 0);
        assert_eq!(r.in_range(5..5), 5);
        assert!(!r.chance(0.0));
        assert!(r.chance(1.0));
    }

    #[test]
    fn matches_the_reference_stream() {
        // The reference implementation (Vigna, splitmix64.c) seeded with
        // 1234567.
        let mut rng = SplitMix64::new(1_234_567);
        let expected = [
            6_457_827_717_110_365_317,
            3_203_168_211_198_807_973,
            9_817_491_932_198_370_423,
            4_593_380_528_125_082_431,
            16_408_922_859_458_223_821,
        ];
        for value in expected {
            assert_eq!(rng.next_u64(), value);
        }
        assert_eq!(splitmix64(1_234_567), expected[0]);
    }

    #[test]
    fn backoff_doubles_to_its_cap_with_at_most_half_again() {
        let ms = Duration::from_millis;
        let mut rng = SplitMix64::new(3);
        for attempt in 0..40u32 {
            let base = ms(50 << attempt.saturating_sub(1).min(3));
            for _ in 0..50 {
                let wait = jittered_backoff(ms(50), ms(400), attempt, &mut rng);
                assert!(
                    wait >= base && wait <= base + base / 2,
                    "{attempt}: {wait:?}"
                );
            }
        }
        assert_eq!(
            jittered_backoff(Duration::ZERO, ms(400), 9, &mut rng),
            Duration::ZERO
        );
        assert_eq!(
            jittered_backoff(Duration::MAX, Duration::MAX, u32::MAX, &mut rng),
            Duration::MAX
        );
    }
}
