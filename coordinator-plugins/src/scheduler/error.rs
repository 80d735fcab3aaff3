//! [`SchedulerError`]: what scheduler operations can fail with.

use coordinator_store::StoreError;

use super::CronField;

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

    /// The cron expression has the wrong shape: not 5 or 6 fields, or an
    /// unknown `@` alias.
    #[error("job `{job}`: cron expression `{expression}` {reason}; use 5 fields (minute hour day-of-month month day-of-week), 6 with a second field first, or one of {aliases}", aliases = super::cron::ALIASES)]
    CronShape {
        /// The job.
        job: String,
        /// The expression.
        expression: String,
        /// What is wrong with it.
        reason: String,
    },

    /// One field of the cron expression is invalid.
    #[error("job `{job}`: cron expression `{expression}` (read as {layout}): {field} field `{value}` is invalid ({reason}); the {field} field accepts {accepts}", accepts = .field.accepts())]
    Cron {
        /// The job.
        job: String,
        /// The expression.
        expression: String,
        /// How its fields were read: `minute hour day-of-month month
        /// day-of-week`, or with `second` first for 6 fields.
        layout: &'static str,
        /// The field at fault.
        field: CronField,
        /// The field's text.
        value: String,
        /// What the parser said about it.
        reason: String,
    },

    /// Every field is valid but no date matches them all (30 February,
    /// 31 April): the job would never run.
    #[error("job `{job}`: cron expression `{expression}` never fires: no date has {fields}; pick days that every chosen month has, or `L` for the last day of the month")]
    CronNeverFires {
        /// The job.
        job: String,
        /// The expression.
        expression: String,
        /// The date fields, quoted.
        fields: String,
    },

    /// The job's handler is not registered on the scheduler it is added
    /// through (a leader without it could not run the job).
    #[error("job `{job}`: no handler `{handler}` is registered on this scheduler (registered: {registered}); register it with `SchedulerBuilder::handler` on every worker that may lead, or set the job's handler to a registered one")]
    NoHandler {
        /// The job.
        job: String,
        /// The handler it names.
        handler: String,
        /// The handlers that are registered, comma-separated, or `none`.
        registered: String,
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
