//! [`Health`]: whether a coordinator is doing its job, for liveness and
//! readiness probes, with client-go's leader-election health check as the
//! anchor.
//!
//! client-go's `HealthzAdaptor` fails a process that believes it leads but
//! has not renewed its lease for longer than the lease plus a tolerance: the
//! process is stuck and should be restarted. The rules here, first match
//! wins:
//!
//! | status | when |
//! | --- | --- |
//! | unhealthy | the namespace was refused (another implementation's or a newer lease), or the loop has stopped or was aborted |
//! | unhealthy | the loop still believes this worker leads, but its renew deadline passed more than `margin` ago (the loop or its clock is stuck: a stuck leader is what a liveness probe must catch) |
//! | degraded | the last 3 or more store requests all failed (the worker cannot see or renew the lease; a leader steps down at its deadline) |
//! | degraded | leading, but late to renew: its last successful renewal began more than `heartbeat_interval + heartbeat_jitter + margin` ago |
//! | degraded | starting (the first read of the lease has not answered) or stopping |
//! | healthy | otherwise: leading with a deadline ahead, or following |
//!
//! The margin is the election's `request_timeout` (2 s by default): the
//! loop acts on a passed deadline within one request's time. Late and
//! past the deadline are [`coordinator_core::RenewalRule`]'s judgement,
//! the same rule `coordinator status` applies to a lease from outside.
//!
//! # Kubernetes
//!
//! Serve `health()` on an HTTP endpoint (the `coordinator run
//! --metrics-addr` of `coordinator-cli` serves `/healthz`): answer 200 for
//! healthy and degraded and 503 for unhealthy to a **liveness** probe (a
//! restart cures a stuck loop, not an unreachable store), and 200 only for
//! healthy to a **readiness** probe.

use coordinator_core::{Instant, LeadershipView, RenewalLag, RenewalRule};
use serde::Serialize;

use crate::coordinator::CoordinatorState;

/// Store requests in a row that must fail before a worker is degraded.
pub const FAILING_REQUESTS_DEGRADED: u64 = 3;

/// A coordinator's health status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// Leading with a deadline ahead, or following.
    Healthy,
    /// Working, but not able to do its job right now (store failing,
    /// starting, stopping).
    Degraded,
    /// Stuck or stopped: restart it.
    Unhealthy,
}

impl HealthStatus {
    /// `healthy`, `degraded` or `unhealthy`.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "healthy",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }
}

/// The outcome of [`Coordinator::health`](crate::Coordinator::health).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Health {
    /// The status.
    pub status: HealthStatus,
    /// Why, in one line.
    pub reason: String,
}

/// The facts [`assess`] judges.
#[derive(Clone, Debug)]
pub(crate) struct HealthInput<'a> {
    pub(crate) state: CoordinatorState,
    pub(crate) view: &'a LeadershipView,
    pub(crate) now: Instant,
    /// This worker's renewal timings, with the margin as the tolerance.
    pub(crate) rule: RenewalRule,
    pub(crate) consecutive_store_failures: u64,
    pub(crate) refusal: Option<String>,
}

