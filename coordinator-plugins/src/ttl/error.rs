//! [`TtlError`]: what TTL operations can fail with.

use coordinator_store::StoreError;

/// An error from a TTL operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TtlError {
    /// A TTL instance or namespace name cannot be used in keys, or a record
    /// key is empty, too long or has control characters.
    #[error("invalid {what} `{name}`: {reason}")]
    InvalidName {
        /// What was named.
        what: &'static str,
        /// The name given.
        name: String,
        /// Why it is refused.
        reason: String,
    },

    /// A [`TtlConfig`](super::TtlConfig) field breaks its rule.
    #[error("ttl config `{field}`: {message}")]
    Config {
        /// The field.
        field: &'static str,
        /// The value, the rule and a fix.
        message: String,
    },

    /// No live record at that key.
    #[error("no live record `{key}` (object `{object}`)")]
    NoSuchRecord {
        /// The record's key.
        key: String,
        /// Its object key.
        object: String,
    },

    /// The record kept changing under a read-modify-write.
    #[error("record `{key}` changed under us five times in a row; retry")]
    Contended {
        /// The record's key.
        key: String,
    },

    /// The store failed.
    #[error("ttl {op} on `{key}` ({backend}): {source}", backend = .source.backend())]
    Store {
        /// What was being done.
        op: &'static str,
        /// The object key.
        key: String,
        /// The store's error.
        #[source]
        source: StoreError,
    },

    /// An object under the TTL prefix is unreadable.
    #[error("ttl object `{key}` ({backend}) is unreadable: {reason}")]
    Corrupt {
        /// The key.
        key: String,
        /// The backend.
        backend: &'static str,
        /// What is wrong and what to do.
        reason: String,
    },
}

impl TtlError {
    pub(crate) fn store(op: &'static str, key: &str, source: StoreError) -> Self {
        Self::Store {
            op,
            key: key.to_owned(),
            source,
        }
    }

    pub(crate) fn corrupt(key: &str, backend: &'static str, reason: String) -> Self {
        Self::Corrupt {
            key: key.to_owned(),
            backend,
            reason,
        }
    }
}
