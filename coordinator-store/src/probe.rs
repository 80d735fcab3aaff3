//! [`probe_cas`]: check once that a store really refuses stale conditional
//! writes before trusting an election to it.
//!
//! Some S3-compatible servers accept `If-None-Match` and `If-Match` headers
//! and then ignore them, overwriting whatever is there. On such a store two
//! workers can both "win" an election. The probe catches that before the
//! first election: it writes a scratch object and checks that the store
//! refuses both a second create and a compare-and-swap with a stale version.
//!
//! The same holds for conditional deletes: MinIO accepts `If-Match` on
//! DELETE and deletes whatever is there. So S3's conditional delete is
//! never assumed either; [`open`](crate::open) turns it on only after the
//! conditional-delete probe
//! ([`ObjectStoreLease::probe_conditional_delete`](crate::ObjectStoreLease::probe_conditional_delete))
//! saw the server refuse a wrong ETag and honour the right one.

#[cfg(any(feature = "aws", feature = "azure", feature = "gcp", test))]
use std::future::Future;

use bytes::Bytes;

#[cfg(any(feature = "aws", feature = "azure", feature = "gcp", test))]
use crate::Version;
use crate::{LeaseStore, StoreError};

/// The prefix [`open`](crate::open) probes under (relative to the store's
/// root); each probe uses a fresh random key below it and deletes it after.
pub const PROBE_PREFIX: &str = ".coordinator-probe";

/// Checks that `store` refuses a create-if-absent over an existing object
/// and a compare-and-swap with a stale version, and that neither refused
/// write changed the object.
///
/// The probe works on one scratch object, `<probe_prefix>/<random>`, and
/// deletes it afterwards (also when it fails). It makes seven requests:
/// create, create (must be refused), get, compare-and-swap (must succeed),
/// compare-and-swap with the first, now stale, version (must be refused),
/// get, delete.
///
/// # Errors
///
/// * [`StoreError::Misconfigured`] if the store accepted either refused
///   write, or applied it while reporting a refusal: it silently overwrites
///   conditional writes and cannot hold a lease.
/// * Any error of the store itself (unavailable, missing bucket, refused
///   credentials), as the store reported it.
///
/// # Cancel safety
///
/// Dropping the future may leave the scratch object behind; it is small and
/// never read by anything else.
///
/// # Examples
///
/// ```
/// use coordinator_store::{probe_cas, MemoryStore};
/// # futures::executor::block_on(async {
/// let store = MemoryStore::new();
/// probe_cas(&store, ".coordinator-probe").await?;
/// assert!(store.is_empty(), "the probe cleans up after itself");
/// # Ok::<(), coordinator_store::StoreError>(())
/// # }).unwrap();
/// ```
pub async fn probe_cas(store: &dyn LeaseStore, probe_prefix: &str) -> Result<(), StoreError> {
    let nonce = crate::random::hex128();
    let key = probe_key(probe_prefix, &nonce);
    let outcome = run(store, &key, &nonce).await;
    // Clean up whatever happened; a failed clean-up only leaves a small
    // scratch object, so the probe's own outcome is what counts.
    if let Err(e) = store.delete(&key).await {
        tracing::warn!(key, backend = store.backend(), error = %e, "could not delete the probe object");
    }
    outcome
}

/// The probe's steps on `key`.
async fn run(store: &dyn LeaseStore, key: &str, nonce: &str) -> Result<(), StoreError> {
    let body = |step: &str| Bytes::from(format!("{{\"probe\":\"{nonce}\",\"step\":\"{step}\"}}"));
    let first = match store.create(key, body("create")).await {
        Ok(first) => first,
        Err(e) => return Err(first_create_refused(store, key, e)),
    };

    match store.create(key, body("second-create")).await {
        Err(StoreError::AlreadyExists { .. }) => {}
        Ok(_) => {
            return Err(overwrites(
                store,
                key,
                "a create-if-absent (If-None-Match: *) on an existing object was accepted",
            ))
        }
        Err(e) => return Err(e),
    }
    expect_body(store, key, &body("create"), "a refused create-if-absent").await?;

    let second = store
        .compare_and_swap(key, &first.version, body("swap"))
        .await?;
    if second.version == first.version {
        return Err(StoreError::Misconfigured {
            backend: store.backend(),
            message: format!(
                "the probe object `{key}` kept its version across a write of different bytes; \
                 versions that do not change cannot protect a compare-and-swap"
            ),
        });
    }
    match store
        .compare_and_swap(key, &first.version, body("stale-swap"))
        .await
    {
        Err(StoreError::Conflict { .. }) => {}
        Ok(_) => {
            return Err(overwrites(
                store,
                key,
                "a compare-and-swap (If-Match) with a stale version was accepted",
            ))
        }
        Err(e) => return Err(e),
    }
    expect_body(store, key, &body("swap"), "a refused compare-and-swap").await
}

