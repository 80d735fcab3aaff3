//! [`RetryPolicy`]: how many attempts, and the exponential back-off between
//! them, shared by the queue and the scheduler.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Attempts and exponential back-off with a cap: the wait after attempt `n`
/// (1-based) is `initial_backoff × multiplier^(n-1)`, at most `max_backoff`.
///
/// ```
/// use std::time::Duration;
/// use coordinator_plugins::RetryPolicy;
/// let policy = RetryPolicy {
///     max_attempts: 5,
///     initial_backoff: Duration::from_secs(1),
///     max_backoff: Duration::from_secs(10),
///     multiplier: 3.0,
/// };
/// assert_eq!(policy.backoff(1), Duration::from_secs(1));
/// assert_eq!(policy.backoff(2), Duration::from_secs(3));
/// assert_eq!(policy.backoff(3), Duration::from_secs(9));
/// assert_eq!(policy.backoff(4), Duration::from_secs(10), "capped");
/// assert!(policy.has_attempt_after(4));
/// assert!(!policy.has_attempt_after(5));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; at least 1. Default 5.
    pub max_attempts: u32,
    /// The wait after the first failed attempt. Default 1 s.
    #[serde(with = "crate::duration")]
    pub initial_backoff: Duration,
    /// The longest wait. Default 5 min.
    #[serde(with = "crate::duration")]
    pub max_backoff: Duration,
    /// How much each wait grows; at least 1.0. Default 2.0.
    pub multiplier: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            multiplier: 2.0,
        }
    }
}

impl RetryPolicy {
    /// One attempt, no retry.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The wait after failed attempt `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exponent = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let factor = self.multiplier.max(1.0).powi(exponent);
        let secs = self.initial_backoff.as_secs_f64() * factor;
        if !secs.is_finite() || secs >= self.max_backoff.as_secs_f64() {
            self.max_backoff
        } else {
            Duration::from_secs_f64(secs)
        }
    }

    /// True if another attempt follows failed attempt `attempt` (1-based).
    pub fn has_attempt_after(&self, attempt: u32) -> bool {
        attempt < self.max_attempts
    }

    /// The rule every field must follow, as `(field, message)`.
    pub(crate) fn check(&self) -> Result<(), (&'static str, String)> {
        if self.max_attempts == 0 {
            return Err((
                "max_attempts",
                "must be at least 1 (the first attempt counts)".into(),
            ));
        }
        if !(self.multiplier.is_finite() && self.multiplier >= 1.0) {
            return Err((
                "multiplier",
                format!("{} must be a number >= 1.0; try 2.0", self.multiplier),
            ));
        }
        if self.initial_backoff > self.max_backoff {
            return Err((
                "initial_backoff",
                format!(
                    "{:?} must not exceed max_backoff {:?}",
                    self.initial_backoff, self.max_backoff
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_and_serde() {
        assert!(RetryPolicy::default().check().is_ok());
        let bad = RetryPolicy {
            max_attempts: 0,
            ..RetryPolicy::default()
        };
        assert_eq!(bad.check().unwrap_err().0, "max_attempts");
        let policy: RetryPolicy =
            serde_json::from_str(r#"{"max_attempts":3,"initial_backoff":"500ms"}"#).unwrap();
        assert_eq!(policy.initial_backoff, Duration::from_millis(500));
        assert_eq!(policy.backoff(40), policy.max_backoff);
        assert_eq!(RetryPolicy::none().max_attempts, 1);
    }
}
