//! [`probe_cas`]: check once that a store really refuses stale conditional
//! writes before trusting an election to it.
//!
//! Some S3-compatible servers accept `If-None-Match` and `If-Match` headers
//! and then ignore them, overwriting whatever is there. On such a store two
//! workers can both "win" an election. The probe catches that before the
//! first election: it writes a scratch object and checks that the store
//! refuses both a second create and a compare-and-swap with a stale version.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

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
    let nonce = random_hex();
    let prefix = probe_prefix.trim_matches('/');
    let key = if prefix.is_empty() {
        nonce.clone()
    } else {
        format!("{prefix}/{nonce}")
    };
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
    let first = store.create(key, body("create")).await?;

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
             be used. Use a store with real conditional writes instead: AWS S3, Google Cloud \
             Storage, Azure Blob Storage, a recent MinIO or Cloudflare R2 (s3://…?endpoint=…), or \
             a local directory shared by processes of one machine (file:///abs/dir)"
        ),
    }
}

/// 128 random bits as hex, from the standard library's per-process random
/// keys, the time and the process id (no extra dependency; the probe key
/// only has to be unique, not secret).
fn random_hex() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut words = [0u64; 2];
    for (i, word) in words.iter_mut().enumerate() {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u128(now);
        hasher.write_u32(std::process::id());
        hasher.write_usize(i);
        *word = hasher.finish();
    }
    format!("{:016x}{:016x}", words[0], words[1])
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
        async fn list(&self, _prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
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
        assert!(object.list("").await.unwrap().is_empty());
    }

    #[test]
    fn probe_keys_differ() {
        assert_ne!(random_hex(), random_hex());
        assert_eq!(random_hex().len(), 32);
    }
}