/// What the probe's first create failing says. A store that refuses a
/// create-if-absent as a request (400, 405, 501: `Backend` or
/// `NotSupported`) or applies it without returning a version does not
/// implement the conditional writes this client sends, however it fails:
/// [`StoreError::Misconfigured`], saying so. Anything else (unavailable,
/// throttled, a missing bucket, refused credentials, a timeout) is the
/// store's own error, as it came.
fn first_create_refused(store: &dyn LeaseStore, key: &str, e: StoreError) -> StoreError {
    let what = match &e {
        StoreError::Backend { .. } | StoreError::NotSupported { .. } => {
            "the server refused the probe's first create-if-absent as a request"
        }
        StoreError::Ambiguous { .. } if e.to_string().contains("no ETag") => {
            "the server took the probe's first create-if-absent but returned no ETag or version"
        }
        _ => return e,
    };
    StoreError::Misconfigured {
        backend: store.backend(),
        message: format!(
            "the conditional-write probe on `{key}` failed: {what} ({e}). The server does not \
             implement the conditional writes this client sends (If-None-Match / If-Match on S3 \
             and Azure, x-goog-if-generation-match in XML-API uploads on GCS), so two workers \
             could both win an election: it cannot be used. {USE_INSTEAD}"
        ),
    }
}

/// Where the probe's refusals point.
const USE_INSTEAD: &str = "Use a store with real conditional writes instead: AWS S3, Google \
    Cloud Storage, Azure Blob Storage (or Azurite), a recent MinIO or Cloudflare R2 \
    (s3://…?endpoint=…), or a local directory shared by processes of one machine \
    (file:///abs/dir)";

/// `<probe_prefix>/<name>`, or `name` for an empty prefix.
fn probe_key(probe_prefix: &str, name: &str) -> String {
    let prefix = probe_prefix.trim_matches('/');
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}/{name}")
    }
}

/// What the conditional-delete probe found.
#[cfg(any(feature = "aws", feature = "azure", feature = "gcp", test))]
#[derive(Debug)]
pub(crate) enum DeleteProbe {
    /// A wrong version was refused and left the object alone; the right one
    /// deleted it.
    Honoured,
    /// The server does not do conditional deletes: it said so (501, 400,
    /// another refusal of the request itself) or refused the right version.
    Unsupported(String),
    /// The server took a conditional delete it did not honour.
    Ignored(String),
    /// The probe could not finish: the store failed on the way.
    Failed(StoreError),
}

/// Checks that a conditional delete naming a wrong version is refused and
/// leaves the object alone, and that one naming the right version deletes
/// it, on a fresh scratch object under `probe_prefix` that is deleted
/// afterwards whatever happened.
///
/// `store` makes the plain requests (create, get, delete); `delete_if`
/// makes the conditional delete under test, whether or not the store's
/// capabilities claim it yet; `wrong` gives a version of the store's shape
/// that is not the written one. Five requests when all goes well (create,
/// wrong delete, get, right delete, get), plus a plain delete whenever the
/// object may be left.
#[cfg(any(feature = "aws", feature = "azure", feature = "gcp", test))]
pub(crate) async fn conditional_delete<W, D, F>(
    store: &dyn LeaseStore,
    probe_prefix: &str,
    wrong: W,
    delete_if: D,
) -> DeleteProbe
where
    W: Fn(&Version) -> Version,
    D: Fn(String, Version) -> F,
    F: Future<Output = Result<(), StoreError>>,
{
    let key = probe_key(probe_prefix, &format!("{}-delete", crate::random::hex128()));
    let mut present = false;
    let outcome = run_delete(store, &key, &wrong, &delete_if, &mut present).await;
    // Clean up in every branch that may have left the object; a failed
    // clean-up only leaves a small scratch object behind.
    if present {
        if let Err(e) = store.delete(&key).await {
            tracing::warn!(key, backend = store.backend(), error = %e, "could not delete the probe object");
        }
    }
    outcome
}

