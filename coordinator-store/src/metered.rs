//! [`Metered`]: a wrapper that counts the requests a [`LeaseStore`] makes,
//! by [`RequestKind`] and outcome, to measure what a configuration costs.
//!
//! * Every method is forwarded (the provided `get_if_changed` too, so a real
//!   conditional GET stays one).
//! * Each call counts as one request of its kind whatever its outcome
//!   (S3 bills a `412 Precondition Failed` like a success); calls that return
//!   an error, [`StoreError::Conflict`] and [`StoreError::AlreadyExists`]
//!   included, are also counted in [`RequestCounts::errors`].
//! * [`list_page`](LeaseStore::list_page) counts one LIST per started
//!   1,000 keys it returns, as S3's `ListObjectsV2` pages at 1,000, and one
//!   for an empty page. [`LeaseStoreExt::list`](crate::LeaseStoreExt::list)
//!   walks pages of 1,000, so listing 2,500 keys is 3 LISTs and listing
//!   none is 1.
//! * Counters are relaxed atomics: cheap, and exact once the calls have
//!   returned.

use std::fmt;
use std::ops::Sub;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use serde::Serialize;

use crate::{
    Capabilities, Conditional, LeaseStore, ObjectMeta, RequestKind, StoreError, StoredObject,
    Version, Written,
};

/// The keys S3 returns per LIST page.
pub const LIST_PAGE_SIZE: usize = 1000;

/// Request counts at one moment, from [`RequestCounter::snapshot`].
///
/// Subtract two snapshots for the requests made in between.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RequestCounts {
    /// GETs, plain and conditional.
    pub get: u64,
    /// HEADs (metadata reads).
    pub head: u64,
    /// PUTs: creates, compare-and-swaps and unconditional puts.
    pub put: u64,
    /// LIST pages (one per 1,000 keys listed, at least one per listing).
    pub list: u64,
    /// DELETEs, conditional or not.
    pub delete: u64,
    /// Requests of any kind that returned an error (already counted in
    /// their kind as well).
    pub errors: u64,
}

impl RequestCounts {
    /// The count for one kind.
    pub fn of(&self, kind: RequestKind) -> u64 {
        match kind {
            RequestKind::Get => self.get,
            RequestKind::Head => self.head,
            RequestKind::Put => self.put,
            RequestKind::List => self.list,
            RequestKind::Delete => self.delete,
        }
    }

    /// All requests (`errors` are not added again: they are counted in
    /// their kind).
    pub fn total(&self) -> u64 {
        RequestKind::ALL.iter().map(|&kind| self.of(kind)).sum()
    }

    /// What these requests cost on S3 Standard, in US dollars
    /// (see [`RequestKind::s3_standard_usd`]).
    pub fn usd_s3_standard(&self) -> f64 {
        RequestKind::ALL
            .iter()
            .map(|&kind| self.of(kind) as f64 * kind.s3_standard_usd())
            .sum()
    }
}

impl Sub for RequestCounts {
    type Output = RequestCounts;

    /// The requests made between two snapshots (`later - earlier`),
    /// saturating at zero.
    fn sub(self, earlier: RequestCounts) -> RequestCounts {
        RequestCounts {
            get: self.get.saturating_sub(earlier.get),
            head: self.head.saturating_sub(earlier.head),
            put: self.put.saturating_sub(earlier.put),
            list: self.list.saturating_sub(earlier.list),
            delete: self.delete.saturating_sub(earlier.delete),
            errors: self.errors.saturating_sub(earlier.errors),
        }
    }
}

/// Shared request counters. Get one with [`Metered::counter`] to keep
/// reading after the store has been moved, or share one between several
/// [`Metered`] stores with [`Metered::with_counter`].
#[derive(Default)]
pub struct RequestCounter {
    get: AtomicU64,
    head: AtomicU64,
    put: AtomicU64,
    list: AtomicU64,
    delete: AtomicU64,
    errors: AtomicU64,
}

impl RequestCounter {
    /// A counter at zero.
    pub fn new() -> Self {
        Self::default()
    }

    fn cell(&self, kind: RequestKind) -> &AtomicU64 {
        match kind {
            RequestKind::Get => &self.get,
            RequestKind::Head => &self.head,
            RequestKind::Put => &self.put,
            RequestKind::List => &self.list,
            RequestKind::Delete => &self.delete,
        }
    }

