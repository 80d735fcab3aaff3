//! The second layer: the real `coordinator-runtime`, on a current-thread
//! tokio runtime with paused time, against the in-memory store wrapped with
//! seeded latency and faults ([`SeededStore`]), under the same oracle's
//! core checks (one leader at a time, epochs never go back, fail-over time).
//!
//! Slower than the discrete-event layer (real tasks, real timers), so it is
//! for tens of workers, not thousands. Time is tokio's virtual time; every
//! store call yields first, so tasks interleave differently per seed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use coordinator_core::{mix64, Instant, SplitMix64};
use coordinator_runtime::{
    Clock, Coordinator, CoordinatorConfig, CoordinatorPlugin, CoordinatorRegistry, LeaderContext,
    PluginError, StepDownReason,
};
use coordinator_store::{
    Capabilities, Conditional, LeaseStore, MemoryStore, ObjectMeta, StoreError, StoredObject,
    Version, Written,
};

use crate::faults::{LatencyModel, RequestFault, RequestFaults};
use crate::report::{round3, Summary, Violation, ViolationKind};
use crate::seed::SeedTree;
use crate::store::Requests;
use crate::PPM;

#[derive(Clone, Debug)]
enum Op {
    Get(String),
    GetIfChanged(String, Version),
    Create(String, Bytes),
    Cas(String, Version, Bytes),
    Put(String, Bytes),
    ListPage(String, Option<String>, usize),
    Delete(String),
    DeleteIf(String, Version),
}

enum Out {
    Object(Option<StoredObject>),
    Conditional(Conditional),
    Written(Written),
    Listed(Vec<ObjectMeta>),
    Deleted,
}

impl Op {
    fn key(&self) -> &str {
        match self {
            Op::Get(k)
            | Op::GetIfChanged(k, _)
            | Op::Create(k, _)
            | Op::Cas(k, _, _)
            | Op::Put(k, _)
            | Op::ListPage(k, _, _)
            | Op::Delete(k)
            | Op::DeleteIf(k, _) => k,
        }
    }

    fn is_write(&self) -> bool {
        !matches!(self, Op::Get(_) | Op::GetIfChanged(..) | Op::ListPage(..))
    }

    fn name(&self) -> &'static str {
        match self {
            Op::Get(_) | Op::GetIfChanged(..) => "get",
            Op::Create(..) => "create",
            Op::Cas(..) => "compare_and_swap",
            Op::Put(..) => "put",
            Op::ListPage(..) => "list",
            Op::Delete(_) | Op::DeleteIf(..) => "delete",
        }
    }

    fn count(&self, requests: &mut Requests) {
        match self {
            Op::Get(_) | Op::GetIfChanged(..) => requests.get += 1,
            Op::Create(..) | Op::Cas(..) | Op::Put(..) => requests.put += 1,
            Op::ListPage(..) => requests.list += 1,
            Op::Delete(_) | Op::DeleteIf(..) => requests.delete += 1,
        }
    }

    async fn run(self, store: &MemoryStore) -> Result<Out, StoreError> {
        Ok(match self {
            Op::Get(k) => Out::Object(store.get(&k).await?),
            Op::GetIfChanged(k, v) => Out::Conditional(store.get_if_changed(&k, &v).await?),
            Op::Create(k, b) => Out::Written(store.create(&k, b).await?),
            Op::Cas(k, v, b) => Out::Written(store.compare_and_swap(&k, &v, b).await?),
            Op::Put(k, b) => Out::Written(store.put(&k, b).await?),
            Op::ListPage(p, after, limit) => {
                Out::Listed(store.list_page(&p, after.as_deref(), limit).await?)
            }
            Op::Delete(k) => {
                store.delete(&k).await?;
                Out::Deleted
            }
            Op::DeleteIf(k, v) => {
                store.delete_if_version(&k, &v).await?;
                Out::Deleted
            }
        })
    }
}

#[derive(Debug)]
struct Rngs {
    latency: SplitMix64,
    faults: SplitMix64,
}

/// The in-memory store with seeded latency (tokio sleeps, so virtual time
/// under a paused runtime) and per-request faults, counting requests by
/// kind. Every call yields to the scheduler first. A late write is applied
/// by a detached task after the caller has been told it timed out.
#[derive(Debug)]
pub struct SeededStore {
    inner: MemoryStore,
    rngs: Mutex<Rngs>,
    latency: LatencyModel,
    faults: Option<RequestFaults>,
    request_timeout_ms: u64,
    requests: Mutex<Requests>,
    /// Every request so far, folded in order (see [`Self::trace_hash`]).
    trace: Mutex<u64>,
    /// Virtual time zero for the trace.
    origin: tokio::time::Instant,
    conditional_delete: bool,
}

