//! A compare-and-swap that recognises its own write.
//!
//! A conditional write can be refused *because of itself*: the client
//! library retried it after losing the first reply (the first attempt had
//! landed, so the retry meets a version that is no longer the one
//! expected), or it timed out and landed anyway. Taking such a refusal for
//! "someone else changed it" strands work: a claim nobody runs, an index
//! entry dropped for a record still waiting. Every body the plugins write
//! carries a fresh nonce, so a re-read tells: the body there is ours, or
//! the version there is still the one expected (not applied, perhaps not
//! yet), or someone else wrote.

use bytes::Bytes;
use coordinator_store::{LeaseStore, StoreError, Version};

/// How a [`swap`] ended.
#[derive(Debug)]
pub(crate) enum Swapped {
    /// Our body is there now, at this version.
    Written(Version),
    /// Someone else's version is there, or nothing.
    Changed,
}

/// Compare-and-swaps `body` over `expected` at `key`; see the [module
/// docs](self). A refusal whose cause stays unknown (the expected version
/// is still there after an ambiguous answer) is returned as the error, for
/// the caller to retry later.
pub(crate) async fn swap(
    store: &dyn LeaseStore,
    key: &str,
    expected: &Version,
    body: Bytes,
) -> Result<Swapped, StoreError> {
    match store.compare_and_swap(key, expected, body.clone()).await {
        Ok(written) => Ok(Swapped::Written(written.version)),
        Err(StoreError::NotFound { .. }) => Ok(Swapped::Changed),
        Err(error @ (StoreError::Conflict { .. } | StoreError::Ambiguous { .. })) => {
            match store.get(key).await? {
                Some(found) if found.body == body => Ok(Swapped::Written(found.version)),
                Some(found) if &found.version == expected => Err(error),
                _ => Ok(Swapped::Changed),
            }
        }
        Err(error) => Err(error),
    }
}

/// How a [`create`] ended.
#[derive(Debug)]
pub(crate) enum Created {
    /// Our body is there now, at this version.
    Written(Version),
    /// Someone else's object is there, or one was and is gone: the key is
    /// taken (keys are never written twice).
    Taken,
}

/// Create-if-absent that recognises its own create: after
/// `AlreadyExists` (a hidden retry of ours) or an ambiguous answer, the
/// body there is ours or not. An ambiguous create with nothing there is
/// returned as the error (not applied, perhaps not yet).
pub(crate) async fn create(
    store: &dyn LeaseStore,
    key: &str,
    body: Bytes,
) -> Result<Created, StoreError> {
    match store.create(key, body.clone()).await {
        Ok(written) => Ok(Created::Written(written.version)),
        Err(error @ (StoreError::AlreadyExists { .. } | StoreError::Ambiguous { .. })) => {
            let existed = matches!(error, StoreError::AlreadyExists { .. });
            match store.get(key).await? {
                Some(found) if found.body == body => Ok(Created::Written(found.version)),
                Some(_) => Ok(Created::Taken),
                None if existed => Ok(Created::Taken),
                None => Err(error),
            }
        }
        Err(error) => Err(error),
    }
}

/// A conditional delete that recognises its own effect: after an
/// ambiguous answer, an absent object was deleted (by us or since, either
/// way gone) and the expected version still there means not applied.
/// `Ok(true)`: gone; `Ok(false)`: another version is there.
pub(crate) async fn delete_if(
    store: &dyn LeaseStore,
    key: &str,
    expected: &Version,
) -> Result<bool, StoreError> {
    match store.delete_if_version(key, expected).await {
        Ok(()) => Ok(true),
        Err(StoreError::NotFound { .. }) => Ok(true),
        Err(error @ (StoreError::Conflict { .. } | StoreError::Ambiguous { .. })) => {
            match store.get(key).await? {
                None => Ok(true),
                Some(found) if &found.version == expected => Err(error),
                Some(_) => Ok(false),
            }
        }
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coordinator_store::MemoryStore;

    #[tokio::test]
    async fn own_write_is_recognised_and_others_are_not() {
        let store = MemoryStore::new();
        let v1 = store.create("k", "one".into()).await.unwrap().version;
        // Our write landed, then its "retry" meets our own version.
        let v2 = store
            .compare_and_swap("k", &v1, "two".into())
            .await
            .unwrap()
            .version;
        match swap(&store, "k", &v1, "two".into()).await.unwrap() {
            Swapped::Written(v) => assert_eq!(v, v2),
            Swapped::Changed => panic!("our own body is there"),
        }
        assert!(matches!(
            swap(&store, "k", &v1, "three".into()).await.unwrap(),
            Swapped::Changed
        ));
        // A create met by our own earlier create is ours; another's is not.
        match create(&store, "c", "mine".into()).await.unwrap() {
            Created::Written(_) => {}
            Created::Taken => panic!("a fresh key"),
        }
        assert!(matches!(
            create(&store, "c", "mine".into()).await.unwrap(),
            Created::Written(_)
        ));
        assert!(matches!(
            create(&store, "c", "theirs".into()).await.unwrap(),
            Created::Taken
        ));
        // A delete after which the object is gone counts as done.
        store.delete("k").await.unwrap();
        assert!(delete_if(&store, "k", &v2).await.unwrap());
        let v3 = store.create("k", "again".into()).await.unwrap().version;
        assert!(!delete_if(&store, "k", &v2).await.unwrap());
        assert!(delete_if(&store, "k", &v3).await.unwrap());
    }
}
