//! The clocks the runtime reads: one that keeps counting while the host is
//! suspended, for production, and one that follows tokio's (pausable) time,
//! for tests.
//!
//! * [`Clock`]: a monotonic reading as a [`coordinator_core::Instant`], plus
//!   the wall clock for informational timestamps.
//! * [`SystemClock`]: `CLOCK_BOOTTIME` on Linux and Android; elsewhere
//!   `std::time::Instant` (which may stop while the host sleeps; see its docs).
//! * [`TokioClock`]: `tokio::time::Instant`, so that `#[tokio::test(start_paused
//!   = true)]` drives elections in virtual time; with
//!   [`starting_at`](TokioClock::starting_at) its wall clock moves with
//!   tokio's time too (cron and TTL tests).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use coordinator_core::Instant;

/// A monotonic clock, read by the runtime before every input it gives the
/// election machine and by [`LeaderContext::is_valid`](crate::LeaderContext::is_valid).
///
/// Readings must never go backwards. The leader's deadline is measured on
/// this clock, so in production it should keep counting while the machine
/// is suspended: otherwise a leader frozen for longer than its lease could
/// wake up believing it still leads. [`SystemClock`] does that on Linux.
///
/// # Examples
///
/// ```
/// use coordinator_runtime::{Clock, SystemClock};
/// let clock = SystemClock::new();
/// let a = clock.now();
/// let b = clock.now();
/// assert!(b >= a);
/// ```
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current monotonic reading.
    fn now(&self) -> Instant;

    /// The wall clock, in milliseconds since the Unix epoch. Only used for
    /// informational timestamps (records, metrics); never to decide anything.
    fn unix_ms(&self) -> u64 {
        system_unix_ms()
    }
}

/// The real wall clock, in milliseconds since the Unix epoch.
fn system_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The production clock: counts suspend where the OS lets it.
///
/// * **Linux and Android**: `CLOCK_BOOTTIME` (through `rustix`), which keeps
///   counting while the host is suspended, unlike `CLOCK_MONOTONIC` (what
///   `std::time::Instant` reads there).
/// * **Elsewhere**: `std::time::Instant`, measured from the first reading in
///   the process. It may stop while the host sleeps (macOS reads
///   `CLOCK_UPTIME_RAW`), so there a leader suspended for longer than its
///   lease can wake up believing it still leads until its next renewal
///   fails: avoid suspending leaders on such hosts.
///
/// Readings are milliseconds since boot (Linux) or since the first reading
/// (elsewhere).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock {
    _private: (),
}

impl SystemClock {
    /// The process's system clock.
    pub fn new() -> Self {
        Self { _private: () }
    }

    /// Whether this platform's reading counts time spent suspended.
    pub fn counts_suspend() -> bool {
        cfg!(any(target_os = "linux", target_os = "android"))
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn monotonic_millis() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1000).saturating_add(nanos / 1_000_000)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn monotonic_millis() -> u64 {
    use std::sync::OnceLock;
    static ORIGIN: OnceLock<std::time::Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(std::time::Instant::now);
    u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::from_millis(monotonic_millis())
    }
}

/// The clock for tokio's (pausable) time: its monotonic reading follows
/// `tokio::time::Instant`, so under `#[tokio::test(start_paused = true)]`
/// elections, claims and sweeps run in virtual time and tests never sleep.
///
/// * [`TokioClock::new`]: the wall clock ([`Clock::unix_ms`]) is the real
///   one.
/// * [`TokioClock::starting_at`]: the wall clock follows tokio's time too,
///   from a given instant, so hours of cron slots and TTL expiries pass in
///   milliseconds under paused time.
///
/// Monotonic readings are milliseconds since the clock was created. In
/// production it stops while the host is suspended (tokio reads
/// `CLOCK_MONOTONIC`); use [`SystemClock`] there.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use coordinator_runtime::{Clock, TokioClock};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let clock = TokioClock::new();
/// let calendar = TokioClock::starting_at(1_700_000_000_000);
/// tokio::time::sleep(Duration::from_secs(90)).await;
/// assert_eq!(clock.now().as_millis(), 90_000);
/// assert_eq!(calendar.now().as_millis(), 90_000);
/// assert_eq!(calendar.unix_ms(), 1_700_000_090_000);
/// # }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct TokioClock {
    origin: tokio::time::Instant,
    /// The wall reading at `origin` when the wall clock follows tokio's
    /// time; `None` for the real wall clock.
    origin_unix_ms: Option<u64>,
}

