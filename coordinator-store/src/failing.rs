//! [`FailingStore`]: seeded fault injection around any [`LeaseStore`], for
//! the runtime's and the simulator's tests.
//!
//! Faults are data ([`Fault`]): which operation kind, which key prefix, how
//! likely, and what happens ([`FaultKind`]). They can be replaced at run
//! time through a [`FaultController`], so a test can partition one worker
//! (give its store an `Unavailable` fault with probability 1) and heal it
//! later (clear the faults).
//!
//! # Determinism
//!
//! Each matching fault draws one number from a
//! [`SplitMix64`] stream seeded by
//! the `seed` given to [`FailingStore::new`], in the order calls reach the
//! store. The same seed and the same order of calls give the same faults; a
//! seeded simulation that orders its calls deterministically replays exactly.
//!
//! # How each kind behaves
//!
//! | kind | writes (create, CAS, put, deletes) | reads (get, list pages) |
//! |---|---|---|
//! | [`Unavailable`](FaultKind::Unavailable) | not applied, [`StoreError::Unavailable`] | [`StoreError::Unavailable`] |
//! | [`Throttled`](FaultKind::Throttled) | not applied, [`StoreError::Throttled`] | [`StoreError::Throttled`] |
//! | [`AmbiguousApplied`](FaultKind::AmbiguousApplied) | forwarded (applied if the inner store accepts it), then [`StoreError::Ambiguous`] | [`StoreError::Unavailable`] (a read that times out has no effect) |
//! | [`AmbiguousNotApplied`](FaultKind::AmbiguousNotApplied) | not applied, [`StoreError::Ambiguous`] | [`StoreError::Unavailable`] |
//! | [`Latency`](FaultKind::Latency) | `tokio::time::sleep`, then forwarded | same |
//!
//! Latency faults add up and are served before the request is forwarded;
//! because they use tokio's timer they follow paused test time. Of the
//! other kinds, the first matching fault (in list order) whose draw fires
//! decides the outcome.
//!
//! Injected [`Unavailable`](StoreError::Unavailable) and
//! [`Ambiguous`](StoreError::Ambiguous) errors carry an [`InjectedFault`] as
//! their source, so tests can tell them from real ones with
//! [`InjectedFault::is_injected`]. [`StoreError::Throttled`] has no source
//! field; behind a `FailingStore` over a [`MemoryStore`](crate::MemoryStore)
//! it can only be injected.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use coordinator_core::SplitMix64;

use crate::{
    Capabilities, Conditional, LeaseStore, ObjectMeta, RequestKind, StoreError, StoredObject,
    Version, Written,
};

/// What an injected fault does. See the [module docs](self) for each kind on
/// reads and writes.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum FaultKind {
    /// The store cannot be reached: [`StoreError::Unavailable`], nothing applied.
    Unavailable,
    /// The store asks to slow down: [`StoreError::Throttled`], nothing applied.
    Throttled,
    /// The write is applied to the inner store, then reported as
    /// [`StoreError::Ambiguous`] (a timeout after the store accepted it).
    AmbiguousApplied,
    /// [`StoreError::Ambiguous`] without applying the write (a timeout
    /// before the request reached the store).
    AmbiguousNotApplied,
    /// The request is delayed by this long (`tokio::time::sleep`), then
    /// forwarded.
    Latency(Duration),
}

/// One fault rule: requests of `op` (any if `None`) on keys starting with
/// `key_prefix` fail as `kind` with `probability`.
///
/// `key_prefix` is a plain string prefix (`""` matches every key); each page
/// of a listing is one request, matched by its prefix argument.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use coordinator_store::{Fault, FaultKind, RequestKind};
///
/// // Half of the lease writes in namespace `ns` time out after landing.
/// let flaky = Fault::new(FaultKind::AmbiguousApplied)
///     .on(RequestKind::Put)
///     .under("plg_coordinator_global/ns/state.json")
///     .with_probability(0.5);
/// // Every request is 40 ms slower.
/// let slow = Fault::new(FaultKind::Latency(Duration::from_millis(40)));
/// # let _ = (flaky, slow);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    /// The kind of request this fault applies to; `None` for every kind.
    pub op: Option<RequestKind>,
    /// Only keys starting with this string are affected (`""`: all).
    pub key_prefix: String,
    /// The chance, from 0.0 to 1.0, that a matching request is hit.
    pub probability: f64,
    /// What happens to a request that is hit.
    pub kind: FaultKind,
}

