//! [`TtlConfig`]: bucket width, sweep cadence, the action on expiry.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::TtlError;

/// What the leader does to a record once it expired.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpiryAction {
    /// Delete it (a conditional delete, or a tombstone where the backend has
    /// none). The default.
    #[default]
    HardDelete,
    /// Mark it deleted, keeping its payload ([`Ttl::get`](super::Ttl::get)
    /// still returns it, marked).
    SoftDelete,
    /// Copy it under the archive prefix, then delete it.
    Archive,
    /// Call the registered [`ExpiryCallback`](super::ExpiryCallback), then
    /// delete it. The record is claimed first, so the callback runs once
    /// per expiry unless a leader dies during it (then at least once).
    Callback,
}

/// How a TTL expirer buckets and sweeps.
///
/// ```
/// use std::time::Duration;
/// use coordinator_plugins::ttl::{ExpiryAction, TtlConfig};
/// let config: TtlConfig = serde_json::from_str(r#"{ "bucket_width": "5m", "action": "archive" }"#).unwrap();
/// assert_eq!(config.bucket_width, Duration::from_secs(300));
/// assert_eq!(config.action, ExpiryAction::Archive);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TtlConfig {
    /// The width of an index bucket. A record is acted on within one bucket
    /// width plus one sweep interval (plus the skew margin) after it
    /// expires, never before. Wider buckets mean fewer listings. Default
    /// 1 min.
    #[serde(with = "crate::duration")]
    pub bucket_width: Duration,
    /// How often the leader sweeps. Default 10 s.
    #[serde(with = "crate::duration")]
    pub sweep_interval: Duration,
    /// Expiry instants are wall-clock times (from the registering worker's
    /// clock, or given absolutely); the leader acts only once its own wall
    /// clock is past the expiry by this margin, so nothing expires early as
    /// long as the two clocks differ by less. Default 1 s.
    #[serde(with = "crate::duration")]
    pub clock_skew_margin: Duration,
    /// The action on expiry. Default [`ExpiryAction::HardDelete`].
    pub action: ExpiryAction,
    /// Records worked on at once during a sweep. Default 16.
    pub concurrency: usize,
    /// If more overdue buckets than this are waiting (a long outage), the
    /// leader lists the whole index once instead of bucket by bucket.
    /// Default 100.
    pub max_bucket_listings: usize,
    /// How often the leader lists the whole index to catch entries written
    /// into a bucket it had already swept (a registrant whose clock lagged
    /// the leader's). Also done at the start of every term. Default 1 h.
    #[serde(with = "crate::duration")]
    pub full_scan_interval: Duration,
    /// How long a callback may run; also its claim's lease. Default 30 s.
    #[serde(with = "crate::duration")]
    pub callback_timeout: Duration,
    /// The largest clock rate error between two workers (ρ), for taking
    /// over a callback claim. Default 0.1, the election's default: both bound the rate error between the
    /// same workers' clocks, so keep it equal to the election's
    /// `drift_tolerance` (a smaller value here would make a claim's
    /// guarantee weaker than the leader's).
    pub drift_tolerance: f64,
    /// Fixes the random stream for reproducible tests.
    pub seed: Option<u64>,
}

impl Default for TtlConfig {
    fn default() -> Self {
        Self {
            bucket_width: Duration::from_secs(60),
            sweep_interval: Duration::from_secs(10),
            clock_skew_margin: Duration::from_secs(1),
            action: ExpiryAction::HardDelete,
            concurrency: 16,
            max_bucket_listings: 100,
            full_scan_interval: Duration::from_secs(3600),
            callback_timeout: Duration::from_secs(30),
            drift_tolerance: 0.1,
            seed: None,
        }
    }
}

impl TtlConfig {
    /// Checks every field.
    ///
    /// # Errors
    ///
    /// [`TtlError::Config`] naming the field.
    pub fn validate(&self) -> Result<(), TtlError> {
        let fail = |field: &'static str, message: String| Err(TtlError::Config { field, message });
        if self.bucket_width < Duration::from_secs(1) {
            return fail(
                "bucket_width",
                format!(
                    "{:?} is too narrow; use at least 1s (default 1m)",
                    self.bucket_width
                ),
            );
        }
        if self.sweep_interval.is_zero() {
            return fail("sweep_interval", "must be positive (default 10s)".into());
        }
        if self.concurrency == 0 {
            return fail("concurrency", "must be at least 1 (default 16)".into());
        }
        if self.max_bucket_listings == 0 {
            return fail(
                "max_bucket_listings",
                "must be at least 1 (default 100)".into(),
            );
        }
        if self.callback_timeout.is_zero() {
            return fail("callback_timeout", "must be positive (default 30s)".into());
        }
        if !(0.0..=0.5).contains(&self.drift_tolerance) {
            return fail(
                "drift_tolerance",
                format!("{} must be within 0.0..=0.5", self.drift_tolerance),
            );
        }
        Ok(())
    }
}
