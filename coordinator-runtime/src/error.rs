//! The runtime's error type.

use coordinator_core::{ConfigError, IdError, RecordError};

/// What went wrong starting or using a coordinator.
///
/// Store errors never appear here: the election loop retries them with
/// back-off and counts them in [`CoordinatorMetrics`](crate::CoordinatorMetrics).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoordinatorError {
    /// The election timings break a safety rule; the message names the field,
    /// the rule and a fix.
    #[error(transparent)]
    Config(#[from] ConfigError),

    /// A namespace, worker id or plugin name cannot be used in the key layout.
    #[error(transparent)]
    InvalidId(#[from] IdError),

    /// Another field of [`CoordinatorConfig`](crate::CoordinatorConfig) is
    /// out of range.
    #[error("invalid coordinator config: `{field}`: {message}")]
    InvalidOption {
        /// The field.
        field: &'static str,
        /// What is wrong and what to use instead.
        message: String,
    },

    /// The namespace's lease belongs to another implementation, which writes
    /// unconditionally: sharing it would be unsafe, so this worker writes
    /// nothing there.
    #[error("coordination of namespace `{namespace}` under `{base}` refused: {error}")]
    Refused {
        /// The namespace.
        namespace: String,
        /// The key prefix of the refused election.
        base: String,
        /// What was found.
        error: RecordError,
    },

    /// A plugin of this name is already attached to the coordinator.
    #[error("a plugin named `{plugin}` is already attached to namespace `{namespace}`; attach each plugin once per namespace")]
    PluginAlreadyAttached {
        /// The plugin name.
        plugin: String,
        /// The namespace.
        namespace: String,
    },

    /// The registry was closed; create a new [`CoordinatorRegistry`](crate::CoordinatorRegistry).
    #[error("the coordinator registry is closed; create a new `CoordinatorRegistry` to start coordinators again")]
    Closed,
}

/// The small set of things a caller can do about a [`CoordinatorError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Fix the configuration or the name and try again.
    Invalid,
    /// Another system owns the namespace: stop it, or use another namespace
    /// (or per-plugin mode, which has its own prefix).
    Refused,
    /// The registry is closed.
    Closed,
}

impl CoordinatorError {
    /// What the caller can do about it.
    ///
    /// ```
    /// use coordinator_runtime::{CoordinatorError, ErrorKind};
    /// assert_eq!(CoordinatorError::Closed.kind(), ErrorKind::Closed);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        match self {
            CoordinatorError::Config(_)
            | CoordinatorError::InvalidId(_)
            | CoordinatorError::InvalidOption { .. }
            | CoordinatorError::PluginAlreadyAttached { .. } => ErrorKind::Invalid,
            CoordinatorError::Refused { .. } => ErrorKind::Refused,
            CoordinatorError::Closed => ErrorKind::Closed,
        }
    }
}