/// The conditional-delete probe's steps on `key`; `present` says whether
/// the object may still be there when it returns.
#[cfg(any(feature = "aws", feature = "azure", feature = "gcp", test))]
async fn run_delete<W, D, F>(
    store: &dyn LeaseStore,
    key: &str,
    wrong: &W,
    delete_if: &D,
    present: &mut bool,
) -> DeleteProbe
where
    W: Fn(&Version) -> Version,
    D: Fn(String, Version) -> F,
    F: Future<Output = Result<(), StoreError>>,
{
    let body = Bytes::from(format!(
        "{{\"probe\":\"conditional-delete\",\"key\":\"{key}\"}}"
    ));
    let written = match store.create(key, body.clone()).await {
        Ok(written) => written,
        Err(e) => {
            // Only an ambiguous create may have left an object.
            *present = matches!(e, StoreError::Ambiguous { .. });
            return DeleteProbe::Failed(e);
        }
    };
    *present = true;

    match delete_if(key.to_owned(), wrong(&written.version)).await {
        Err(StoreError::Conflict { .. }) => {}
        Ok(()) => {
            return DeleteProbe::Ignored(format!(
                "a DELETE of `{key}` with a condition naming another version was accepted (its \
                 If-Match or x-goog-if-generation-match was ignored)"
            ))
        }
        Err(e) => return refused(e),
    }
    match store.get(key).await {
        Ok(Some(object)) if object.version == written.version && object.body == body => {}
        Ok(Some(_)) => {
            return DeleteProbe::Ignored(format!(
                "a DELETE of `{key}` with a wrong If-Match was refused, but the object changed"
            ))
        }
        Ok(None) => {
            *present = false;
            return DeleteProbe::Ignored(format!(
                "a DELETE of `{key}` with a wrong If-Match was refused, but the object was \
                 deleted anyway"
            ));
        }
        Err(e) => return DeleteProbe::Failed(e),
    }

    match delete_if(key.to_owned(), written.version.clone()).await {
        Ok(()) => {}
        Err(StoreError::Conflict { .. }) => {
            return DeleteProbe::Unsupported(format!(
                "a DELETE of `{key}` with If-Match naming its current ETag {} was refused",
                written.version
            ))
        }
        Err(e) => return refused(e),
    }
    match store.get(key).await {
        Ok(None) => {
            *present = false;
            DeleteProbe::Honoured
        }
        Ok(Some(_)) => DeleteProbe::Ignored(format!(
            "a DELETE of `{key}` with If-Match naming its current ETag was reported done, but \
             the object is still there"
        )),
        Err(e) => DeleteProbe::Failed(e),
    }
}

/// A conditional delete refused as a request (rather than by its
/// precondition): the server does not support it (501 is NotSupported,
/// 400 and other client errors are Backend), or the store failed.
#[cfg(any(feature = "aws", feature = "azure", feature = "gcp", test))]
fn refused(e: StoreError) -> DeleteProbe {
    match e {
        StoreError::NotSupported { .. } | StoreError::Backend { .. } => {
            DeleteProbe::Unsupported(e.to_string())
        }
        other => DeleteProbe::Failed(other),
    }
}

/// Fails unless `key` holds `expected` (after a write that was refused).
async fn expect_body(
    store: &dyn LeaseStore,
    key: &str,
    expected: &Bytes,
    after: &str,
) -> Result<(), StoreError> {
    match store.get(key).await? {
        Some(object) if object.body == *expected => Ok(()),
        Some(_) => Err(overwrites(
            store,
            key,
            &format!("{after} was reported as refused but the object's bytes changed"),
        )),
        None => Err(overwrites(
            store,
            key,
            &format!("{after} was reported as refused but the object disappeared"),
        )),
    }
}

