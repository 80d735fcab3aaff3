//! Time as data: the machine never reads a clock, it is told the time.

use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

/// A reading of the driver's monotonic clock, in milliseconds from an
/// arbitrary origin fixed for the life of one machine.
///
/// The runtime reads a clock that keeps counting while the host is suspended
/// (`CLOCK_BOOTTIME` on Linux) and the simulator a virtual one. Every
/// `handle_*` call takes one; successive readings given to one machine must
/// never go backwards.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(u64);

impl Instant {
    /// The instant `millis` milliseconds after the clock's origin.
    pub const fn from_millis(millis: u64) -> Self {
        Self(millis)
    }

    /// Milliseconds since the clock's origin.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        Instant(self.0.saturating_add(duration_millis(rhs)))
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;
    fn sub(self, rhs: Duration) -> Instant {
        Instant(self.0.saturating_sub(duration_millis(rhs)))
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t+{}ms", self.0)
    }
}

/// Whole milliseconds of a duration, rounded up so that a wait is never
/// shortened by truncation, saturating at `u64::MAX`.
pub(crate) fn duration_millis(d: Duration) -> u64 {
    let whole = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if !d.subsec_nanos().is_multiple_of(1_000_000) {
        whole.saturating_add(1)
    } else {
        whole
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_and_rounds_up() {
        let t = Instant::from_millis(10);
        assert_eq!((t + Duration::from_micros(1500)).as_millis(), 12);
        assert_eq!((t - Duration::from_secs(1)).as_millis(), 0);
        assert_eq!(Instant::from_millis(5).saturating_since(t), Duration::ZERO);
        assert_eq!(
            Instant::from_millis(u64::MAX) + Duration::from_secs(1),
            Instant::from_millis(u64::MAX)
        );
    }
}
