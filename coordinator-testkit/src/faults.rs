//! Faults as data: store latency, the per-request faults, and the episodic
//! and persistent faults a scenario runs with; the swarm picks a random
//! subset of them per seed.

use coordinator_core::{Failure, SplitMix64};
use serde::Serialize;

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

    /// The longest round trip a request can take without injected faults,
    /// ms: the slowest range in use, ×1.5 for a write. Sampled values stay
    /// strictly below it.
    pub fn max_round_trip_ms(&self, write: bool) -> u64 {
        let mut hi = self.fast_ms.1;
        if self.slow_share > 0.0 {
            hi = hi.max(self.slow_ms.1);
        }
        if self.tail_share > 0.0 {
            hi = hi.max(self.tail_ms.1);
        }
        if write {
            hi * 3 / 2
        } else {
            hi
        }
    }

    /// The longest part of a round trip on either side of the
    /// linearization point, ms (each side is at most 70% of the total).
    pub fn max_half_ms(&self, write: bool) -> u64 {
        (self.max_round_trip_ms(write) * 7).div_ceil(10)
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
    /// A self-hosted S3-compatible server (MinIO, Ceph, an `endpoint=`
    /// URL): like `S3`, but its clock is not trusted (an NTP step on one of
    /// its hosts moves its timestamps), so the stale-lease shortcut is off.
    SelfHosted,
}

impl StoreFlavor {
    /// Whether the machines are told (rightly) to trust its timestamps:
    /// AWS S3 proper and the simulated memory store, whose clock is true
    /// time.
    pub fn trusted_clock(self) -> bool {
        matches!(self, StoreFlavor::S3 | StoreFlavor::Memory)
    }

    /// Its name on the command line (`--store`).
    pub fn name(self) -> &'static str {
        match self {
            StoreFlavor::S3 => "s3",
            StoreFlavor::Memory => "memory",
            StoreFlavor::Local => "local",
            StoreFlavor::SelfHosted => "self-hosted",
        }
    }

    /// Parses [`StoreFlavor::name`].
    ///
    /// # Errors
    /// A message listing the names.
    pub fn parse(text: &str) -> Result<Self, String> {
        [
            StoreFlavor::S3,
            StoreFlavor::Memory,
            StoreFlavor::Local,
            StoreFlavor::SelfHosted,
        ]
        .into_iter()
        .find(|f| f.name() == text)
        .ok_or_else(|| format!("unknown store `{text}`; use s3, memory, local or self-hosted"))
    }
}

/// What an operator, a script or a bucket lifecycle rule does to the
/// coordinator's objects of one election (or, for
/// [`OperatorFault::WipeNamespace`], to the whole namespace).
///
/// Corruption writes bytes that are not a usable record of ours but do
/// carry a `format` field or are not JSON at all (truncated writes, a
/// botched hand edit): JSON without `format` is another implementation's,
/// which the [`FaultSet::foreign_writer`] fault covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatorFault {
    /// `state.json` deleted.
    DeleteLease,
    /// `state.json` overwritten with unreadable bytes.
    CorruptLease,
    /// `metadata.json` deleted.
    DeleteMetadata,
    /// `metadata.json` overwritten with unreadable bytes.
    CorruptMetadata,
    /// `roster.json` deleted.
    DeleteRoster,
    /// `roster.json` overwritten with unreadable bytes.
    CorruptRoster,
    /// Every heartbeat object (`workers/*.json`) deleted.
    DeleteHeartbeats,
    /// Every heartbeat object overwritten with unreadable bytes.
    CorruptHeartbeats,
    /// Everything under the election's prefix deleted (lease, metadata,
    /// roster, heartbeats); the plugins' data survives.
    WipeElection,
    /// Everything of the namespace deleted: every election's prefix and the
    /// plugins' data under `plg_coordinator_data/<namespace>/`.
    WipeNamespace,
    /// The election's marker beside the plugins' data deleted (someone
    /// cleaning up plugin data). Scripted only: not in [`Self::ALL`], since
    /// with the election's prefix gone too it is the residual case.
    DeleteMarker,
}

impl OperatorFault {
    /// Every kind, in order.
    pub const ALL: [OperatorFault; 10] = [
        OperatorFault::DeleteLease,
        OperatorFault::CorruptLease,
        OperatorFault::DeleteMetadata,
        OperatorFault::CorruptMetadata,
        OperatorFault::DeleteRoster,
        OperatorFault::CorruptRoster,
        OperatorFault::DeleteHeartbeats,
        OperatorFault::CorruptHeartbeats,
        OperatorFault::WipeElection,
        OperatorFault::WipeNamespace,
    ];

