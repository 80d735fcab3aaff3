//! The storage layer of the coordinator: one small trait, [`LeaseStore`], with
//! real create-if-absent and compare-and-swap, and its implementations.
//!
//! The election is only as safe as the compare-and-swap under it, so every
//! backend here must refuse a create over an existing object and a
//! compare-and-swap with a stale version, atomically. Backends that cannot are
//! refused at [`open`] time by a probe.
//!
//! # Contract
//!
//! The rules every store keeps are the [`LeaseStore` contract](LeaseStore#contract),
//! in short:
//!
//! * Keys are `/`-separated paths relative to the store's root.
//! * [`create`](LeaseStore::create) and
//!   [`compare_and_swap`](LeaseStore::compare_and_swap) are atomic: of any
//!   number of concurrent calls on one key and one expected state, at most one
//!   succeeds; the others get [`StoreError::AlreadyExists`] or
//!   [`StoreError::Conflict`].
//! * Every successful write returns a [`Version`] that differs from every
//!   version the key had before *if the bytes differ*. Versions of S3 (the
//!   ETag is an MD5) and of the local directory are content digests, so rewriting identical
//!   bytes can bring an old version back (ABA). The coordinator's records
//!   carry a nonce and a counter that change on every write, which is what
//!   makes their versions unique.
//! * [`StoreError::Ambiguous`] means a write may have been applied. The
//!   caller re-reads and compares content before concluding.
//! * Requests are bounded in time: a backend gives each attempt a short
//!   timeout and a small retry budget, so no write lands minutes late.
//!
//! # Opening a store
//!
//! [`open`] takes a URL, builds the store rooted at the URL's path, and runs
//! [`probe_cas`] on it (a create over an existing object and a
//! compare-and-swap with a stale version must both be refused) before
//! handing it out. On S3, GCS and Azure it also probes conditional delete
//! (a `DELETE` naming a wrong version must be refused and leave the object,
//! one naming the right version must delete it) and turns
//! [`Capabilities::conditional_delete`] on only if both hold; that probe
//! never fails the open:
//!
//! | URL | store | backend name |
//! | --- | --- | --- |
//! | `s3://bucket/prefix` | Amazon S3 ([`ObjectStoreLease`]) | `s3` |
//! | `s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1` | an S3-compatible server (MinIO, R2, moto); `http://` endpoints get plain HTTP, requests are path-style | `s3` |
//! | `gs://bucket/prefix[?endpoint=…]` | Google Cloud Storage (or an emulator at `endpoint`, with `GOOGLE_SERVICE_ACCOUNT_KEY` set) | `gcs` |
//! | `az://container/prefix[?endpoint=…]` | Azure Blob Storage (account from `AZURE_STORAGE_ACCOUNT_NAME`) | `azure` |
//! | `file:///absolute/dir` | [`LocalDirStore`] (one machine only) | `local` |
//! | `memory://` | a fresh [`MemoryStore`] | `memory` |
//!
//! Credentials come from each service's standard environment variables
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, …), never
//! from the URL. A malformed URL, an unknown scheme, a relative `file:` path,
//! a missing bucket or refused credentials give
//! [`StoreError::Misconfigured`] with a message that says what to fix.
//! [`open_with`] takes [`StoreOptions`] (per-attempt timeout, retries;
//! `object_store`'s own defaults retry for minutes, far past a leader's
//! deadline), and `open_unprobed` (feature `test-util`) skips the probe
//! for tests. [`open_read_only`] opens a store for a reader that must
//! never write (status and diagnostics tools): no probe (it writes), and a
//! [`ReadOnlyStore`] that refuses every write before it reaches the
//! backend.
//!
//! Two URL options override a safety default by name (`true` or `false`;
//! any other value is refused with a message that says what to write):
//!
//! * `trust_store_clock` (`s3://`, `gs://`, `az://`): whether the store's
//!   timestamps may be compared ([`Capabilities::trusted_clock`], which
//!   lets a starting worker take a stale lease at once). By default only
//!   AWS S3, GCS and Azure Blob Storage themselves are trusted; a custom
//!   `endpoint=` (MinIO, R2, Ceph, moto, Azurite) or an emulator or
//!   endpoint set in the environment is not, because a self-hosted
//!   server's clock can step. Write `trust_store_clock=true` only for a
//!   server whose clock is never stepped.
//! * `allow_network_filesystem` (`file://`): by default a directory on
//!   NFS, SMB/CIFS, CephFS, 9P, Lustre, any FUSE mount and the like is
//!   refused (detected with `statfs` on Linux), because its locks may not
//!   be honoured and two writers could both win a compare-and-swap. Write
//!   `allow_network_filesystem=true` only after verifying its locks.
//!
//! See [`open`] for the details.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), coordinator_store::StoreError> {
//! let store = coordinator_store::open("memory://").await?;
//! let written = store.create("ns/state.json", "v1".into()).await?;
//! store.compare_and_swap("ns/state.json", &written.version, "v2".into()).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Implementations
//!
//! | type | backend | versions | conditional delete | conditional GET | trusted clock |
//! | --- | --- | --- | --- | --- | --- |
//! | [`MemoryStore`] | `memory` | a counter per store: unique per write | yes | yes | yes (monotonic: the Unix time at creation plus `Instant`; or the injected clock) |
//! | [`LocalDirStore`] | `local` | FNV-1a-128 content digest | yes | yes | no (NTP can step it) |
//! | [`ObjectStoreLease`] | `s3`, `gcs`, `azure`, `memory-object-store` | the ETag (S3: MD5 of the body); on GCS the generation and the ETag | where the probe of [`open`] saw the server refuse a wrong version and honour the right one (`If-Match` on S3 and Azure: AWS S3, moto, Azure, Azurite; `x-goog-if-generation-match` on GCS), else no (CAS a tombstone instead) | yes | from [`open`]: AWS S3, GCS and Azure themselves only (`trust_store_clock` overrides); built by hand: no until [`ObjectStoreLease::with_trusted_store_clock`] |
//!
//! [`MemoryStore`] is one process's map (tests, simulations); clones share it.
//! [`LocalDirStore`] is a directory shared by the processes of **one
//! machine** (`flock` on lock files, temp file + fsync + rename); network
//! filesystems may not honour its locks, so never share it between
//! machines. On Linux it refuses them (`statfs`) unless told
//! `allow_network_filesystem`.
//!
//! Wrappers, which forward every method of [`LeaseStore`]:
//!
//! * [`Metered`] counts requests by [`RequestKind`] and outcome into a
//!   [`RequestCounter`]; [`RequestCounts`] prices them at S3 Standard rates.
//! * `FailingStore` (feature `test-util`) injects seeded `Fault`s
//!   (unavailable, throttled, ambiguous applied or not, latency) that a
//!   `FaultController` can change at run time.
//!
//! # Holding a store, implementing one
//!
//! Hold any store as `Arc<dyn LeaseStore>` (an `Arc` of a store is itself a
//! store, so wrappers take it as it is: `Metered::new(arc)`) and call its
//! `async` methods. [`LeaseStoreExt`], implemented for every store, adds the
//! conveniences built on them: [`list`](LeaseStoreExt::list) walks every
//! page of a prefix. Bring it into scope with
//! `use coordinator_store::LeaseStoreExt;`.
//!
//! To add a store, implement the ten methods of [`LeaseStore`] with
//! `#[async_trait]` (the [trait docs](LeaseStore#implementing-a-store) have
//! a complete example) and run the [conformance suite](#feature-flags)
//! against it. Wrappers forward every method of [`LeaseStore`], including
//! the provided [`get_if_changed`](LeaseStore::get_if_changed).
//!
//! # Feature flags
//!
//! * `aws`, `gcp`, `azure` (on by default): the cloud backends, `s3://`,
//!   `gs://` and `az://` in [`open`], and the matching
//!   `ObjectStoreLease::with_*_conditional_delete`. Each turns on
//!   `object_store`'s feature of the same name (its HTTP client, TLS and
//!   request signing). With none of them (`default-features = false`) only
//!   `file://` and `memory://` open, none of `object_store`'s cloud code is
//!   compiled, and a cloud URL gives [`StoreError::NotCompiled`] naming the
//!   feature to enable. [`ObjectStoreLease`] over `object_store`'s
//!   `InMemory` stays available either way.
//! * `conformance`: the `conformance` module, the one
//!   contract suite every backend's tests run (`run_all`, and each case as
//!   its own `async fn`). It writes keys and leaves them behind: point it at
//!   scratch storage only. Off by default.
//! * `test-util`: test doubles. The `failing` module (`FailingStore`,
//!   `Fault`, `FaultKind`, `FaultController`, `InjectedFault`: seeded fault
//!   injection around any store) and `open_unprobed`/`open_unprobed_with`
//!   (a store from a URL without the conditional-write probe). For tests and
//!   simulators; enable it from `[dev-dependencies]`. Off by default.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod ext;
mod forward;
mod types;