    /// Counts `requests` requests of `kind`, and one error if `ok` is false.
    pub fn record(&self, kind: RequestKind, requests: u64, ok: bool) {
        self.cell(kind).fetch_add(requests, Ordering::Relaxed);
        if !ok {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counts now.
    pub fn snapshot(&self) -> RequestCounts {
        RequestCounts {
            get: self.get.load(Ordering::Relaxed),
            head: self.head.load(Ordering::Relaxed),
            put: self.put.load(Ordering::Relaxed),
            list: self.list.load(Ordering::Relaxed),
            delete: self.delete.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }

    /// Sets every count back to zero and returns what they were. (Counts
    /// made concurrently may land on either side.)
    pub fn reset(&self) -> RequestCounts {
        RequestCounts {
            get: self.get.swap(0, Ordering::Relaxed),
            head: self.head.swap(0, Ordering::Relaxed),
            put: self.put.swap(0, Ordering::Relaxed),
            list: self.list.swap(0, Ordering::Relaxed),
            delete: self.delete.swap(0, Ordering::Relaxed),
            errors: self.errors.swap(0, Ordering::Relaxed),
        }
    }
}

impl fmt::Debug for RequestCounter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.snapshot(), f)
    }
}

/// A [`LeaseStore`] that counts the requests it forwards to `S`.
///
/// # Examples
///
/// ```
/// use coordinator_store::{LeaseStore, MemoryStore, Metered};
/// # futures::executor::block_on(async {
/// let store = Metered::new(MemoryStore::new());
/// let counter = store.counter();
/// let written = store.create("k", "a".into()).await?;
/// let _ = store.compare_and_swap("k", &written.version, "b".into()).await?;
/// let _ = store.get("k").await?;
/// let counts = counter.snapshot();
/// assert_eq!((counts.put, counts.get, counts.total()), (2, 1, 3));
/// # Ok::<(), coordinator_store::StoreError>(())
/// # }).unwrap();
/// ```
pub struct Metered<S> {
    inner: S,
    counter: Arc<RequestCounter>,
}

impl<S: LeaseStore> Metered<S> {
    /// Wraps `inner` with a fresh counter.
    pub fn new(inner: S) -> Self {
        Self::with_counter(inner, Arc::new(RequestCounter::new()))
    }

    /// Wraps `inner`, counting into `counter` (which other stores may share).
    pub fn with_counter(inner: S, counter: Arc<RequestCounter>) -> Self {
        Self { inner, counter }
    }

    /// A handle on the counters that outlives moving the store.
    pub fn counter(&self) -> Arc<RequestCounter> {
        self.counter.clone()
    }

    /// The counts now.
    pub fn snapshot(&self) -> RequestCounts {
        self.counter.snapshot()
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Unwraps the store.
    pub fn into_inner(self) -> S {
        self.inner
    }

    fn count<T>(&self, kind: RequestKind, result: Result<T, StoreError>) -> Result<T, StoreError> {
        self.counter.record(kind, 1, result.is_ok());
        result
    }

    /// One LIST per started page of [`LIST_PAGE_SIZE`] keys listed (one
    /// for an empty or failed listing).
    fn count_listing(
        &self,
        result: Result<Vec<ObjectMeta>, StoreError>,
    ) -> Result<Vec<ObjectMeta>, StoreError> {
        let pages = match &result {
            Ok(objects) => objects.len().div_ceil(LIST_PAGE_SIZE).max(1) as u64,
            Err(_) => 1,
        };
        self.counter
            .record(RequestKind::List, pages, result.is_ok());
        result
    }
}

impl<S: fmt::Debug> fmt::Debug for Metered<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metered")
            .field("inner", &self.inner)
            .field("counts", &self.counter.snapshot())
            .finish()
    }
}

/// Forwards every method and counts it.
#[async_trait]
impl<S: LeaseStore> LeaseStore for Metered<S> {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn get(&self, key: &str) -> Result<Option<StoredObject>, StoreError> {
        let result = self.inner.get(key).await;
        self.count(RequestKind::Get, result)
    }

    async fn get_if_changed(&self, key: &str, known: &Version) -> Result<Conditional, StoreError> {
        let result = self.inner.get_if_changed(key, known).await;
        self.count(RequestKind::Get, result)
    }

    async fn create(&self, key: &str, body: Bytes) -> Result<Written, StoreError> {
        let result = self.inner.create(key, body).await;
        self.count(RequestKind::Put, result)
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: &Version,
        body: Bytes,
    ) -> Result<Written, StoreError> {
        let result = self.inner.compare_and_swap(key, expected, body).await;
        self.count(RequestKind::Put, result)
    }

    async fn put(&self, key: &str, body: Bytes) -> Result<Written, StoreError> {
        let result = self.inner.put(key, body).await;
        self.count(RequestKind::Put, result)
    }

    /// Forwards one page and counts one LIST per started [`LIST_PAGE_SIZE`]
    /// keys in it (one for an empty or failed page).
    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ObjectMeta>, StoreError> {
        let result = self.inner.list_page(prefix, start_after, limit).await;
        self.count_listing(result)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let result = self.inner.delete(key).await;
        self.count(RequestKind::Delete, result)
    }

