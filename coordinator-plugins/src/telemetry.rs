//! The `metrics` feature: one counter per kind of plugin work, through the
//! [`metrics`](https://docs.rs/metrics) facade (the application installs
//! the exporter). Without the feature every call here compiles to
//! nothing.
//!
//! Every series has the labels `namespace`, `worker_id` (the worker that
//! did the work) and `plugin_name` (the plugin's
//! [`name`](coordinator_runtime::CoordinatorPlugin::name): `queue.orders`,
//! `scheduler.cron`, `ttl.sessions`), as in the runtime's
//! `coordinator_plugin_hook_failures_total`, which counts the plugins'
//! failed hooks (the feature turns on coordinator-runtime's `metrics`
//! too). The names, units and meanings are in [`PLUGIN_COUNTERS`] and in
//! the one table of every metric, in `coordinator_runtime::prometheus_text`'s
//! documentation.

/// One kind of plugin work that moves a counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Work {
    /// A message written by an enqueue (not a retry).
    Enqueued,
    /// A claimed message completed by its handler.
    Handled,
    /// A failed attempt's message written again for another attempt.
    Retried,
    /// A stalled claim the leader recovered after its visibility timeout.
    RecoveredClaim,
    /// A dead letter written after the last attempt.
    DeadLettered,
    /// A job attempt started.
    RunStarted,
    /// A job attempt that succeeded.
    RunSucceeded,
    /// A job attempt that failed or timed out.
    RunFailed,
    /// Missed slots skipped (missed-run policy `skip`), once per job and
    /// catch-up.
    MissedSkipped,
    /// A record expired (deleted, soft-deleted, archived, or called back).
    Expired,
}

/// Every counter: `(name, unit, what)`.
pub const PLUGIN_COUNTERS: [(&str, &str, &str); 10] = [
    (
        "coordinator_queue_enqueued_total",
        "messages",
        "messages enqueued (retries not included)",
    ),
    (
        "coordinator_queue_handled_total",
        "messages",
        "claimed messages completed by their handler",
    ),
    (
        "coordinator_queue_retried_total",
        "messages",
        "failed attempts written again for another attempt (by the leader)",
    ),
    (
        "coordinator_queue_recovered_claims_total",
        "claims",
        "stalled claims the leader recovered after their visibility timeout",
    ),
    (
        "coordinator_queue_dead_lettered_total",
        "messages",
        "dead letters written after the last attempt",
    ),
    (
        "coordinator_scheduler_runs_started_total",
        "attempts",
        "job attempts started (retries included)",
    ),
    (
        "coordinator_scheduler_runs_succeeded_total",
        "attempts",
        "job attempts that succeeded",
    ),
    (
        "coordinator_scheduler_runs_failed_total",
        "attempts",
        "job attempts that failed or timed out",
    ),
    (
        "coordinator_scheduler_missed_skipped_total",
        "catch-ups",
        "times missed slots of a job were skipped (missed-run policy `skip`)",
    ),
    (
        "coordinator_ttl_expired_total",
        "records",
        "records expired (deleted, soft-deleted, archived or called back)",
    ),
];

impl Work {
    /// The counter's name.
    #[cfg_attr(not(any(feature = "metrics", test)), allow(dead_code))]
    pub(crate) fn name(self) -> &'static str {
        let index = match self {
            Work::Enqueued => 0,
            Work::Handled => 1,
            Work::Retried => 2,
            Work::RecoveredClaim => 3,
            Work::DeadLettered => 4,
            Work::RunStarted => 5,
            Work::RunSucceeded => 6,
            Work::RunFailed => 7,
            Work::MissedSkipped => 8,
            Work::Expired => 9,
        };
        PLUGIN_COUNTERS[index].0
    }
}

/// Counts one `work` of the plugin `plugin_name` done by the worker of
/// `scope`.
pub(crate) fn count(work: Work, scope: &coordinator_runtime::PluginScope, plugin_name: &str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(
        work.name(),
        "namespace" => scope.namespace().as_str().to_owned(),
        "worker_id" => scope.worker_id().as_str().to_owned(),
        "plugin_name" => plugin_name.to_owned()
    )
    .increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (work, scope, plugin_name);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_name() {
        let all = [
            Work::Enqueued,
            Work::Handled,
            Work::Retried,
            Work::RecoveredClaim,
            Work::DeadLettered,
            Work::RunStarted,
            Work::RunSucceeded,
            Work::RunFailed,
            Work::MissedSkipped,
            Work::Expired,
        ];
        let names: std::collections::BTreeSet<_> = all.iter().map(|w| w.name()).collect();
        assert_eq!(names.len(), PLUGIN_COUNTERS.len());
        assert!(names
            .iter()
            .all(|n| n.starts_with("coordinator_") && n.ends_with("_total")));
    }
}