impl SeededStore {
    /// Wraps `inner`; draws latency and faults from `seeds`.
    pub fn new(
        inner: MemoryStore,
        seeds: SeedTree,
        latency: LatencyModel,
        faults: Option<RequestFaults>,
        request_timeout: Duration,
    ) -> Self {
        Self {
            inner,
            rngs: Mutex::new(Rngs {
                latency: seeds.latency(),
                faults: seeds.faults(),
            }),
            latency,
            faults,
            request_timeout_ms: u64::try_from(request_timeout.as_millis()).unwrap_or(u64::MAX),
            requests: Mutex::new(Requests::default()),
            trace: Mutex::new(0),
            origin: tokio::time::Instant::now(),
            conditional_delete: true,
        }
    }

    /// Behaves like a backend without conditional delete (S3 through
    /// `object_store`, GCS, Azure): [`LeaseStore::delete_if_version`] is
    /// refused, so callers take their compare-and-swap-to-tombstone path.
    #[must_use]
    pub fn without_conditional_delete(mut self) -> Self {
        self.conditional_delete = false;
        self
    }

    /// The store underneath, without latency, faults or counting: for an
    /// oracle's reads.
    pub fn inner(&self) -> &MemoryStore {
        &self.inner
    }

    /// The requests made so far.
    pub fn requests(&self) -> Requests {
        self.requests.lock().map(|r| *r).unwrap_or_default()
    }

    /// A hash of every request so far, in the order they were made: its
    /// operation, key, virtual instant (ms since this store was made) and
    /// the fault drawn for it. Two runs of one seed must give the same
    /// hash; a report that differs anywhere downstream differs here first.
    pub fn trace_hash(&self) -> String {
        format!("{:016x}", self.trace.lock().map(|t| *t).unwrap_or(0))
    }

    async fn call(&self, op: Op) -> Result<Out, StoreError> {
        let out = self.call_once(op).await;
        // A listing is one LIST per started page of keys, as on S3.
        if let Ok(Out::Listed(listed)) = &out {
            let extra = listed.len().div_ceil(crate::LIST_PAGE).max(1) - 1;
            if let Ok(mut r) = self.requests.lock() {
                r.list += extra as u64;
            }
        }
        out
    }

    async fn call_once(&self, op: Op) -> Result<Out, StoreError> {
        tokio::task::yield_now().await;
        let write = op.is_write();
        let (lat, fault) = {
            let Ok(mut rngs) = self.rngs.lock() else {
                return Err(unavailable(&op, "lock poisoned"));
            };
            let lat = self.latency.sample(&mut rngs.latency, write);
            let fault = match &self.faults {
                Some(f) => f.sample(&mut rngs.faults, write, self.request_timeout_ms),
                None => RequestFault::None,
            };
            (lat, fault)
        };
        if let Ok(mut r) = self.requests.lock() {
            op.count(&mut r);
        }
        if let Ok(mut trace) = self.trace.lock() {
            let at = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
            let text = format!("{} {} {at} {fault:?}", op.name(), op.key());
            *trace = text
                .bytes()
                .fold(mix64(*trace), |h, b| mix64(h ^ u64::from(b)));
        }
        let sleep = |ms: u64| tokio::time::sleep(Duration::from_millis(ms));
        match fault {
            RequestFault::Refused(failure) => {
                sleep(lat.apply_ms + lat.reply_ms).await;
                Err(match failure {
                    coordinator_core::Failure::Throttled { retry_after_ms } => {
                        StoreError::Throttled {
                            key: op.key().to_owned(),
                            backend: "memory",
                            retry_after: retry_after_ms.map(Duration::from_millis),
                        }
                    }
                    _ => unavailable(&op, "injected: 503"),
                })
            }
            RequestFault::AmbiguousNotApplied => {
                sleep(lat.apply_ms + lat.reply_ms).await;
                Err(ambiguous(&op))
            }
            RequestFault::AmbiguousApplied => {
                sleep(lat.apply_ms).await;
                let _ = op.clone().run(&self.inner).await;
                sleep(lat.reply_ms).await;
                Err(ambiguous(&op))
            }
            RequestFault::Late(after) => {
                let inner = self.inner.clone();
                let late = op.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(after)).await;
                    let _ = late.run(&inner).await;
                });
                sleep(self.request_timeout_ms).await;
                Err(ambiguous(&op))
            }
            RequestFault::HiddenRetry => {
                sleep(lat.apply_ms).await;
                let _ = op.clone().run(&self.inner).await;
                let out = op.run(&self.inner).await;
                sleep(lat.reply_ms).await;
                out
            }
            RequestFault::Spike(extra) => {
                sleep(lat.apply_ms + extra / 2).await;
                let out = op.run(&self.inner).await;
                sleep(lat.reply_ms + extra - extra / 2).await;
                out
            }
            RequestFault::None => {
                sleep(lat.apply_ms).await;
                let out = op.run(&self.inner).await;
                sleep(lat.reply_ms).await;
                out
            }
        }
    }
}

