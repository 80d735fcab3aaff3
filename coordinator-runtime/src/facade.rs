//! The `metrics` feature: every value of [`prometheus_text`](crate::prometheus_text)
//! emitted through the [`metrics`] facade as it changes, for whatever
//! exporter the application installed (`metrics-exporter-prometheus`,
//! OpenTelemetry, StatsD, …). Same names, labels and units as the table in
//! [`prometheus_text`](crate::prometheus_text): counters are set with
//! `absolute` from the loop's monotonic snapshots after every input, the
//! gauges with `set`, and the two histograms get one `record` per renewal
//! and per store request as they happen. Without an installed recorder the
//! facade's calls do nothing.

use coordinator_core::Counters;
use coordinator_store::{RequestCounts, RequestKind};
use metrics::Label;

use crate::export::COUNTERS;

/// The labels of one coordinator: `namespace`, `worker_id`, `plugin`.
#[derive(Clone, Debug)]
pub(crate) struct Labels(Vec<Label>);

impl Labels {
    pub(crate) fn new(namespace: &str, worker_id: &str, plugin: Option<&str>) -> Self {
        Self(vec![
            Label::new("namespace", namespace.to_owned()),
            Label::new("worker_id", worker_id.to_owned()),
            Label::new("plugin", plugin.unwrap_or("").to_owned()),
        ])
    }

    fn with(&self, extra: &[(&'static str, &'static str)]) -> Vec<Label> {
        let mut labels = self.0.clone();
        labels.extend(extra.iter().map(|(k, v)| Label::new(*k, *v)));
        labels
    }
}

/// What the loop publishes after an input.
pub(crate) struct Snapshot<'a> {
    pub(crate) counters: &'a Counters,
    pub(crate) requests: &'a RequestCounts,
    pub(crate) plugin_requests: &'a RequestCounts,
    pub(crate) is_leader: bool,
    pub(crate) epoch: u64,
    pub(crate) workers: usize,
    /// `(plugin, hook, failures)`.
    pub(crate) hook_failures: &'a [(String, &'static str, u64)],
}

/// Sets every counter and gauge.
pub(crate) fn publish(labels: &Labels, s: &Snapshot<'_>) {
    for (name, _) in COUNTERS {
        let value = crate::export::counter_of(s.counters, name);
        metrics::counter!(format!("coordinator_{name}_total"), labels.0.iter()).absolute(value);
    }
    for (source, counts) in [("election", s.requests), ("plugins", s.plugin_requests)] {
        for kind in RequestKind::ALL {
            metrics::counter!(
                "coordinator_store_requests_total",
                labels.with(&[("source", source), ("kind", kind.as_str())])
            )
            .absolute(counts.of(kind));
        }
        metrics::counter!(
            "coordinator_store_request_errors_total",
            labels.with(&[("source", source)])
        )
        .absolute(counts.errors);
    }
    for (plugin, hook, failures) in s.hook_failures {
        let mut with = labels.0.clone();
        with.push(Label::new("plugin_name", plugin.clone()));
        with.push(Label::new("hook", *hook));
        metrics::counter!("coordinator_plugin_hook_failures_total", with).absolute(*failures);
    }
    metrics::gauge!("coordinator_is_leader", labels.0.iter()).set(f64::from(u8::from(s.is_leader)));
    metrics::gauge!("coordinator_epoch", labels.0.iter()).set(s.epoch as f64);
    metrics::gauge!("coordinator_workers", labels.0.iter()).set(s.workers as f64);
}

/// One renewal's margin before the deadline, in seconds.
pub(crate) fn renewal_margin(labels: &Labels, seconds: f64) {
    metrics::histogram!("coordinator_renewal_margin_seconds", labels.0.iter()).record(seconds);
}

/// One store request's latency, in seconds.
pub(crate) fn store_latency(labels: &Labels, seconds: f64) {
    metrics::histogram!("coordinator_store_request_seconds", labels.0.iter()).record(seconds);
}
