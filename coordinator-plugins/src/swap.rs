//! Writes that recognise their own earlier attempts.
//!
//! A conditional write can be refused *because of ourselves*: the client
//! library retried it after losing the first reply (the first try had
//! landed, so the retry meets a version that is no longer the one
//! expected), or it timed out, or was answered 503/429, and landed anyway.
//! The caller then writes again, with a new body (a new nonce), and that
//! attempt meets the *earlier* one. Taking either refusal for "someone else
//! changed it" strands work: a claim nobody runs, a slot claimed and never
//! run, an extension taken for a lost claim.
//!
//! So a logical write (a claim, a renewal, a save of the counters) keeps
//! the bodies of all its attempts in an [`Attempts`] from just before each
//! is sent until the write is *resolved*, and every write here records
//! its body there first. A re-read then tells: the body there is one of
//! ours (written, at the version found: [`Landed`] says which attempt), or
//! the version there is still the one expected (not applied, perhaps not
//! yet: the error is returned and the attempts are kept), or someone else
//! wrote.
//!
//! A write is resolved once one of its attempts is seen in the store, or
//! someone else's version is (or nothing is, where something was): no
//! attempt kept can land after that, because each was conditional on a
//! version (or on absence) that is gone for good (versions are never
//! reused, and neither are the keys written by create-if-absent). Every
//! other outcome, a refusal whose cause stays unknown, a throttled,
//! unavailable or ambiguous answer, an error from the re-read, keeps them
//! all for the caller's next attempt. Callers bound how often they retry (a
//! lease, a term, a few rounds), and so how many bodies are kept.
//!
//! Every body the plugins write carries a fresh nonce, so comparing whole
//! bodies tells ours from anyone else's. The exceptions are write-once
//! objects with a fixed body (index entries, run-now requests) or a body
//! fixed by their key (dead letters, archives): their key is fresh or
//! names the one object it can hold, so their callers take any object
//! there as theirs.

use bytes::Bytes;
use coordinator_store::{LeaseStore, StoreError, StoredObject, Version};

/// The attempts of one logical write whose outcome is not known yet: each
/// body sent, with what the caller needs to know should that body be the
/// one that landed (`T`: the instant it was sent, the record it encodes).
/// See the [module docs](self).
#[derive(Debug)]
pub(crate) struct Attempts<T = ()> {
    sent: Vec<(Bytes, T)>,
}

impl<T> Default for Attempts<T> {
    fn default() -> Self {
        Self { sent: Vec::new() }
    }
}

impl<T> Attempts<T> {
    /// No attempt yet.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// True if no attempt is unresolved.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.sent.is_empty()
    }

    /// How many attempts are unresolved.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.sent.len()
    }

    /// Records `body` as sent, before the request goes out (a request
    /// dropped in flight may still land). A body sent again keeps what it
    /// was first sent with.
    /// Returns where it is kept.
    fn record(&mut self, body: &Bytes, ours: T) -> usize {
        match self.sent.iter().position(|(sent, _)| sent == body) {
            Some(at) => at,
            None => {
                self.sent.push((body.clone(), ours));
                self.sent.len() - 1
            }
        }
    }

    /// The write is resolved by attempt `at`: forgets every attempt and
    /// returns what that one was sent with.
    fn take(&mut self, at: usize) -> T {
        let (_, ours) = self.sent.swap_remove(at);
        self.sent.clear();
        ours
    }

    /// If `found` is the body of one of our attempts, the write is resolved:
    /// forgets every attempt and returns what that one was sent with.
    pub(crate) fn recognise(&mut self, found: &[u8]) -> Option<T> {
        let at = self.sent.iter().position(|(sent, _)| sent == found)?;
        Some(self.take(at))
    }

    /// Forgets every attempt: the write is resolved (someone else's
    /// version is there), or a new logical write begins on a state read
    /// afresh (a new term).
    pub(crate) fn clear(&mut self) {
        self.sent.clear();
    }
}