    /// Its name in reports and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            OperatorFault::DeleteLease => "delete_lease",
            OperatorFault::CorruptLease => "corrupt_lease",
            OperatorFault::DeleteMetadata => "delete_metadata",
            OperatorFault::CorruptMetadata => "corrupt_metadata",
            OperatorFault::DeleteRoster => "delete_roster",
            OperatorFault::CorruptRoster => "corrupt_roster",
            OperatorFault::DeleteHeartbeats => "delete_heartbeats",
            OperatorFault::CorruptHeartbeats => "corrupt_heartbeats",
            OperatorFault::WipeElection => "wipe_election",
            OperatorFault::WipeNamespace => "wipe_namespace",
            OperatorFault::DeleteMarker => "delete_marker",
        }
    }

    /// True when it leaves the lease's holder unknown (the lease is gone or
    /// unreadable): followers must wait the longest promise on record, or
    /// the recovery wait.
    pub fn hides_holder(self) -> bool {
        matches!(
            self,
            OperatorFault::DeleteLease
                | OperatorFault::CorruptLease
                | OperatorFault::WipeElection
                | OperatorFault::WipeNamespace
        )
    }
}

/// Operator faults: one of `kinds` every `mean_every_ms` on average, in
/// storms; and, when a kind that hides the holder is among them, one such
/// fault in each calm period as a recovery probe (a new leader must come
/// within the recovery bound).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OperatorFaults {
    /// The kinds that may happen.
    pub kinds: Vec<OperatorFault>,
    /// Mean time between two of them in storms, ms.
    pub mean_every_ms: u64,
}

/// A canary of a newer release: it takes the lease when the leader it
/// replaces hands it over (a graceful stop), writes `{"format":2,…}` leases
/// and a format-2 `metadata.json`, renews for a while, and is then rolled
/// back, its lease left behind. Rolled back either by being killed, or
/// (the worst case, `cut_off_share` of them) after losing the store: it
/// then believes it leads until its own renew deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Canary {
    /// Mean time between two canaries, ms (each starts in a storm).
    pub mean_every_ms: u64,
    /// How long a canary leads before its roll-back, ms (`lo..hi`).
    pub leads_ms: (u64, u64),
    /// Its renewal period, ms.
    pub renew_every_ms: u64,
    /// Its renew deadline (its takeover wait must stay within the old
    /// fleet's `recovery_wait`), ms.
    pub renew_deadline_ms: u64,
    /// Per cent of roll-backs that come after the canary lost the store.
    pub cut_off_percent: u64,
}

/// A rolling change of timings during the run: `share` of the worker slots
/// are restarted (gracefully) one after another with
/// [`Scenario::rollout_config`](crate::Scenario::rollout_config) (3× the
/// lease and renew deadline), and, with `roll_back`, later restarted with
/// their old timings again. Restarts happen only in storms.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct TimingRollout {
    /// Share of the slots restarted.
    pub share: f64,
    /// Time between two restarts, ms (`lo..hi`).
    pub step_ms: (u64, u64),
    /// Roll the change back afterwards.
    pub roll_back: bool,
}

/// Steps of the store's own clock (an NTP step on a self-hosted server):
/// every `mean_every_ms` on average, in storms, its timestamps jump by up
/// to `max_step_ms` either way (and stay there). Only stores whose clock
/// the machines do not trust suffer them, unless
/// [`FaultSet::store_claims_trusted_clock`] misdeclares the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ClockSteps {
    /// Mean time between two steps, ms.
    pub mean_every_ms: u64,
    /// The largest step, ms.
    pub max_step_ms: u64,
}

/// A bucket lifecycle rule: once per fault period, at a random instant of
/// the storm, every object under the namespace's prefixes whose store
/// timestamp is older than `max_age_ms` is deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LifecycleRule {
    /// The age beyond which objects are expired, ms (by the store's clock).
    pub max_age_ms: u64,
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
    /// Operators and scripts deleting or corrupting coordinator objects.
    pub operator: Option<OperatorFaults>,
    /// A bucket lifecycle rule expiring old objects.
    pub lifecycle_rule: Option<LifecycleRule>,
    /// Canaries of a newer record format, rolled back.
    pub canary: Option<Canary>,
    /// A rolling change of timings (and back) during the run.
    pub timing_rollout: Option<TimingRollout>,
    /// Steps of the store's clock (only where it is not trusted, see
    /// [`ClockSteps`]).
    pub store_clock_steps: Option<ClockSteps>,
    /// Broken on purpose (oracle proofs only): the store claims a trusted
    /// clock whatever its flavour, as S3-compatible servers once did.
    pub store_claims_trusted_clock: bool,
}