fn overwrites(store: &dyn LeaseStore, key: &str, what: &str) -> StoreError {
    StoreError::Misconfigured {
        backend: store.backend(),
        message: format!(
            "the conditional-write probe on `{key}` failed: {what}. This backend silently \
             overwrites conditional writes, so two workers could both win an election: it cannot \
             be used. {USE_INSTEAD}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::{
        Capabilities, MemoryStore, ObjectMeta, ObjectStoreLease, StoredObject, Version, Written,
    };

    /// How a fake store breaks conditional writes.
    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Broken {
        /// Accepts `If-Match` blindly: every compare-and-swap overwrites.
        IgnoresIfMatch,
        /// Accepts `If-None-Match: *` blindly: every create overwrites.
        IgnoresIfNoneMatch,
        /// Reports the stale compare-and-swap as a conflict but writes anyway.
        LiesAboutConflict,
    }

    /// A deliberately broken store, the way some S3-compatible servers are.
    #[derive(Debug)]
    struct BrokenStore {
        broken: Broken,
        objects: Mutex<std::collections::BTreeMap<String, (Bytes, u64)>>,
        writes: Mutex<u64>,
    }

    impl BrokenStore {
        fn new(broken: Broken) -> Self {
            Self {
                broken,
                objects: Mutex::default(),
                writes: Mutex::default(),
            }
        }

        fn write(&self, key: &str, body: Bytes) -> Written {
            let mut writes = self.writes.lock().unwrap();
            *writes += 1;
            self.objects
                .lock()
                .unwrap()
                .insert(key.to_owned(), (body, *writes));
            Written {
                version: Version::new(writes.to_string()),
                store_time: None,
            }
        }

        fn version(&self, key: &str) -> Option<Version> {
            let objects = self.objects.lock().unwrap();
            objects.get(key).map(|(_, v)| Version::new(v.to_string()))
        }
    }

    #[async_trait]
    impl LeaseStore for BrokenStore {
        fn backend(&self) -> &'static str {
            "broken"
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities {
                conditional_delete: false,
                conditional_get: false,
                trusted_clock: false,
            }
        }
        async fn get(&self, key: &str) -> Result<Option<StoredObject>, StoreError> {
            let objects = self.objects.lock().unwrap();
            Ok(objects.get(key).map(|(body, v)| StoredObject {
                body: body.clone(),
                version: Version::new(v.to_string()),
                store_time: None,
            }))
        }
        async fn create(&self, key: &str, body: Bytes) -> Result<Written, StoreError> {
            if self.broken != Broken::IgnoresIfNoneMatch && self.version(key).is_some() {
                return Err(StoreError::AlreadyExists {
                    key: key.into(),
                    backend: "broken",
                });
            }
            Ok(self.write(key, body))
        }
        async fn compare_and_swap(
            &self,
            key: &str,
            expected: &Version,
            body: Bytes,
        ) -> Result<Written, StoreError> {
            let matches = self.version(key).as_ref() == Some(expected);
            match self.broken {
                Broken::IgnoresIfMatch => Ok(self.write(key, body)),
                Broken::LiesAboutConflict if !matches => {
                    self.write(key, body);
                    Err(StoreError::Conflict {
                        key: key.into(),
                        backend: "broken",
                    })
                }
                _ if matches => Ok(self.write(key, body)),
                _ => Err(StoreError::Conflict {
                    key: key.into(),
                    backend: "broken",
                }),
            }
        }
        async fn put(&self, key: &str, body: Bytes) -> Result<Written, StoreError> {
            Ok(self.write(key, body))
        }
        async fn list_page(
            &self,
            _prefix: &str,
            _start_after: Option<&str>,
            _limit: usize,
        ) -> Result<Vec<ObjectMeta>, StoreError> {
            Ok(Vec::new())
        }
        async fn delete(&self, key: &str) -> Result<(), StoreError> {
            self.objects.lock().unwrap().remove(key);
            Ok(())
        }
        async fn delete_if_version(&self, _: &str, _: &Version) -> Result<(), StoreError> {
            Err(StoreError::NotSupported {
                op: "delete_if_version",
                backend: "broken",
            })
        }
    }

    #[tokio::test]
    async fn refuses_a_store_that_accepts_if_match_blindly() {
        let store = BrokenStore::new(Broken::IgnoresIfMatch);
        let err = probe_cas(&store, PROBE_PREFIX).await.unwrap_err();
        let StoreError::Misconfigured { backend, message } = &err else {
            panic!("expected Misconfigured, got {err:?}");
        };
        assert_eq!(*backend, "broken");
        assert!(message.contains("silently overwrites"), "{message}");
        assert!(message.contains("compare-and-swap (If-Match)"), "{message}");
        assert!(
            message.contains("file:///"),
            "suggests alternatives: {message}"
        );
        assert!(store.objects.lock().unwrap().is_empty(), "cleaned up");
    }

    #[tokio::test]
    async fn refuses_a_store_that_accepts_if_none_match_blindly() {
        let store = BrokenStore::new(Broken::IgnoresIfNoneMatch);
        let err = probe_cas(&store, PROBE_PREFIX).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Misconfigured { message, .. } if message.contains("create-if-absent")),
            "{err}"
        );
        assert!(store.objects.lock().unwrap().is_empty(), "cleaned up");
    }

    #[tokio::test]
    async fn refuses_a_store_that_reports_a_conflict_but_writes() {
        let store = BrokenStore::new(Broken::LiesAboutConflict);
        let err = probe_cas(&store, PROBE_PREFIX).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Misconfigured { message, .. } if message.contains("bytes changed")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn accepts_real_compare_and_swap() {
        let memory = MemoryStore::new();
        probe_cas(&memory, PROBE_PREFIX).await.unwrap();
        assert!(memory.is_empty());

        let object = ObjectStoreLease::in_memory();
        probe_cas(&object, "").await.unwrap();
        assert!(object.list_page("", None, 10).await.unwrap().is_empty());
    }

    /// How a fake server treats a conditional delete.
    #[derive(Clone, Copy, Debug)]
    enum DeleteFlaw {
        /// Honours `If-Match`, as AWS S3 and moto do.
        Honest,
        /// Deletes whatever the version, as MinIO does.
        IgnoresIfMatch,
        /// Says 412 to a wrong version, and deletes anyway.
        RefusesButDeletes,
        /// Says 204 to the right version, and keeps the object.
        ClaimsButKeeps,
        /// Refuses every version, the right one too.
        RefusesAll,
        /// Answers 501.
        NotImplemented,
        /// Cannot be reached.
        Unavailable,
    }

    /// The conditional-delete probe on a memory store whose conditional
    /// delete has `flaw`.
    async fn delete_probe(flaw: DeleteFlaw) -> (DeleteProbe, MemoryStore) {
        let store = MemoryStore::new();
        let inner = store.clone();
        let conflict = |key: &str| StoreError::Conflict {
            key: key.to_owned(),
            backend: "memory",
        };
        let wrong = |_: &Version| Version::new(format!("\"{}\"", crate::random::hex128()));
        let outcome = conditional_delete(&store, PROBE_PREFIX, wrong, move |key, version| {
            let inner = inner.clone();
            async move {
                match flaw {
                    DeleteFlaw::Honest => inner.delete_if_version(&key, &version).await,
                    DeleteFlaw::IgnoresIfMatch => inner.delete(&key).await,
                    DeleteFlaw::RefusesButDeletes => {
                        let current = inner.get(&key).await?.map(|o| o.version);
                        inner.delete(&key).await?;
                        if current == Some(version) {
                            Ok(())
                        } else {
                            Err(conflict(&key))
                        }
                    }
                    DeleteFlaw::ClaimsButKeeps => match inner.get(&key).await? {
                        Some(object) if object.version == version => Ok(()),
                        _ => Err(conflict(&key)),
                    },
                    DeleteFlaw::RefusesAll => Err(conflict(&key)),
                    DeleteFlaw::NotImplemented => Err(StoreError::NotSupported {
                        op: "delete_if_version",
                        backend: "memory",
                    }),
                    DeleteFlaw::Unavailable => Err(StoreError::Unavailable {
                        key,
                        backend: "memory",
                        source: "connection refused".into(),
                    }),
                }
            }
        })
        .await;
        (outcome, store)
    }

    #[tokio::test]
    async fn conditional_delete_probe_judges_each_kind_of_server() {
        use DeleteFlaw::*;
        for (flaw, expected) in [
            (Honest, "Honoured"),
            (IgnoresIfMatch, "accepted"),
            (RefusesButDeletes, "deleted anyway"),
            (ClaimsButKeeps, "still there"),
            (RefusesAll, "current ETag"),
            (NotImplemented, "not supported"),
            (Unavailable, "connection refused"),
        ] {
            let (outcome, store) = delete_probe(flaw).await;
            let said = match &outcome {
                DeleteProbe::Honoured => "Honoured".to_owned(),
                DeleteProbe::Unsupported(why) | DeleteProbe::Ignored(why) => why.clone(),
                DeleteProbe::Failed(e) => e.to_string(),
            };
            assert!(said.contains(expected), "{flaw:?}: {outcome:?}");
            let kind_ok = match flaw {
                Honest => matches!(outcome, DeleteProbe::Honoured),
                IgnoresIfMatch | RefusesButDeletes | ClaimsButKeeps => {
                    matches!(outcome, DeleteProbe::Ignored(_))
                }
                RefusesAll | NotImplemented => matches!(outcome, DeleteProbe::Unsupported(_)),
                Unavailable => matches!(outcome, DeleteProbe::Failed(_)),
            };
            assert!(kind_ok, "{flaw:?}: {outcome:?}");
            assert!(store.is_empty(), "{flaw:?}: the probe object is cleaned up");
        }
    }
}
