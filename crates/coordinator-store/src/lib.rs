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

#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod types;

pub use error::{BoxError, StoreError};
pub use types::{
    Capabilities, Conditional, ObjectMeta, RequestKind, StoreTime, StoredObject, Version, Written,
};

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