fn unavailable(op: &Op, message: &str) -> StoreError {
    StoreError::Unavailable {
        key: op.key().to_owned(),
        backend: "memory",
        source: message.to_owned().into(),
    }
}

fn ambiguous(op: &Op) -> StoreError {
    StoreError::Ambiguous {
        op: op.name(),
        key: op.key().to_owned(),
        backend: "memory",
        source: "injected: timed out".to_owned().into(),
    }
}

fn unexpected(op: &str) -> StoreError {
    StoreError::Unavailable {
        key: String::new(),
        backend: "memory",
        source: format!("{op}: unexpected result shape").into(),
    }
}

#[async_trait]
impl LeaseStore for SeededStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            conditional_delete: self.conditional_delete,
            ..self.inner.capabilities()
        }
    }

    async fn get(&self, key: &str) -> Result<Option<StoredObject>, StoreError> {
        match self.call(Op::Get(key.to_owned())).await? {
            Out::Object(o) => Ok(o),
            _ => Err(unexpected("get")),
        }
    }

    async fn get_if_changed(&self, key: &str, known: &Version) -> Result<Conditional, StoreError> {
        match self
            .call(Op::GetIfChanged(key.to_owned(), known.clone()))
            .await?
        {
            Out::Conditional(c) => Ok(c),
            _ => Err(unexpected("get_if_changed")),
        }
    }

    async fn create(&self, key: &str, body: Bytes) -> Result<Written, StoreError> {
        match self.call(Op::Create(key.to_owned(), body)).await? {
            Out::Written(w) => Ok(w),
            _ => Err(unexpected("create")),
        }
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: &Version,
        body: Bytes,
    ) -> Result<Written, StoreError> {
        match self
            .call(Op::Cas(key.to_owned(), expected.clone(), body))
            .await?
        {
            Out::Written(w) => Ok(w),
            _ => Err(unexpected("compare_and_swap")),
        }
    }

    async fn put(&self, key: &str, body: Bytes) -> Result<Written, StoreError> {
        match self.call(Op::Put(key.to_owned(), body)).await? {
            Out::Written(w) => Ok(w),
            _ => Err(unexpected("put")),
        }
    }

    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ObjectMeta>, StoreError> {
        let op = Op::ListPage(prefix.to_owned(), start_after.map(str::to_owned), limit);
        match self.call(op).await? {
            Out::Listed(l) => Ok(l),
            _ => Err(unexpected("list_page")),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self.call(Op::Delete(key.to_owned())).await? {
            Out::Deleted => Ok(()),
            _ => Err(unexpected("delete")),
        }
    }

    async fn delete_if_version(&self, key: &str, expected: &Version) -> Result<(), StoreError> {
        if !self.conditional_delete {
            return Err(StoreError::NotSupported {
                op: "delete_if_version",
                backend: "memory",
            });
        }
        match self
            .call(Op::DeleteIf(key.to_owned(), expected.clone()))
            .await?
        {
            Out::Deleted => Ok(()),
            _ => Err(unexpected("delete_if_version")),
        }
    }
}

/// A monotonic clock on tokio's (virtual) time with a rate error.
#[derive(Debug)]
pub struct DriftClock {
    origin: tokio::time::Instant,
    rate_ppm: u64,
    offset_ms: u64,
    wall_origin: tokio::time::Instant,
    wall_skew_ms: i64,
}

impl DriftClock {
    /// A clock running at `rate_ppm` parts per million of tokio's time,
    /// reading `offset_ms` now. Call inside a tokio runtime.
    pub fn new(rate_ppm: u64, offset_ms: u64) -> Self {
        let origin = tokio::time::Instant::now();
        Self {
            origin,
            rate_ppm,
            offset_ms,
            wall_origin: origin,
            wall_skew_ms: 0,
        }
    }

    /// The same clock whose wall clock reads
    /// [`UNIX_BASE_MS`](crate::UNIX_BASE_MS) at `run_start` (not at this
    /// clock's creation), so workers started at different times agree on
    /// the date.
    #[must_use]
    pub fn with_run_start(mut self, run_start: tokio::time::Instant) -> Self {
        self.wall_origin = run_start;
        self
    }

