//! [`SchedulerError`]: what scheduler operations can fail with.

use coordinator_store::StoreError;

/// An error from a scheduler operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchedulerError {
    /// A scheduler, namespace or job name cannot be used in keys.
    #[error("invalid {what} `{name}`: {reason}")]
    InvalidName {
        /// What was named.
        what: &'static str,
        /// The name given.
        name: String,
        /// Why it is refused.
        reason: String,
    },

    /// A configuration or job field breaks its rule.
    #[error("scheduler config `{field}`: {message}")]
    Config {
        /// The field.
        field: &'static str,
        /// The value, the rule and a fix.
        message: String,
    },

    /// The cron expression does not parse.
    #[error("job `{job}`: cron expression `{expression}` is invalid: {reason}; use 5 fields (min hour dom month dow), 6 with seconds first, or @hourly/@daily/@weekly/@monthly/@yearly")]
    Cron {
        /// The job.
        job: String,
        /// The expression.
        expression: String,
        /// What the parser said.
        reason: String,
    },

    /// The time zone is not an IANA name.
    #[error("job `{job}`: unknown time zone `{zone}`; use an IANA name such as `Europe/Berlin` or `UTC`")]
    TimeZone {
        /// The job.
        job: String,
        /// The zone given.
        zone: String,
    },

    /// A job of that name exists already.
    #[error("job `{job}` exists already (key `{key}`); remove it first or pick another name")]
    JobExists {
        /// The job.
        job: String,
        /// Its key.
        key: String,
    },

    /// No job of that name.
    #[error("no job `{job}` (key `{key}`)")]
    NoSuchJob {
        /// The job.
        job: String,
        /// Its key.
        key: String,
    },

    /// The job definition kept changing under a read-modify-write.
    #[error("job `{job}` (key `{key}`) changed under us five times in a row; retry")]
    Contended {
        /// The job.
        job: String,
        /// Its key.
        key: String,
    },

    /// The store failed.
    #[error("scheduler {op} on `{key}` ({backend}): {source}", backend = .source.backend())]
    Store {
        /// What the scheduler was doing.
        op: &'static str,
        /// The key.
        key: String,
        /// The store's error.
        #[source]
        source: StoreError,
    },

    /// An object under the scheduler's prefix is unreadable.
    #[error("scheduler object `{key}` ({backend}) is unreadable: {reason}")]
    Corrupt {
        /// The key.
        key: String,
        /// The backend.
        backend: &'static str,
        /// What is wrong and what to do.
        reason: String,
    },
}

impl SchedulerError {
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
