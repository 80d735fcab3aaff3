//! Fault storms: correlated store faults for the plugin scenarios.
//!
//! Independent per-request faults ([`RequestFaults`](crate::faults::RequestFaults))
//! almost never fail many requests of one worker in a row; a real outage
//! (a fault proxy's storm, a throttled prefix, a flapping network) does.
//! A storm starts at seeded times ([`Episodes`]), lasts a few seconds, hits
//! one worker or everyone, and while it lasts most of the requests it hits
//! are refused, applied with an ambiguous answer, or applied with their
//! answer lost (the client waits its request timeout). The real-stack chaos
//! test lost a queue message only through such a storm (docs/chaos.md).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use coordinator_core::{mix64, SplitMix64};
use coordinator_store::{
    Capabilities, Conditional, LeaseStore, ObjectMeta, StoreError, StoredObject, Version, Written,
};
use serde::Serialize;

use crate::faults::Episodes;
use crate::runtime::SeededStore;

/// Separates the storms' stream from the run's other seeded streams, so
/// that turning storms on changes no other draw.
const STORMS_LABEL: u64 = 0x5707_3A11_0F57_0835;

/// How often storms come, how long they last and how hard they hit.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Storms {
    /// When storms start and how long they last.
    pub episodes: Episodes,
    /// The share of the requests a storm at full strength hits that fail
    /// in one of the three ways (the rest go through); less on the storm's
    /// rising and falling edges (see `Storm::strength`).
    pub share: f64,
    /// The share of storms that hit one worker (drawn at random) rather
    /// than everyone.
    pub one_worker: f64,
}

impl Default for Storms {
    /// One every 60 s on average, 8–40 s long (a full-strength middle of
    /// 4–20 s, around the queue scenario's 10 s visibility), 95% of the
    /// requests hit at full strength, two storms in three on one worker:
    /// the shape of the chaos test's proxy storms.
    fn default() -> Self {
        Self {
            episodes: Episodes {
                mean_every_ms: 60_000,
                min_ms: 8_000,
                max_ms: 40_000,
            },
            share: 0.95,
            one_worker: 2.0 / 3.0,
        }
    }
}

/// One storm: `[from, to)` since the run began, on one worker slot or on
/// everyone (`None`).
#[derive(Clone, Copy, Debug)]
struct Storm {
    from: Duration,
    to: Duration,
    slot: Option<usize>,
}

impl Storm {
    /// How hard the storm hits at `now`, 0–1: it builds up over its first
    /// quarter and dies down over its last, as an overloaded service or a
    /// flapping link does. The edges matter: there some requests go
    /// through and others fail, so a write can land with its answer lost
    /// and the client's next calls half succeed.
    fn strength(&self, now: Duration) -> f64 {
        let ramp = (self.to.saturating_sub(self.from) / 4).max(Duration::from_millis(1));
        let since = now.saturating_sub(self.from);
        let until = self.to.saturating_sub(now);
        (since.min(until).as_secs_f64() / ramp.as_secs_f64()).min(1.0)
    }
}

/// What a storm does to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hit {
    /// Refused (503), not applied.
    Refused,
    /// Applied; answered with an ambiguous failure.
    Ambiguous,
    /// Applied; the answer never comes, the client times out.
    AnswerLost,
}

#[derive(Debug)]
struct State {
    schedule: SplitMix64,
    draws: SplitMix64,
    /// The start of the next storm not yet drawn.
    next_start: Duration,
    /// Storms not yet over.
    storms: Vec<Storm>,
}

/// The storms of one run, shared by every worker's [`StormStore`].
#[derive(Debug)]
pub(crate) struct StormSchedule {
    storms: Storms,
    workers: usize,
    run_start: tokio::time::Instant,
    request_timeout: Duration,
    state: Mutex<State>,
}

impl StormSchedule {
    /// Call inside the run's runtime, at its start.
    pub(crate) fn new(
        storms: Storms,
        seed: u64,
        workers: usize,
        run_start: tokio::time::Instant,
        request_timeout: Duration,
    ) -> Self {
        let root = mix64(seed ^ STORMS_LABEL);
        let mut schedule = SplitMix64::new(root);
        let draws = SplitMix64::new(mix64(root.wrapping_add(1)));
        let next_start = Duration::from_millis(storms.episodes.next_gap(&mut schedule));
        Self {
            storms,
            workers: workers.max(1),
            run_start,
            request_timeout,
            state: Mutex::new(State {
                schedule,
                draws,
                next_start,
                storms: Vec::new(),
            }),
        }
    }

