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

    /// A plugin built for one namespace of one registry (see
    /// [`PluginScope`](crate::PluginScope)) was attached under another
    /// namespace, or through another registry: its data would not be
    /// guarded by the election it would run under, or its store, clock or
    /// worker would not be the coordinator's. Build the plugin's handle from
    /// the registry you attach it through, for the namespace you attach it
    /// to.
    #[error("{}", scope_mismatch(.plugin, .built_namespace, .built_worker, .namespace, .worker, .same_registry))]
    PluginScopeMismatch {
        /// The plugin name.
        plugin: String,
        /// The namespace the plugin was built for.
        built_namespace: String,
        /// The worker id of the registry the plugin was built from.
        built_worker: String,
        /// The namespace it was attached under.
        namespace: String,
        /// The worker id of the registry it was attached through.
        worker: String,
        /// Whether it was attached through the registry it was built from
        /// (then only the namespace differs).
        same_registry: bool,
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
            | CoordinatorError::PluginAlreadyAttached { .. }
            | CoordinatorError::PluginScopeMismatch { .. } => ErrorKind::Invalid,
            CoordinatorError::Refused { .. } => ErrorKind::Refused,
            CoordinatorError::Closed => ErrorKind::Closed,
        }
    }
}

/// The message of [`CoordinatorError::PluginScopeMismatch`]: both sides,
/// and what to do.
fn scope_mismatch(
    plugin: &str,
    built_namespace: &str,
    built_worker: &str,
    namespace: &str,
    worker: &str,
    same_registry: &bool,
) -> String {
    if *same_registry {
        format!(
            "plugin `{plugin}` was built for namespace `{built_namespace}` but attached to namespace \
             `{namespace}` (worker `{worker}`): its data would not be guarded by the election it runs \
             under; attach it to `{built_namespace}`, or build its handle for `{namespace}`"
        )
    } else {
        format!(
            "plugin `{plugin}` was built from the registry of worker `{built_worker}` for namespace \
             `{built_namespace}` but attached through another registry (worker `{worker}`, namespace \
             `{namespace}`): its store, clock or worker would not be the coordinator's; build its handle \
             from the registry you attach it through, for the namespace you attach it to"
        )
    }
}
