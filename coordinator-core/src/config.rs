//! Timing configuration, its defaults, and the rules that make it safe.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::duration_format::{self, format_duration};

/// When a worker that starts up may take a lease whose holder looks long dead
/// without first watching it for a full `lease_timeout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StaleTakeover {
    /// Only where the store declares its clock trustworthy (S3, GCS, Azure);
    /// never on the local directory or an unknown store.
    #[default]
    Auto,
    /// Never: always watch the lease for `lease_timeout` first.
    Never,
}

/// The timings of one namespace's election and membership.
///
/// Defaults are those of the system this library replaces. Every duration
/// can be written in serde config as `"5s"` or `"1500ms"`; a bare number is
/// read as milliseconds, as the replaced system writes them
/// (`"heartbeat_interval": 5000` is 5 s).
///
/// ```
/// use coordinator_core::Config;
/// let config: Config = serde_json::from_str(r#"{"lease_timeout": "20s"}"#).unwrap();
/// assert_eq!(config.lease_timeout.as_secs(), 20);
/// config.validate().unwrap();
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// How often a follower reads the lease and the leader renews it.
    /// Default 5 s.
    #[serde(with = "duration_format")]
    pub heartbeat_interval: Duration,
    /// A random extra delay in `0..=heartbeat_jitter` added to every
    /// heartbeat, membership write and list, so workers spread out.
    /// Default 1 s. May be zero.
    #[serde(with = "duration_format")]
    pub heartbeat_jitter: Duration,
    /// How long a follower must see the lease unchanged, on its own clock,
    /// before it may take it over. Default 15 s.
    #[serde(with = "duration_format")]
    pub lease_timeout: Duration,
    /// How long after the start of its last successful renewal the leader
    /// stops acting as leader if it cannot renew. Default 10 s.
    #[serde(with = "duration_format")]
    pub renew_deadline: Duration,
    /// How long the leader waits, on its own clock, for a worker's heartbeat
    /// object to change before removing it from the roster. Default 20 s.
    #[serde(with = "duration_format")]
    pub worker_timeout: Duration,
    /// How often a worker rewrites its own heartbeat object. Default 10 s
    /// (half the worker timeout).
    #[serde(with = "duration_format")]
    pub membership_interval: Duration,
    /// How often the designated successor (the first successor the lease
    /// lists) reads the lease, so that it sees a release or a crash sooner.
    /// Default 2 s; capped at `heartbeat_interval` (so shortening the
    /// heartbeat alone never makes the successor slower). One worker per namespace
    /// pays for it: about 1,100 more GETs an hour, $0.33 a month on S3.
    #[serde(with = "duration_format")]
    pub successor_poll_interval: Duration,
    /// How often the leader lists the heartbeat objects. Default 12 s: a
    /// dead worker leaves the roster within `worker_timeout` plus one list
    /// interval, and listing less often pays for the designated
    /// successor's faster reads.
    #[serde(with = "duration_format")]
    pub worker_list_interval: Duration,
    /// The largest relative error of any worker's clock rate, ρ, as a
    /// fraction (0.1 = 10%). Default 0.1. Must be in `[0, 1)`.
    pub drift_tolerance: f64,
    /// The longest one store request may take before the driver gives up on
    /// it (a write then counts as ambiguous). Default 2 s.
    #[serde(with = "duration_format")]
    pub request_timeout: Duration,
    /// The first back-off after a store error; it doubles per consecutive
    /// error up to `heartbeat_interval`. Default 250 ms.
    #[serde(with = "duration_format")]
    pub retry_backoff: Duration,
    /// The extra wait per rank of a follower in the succession order
    /// (rank 0, the lexicographically first live worker, tries at once).
    /// Default 100 ms. May be zero.
    #[serde(with = "duration_format")]
    pub succession_step: Duration,
    /// How many successors the lease itself lists. Default 8.
    pub successors_in_lease: usize,
    /// Whether a starting worker may take a stale lease at once, judged on
    /// the store's own timestamps. Default `auto`.
    pub stale_takeover: StaleTakeover,
    /// The margin added to the stale-lease age bound for timestamp
    /// granularity (1 s on S3 and Azure) and clock error between store
    /// hosts. Default 2 s.
    #[serde(with = "duration_format")]
    pub stale_takeover_margin: Duration,
    /// How long a worker watches a namespace whose lease holder cannot be
    /// known (the lease is missing, corrupt or of a newer format, and the
    /// longest wait any holder was promised is not on record either:
    /// `metadata.json` is missing, unreadable or from an older release)
    /// before it takes the lease. It must cover the longest
    /// [`takeover_wait`](Config::takeover_wait) of every fleet that shares
    /// the namespace, including one that is being rolled out or back.
    /// Default 60 s (four default lease timeouts). Only operator events
    /// (deletions, corruption, a canary rolled back) ever make a worker wait
    /// this long.
    #[serde(with = "duration_format")]
    pub recovery_wait: Duration,
    /// How often the leader rewrites `metadata.json` (same epoch mark, new
    /// nonce) so that an age-based lifecycle rule never finds it the oldest
    /// object of a namespace in use. Default 1 h; S3 lifecycle rules count
    /// in whole days.
    #[serde(with = "duration_format")]
    pub metadata_refresh_interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(5),
            heartbeat_jitter: Duration::from_secs(1),
            lease_timeout: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            worker_timeout: Duration::from_secs(20),
            membership_interval: Duration::from_secs(10),
            successor_poll_interval: Duration::from_secs(2),
            worker_list_interval: Duration::from_secs(12),
            drift_tolerance: 0.1,
            request_timeout: Duration::from_secs(2),
            retry_backoff: Duration::from_millis(250),
            succession_step: Duration::from_millis(100),
            successors_in_lease: 8,
            stale_takeover: StaleTakeover::Auto,
            stale_takeover_margin: Duration::from_secs(2),
            recovery_wait: Duration::from_secs(60),
            metadata_refresh_interval: Duration::from_secs(3600),
        }
    }
}

