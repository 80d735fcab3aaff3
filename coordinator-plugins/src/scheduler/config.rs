//! [`SchedulerConfig`]: how the leader polls job definitions, leases runs,
//! and keeps history.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::SchedulerError;

/// How a scheduler's leader works. Job-specific settings live in
/// [`JobSpec`](super::JobSpec).
///
/// ```
/// use std::time::Duration;
/// use coordinator_plugins::scheduler::SchedulerConfig;
/// let config: SchedulerConfig = serde_json::from_str(r#"{ "reload_interval": "30s" }"#).unwrap();
/// assert_eq!(config.reload_interval, Duration::from_secs(30));
/// config.validate().unwrap();
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerConfig {
    /// How often the leader re-reads the job definitions and run-now
    /// requests (one listing each, plus one read per changed job).
    /// Default 10 s.
    #[serde(with = "crate::duration")]
    pub reload_interval: Duration,
    /// The lease of a running slot: the runner renews it (compare-and-swap)
    /// every third of this while a job runs, and gives the run up (cancels
    /// it) when it could not renew for this long on its own clock. Another
    /// leader takes a slot over only after its version stood unchanged this
    /// long (stretched by the drift tolerance, plus a grace) on *its* clock.
    /// Default 30 s.
    #[serde(with = "crate::duration")]
    pub run_lease: Duration,
    /// The largest clock rate error between two workers (ρ). Default 0.1,
    /// the election's default: both bound the rate error between the
    /// same workers' clocks, so keep it equal to the election's
    /// `drift_tolerance` (a smaller value here would make a claim's
    /// guarantee weaker than the leader's).
    pub drift_tolerance: f64,
    /// Added to an observer's wait before it takes over a run. Default 2 s.
    #[serde(with = "crate::duration")]
    pub recovery_grace: Duration,
    /// Finished runs kept per job (older ones are deleted once they are an
    /// hour old). Default 100.
    pub history_limit: usize,
    /// The longest the leader sleeps before it re-reads the wall clock (so
    /// a stepped clock is noticed). Default 1 s.
    #[serde(with = "crate::duration")]
    pub tick: Duration,
    /// Fixes the random stream (nonces, ids) for reproducible tests.
    pub seed: Option<u64>,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            reload_interval: Duration::from_secs(10),
            run_lease: Duration::from_secs(30),
            drift_tolerance: 0.1,
            recovery_grace: Duration::from_secs(2),
            history_limit: 100,
            tick: Duration::from_secs(1),
            seed: None,
        }
    }
}

impl SchedulerConfig {
    /// Checks every field.
    ///
    /// # Errors
    ///
    /// [`SchedulerError::Config`] naming the field.
    pub fn validate(&self) -> Result<(), SchedulerError> {
        let fail =
            |field: &'static str, message: String| Err(SchedulerError::Config { field, message });
        if self.reload_interval.is_zero() {
            return fail("reload_interval", "must be positive (default 10s)".into());
        }
        if self.run_lease < Duration::from_millis(300) {
            return fail(
                "run_lease",
                format!(
                    "{:?} is too short; use at least 300ms (default 30s)",
                    self.run_lease
                ),
            );
        }
        if !(0.0..=0.5).contains(&self.drift_tolerance) {
            return fail(
                "drift_tolerance",
                format!("{} must be within 0.0..=0.5", self.drift_tolerance),
            );
        }
        if self.history_limit == 0 {
            return fail(
                "history_limit",
                "must be at least 1: the newest slot marks where the schedule stands".into(),
            );
        }
        if self.tick.is_zero() {
            return fail("tick", "must be positive (default 1s)".into());
        }
        Ok(())
    }
}
