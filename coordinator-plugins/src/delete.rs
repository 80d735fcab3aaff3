//! Deleting shared state safely, whatever the backend can do.
//!
//! * [`delete_write_once`]: for objects written once by create-if-absent
//!   and never rewritten afterwards (queue messages, index entries, run-now
//!   requests, and claims or slots once they reached a terminal state).
//!   Where the backend has a conditional delete it is used (memory, the
//!   local directory, and S3, GCS and Azure when the probe at open found
//!   the condition on DELETE honoured). Where it has not (servers that
//!   ignore `If-Match` on DELETE, such as MinIO, or a GCS emulator that
//!   ignores the generation), a plain delete is exactly
//!   as safe: the key is never reused and its object never rewritten, so
//!   the only version a delete can remove is the one we read. A terminal
//!   claim *is* the tombstone the design asks for; this deletes it once its
//!   work is done. The exception is an `Abandoned` claim whose message is
//!   still there: the message's next claim uses its key again, so there a
//!   plain delete that lands late could remove that next claim (not yet
//!   closed on backends without conditional delete; docs/chaos.md).
//! * [`retire`]: for objects that are rewritten and whose keys users may
//!   reuse (TTL records, job definitions). A conditional delete where the
//!   backend has one; otherwise a compare-and-swap to a terminal tombstone
//!   body, which is never deleted blindly (a later registration replaces it
//!   by compare-and-swap), because a blind delete could remove a newer
//!   record written after we read. So on such a backend tombstones stay:
//!   one small object per retired key, until the key is registered again.
//!
//! Both recognise their own effect after a hidden client retry or a
//! timeout ([`crate::swap`]), so "changed" means someone else's version.

use bytes::Bytes;
use coordinator_store::{LeaseStore, StoreError, Version};

use crate::swap::{self, Attempts, Swapped};

/// How a [`retire`] or [`delete_write_once`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Deleted {
    /// The object is gone (or tombstoned) now, by this call.
    Done,
    /// The object had another version (or was already gone): nothing done.
    Changed,
}

/// Deletes a write-once (or terminal) object. See the [module docs](self).
pub(crate) async fn delete_write_once(
    store: &dyn LeaseStore,
    key: &str,
    version: &Version,
) -> Result<Deleted, StoreError> {
    if store.capabilities().conditional_delete {
        match store.delete_if_version(key, version).await {
            Ok(()) => Ok(Deleted::Done),
            Err(StoreError::Conflict { .. } | StoreError::NotFound { .. }) => Ok(Deleted::Changed),
            Err(error) => Err(error),
        }
    } else {
        store.delete(key).await.map(|()| Deleted::Done)
    }
}

/// Retires a mutable object at `version`: a conditional delete, or a
/// compare-and-swap to `tombstone`, one more attempt of the retirement
/// `attempts` holds (a caller that tries again after an error passes the
/// same `attempts`, so a tombstone of an earlier try that landed is
/// recognised). See the [module docs](self).
pub(crate) async fn retire(
    store: &dyn LeaseStore,
    attempts: &mut Attempts,
    key: &str,
    version: &Version,
    tombstone: Bytes,
) -> Result<Deleted, StoreError> {
    // Both recognise our own effect after a hidden retry or a timeout
    // (crate::swap), so "changed" means someone else's version.
    let done = if store.capabilities().conditional_delete {
        swap::delete_if(store, key, version).await?
    } else {
        matches!(
            swap::swap(store, attempts, key, version, tombstone, ()).await?,
            Swapped::Written(_)
        )
    };
    Ok(if done {
        Deleted::Done
    } else {
        Deleted::Changed
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use coordinator_store::MemoryStore;

    #[tokio::test]
    async fn conditional_where_possible() {
        let store = MemoryStore::new();
        let a = store.create("a", "1".into()).await.unwrap();
        let b = store.create("b", "1".into()).await.unwrap();
        assert_eq!(
            delete_write_once(&store, "a", &b.version).await.unwrap(),
            Deleted::Changed
        );
        assert_eq!(
            delete_write_once(&store, "a", &a.version).await.unwrap(),
            Deleted::Done
        );
        assert_eq!(
            retire(&store, &mut Attempts::new(), "b", &b.version, "t".into())
                .await
                .unwrap(),
            Deleted::Done
        );
        assert!(store.get("b").await.unwrap().is_none());
    }
}
