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
//! handing it out. On S3 it also probes conditional delete (a `DELETE`
//! with a wrong `If-Match` must be refused and leave the object, one with
//! the right ETag must delete it) and turns
//! [`Capabilities::conditional_delete`] on only if both hold; that probe
//! never fails the open:
//!
//! | URL | store | backend name |
//! | --- | --- | --- |
//! | `s3://bucket/prefix` | Amazon S3 ([`ObjectStoreLease`]) | `s3` |
//! | `s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1` | an S3-compatible server (MinIO, R2, moto); `http://` endpoints get plain HTTP, requests are path-style | `s3` |
//! | `gs://bucket/prefix` | Google Cloud Storage | `gcs` |
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
//! for tests.
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
//! | [`ObjectStoreLease`] | `s3`, `gcs`, `azure`, `memory-object-store` | the ETag (S3: MD5 of the body); on GCS the generation and the ETag | S3: yes where the probe of [`open`] saw `If-Match` on DELETE honoured (AWS S3, moto), else no; GCS, Azure: no (CAS a tombstone instead) | yes | from [`open`]: AWS S3, GCS and Azure themselves only (`trust_store_clock` overrides); built by hand: no until [`ObjectStoreLease::with_trusted_store_clock`] |
//!
//! [`MemoryStore`] is one process's map (tests, simulations); clones share it.
//! [`LocalDirStore`] is a directory shared by the processes of **one
//! machine** (`flock` on lock files, temp file + fsync + rename); network
//! filesystems may not honour its locks, so never share it between
//! machines. On Linux it refuses them (`statfs`) unless told
//! `allow_network_filesystem`.
//!
//! Wrappers, which forward every method:
//!
//! * [`Metered`] counts requests by [`RequestKind`] and outcome into a
//!   [`RequestCounter`]; [`RequestCounts`] prices them at S3 Standard rates.
//! * `FailingStore` (feature `test-util`) injects seeded `Fault`s
//!   (unavailable, throttled, ambiguous applied or not, latency) that a
//!   `FaultController` can change at run time.
//!
//! # Holding a store, implementing one
//!
//! Hold any store as `Arc<dyn LeaseStore>` and call its `async` methods.
//! To add a store, implement [`LeaseStore`] with `#[async_trait]`; that is
//! enough for it to work everywhere, wrappers included. Its `*_unboxed`
//! methods ([`get_unboxed`](LeaseStore::get_unboxed), …) are an optional
//! fast path for generic wrappers: every store and wrapper here overrides
//! them, so a stack such as `Metered<FailingStore<MemoryStore>>` called
//! through `dyn LeaseStore` allocates one future per request, like the bare
//! store (see [Boxed and unboxed methods](LeaseStore#boxed-and-unboxed-methods)).
//!
//! # Feature flags
//!
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

pub use error::{BoxError, StoreError};
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

use std::future::Future;

use async_trait::async_trait;
use bytes::Bytes;