/// One of our attempts, found in the store.
#[derive(Debug)]
pub(crate) struct Landed<T> {
    /// Its version there: the one to write over next.
    pub(crate) version: Version,
    /// What it was sent with.
    pub(crate) ours: T,
    /// True if it is the body of this very call; false for an earlier
    /// attempt (the caller may mean to write its newer body over it).
    pub(crate) latest: bool,
}

/// How a [`swap`] (or a [`write()`]) ended.
#[derive(Debug)]
pub(crate) enum Swapped<T = ()> {
    /// One of our attempts is there now.
    Written(Landed<T>),
    /// Someone else's object is there (as read back), or nothing.
    Changed(Option<StoredObject>),
}

/// How a [`create`] ended.
#[derive(Debug)]
pub(crate) enum Created<T = ()> {
    /// One of our attempts is there now.
    Written(Landed<T>),
    /// Someone else's object is there, or one was and is gone: the key is
    /// taken (keys are never written twice).
    Taken,
}

/// Compare-and-swaps `body` over `expected` at `key`, as one more attempt
/// of the logical write `attempts` holds; see the [module docs](self). A
/// refusal whose cause stays unknown (the expected version is still there
/// after an ambiguous answer or a conflict) is returned as the error, for
/// the caller to retry later with the same `attempts`.
pub(crate) async fn swap<T>(
    store: &dyn LeaseStore,
    attempts: &mut Attempts<T>,
    key: &str,
    expected: &Version,
    body: Bytes,
    ours: T,
) -> Result<Swapped<T>, StoreError> {
    Ok(swap_seeing_gone(store, attempts, key, expected, body, ours)
        .await?
        .0)
}

/// As [`swap`], and for a [`Swapped::Changed(None)`](Swapped::Changed)
/// (the object is gone) whether one of our attempts may have landed
/// before it went: this one was answered ambiguously (a lost answer, a
/// timeout), or earlier ones are still unsettled. A plain refusal (not
/// found, or a conflict: the expected version was gone) says ours did not
/// land, except in the rare case the store's client retried after a 5xx
/// that had in fact applied it (see `coordinator_store::StoreOptions`).
pub(crate) async fn swap_seeing_gone<T>(
    store: &dyn LeaseStore,
    attempts: &mut Attempts<T>,
    key: &str,
    expected: &Version,
    body: Bytes,
    ours: T,
) -> Result<(Swapped<T>, bool), StoreError> {
    let at = attempts.record(&body, ours);
    let earlier_pending = attempts.sent.len() > 1;
    match store.compare_and_swap(key, expected, body.clone()).await {
        Ok(written) => Ok((
            Swapped::Written(Landed {
                version: written.version,
                ours: attempts.take(at),
                latest: true,
            }),
            false,
        )),
        Err(StoreError::NotFound { .. }) => {
            attempts.clear();
            Ok((Swapped::Changed(None), earlier_pending))
        }
        Err(error @ (StoreError::Conflict { .. } | StoreError::Ambiguous { .. })) => {
            let in_doubt = matches!(error, StoreError::Ambiguous { .. }) || earlier_pending;
            let found = store.get(key).await?;
            let gone = found.is_none();
            let settled = settle(attempts, found, &body, Some(expected), false, error)?;
            Ok((settled, gone && in_doubt))
        }
        Err(error) => Err(error),
    }
}

/// Create-if-absent as one more attempt of the logical write `attempts`
/// holds: after `AlreadyExists` (a hidden retry of ours, or an earlier
/// attempt that landed) or an ambiguous answer, the body there is ours or
/// not. An ambiguous create with nothing there is returned as the error
/// (not applied, perhaps not yet).
pub(crate) async fn create<T>(
    store: &dyn LeaseStore,
    attempts: &mut Attempts<T>,
    key: &str,
    body: Bytes,
    ours: T,
) -> Result<Created<T>, StoreError> {
    Ok(
        match create_or_read(store, attempts, key, body, ours).await? {
            Swapped::Written(landed) => Created::Written(landed),
            Swapped::Changed(_) => Created::Taken,
        },
    )
}