    async fn delete_if_version(&self, key: &str, expected: &Version) -> Result<(), StoreError> {
        let result = self.inner.delete_if_version(key, expected).await;
        self.count(RequestKind::Delete, result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LeaseStoreExt, MemoryStore};

    /// A store that keeps the default `get_if_changed`, behind an `Arc` of
    /// `dyn LeaseStore` as the runtime holds its stores.
    #[derive(Debug)]
    struct DefaultConditional(MemoryStore);

    #[async_trait]
    impl LeaseStore for DefaultConditional {
        fn backend(&self) -> &'static str {
            "default-conditional"
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities {
                conditional_get: false,
                ..self.0.capabilities()
            }
        }
        async fn get(&self, key: &str) -> Result<Option<StoredObject>, StoreError> {
            self.0.get(key).await
        }
        async fn create(&self, key: &str, body: Bytes) -> Result<Written, StoreError> {
            self.0.create(key, body).await
        }
        async fn compare_and_swap(
            &self,
            key: &str,
            expected: &Version,
            body: Bytes,
        ) -> Result<Written, StoreError> {
            self.0.compare_and_swap(key, expected, body).await
        }
        async fn put(&self, key: &str, body: Bytes) -> Result<Written, StoreError> {
            self.0.put(key, body).await
        }
        async fn list_page(
            &self,
            prefix: &str,
            start_after: Option<&str>,
            limit: usize,
        ) -> Result<Vec<ObjectMeta>, StoreError> {
            self.0.list_page(prefix, start_after, limit).await
        }
        async fn delete(&self, key: &str) -> Result<(), StoreError> {
            self.0.delete(key).await
        }
        async fn delete_if_version(&self, key: &str, expected: &Version) -> Result<(), StoreError> {
            self.0.delete_if_version(key, expected).await
        }
    }

    #[tokio::test]
    async fn wraps_a_shared_store_with_the_default_get_if_changed() {
        let shared: Arc<dyn LeaseStore> = Arc::new(DefaultConditional(MemoryStore::new()));
        let metered = Metered::new(shared);
        let counter = metered.counter();
        let store: Arc<dyn LeaseStore> = Arc::new(metered);
        let written = store.create("k", "a".into()).await.unwrap();
        // The trait's provided get_if_changed (one GET), through the Arc.
        let unchanged = store.get_if_changed("k", &written.version).await.unwrap();
        assert!(matches!(unchanged, Conditional::Unchanged));
        let stale = store
            .compare_and_swap("k", &Version::new("x"), "b".into())
            .await;
        assert!(matches!(stale, Err(StoreError::Conflict { .. })));
        store.delete("k").await.unwrap();
        assert_eq!(store.backend(), "default-conditional");
        assert!(!store.capabilities().conditional_get);
        let counts = counter.snapshot();
        assert_eq!((counts.get, counts.put, counts.delete), (1, 2, 1));
        assert_eq!(counts.errors, 1);
    }

    #[tokio::test]
    async fn counts_kinds_outcomes_and_list_pages() {
        let store = Metered::new(MemoryStore::new());
        let counter = store.counter();
        let written = store.create("k", "a".into()).await.unwrap();
        assert!(store.create("k", "b".into()).await.is_err());
        store.get_if_changed("k", &written.version).await.unwrap();
        store.get("missing").await.unwrap();
        for i in 0..2_001 {
            store
                .inner()
                .put(&format!("p/{i:05}"), "x".into())
                .await
                .unwrap();
        }
        assert_eq!(store.list("p").await.unwrap().len(), 2_001);
        assert!(store.list("nothing").await.unwrap().is_empty());
        store
            .delete_if_version("k", &written.version)
            .await
            .unwrap();
        store.delete("k").await.unwrap();

        let after = counter.snapshot();
        assert_eq!(
            after,
            RequestCounts {
                get: 2,
                head: 0,
                put: 2,
                list: 4,
                delete: 2,
                errors: 1
            }
        );
        assert_eq!(after.total(), 10);
        let usd = after.usd_s3_standard();
        let expected = 6.0 * 0.005 / 1000.0 + 2.0 * 0.0004 / 1000.0;
        assert!((usd - expected).abs() < 1e-12, "{usd}");

        store.get("k").await.unwrap();
        let delta = counter.snapshot() - after;
        assert_eq!(delta.get, 1);
        assert_eq!(delta.total(), 1);
        let json = serde_json::to_value(delta).unwrap();
        assert_eq!(json["get"], 1);
        assert_eq!(counter.reset().get, 3);
        assert_eq!(counter.snapshot(), RequestCounts::default());
    }
}