/// A key-value object store with the conditional writes leader election
/// needs. See the [crate docs](crate#contract) for the contract every
/// implementation keeps.
///
/// # Which methods to call, which to implement
///
/// **Hold** a store as `Arc<dyn LeaseStore>` (or `&dyn LeaseStore`) and call
/// the `async` methods ([`get`](LeaseStore::get), [`create`](LeaseStore::create),
/// …): each call allocates its future once, as `#[async_trait]` does.
///
/// **Implement** this trait with `#[async_trait]` and its `async` methods;
/// that is all a store needs. The `*_unboxed` methods are optional.
///
/// # Boxed and unboxed methods
///
/// Every `async` method has an `*_unboxed` twin
/// ([`get_unboxed`](LeaseStore::get_unboxed), …) that returns a plain
/// `impl Future + Send` instead of a boxed one. The twins exist for
/// **generic wrappers**: a wrapper `W<S: LeaseStore>` whose methods awaited
/// `S`'s `async` methods would box one future per layer, so
/// `Arc<dyn LeaseStore>` of `Metered<MemoryStore>` would cost two
/// allocations per request where the bare store costs one. Awaiting
/// `S`'s twins instead, inside its own unboxed futures, keeps any stack of
/// this crate's stores and wrappers at one allocation per request: the one
/// made where the stack is called through `dyn LeaseStore`.
///
/// * Their defaults forward to the `async` method (one boxed future), so a
///   store that implements only the `async` methods works everywhere,
///   wrapped or not, at one allocation per layer as before.
/// * A store that overrides them makes each `async` method await its twin
///   (`async fn get(&self, key: &str) -> … { self.get_unboxed(key).await }`),
///   so both run the same code. Every store and wrapper of this crate does.
/// * They have `where Self: Sized`: they are not in the vtable, so
///   `dyn LeaseStore` stays object safe and cannot call them.
///
/// # Wrappers
///
/// A wrapper (metering, fault injection) must forward every method,
/// including the provided ones, so that the wrapped store's behaviour (a real
/// conditional GET, say) is not replaced by the default. It forwards its
/// `*_unboxed` methods to the wrapped store's `*_unboxed` methods, and its
/// `async` methods to its own `*_unboxed` methods.
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
    /// Where [`Capabilities::conditional_get`] is false this is a plain
    /// [`get`](LeaseStore::get) followed by a comparison.
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

    /// Lists every object under `prefix` (all pages), sorted by key.
    ///
    /// `prefix` matches whole `/`-separated segments: `a` (or `a/`) lists
    /// `a/b` and `a/c/d`, not `ab` and not `a` itself; `""` lists everything.
    /// The conformance suite checks that neighbours sharing only a string
    /// prefix (`ab`) are left out.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError>;

    /// One page of [`list`](LeaseStore::list): at most `limit` objects
    /// under `prefix` whose keys sort after `start_after` (from the first
    /// if `None`), sorted by key. A page shorter than `limit` is the last.
    ///
    /// Where the backend pages natively (S3, GCS and Azure through
    /// `object_store` start after a key; memory walks its ordered map),
    /// this reads one page only: whoever needs the head of a deep prefix
    /// (a queue's oldest messages) pays one LIST, not one per 1,000 keys.
    /// The default lists everything and cuts, which is correct but not
    /// cheaper.
    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ObjectMeta>, StoreError> {
        let all = self.list(prefix).await?;
        Ok(all
            .into_iter()
            .filter(|meta| start_after.is_none_or(|after| meta.key.as_str() > after))
            .take(limit)
            .collect())
    }

    /// Deletes the object at `key`; deleting a missing object succeeds.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;

    /// Deletes the object at `key` only if its version is `expected`.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] if the version differs or the object is gone;
    /// [`StoreError::NotSupported`] where [`Capabilities::conditional_delete`]
    /// is false.
    async fn delete_if_version(&self, key: &str, expected: &Version) -> Result<(), StoreError>;

    // The unboxed forms. Each has `where Self: Sized`, which keeps them out of
    // the vtable: `dyn LeaseStore` stays object safe and cannot call them.

    /// [`get`](LeaseStore::get) without boxing its future, for generic
    /// wrappers (see [Boxed and unboxed methods](LeaseStore#boxed-and-unboxed-methods)).
    /// The default forwards to [`get`](LeaseStore::get) (one boxed future).
    fn get_unboxed<'a>(
        &'a self,
        key: &'a str,
    ) -> impl Future<Output = Result<Option<StoredObject>, StoreError>> + Send + 'a
    where
        Self: Sized,
    {
        self.get(key)
    }

    /// [`get_if_changed`](LeaseStore::get_if_changed) without boxing its
    /// future. The default forwards to
    /// [`get_if_changed`](LeaseStore::get_if_changed).
    fn get_if_changed_unboxed<'a>(
        &'a self,
        key: &'a str,
        known: &'a Version,
    ) -> impl Future<Output = Result<Conditional, StoreError>> + Send + 'a
    where
        Self: Sized,
    {
        self.get_if_changed(key, known)
    }

    /// [`create`](LeaseStore::create) without boxing its future. The default
    /// forwards to [`create`](LeaseStore::create).
    fn create_unboxed<'a>(
        &'a self,
        key: &'a str,
        body: Bytes,
    ) -> impl Future<Output = Result<Written, StoreError>> + Send + 'a
    where
        Self: Sized,
    {
        self.create(key, body)
    }

    /// [`compare_and_swap`](LeaseStore::compare_and_swap) without boxing its
    /// future. The default forwards to
    /// [`compare_and_swap`](LeaseStore::compare_and_swap).
    fn compare_and_swap_unboxed<'a>(
        &'a self,
        key: &'a str,
        expected: &'a Version,
        body: Bytes,
    ) -> impl Future<Output = Result<Written, StoreError>> + Send + 'a
    where
        Self: Sized,
    {
        self.compare_and_swap(key, expected, body)
    }

    /// [`put`](LeaseStore::put) without boxing its future. The default
    /// forwards to [`put`](LeaseStore::put).
    fn put_unboxed<'a>(
        &'a self,
        key: &'a str,
        body: Bytes,
    ) -> impl Future<Output = Result<Written, StoreError>> + Send + 'a
    where
        Self: Sized,
    {
        self.put(key, body)
    }

    /// [`list`](LeaseStore::list) without boxing its future. The default
    /// forwards to [`list`](LeaseStore::list).
    fn list_unboxed<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Future<Output = Result<Vec<ObjectMeta>, StoreError>> + Send + 'a
    where
        Self: Sized,
    {
        self.list(prefix)
    }

    /// [`delete`](LeaseStore::delete) without boxing its future. The default
    /// forwards to [`delete`](LeaseStore::delete).
    fn delete_unboxed<'a>(
        &'a self,
        key: &'a str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'a
    where
        Self: Sized,
    {
        self.delete(key)
    }

    /// [`delete_if_version`](LeaseStore::delete_if_version) without boxing
    /// its future. The default forwards to
    /// [`delete_if_version`](LeaseStore::delete_if_version).
    fn delete_if_version_unboxed<'a>(
        &'a self,
        key: &'a str,
        expected: &'a Version,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'a
    where
        Self: Sized,
    {
        self.delete_if_version(key, expected)
    }
}
