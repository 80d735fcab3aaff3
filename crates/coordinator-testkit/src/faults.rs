//! Faults as data: store latency, the per-request faults, and the episodic
//! and persistent faults a scenario runs with; the swarm picks a random
//! subset of them per seed.

use coordinator_core::Failure;
use serde::Serialize;

use crate::seed::SplitMix64;

/// The latency of one store request, split at its linearization point:
/// `apply_ms` from sending to the instant the store applies it, `reply_ms`
/// from then until the reply arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Latency {
    /// Send → applied.
    pub apply_ms: u64,
    /// Applied → reply received.
    pub reply_ms: u64,
}

/// A latency distribution shaped like S3 from inside its region: a fast
/// body, a slower shoulder and a small tail; writes take 1.5× as long.
///
/// | share | round trip |
/// | --- | --- |
/// | 90% | 10–40 ms |
/// | 9% | 40–150 ms |
/// | 1% | 150–600 ms |
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct LatencyModel {
    /// Round trip of the fast body, ms (`lo..hi`).
    pub fast_ms: (u64, u64),
    /// Share of the shoulder.
    pub slow_share: f64,
    /// Round trip of the shoulder, ms.
    pub slow_ms: (u64, u64),
    /// Share of the tail.
    pub tail_share: f64,
    /// Round trip of the tail, ms.
    pub tail_ms: (u64, u64),
}

impl Default for LatencyModel {
    fn default() -> Self {
        Self::s3_like()
    }
}

impl LatencyModel {
    /// The S3-like default (see the type's docs).
    pub fn s3_like() -> Self {
        Self {
            fast_ms: (10, 40),
            slow_share: 0.09,
            slow_ms: (40, 150),
            tail_share: 0.01,
            tail_ms: (150, 600),
        }
    }

    /// A fixed round trip, applied half-way (for hand-written scenarios).
    pub fn fixed(round_trip_ms: u64) -> Self {
        Self {
            fast_ms: (round_trip_ms, round_trip_ms + 1),
            slow_share: 0.0,
            slow_ms: (0, 0),
            tail_share: 0.0,
            tail_ms: (0, 0),
        }
    }

    /// Draws one request's latency.
    pub fn sample(&self, rng: &mut SplitMix64, write: bool) -> Latency {
        let u = rng.unit();
        let (lo, hi) = if u < self.tail_share {
            self.tail_ms
        } else if u < self.tail_share + self.slow_share {
            self.slow_ms
        } else {
            self.fast_ms
        };
        let mut total = rng.in_range(lo..hi.max(lo + 1));
        if write {
            total = total * 3 / 2;
        }
        let apply_ms = total * rng.in_range(30..71) / 100;
        Latency {
            apply_ms,
            reply_ms: total - apply_ms,
        }
    }
}

/// A fault process of episodes (pauses, partitions, crashes…): one starts
/// every `mean_every_ms` on average (uniformly 0.5–1.5× that apart) and
/// lasts `min_ms..max_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Episodes {
    /// Mean time between starts, ms.
    pub mean_every_ms: u64,
    /// Shortest episode, ms.
    pub min_ms: u64,
    /// Longest episode, ms.
    pub max_ms: u64,
}

impl Episodes {
    /// The gap before the next start.
    pub fn next_gap(&self, rng: &mut SplitMix64) -> u64 {
        let m = self.mean_every_ms.max(1);
        rng.in_range(m / 2..m + m / 2 + 1)
    }

    /// One episode's length.
    pub fn length(&self, rng: &mut SplitMix64) -> u64 {
        rng.in_range(self.min_ms..self.max_ms.max(self.min_ms + 1))
    }
}

/// Per-request fault probabilities (each request draws once).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct RequestFaults {
    /// Refused, not applied (503, connection refused).
    pub transient: f64,
    /// Throttled (503 SlowDown, 429), not applied, with a retry-after.
    pub throttled: f64,
    /// A write applied, but reported failed as ambiguous (timeout after the
    /// store committed it).
    pub ambiguous_applied: f64,
    /// A write not applied, but reported as ambiguous.
    pub ambiguous_not_applied: f64,
    /// A write delayed in flight: the client gives up after its
    /// `request_timeout` (ambiguous) and the store applies it
    /// `request_timeout..late_max_ms` after sending — after the writer's
    /// deadline, often.
    pub late_write: f64,
    /// The latest a late write lands, ms after sending.
    pub late_max_ms: u64,
    /// A write applied, its reply lost, and retried by the client library
    /// (object_store retries): the caller sees the retry's answer — a
    /// conflict or already-exists caused by its own first attempt.
    #[serde(default)]
    pub hidden_retry: f64,
    /// A latency spike: this share of requests take `spike_ms` more.
    pub spike: f64,
    /// The largest extra latency of a spike, ms (past `request_timeout` the
    /// client times out and a write is ambiguous).
    pub spike_ms: u64,
}

