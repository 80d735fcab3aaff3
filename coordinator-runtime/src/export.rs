//! [`prometheus_text`]: every coordinator's [`metrics()`](crate::Coordinator::metrics)
//! and [`health()`](crate::Coordinator::health) in the Prometheus text
//! exposition format (version 0.0.4), for a `/metrics` endpoint.
//!
//! With the `metrics` feature the same values are also emitted through the
//! `metrics` facade as they change, for any exporter.
//!
//! This text is hand-written rather than produced by the facade: the runtime
//! already keeps every counter as a monotonic snapshot ([`Counters`](coordinator_core::Counters),
//! [`RequestCounts`](coordinator_store::RequestCounts)), so rendering them
//! on scrape needs no global recorder, no dependency and no instrumentation
//! of the core machine, and the names below are the library's own counter
//! names with `coordinator_` in front and `_total` behind.
//!
//! Every series has the labels `namespace`, `worker_id` and `plugin`
//! (empty in global mode). The plugins' counters (the last rows, emitted
//! through the facade by coordinator-plugins' `metrics` feature, not in
//! this text) have `namespace`, `worker_id` and `plugin_name` (`queue.orders`,
//! `scheduler.cron`, `ttl.sessions`: the plugin's name, as in
//! `coordinator_plugin_hook_failures_total`).
//!
//! | name | type | unit | what |
//! | --- | --- | --- | --- |
//! | `coordinator_heartbeats_total` | counter | cycles | lease reads (follower) or renewal rounds (leader) |
//! | `coordinator_membership_writes_total` | counter | writes | writes of this worker's heartbeat object |
//! | `coordinator_elections_total` | counter | attempts | acquisition attempts |
//! | `coordinator_acquisitions_total` | counter | acquisitions | acquisitions that succeeded |
//! | `coordinator_leader_changes_total` | counter | changes | changes of leader observed |
//! | `coordinator_renewals_total` | counter | renewals | successful renewals |
//! | `coordinator_renewal_failures_total` | counter | attempts | failed renewal attempts |
//! | `coordinator_worker_registrations_total` | counter | workers | workers the leader saw join |
//! | `coordinator_worker_timeouts_total` | counter | workers | workers the leader timed out |
//! | `coordinator_store_errors_total` | counter | requests | failed store requests of the election loop |
//! | `coordinator_surveys_total` | counter | surveys | surveys of a namespace without lease and metadata |
//! | `coordinator_store_requests_total` | counter | requests | store requests by `source` (`election`, `plugins`) and `kind` (`get`, `head`, `put`, `list`, `delete`) |
//! | `coordinator_store_request_errors_total` | counter | requests | failed store requests by `source` |
//! | `coordinator_store_requests_usd_total` | counter | US dollars | what those requests cost at S3 Standard prices, by `source` |
//! | `coordinator_is_leader` | gauge | 0/1 | this worker leads (deadline checked) |
//! | `coordinator_epoch` | gauge | epoch | the highest epoch seen |
//! | `coordinator_workers` | gauge | workers | live workers this worker knows of |
//! | `coordinator_health` | gauge | 0/1 | one series per `status` (`healthy`, `degraded`, `unhealthy`); 1 for the current one |
//! | `coordinator_started_at_seconds` | gauge | Unix seconds | when the coordinator started |
//! | `coordinator_last_heartbeat_at_seconds` | gauge | Unix seconds | when its last heartbeat cycle began |
//! | `coordinator_plugin_hook_failures_total` | counter | hooks | plugin hooks that failed, panicked or outlived their term, by `plugin_name` and `hook` |
//! | `coordinator_renewal_margin_seconds` | histogram | seconds | per successful renewal, the time left before the leader's deadline when it landed: it shrinks before a leader loses its lease |
//! | `coordinator_store_request_seconds` | histogram | seconds | latency of each store request of the election loop |
//! | `coordinator_queue_enqueued_total` | counter | messages | messages enqueued (retries not included) |
//! | `coordinator_queue_handled_total` | counter | messages | claimed messages completed by their handler |
//! | `coordinator_queue_retried_total` | counter | messages | failed attempts written again for another attempt (by the leader) |
//! | `coordinator_queue_recovered_claims_total` | counter | claims | stalled claims the leader recovered after their visibility timeout |
//! | `coordinator_queue_dead_lettered_total` | counter | messages | dead letters written after the last attempt |
//! | `coordinator_scheduler_runs_started_total` | counter | attempts | job attempts started (retries included) |
//! | `coordinator_scheduler_runs_succeeded_total` | counter | attempts | job attempts that succeeded |
//! | `coordinator_scheduler_runs_failed_total` | counter | attempts | job attempts that failed or timed out |
//! | `coordinator_scheduler_missed_skipped_total` | counter | catch-ups | times missed slots of a job were skipped (missed-run policy `skip`) |
//! | `coordinator_ttl_expired_total` | counter | records | records expired (deleted, soft-deleted, archived or called back) |

use std::fmt::Write;
use std::sync::Arc;