impl TokioClock {
    /// A clock reading zero now, whose wall clock is the real one.
    pub fn new() -> Self {
        Self {
            origin: tokio::time::Instant::now(),
            origin_unix_ms: None,
        }
    }

    /// A clock reading zero now whose wall clock reads `unix_ms` (ms since
    /// the Unix epoch) now and then moves with tokio's time: under paused
    /// time, both readings move only when tokio's virtual time does.
    pub fn starting_at(unix_ms: u64) -> Self {
        Self {
            origin: tokio::time::Instant::now(),
            origin_unix_ms: Some(unix_ms),
        }
    }

    /// The tokio instant of a reading of this clock, to sleep until it.
    pub fn to_tokio(&self, instant: Instant) -> tokio::time::Instant {
        self.origin + Duration::from_millis(instant.as_millis())
    }

    fn elapsed_ms(&self) -> u64 {
        let elapsed = tokio::time::Instant::now().saturating_duration_since(self.origin);
        u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        Instant::from_millis(self.elapsed_ms())
    }

    fn unix_ms(&self) -> u64 {
        match self.origin_unix_ms {
            Some(origin) => origin.saturating_add(self.elapsed_ms()),
            None => system_unix_ms(),
        }
    }
}

/// The longest the runtime sleeps in one go. A host suspend stops tokio's
/// timer (it reads `CLOCK_MONOTONIC`) but not [`SystemClock`]; waking at
/// least this often bounds how late a deadline is noticed after a resume.
pub(crate) const MAX_SLEEP: Duration = Duration::from_secs(1);

/// The tokio instant to sleep until so that `clock` reads at least `at`,
/// capped at [`MAX_SLEEP`] from now.
pub(crate) fn sleep_target(clock: &dyn Clock, at: Instant) -> tokio::time::Instant {
    let wait = at.saturating_since(clock.now()).min(MAX_SLEEP);
    tokio::time::Instant::now() + wait
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_is_monotonic() {
        let clock = SystemClock::new();
        let mut last = clock.now();
        for _ in 0..1000 {
            let now = clock.now();
            assert!(now >= last);
            last = now;
        }
        assert!(clock.unix_ms() > 1_600_000_000_000);
    }

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_paused_time() {
        let clock = TokioClock::new();
        assert_eq!(clock.now().as_millis(), 0);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(clock.now().as_millis(), 1500);
        let target = sleep_target(&clock, Instant::from_millis(1700));
        tokio::time::sleep_until(target).await;
        assert_eq!(clock.now().as_millis(), 1700);
        // Capped at MAX_SLEEP.
        let target = sleep_target(&clock, Instant::from_millis(60_000));
        tokio::time::sleep_until(target).await;
        assert_eq!(clock.now().as_millis(), 2700);
        assert!(clock.unix_ms() > 1_600_000_000_000, "the real wall clock");
    }

    #[tokio::test(start_paused = true)]
    async fn a_clock_starting_at_an_instant_moves_its_wall_clock_with_tokio() {
        let clock = TokioClock::starting_at(10_000);
        assert_eq!((clock.now().as_millis(), clock.unix_ms()), (0, 10_000));
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        assert_eq!((clock.now().as_millis(), clock.unix_ms()), (2_500, 12_500));
        let copy = clock;
        assert_eq!(copy.unix_ms(), 12_500);
    }
}
