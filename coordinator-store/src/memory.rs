//! [`MemoryStore`]: an in-process [`LeaseStore`] for tests and simulations.
//!
//! * One `std::sync::Mutex` around a `BTreeMap` makes create-if-absent,
//!   compare-and-swap and conditional delete truly atomic.
//! * Versions come from a counter per store (shared by its clones): every
//!   write gets a new version, even when it writes the same bytes again, so
//!   this store has no ABA at all. S3 and the local directory use content
//!   digests, which do; code that must run on them cannot rely on this.
//!   The counter (not a random value) keeps versions reproducible: the same
//!   sequence of writes gives the same versions, which a seeded simulation
//!   needs.
//! * Store times come from an injectable clock (milliseconds since the Unix
//!   epoch), read under the lock, so they never go backwards in write order
//!   as long as the clock does not. The default clock is the Unix time when
//!   the store was made plus the time since then on the monotonic clock
//!   (`Instant`): NTP can slew it but never step it, so
//!   [`Capabilities::trusted_clock`] is true (see [`MemoryStore::new`]).
//! * [`Clone`] is a cheap handle onto the same objects, so several simulated
//!   workers can share one store.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;

use crate::{
    Capabilities, Conditional, LeaseStore, ObjectMeta, StoreError, StoreTime, StoredObject,
    Version, Written,
};

const BACKEND: &str = "memory";

/// A clock for [`MemoryStore::with_clock`]: milliseconds since the Unix epoch.
pub type MemoryClock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// An in-process [`LeaseStore`] with real atomic conditional writes.
///
/// Clones share the same objects. See the [module docs](self) for how
/// versions and store times are assigned.
///
/// # Examples
///
/// ```
/// use coordinator_store::{LeaseStore, MemoryStore, StoreError};
/// # futures::executor::block_on(async {
/// let store = MemoryStore::new();
/// let first = store.create("ns/state.json", "v1".into()).await?;
/// let second = store.compare_and_swap("ns/state.json", &first.version, "v2".into()).await?;
/// // The old version is stale now.
/// let stale = store.compare_and_swap("ns/state.json", &first.version, "v3".into()).await;
/// assert!(matches!(stale, Err(StoreError::Conflict { .. })));
/// assert_ne!(first.version, second.version);
/// # Ok::<(), StoreError>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    clock: MemoryClock,
}

#[derive(Default)]
struct State {
    objects: BTreeMap<String, Entry>,
    /// The number of writes so far; the next write's version is this plus one.
    writes: u64,
}

#[derive(Clone)]
struct Entry {
    body: Bytes,
    version: Version,
    store_time: i64,
}

impl Entry {
    fn object(&self) -> StoredObject {
        StoredObject {
            body: self.body.clone(),
            version: self.version.clone(),
            store_time: Some(StoreTime(self.store_time)),
        }
    }
}

impl State {
    /// Stores `body` at `key` with a fresh version and returns what was written.
    fn write(&mut self, key: &str, body: Bytes, now_ms: i64) -> Written {
        self.writes += 1;
        let version = Version::new(format!("m{:016x}", self.writes));
        let written = Written {
            version: version.clone(),
            store_time: Some(StoreTime(now_ms)),
        };
        let entry = Entry {
            body,
            version,
            store_time: now_ms,
        };
        match self.objects.get_mut(key) {
            Some(slot) => *slot = entry,
            None => {
                self.objects.insert(key.to_owned(), entry);
            }
        }
        written
    }
}

fn system_clock_ms() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_millis()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// A clock that reads `base_ms` at `start` and advances with the monotonic
/// clock from there.
///
/// The stale-lease shortcut compares two store times of one store (the
/// lease's and a fresh heartbeat's), so they must come from a clock that
/// is never stepped: `SystemTime` is stepped by NTP or an operator, and a
/// step forward makes a live lease look stale. `Instant` only moves
/// forward; the Unix base read once keeps the times near the wall clock
/// for whoever prints them. On Linux `Instant` stops while the machine is
/// suspended, which only makes a lease look younger (a worker waits
/// longer), never older.
fn monotonic_clock(base_ms: i64, start: Instant) -> MemoryClock {
    Arc::new(move || {
        let elapsed = i64::try_from(start.elapsed().as_millis()).unwrap_or(i64::MAX);
        base_ms.saturating_add(elapsed)
    })
}