use coordinator_store::RequestKind;

use crate::coordinator::{Coordinator, CoordinatorMetrics};
use crate::health::{Health, HealthStatus};

/// The counters of [`Counters`](coordinator_core::Counters), by name.
pub(crate) const COUNTERS: [(&str, &str); 11] = [
    (
        "heartbeats",
        "Heartbeat cycles: a follower's lease read or a leader's renewal round.",
    ),
    (
        "membership_writes",
        "Successful writes of this worker's own heartbeat object.",
    ),
    ("elections", "Acquisition attempts."),
    ("acquisitions", "Acquisitions that succeeded."),
    (
        "leader_changes",
        "Changes of the leader this worker observed.",
    ),
    ("renewals", "Successful renewals."),
    ("renewal_failures", "Renewal attempts that failed."),
    ("worker_registrations", "Workers the leader saw join."),
    ("worker_timeouts", "Workers the leader timed out."),
    (
        "store_errors",
        "Store requests of the election loop that failed.",
    ),
    (
        "surveys",
        "Surveys of a namespace whose lease and metadata were both missing.",
    ),
];

fn counter_value(metrics: &CoordinatorMetrics, name: &str) -> u64 {
    counter_of(&metrics.counters, name)
}

/// One of [`COUNTERS`] by name.
pub(crate) fn counter_of(c: &coordinator_core::Counters, name: &str) -> u64 {
    match name {
        "heartbeats" => c.heartbeats,
        "membership_writes" => c.membership_writes,
        "elections" => c.elections,
        "acquisitions" => c.acquisitions,
        "leader_changes" => c.leader_changes,
        "renewals" => c.renewals,
        "renewal_failures" => c.renewal_failures,
        "worker_registrations" => c.worker_registrations,
        "worker_timeouts" => c.worker_timeouts,
        "store_errors" => c.store_errors,
        _ => c.surveys,
    }
}

/// Escapes a label value (backslash, double quote, newline).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(m: &CoordinatorMetrics, extra: &[(&str, &str)]) -> String {
    let mut out = format!(
        "namespace=\"{}\",worker_id=\"{}\",plugin=\"{}\"",
        escape(&m.namespace),
        escape(&m.worker_id),
        escape(m.plugin.as_deref().unwrap_or(""))
    );
    for (k, v) in extra {
        let _ = write!(out, ",{k}=\"{}\"", escape(v));
    }
    out
}

/// The Prometheus text of `coordinators` (see the module docs for the
/// names). Each metric's `# HELP` and `# TYPE` come once, then one sample
/// per coordinator.
///
/// ```
/// # use std::sync::Arc;
/// # use coordinator_runtime::{CoordinatorRegistry, CoordinatorConfig};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), coordinator_runtime::CoordinatorError> {
/// let registry = CoordinatorRegistry::new(
///     Arc::new(coordinator_store::MemoryStore::new()),
///     CoordinatorConfig::default().with_worker_id("w1"),
/// )?;
/// let orders = registry.get("orders").await?;
/// orders.leadership().wait_for(|view| view.is_leader).await.unwrap();
/// let text = coordinator_runtime::prometheus_text(&registry.coordinators());
/// assert!(text.contains(r#"coordinator_is_leader{namespace="orders",worker_id="w1",plugin=""} 1"#));
/// assert!(text.contains("# TYPE coordinator_acquisitions_total counter"));
/// # registry.close().await;
/// # Ok(())
/// # }
/// ```
pub fn prometheus_text(coordinators: &[Arc<Coordinator>]) -> String {
    let snapshots: Vec<(CoordinatorMetrics, Health)> = coordinators
        .iter()
        .map(|c| (c.metrics(), c.health()))
        .collect();
    render(&snapshots)
}

