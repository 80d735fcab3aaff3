//! [`QueueConfig`]: claim timings, retries, concurrency, the leader's sweep.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::queue::QueueError;
use crate::RetryPolicy;

/// How a queue's workers claim and its leader maintains.
///
/// Every field has a default; in serde config durations are `"30s"`,
/// `"500ms"`:
///
/// ```
/// use std::time::Duration;
/// use coordinator_plugins::queue::QueueConfig;
/// let config: QueueConfig = serde_json::from_str(r#"{
///     "visibility_timeout": "1m",
///     "concurrency": 8,
///     "retry": { "max_attempts": 3, "initial_backoff": "2s" }
/// }"#).unwrap();
/// assert_eq!(config.visibility_timeout, Duration::from_secs(60));
/// config.validate().unwrap();
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// How long a claim lasts unless the handler extends it. The claimer
    /// stops (cancels its handler) when this has passed on its own clock
    /// since just before it sent the claim; the leader recovers the claim
    /// once its version has stood unchanged for this, stretched by
    /// [`drift_tolerance`](Self::drift_tolerance), plus
    /// [`recovery_grace`](Self::recovery_grace), on the leader's clock.
    /// Default 30 s.
    #[serde(with = "crate::duration")]
    pub visibility_timeout: Duration,
    /// Attempts per message and the back-off between them. After the last
    /// failed attempt the message is dead-lettered with its errors.
    /// Default 5 attempts, 1 s doubling up to 5 min.
    pub retry: RetryPolicy,
    /// Handlers one [`QueueWorker`](crate::queue::QueueWorker) runs at once.
    /// Default 4.
    pub concurrency: usize,
    /// How often an idle worker lists the queue. Default 1 s.
    #[serde(with = "crate::duration")]
    pub poll_interval: Duration,
    /// An idle worker doubles its poll interval up to this. Default 10 s.
    #[serde(with = "crate::duration")]
    pub max_poll_interval: Duration,
    /// Claim order. `1` (the default) is FIFO: each worker tries the
    /// unclaimed messages in id order. `n > 1` starts each attempt at a
    /// random one of the first `n` unclaimed messages (then wraps), which
    /// spreads many workers over the head of the queue and cuts lost claim
    /// races (each costs a PUT) at the price of strict order.
    pub claim_window: usize,
    /// How often the leader recovers stalled claims and cleans up finished
    /// ones. Default 5 s.
    #[serde(with = "crate::duration")]
    pub sweep_interval: Duration,
    /// The largest clock rate error between any two workers (ρ); the
    /// leader waits `visibility × (1+ρ)/(1−ρ) + recovery_grace`. Default
    /// 0.1, at most 0.5; the election's default: both bound the rate error between the
    /// same workers' clocks, so keep it equal to the election's
    /// `drift_tolerance` (a smaller value here would make a claim's
    /// guarantee weaker than the leader's).
    pub drift_tolerance: f64,
    /// Added to the leader's wait before it recovers a claim. Default 2 s.
    #[serde(with = "crate::duration")]
    pub recovery_grace: Duration,
    /// Claims the leader works on at once during a sweep. Default 16.
    pub leader_concurrency: usize,
    /// How many past errors a message keeps (the newest). Default 10.
    pub max_errors_kept: usize,
    /// Fixes the random stream (lock tokens, nonces, id suffixes, claim
    /// order) for reproducible tests. Default none: drawn from the OS.
    pub seed: Option<u64>,
    /// The bug fixed in b91c245, back on purpose: the leader's `finish`
    /// deletes the message of an `Abandoned` claim too, losing it when the
    /// claimer recognised its own claim only after its visibility ran out.
    /// For the simulator's test that its storms find that bug; never set
    /// it otherwise.
    #[cfg(feature = "mutations")]
    #[doc(hidden)]
    #[serde(skip)]
    pub mutation_abandoned_deletes_message: bool,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            visibility_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            concurrency: 4,
            poll_interval: Duration::from_secs(1),
            max_poll_interval: Duration::from_secs(10),
            claim_window: 1,
            sweep_interval: Duration::from_secs(5),
            drift_tolerance: 0.1,
            recovery_grace: Duration::from_secs(2),
            leader_concurrency: 16,
            max_errors_kept: 10,
            seed: None,
            #[cfg(feature = "mutations")]
            mutation_abandoned_deletes_message: false,
        }
    }
}

impl QueueConfig {
    /// Checks every field.
    ///
    /// # Errors
    ///
    /// [`QueueError::Config`] naming the field, its value and the rule.
    ///
    /// ```
    /// use coordinator_plugins::queue::QueueConfig;
    /// let config = QueueConfig { concurrency: 0, ..QueueConfig::default() };
    /// assert!(config.validate().unwrap_err().to_string().contains("concurrency"));
    /// ```
    pub fn validate(&self) -> Result<(), QueueError> {
        let fail =
            |field: &'static str, message: String| Err(QueueError::Config { field, message });
        if self.visibility_timeout < Duration::from_millis(100) {
            return fail(
                "visibility_timeout",
                format!(
                    "{:?} is too short; use at least 100ms (default 30s)",
                    self.visibility_timeout
                ),
            );
        }
        if let Err((field, message)) = self.retry.check() {
            return Err(QueueError::Config {
                field: match field {
                    "max_attempts" => "retry.max_attempts",
                    "multiplier" => "retry.multiplier",
                    _ => "retry.initial_backoff",
                },
                message,
            });
        }
        if self.concurrency == 0 {
            return fail("concurrency", "must be at least 1 (default 4)".into());
        }
        if self.claim_window == 0 {
            return fail("claim_window", "must be at least 1 (1 = FIFO)".into());
        }
        if self.leader_concurrency == 0 {
            return fail(
                "leader_concurrency",
                "must be at least 1 (default 16)".into(),
            );
        }
        if self.poll_interval.is_zero() || self.max_poll_interval < self.poll_interval {
            return fail(
                "poll_interval",
                format!(
                    "{:?} must be positive and at most max_poll_interval {:?}",
                    self.poll_interval, self.max_poll_interval
                ),
            );
        }
        if self.sweep_interval.is_zero() {
            return fail("sweep_interval", "must be positive (default 5s)".into());
        }
        if !(0.0..=0.5).contains(&self.drift_tolerance) {
            return fail(
                "drift_tolerance",
                format!(
                    "{} must be within 0.0..=0.5 (default 0.1)",
                    self.drift_tolerance
                ),
            );
        }
        Ok(())
    }
}