    /// What the storms do to a request of `slot` now (`None`: nothing).
    fn hit(&self, slot: usize, write: bool) -> Option<Hit> {
        let now = self.run_start.elapsed();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        while state.next_start <= now {
            let from = state.next_start;
            let length = self.storms.episodes.length(&mut state.schedule);
            let slot = if state.schedule.chance(self.storms.one_worker) {
                Some(state.schedule.below(self.workers as u64) as usize)
            } else {
                None
            };
            state.storms.push(Storm {
                from,
                to: from + Duration::from_millis(length),
                slot,
            });
            let gap = self.storms.episodes.next_gap(&mut state.schedule);
            state.next_start = from + Duration::from_millis(gap);
        }
        state.storms.retain(|s| s.to > now);
        let share = state
            .storms
            .iter()
            .filter(|s| s.from <= now && s.slot.is_none_or(|hit| hit == slot))
            .map(|s| self.storms.share * s.strength(now))
            .fold(0.0, f64::max);
        if share <= 0.0 || !state.draws.chance(share) {
            return None;
        }
        Some(match state.draws.below(3) {
            0 => Hit::Refused,
            // A read has nothing to apply: its answer is lost either way.
            1 if write => Hit::Ambiguous,
            _ => Hit::AnswerLost,
        })
    }
}

/// The run's [`SeededStore`] as one worker slot sees it: the storms that
/// hit that slot or everyone strike its requests first.
#[derive(Debug)]
pub(crate) struct StormStore {
    inner: Arc<SeededStore>,
    schedule: Arc<StormSchedule>,
    slot: usize,
}

impl StormStore {
    pub(crate) fn new(inner: Arc<SeededStore>, schedule: Arc<StormSchedule>, slot: usize) -> Self {
        Self {
            inner,
            schedule,
            slot,
        }
    }

    /// Runs `op` on the store underneath unless a storm hits it. A refused
    /// request never reaches the store (nor its request counts).
    async fn call<T: Send>(
        &self,
        op: &'static str,
        key: &str,
        write: bool,
        run: impl std::future::Future<Output = Result<T, StoreError>> + Send,
    ) -> Result<T, StoreError> {
        tokio::task::yield_now().await;
        let Some(hit) = self.schedule.hit(self.slot, write) else {
            return run.await;
        };
        match hit {
            Hit::Refused => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Err(StoreError::Unavailable {
                    key: key.to_owned(),
                    backend: "memory",
                    source: "injected: storm, 503 Service Unavailable".into(),
                })
            }
            Hit::Ambiguous => {
                let _ = run.await;
                Err(lost(op, key, write))
            }
            Hit::AnswerLost => {
                let started = tokio::time::Instant::now();
                let _ = run.await;
                tokio::time::sleep_until(started + self.schedule.request_timeout).await;
                Err(lost(op, key, write))
            }
        }
    }
}

/// The failure a client sees when a request's answer does not come: a
/// write may have been applied (ambiguous); a read is just unavailable.
fn lost(op: &'static str, key: &str, write: bool) -> StoreError {
    let source = "injected: storm, answer lost".into();
    if write {
        StoreError::Ambiguous {
            op,
            key: key.to_owned(),
            backend: "memory",
            source,
        }
    } else {
        StoreError::Unavailable {
            key: key.to_owned(),
            backend: "memory",
            source,
        }
    }
}

#[async_trait]
impl LeaseStore for StormStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn get(&self, key: &str) -> Result<Option<StoredObject>, StoreError> {
        self.call("get", key, false, self.inner.get(key)).await
    }

    async fn get_if_changed(&self, key: &str, known: &Version) -> Result<Conditional, StoreError> {
        let run = self.inner.get_if_changed(key, known);
        self.call("get_if_changed", key, false, run).await
    }

    async fn create(&self, key: &str, body: Bytes) -> Result<Written, StoreError> {
        self.call("create", key, true, self.inner.create(key, body))
            .await
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: &Version,
        body: Bytes,
    ) -> Result<Written, StoreError> {
        let run = self.inner.compare_and_swap(key, expected, body);
        self.call("compare_and_swap", key, true, run).await
    }

    async fn put(&self, key: &str, body: Bytes) -> Result<Written, StoreError> {
        self.call("put", key, true, self.inner.put(key, body)).await
    }

    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ObjectMeta>, StoreError> {
        let run = self.inner.list_page(prefix, start_after, limit);
        self.call("list_page", prefix, false, run).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.call("delete", key, true, self.inner.delete(key)).await
    }

    async fn delete_if_version(&self, key: &str, expected: &Version) -> Result<(), StoreError> {
        let run = self.inner.delete_if_version(key, expected);
        self.call("delete_if_version", key, true, run).await
    }
}