impl MemoryStore {
    /// An empty store whose store times are the system time when it was
    /// made plus the time since then on the monotonic clock, so they never
    /// step back or jump forward when the system clock is set (see the
    /// [module docs](self)). Clones share the clock.
    pub fn new() -> Self {
        Self::with_clock(monotonic_clock(system_clock_ms(), Instant::now()))
    }

    /// An empty store whose store times come from `clock` (milliseconds
    /// since the Unix epoch), so a simulation can stamp its own times.
    ///
    /// The store still reports [`Capabilities::trusted_clock`]: `clock`
    /// must never step (a simulation that steps it to test the stale-lease
    /// shortcut is the exception it exists for).
    ///
    /// The clock is called once per write, while the store's lock is held.
    pub fn with_clock(clock: MemoryClock) -> Self {
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                clock,
            }),
        }
    }

    /// The number of objects in the store.
    pub fn len(&self) -> usize {
        self.lock().objects.len()
    }

    /// True if the store holds no object.
    pub fn is_empty(&self) -> bool {
        self.lock().objects.is_empty()
    }

    /// The number of successful writes so far (create, compare-and-swap,
    /// put), over all clones.
    pub fn write_count(&self) -> u64 {
        self.lock().writes
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while the lock is held can only come from the injected
        // clock, before anything was changed, so the state is still whole.
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn now_ms(&self) -> i64 {
        (self.shared.clock)()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("objects", &self.len())
            .finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// Up to `limit` objects under `prefix` after `start_after`, by key.
    fn page(&self, prefix: &str, start_after: Option<&str>, limit: usize) -> Vec<ObjectMeta> {
        let from = match start_after {
            Some(after) if after >= prefix => std::ops::Bound::Excluded(after),
            _ => std::ops::Bound::Included(prefix),
        };
        self.lock()
            .objects
            .range::<str, _>((from, std::ops::Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix))
            .filter(|(key, _)| key_is_under(key, prefix))
            .take(limit)
            .map(|(key, entry)| ObjectMeta {
                key: key.clone(),
                version: entry.version.clone(),
                size: entry.body.len() as u64,
                store_time: Some(StoreTime(entry.store_time)),
            })
            .collect()
    }
}

/// True if `key` lies under `prefix`, comparing whole `/`-separated segments
/// as object_store does (`a/b` is under `a`, `ab` is not). An empty prefix
/// holds every key.
pub(crate) fn key_is_under(key: &str, prefix: &str) -> bool {
    if prefix.is_empty() {
        return true;
    }
    if prefix.ends_with('/') {
        return key.starts_with(prefix);
    }
    key.strip_prefix(prefix)
        .is_some_and(|rest| rest.starts_with('/'))
}

#[async_trait]
impl LeaseStore for MemoryStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            conditional_delete: true,
            conditional_get: true,
            // Trusted: the default clock is monotonic (`monotonic_clock`),
            // and an injected one is the simulation's to control.
            trusted_clock: true,
        }
    }

    // The work happens when the future is first polled: a future that is
    // dropped unpolled changes nothing.

    async fn get(&self, key: &str) -> Result<Option<StoredObject>, StoreError> {
        Ok(self.lock().objects.get(key).map(Entry::object))
    }

    async fn get_if_changed(&self, key: &str, known: &Version) -> Result<Conditional, StoreError> {
        Ok(match self.lock().objects.get(key) {
            None => Conditional::Absent,
            Some(entry) if &entry.version == known => Conditional::Unchanged,
            Some(entry) => Conditional::Changed(entry.object()),
        })
    }

    async fn create(&self, key: &str, body: Bytes) -> Result<Written, StoreError> {
        let mut state = self.lock();
        if state.objects.contains_key(key) {
            return Err(StoreError::AlreadyExists {
                key: key.to_owned(),
                backend: BACKEND,
            });
        }
        let now = self.now_ms();
        Ok(state.write(key, body, now))
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: &Version,
        body: Bytes,
    ) -> Result<Written, StoreError> {
        let mut state = self.lock();
        match state.objects.get(key) {
            Some(entry) if &entry.version == expected => {
                let now = self.now_ms();
                Ok(state.write(key, body, now))
            }
            _ => Err(StoreError::Conflict {
                key: key.to_owned(),
                backend: BACKEND,
            }),
        }
    }

    async fn put(&self, key: &str, body: Bytes) -> Result<Written, StoreError> {
        let mut state = self.lock();
        let now = self.now_ms();
        Ok(state.write(key, body, now))
    }

    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ObjectMeta>, StoreError> {
        Ok(self.page(prefix, start_after, limit))
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.lock().objects.remove(key);
        Ok(())
    }

    async fn delete_if_version(&self, key: &str, expected: &Version) -> Result<(), StoreError> {
        let mut state = self.lock();
        match state.objects.get(key) {
            Some(entry) if &entry.version == expected => {
                state.objects.remove(key);
                Ok(())
            }
            _ => Err(StoreError::Conflict {
                key: key.to_owned(),
                backend: BACKEND,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicI64, Ordering};

    #[test]
    fn prefixes_compare_whole_segments() {
        assert!(key_is_under("a/b", "a"));
        assert!(key_is_under("a/b", "a/"));
        assert!(key_is_under("a/b", ""));
        assert!(!key_is_under("ab", "a"));
        assert!(!key_is_under("a", "a"));
    }

    #[tokio::test]
    async fn injected_clock_stamps_writes() {
        let now = Arc::new(AtomicI64::new(1_000));
        let clock = now.clone();
        let store = MemoryStore::with_clock(Arc::new(move || clock.load(Ordering::SeqCst)));
        let first = store.create("k", "a".into()).await.unwrap();
        now.store(2_500, Ordering::SeqCst);
        let second = store.put("k", "a".into()).await.unwrap();
        assert_eq!(first.store_time, Some(StoreTime(1_000)));
        assert_eq!(second.store_time, Some(StoreTime(2_500)));
        // Same bytes, new version: the memory store has no ABA.
        assert_ne!(first.version, second.version);
        let got = store.get("k").await.unwrap().unwrap();
        assert_eq!(got.store_time, Some(StoreTime(2_500)));
    }

    #[test]
    fn the_default_clock_starts_at_its_base_and_never_goes_back() {
        let clock = monotonic_clock(1_000_000, Instant::now());
        let mut last = clock();
        assert!((1_000_000..1_010_000).contains(&last), "{last}");
        for _ in 0..1_000 {
            let now = clock();
            assert!(now >= last, "{now} < {last}");
            last = now;
        }
    }

    #[tokio::test]
    async fn new_stores_stamp_near_the_wall_clock_and_trust_it() {
        let before = system_clock_ms();
        let store = MemoryStore::new();
        let first = store.create("k", "a".into()).await.unwrap();
        let second = store.put("k", "b".into()).await.unwrap();
        let (Some(StoreTime(first)), Some(StoreTime(second))) =
            (first.store_time, second.store_time)
        else {
            panic!("memory writes carry store times");
        };
        assert!(
            first >= before && first - before < 10_000,
            "{first} vs {before}"
        );
        assert!(second >= first);
        assert!(store.capabilities().trusted_clock);
    }

    #[tokio::test]
    async fn clones_share_objects() {
        let a = MemoryStore::new();
        let b = a.clone();
        a.create("k", "x".into()).await.unwrap();
        assert!(b.get("k").await.unwrap().is_some());
        assert_eq!(b.len(), 1);
        assert_eq!(b.write_count(), 1);
    }
}
