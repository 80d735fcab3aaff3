//! The plugins (`coordinator-plugins`) under the runtime layer: the real
//! queue, scheduler and TTL expirer, on real coordinators, on a
//! current-thread tokio runtime with paused time, against the in-memory
//! store with seeded latency and faults ([`SeededStore`]), with per-worker
//! clock drift and wall-clock skew, crashes of any worker and of the
//! leader, and an oracle per plugin:
//!
//! * [`queue`]: every message completed or dead-lettered, none lost, never
//!   two live handlers on one message.
//! * [`scheduler`]: every slot run, and run again only after a run was cut
//!   short; never two live runs of one slot.
//! * [`ttl`]: every record expired, never before its expiry (on the true
//!   clock), and within its bucket width plus one sweep interval plus the
//!   time no one led.
//!
//! A seed replays a run exactly: the schedule (workers, crashes, faults,
//! storms) and everything the plugins do, so a failing seed fails again.
//! Each report's `trace_hash` hashes every store request in order, and
//! `tests/plugin_replay.rs` compares reports byte for byte across two runs
//! in one process and in two processes. Keeping it so: the plugins and the
//! runtime walk only ordered maps where the order reaches the store, and
//! every `tokio::select!` they run is `biased` (tokio otherwise picks a
//! ready branch at random, seeded per process). The
//! `coordinator-plugin-sim` binary prints the reports.

pub mod queue;
pub mod scheduler;
pub mod storms;
pub mod ttl;

use std::sync::Arc;
use std::time::Duration;

use coordinator_core::SplitMix64;
use coordinator_runtime::{
    Clock, Coordinator, CoordinatorConfig, CoordinatorPlugin, CoordinatorRegistry,
};
use coordinator_store::LeaseStore;
use serde::Serialize;

use crate::faults::{LatencyModel, RequestFaults};
use crate::runtime::{virtual_memory_store, DriftClock, SeededStore};
use crate::seed::SeedTree;
use crate::PPM;
use storms::{StormSchedule, StormStore, Storms};

/// The faults the plugin scenarios use by default: those of the runtime
/// layer's fault test (refusals, throttling, ambiguous and late writes,
/// hidden retries, latency spikes).
pub fn chaos_faults() -> RequestFaults {
    RequestFaults {
        transient: 0.02,
        throttled: 0.01,
        ambiguous_applied: 0.01,
        ambiguous_not_applied: 0.01,
        late_write: 0.005,
        hidden_retry: 0.01,
        late_max_ms: 6_000,
        spike: 0.01,
        spike_ms: 3_000,
    }
}

/// What every plugin scenario shares: the world its workers live in.
#[derive(Clone, Debug, Serialize)]
pub struct World {
    /// The root seed.
    pub seed: u64,
    /// Worker processes alive at any time.
    pub workers: usize,
    /// Per-request store faults (`None`: latency only).
    pub faults: Option<RequestFaults>,
    /// Correlated fault storms on top of `faults` (`None`, the default:
    /// none).
    pub storms: Option<Storms>,
    /// Clock rate errors up to this fraction of the smaller of the
    /// election's and the plugin's drift tolerance (below 1.0: within).
    pub clock_drift: f64,
    /// Wall clocks off the true time by up to this, either way.
    pub wall_skew: Duration,
    /// Whether the store has a conditional delete (memory, the local
    /// directory) or not (`object_store` backends: tombstones instead).
    pub conditional_delete: bool,
}

impl World {
    /// `workers` workers, chaos faults, clocks drifting within 90% of the
    /// tolerance, no wall-clock skew, no conditional delete (the harder
    /// path).
    pub fn new(seed: u64, workers: usize) -> Self {
        Self {
            seed,
            workers,
            faults: Some(chaos_faults()),
            storms: None,
            clock_drift: 0.9,
            wall_skew: Duration::ZERO,
            conditional_delete: false,
        }
    }
}

/// The store, seeds and clocks of one run.
pub(crate) struct Stage {
    pub(crate) store: Arc<SeededStore>,
    storms: Option<Arc<StormSchedule>>,
    seeds: SeedTree,
    run_start: tokio::time::Instant,
    drift: f64,
    wall_skew_ms: u64,
}