impl FaultSet {
    /// No faults.
    pub fn none() -> Self {
        Self::default()
    }

    /// Swarm testing: each fault kind is on with probability ½ (a few of
    /// the newer, rarer kinds less often), with random intensities, so
    /// that each seed explores a different mix (a fault that masks another
    /// is off in some seeds). Never picks drift beyond tolerance or a
    /// misdeclared store.
    pub fn swarm(rng: &mut SplitMix64) -> Self {
        Self::draw(rng, None)
    }

    /// Only the fault kinds named (see [`FAULT_KINDS`]; `operator` stands
    /// for every operator fault), each with intensities drawn from `rng` as
    /// the swarm draws them. The store's flavour is drawn as well, except
    /// that `store_clock_steps` picks a store whose clock is not trusted
    /// (the only ones that suffer them).
    ///
    /// # Errors
    /// A message naming an unknown kind and listing the known ones.
    ///
    /// ```
    /// use coordinator_core::SplitMix64;
    /// use coordinator_testkit::FaultSet;
    /// let f = FaultSet::select(&["delete_lease", "canary_rollback"], &mut SplitMix64::new(1)).unwrap();
    /// assert_eq!(f.names(), vec!["delete_lease", "canary_rollback"]);
    /// assert!(FaultSet::select(&["gremlins"], &mut SplitMix64::new(1)).is_err());
    /// ```
    pub fn select(names: &[&str], rng: &mut SplitMix64) -> Result<Self, String> {
        let mut wanted: Vec<&'static str> = Vec::new();
        for name in names {
            if *name == "operator" {
                wanted.extend(OperatorFault::ALL.iter().map(|k| k.name()));
            } else if let Some(known) = FAULT_KINDS.iter().find(|k| *k == name) {
                wanted.push(known);
            } else {
                return Err(format!(
                    "unknown fault kind `{name}`; use none, swarm, or a comma-separated list of: operator, {}",
                    FAULT_KINDS.join(", ")
                ));
            }
        }
        Ok(Self::draw(rng, Some(&wanted)))
    }