impl Fault {
    /// A fault of `kind` on every request, with probability 1.
    pub fn new(kind: FaultKind) -> Self {
        Self {
            op: None,
            key_prefix: String::new(),
            probability: 1.0,
            kind,
        }
    }

    /// Restricts the fault to requests of `op`.
    pub fn on(mut self, op: RequestKind) -> Self {
        self.op = Some(op);
        self
    }

    /// Restricts the fault to keys starting with `key_prefix`.
    pub fn under(mut self, key_prefix: impl Into<String>) -> Self {
        self.key_prefix = key_prefix.into();
        self
    }

    /// Sets the probability (clamped to 0.0..=1.0; NaN counts as 0).
    pub fn with_probability(mut self, probability: f64) -> Self {
        self.probability = if probability.is_nan() {
            0.0
        } else {
            probability.clamp(0.0, 1.0)
        };
        self
    }

    fn matches(&self, op: RequestKind, key: &str) -> bool {
        self.op.is_none_or(|wanted| wanted == op) && key.starts_with(&self.key_prefix)
    }
}

/// The source error of an injected [`StoreError`].
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("fault injected by FailingStore: {kind:?} on {op} of `{key}`")]
pub struct InjectedFault {
    /// The fault's kind.
    pub kind: FaultKind,
    /// The operation it hit (`"get"`, `"compare_and_swap"`, …).
    pub op: &'static str,
    /// The key (or listing prefix) it hit.
    pub key: String,
}

impl InjectedFault {
    /// True if `error` was injected by a [`FailingStore`] (its source is an
    /// [`InjectedFault`]). Always false for [`StoreError::Throttled`], which
    /// has no source.
    pub fn is_injected(error: &StoreError) -> bool {
        Self::of(error).is_some()
    }

    /// The injected fault behind `error`, if there is one.
    pub fn of(error: &StoreError) -> Option<&InjectedFault> {
        std::error::Error::source(error)?.downcast_ref::<InjectedFault>()
    }
}

struct FaultState {
    faults: Vec<Fault>,
    rng: SplitMix64,
    injected: u64,
}

/// The fault rules of a [`FailingStore`], shared so a test can change them
/// after the store has been moved into a worker.
pub struct FaultController {
    state: Mutex<FaultState>,
}

/// What to do with one request.
struct Decision {
    latency: Duration,
    fault: Option<FaultKind>,
}