pub(crate) fn render(snapshots: &[(CoordinatorMetrics, Health)]) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: &mut dyn FnMut(&mut String)| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        samples(&mut out);
    };
    for (counter, help) in COUNTERS {
        let name = format!("coordinator_{counter}_total");
        family(&name, "counter", help, &mut |out| {
            for (m, _) in snapshots {
                let _ = writeln!(
                    out,
                    "{name}{{{}}} {}",
                    labels(m, &[]),
                    counter_value(m, counter)
                );
            }
        });
    }
    family(
        "coordinator_store_requests_total",
        "counter",
        "Store requests by source (election loop or plugins) and kind.",
        &mut |out| {
            for (m, _) in snapshots {
                for (source, counts) in [("election", &m.requests), ("plugins", &m.plugin_requests)]
                {
                    for kind in RequestKind::ALL {
                        let _ = writeln!(
                            out,
                            "coordinator_store_requests_total{{{}}} {}",
                            labels(m, &[("source", source), ("kind", kind.as_str())]),
                            counts.of(kind)
                        );
                    }
                }
            }
        },
    );
    family(
        "coordinator_store_request_errors_total",
        "counter",
        "Store requests that failed, by source.",
        &mut |out| {
            for (m, _) in snapshots {
                for (source, counts) in [("election", &m.requests), ("plugins", &m.plugin_requests)]
                {
                    let _ = writeln!(
                        out,
                        "coordinator_store_request_errors_total{{{}}} {}",
                        labels(m, &[("source", source)]),
                        counts.errors
                    );
                }
            }
        },
    );
    family(
        "coordinator_store_requests_usd_total",
        "counter",
        "What the store requests cost at S3 Standard prices, in US dollars, by source.",
        &mut |out| {
            for (m, _) in snapshots {
                for (source, usd) in [
                    ("election", m.requests_usd),
                    ("plugins", m.plugin_requests_usd),
                ] {
                    let _ = writeln!(
                        out,
                        "coordinator_store_requests_usd_total{{{}}} {usd}",
                        labels(m, &[("source", source)])
                    );
                }
            }
        },
    );
    family(
        "coordinator_plugin_hook_failures_total",
        "counter",
        "Plugin hooks that failed, panicked or outlived their term, by plugin and hook.",
        &mut |out| {
            for (m, _) in snapshots {
                for f in &m.plugin_hook_failures {
                    let _ = writeln!(
                        out,
                        "coordinator_plugin_hook_failures_total{{{}}} {}",
                        labels(m, &[("plugin_name", &f.plugin), ("hook", f.hook)]),
                        f.failures
                    );
                }
            }
        },
    );
    family(
        "coordinator_is_leader",
        "gauge",
        "1 while this worker leads (deadline checked).",
        &mut |out| {
            for (m, _) in snapshots {
                let _ = writeln!(
                    out,
                    "coordinator_is_leader{{{}}} {}",
                    labels(m, &[]),
                    u8::from(m.is_leader)
                );
            }
        },
    );
    family(
        "coordinator_epoch",
        "gauge",
        "The highest epoch this worker has seen.",
        &mut |out| {
            for (m, _) in snapshots {
                let _ = writeln!(out, "coordinator_epoch{{{}}} {}", labels(m, &[]), m.epoch);
            }
        },
    );
    family(
        "coordinator_workers",
        "gauge",
        "Live workers this worker knows of.",
        &mut |out| {
            for (m, _) in snapshots {
                let _ = writeln!(
                    out,
                    "coordinator_workers{{{}}} {}",
                    labels(m, &[]),
                    m.worker_count
                );
            }
        },
    );
    family(
        "coordinator_health",
        "gauge",
        "1 for the coordinator's current health status, 0 for the others.",
        &mut |out| {
            for (m, health) in snapshots {
                for status in [
                    HealthStatus::Healthy,
                    HealthStatus::Degraded,
                    HealthStatus::Unhealthy,
                ] {
                    let _ = writeln!(
                        out,
                        "coordinator_health{{{}}} {}",
                        labels(m, &[("status", status.as_str())]),
                        u8::from(health.status == status)
                    );
                }
            }
        },
    );
    family(
        "coordinator_started_at_seconds",
        "gauge",
        "When the coordinator started, in Unix seconds.",
        &mut |out| {
            for (m, _) in snapshots {
                let _ = writeln!(
                    out,
                    "coordinator_started_at_seconds{{{}}} {}",
                    labels(m, &[]),
                    m.started_at_unix_ms as f64 / 1000.0
                );
            }
        },
    );
    family(
        "coordinator_last_heartbeat_at_seconds",
        "gauge",
        "When the last heartbeat cycle began, in Unix seconds (absent before the first).",
        &mut |out| {
            for (m, _) in snapshots {
                if let Some(at) = m.last_heartbeat_at_unix_ms {
                    let _ = writeln!(
                        out,
                        "coordinator_last_heartbeat_at_seconds{{{}}} {}",
                        labels(m, &[]),
                        at as f64 / 1000.0
                    );
                }
            }
        },
    );
    for (name, help, pick) in [
        (
            "coordinator_renewal_margin_seconds",
            "Per successful renewal, the time left before the leader's deadline when it landed.",
            (|m: &CoordinatorMetrics| &m.renewal_margin_seconds)
                as fn(&CoordinatorMetrics) -> &crate::Histogram,
        ),
        (
            "coordinator_store_request_seconds",
            "Latency of each store request of the election loop.",
            |m: &CoordinatorMetrics| &m.store_request_seconds,
        ),
    ] {
        family(name, "histogram", help, &mut |out| {
            for (m, _) in snapshots {
                let h = pick(m);
                for (bound, count) in h.cumulative() {
                    let le = if bound.is_infinite() {
                        "+Inf".to_owned()
                    } else {
                        bound.to_string()
                    };
                    let _ = writeln!(
                        out,
                        "{name}_bucket{{{}}} {count}",
                        labels(m, &[("le", &le)])
                    );
                }
                let _ = writeln!(out, "{name}_sum{{{}}} {}", labels(m, &[]), h.sum);
                let _ = writeln!(out, "{name}_count{{{}}} {}", labels(m, &[]), h.count);
            }
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
