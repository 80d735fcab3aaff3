//! Helpers shared by the plugin tests.
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::sync::Arc;
use std::time::Duration;

use coordinator_core::{Namespace, SplitMix64, WorkerId};
use coordinator_plugins::scheduler::{Scheduler, SchedulerPlugin};
use coordinator_runtime::{
    Clock, CoordinatorConfig, CoordinatorPlugin, CoordinatorRegistry, LeaderContext, TokioClock,
};
use coordinator_store::{LeaseStore, MemoryStore};

/// 2023-11-14T22:13:20Z.
pub const T0: u64 = 1_700_000_000_000;

/// A memory store whose timestamps follow tokio's (paused) clock.
pub fn virtual_store() -> MemoryStore {
    let origin = tokio::time::Instant::now();
    MemoryStore::with_clock(Arc::new(move || {
        i64::try_from(T0).unwrap() + i64::try_from(origin.elapsed().as_millis()).unwrap()
    }))
}

pub fn clock() -> Arc<TokioClock> {
    Arc::new(TokioClock::starting_at(T0))
}

/// A context valid for `for_` from now, outside any election.
pub fn standalone(
    epoch: u64,
    store: Arc<dyn LeaseStore>,
    clock: &Arc<TokioClock>,
    for_: Duration,
) -> LeaderContext {
    let deadline = clock.now() + for_;
    LeaderContext::standalone(
        epoch,
        Namespace::new("ns").unwrap(),
        WorkerId::new("leader").unwrap(),
        store,
        clock.clone(),
        deadline,
    )
}

/// A day: long enough for any leader term of these tests.
pub const A_DAY: Duration = Duration::from_secs(86_400);

/// `scheduler`'s leader part, started as leader at `epoch` for `for_`
/// outside any election (a [`standalone`] context), as a worker's
/// coordinator starts it when it wins.
pub async fn lead_standalone(
    scheduler: &Scheduler,
    epoch: u64,
    store: Arc<dyn LeaseStore>,
    clock: &Arc<TokioClock>,
    for_: Duration,
) -> SchedulerPlugin {
    let plugin = scheduler.plugin();
    plugin
        .on_become_coordinator(standalone(epoch, store, clock, for_))
        .await
        .unwrap();
    plugin
}