/// The rules of the module docs.
pub(crate) fn assess(input: &HealthInput<'_>) -> Health {
    let health = |status, reason: String| Health { status, reason };
    match input.state {
        CoordinatorState::Refused => {
            return health(
                HealthStatus::Unhealthy,
                format!(
                    "namespace refused: {}",
                    input
                        .refusal
                        .as_deref()
                        .unwrap_or("records this version cannot use")
                ),
            )
        }
        CoordinatorState::Stopped | CoordinatorState::Aborted => {
            return health(
                HealthStatus::Unhealthy,
                "the election loop has stopped".into(),
            )
        }
        _ => {}
    }
    // The last successful renewal began `renew_deadline` before the
    // deadline it set.
    let lag = match (input.view.is_leader, input.view.deadline) {
        (true, Some(deadline)) => input.rule.judge(
            input
                .now
                .saturating_since(deadline - input.rule.renew_deadline),
        ),
        _ => RenewalLag::OnTime,
    };
    if let RenewalLag::PastDeadline { overdue } = lag {
        return health(
            HealthStatus::Unhealthy,
            format!(
                "believes it leads at epoch {} but its renew deadline passed {} ms ago \
                 (margin {} ms): the election loop is stuck",
                input.view.epoch,
                (overdue + input.rule.tolerance).as_millis(),
                input.rule.tolerance.as_millis()
            ),
        );
    }
    if input.consecutive_store_failures >= FAILING_REQUESTS_DEGRADED {
        return health(
            HealthStatus::Degraded,
            format!(
                "the last {} store requests failed{}",
                input.consecutive_store_failures,
                if input.view.is_leader {
                    "; the leader steps down at its deadline unless one succeeds"
                } else {
                    ""
                }
            ),
        );
    }
    if let RenewalLag::Late { overdue } = lag {
        return health(
            HealthStatus::Degraded,
            format!(
                "leader late to renew at epoch {}: last renewal began {} ms ago, expected every \
                 {} ms at most; it steps down at its deadline unless one succeeds",
                input.view.epoch,
                (overdue + input.rule.on_time_within()).as_millis(),
                input.rule.interval.as_millis()
            ),
        );
    }
    match input.state {
        CoordinatorState::Starting => {
            return health(
                HealthStatus::Degraded,
                "starting: the first read of the lease has not answered".into(),
            )
        }
        CoordinatorState::Stopping => {
            return health(HealthStatus::Degraded, "stopping".into());
        }
        _ => {}
    }
    let reason = match (&input.view.leader, input.view.is_leader) {
        (_, true) => format!("leads at epoch {}", input.view.epoch),
        (Some(leader), false) => format!("follows {leader} at epoch {}", input.view.epoch),
        (None, false) => "follows; no leader yet".into(),
    };
    health(HealthStatus::Healthy, reason)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use coordinator_core::WorkerId;

    fn view(is_leader: bool, deadline_ms: Option<u64>) -> LeadershipView {
        LeadershipView {
            leader: Some(WorkerId::new("w1").unwrap_or_else(|_| unreachable!())),
            epoch: 4,
            is_leader,
            deadline: deadline_ms.map(Instant::from_millis),
        }
    }

    fn input(view: &LeadershipView, now_ms: u64, failures: u64) -> HealthInput<'_> {
        HealthInput {
            state: CoordinatorState::Running,
            view,
            now: Instant::from_millis(now_ms),
            // Renewals every 5 s + 1 s of jitter, renew deadline 10 s,
            // margin 2 s.
            rule: RenewalRule {
                interval: Duration::from_secs(6),
                renew_deadline: Duration::from_secs(10),
                tolerance: Duration::from_secs(2),
            },
            consecutive_store_failures: failures,
            refusal: None,
        }
    }

    #[test]
    fn client_gos_rules() {
        // The last renewal began at 5 s (deadline 15 s).
        let leading = view(true, Some(15_000));
        assert_eq!(
            assess(&input(&leading, 13_000, 0)).status,
            HealthStatus::Healthy
        );
        // Past the renewal interval and the margin: late to renew.
        let late = assess(&input(&leading, 13_100, 0));
        assert_eq!(late.status, HealthStatus::Degraded);
        assert!(late.reason.contains("late to renew"), "{}", late.reason);
        assert!(late.reason.contains("8100 ms ago"), "{}", late.reason);
        // Past the deadline, within the margin: the loop may not have acted yet.
        assert_eq!(
            assess(&input(&leading, 16_900, 0)).status,
            HealthStatus::Degraded
        );
        let stuck = assess(&input(&leading, 17_500, 0));
        assert_eq!(stuck.status, HealthStatus::Unhealthy);
        assert!(stuck.reason.contains("stuck"), "{}", stuck.reason);
        assert!(
            stuck.reason.contains("passed 2500 ms ago"),
            "{}",
            stuck.reason
        );
        // A failing store degrades, leader or not.
        let failing = assess(&input(&leading, 9_000, 3));
        // (Failing requests are named before lateness: they are the cause.)
        assert_eq!(failing.status, HealthStatus::Degraded);
        assert!(failing.reason.contains("steps down"), "{}", failing.reason);
        let following = view(false, None);
        assert_eq!(
            assess(&input(&following, 99_000, 2)).status,
            HealthStatus::Healthy
        );
        assert_eq!(
            assess(&input(&following, 99_000, 5)).status,
            HealthStatus::Degraded
        );
        // Refused and stopped loops are unhealthy; starting is degraded.
        let mut refused = input(&following, 0, 0);
        refused.state = CoordinatorState::Refused;
        assert_eq!(assess(&refused).status, HealthStatus::Unhealthy);
        let mut starting = input(&following, 0, 0);
        starting.state = CoordinatorState::Starting;
        assert_eq!(assess(&starting).status, HealthStatus::Degraded);
    }
}
