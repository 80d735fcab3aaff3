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
//! handing it out:
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
//! deadline), and [`open_unprobed`] skips the probe for tests.
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
//! | [`MemoryStore`] | `memory` | a counter per store: unique per write | yes | yes | yes (one clock, injectable) |
//! | [`LocalDirStore`] | `local` | FNV-1a-128 content digest | yes | yes | no (NTP can step it) |
//! | [`ObjectStoreLease`] | `s3`, `gcs`, `azure`, `memory-object-store` | the ETag (S3: MD5 of the body); on GCS the generation and the ETag | no (CAS a tombstone instead) | yes | yes (`memory-object-store`: no) |
//!
//! [`MemoryStore`] is one process's map (tests, simulations); clones share it.
//! [`LocalDirStore`] is a directory shared by the processes of **one
//! machine** (`flock` on lock files, temp file + fsync + rename); network
//! filesystems may not honour its locks, so never share it between machines.
//!
//! Wrappers, which forward every method:
//!
//! * [`Metered`] counts requests by [`RequestKind`] and outcome into a
//!   [`RequestCounter`]; [`RequestCounts`] prices them at S3 Standard rates.
//! * [`FailingStore`] injects seeded [`Fault`]s (unavailable, throttled,
//!   ambiguous applied or not, latency) that a [`FaultController`] can change
//!   at run time.
//!
//! # Feature flags
//!
//! * `conformance`: the `conformance` module, the one
//!   contract suite every backend's tests run (`run_all`, and each case as
//!   its own `async fn`). It writes keys and leaves them behind: point it at
//!   scratch storage only. Off by default.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod types;

#[cfg(any(feature = "conformance", test))]
#[cfg_attr(docsrs, doc(cfg(feature = "conformance")))]
pub mod conformance;
pub mod failing;
pub mod local;
pub mod memory;
pub mod metered;
mod object;
mod open;
mod probe;

pub use error::{BoxError, StoreError};
pub use types::{
    Capabilities, Conditional, ObjectMeta, RequestKind, StoreTime, StoredObject, Version, Written,
};

pub use failing::{FailingStore, Fault, FaultController, FaultKind, InjectedFault};
pub use local::LocalDirStore;
pub use memory::{MemoryClock, MemoryStore};
pub use metered::{Metered, RequestCounter, RequestCounts, LIST_PAGE_SIZE};
pub use object::{ObjectBackend, ObjectStoreLease, StoreOptions};
pub use open::{open, open_unprobed, open_unprobed_with, open_with};
pub use probe::{probe_cas, PROBE_PREFIX};

use async_trait::async_trait;
use bytes::Bytes;

/// A key-value object store with the conditional writes leader election
/// needs. See the [crate docs](crate#contract) for the contract every
/// implementation keeps.
///
/// # Wrappers
///
/// A wrapper (metering, fault injection) must forward every method,
/// including the provided ones, so that the wrapped store's behaviour (a real
/// conditional GET, say) is not replaced by the default.
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