pub fn seed_of(id: &str) -> u64 {
    id.bytes()
        .fold(17u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
}

pub fn registry(
    store: Arc<dyn LeaseStore>,
    id: &str,
    clock: &Arc<TokioClock>,
) -> CoordinatorRegistry {
    let clock: Arc<dyn Clock> = clock.clone();
    CoordinatorRegistry::builder(store)
        .config(
            CoordinatorConfig::default()
                .with_worker_id(id)
                .with_seed(seed_of(id)),
        )
        .clock(clock)
        .build()
        .expect("valid config")
}

/// A deterministic generator for the tests' own choices.
pub struct TestRng(pub SplitMix64);

impl TestRng {
    pub fn new(seed: u64) -> Self {
        Self(SplitMix64::new(seed))
    }

    pub fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A store whose next `times` writes (create or compare-and-swap) on keys
/// containing a pattern are applied and then answered
/// [`StoreError::Throttled`]: what a client library reports when its first
/// try landed, the reply was lost, and its hidden retry was throttled. Every
/// other request is forwarded as is.
#[derive(Debug)]
pub struct LandsThrottled {
    inner: Arc<dyn LeaseStore>,
    plan: std::sync::Mutex<(String, usize)>,
    hit: std::sync::atomic::AtomicUsize,
    /// Deletes to refuse: pattern and how many more times.
    deletes: std::sync::Mutex<(String, usize)>,
}

impl LandsThrottled {
    pub fn new(inner: Arc<dyn LeaseStore>) -> Self {
        Self {
            inner,
            plan: std::sync::Mutex::new((String::new(), 0)),
            hit: std::sync::atomic::AtomicUsize::new(0),
            deletes: std::sync::Mutex::new((String::new(), 0)),
        }
    }

    /// The next `times` deletes of keys containing `pattern` fail
    /// (`Unavailable`) without deleting.
    pub fn fail_deletes(&self, pattern: &str, times: usize) {
        *self.deletes.lock().unwrap() = (pattern.to_owned(), times);
    }

    /// Deletes still to be refused.
    pub fn deletes_left(&self) -> usize {
        self.deletes.lock().unwrap().1
    }

    fn refuses_delete(&self, key: &str) -> Result<(), coordinator_store::StoreError> {
        let mut plan = self.deletes.lock().unwrap();
        if plan.1 > 0 && key.contains(plan.0.as_str()) {
            plan.1 -= 1;
            return Err(coordinator_store::StoreError::Unavailable {
                key: key.to_owned(),
                backend: self.inner.backend(),
                source: "injected: the delete did not reach the store".into(),
            });
        }
        Ok(())
    }

    /// The next `times` writes on keys containing `pattern` land, then are
    /// answered `Throttled`.
    pub fn arm(&self, pattern: &str, times: usize) {
        *self.plan.lock().unwrap() = (pattern.to_owned(), times);
    }

    /// How many writes were answered `Throttled` after landing.
    pub fn hits(&self) -> usize {
        self.hit.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn fires(&self, key: &str) -> bool {
        let mut plan = self.plan.lock().unwrap();
        if plan.1 > 0 && key.contains(plan.0.as_str()) {
            plan.1 -= 1;
            true
        } else {
            false
        }
    }

    fn landed(
        &self,
        key: &str,
        result: Result<coordinator_store::Written, coordinator_store::StoreError>,
    ) -> Result<coordinator_store::Written, coordinator_store::StoreError> {
        result?;
        self.hit.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Err(coordinator_store::StoreError::Throttled {
            key: key.to_owned(),
            backend: self.inner.backend(),
            retry_after: None,
        })
    }
}

#[async_trait::async_trait]
impl LeaseStore for LandsThrottled {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    fn capabilities(&self) -> coordinator_store::Capabilities {
        self.inner.capabilities()
    }
    async fn get(
        &self,
        key: &str,
    ) -> Result<Option<coordinator_store::StoredObject>, coordinator_store::StoreError> {
        self.inner.get(key).await
    }
    async fn get_if_changed(
        &self,
        key: &str,
        known: &coordinator_store::Version,
    ) -> Result<coordinator_store::Conditional, coordinator_store::StoreError> {
        self.inner.get_if_changed(key, known).await
    }
    async fn create(
        &self,
        key: &str,
        body: bytes::Bytes,
    ) -> Result<coordinator_store::Written, coordinator_store::StoreError> {
        let fires = self.fires(key);
        let result = self.inner.create(key, body).await;
        if fires {
            self.landed(key, result)
        } else {
            result
        }
    }
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: &coordinator_store::Version,
        body: bytes::Bytes,
    ) -> Result<coordinator_store::Written, coordinator_store::StoreError> {
        let fires = self.fires(key);
        let result = self.inner.compare_and_swap(key, expected, body).await;
        if fires {
            self.landed(key, result)
        } else {
            result
        }
    }
    async fn put(
        &self,
        key: &str,
        body: bytes::Bytes,
    ) -> Result<coordinator_store::Written, coordinator_store::StoreError> {
        self.inner.put(key, body).await
    }
    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<coordinator_store::ObjectMeta>, coordinator_store::StoreError> {
        self.inner.list_page(prefix, start_after, limit).await
    }
    async fn delete(&self, key: &str) -> Result<(), coordinator_store::StoreError> {
        self.refuses_delete(key)?;
        self.inner.delete(key).await
    }
    async fn delete_if_version(
        &self,
        key: &str,
        expected: &coordinator_store::Version,
    ) -> Result<(), coordinator_store::StoreError> {
        self.refuses_delete(key)?;
        self.inner.delete_if_version(key, expected).await
    }
}