/// A create (`expected` is `None`) or a compare-and-swap, for objects a
/// caller makes on first use and rewrites after (a seal, a record put).
/// Someone else's object where we meant to create counts as
/// [`Swapped::Changed`], with what was read.
pub(crate) async fn write<T>(
    store: &dyn LeaseStore,
    attempts: &mut Attempts<T>,
    key: &str,
    expected: Option<&Version>,
    body: Bytes,
    ours: T,
) -> Result<Swapped<T>, StoreError> {
    match expected {
        Some(expected) => swap(store, attempts, key, expected, body, ours).await,
        None => create_or_read(store, attempts, key, body, ours).await,
    }
}

async fn create_or_read<T>(
    store: &dyn LeaseStore,
    attempts: &mut Attempts<T>,
    key: &str,
    body: Bytes,
    ours: T,
) -> Result<Swapped<T>, StoreError> {
    let at = attempts.record(&body, ours);
    match store.create(key, body.clone()).await {
        Ok(written) => Ok(Swapped::Written(Landed {
            version: written.version,
            ours: attempts.take(at),
            latest: true,
        })),
        Err(error @ (StoreError::AlreadyExists { .. } | StoreError::Ambiguous { .. })) => {
            let existed = matches!(error, StoreError::AlreadyExists { .. });
            let found = store.get(key).await?;
            settle(attempts, found, &body, None, existed, error)
        }
        Err(error) => Err(error),
    }
}