    /// The same clock whose wall-clock reading is `skew_ms` ahead (or,
    /// negative, behind) the true time: two machines' wall clocks disagree.
    #[must_use]
    pub fn with_wall_skew(mut self, skew_ms: i64) -> Self {
        self.wall_skew_ms = skew_ms;
        self
    }
}

impl Clock for DriftClock {
    fn now(&self) -> Instant {
        let elapsed = u128::from(u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(0));
        let local = elapsed * u128::from(self.rate_ppm) / u128::from(PPM);
        Instant::from_millis(self.offset_ms + u64::try_from(local).unwrap_or(u64::MAX))
    }

    fn unix_ms(&self) -> u64 {
        let true_ms = crate::UNIX_BASE_MS
            + u64::try_from(self.wall_origin.elapsed().as_millis()).unwrap_or(0);
        true_ms.saturating_add_signed(self.wall_skew_ms)
    }
}

/// A run of the real runtime.
#[derive(Clone, Debug)]
pub struct RuntimeScenario {
    /// The root seed.
    pub seed: u64,
    /// Worker processes.
    pub workers: usize,
    /// Virtual time.
    pub duration: Duration,
    /// Crash (abort) the leader this often; it restarts 30 s later.
    pub crash_leader_every: Option<Duration>,
    /// Per-request store faults.
    pub faults: Option<RequestFaults>,
    /// Clock rate errors up to this fraction of ρ (below 1.0: within
    /// tolerance).
    pub clock_drift: Option<f64>,
}

impl RuntimeScenario {
    /// `workers` workers for `duration`, no faults.
    pub fn new(seed: u64, workers: usize, duration: Duration) -> Self {
        Self {
            seed,
            workers,
            duration,
            crash_leader_every: None,
            faults: None,
            clock_drift: None,
        }
    }
}

/// What a runtime run found.
#[derive(Clone, Debug)]
pub struct RuntimeReport {
    /// The root seed.
    pub seed: u64,
    /// Violations.
    pub violations: Vec<Violation>,
    /// Fail-overs after the leader was aborted.
    pub failover_seconds: Summary,
    /// Distinct leader epochs observed.
    pub terms: u64,
    /// The election's requests.
    pub requests: Requests,
    /// A hash of the observed leadership sequence.
    pub trace_hash: String,
}

struct Probe;

#[async_trait]
impl CoordinatorPlugin for Probe {
    fn name(&self) -> &str {
        "probe"
    }
    async fn on_become_coordinator(&self, _ctx: LeaderContext) -> Result<(), PluginError> {
        Ok(())
    }
    async fn on_stop_being_coordinator(&self, _reason: StepDownReason) -> Result<(), PluginError> {
        Ok(())
    }
}

/// Runs `scenario` on a fresh current-thread runtime with paused time.
///
/// # Panics
/// If the tokio runtime cannot be built.
pub fn run_runtime(scenario: &RuntimeScenario) -> RuntimeReport {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build();
    let Ok(runtime) = runtime else {
        panic!("cannot build a current-thread tokio runtime");
    };
    runtime.block_on(run_inner(scenario.clone()))
}

struct Worker {
    registry: CoordinatorRegistry,
    coordinator: Arc<Coordinator>,
}

async fn start_worker(
    store: &Arc<SeededStore>,
    seeds: &SeedTree,
    slot: usize,
    life: u64,
    rate_ppm: u64,
) -> Option<Worker> {
    let mut rng = seeds.worker(slot as u64, life);
    let config = CoordinatorConfig::default()
        .with_worker_id(format!("w{slot:04}"))
        .with_seed(rng.next_u64());
    let clock: Arc<dyn Clock> = Arc::new(DriftClock::new(rate_ppm, rng.below(86_400_000)));
    let store: Arc<dyn LeaseStore> = store.clone();
    let registry = CoordinatorRegistry::builder(store)
        .config(config)
        .clock(clock)
        .build()
        .ok()?;
    let coordinator = registry.attach("sim", Arc::new(Probe)).await.ok()?;
    Some(Worker {
        registry,
        coordinator,
    })
}

/// A memory store whose timestamps follow tokio's (virtual) time from
/// [`UNIX_BASE_MS`](crate::UNIX_BASE_MS). Call inside a tokio runtime.
pub fn virtual_memory_store() -> MemoryStore {
    let origin = tokio::time::Instant::now();
    MemoryStore::with_clock(Arc::new(move || {
        i64::try_from(crate::UNIX_BASE_MS).unwrap_or(0)
            + i64::try_from(origin.elapsed().as_millis()).unwrap_or(0)
    }))
}