/// What one request suffers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestFault {
    /// Nothing.
    None,
    /// Not applied; answered with this failure.
    Refused(Failure),
    /// Applied, answered with an ambiguous failure.
    AmbiguousApplied,
    /// Not applied, answered with an ambiguous failure.
    AmbiguousNotApplied,
    /// Applied this many ms after sending; the client times out first.
    Late(u64),
    /// Applied twice (a hidden retry); the second answer is returned.
    HiddenRetry,
    /// This many ms of extra latency.
    Spike(u64),
}

impl RequestFaults {
    /// Draws the fault of one request.
    pub fn sample(
        &self,
        rng: &mut SplitMix64,
        write: bool,
        request_timeout_ms: u64,
    ) -> RequestFault {
        let u = rng.unit();
        let mut acc = self.transient;
        if u < acc {
            return RequestFault::Refused(Failure::Transient {
                message: "injected: 503 Service Unavailable".into(),
            });
        }
        acc += self.throttled;
        if u < acc {
            return RequestFault::Refused(Failure::Throttled {
                retry_after_ms: Some(rng.in_range(100..2000)),
            });
        }
        acc += self.spike;
        if u < acc {
            return RequestFault::Spike(rng.in_range(100..self.spike_ms.max(101)));
        }
        if !write {
            return RequestFault::None;
        }
        acc += self.ambiguous_applied;
        if u < acc {
            return RequestFault::AmbiguousApplied;
        }
        acc += self.ambiguous_not_applied;
        if u < acc {
            return RequestFault::AmbiguousNotApplied;
        }
        acc += self.hidden_retry;
        if u < acc {
            return RequestFault::HiddenRetry;
        }
        acc += self.late_write;
        if u < acc {
            let lo = request_timeout_ms + 1;
            return RequestFault::Late(rng.in_range(lo..self.late_max_ms.max(lo + 1)));
        }
        RequestFault::None
    }
}

/// Which kind of store the machines are told they run against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StoreFlavor {
    /// S3 as the election sees it without conditional delete (an
    /// S3-compatible server that failed the probe at open, e.g. MinIO; AWS
    /// S3 has it since 2025-09-16, which changes no request count: a
    /// departure is one DELETE either way): conditional GET, trusted clock
    /// with 1 s timestamps, write responses without a timestamp.
    #[default]
    S3,
    /// The memory store: everything, 1 ms timestamps returned on writes.
    Memory,
    /// The local directory: conditional GET and delete, untrusted clock.
    Local,
}

/// The faults one run suffers. `None`/`false`/empty fields are off.
///
/// Per-request faults and episodes (pauses, crashes, partitions, graceful
/// restarts) happen only during the *storm* part of each fault period;
/// drift, wall-clock offsets, duplicate ids, mixed timings and the store
/// flavour persist for the whole run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FaultSet {
    /// Clock rate errors up to this fraction of the configured drift
    /// tolerance ρ (within tolerance: below 1.0).
    pub clock_drift: Option<f64>,
    /// Clock rate errors up to this absolute fraction, whatever ρ is
    /// (beyond tolerance: only for the oracle-proof tests).
    pub drift_beyond_tolerance: Option<f64>,
    /// Wall clocks (and monotonic origins) up to this far off, ms.
    pub wall_offset_ms: Option<u64>,
    /// Process pauses (GC, suspend): the process does nothing, its
    /// monotonic clock runs on.
    pub pauses: Option<Episodes>,
    /// Whether pauses prefer the leader (half of them hit it).
    pub pause_leader: bool,
    /// Crashes (the length is the down time before a restart with a new
    /// incarnation).
    pub crashes: Option<Episodes>,
    /// Per-request faults.
    pub requests: Option<RequestFaults>,
    /// The leader alone cut off from the store (every request times out).
    pub leader_partitions: Option<Episodes>,
    /// Extra processes started with an existing worker id.
    pub duplicate_ids: usize,
    /// Share of workers running the alternate timings (lease_timeout 30 s,
    /// renew_deadline 20 s): a rolling change of configuration.
    pub rolling_timings: Option<f64>,
    /// A foreign writer overwrites the lease unconditionally at this share
    /// of the run's duration.
    pub foreign_writer: Option<f64>,
    /// Graceful restarts of the leader (stop, then start a new incarnation
    /// after the episode's length).
    pub graceful_restarts: Option<Episodes>,
    /// The store's kind.
    pub store: StoreFlavor,
    /// Store timestamps up to this far off true time, ms (several hosts).
    pub store_clock_skew_ms: u64,
}

impl FaultSet {
    /// No faults.
    pub fn none() -> Self {
        Self::default()
    }