/// Reads what a refused or ambiguous attempt (`body`) left at the key.
/// `expected` is the version a swap expected (`None` for a create);
/// `existed` is true if the store said an object was there.
fn settle<T>(
    attempts: &mut Attempts<T>,
    found: Option<StoredObject>,
    body: &Bytes,
    expected: Option<&Version>,
    existed: bool,
    error: StoreError,
) -> Result<Swapped<T>, StoreError> {
    match found {
        Some(found) => {
            if let Some(ours) = attempts.recognise(&found.body) {
                return Ok(Swapped::Written(Landed {
                    latest: found.body == *body,
                    version: found.version,
                    ours,
                }));
            }
            if expected == Some(&found.version) {
                // Not applied, perhaps not yet: keep every attempt.
                return Err(error);
            }
            attempts.clear();
            Ok(Swapped::Changed(Some(found)))
        }
        // A swap's object is gone; a create's key existed and is gone.
        None if expected.is_some() || existed => {
            attempts.clear();
            Ok(Swapped::Changed(None))
        }
        // An ambiguous create with nothing there: perhaps not yet.
        None => Err(error),
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
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use coordinator_store::{
        Capabilities, Conditional, FailingStore, Fault, FaultKind, MemoryStore, ObjectMeta, Written,
    };

    /// The next `throttles` writes are applied, then answered `Throttled`
    /// (a hidden client retry that landed, its last try throttled).
    #[derive(Debug)]
    struct LandsThrottled {
        inner: MemoryStore,
        throttles: AtomicUsize,
    }

    impl LandsThrottled {
        fn new(inner: MemoryStore, throttles: usize) -> Self {
            Self {
                inner,
                throttles: AtomicUsize::new(throttles),
            }
        }

        fn answer(
            &self,
            key: &str,
            result: Result<Written, StoreError>,
        ) -> Result<Written, StoreError> {
            let fires = self
                .throttles
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            match result {
                Ok(_) if fires => Err(StoreError::Throttled {
                    key: key.to_owned(),
                    backend: "memory",
                    retry_after: None,
                }),
                other => other,
            }
        }
    }

    #[async_trait::async_trait]
    impl LeaseStore for LandsThrottled {
        fn backend(&self) -> &'static str {
            self.inner.backend()
        }
        fn capabilities(&self) -> Capabilities {
            self.inner.capabilities()
        }
        async fn get(&self, key: &str) -> Result<Option<StoredObject>, StoreError> {
            self.inner.get(key).await
        }
        async fn get_if_changed(
            &self,
            key: &str,
            known: &Version,
        ) -> Result<Conditional, StoreError> {
            self.inner.get_if_changed(key, known).await
        }
        async fn create(&self, key: &str, body: Bytes) -> Result<Written, StoreError> {
            let result = self.inner.create(key, body).await;
            self.answer(key, result)
        }
        async fn compare_and_swap(
            &self,
            key: &str,
            expected: &Version,
            body: Bytes,
        ) -> Result<Written, StoreError> {
            let result = self.inner.compare_and_swap(key, expected, body).await;
            self.answer(key, result)
        }
        async fn put(&self, key: &str, body: Bytes) -> Result<Written, StoreError> {
            self.inner.put(key, body).await
        }
        async fn list_page(
            &self,
            prefix: &str,
            start_after: Option<&str>,
            limit: usize,
        ) -> Result<Vec<ObjectMeta>, StoreError> {
            self.inner.list_page(prefix, start_after, limit).await
        }
        async fn delete(&self, key: &str) -> Result<(), StoreError> {
            self.inner.delete(key).await
        }
        async fn delete_if_version(&self, key: &str, expected: &Version) -> Result<(), StoreError> {
            self.inner.delete_if_version(key, expected).await
        }
    }

    fn written<T>(swapped: Swapped<T>) -> Landed<T> {
        match swapped {
            Swapped::Written(landed) => landed,
            Swapped::Changed(found) => panic!("ours is there, not {found:?}"),
        }
    }

    #[tokio::test]
    async fn a_swap_that_landed_under_a_throttled_answer_is_ours_on_the_next_attempt() {
        let memory = MemoryStore::new();
        let v1 = memory.create("k", "one".into()).await.unwrap().version;
        let store = LandsThrottled::new(memory.clone(), 1);
        let mut attempts = Attempts::new();
        // The first attempt lands; its answer is `Throttled`.
        let first = swap(&store, &mut attempts, "k", &v1, "two#a".into(), 1).await;
        assert!(
            matches!(first, Err(StoreError::Throttled { .. })),
            "{first:?}"
        );
        assert_eq!(attempts.len(), 1, "unresolved: kept");
        let there = memory.get("k").await.unwrap().unwrap();
        // The retry sends a new body (a new nonce) over the same version:
        // it meets the first, which is ours, at the version found.
        let landed = written(
            swap(&store, &mut attempts, "k", &v1, "two#b".into(), 2)
                .await
                .unwrap(),
        );
        assert_eq!(landed.version, there.version);
        assert_eq!(landed.ours, 1, "the first attempt is the one there");
        assert!(!landed.latest);
        assert!(attempts.is_empty(), "resolved: forgotten");
        // Without the history, the same retry takes it for someone else's.
        let v2 = there.version;
        let store = LandsThrottled::new(memory.clone(), 1);
        let mut attempts = Attempts::new();
        assert!(swap(&store, &mut attempts, "k", &v2, "three#a".into(), ())
            .await
            .is_err());
        let forgetful = swap(&store, &mut Attempts::new(), "k", &v2, "three#b".into(), ()).await;
        assert!(
            matches!(forgetful, Ok(Swapped::Changed(Some(_)))),
            "{forgetful:?}"
        );
        let landed = written(
            swap(&store, &mut attempts, "k", &v2, "three#c".into(), ())
                .await
                .unwrap(),
        );
        assert_eq!(
            landed.version,
            memory.get("k").await.unwrap().unwrap().version
        );
    }

    #[tokio::test]
    async fn a_create_that_landed_under_a_throttled_answer_is_ours_on_the_next_attempt() {
        let memory = MemoryStore::new();
        let store = LandsThrottled::new(memory.clone(), 1);
        let mut attempts = Attempts::new();
        let first = create(&store, &mut attempts, "c", "mine#a".into(), "a").await;
        assert!(
            matches!(first, Err(StoreError::Throttled { .. })),
            "{first:?}"
        );
        let there = memory.get("c").await.unwrap().unwrap();
        match create(&store, &mut attempts, "c", "mine#b".into(), "b")
            .await
            .unwrap()
        {
            Created::Written(landed) => {
                assert_eq!(landed.version, there.version);
                assert_eq!(landed.ours, "a");
                assert!(!landed.latest);
            }
            Created::Taken => panic!("our first create is there"),
        }
        // Someone else's create is not ours, and resolves the write.
        let mut attempts = Attempts::new();
        memory.create("d", "theirs".into()).await.unwrap();
        assert!(matches!(
            create(&store, &mut attempts, "d", "mine".into(), "x")
                .await
                .unwrap(),
            Created::Taken
        ));
        assert!(attempts.is_empty());
        // The same body sent again (an ambiguous answer, then a retry).
        let mut attempts = Attempts::new();
        memory.create("e", "mine".into()).await.unwrap();
        assert!(matches!(
            create(&store, &mut attempts, "e", "mine".into(), ())
                .await
                .unwrap(),
            Created::Written(Landed { latest: true, .. })
        ));
    }

    #[tokio::test]
    async fn an_attempt_that_lands_late_is_recognised_and_others_are_not() {
        let memory = MemoryStore::new();
        let v1 = memory.create("k", "one".into()).await.unwrap().version;
        // Not applied yet, answered ambiguously: the version expected is
        // still there, so the error comes back and the attempt is kept.
        let store = FailingStore::with_faults(
            memory.clone(),
            1,
            vec![Fault::new(FaultKind::AmbiguousNotApplied).on(coordinator_store::RequestKind::Put)],
        );
        let mut attempts = Attempts::new();
        let first = swap(&store, &mut attempts, "k", &v1, "two#a".into(), 'a').await;
        assert!(
            matches!(first, Err(StoreError::Ambiguous { .. })),
            "{first:?}"
        );
        store.clear_faults();
        // It lands late, after the caller chose a new body.
        let late = memory
            .compare_and_swap("k", &v1, "two#a".into())
            .await
            .unwrap();
        let landed = written(
            swap(&store, &mut attempts, "k", &v1, "two#b".into(), 'b')
                .await
                .unwrap(),
        );
        assert_eq!(
            (landed.version, landed.ours, landed.latest),
            (late.version.clone(), 'a', false)
        );
        // A write applied under an ambiguous answer is found at once.
        let store = FailingStore::with_faults(
            memory.clone(),
            2,
            vec![Fault::new(FaultKind::AmbiguousApplied).on(coordinator_store::RequestKind::Put)],
        );
        let landed = written(
            write(
                &store,
                &mut Attempts::new(),
                "k",
                Some(&late.version),
                "three".into(),
                (),
            )
            .await
            .unwrap(),
        );
        assert!(landed.latest);
        assert_eq!(
            landed.version,
            memory.get("k").await.unwrap().unwrap().version
        );
        store.clear_faults();
        // Someone else's version: changed, with what is there.
        match write(
            &store,
            &mut Attempts::new(),
            "k",
            Some(&late.version),
            "four".into(),
            (),
        )
        .await
        .unwrap()
        {
            Swapped::Changed(Some(found)) => assert_eq!(&found.body[..], b"three"),
            other => panic!("{other:?}"),
        }
        // A create where someone else's object is: changed, with it.
        assert!(matches!(
            write(&store, &mut Attempts::new(), "k", None, "five".into(), ())
                .await
                .unwrap(),
            Swapped::Changed(Some(_))
        ));
    }

    #[tokio::test]
    async fn conditional_delete_recognises_its_own_effect() {
        let store = MemoryStore::new();
        let v1 = store.create("k", "one".into()).await.unwrap().version;
        store.delete("k").await.unwrap();
        assert!(delete_if(&store, "k", &v1).await.unwrap());
        let v2 = store.create("k", "again".into()).await.unwrap().version;
        assert!(!delete_if(&store, "k", &v1).await.unwrap());
        assert!(delete_if(&store, "k", &v2).await.unwrap());
    }
}
