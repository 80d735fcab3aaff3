//! Per-worker clocks: a monotonic clock with a rate error and an offset,
//! and a wall clock with its own offset.

use coordinator_core::Instant;

/// Parts per million of a clock rate: `1_000_000` is a perfect clock.
pub const PPM: u64 = 1_000_000;

/// The Unix time (ms) that true time zero stands for: 2023-11-14T22:13:20Z.
pub const UNIX_BASE_MS: u64 = 1_700_000_000_000;

/// One process's clocks, as functions of true time (ms since the start of
/// the simulation).
///
/// The monotonic reading is `offset + ⌊true × rate⌋` in integer arithmetic,
/// so it never goes backwards and replays exactly. The wall clock is only
/// handed to the machine once, at start (it uses it for informational
/// timestamps); nothing may decide by it.
///
/// ```
/// use coordinator_testkit::SimClock;
/// let fast = SimClock::new(1_100_000, 50, 0); // 10% fast, reads 50 at true 0
/// assert_eq!(fast.local(1000).as_millis(), 1150);
/// let t = fast.true_at(coordinator_core::Instant::from_millis(1150));
/// assert_eq!(t, 1000);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimClock {
    /// Rate in parts per million of true time.
    pub rate_ppm: u64,
    /// The monotonic reading at true time zero.
    pub offset_ms: u64,
    /// How far the wall clock is ahead of true Unix time (negative: behind).
    pub wall_offset_ms: i64,
}

impl SimClock {
    /// A clock running at `rate_ppm` (at least 1), reading `offset_ms` at
    /// true time zero, with its wall clock `wall_offset_ms` off.
    pub fn new(rate_ppm: u64, offset_ms: u64, wall_offset_ms: i64) -> Self {
        Self {
            rate_ppm: rate_ppm.max(1),
            offset_ms,
            wall_offset_ms,
        }
    }

    /// The clock's rate as a fraction (1.0 is perfect).
    pub fn rate(&self) -> f64 {
        self.rate_ppm as f64 / PPM as f64
    }

    /// The monotonic reading at true time `t` (ms).
    pub fn local(&self, t: u64) -> Instant {
        let scaled = u128::from(t) * u128::from(self.rate_ppm) / u128::from(PPM);
        Instant::from_millis(self.offset_ms.saturating_add(scaled as u64))
    }

    /// The first true millisecond at which the monotonic clock reads at
    /// least `local`.
    pub fn true_at(&self, local: Instant) -> u64 {
        let ahead = local.as_millis().saturating_sub(self.offset_ms);
        let num = u128::from(ahead) * u128::from(PPM);
        let den = u128::from(self.rate_ppm);
        let t = num.div_ceil(den);
        u64::try_from(t).unwrap_or(u64::MAX)
    }

    /// The wall clock (Unix ms) at true time `t`.
    pub fn unix_ms(&self, t: u64) -> u64 {
        let wall = i128::from(UNIX_BASE_MS) + i128::from(t) + i128::from(self.wall_offset_ms);
        u64::try_from(wall.max(0)).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn true_at_is_the_first_instant_reaching_the_reading() {
        for rate in [700_000, 999_999, 1_000_000, 1_000_001, 1_333_333] {
            let c = SimClock::new(rate, 12_345, 0);
            for l in (12_345..40_000).step_by(997) {
                let l = Instant::from_millis(l);
                let t = c.true_at(l);
                assert!(c.local(t) >= l, "rate {rate} l {l:?}");
                assert!(t == 0 || c.local(t - 1) < l, "rate {rate} l {l:?}");
            }
        }
    }
}