impl Stage {
    /// Call inside the run's runtime, at its start.
    pub(crate) fn new(world: &World, plugin_drift_tolerance: f64) -> Self {
        let seeds = SeedTree::new(world.seed);
        let timeout = coordinator_core::Config::default().request_timeout;
        let mut store = SeededStore::new(
            virtual_memory_store(),
            seeds,
            LatencyModel::s3_like(),
            world.faults,
            timeout,
        );
        if !world.conditional_delete {
            store = store.without_conditional_delete();
        }
        let rho = coordinator_core::Config::default()
            .drift_tolerance
            .min(plugin_drift_tolerance);
        let run_start = tokio::time::Instant::now();
        let storms = world.storms.map(|storms| {
            Arc::new(StormSchedule::new(
                storms,
                world.seed,
                world.workers,
                run_start,
                timeout,
            ))
        });
        Self {
            store: Arc::new(store),
            storms,
            seeds,
            run_start,
            drift: world.clock_drift.clamp(0.0, 0.999) * rho,
            wall_skew_ms: u64::try_from(world.wall_skew.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// The store as the worker in `slot` sees it: through the storms that
    /// hit it, if any.
    pub(crate) fn dyn_store(&self, slot: usize) -> Arc<dyn LeaseStore> {
        match &self.storms {
            Some(schedule) => Arc::new(StormStore::new(self.store.clone(), schedule.clone(), slot)),
            None => self.store.clone(),
        }
    }

    /// The scenario's own choices (crash times, victims, payloads).
    pub(crate) fn schedule(&self) -> SplitMix64 {
        self.seeds.schedule()
    }

    /// The clock and seed of one life of the worker in `slot`.
    pub(crate) fn worker_clock(&self, slot: usize, life: u64) -> (Arc<dyn Clock>, u64) {
        let mut rng = self.seeds.worker(slot as u64, life);
        let rate = ((1.0 + rng.between(-1.0, 1.0) * self.drift) * PPM as f64).round() as u64;
        let skew = if self.wall_skew_ms == 0 {
            0
        } else {
            let span = self.wall_skew_ms.saturating_mul(2).saturating_add(1);
            i64::try_from(rng.below(span)).unwrap_or(0)
                - i64::try_from(self.wall_skew_ms).unwrap_or(0)
        };
        let clock = DriftClock::new(rate, rng.below(86_400_000))
            .with_run_start(self.run_start)
            .with_wall_skew(skew);
        (Arc::new(clock), rng.next_u64())
    }

    /// A registry for one life of the worker in `slot`, on its own clock,
    /// and that life's seed.
    pub(crate) fn registry(&self, slot: usize, life: u64) -> Option<(CoordinatorRegistry, u64)> {
        let (clock, seed) = self.worker_clock(slot, life);
        let config = CoordinatorConfig::default()
            .with_worker_id(format!("w{slot:03}-{life}"))
            .with_seed(seed);
        let registry = CoordinatorRegistry::builder(self.dyn_store(slot))
            .config(config)
            .clock(clock)
            .build()
            .ok()?;
        Some((registry, seed))
    }

    /// The oracle's own registry: over `store` (the memory store without
    /// faults or counts), on a clock of its own, starting no coordinator.
    /// The oracle's handles are built from it.
    pub(crate) fn oracle_registry(
        &self,
        store: Arc<dyn LeaseStore>,
        clock: Arc<dyn Clock>,
    ) -> Option<CoordinatorRegistry> {
        CoordinatorRegistry::builder(store)
            .config(CoordinatorConfig::default().with_worker_id("oracle"))
            .clock(clock)
            .build()
            .ok()
    }

    /// Starts one life of the worker in `slot` running the plugin `make`
    /// builds from that worker's registry (its store, clock and id) and
    /// seed, attached in `namespace`.
    pub(crate) async fn start_plugin<P: CoordinatorPlugin + 'static>(
        &self,
        slot: usize,
        life: u64,
        namespace: &str,
        make: impl FnOnce(&CoordinatorRegistry, u64) -> Option<P>,
    ) -> Option<Process> {
        let (registry, seed) = self.registry(slot, life)?;
        let plugin = make(&registry, seed)?;
        let coordinator = registry.attach(namespace, Arc::new(plugin)).await.ok()?;
        Some(Process {
            registry,
            coordinator,
            tasks: Vec::new(),
        })
    }

    /// Seconds since the run began (true time).
    pub(crate) fn elapsed(&self) -> Duration {
        self.run_start.elapsed()
    }
}

/// One life of a worker process: its registry, its coordinator and the
/// tasks it runs besides.
pub(crate) struct Process {
    pub(crate) registry: CoordinatorRegistry,
    pub(crate) coordinator: Arc<Coordinator>,
    pub(crate) tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Process {
    /// A crash: nothing is released; the leader's lease lapses.
    pub(crate) fn crash(self) {
        self.coordinator.abort();
        for task in &self.tasks {
            task.abort();
        }
        drop(self.registry);
    }

    /// A graceful stop: the lease is released.
    pub(crate) async fn stop(self) {
        self.registry.close().await;
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The scenario's forced fail-overs: every `every_secs` (uniform in the
/// range), the leader's process ends, a crash and a graceful stop in turn.
pub(crate) struct FailOvers {
    every_secs: (u64, u64),
    next: Duration,
    /// Fail-overs so far.
    pub(crate) count: u64,
}

impl FailOvers {
    pub(crate) fn new(every_secs: (u64, u64), now: Duration, rng: &mut SplitMix64) -> Self {
        let mut fail_overs = Self {
            every_secs,
            next: Duration::ZERO,
            count: 0,
        };
        fail_overs.next = now + fail_overs.draw(rng);
        fail_overs
    }

    fn draw(&self, rng: &mut SplitMix64) -> Duration {
        let (lo, hi) = self.every_secs;
        Duration::from_secs(lo + rng.below(hi.saturating_sub(lo) + 1))
    }

    /// If one is due and `leader` (an index into `processes`) leads, ends
    /// that process and returns its slot, for the caller to restart.
    pub(crate) async fn due(
        &mut self,
        now: Duration,
        leader: Option<usize>,
        processes: &mut Vec<(usize, Process)>,
        rng: &mut SplitMix64,
    ) -> Option<usize> {
        if now < self.next {
            return None;
        }
        let i = leader?;
        self.next = now + self.draw(rng);
        let (slot, process) = processes.swap_remove(i);
        if self.count.is_multiple_of(2) {
            process.crash();
        } else {
            process.stop().await;
        }
        self.count += 1;
        Some(slot)
    }
}

/// Watches who leads, to measure the time no one did.
#[derive(Debug, Default)]
pub(crate) struct LeaderWatch {
    leaderless_since: Option<Duration>,
    /// Closed leaderless intervals `[from, to)`, since the run began.
    pub(crate) gaps: Vec<(Duration, Duration)>,
}

impl LeaderWatch {
    pub(crate) fn observe(&mut self, now: Duration, someone_leads: bool) {
        match (someone_leads, self.leaderless_since) {
            (false, None) => self.leaderless_since = Some(now),
            (true, Some(from)) => {
                self.gaps.push((from, now));
                self.leaderless_since = None;
            }
            _ => {}
        }
    }

    pub(crate) fn finish(&mut self, now: Duration) {
        if let Some(from) = self.leaderless_since.take() {
            self.gaps.push((from, now));
        }
    }

    /// Leaderless time overlapping `[from, to)`.
    pub(crate) fn leaderless_within(&self, from: Duration, to: Duration) -> Duration {
        self.gaps
            .iter()
            .map(|&(a, b)| b.min(to).saturating_sub(a.max(from)))
            .sum()
    }

    pub(crate) fn longest(&self) -> Duration {
        self.gaps
            .iter()
            .map(|&(a, b)| b.saturating_sub(a))
            .max()
            .unwrap_or_default()
    }
}

/// A fresh current-thread runtime with paused time.
///
/// # Panics
/// If the runtime cannot be built.
pub(crate) fn paused_runtime() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => panic!("cannot build a current-thread tokio runtime: {error}"),
    }
}

/// A 64-bit FNV-1a hash, for choices that must not depend on run order.
pub(crate) fn fnv(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Seconds with millisecond precision, for reports.
pub(crate) fn secs(d: Duration) -> f64 {
    crate::report::round3(d.as_secs_f64())
}