#[cfg(any(feature = "conformance", test))]
#[cfg_attr(docsrs, doc(cfg(feature = "conformance")))]
pub mod conformance;
#[cfg(any(feature = "test-util", test))]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod failing;
pub mod local;
pub mod memory;
pub mod metered;
mod object;
mod open;
mod probe;
mod random;
mod read_only;

pub use error::{BoxError, StoreError};
pub use ext::LeaseStoreExt;
pub use types::{
    Capabilities, Conditional, ObjectMeta, RequestKind, StoreTime, StoredObject, Written,
};

/// The version of one object: the same type as [`coordinator_core::Version`],
/// re-exported so that a store's users need not depend on the core crate.
pub use coordinator_core::Version;

#[cfg(any(feature = "test-util", test))]
pub use failing::{FailingStore, Fault, FaultController, FaultKind, InjectedFault};
pub use local::LocalDirStore;
pub use memory::{MemoryClock, MemoryStore};
pub use metered::{Metered, RequestCounter, RequestCounts, LIST_PAGE_SIZE};
pub use object::{ObjectBackend, ObjectStoreLease, StoreOptions};
pub use open::{open, open_with};
#[cfg(any(feature = "test-util", test))]
pub use open::{open_unprobed, open_unprobed_with};
pub use probe::{probe_cas, PROBE_PREFIX};
pub use read_only::{open_read_only, open_read_only_with, ReadOnlyStore, READ_ONLY_BACKEND};

