//! The one rule for "leader late to renew": how overdue a leader's next
//! renewal is, from the time since its last one. The leader's own health
//! check (`Coordinator::health` in coordinator-runtime) and an outside
//! observer (`coordinator status`) judge with it.
//!
//! A leader renews every `heartbeat_interval` plus up to
//! `heartbeat_jitter`, and stops acting as leader once `renew_deadline`
//! has passed since its last successful renewal began. Both thresholds get
//! a `tolerance` on top: the time one renewal request may take
//! (`request_timeout`) and, for an observer that reads store timestamps,
//! their granularity (a whole second on S3 and Azure).
//!
//! | time since the last renewal | [`RenewalLag`] |
//! | --- | --- |
//! | up to interval + jitter + tolerance | `OnTime` |
//! | more, up to renew_deadline + tolerance | `Late` (degraded: renewals failing or slow) |
//! | more than renew_deadline + tolerance | `PastDeadline` (no live leader; a worker that still believes it leads is stuck) |
//!
//! Time is an input: the caller measures the time since the renewal on
//! whatever clock it trusts.

use std::time::Duration;

use crate::config::Config;

/// How a leader's renewals stand (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RenewalLag {
    /// Renewed within the renewal interval plus the tolerance.
    OnTime,
    /// Past the renewal interval plus the tolerance, not past the deadline.
    Late {
        /// How far past the interval plus the tolerance.
        overdue: Duration,
    },
    /// Past the renew deadline plus the tolerance: the holder has stopped
    /// acting as leader (or, if it still believes it leads, it is stuck).
    PastDeadline {
        /// How far past the deadline plus the tolerance.
        overdue: Duration,
    },
}

/// The timings [`RenewalRule::judge`] compares with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RenewalRule {
    /// The longest expected gap between renewals: `heartbeat_interval +
    /// heartbeat_jitter`.
    pub interval: Duration,
    /// The holder's renew deadline (an observer uses the one the lease
    /// records: the holder's, which may differ from its own config).
    pub renew_deadline: Duration,
    /// Added to both thresholds: one request's time, plus the store
    /// timestamps' granularity for an observer that reads them.
    pub tolerance: Duration,
}

impl RenewalRule {
    /// The rule for `config`'s renewal interval, `renew_deadline` (the
    /// holder's) and `tolerance`.
    pub fn new(config: &Config, renew_deadline: Duration, tolerance: Duration) -> Self {
        Self {
            interval: config.heartbeat_interval + config.heartbeat_jitter,
            renew_deadline,
            tolerance,
        }
    }

    /// Judges a leader whose last successful renewal was `since_renewal`
    /// ago.
    ///
    /// ```
    /// use std::time::Duration;
    /// use coordinator_core::{Config, RenewalLag, RenewalRule};
    /// let ms = Duration::from_millis;
    /// // Defaults: heartbeat 5 s + 1 s jitter, renew deadline 10 s.
    /// let rule = RenewalRule::new(&Config::default(), ms(10_000), ms(2_000));
    /// assert_eq!(rule.judge(ms(7_900)), RenewalLag::OnTime);
    /// assert_eq!(rule.judge(ms(8_500)), RenewalLag::Late { overdue: ms(500) });
    /// assert_eq!(rule.judge(ms(12_300)), RenewalLag::PastDeadline { overdue: ms(300) });
    /// ```
    pub fn judge(&self, since_renewal: Duration) -> RenewalLag {
        let deadline = self.renew_deadline + self.tolerance;
        if since_renewal > deadline {
            return RenewalLag::PastDeadline {
                overdue: since_renewal - deadline,
            };
        }
        let expected = self.interval + self.tolerance;
        if since_renewal > expected {
            return RenewalLag::Late {
                overdue: since_renewal - expected,
            };
        }
        RenewalLag::OnTime
    }

    /// The longest time since a renewal that is still on time.
    pub fn on_time_within(&self) -> Duration {
        self.interval + self.tolerance
    }

    /// The longest time since a renewal before the holder is past its
    /// deadline.
    pub fn deadline_within(&self) -> Duration {
        self.renew_deadline + self.tolerance
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn rule() -> RenewalRule {
        RenewalRule {
            interval: ms(6_000),
            renew_deadline: ms(10_000),
            tolerance: ms(1_000),
        }
    }

    #[test]
    fn thresholds_are_inclusive_of_the_tolerance() {
        let r = rule();
        assert_eq!(r.judge(ms(0)), RenewalLag::OnTime);
        assert_eq!(r.judge(ms(7_000)), RenewalLag::OnTime);
        assert_eq!(r.judge(ms(7_001)), RenewalLag::Late { overdue: ms(1) });
        assert_eq!(r.judge(ms(11_000)), RenewalLag::Late { overdue: ms(4_000) });
        assert_eq!(
            r.judge(ms(11_001)),
            RenewalLag::PastDeadline { overdue: ms(1) }
        );
        assert_eq!(r.on_time_within(), ms(7_000));
        assert_eq!(r.deadline_within(), ms(11_000));
    }

    #[test]
    fn the_deadline_wins_when_it_is_shorter_than_the_interval() {
        // A holder whose recorded renew deadline is below this observer's
        // renewal interval (a rolling change of timings): past its
        // deadline is past its deadline, never merely late.
        let r = RenewalRule {
            interval: ms(20_000),
            renew_deadline: ms(5_000),
            tolerance: ms(0),
        };
        assert_eq!(r.judge(ms(4_000)), RenewalLag::OnTime);
        assert_eq!(
            r.judge(ms(6_000)),
            RenewalLag::PastDeadline { overdue: ms(1_000) }
        );
    }

    #[test]
    fn new_takes_the_interval_and_jitter_from_the_config() {
        let config = Config::default();
        let r = RenewalRule::new(&config, ms(30_000), ms(2_000));
        assert_eq!(
            r.interval,
            config.heartbeat_interval + config.heartbeat_jitter
        );
        assert_eq!(r.renew_deadline, ms(30_000));
        assert_eq!(r.tolerance, ms(2_000));
    }
}