impl FaultController {
    fn new(seed: u64) -> Self {
        Self {
            state: Mutex::new(FaultState {
                faults: Vec::new(),
                rng: SplitMix64::new(seed),
                injected: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, FaultState> {
        // Nothing panics while the lock is held; recover if it ever did.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces every fault rule.
    pub fn set_faults(&self, faults: Vec<Fault>) {
        self.lock().faults = faults;
    }

    /// Adds a fault rule after the existing ones.
    pub fn add_fault(&self, fault: Fault) {
        self.lock().faults.push(fault);
    }

    /// Removes every fault rule: requests pass through untouched.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// The current fault rules.
    pub fn faults(&self) -> Vec<Fault> {
        self.lock().faults.clone()
    }

    /// How many requests were hit by a fault so far (latency included).
    pub fn injected(&self) -> u64 {
        self.lock().injected
    }

    fn decide(&self, op: RequestKind, key: &str) -> Decision {
        let mut state = self.lock();
        let state = &mut *state;
        let mut decision = Decision {
            latency: Duration::ZERO,
            fault: None,
        };
        for fault in state.faults.iter().filter(|f| f.matches(op, key)) {
            // Draw for every matching rule so the stream does not depend on
            // which rules fired before.
            let fires = state.rng.unit() < fault.probability;
            if !fires {
                continue;
            }
            match fault.kind {
                FaultKind::Latency(delay) => {
                    decision.latency += delay;
                    state.injected += 1;
                }
                kind if decision.fault.is_none() => {
                    decision.fault = Some(kind);
                    state.injected += 1;
                }
                _ => {}
            }
        }
        decision
    }
}

impl fmt::Debug for FaultController {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("FaultController")
            .field("faults", &state.faults)
            .field("injected", &state.injected)
            .finish()
    }
}

/// A [`LeaseStore`] that injects seeded faults into the requests it
/// forwards to `S`. See the [module docs](self).
///
/// # Examples
///
/// ```
/// use coordinator_store::{FailingStore, Fault, FaultKind, InjectedFault, LeaseStore, MemoryStore};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let shared = MemoryStore::new();
/// let worker = FailingStore::new(shared.clone(), 42);
/// let control = worker.controller();
///
/// control.set_faults(vec![Fault::new(FaultKind::Unavailable)]); // partition
/// let err = worker.put("k", "x".into()).await.unwrap_err();
/// assert!(InjectedFault::is_injected(&err));
///
/// control.clear_faults(); // heal
/// worker.put("k", "x".into()).await.unwrap();
/// assert!(shared.get("k").await.unwrap().is_some());
/// # }
/// ```
pub struct FailingStore<S> {
    inner: S,
    control: Arc<FaultController>,
}

impl<S: LeaseStore> FailingStore<S> {
    /// Wraps `inner` with no faults yet; `seed` fixes every later draw.
    pub fn new(inner: S, seed: u64) -> Self {
        Self {
            inner,
            control: Arc::new(FaultController::new(seed)),
        }
    }

    /// Wraps `inner` with these fault rules.
    pub fn with_faults(inner: S, seed: u64, faults: Vec<Fault>) -> Self {
        let store = Self::new(inner, seed);
        store.set_faults(faults);
        store
    }

    /// A handle on the fault rules that outlives moving the store.
    pub fn controller(&self) -> Arc<FaultController> {
        self.control.clone()
    }

    /// Replaces every fault rule (see [`FaultController::set_faults`]).
    pub fn set_faults(&self, faults: Vec<Fault>) {
        self.control.set_faults(faults);
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        self.control.clear_faults();
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Decides the request's fate and serves its latency. `Some(kind)` means
    /// the request is hit by a fault of that kind.
    async fn admit(&self, kind: RequestKind, key: &str) -> Option<FaultKind> {
        let decision = self.control.decide(kind, key);
        if !decision.latency.is_zero() {
            tokio::time::sleep(decision.latency).await;
        }
        if let Some(fault) = decision.fault {
            tracing::debug!(
                backend = self.inner.backend(),
                op = kind.as_str(),
                key,
                fault = ?fault,
                "fault injected"
            );
        }
        decision.fault
    }

    fn error(&self, fault: FaultKind, op: &'static str, key: &str, write: bool) -> StoreError {
        let backend = self.inner.backend();
        let source = Box::new(InjectedFault {
            kind: fault,
            op,
            key: key.to_owned(),
        });
        match fault {
            FaultKind::Throttled => StoreError::Throttled {
                key: key.to_owned(),
                backend,
                retry_after: None,
            },
            FaultKind::AmbiguousApplied | FaultKind::AmbiguousNotApplied if write => {
                StoreError::Ambiguous {
                    op,
                    key: key.to_owned(),
                    backend,
                    source,
                }
            }
            _ => StoreError::Unavailable {
                key: key.to_owned(),
                backend,
                source,
            },
        }
    }

    /// Runs a read `op` unless a fault hits it.
    async fn read<T>(
        &self,
        op: &'static str,
        kind: RequestKind,
        key: &str,
        forward: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match self.admit(kind, key).await {
            None => forward.await,
            Some(fault) => Err(self.error(fault, op, key, false)),
        }
    }

    /// Runs a write `op`, applying it first for `AmbiguousApplied`.
    async fn write<T>(
        &self,
        op: &'static str,
        kind: RequestKind,
        key: &str,
        forward: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match self.admit(kind, key).await {
            None => forward.await,
            Some(FaultKind::AmbiguousApplied) => {
                // Whatever the inner store answered, the caller never hears it.
                let _ = forward.await;
                Err(self.error(FaultKind::AmbiguousApplied, op, key, true))
            }
            Some(fault) => Err(self.error(fault, op, key, true)),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for FailingStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailingStore")
            .field("inner", &self.inner)
            .field("control", &self.control)
            .finish()
    }
}

/// Forwards every method unless a fault hits it.
#[async_trait]
impl<S: LeaseStore> LeaseStore for FailingStore<S> {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn get(&self, key: &str) -> Result<Option<StoredObject>, StoreError> {
        let forward = self.inner.get(key);
        self.read("get", RequestKind::Get, key, forward).await
    }

    async fn get_if_changed(&self, key: &str, known: &Version) -> Result<Conditional, StoreError> {
        let forward = self.inner.get_if_changed(key, known);
        self.read("get_if_changed", RequestKind::Get, key, forward)
            .await
    }

    async fn create(&self, key: &str, body: Bytes) -> Result<Written, StoreError> {
        let forward = self.inner.create(key, body);
        self.write("create", RequestKind::Put, key, forward).await
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: &Version,
        body: Bytes,
    ) -> Result<Written, StoreError> {
        let forward = self.inner.compare_and_swap(key, expected, body);
        self.write("compare_and_swap", RequestKind::Put, key, forward)
            .await
    }

    async fn put(&self, key: &str, body: Bytes) -> Result<Written, StoreError> {
        let forward = self.inner.put(key, body);
        self.write("put", RequestKind::Put, key, forward).await
    }

    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ObjectMeta>, StoreError> {
        let forward = self.inner.list_page(prefix, start_after, limit);
        self.read("list", RequestKind::List, prefix, forward).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let forward = self.inner.delete(key);
        self.write("delete", RequestKind::Delete, key, forward)
            .await
    }

    async fn delete_if_version(&self, key: &str, expected: &Version) -> Result<(), StoreError> {
        let forward = self.inner.delete_if_version(key, expected);
        self.write("delete_if_version", RequestKind::Delete, key, forward)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LeaseStoreExt, MemoryStore};

    async fn outcomes(seed: u64) -> Vec<bool> {
        let store = FailingStore::with_faults(
            MemoryStore::new(),
            seed,
            vec![Fault::new(FaultKind::Unavailable).with_probability(0.3)],
        );
        let mut out = Vec::new();
        for i in 0..200 {
            out.push(store.put(&format!("k{i}"), "x".into()).await.is_ok());
        }
        out
    }

    #[tokio::test]
    async fn same_seed_same_faults() {
        let a = outcomes(7).await;
        assert_eq!(a, outcomes(7).await);
        assert_ne!(a, outcomes(8).await);
        let failures = a.iter().filter(|ok| !**ok).count();
        assert!((30..=90).contains(&failures), "{failures} of 200 at p=0.3");
    }

    #[tokio::test]
    async fn ambiguous_applied_lands_and_not_applied_does_not() {
        let shared = MemoryStore::new();
        let store = FailingStore::new(shared.clone(), 1);
        store.set_faults(vec![Fault::new(FaultKind::AmbiguousApplied).under("a")]);
        let err = store.create("a", "1".into()).await.unwrap_err();
        assert!(matches!(err, StoreError::Ambiguous { .. }), "{err}");
        assert_eq!(
            InjectedFault::of(&err).unwrap().kind,
            FaultKind::AmbiguousApplied
        );
        assert!(shared.get("a").await.unwrap().is_some());
        // Other keys pass.
        store.create("b", "1".into()).await.unwrap();

        store.set_faults(vec![
            Fault::new(FaultKind::AmbiguousNotApplied).on(RequestKind::Put)
        ]);
        let err = store.create("c", "1".into()).await.unwrap_err();
        assert!(matches!(err, StoreError::Ambiguous { .. }), "{err}");
        assert!(shared.get("c").await.unwrap().is_none());
        // Reads are not Put: untouched.
        assert!(store.get("a").await.unwrap().is_some());

        store.set_faults(vec![
            Fault::new(FaultKind::AmbiguousNotApplied).on(RequestKind::Get)
        ]);
        let err = store.get("a").await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable { .. }), "{err}");

        store.set_faults(vec![Fault::new(FaultKind::Throttled)]);
        let err = store.list("").await.unwrap_err();
        assert!(matches!(err, StoreError::Throttled { .. }), "{err}");
        assert!(!InjectedFault::is_injected(&err));
        assert_eq!(store.controller().injected(), 4);

        store.clear_faults();
        assert_eq!(store.list("").await.unwrap().len(), 2);
        let real = store.create("a", "2".into()).await.unwrap_err();
        assert!(!InjectedFault::is_injected(&real));
    }

    #[tokio::test(start_paused = true)]
    async fn latency_follows_paused_time() {
        let store = FailingStore::with_faults(
            MemoryStore::new(),
            3,
            vec![
                Fault::new(FaultKind::Latency(Duration::from_secs(5))),
                Fault::new(FaultKind::Latency(Duration::from_secs(2))).on(RequestKind::Put),
            ],
        );
        let start = tokio::time::Instant::now();
        store.put("k", "x".into()).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(7));
        store.get("k").await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(12));
    }
}