use async_trait::async_trait;
use bytes::Bytes;

/// A key-value object store with the conditional writes leader election
/// needs: the contract a backend implements, and nothing more.
///
/// Hold a store as `Arc<dyn LeaseStore>` (or `&dyn LeaseStore`) and call
/// its `async` methods; the conveniences built on them (listing every page
/// of a prefix) are in [`LeaseStoreExt`], which every store has.
///
/// # Contract
///
/// * Keys are `/`-separated paths relative to the store's root.
/// * [`create`](LeaseStore::create) and
///   [`compare_and_swap`](LeaseStore::compare_and_swap) are atomic: of any
///   number of concurrent calls on one key and one expected state, at most
///   one succeeds; the others get [`StoreError::AlreadyExists`] or
///   [`StoreError::Conflict`]. `Conflict` means only "not the version you
///   expected" (another version, or no object): nothing was written, and the
///   caller re-reads before trying again.
/// * [`delete_if_version`](LeaseStore::delete_if_version) is atomic in the
///   same way where [`Capabilities::conditional_delete`] is true, and
///   returns [`StoreError::NotSupported`] (deleting nothing) where it is
///   false.
/// * Every successful write returns a [`Version`] that differs from every
///   version the key had before *if the bytes differ*. Content-digest
///   versions (S3 ETags, the local directory) make rewriting identical bytes
///   bring an old version back (ABA); the coordinator's records carry a
///   nonce and a counter that change on every write, which is what makes
///   their versions unique.
/// * [`list_page`](LeaseStore::list_page) returns keys under `prefix`
///   (whole `/`-separated segments) that sort after `start_after`, sorted,
///   each once, at most `limit` of them; a page shorter than `limit` is the
///   last. [`LeaseStoreExt::list`] relies on this to walk a prefix.
/// * [`StoreError::Ambiguous`] means a write may have been applied; the
///   caller re-reads and compares content before concluding.
/// * Requests are bounded in time: a backend gives each attempt a short
///   timeout and a small retry budget, so no write lands minutes late.
///
/// The [`conformance`](crate#feature-flags) suite checks each of these
/// rules (feature `conformance`); run it against a new store.
///
/// # Implementing a store
///
/// Implement the ten methods with `#[async_trait]` (from the `async-trait`
/// crate); [`get_if_changed`](LeaseStore::get_if_changed) has a default (a
/// plain [`get`](LeaseStore::get) and a comparison) that a store with a real
/// conditional GET overrides. Map the backend's own errors onto
/// [`StoreError`]: a lost conditional write is `AlreadyExists` or
/// `Conflict`, a timeout after sending a write is `Ambiguous`.
///
/// A complete store: one process's map, each write numbered by a counter.
///
/// ```
/// use std::collections::BTreeMap;
/// use std::sync::{Mutex, PoisonError};
///
/// use async_trait::async_trait;
/// use bytes::Bytes;
/// use coordinator_store::{
///     Capabilities, LeaseStore, LeaseStoreExt, ObjectMeta, StoreError, StoredObject, Version,
///     Written,
/// };
///
/// #[derive(Debug, Default)]
/// struct MapStore {
///     /// The number of the last write, and the objects with their versions.
///     state: Mutex<(u64, BTreeMap<String, (Bytes, Version)>)>,
/// }
///
/// impl MapStore {
///     /// Writes `body` at `key` if `allowed` accepts the current version,
///     /// all under one lock: that is what makes the write atomic.
///     fn write_if(
///         &self,
///         key: &str,
///         body: Bytes,
///         allowed: impl FnOnce(Option<&Version>) -> Result<(), StoreError>,
///     ) -> Result<Written, StoreError> {
///         let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
///         let (count, objects) = &mut *state;
///         allowed(objects.get(key).map(|(_, version)| version))?;
///         *count += 1;
///         let version = Version::new(count.to_string());
///         objects.insert(key.to_owned(), (body, version.clone()));
///         Ok(Written { version, store_time: None })
///     }
///
///     fn conflict(key: &str) -> StoreError {
///         StoreError::Conflict { key: key.to_owned(), backend: "map" }
///     }
/// }
///
/// #[async_trait]
/// impl LeaseStore for MapStore {
///     fn backend(&self) -> &'static str {
///         "map"
///     }
///
///     fn capabilities(&self) -> Capabilities {
///         // No store timestamps at all, so no clock to trust.
///         Capabilities { conditional_delete: true, conditional_get: false, trusted_clock: false }
///     }
///
///     async fn get(&self, key: &str) -> Result<Option<StoredObject>, StoreError> {
///         let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
///         Ok(state.1.get(key).map(|(body, version)| StoredObject {
///             body: body.clone(),
///             version: version.clone(),
///             store_time: None,
///         }))
///     }
///
///     async fn create(&self, key: &str, body: Bytes) -> Result<Written, StoreError> {
///         self.write_if(key, body, |current| match current {
///             None => Ok(()),
///             Some(_) => Err(StoreError::AlreadyExists { key: key.to_owned(), backend: "map" }),
///         })
///     }
///
///     async fn compare_and_swap(
///         &self,
///         key: &str,
///         expected: &Version,
///         body: Bytes,
///     ) -> Result<Written, StoreError> {
///         self.write_if(key, body, |current| match current {
///             Some(version) if version == expected => Ok(()),
///             _ => Err(Self::conflict(key)),
///         })
///     }
///
///     async fn put(&self, key: &str, body: Bytes) -> Result<Written, StoreError> {
///         self.write_if(key, body, |_| Ok(()))
///     }
///
///     async fn list_page(
///         &self,
///         prefix: &str,
///         start_after: Option<&str>,
///         limit: usize,
///     ) -> Result<Vec<ObjectMeta>, StoreError> {
///         let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
///         // Whole segments: `a` holds `a/b`, not `ab` and not `a` itself.
///         let under = |key: &str| {
///             let dir = prefix.trim_end_matches('/');
///             dir.is_empty() || key.strip_prefix(dir).is_some_and(|rest| rest.starts_with('/'))
///         };
///         Ok(state
///             .1
///             .iter()
///             .filter(|(key, _)| under(key) && start_after.is_none_or(|after| key.as_str() > after))
///             .take(limit)
///             .map(|(key, (body, version))| ObjectMeta {
///                 key: key.clone(),
///                 version: version.clone(),
///                 size: body.len() as u64,
///                 store_time: None,
///             })
///             .collect())
///     }
///
///     async fn delete(&self, key: &str) -> Result<(), StoreError> {
///         self.state.lock().unwrap_or_else(PoisonError::into_inner).1.remove(key);
///         Ok(())
///     }
///
///     async fn delete_if_version(&self, key: &str, expected: &Version) -> Result<(), StoreError> {
///         let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
///         match state.1.get(key) {
///             Some((_, version)) if version == expected => {
///                 state.1.remove(key);
///                 Ok(())
///             }
///             _ => Err(Self::conflict(key)),
///         }
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), StoreError> {
/// // Held as every store is held; wrappers take it as it is.
/// let store: std::sync::Arc<dyn LeaseStore> = std::sync::Arc::new(MapStore::default());
/// let metered = coordinator_store::Metered::new(store.clone());
/// let first = metered.create("ns/state.json", "v1".into()).await?;
/// assert!(matches!(
///     metered.create("ns/state.json", "v2".into()).await,
///     Err(StoreError::AlreadyExists { .. })
/// ));
/// metered.compare_and_swap("ns/state.json", &first.version, "v2".into()).await?;
/// assert!(matches!(
///     metered.compare_and_swap("ns/state.json", &first.version, "v3".into()).await,
///     Err(StoreError::Conflict { .. })
/// ));
/// metered.put("ns/workers/w1.json", "alive".into()).await?;
/// let keys: Vec<String> = store.list("ns").await?.into_iter().map(|m| m.key).collect();
/// assert_eq!(keys, ["ns/state.json", "ns/workers/w1.json"]);
/// assert_eq!(metered.counter().snapshot().put, 5);
/// # Ok(())
/// # }
/// ```
///
/// # Wrappers
///
/// A wrapper (metering, fault injection) forwards every method, including
/// the provided [`get_if_changed`](LeaseStore::get_if_changed), so that the
/// wrapped store's behaviour (a real conditional GET) is not replaced by
/// the default. It never implements [`LeaseStoreExt`]: that trait is
/// implemented once, for every store, on top of these methods.
///
/// # Cost of a call
///
/// Through `#[async_trait]`, each call allocates its future once (one `Box`,
/// tens of nanoseconds), and each wrapper layer adds one more. A request to
/// a real store costs tens of microseconds (a local directory) to
/// milliseconds (S3), so a stack of wrappers is not measurable against it;
/// docs/benchmarks.md has the numbers.
#[async_trait]
pub trait LeaseStore: Send + Sync + std::fmt::Debug + 'static {
    /// A short name of the backend for errors and metrics: `"s3"`, `"gcs"`,
    /// `"azure"`, `"local"`, `"memory"`.
    fn backend(&self) -> &'static str;

    /// What this store can do beyond the required operations.
    fn capabilities(&self) -> Capabilities;

    /// Reads an object with its version; `Ok(None)` when there is none.
    async fn get(&self, key: &str) -> Result<Option<StoredObject>, StoreError>;

    /// Reads an object only if its version differs from `known`.
    ///
    /// The default is a plain [`get`](LeaseStore::get) followed by a
    /// comparison; a store with a real conditional GET
    /// ([`Capabilities::conditional_get`]) overrides it, and a wrapper
    /// forwards it.
    async fn get_if_changed(&self, key: &str, known: &Version) -> Result<Conditional, StoreError> {
        Ok(match self.get(key).await? {
            None => Conditional::Absent,
            Some(object) if &object.version == known => Conditional::Unchanged,
            Some(object) => Conditional::Changed(object),
        })
    }

    /// Writes `body` at `key` only if no object is there.
    ///
    /// # Errors
    /// [`StoreError::AlreadyExists`] if an object is there.
    async fn create(&self, key: &str, body: Bytes) -> Result<Written, StoreError>;

    /// Replaces the object at `key` only if its current version is `expected`.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] if the version differs or the object is gone.
    async fn compare_and_swap(
        &self,
        key: &str,
        expected: &Version,
        body: Bytes,
    ) -> Result<Written, StoreError>;

    /// Writes `body` at `key` whatever is there. Only for objects that one
    /// writer owns (a worker's own heartbeat).
    async fn put(&self, key: &str, body: Bytes) -> Result<Written, StoreError>;

    /// One page of a listing: at most `limit` objects under `prefix` whose
    /// keys sort after `start_after` (from the first if `None`), sorted by
    /// key. A page shorter than `limit` is the last. For every object under
    /// a prefix, call [`LeaseStoreExt::list`], which walks the pages.
    ///
    /// `prefix` matches whole `/`-separated segments: `a` (or `a/`) lists
    /// `a/b` and `a/c/d`, not `ab` and not `a` itself; `""` lists everything.
    /// `start_after` need not be a key that exists. The conformance suite
    /// checks that neighbours sharing only a string prefix (`ab`) are left
    /// out and that walking the pages neither skips nor repeats a key.
    ///
    /// Where the backend pages natively (S3, GCS and Azure through
    /// `object_store` start after a key; memory walks its ordered map),
    /// a page of up to 1,000 keys is one request: whoever needs the head of
    /// a deep prefix (a queue's oldest messages) pays one LIST.
    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ObjectMeta>, StoreError>;

    /// Deletes the object at `key`; deleting a missing object succeeds.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;

    /// Deletes the object at `key` only if its version is `expected`.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] if the version differs or the object is gone;
    /// [`StoreError::NotSupported`] where [`Capabilities::conditional_delete`]
    /// is false.
    async fn delete_if_version(&self, key: &str, expected: &Version) -> Result<(), StoreError>;
}
