//! What the machine asks its driver to do, and what the driver reports back.

use std::fmt;

/// An opaque version of one object, assigned by the store on every write.
///
/// S3 and Azure use the ETag, GCS the generation, the local directory a
/// digest of the content, the memory store a counter. Callers (the machine,
/// the plugins) compare versions for equality and hand them back to the
/// store's compare-and-swap; they never parse them. This is the one version
/// type of the workspace: `coordinator_store::Version` is this type.
///
/// # Examples
///
/// ```
/// use coordinator_core::Version;
/// let v = Version::new("\"9b2cf535f27731c974343645a3985328\"");
/// assert_eq!(v.as_str(), "\"9b2cf535f27731c974343645a3985328\"");
/// assert_eq!(v.to_string(), v.as_str());
/// assert_eq!(v, Version::new(v.as_str()));
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(String);

impl Version {
    /// Wraps a backend's version string.
    pub fn new(version: impl Into<String>) -> Self {
        Self(version.into())
    }

    /// The backend's version string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v:{}", self.0)
    }
}

/// The backend's version string, as it is.
impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Tags a request so its response can be matched to it. Unique per machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// One store request. Each maps to exactly one `LeaseStore` call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Read an object; with `if_changed`, a conditional read that may answer
    /// [`Response::Unchanged`].
    Get {
        /// The key.
        key: String,
        /// The version already known, for a conditional read.
        if_changed: Option<Version>,
    },
    /// Create-if-absent.
    Create {
        /// The key.
        key: String,
        /// The bytes.
        body: Vec<u8>,
    },
    /// Compare-and-swap on `expected`.
    CompareAndSwap {
        /// The key.
        key: String,
        /// The version just read.
        expected: Version,
        /// The bytes.
        body: Vec<u8>,
    },
    /// Unconditional write of an object only this worker writes.
    Put {
        /// The key.
        key: String,
        /// The bytes.
        body: Vec<u8>,
    },
    /// List every object under a prefix.
    List {
        /// The prefix.
        prefix: String,
    },
    /// Delete, conditionally on `if_version` where given.
    Delete {
        /// The key.
        key: String,
        /// Only delete this version (the driver falls back to a plain delete
        /// where the store has no conditional delete).
        if_version: Option<Version>,
    },
}

impl Request {
    /// The key or prefix the request is about.
    pub fn key(&self) -> &str {
        match self {
            Request::Get { key, .. }
            | Request::Create { key, .. }
            | Request::CompareAndSwap { key, .. }
            | Request::Put { key, .. }
            | Request::Delete { key, .. } => key,
            Request::List { prefix } => prefix,
        }
    }
}

/// A request to execute, tagged with its id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Action {
    /// Give this back with the response.
    pub id: RequestId,
    /// What to do.
    pub request: Request,
}

/// One entry of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// The key.
    pub key: String,
    /// Its version.
    pub version: Version,
}

/// How a request failed, as far as the machine needs to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Not applied; worth retrying after a back-off.
    Transient {
        /// What the store said, for logs.
        message: String,
    },
    /// The store asked to slow down.
    Throttled {
        /// How long it asked to wait, in milliseconds, if it said.
        retry_after_ms: Option<u64>,
    },
    /// A write whose outcome is unknown (timeout after sending, connection
    /// dropped). The machine re-reads and compares nonces.
    Ambiguous {
        /// What the store said, for logs.
        message: String,
    },
}

/// The outcome of a request, reported with [`Machine::handle_response`](crate::Machine::handle_response).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// A read found an object.
    Object {
        /// Its bytes.
        body: Vec<u8>,
        /// Its version.
        version: Version,
        /// The store's timestamp of that version, in ms since the Unix epoch.
        store_time_ms: Option<i64>,
    },
    /// A conditional read found the known version.
    Unchanged,
    /// A read found nothing.
    Absent,
    /// A write succeeded.
    Written {
        /// The new version.
        version: Version,
        /// The store's timestamp of the write, if the store reports it.
        store_time_ms: Option<i64>,
    },
    /// A create found an object already there.
    AlreadyExists,
    /// A compare-and-swap or conditional delete found another version.
    Conflict,
    /// A listing.
    Listed(Vec<Listed>),
    /// A delete succeeded (or there was nothing to delete).
    Deleted,
    /// The request failed.
    Failed(Failure),
}