/// A configuration that breaks a rule. Names the field, the value, the rule
/// and a fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid coordinator config: `{field}` = {value}: {rule}; {hint}")]
pub struct ConfigError {
    /// The field at fault.
    pub field: &'static str,
    /// Its value, formatted as in a config file.
    pub value: String,
    /// The rule it breaks.
    pub rule: String,
    /// What to change.
    pub hint: String,
}

fn invalid(field: &'static str, value: String, rule: String, hint: String) -> ConfigError {
    ConfigError {
        field,
        value,
        rule,
        hint,
    }
}

impl Config {
    /// The lease-to-deadline ratio the drift tolerance requires:
    /// `(1 + ρ) / (1 − ρ)`.
    pub fn required_ratio(drift_tolerance: f64) -> f64 {
        (1.0 + drift_tolerance) / (1.0 - drift_tolerance)
    }

    /// Checks the rules that make the timings safe:
    ///
    /// * no interval or timeout is zero (jitter and succession step may be);
    /// * `0 ≤ drift_tolerance < 1`;
    /// * `lease_timeout / renew_deadline > (1+ρ)/(1−ρ)`: a follower's
    ///   `lease_timeout`, counted by a clock running up to ρ fast from a
    ///   moment after the leader's renewal started, ends after the leader's
    ///   `renew_deadline`, counted by a clock running up to ρ slow;
    /// * `renew_deadline > 1.2 × (heartbeat_interval + heartbeat_jitter)`,
    ///   so a renewal is always attempted well before the deadline;
    /// * `2 × request_timeout ≤ renew_deadline − (heartbeat_interval + heartbeat_jitter)`,
    ///   so at least two attempts fit between the scheduled renewal and the
    ///   deadline;
    /// * `worker_timeout > membership_interval + heartbeat_jitter` and
    ///   `worker_timeout > heartbeat_interval + heartbeat_jitter`, so a live
    ///   worker is never timed out between two of its writes.
    ///
    /// # Errors
    /// The first rule broken, as a [`ConfigError`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use coordinator_core::Config;
    /// let mut config = Config::default();
    /// config.lease_timeout = Duration::from_secs(10); // equal to renew_deadline
    /// let err = config.validate().unwrap_err();
    /// assert_eq!(err.field, "lease_timeout");
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        let nonzero = [
            ("heartbeat_interval", self.heartbeat_interval),
            ("lease_timeout", self.lease_timeout),
            ("renew_deadline", self.renew_deadline),
            ("worker_timeout", self.worker_timeout),
            ("membership_interval", self.membership_interval),
            ("successor_poll_interval", self.successor_poll_interval),
            ("worker_list_interval", self.worker_list_interval),
            ("request_timeout", self.request_timeout),
            ("retry_backoff", self.retry_backoff),
            ("metadata_refresh_interval", self.metadata_refresh_interval),
        ];
        for (field, value) in nonzero {
            if value.is_zero() {
                return Err(invalid(
                    field,
                    format_duration(value),
                    "must be greater than zero".into(),
                    format!("see the default in the docs of Config::{field}"),
                ));
            }
        }
        let rho = self.drift_tolerance;
        if !(0.0..1.0).contains(&rho) {
            return Err(invalid(
                "drift_tolerance",
                rho.to_string(),
                "must be at least 0 and below 1".into(),
                "use a small fraction such as 0.1 (10%)".into(),
            ));
        }
        let ratio = Self::required_ratio(rho);
        let actual = self.lease_timeout.as_secs_f64() / self.renew_deadline.as_secs_f64();
        if actual <= ratio {
            return Err(invalid(
                "lease_timeout",
                format_duration(self.lease_timeout),
                format!(
                    "lease_timeout / renew_deadline ({}) = {actual:.3} must exceed (1+ρ)/(1−ρ) = {ratio:.3} for drift_tolerance ρ = {rho}",
                    format_duration(self.renew_deadline)
                ),
                format!(
                    "raise lease_timeout above {:.0}ms or lower renew_deadline or drift_tolerance",
                    self.renew_deadline.as_secs_f64() * ratio * 1000.0
                ),
            ));
        }
        let cycle = self.heartbeat_interval + self.heartbeat_jitter;
        // Integer arithmetic: 1.2 × 6 s in floating point is 7.1999… s.
        if self.renew_deadline.as_micros() * 5 <= cycle.as_micros() * 6 {
            return Err(invalid(
                "renew_deadline",
                format_duration(self.renew_deadline),
                format!(
                    "must exceed 1.2 × (heartbeat_interval + heartbeat_jitter) = 1.2 × {}",
                    format_duration(cycle)
                ),
                "raise renew_deadline or shorten heartbeat_interval".into(),
            ));
        }
        let slack = self.renew_deadline.saturating_sub(cycle);
        if self.request_timeout * 2 > slack {
            return Err(invalid(
                "request_timeout",
                format_duration(self.request_timeout),
                format!(
                    "two attempts must fit between a scheduled renewal and the deadline: 2 × request_timeout ≤ renew_deadline − (heartbeat_interval + heartbeat_jitter) = {}",
                    format_duration(slack)
                ),
                "shorten request_timeout or lengthen renew_deadline".into(),
            ));
        }
        for (field, interval) in [
            ("membership_interval", self.membership_interval),
            ("heartbeat_interval", self.heartbeat_interval),
        ] {
            if self.worker_timeout <= interval + self.heartbeat_jitter {
                return Err(invalid(
                    "worker_timeout",
                    format_duration(self.worker_timeout),
                    format!(
                        "must exceed {field} + heartbeat_jitter = {}",
                        format_duration(interval + self.heartbeat_jitter)
                    ),
                    format!("raise worker_timeout or shorten {field}"),
                ));
            }
        }
        if self.recovery_wait < self.takeover_wait() {
            return Err(invalid(
                "recovery_wait",
                format_duration(self.recovery_wait),
                format!(
                    "must be at least this worker's own takeover wait, max(lease_timeout, renew_deadline × (1+ρ)/(1−ρ)) = {}",
                    format_duration(self.takeover_wait())
                ),
                "raise recovery_wait above the longest takeover wait of every fleet sharing the namespace".into(),
            ));
        }
        Ok(())
    }

    /// How long followers of a lease written under this config must see it
    /// unchanged before taking it over: the longer of `lease_timeout` and
    /// [`minimum_safe_wait`](Config::minimum_safe_wait) for this config's own
    /// renew deadline. This is what a leader with this config is promised;
    /// it is recorded in `metadata.json` (the longest ever) so that a worker
    /// that finds the lease gone or unreadable knows how long to wait.
    ///
    /// ```
    /// use coordinator_core::Config;
    /// assert_eq!(Config::default().takeover_wait().as_secs(), 15);
    /// ```
    pub fn takeover_wait(&self) -> Duration {
        self.lease_timeout
            .max(self.minimum_safe_wait(self.renew_deadline, self.drift_tolerance))
    }

    /// The shortest time a follower must watch a lease written under the
    /// given leader timings before it may take it over, on its own clock:
    /// `renew_deadline × (1+ρ)/(1−ρ)` with ρ the larger of both tolerances,
    /// plus one millisecond so equality never passes.
    pub fn minimum_safe_wait(
        &self,
        leader_renew_deadline: Duration,
        leader_drift: f64,
    ) -> Duration {
        let rho = self.drift_tolerance.max(leader_drift).clamp(0.0, 0.99);
        let secs = leader_renew_deadline.as_secs_f64() * Self::required_ratio(rho);
        Duration::from_secs_f64(secs) + Duration::from_millis(1)
    }
}

