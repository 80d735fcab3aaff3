//! Values that cross the [`LeaseStore`](crate::LeaseStore) boundary.

use std::fmt;

use bytes::Bytes;

use crate::Version;

/// A time assigned by the store itself (S3 `Last-Modified`, the local
/// directory's clock), in milliseconds since the Unix epoch.
///
/// Only compare two `StoreTime`s from the same store, and only where
/// [`Capabilities::trusted_clock`] says the store's clock deserves it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StoreTime(pub i64);

/// An object read from the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredObject {
    /// The object's bytes.
    pub body: Bytes,
    /// The version these bytes have.
    pub version: Version,
    /// When the store says this version was written, if it says.
    pub store_time: Option<StoreTime>,
}

/// The outcome of a successful write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// The version the store assigned to the bytes just written.
    pub version: Version,
    /// The store's time of the write, where the write response carries it
    /// (memory and local directory do; S3 does not).
    pub store_time: Option<StoreTime>,
}

/// The outcome of [`LeaseStore::get_if_changed`](crate::LeaseStore::get_if_changed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Conditional {
    /// The object still has the version the caller knows.
    Unchanged,
    /// The object has another version now.
    Changed(StoredObject),
    /// There is no object at the key.
    Absent,
}

/// One entry of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The key, relative to the store's root, as given to the other methods.
    pub key: String,
    /// The object's current version.
    pub version: Version,
    /// The object's size in bytes.
    pub size: u64,
    /// When the store says this version was written, if it says.
    pub store_time: Option<StoreTime>,
}

/// What a store can do beyond the required operations. Callers ask rather
/// than assume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// [`delete_if_version`](crate::LeaseStore::delete_if_version) is atomic
    /// on this backend. Where it is not, callers CAS a tombstone instead.
    /// On S3 it is probed when the store is opened, never assumed (some
    /// S3-compatible servers ignore `If-Match` on DELETE).
    pub conditional_delete: bool,
    /// [`get_if_changed`](crate::LeaseStore::get_if_changed) is a real
    /// conditional request (an unchanged object transfers no body).
    pub conditional_get: bool,
    /// The store's timestamps come from a clock that can be compared with
    /// itself across objects, because it is never stepped: AWS S3, GCS and
    /// Azure themselves, and the memory store's monotonic clock. A local
    /// directory's clock and a self-hosted S3-compatible server's (MinIO,
    /// Ceph, moto) can be stepped by NTP or an operator, so they do not
    /// qualify unless the user says so by name (`trust_store_clock=true`,
    /// see [`open`](crate::open)).
    pub trusted_clock: bool,
}

/// The kind of a request, for metering and error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RequestKind {
    /// A read of one object (plain or conditional).
    Get,
    /// A metadata-only read of one object.
    Head,
    /// Any write: create-if-absent, compare-and-swap or unconditional put.
    Put,
    /// One page of a listing.
    List,
    /// A delete, conditional or not.
    Delete,
}

impl RequestKind {
    /// Every kind, in a fixed order (for reports).
    pub const ALL: [RequestKind; 5] = [
        RequestKind::Get,
        RequestKind::Head,
        RequestKind::Put,
        RequestKind::List,
        RequestKind::Delete,
    ];

    /// The S3 Standard price of one request of this kind, in US dollars
    /// (PUT, LIST: $0.005 per 1,000; GET, HEAD: $0.0004 per 1,000; DELETE: free).
    pub fn s3_standard_usd(self) -> f64 {
        match self {
            RequestKind::Put | RequestKind::List => 0.005 / 1000.0,
            RequestKind::Get | RequestKind::Head => 0.0004 / 1000.0,
            RequestKind::Delete => 0.0,
        }
    }

    /// The lower-case name used in JSON reports and metrics (`get`, `put`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::Get => "get",
            RequestKind::Head => "head",
            RequestKind::Put => "put",
            RequestKind::List => "list",
            RequestKind::Delete => "delete",
        }
    }
}

impl fmt::Display for RequestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
