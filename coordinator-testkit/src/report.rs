//! What a run found and measured.

use std::fmt::Write as _;

use serde::Serialize;

use crate::faults::StoreFlavor;
use crate::scenario::Mode;
use crate::store::{Requests, HOURS_PER_MONTH};

/// The invariant a violation breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationKind {
    /// Two workers believed they led at one instant of true time.
    SplitBrain,
    /// An acquisition's epoch was not larger than every earlier one.
    EpochNotIncreasing,
    /// A worker's view of the epoch went back.
    EpochViewDecreased,
    /// A write under an old epoch was applied to a fenced object after a
    /// newer leader sealed it.
    FencedWriteApplied,
    /// Shared state was written without a condition.
    UnconditionalWrite,
    /// No new leader within the liveness bound after the leader died.
    Liveness,
    /// No successor within the hand-over bound after a graceful stop.
    Handover,
    /// No new leader within the recovery bound after an operator fault
    /// that hid the lease's holder (or a canary's roll-back).
    Recovery,
    /// A dead worker was still in the roster after the roster bound.
    Roster,
    /// A foreign writer overwrote the lease and no machine refused.
    ForeignUndetected,
}

/// One violation.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Violation {
    /// The invariant.
    pub kind: ViolationKind,
    /// True time, seconds from the start.
    pub at_seconds: f64,
    /// What happened, with worker ids and epochs.
    pub detail: String,
}

/// Count, median, 99th percentile and maximum of samples, in seconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Samples.
    pub count: usize,
    /// Median.
    pub p50: Option<f64>,
    /// 99th percentile (nearest rank).
    pub p99: Option<f64>,
    /// Largest.
    pub max: Option<f64>,
}

impl Summary {
    /// Summarises `samples` (seconds).
    pub fn of(samples: &[f64]) -> Self {
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let rank = |q: f64| -> Option<f64> {
            if sorted.is_empty() {
                return None;
            }
            let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
            Some(round3(sorted[i]))
        };
        Self {
            count: sorted.len(),
            p50: rank(0.5),
            p99: rank(0.99),
            max: sorted.last().copied().map(round3),
        }
    }

    fn show(&self) -> String {
        match (self.p50, self.p99, self.max) {
            (Some(a), Some(b), Some(c)) => {
                format!("n={} p50={a:.2}s p99={b:.2}s max={c:.2}s", self.count)
            }
            _ => "n=0".into(),
        }
    }
}

pub(crate) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Requests by role.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct RoleRequests {
    /// Sent by a machine while it led.
    pub leader: Requests,
    /// Sent by every other machine (and by leaders before and after).
    pub followers: Requests,
}

/// The emulated plugin's fenced object.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FencedStats {
    /// Writes the store applied.
    pub writes_applied: u64,
    /// Seals (first write of an epoch) applied.
    pub seals: u64,
    /// Writes under an epoch older than the sealed one that the store
    /// refused (the fencing at work).
    pub old_epoch_rejected: u64,
    /// The plugin's own requests (not in `requests`).
    pub requests: u64,
}