    fn draw(rng: &mut SplitMix64, only: Option<&[&'static str]>) -> Self {
        let mut f = Self::default();
        // In swarm mode a kind is on by a coin; in selection mode when
        // named. Intensities are drawn the same way either way.
        let on = |rng: &mut SplitMix64, p: f64, names: &[&str]| match only {
            None => rng.chance(p),
            Some(list) => names.iter().any(|n| list.contains(n)),
        };
        if on(rng, 0.5, &["clock_drift"]) {
            f.clock_drift = Some(rng.between(0.2, 0.99));
        }
        if on(rng, 0.5, &["wall_offset"]) {
            f.wall_offset_ms = Some(rng.in_range(1_000..3_600_000));
        }
        if on(rng, 0.5, &["pauses"]) {
            f.pauses = Some(Episodes {
                mean_every_ms: rng.in_range(30_000..180_000),
                min_ms: 1_000,
                max_ms: rng.in_range(16_000..60_000),
            });
            f.pause_leader = rng.chance(0.7);
        }
        if on(rng, 0.5, &["crashes"]) {
            f.crashes = Some(Episodes {
                mean_every_ms: rng.in_range(30_000..240_000),
                min_ms: 2_000,
                max_ms: rng.in_range(5_000..90_000),
            });
        }
        const REQUEST_KINDS: [&str; 7] = [
            "store_errors",
            "throttling",
            "ambiguous_applied",
            "ambiguous_not_applied",
            "hidden_retries",
            "late_writes",
            "latency_spikes",
        ];
        if on(rng, 0.5, &REQUEST_KINDS) {
            let mut r = RequestFaults::default();
            if on(rng, 0.5, &["store_errors"]) {
                r.transient = rng.between(0.001, 0.1);
            }
            if on(rng, 0.5, &["throttling"]) {
                r.throttled = rng.between(0.001, 0.05);
            }
            if on(rng, 0.5, &["ambiguous_applied"]) {
                r.ambiguous_applied = rng.between(0.001, 0.05);
            }
            if on(rng, 0.5, &["ambiguous_not_applied"]) {
                r.ambiguous_not_applied = rng.between(0.001, 0.05);
            }
            if on(rng, 0.5, &["hidden_retries"]) {
                r.hidden_retry = rng.between(0.001, 0.05);
            }
            if on(rng, 0.5, &["late_writes"]) {
                r.late_write = rng.between(0.001, 0.03);
                r.late_max_ms = rng.in_range(3_000..40_000);
            }
            if on(rng, 0.5, &["latency_spikes"]) {
                r.spike = rng.between(0.001, 0.05);
                r.spike_ms = rng.in_range(500..5_000);
            }
            f.requests = Some(r);
        }
        if on(rng, 0.5, &["leader_partitions"]) {
            f.leader_partitions = Some(Episodes {
                mean_every_ms: rng.in_range(30_000..240_000),
                min_ms: 2_000,
                max_ms: rng.in_range(5_000..60_000),
            });
        }
        if on(rng, 0.5, &["duplicate_ids"]) {
            f.duplicate_ids = rng.in_range(1..3) as usize;
        }
        if on(rng, 0.5, &["rolling_timings"]) {
            f.rolling_timings = Some(rng.between(0.1, 0.9));
        }
        if on(rng, 0.15, &["foreign_writer"]) {
            f.foreign_writer = Some(rng.between(0.5, 0.9));
        }
        if on(rng, 0.5, &["graceful_restarts"]) {
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
        if on(rng, 0.5, &["store_clock_skew"]) {
            f.store_clock_skew_ms = rng.in_range(0..800);
        }
        // The operator faults come from a stream of their own, so that
        // every seed draws the kinds above exactly as before they existed.
        let rng = &mut SplitMix64::new(rng.next_u64());
        let operator_names: Vec<&str> = OperatorFault::ALL.iter().map(|k| k.name()).collect();
        if on(rng, 0.5, &operator_names) {
            let mut kinds: Vec<OperatorFault> = OperatorFault::ALL
                .into_iter()
                .filter(|k| on(rng, 0.4, &[k.name()]))
                .collect();
            if kinds.is_empty() {
                kinds.push(OperatorFault::ALL[rng.below(OperatorFault::ALL.len() as u64) as usize]);
            }
            f.operator = Some(OperatorFaults {
                kinds,
                mean_every_ms: rng.in_range(30_000..240_000),
            });
        }
        if on(rng, 0.25, &["lifecycle_rule"]) {
            f.lifecycle_rule = Some(LifecycleRule {
                max_age_ms: rng.in_range(60_000..1_200_000),
            });
        }
        if on(rng, 0.3, &["canary_rollback"]) {
            let renew_deadline_ms = rng.in_range(10_000..40_000);
            f.canary = Some(Canary {
                mean_every_ms: rng.in_range(120_000..600_000),
                leads_ms: (10_000, rng.in_range(20_000..180_000)),
                renew_every_ms: rng.in_range(2_000..renew_deadline_ms / 3),
                renew_deadline_ms,
                cut_off_percent: 50,
            });
        }
        if on(rng, 0.3, &["timing_rollout"]) {
            f.timing_rollout = Some(TimingRollout {
                share: rng.between(0.3, 1.0),
                step_ms: (1_000, rng.in_range(2_000..15_000)),
                roll_back: rng.chance(0.5),
            });
        }
        if on(rng, 0.5, &["store_clock_steps"]) {
            f.store_clock_steps = Some(ClockSteps {
                mean_every_ms: rng.in_range(20_000..180_000),
                max_step_ms: rng.in_range(2_000..60_000),
            });
        }
        // A self-hosted S3-compatible server in a quarter of the seeds.
        let self_hosted = rng.chance(0.25);
        match only {
            None if self_hosted => f.store = StoreFlavor::SelfHosted,
            Some(_) if f.store_clock_steps.is_some() && f.store.trusted_clock() => {
                f.store = if self_hosted {
                    StoreFlavor::Local
                } else {
                    StoreFlavor::SelfHosted
                };
            }
            _ => {}
        }
        f
    }

    /// Turns the named kinds off (`operator` stands for every operator
    /// fault), e.g. to sweep the swarm without a class whose fix is
    /// pending.
    ///
    /// # Errors
    /// A message naming an unknown kind.
    pub fn without(&mut self, names: &[&str]) -> Result<(), String> {
        for name in names {
            let known = *name == "operator" || FAULT_KINDS.contains(name);
            if !known {
                return Err(format!(
                    "unknown fault kind `{name}`; use operator, {}",
                    FAULT_KINDS.join(", ")
                ));
            }
            let r = self.requests.get_or_insert_with(RequestFaults::default);
            match *name {
                "clock_drift" => self.clock_drift = None,
                "wall_offset" => self.wall_offset_ms = None,
                "pauses" => self.pauses = None,
                "crashes" => self.crashes = None,
                "store_errors" => r.transient = 0.0,
                "throttling" => r.throttled = 0.0,
                "ambiguous_applied" => r.ambiguous_applied = 0.0,
                "ambiguous_not_applied" => r.ambiguous_not_applied = 0.0,
                "late_writes" => r.late_write = 0.0,
                "hidden_retries" => r.hidden_retry = 0.0,
                "latency_spikes" => r.spike = 0.0,
                "leader_partitions" => self.leader_partitions = None,
                "duplicate_ids" => self.duplicate_ids = 0,
                "rolling_timings" => self.rolling_timings = None,
                "foreign_writer" => self.foreign_writer = None,
                "graceful_restarts" => self.graceful_restarts = None,
                "store_clock_skew" => self.store_clock_skew_ms = 0,
                "lifecycle_rule" => self.lifecycle_rule = None,
                "canary_rollback" => self.canary = None,
                "timing_rollout" => self.timing_rollout = None,
                "store_clock_steps" => self.store_clock_steps = None,
                "operator" => self.operator = None,
                operator => {
                    if let Some(o) = self.operator.as_mut() {
                        o.kinds.retain(|k| k.name() != operator);
                    }
                }
            }
            if self.requests == Some(RequestFaults::default()) {
                self.requests = None;
            }
            if self.operator.as_ref().is_some_and(|o| o.kinds.is_empty()) {
                self.operator = None;
            }
        }
        Ok(())
    }

    /// Whether the store's clock steps in this run: steps are drawn and
    /// the store's clock is not trusted (or the store claims it is).
    pub fn clock_steps_apply(&self) -> bool {
        self.store_clock_steps.is_some()
            && (!self.store.trusted_clock() || self.store_claims_trusted_clock)
    }

    /// Whether the machines are told the store's clock is trusted.
    pub fn told_trusted_clock(&self) -> bool {
        self.store.trusted_clock() || self.store_claims_trusted_clock
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
        if let Some(o) = &self.operator {
            for kind in OperatorFault::ALL {
                push(o.kinds.contains(&kind), kind.name());
            }
        }
        push(self.lifecycle_rule.is_some(), "lifecycle_rule");
        push(self.canary.is_some(), "canary_rollback");
        push(self.timing_rollout.is_some(), "timing_rollout");
        push(self.clock_steps_apply(), "store_clock_steps");
        push(
            self.store_claims_trusted_clock,
            "store_claims_trusted_clock",
        );
        names
    }
}

/// Every fault kind [`FaultSet::select`] knows, as
/// [`FaultSet::names`] reports them.
pub const FAULT_KINDS: &[&str] = &[
    "clock_drift",
    "wall_offset",
    "pauses",
    "crashes",
    "store_errors",
    "throttling",
    "ambiguous_applied",
    "ambiguous_not_applied",
    "late_writes",
    "hidden_retries",
    "latency_spikes",
    "leader_partitions",
    "duplicate_ids",
    "rolling_timings",
    "foreign_writer",
    "graceful_restarts",
    "store_clock_skew",
    "delete_lease",
    "corrupt_lease",
    "delete_metadata",
    "corrupt_metadata",
    "delete_roster",
    "corrupt_roster",
    "delete_heartbeats",
    "corrupt_heartbeats",
    "wipe_election",
    "wipe_namespace",
    "lifecycle_rule",
    "canary_rollback",
    "timing_rollout",
    "store_clock_steps",
];

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
        for name in FAULT_KINDS {
            let f = FaultSet::select(&[name], &mut SplitMix64::new(3)).unwrap();
            assert_eq!(f.names(), vec![*name], "selecting {name}");
        }
        let model = LatencyModel::s3_like();
        let mut rng = SplitMix64::new(1);
        for _ in 0..10_000 {
            let l = model.sample(&mut rng, true);
            assert!(l.apply_ms + l.reply_ms <= 900);
        }
    }
}