#[cfg(test)]
#[allow(clippy::field_reassign_with_default)]
mod tests {
    use super::*;

    fn field_of(config: &Config) -> &'static str {
        config.validate().unwrap_err().field
    }

    #[test]
    fn defaults_are_the_replaced_systems_and_valid() {
        let c = Config::default();
        assert_eq!(c.heartbeat_interval, Duration::from_secs(5));
        assert_eq!(c.lease_timeout, Duration::from_secs(15));
        assert_eq!(c.worker_timeout, Duration::from_secs(20));
        c.validate().unwrap();
    }

    #[test]
    fn each_rule_names_its_field() {
        let mut c = Config::default();
        c.heartbeat_interval = Duration::ZERO;
        assert_eq!(field_of(&c), "heartbeat_interval");

        let mut c = Config::default();
        c.drift_tolerance = 1.0;
        assert_eq!(field_of(&c), "drift_tolerance");

        // 15 / 10 = 1.5 vs (1.25/0.75) = 1.667 at ρ = 0.25
        let mut c = Config::default();
        c.drift_tolerance = 0.25;
        let err = c.validate().unwrap_err();
        assert_eq!(err.field, "lease_timeout");
        assert!(err.to_string().contains("(1+ρ)/(1−ρ)"), "{err}");

        let mut c = Config::default();
        c.renew_deadline = Duration::from_millis(7200); // exactly 1.2 × 6 s
        c.lease_timeout = Duration::from_secs(30);
        assert_eq!(field_of(&c), "renew_deadline");

        let mut c = Config::default();
        c.request_timeout = Duration::from_millis(2001);
        assert_eq!(field_of(&c), "request_timeout");

        let mut c = Config::default();
        c.worker_timeout = Duration::from_secs(11);
        assert_eq!(field_of(&c), "worker_timeout");

        let mut c = Config::default();
        c.membership_interval = Duration::from_secs(2);
        c.worker_timeout = Duration::from_secs(6);
        assert_eq!(field_of(&c), "worker_timeout");
    }

    #[test]
    fn serde_reads_duration_strings_and_rejects_unknown_fields() {
        let c: Config = serde_json::from_str(
            r#"{"heartbeat_interval":"1500ms","stale_takeover":"never","drift_tolerance":0.05}"#,
        )
        .unwrap();
        assert_eq!(c.heartbeat_interval, Duration::from_millis(1500));
        assert_eq!(c.stale_takeover, StaleTakeover::Never);
        let back: Config = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        let err = serde_json::from_str::<Config>(r#"{"lease_timout":"5s"}"#).unwrap_err();
        assert!(err.to_string().contains("lease_timout"), "{err}");
        assert!(serde_json::from_str::<Config>(r#"{"lease_timeout":"5"}"#).is_err());
    }

    #[test]
    fn minimum_safe_wait_uses_the_larger_tolerance() {
        let c = Config::default();
        let wait = c.minimum_safe_wait(Duration::from_secs(10), 0.2);
        // 10 × 1.2/0.8 = 15 s, plus 1 ms
        assert_eq!(wait, Duration::from_millis(15_001));
        assert!(c.minimum_safe_wait(Duration::from_secs(10), 0.0) < wait);
    }
}
