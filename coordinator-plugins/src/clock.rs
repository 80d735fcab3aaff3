//! Clocks: the plugins read the runtime's [`Clock`] trait, monotonic time for
//! every expiry decision (observer time) and wall time only for calendar
//! questions (cron slots, TTL expiry instants, informational stamps).
//!
//! Under paused tokio time, use the runtime's
//! [`TokioClock::starting_at`](coordinator_runtime::TokioClock::starting_at):
//! both of its readings follow tokio's clock, so tests run hours of cron and
//! TTL in milliseconds.

use std::time::Duration;

use coordinator_core::Instant;
use coordinator_runtime::Clock;

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
    use coordinator_runtime::TokioClock;

    #[tokio::test(start_paused = true)]
    async fn sleeps_follow_both_readings() {
        let clock = TokioClock::starting_at(10_000);
        sleep_until(&clock, Instant::from_millis(2_500)).await;
        assert_eq!(clock.now().as_millis(), 2_500);
        assert_eq!(clock.unix_ms(), 12_500);
        assert_eq!(ms(Duration::from_micros(1_999)), 1);
    }
}