/// The result of one run. `--json` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The root seed: `COORD_SIM_SEED=<seed>` replays the run.
    pub seed: u64,
    /// Worker processes configured.
    pub workers: usize,
    /// Plugins per worker.
    pub plugins: usize,
    /// The algorithm.
    pub mode: Mode,
    /// The fault kinds that were on.
    pub faults: Vec<&'static str>,
    /// How they were chosen (`none`, `swarm`, a list, `custom`).
    pub fault_spec: String,
    /// The store's flavour.
    pub store: StoreFlavor,
    /// Simulated time.
    pub simulated_seconds: f64,
    /// Wall time the run took.
    pub wall_seconds: f64,
    /// Every violation found (the first 100; `violation_count` has all).
    pub violations: Vec<Violation>,
    /// All violations found.
    pub violation_count: u64,
    /// Distinct pairs of workers that believed they led at once.
    pub split_brain_count: u64,
    /// The election's requests by kind (the emulated plugin's excluded).
    pub requests: Requests,
    /// The same by role.
    pub requests_by_role: RoleRequests,
    /// Requests per worker-hour (worker-hours: the time each process was
    /// up, summed).
    pub requests_per_worker_hour: f64,
    /// S3 Standard cost per worker-month (730 h), every worker averaged,
    /// the leader included.
    pub usd_per_worker_month: f64,
    /// The leader's own requests priced per month, per election (one per
    /// plugin in per-plugin mode).
    pub leader_usd_per_month: f64,
    /// The followers' requests priced per follower-month (the leader's
    /// share of worker-hours left out).
    pub follower_usd_per_worker_month: f64,
    /// Worker-hours simulated.
    pub worker_hours: f64,
    /// From the first start to the first leader, the slowest election (per
    /// plugin in per-plugin mode).
    pub convergence_seconds: Option<f64>,
    /// From a leader's crash to its successor's acquisition.
    pub failover_seconds: Summary,
    /// From a leader's graceful stop to its successor's acquisition.
    pub handover_seconds: Summary,
    /// Acquisitions by a worker other than the previous holder.
    pub leader_changes: u64,
    /// Successful acquisitions.
    pub acquisitions: u64,
    /// From an operator fault that hid the lease's holder (or a canary's
    /// last write) to the next acquisition.
    pub recovery_seconds: Summary,
    /// Liveness checks made (each crash or graceful stop of a leader in
    /// calm, held to its own bound).
    pub liveness_checks: u64,
    /// Recovery checks made (each fault that hid the holder in calm).
    pub recovery_checks: u64,
    /// How much earlier than its bound each checked take-over came
    /// (liveness, hand-over and recovery checks).
    pub liveness_margin_seconds: Summary,
    /// The documented residual case, seen (not a violation): after
    /// everything of an election was deleted (`wipe_namespace`, or a wipe
    /// of the election after its marker expired), a worker
    /// that had never seen a lease recreated it at once, as new, with the
    /// epochs starting again (one count), while the old leader led on to
    /// its deadline (one count per such pair).
    pub residual_cases: u64,
    /// Acquisitions whose epoch was not above the highest before, after
    /// every record carrying that epoch (the lease, `metadata.json` and the
    /// election's marker) had been deleted: documented (epochs may then
    /// start below the old ones), not a violation.
    pub epochs_restarted: u64,
    /// Operator faults applied (deletions, corruption, wipes).
    pub operator_faults: u64,
    /// Objects a lifecycle rule expired.
    pub lifecycle_deletions: u64,
    /// Canaries deployed.
    pub canaries: u64,
    /// Restarts of a rolling change of timings.
    pub rollout_restarts: u64,
    /// Steps of the store's clock.
    pub store_clock_steps: u64,
    /// Roster checks made.
    pub roster_checks: u64,
    /// Foreign writes detected (every machine refused the namespace).
    pub foreign_detected: u64,
    /// Duplicate worker ids the machines reported.
    pub duplicate_ids_reported: u64,
    /// The emulated plugin's fenced object.
    pub fenced: FencedStats,
    /// Events processed.
    pub events: u64,
    /// A hash of everything that happened, for determinism checks.
    pub trace_hash: String,
    /// Every fail-over sample, seconds (for pooling over seeds).
    #[serde(skip)]
    pub failover_samples: Vec<f64>,
    /// Every hand-over sample, seconds.
    #[serde(skip)]
    pub handover_samples: Vec<f64>,
    /// Every recovery sample, seconds.
    #[serde(skip)]
    pub recovery_samples: Vec<f64>,
    /// Every margin of a checked take-over, seconds.
    #[serde(skip)]
    pub margin_samples: Vec<f64>,
    /// The trace lines up to the first violation (only with `trace`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trace_before_first_violation: Vec<String>,
    /// The last trace lines (only with `trace`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trace_tail: Vec<String>,
}

impl Report {
    /// True when no invariant was broken.
    pub fn passed(&self) -> bool {
        self.violation_count == 0
    }

    /// The command that replays this run (for runs made by the CLI; runs
    /// with hand-made fault sets replay from their test).
    pub fn rerun_hint(&self) -> String {
        let store = if self.fault_spec.starts_with("swarm") {
            String::new()
        } else {
            format!(" --store {}", self.store.name())
        };
        format!(
            "cargo run --release -p coordinator-testkit --bin coordinator-sim -- --seed {} --workers {} --plugins {} --mode {} --duration {}s --faults {}{store} --trace",
            self.seed,
            self.workers,
            self.plugins,
            self.mode,
            self.simulated_seconds,
            self.fault_spec,
        )
    }