async fn run_inner(sc: RuntimeScenario) -> RuntimeReport {
    let seeds = SeedTree::new(sc.seed);
    let origin = tokio::time::Instant::now();
    let memory = virtual_memory_store();
    let timeout = coordinator_core::Config::default().request_timeout;
    let store = Arc::new(SeededStore::new(
        memory,
        seeds,
        LatencyModel::s3_like(),
        sc.faults,
        timeout,
    ));
    let rho = coordinator_core::Config::default().drift_tolerance;
    let mut sched = seeds.schedule();
    let rates: Vec<u64> = (0..sc.workers)
        .map(|_| {
            let e = sc
                .clock_drift
                .map_or(0.0, |s| sched.between(-1.0, 1.0) * s.min(0.999) * rho);
            ((1.0 + e) * PPM as f64).round() as u64
        })
        .collect();
    let mut workers: Vec<Option<Worker>> = Vec::new();
    let mut lives = vec![0u64; sc.workers];
    for (slot, rate) in rates.iter().enumerate() {
        workers.push(start_worker(&store, &seeds, slot, 0, *rate).await);
        lives[slot] = 1;
    }
    let mut violations = Vec::new();
    let mut hash = 0u64;
    let mut last_epoch = 0u64;
    let mut terms = 0u64;
    let mut failovers = Vec::new();
    let mut crashed: Option<(usize, tokio::time::Instant)> = None;
    let mut restarts: Vec<(usize, tokio::time::Instant)> = Vec::new();
    let mut split_reported = false;
    // Aborted workers: their loop is dead, but their plugins' contexts stay
    // valid until their deadline, so they count as believers until then.
    let mut zombies: Vec<Worker> = Vec::new();
    let step = Duration::from_millis(20);
    let every = sc.crash_leader_every;
    let mut next_crash = every.map(|e| origin + e);
    while origin.elapsed() < sc.duration {
        tokio::time::sleep(step).await;
        let now = tokio::time::Instant::now();
        let t = round3(origin.elapsed().as_secs_f64());
        let leaders: Vec<usize> = workers
            .iter()
            .enumerate()
            .filter(|(_, w)| w.as_ref().is_some_and(|w| w.coordinator.is_leader()))
            .map(|(i, _)| i)
            .collect();
        let zombie_leaders = zombies.iter().filter(|w| w.coordinator.is_leader()).count();
        zombies.retain(|w| w.coordinator.is_leader());
        if leaders.len() + zombie_leaders > 1 && !split_reported {
            split_reported = true;
            violations.push(Violation {
                kind: ViolationKind::SplitBrain,
                at_seconds: t,
                detail: format!(
                    "workers {leaders:?} and {zombie_leaders} aborted workers all believe they lead"
                ),
            });
        }
        if let Some(&l) = leaders.first() {
            let epoch = workers[l].as_ref().map_or(0, |w| w.coordinator.epoch());
            if epoch < last_epoch {
                violations.push(Violation {
                    kind: ViolationKind::EpochNotIncreasing,
                    at_seconds: t,
                    detail: format!("leader w{l} at epoch {epoch} after epoch {last_epoch}"),
                });
            }
            if epoch > last_epoch {
                terms += 1;
                hash = mix64(hash ^ epoch ^ (l as u64) << 32);
            }
            last_epoch = last_epoch.max(epoch);
            if let Some((old, at)) = crashed {
                if l != old {
                    failovers.push((now - at).as_secs_f64());
                    crashed = None;
                }
            }
        }
        if next_crash.is_some_and(|at| now >= at) {
            next_crash = next_crash.and_then(|at| every.map(|e| at + e));
            if let Some(&l) = leaders.first() {
                if let Some(w) = workers[l].take() {
                    w.coordinator.abort();
                    zombies.push(w);
                    crashed = Some((l, now));
                    restarts.push((l, now + Duration::from_secs(30)));
                }
            }
        }
        let due: Vec<usize> = restarts
            .iter()
            .filter(|(_, at)| now >= *at)
            .map(|(s, _)| *s)
            .collect();
        restarts.retain(|(_, at)| now < *at);
        for slot in due {
            let life = lives[slot];
            lives[slot] += 1;
            workers[slot] = start_worker(&store, &seeds, slot, life, rates[slot]).await;
        }
    }
    for w in workers.into_iter().flatten() {
        w.registry.close().await;
    }
    RuntimeReport {
        seed: sc.seed,
        violations,
        failover_seconds: Summary::of(&failovers),
        terms,
        requests: store.requests(),
        trace_hash: format!("{hash:016x}"),
    }
}
