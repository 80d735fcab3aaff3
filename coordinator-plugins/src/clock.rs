//! Clocks: the plugins read the runtime's [`Clock`] trait, monotonic time for
//! every expiry decision (observer time) and wall time only for calendar
//! questions (cron slots, TTL expiry instants, informational stamps).
//!
//! [`VirtualClock`] follows tokio's (pausable) time for *both*, so tests under
//! `#[tokio::test(start_paused = true)]` can run hours of cron and TTL in
//! milliseconds.

use std::time::Duration;

use coordinator_core::Instant;
use coordinator_runtime::Clock;

/// A [`Clock`] whose monotonic *and* wall-clock readings follow tokio's
/// clock: under paused time both move only when tokio's virtual time does.
///
/// The runtime's own [`TokioClock`](coordinator_runtime::TokioClock) moves its
/// monotonic reading with tokio but reads the real wall clock; the scheduler
/// and the TTL expirer need a wall clock that moves too.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use coordinator_runtime::Clock;
/// use coordinator_plugins::VirtualClock;
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let clock = VirtualClock::starting_at(1_700_000_000_000);
/// tokio::time::sleep(Duration::from_secs(90)).await;
/// assert_eq!(clock.unix_ms(), 1_700_000_090_000);
/// assert_eq!(clock.now().as_millis(), 90_000);
/// # }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct VirtualClock {
    origin: tokio::time::Instant,
    origin_unix_ms: u64,
}

impl VirtualClock {
    /// A clock whose wall reading is `unix_ms` now, and whose monotonic
    /// reading is zero now.
    pub fn starting_at(unix_ms: u64) -> Self {
        Self {
            origin: tokio::time::Instant::now(),
            origin_unix_ms: unix_ms,
        }
    }

    fn elapsed_ms(&self) -> u64 {
        let elapsed = tokio::time::Instant::now().saturating_duration_since(self.origin);
        u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Instant {
        Instant::from_millis(self.elapsed_ms())
    }

    fn unix_ms(&self) -> u64 {
        self.origin_unix_ms.saturating_add(self.elapsed_ms())
    }
}

/// The longest one sleep lasts before the caller re-reads its clock: a host
/// suspend or a wall-clock step is noticed within this.
pub(crate) const MAX_SLEEP: Duration = Duration::from_secs(1);

/// Sleeps until `clock` reads at least `at`, re-checking at least every
/// [`MAX_SLEEP`].
pub(crate) async fn sleep_until(clock: &dyn Clock, at: Instant) {
    loop {
        let left = at.saturating_since(clock.now());
        if left.is_zero() {
            return;
        }
        tokio::time::sleep(left.min(MAX_SLEEP)).await;
    }
}

/// Milliseconds of a duration, saturating.
pub(crate) fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn sleeps_follow_both_readings() {
        let clock = VirtualClock::starting_at(10_000);
        sleep_until(&clock, Instant::from_millis(2_500)).await;
        assert_eq!(clock.now().as_millis(), 2_500);
        assert_eq!(clock.unix_ms(), 12_500);
        assert_eq!(ms(Duration::from_micros(1_999)), 1);
    }
}