    /// Swarm testing: each fault kind is on with probability ½, with random
    /// intensities, so that each seed explores a different mix (a fault
    /// that masks another is off in some seeds). Never picks drift beyond
    /// tolerance.
    pub fn swarm(rng: &mut SplitMix64) -> Self {
        let mut f = Self::default();
        let on = |rng: &mut SplitMix64| rng.chance(0.5);
        if on(rng) {
            f.clock_drift = Some(rng.between(0.2, 0.99));
        }
        if on(rng) {
            f.wall_offset_ms = Some(rng.in_range(1_000..3_600_000));
        }
        if on(rng) {
            f.pauses = Some(Episodes {
                mean_every_ms: rng.in_range(30_000..180_000),
                min_ms: 1_000,
                max_ms: rng.in_range(16_000..60_000),
            });
            f.pause_leader = rng.chance(0.7);
        }
        if on(rng) {
            f.crashes = Some(Episodes {
                mean_every_ms: rng.in_range(30_000..240_000),
                min_ms: 2_000,
                max_ms: rng.in_range(5_000..90_000),
            });
        }
        if on(rng) {
            let mut r = RequestFaults::default();
            if rng.chance(0.5) {
                r.transient = rng.between(0.001, 0.1);
            }
            if rng.chance(0.5) {
                r.throttled = rng.between(0.001, 0.05);
            }
            if rng.chance(0.5) {
                r.ambiguous_applied = rng.between(0.001, 0.05);
            }
            if rng.chance(0.5) {
                r.ambiguous_not_applied = rng.between(0.001, 0.05);
            }
            if rng.chance(0.5) {
                r.hidden_retry = rng.between(0.001, 0.05);
            }
            if rng.chance(0.5) {
                r.late_write = rng.between(0.001, 0.03);
                r.late_max_ms = rng.in_range(3_000..40_000);
            }
            if rng.chance(0.5) {
                r.spike = rng.between(0.001, 0.05);
                r.spike_ms = rng.in_range(500..5_000);
            }
            f.requests = Some(r);
        }
        if on(rng) {
            f.leader_partitions = Some(Episodes {
                mean_every_ms: rng.in_range(30_000..240_000),
                min_ms: 2_000,
                max_ms: rng.in_range(5_000..60_000),
            });
        }
        if on(rng) {
            f.duplicate_ids = rng.in_range(1..3) as usize;
        }
        if on(rng) {
            f.rolling_timings = Some(rng.between(0.1, 0.9));
        }
        if rng.chance(0.15) {
            f.foreign_writer = Some(rng.between(0.5, 0.9));
        }
        if on(rng) {
            f.graceful_restarts = Some(Episodes {
                mean_every_ms: rng.in_range(60_000..300_000),
                min_ms: 1_000,
                max_ms: 30_000,
            });
        }
        f.store = match rng.below(3) {
            0 => StoreFlavor::S3,
            1 => StoreFlavor::Memory,
            _ => StoreFlavor::Local,
        };
        if on(rng) {
            f.store_clock_skew_ms = rng.in_range(0..800);
        }
        f
    }

    /// The names of the fault kinds that are on, for reports.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        let mut push = |on: bool, name| {
            if on {
                names.push(name)
            }
        };
        push(self.clock_drift.is_some(), "clock_drift");
        push(
            self.drift_beyond_tolerance.is_some(),
            "drift_beyond_tolerance",
        );
        push(self.wall_offset_ms.is_some(), "wall_offset");
        push(self.pauses.is_some(), "pauses");
        push(self.crashes.is_some(), "crashes");
        if let Some(r) = &self.requests {
            push(r.transient > 0.0, "store_errors");
            push(r.throttled > 0.0, "throttling");
            push(r.ambiguous_applied > 0.0, "ambiguous_applied");
            push(r.ambiguous_not_applied > 0.0, "ambiguous_not_applied");
            push(r.late_write > 0.0, "late_writes");
            push(r.hidden_retry > 0.0, "hidden_retries");
            push(r.spike > 0.0, "latency_spikes");
        }
        push(self.leader_partitions.is_some(), "leader_partitions");
        push(self.duplicate_ids > 0, "duplicate_ids");
        push(self.rolling_timings.is_some(), "rolling_timings");
        push(self.foreign_writer.is_some(), "foreign_writer");
        push(self.graceful_restarts.is_some(), "graceful_restarts");
        push(self.store_clock_skew_ms > 0, "store_clock_skew");
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swarm_varies_and_latency_is_bounded() {
        let picks: Vec<_> = (0..20)
            .map(|s| FaultSet::swarm(&mut SplitMix64::new(s)).names())
            .collect();
        assert!(picks.iter().any(|p| p.contains(&"pauses")));
        assert!(picks.iter().any(|p| !p.contains(&"pauses")));
        let model = LatencyModel::s3_like();
        let mut rng = SplitMix64::new(1);
        for _ in 0..10_000 {
            let l = model.sample(&mut rng, true);
            assert!(l.apply_ms + l.reply_ms <= 900);
        }
    }
}