    /// A readable table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let mut row = |k: &str, v: String| {
            let _ = writeln!(out, "  {k:<30} {v}");
        };
        row("seed", self.seed.to_string());
        row(
            "workers × plugins, mode",
            format!("{} × {}, {}", self.workers, self.plugins, self.mode),
        );
        row(
            "faults",
            if self.faults.is_empty() {
                "none".into()
            } else {
                self.faults.join(", ")
            },
        );
        row(
            "simulated / wall",
            format!(
                "{:.0} s / {:.2} s",
                self.simulated_seconds, self.wall_seconds
            ),
        );
        row(
            "violations",
            format!(
                "{} (split brain pairs: {})",
                self.violation_count, self.split_brain_count
            ),
        );
        let r = &self.requests;
        row(
            "requests",
            format!(
                "{} (get {}, put {}, list {}, delete {}, head {})",
                r.total(),
                r.get,
                r.put,
                r.list,
                r.delete,
                r.head
            ),
        );
        row(
            "requests / worker-hour",
            format!("{:.1}", self.requests_per_worker_hour),
        );
        row(
            "$ / worker-month",
            format!(
                "{:.3} (followers {:.3}, leader {:.3} / month)",
                self.usd_per_worker_month,
                self.follower_usd_per_worker_month,
                self.leader_usd_per_month
            ),
        );
        row(
            "convergence",
            self.convergence_seconds
                .map_or("-".into(), |c| format!("{c:.3} s")),
        );
        row("fail-over", self.failover_seconds.show());
        row("hand-over", self.handover_seconds.show());
        row("recovery", self.recovery_seconds.show());
        row(
            "take-over margin to bound",
            self.liveness_margin_seconds.show(),
        );
        row(
            "leader changes / acquisitions",
            format!("{} / {}", self.leader_changes, self.acquisitions),
        );
        row(
            "checks (liveness, recovery, roster)",
            format!(
                "{}, {}, {}",
                self.liveness_checks, self.recovery_checks, self.roster_checks
            ),
        );
        row("store", self.store.name().to_owned());
        row(
            "residual cases, epochs restarted",
            format!("{}, {}", self.residual_cases, self.epochs_restarted),
        );
        row(
            "operator faults, expired, canaries",
            format!(
                "{}, {}, {}",
                self.operator_faults, self.lifecycle_deletions, self.canaries
            ),
        );
        row(
            "roll-out restarts, clock steps",
            format!("{}, {}", self.rollout_restarts, self.store_clock_steps),
        );
        row(
            "fenced object",
            format!(
                "{} writes, {} seals, {} old-epoch writes refused",
                self.fenced.writes_applied, self.fenced.seals, self.fenced.old_epoch_rejected
            ),
        );
        for v in self.violations.iter().take(10) {
            let _ = writeln!(
                out,
                "  VIOLATION {:?} at {:.3} s: {}",
                v.kind, v.at_seconds, v.detail
            );
        }
        out
    }
}

/// Prices `requests` per worker-month given the worker-hours they took.
pub fn usd_per_month(requests: &Requests, hours: f64) -> f64 {
    if hours <= 0.0 {
        return 0.0;
    }
    requests.usd() / hours * HOURS_PER_MONTH
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_nearest_rank() {
        let s = Summary::of(&(1..=100).map(f64::from).collect::<Vec<_>>());
        assert_eq!((s.p50, s.p99, s.max), (Some(50.0), Some(99.0), Some(100.0)));
        assert_eq!(Summary::of(&[]).count, 0);
    }

    #[test]
    fn prices_match_s3_standard() {
        let r = Requests {
            get: 1000,
            put: 1000,
            list: 1000,
            delete: 1000,
            head: 0,
        };
        assert!((r.usd() - (0.0004 + 0.005 + 0.005)).abs() < 1e-12);
        assert!((usd_per_month(&r, 730.0) - r.usd()).abs() < 1e-12);
    }
}
