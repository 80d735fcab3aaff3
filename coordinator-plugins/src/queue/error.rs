//! [`QueueError`]: what queue operations can fail with.

use coordinator_store::StoreError;

/// An error from a queue operation. Every variant names the key (or field)
/// and says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// A queue or namespace name cannot be used in keys.
    #[error("invalid {what} `{name}`: {reason}")]
    InvalidName {
        /// What was named (`"queue"`, `"namespace"`).
        what: &'static str,
        /// The name given.
        name: String,
        /// Why it is refused.
        reason: String,
    },

    /// A [`QueueConfig`](crate::queue::QueueConfig) field breaks its rule.
    #[error("queue config `{field}`: {message}")]
    Config {
        /// The field.
        field: &'static str,
        /// The value, the rule and a fix.
        message: String,
    },

    /// The store failed; transient errors are worth a retry.
    #[error("queue {op} on `{key}` ({backend}): {source}", backend = .source.backend())]
    Store {
        /// What the queue was doing (`"enqueue"`, `"claim"`, …).
        op: &'static str,
        /// The key.
        key: String,
        /// The store's error.
        #[source]
        source: StoreError,
    },

    /// An object under the queue's prefix is not a queue record this
    /// version understands.
    #[error("queue object `{key}` ({backend}) is unreadable: {reason}")]
    Corrupt {
        /// The key.
        key: String,
        /// The backend.
        backend: &'static str,
        /// What is wrong and what to do.
        reason: String,
    },

    /// A completion, failure or extension by a worker that no longer holds
    /// the claim: its visibility expired on its own clock, or the leader
    /// recovered the claim. The store refused the write; the message is (or
    /// was) processed again, so make handlers idempotent or extend the
    /// visibility before it runs out.
    #[error("{op} of `{key}` by worker `{worker}` rejected: the claim was lost ({why}); the message will be delivered again")]
    ClaimLost {
        /// `"complete"`, `"fail"` or `"extend"`.
        op: &'static str,
        /// The claim key.
        key: String,
        /// The worker that lost it.
        worker: String,
        /// Why: the local deadline passed, or the claim's version changed.
        why: &'static str,
    },

    /// A completion or failure whose outcome cannot be known: its write may
    /// have landed with its answer lost (or under a hidden retry of the
    /// store's client), and the claim was gone when the worker read it
    /// back: the leader deletes a claim once it has finished it, whether
    /// this write ended it or the leader recovered it first. The message is
    /// either done or delivered again (at least once); nothing to undo, and
    /// no need to retry the call.
    #[error("{op} of `{key}` by worker `{worker}`: outcome unknown (the write may have landed unseen, and the claim was gone when read back); the message is either done or will be delivered again")]
    OutcomeUnknown {
        /// `"complete"` or `"fail"`.
        op: &'static str,
        /// The claim key.
        key: String,
        /// The worker.
        worker: String,
    },
}

impl QueueError {
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

    /// True if the operation may succeed when retried later (a transient
    /// store error).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Store { source, .. } if source.is_transient())
    }
}
