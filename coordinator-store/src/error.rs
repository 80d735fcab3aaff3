//! The one error type every [`LeaseStore`](crate::LeaseStore) returns.

use std::time::Duration;

/// A boxed source error from a backend.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error from a [`LeaseStore`](crate::LeaseStore) operation.
///
/// Every variant names the backend (`"s3"`, `"local"`, `"memory"`, …) and,
/// where there is one, the key. The first three are expected outcomes of
/// conditional writes that callers branch on; the rest say what went wrong
/// and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A create-if-absent found an object already at the key.
    #[error("create-if-absent on `{key}` ({backend}): the object already exists; read it and compare-and-swap instead")]
    AlreadyExists {
        /// The key.
        key: String,
        /// The backend.
        backend: &'static str,
    },

    /// A compare-and-swap or conditional delete found another version at the
    /// key (or no object at all).
    #[error(
        "compare-and-swap or conditional delete on `{key}` ({backend}): the version changed or \
         the object is gone; re-read before retrying"
    )]
    Conflict {
        /// The key.
        key: String,
        /// The backend.
        backend: &'static str,
    },

    /// The object does not exist (for operations that need it to).
    #[error("`{key}` ({backend}): no such object")]
    NotFound {
        /// The key.
        key: String,
        /// The backend.
        backend: &'static str,
    },

    /// The store asked us to slow down (HTTP 503 SlowDown, 429).
    #[error("`{key}` ({backend}): throttled by the store; back off and retry")]
    Throttled {
        /// The key.
        key: String,
        /// The backend.
        backend: &'static str,
        /// How long the store asked us to wait, if it said.
        retry_after: Option<Duration>,
    },

    /// The request was not applied: the store could not be reached or
    /// answered with a server error before accepting it.
    #[error("`{key}` ({backend}): store unavailable: {source}; check the endpoint and network, then retry")]
    Unavailable {
        /// The key.
        key: String,
        /// The backend.
        backend: &'static str,
        /// What the backend said.
        #[source]
        source: BoxError,
    },

    /// A write may or may not have been applied (a timeout or a dropped
    /// connection after the request was sent). Re-read the object and compare
    /// its content with what was written before concluding either way.
    #[error("{op} on `{key}` ({backend}): outcome unknown ({source}); re-read the object to learn whether the write landed")]
    Ambiguous {
        /// The operation (`"create"`, `"compare_and_swap"`, …).
        op: &'static str,
        /// The key.
        key: String,
        /// The backend.
        backend: &'static str,
        /// What the backend said.
        #[source]
        source: BoxError,
    },

    /// The store is set up wrongly: a missing bucket, bad credentials, a
    /// malformed URL, a backend without real compare-and-swap.
    #[error("{backend} store misconfigured: {message}")]
    Misconfigured {
        /// The backend.
        backend: &'static str,
        /// What is wrong and what to do instead.
        message: String,
    },

    /// The URL names a cloud backend this build of `coordinator-store` left
    /// out: enable its Cargo feature.
    #[error(
        "`{scheme}://` URLs need the {backend} backend, which this build of coordinator-store \
         leaves out; enable its Cargo feature `{feature}` (coordinator-store = {{ features = \
         [\"{feature}\"] }}, or the same feature of coordinator-runtime or coordinator-plugins)"
    )]
    NotCompiled {
        /// The URL scheme (`"s3"`, `"gs"`, `"az"`).
        scheme: &'static str,
        /// The backend (`"s3"`, `"gcs"`, `"azure"`).
        backend: &'static str,
        /// The Cargo feature that compiles it (`"aws"`, `"gcp"`, `"azure"`).
        feature: &'static str,
    },
    /// The backend cannot perform this operation; see [`Capabilities`](crate::Capabilities).
    #[error("{op} is not supported by the {backend} store")]
    NotSupported {
        /// The operation.
        op: &'static str,
        /// The backend.
        backend: &'static str,
    },

    /// Any other backend error.
    #[error("{op} on `{key}` ({backend}) failed: {source}")]
    Backend {
        /// The operation.
        op: &'static str,
        /// The key.
        key: String,
        /// The backend.
        backend: &'static str,
        /// What the backend said.
        #[source]
        source: BoxError,
    },
}

impl StoreError {
    /// True for errors worth retrying after a back-off (throttling,
    /// unavailability, ambiguous outcomes, other backend errors).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Throttled { .. }
                | StoreError::Unavailable { .. }
                | StoreError::Ambiguous { .. }
                | StoreError::Backend { .. }
        )
    }

    /// The backend that produced the error.
    pub fn backend(&self) -> &'static str {
        match self {
            StoreError::AlreadyExists { backend, .. }
            | StoreError::Conflict { backend, .. }
            | StoreError::NotFound { backend, .. }
            | StoreError::Throttled { backend, .. }
            | StoreError::Unavailable { backend, .. }
            | StoreError::Ambiguous { backend, .. }
            | StoreError::Misconfigured { backend, .. }
            | StoreError::NotSupported { backend, .. }
            | StoreError::NotCompiled { backend, .. }
            | StoreError::Backend { backend, .. } => backend,
        }
    }
}
