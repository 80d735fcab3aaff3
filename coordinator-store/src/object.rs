//! [`ObjectStoreLease`]: a [`LeaseStore`] over the `object_store` crate (S3,
//! GCS, Azure Blob and its in-memory store).
//!
//! * Create-if-absent is `PutMode::Create` (`If-None-Match: *` on S3 and
//!   Azure, `x-goog-if-generation-match: 0` on GCS).
//! * Compare-and-swap is `PutMode::Update`: S3 and Azure match the ETag, GCS
//!   the generation. A [`Version`] from this store carries what its backend
//!   needs (see [`ObjectStoreLease`]); callers never look inside.
//! * `get_if_changed` is a real conditional GET (`If-None-Match: <etag>`).
//! * Conditional delete is a `DELETE` naming the version: `If-Match:
//!   <etag>` on S3 (AWS S3 general purpose buckets since 2025-09-16; moto)
//!   and Azure (`Delete Blob`; Azurite), `x-goog-if-generation-match:
//!   <generation>` on GCS. `object_store` has no API for it, so this adapter
//!   authorises the DELETE with the concrete store's own credentials (S3:
//!   presigned by [`AmazonS3`](object_store::aws::AmazonS3), `If-Match`
//!   among the signed headers; Azure: `AzureAuthorizer`, whose SharedKey
//!   signature covers `If-Match`; GCS: the store's bearer token) and sends
//!   it through `object_store`'s own HTTP client abstraction, with the same
//!   timeouts and a retry loop with the same bounds (see
//!   [`ObjectStoreLease::with_s3_conditional_delete`]; the machinery is in
//!   `object/conditional_delete.rs`). Some servers accept the condition and
//!   delete anyway (MinIO ignores `If-Match` on DELETE, fake-gcs-server
//!   ignores the generation), so the capability is never assumed: it is on
//!   only after [`ObjectStoreLease::probe_conditional_delete`] (run by
//!   [`open`](crate::open)) saw the server refuse a wrong version and
//!   honour the right one. Everywhere else (a server that failed the probe,
//!   a store from `open_unprobed` (feature `test-util`), a store built by
//!   hand without the means)
//!   [`delete_if_version`](LeaseStore::delete_if_version) returns
//!   [`StoreError::NotSupported`] and [`Capabilities::conditional_delete`]
//!   is false; callers CAS a tombstone instead.
//!
//! # Store clocks
//!
//! [`Capabilities::trusted_clock`] is on only where the store's timestamps
//! come from a cloud service's clock: [`open`](crate::open) turns it on for
//! AWS S3, GCS and Azure Blob Storage reached at their own endpoints, and
//! off for any custom endpoint (MinIO, R2, Ceph, moto, Azurite, a GCS
//! emulator), whose clock may step, unless the URL says
//! `trust_store_clock=true`. A store built by hand starts untrusted
//! ([`ObjectStoreLease::with_trusted_store_clock`]).
//!
//! # Timeouts and retries
//!
//! `object_store`'s defaults (30 s per request, 10 retries, up to 3 minutes of
//! retrying) would let a write land minutes after the call started, long
//! after a leader's renew deadline. [`StoreOptions`] bounds every call
//! instead; see its docs for the bound.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
#[cfg(any(feature = "aws", feature = "azure", feature = "gcp"))]
use object_store::{BackoffConfig, ClientOptions, RetryConfig};
use object_store::{
    GetOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, PutResult,
    UpdateVersion,
};

use crate::memory::key_is_under;
use crate::{
    Capabilities, Conditional, LeaseStore, ObjectMeta, StoreError, StoreTime, StoredObject,
    Version, Written,
};

mod classify;
#[cfg(any(feature = "aws", feature = "azure", feature = "gcp"))]
mod conditional_delete;

use classify::{is_conditional_request_conflict, Facts};
#[cfg(any(feature = "aws", feature = "azure", feature = "gcp"))]
use conditional_delete::ConditionalDelete;

/// How long each request may take and how often it is retried.
///
/// Every call of an [`ObjectStoreLease`] ends within about
/// `retry_timeout + 1 s + request_timeout`: no retry starts once
/// `retry_timeout` has passed since the call began, the pause before a
/// retry is at most 1 s, and each attempt is cut off after
/// `request_timeout`. (A create that meets S3's 409
/// `ConditionalRequestConflict`, which this adapter retries itself, can
/// take up to one `retry_timeout` more.) With the defaults that is about
/// 6 s. A write that is cut off returns [`StoreError::Ambiguous`]; it can
/// only land while the server still handles an attempt sent inside that
/// window, never minutes later.
///
/// The coordinator needs several attempts to fit inside a leader's renew
/// deadline (10 s by default), which is why these defaults are small;
/// `object_store`'s own defaults (30 s per attempt, 10 retries, retrying
/// for up to 3 minutes) would let a renewal land long after the leader
/// stepped down.
///
/// Conditional writes (create, compare-and-swap, conditional delete) are
/// not retried after a timeout or a dropped connection (they are not
/// idempotent), but they are retried after a 5xx and a 429, and create and
/// compare-and-swap after a 409 `ConditionalRequestConflict` (a conditional
/// delete that meets one returns [`StoreError::Conflict`] at once: another
/// write or delete of the key won). A retry after a 5xx may meet the
/// caller's own first attempt, which the store had applied after all, and
/// then return [`StoreError::Conflict`] or [`StoreError::AlreadyExists`]:
/// callers re-read and compare content before concluding they lost.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use coordinator_store::StoreOptions;
///
/// let options = StoreOptions {
///     request_timeout: Duration::from_secs(1),
///     ..StoreOptions::default()
/// };
/// assert_eq!(options.max_retries, 2);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreOptions {
    /// The time limit of one attempt, connecting included. Default 2 s.
    pub request_timeout: Duration,
    /// How many times a failed request is retried (0 disables retries).
    /// Default 2.
    pub max_retries: usize,
    /// No retry starts once this long has passed since the call began.
    /// Default 3 s.
    pub retry_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(2),
            max_retries: 2,
            retry_timeout: Duration::from_secs(3),
        }
    }
}

impl StoreOptions {
    /// The largest pause between two attempts.
    #[cfg(any(feature = "aws", feature = "azure", feature = "gcp"))]
    const MAX_BACKOFF: Duration = Duration::from_secs(1);

    /// These options as `object_store` client options (per-attempt and
    /// connect timeouts), for building a store by hand. (With a cloud
    /// feature only: `object_store` has no HTTP client without one.)
    #[cfg(any(feature = "aws", feature = "azure", feature = "gcp"))]
    #[cfg_attr(
        docsrs,
        doc(cfg(any(feature = "aws", feature = "azure", feature = "gcp")))
    )]
    pub fn client_options(&self) -> ClientOptions {
        ClientOptions::new()
            .with_timeout(self.request_timeout)
            .with_connect_timeout(self.request_timeout)
    }

    /// These options as an `object_store` retry policy (100 ms first
    /// back-off, doubling, at most 1 s), for building a store by hand.
    /// (With a cloud feature only.)
    #[cfg(any(feature = "aws", feature = "azure", feature = "gcp"))]
    #[cfg_attr(
        docsrs,
        doc(cfg(any(feature = "aws", feature = "azure", feature = "gcp")))
    )]
    pub fn retry_config(&self) -> RetryConfig {
        RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Self::MAX_BACKOFF,
                base: 2.0,
            },
            max_retries: self.max_retries,
            retry_timeout: self.retry_timeout,
        }
    }
}

/// Which API an [`ObjectStoreLease`] talks. It decides what a
/// [`Version`] holds and the backend name in errors, not whether the
/// store's clock is trusted: an S3-compatible server speaks
/// [`ObjectBackend::S3`] too (see
/// [`ObjectStoreLease::with_trusted_store_clock`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ObjectBackend {
    /// Amazon S3 or an S3-compatible server (MinIO, R2, moto). Versions are
    /// ETags.
    S3,
    /// Google Cloud Storage. Versions carry the generation and the ETag.
    Gcs,
    /// Azure Blob Storage. Versions are ETags.
    Azure,
    /// `object_store`'s in-memory store, for tests of this adapter.
    Memory,
}

impl ObjectBackend {
    /// The name used in errors and metrics: `"s3"`, `"gcs"`, `"azure"`,
    /// `"memory-object-store"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectBackend::S3 => "s3",
            ObjectBackend::Gcs => "gcs",
            ObjectBackend::Azure => "azure",
            ObjectBackend::Memory => "memory-object-store",
        }
    }

    /// True where compare-and-swap matches the generation rather than the
    /// ETag, so versions must carry both.
    fn uses_generation(self) -> bool {
        matches!(self, ObjectBackend::Gcs)
    }
}

impl fmt::Display for ObjectBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A [`LeaseStore`] over any `object_store` backend, rooted at a prefix.
///
/// Most callers get one from [`open`](crate::open) with a URL. Build one by
/// hand to use an `object_store` configured in ways the URL cannot say; give
/// it the same timeouts ([`StoreOptions::client_options`],
/// [`StoreOptions::retry_config`]).
///
/// # Versions
///
/// On S3, Azure and the in-memory store a [`Version`] is the ETag. On GCS,
/// whose conditional writes match the generation, it is
/// `<generation>|<etag>`. S3's and GCS's ETags are MD5 digests of the body,
/// so rewriting the same bytes brings a version back (see the
/// [contract](LeaseStore#contract)).
///
/// GCS listings carry no generation, which GCS's conditions match: a
/// compare-and-swap or conditional delete with a version from
/// a listing
/// ([`LeaseStore::list_page`], [`LeaseStoreExt::list`](crate::LeaseStoreExt::list))
/// on GCS first reads the object's generation with one
/// HEAD, and is a [`StoreError::Conflict`] (with nothing written) if the
/// object no longer has the listed ETag.
///
/// # Examples
///
/// ```
/// use coordinator_store::{LeaseStore, ObjectStoreLease, StoreError};
/// # futures::executor::block_on(async {
/// let store = ObjectStoreLease::in_memory();
/// let first = store.create("ns/state.json", "v1".into()).await?;
/// store.compare_and_swap("ns/state.json", &first.version, "v2".into()).await?;
/// let stale = store.compare_and_swap("ns/state.json", &first.version, "v3".into()).await;
/// assert!(matches!(stale, Err(StoreError::Conflict { .. })));
/// # Ok::<(), StoreError>(())
/// # }).unwrap();
/// ```
pub struct ObjectStoreLease {
    store: Arc<dyn ObjectStore>,
    backend: ObjectBackend,
    /// The bucket or container, for error messages.
    bucket: String,
    /// Where the store is, for error messages (`s3://bucket/prefix`).
    location: String,
    /// Every key is under this path; `None` for the bucket's root.
    root: Option<Path>,
    options: StoreOptions,
    /// How to send a conditional DELETE, where the store was given the
    /// means (`with_s3_conditional_delete`, `with_azure_conditional_delete`,
    /// `with_gcs_conditional_delete`).
    #[cfg(any(feature = "aws", feature = "azure", feature = "gcp"))]
    deleter: Option<ConditionalDelete>,
    /// True once [`ObjectStoreLease::probe_conditional_delete`] saw the
    /// server honour `If-Match` on DELETE; never assumed.
    conditional_delete: bool,
    /// [`Capabilities::trusted_clock`]: false unless whoever built the
    /// store knows it is AWS S3, GCS or Azure itself, or the user said so
    /// ([`ObjectStoreLease::with_trusted_store_clock`]).
    trusted_clock: bool,
}

impl fmt::Debug for ObjectStoreLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectStoreLease")
            .field("backend", &self.backend.as_str())
            .field("location", &self.location)
            .field("options", &self.options)
            .field("conditional_delete", &self.conditional_delete)
            .field("trusted_clock", &self.trusted_clock)
            .finish_non_exhaustive()
    }
}

/// The operations, for error messages and classification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Get,
    GetIfChanged,
    Create,
    CompareAndSwap,
    Put,
    List,
    Delete,
    DeleteIfVersion,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::GetIfChanged => "get_if_changed",
            Op::Create => "create",
            Op::CompareAndSwap => "compare_and_swap",
            Op::Put => "put",
            Op::List => "list",
            Op::Delete => "delete",
            Op::DeleteIfVersion => "delete_if_version",
        }
    }

    /// True if a failed attempt may still have changed the store.
    fn writes(self) -> bool {
        matches!(
            self,
            Op::Create | Op::CompareAndSwap | Op::Put | Op::Delete | Op::DeleteIfVersion
        )
    }
}

impl ObjectStoreLease {
    /// Wraps `store`, rooting every key at `prefix` (`""` for the bucket's
    /// root).
    ///
    /// `bucket` and `location` only appear in error messages (say
    /// `"my-bucket"` and `"s3://my-bucket/prod"`). `options` should be the
    /// ones `store` was built with; they bound this adapter's own retries of
    /// 409 `ConditionalRequestConflict`.
    ///
    /// The store's clock is not trusted
    /// ([`Capabilities::trusted_clock`] is false): call
    /// [`with_trusted_store_clock`](Self::with_trusted_store_clock) for a
    /// store that is AWS S3, GCS or Azure itself.
    ///
    /// # Errors
    ///
    /// [`StoreError::Misconfigured`] if `prefix` is not a valid object path
    /// (empty segments, `.` or `..`).
    pub fn new(
        store: Arc<dyn ObjectStore>,
        backend: ObjectBackend,
        bucket: impl Into<String>,
        location: impl Into<String>,
        prefix: &str,
        options: StoreOptions,
    ) -> Result<Self, StoreError> {
        let location = location.into();
        let trimmed = prefix.trim_matches('/');
        let root = if trimmed.is_empty() {
            None
        } else {
            match Path::parse(trimmed) {
                Ok(path) => Some(path),
                Err(e) => {
                    return Err(StoreError::Misconfigured {
                        backend: backend.as_str(),
                        message: format!(
                            "the prefix `{prefix}` of {location} is not a valid object path ({e}); \
                             use `/`-separated names without empty, `.` or `..` segments"
                        ),
                    })
                }
            }
        };
        Ok(Self {
            store,
            backend,
            bucket: bucket.into(),
            location,
            root,
            options,
            #[cfg(any(feature = "aws", feature = "azure", feature = "gcp"))]
            deleter: None,
            conditional_delete: false,
            // Nothing here says whether `store` reaches a cloud service or
            // a self-hosted server whose clock may step; the stale-lease
            // shortcut must not trust the latter (see
            // `with_trusted_store_clock`).
            trusted_clock: false,
        })
    }

    /// A store over `object_store`'s `InMemory`, at its root, with the
    /// backend name `"memory-object-store"`. For tests of this adapter; the
    /// crate's own `MemoryStore` is the in-memory store to use elsewhere.
    pub fn in_memory() -> Self {
        Self {
            store: Arc::new(InMemory::new()),
            backend: ObjectBackend::Memory,
            bucket: "memory".to_owned(),
            location: "object_store InMemory".to_owned(),
            root: None,
            options: StoreOptions::default(),
            #[cfg(any(feature = "aws", feature = "azure", feature = "gcp"))]
            deleter: None,
            conditional_delete: false,
            // `InMemory` stamps objects with the system clock, which NTP
            // can step.
            trusted_clock: false,
        }
    }

    /// Sets whether the store's timestamps may be compared with each other
    /// ([`Capabilities::trusted_clock`]), which lets a worker that starts
    /// take a stale lease at once, judging its age by the store's clock
    /// (the stale-lease shortcut).
    ///
    /// [`ObjectStoreLease::new`] leaves it off: it cannot tell AWS S3 from
    /// MinIO, R2, Ceph or moto behind the same API, and a self-hosted
    /// server whose clock steps by a few seconds makes a live lease look
    /// old, so a starting worker would take it while its leader still
    /// leads. Turn it on only for AWS S3, GCS or Azure Blob Storage
    /// themselves, or for a server whose clock you know is slewed, never
    /// stepped. [`open`](crate::open) decides this from the URL (its
    /// `trust_store_clock` option is the same switch).
    ///
    /// # Examples
    ///
    /// ```
    /// use coordinator_store::{LeaseStore, ObjectStoreLease};
    ///
    /// let store = ObjectStoreLease::in_memory();
    /// assert!(!store.capabilities().trusted_clock);
    /// let store = store.with_trusted_store_clock(true);
    /// assert!(store.capabilities().trusted_clock);
    /// ```
    pub fn with_trusted_store_clock(mut self, trusted: bool) -> Self {
        self.trusted_clock = trusted;
        self
    }

    /// Which service this store talks to.
    pub fn object_backend(&self) -> ObjectBackend {
        self.backend
    }

    /// Where the store is (`s3://bucket/prefix`), as given when it was made.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The options this store was made with.
    pub fn options(&self) -> StoreOptions {
        self.options
    }

    fn name(&self) -> &'static str {
        self.backend.as_str()
    }

    /// The full object path of `key`.
    fn path(&self, op: Op, key: &str) -> Result<Path, StoreError> {
        let invalid = |why: String| {
            StoreError::Backend {
            op: op.as_str(),
            key: key.to_owned(),
            backend: self.name(),
            source: format!(
                "invalid key: {why}; keys are `/`-separated names without empty, `.` or `..` segments"
            )
            .into(),
        }
        };
        if key.is_empty() || key.starts_with('/') || key.ends_with('/') {
            return Err(invalid("empty, or starts or ends with `/`".to_owned()));
        }
        let full = match &self.root {
            Some(root) => format!("{root}/{key}"),
            None => key.to_owned(),
        };
        Path::parse(full).map_err(|e| invalid(e.to_string()))
    }

    /// The key of `location` relative to the root, if it is under it.
    fn key_of<'a>(&self, location: &'a Path) -> Option<&'a str> {
        let raw = location.as_ref();
        match &self.root {
            None => Some(raw),
            Some(root) => raw
                .strip_prefix(root.as_ref())
                .and_then(|rest| rest.strip_prefix('/')),
        }
    }

    /// The [`Version`] of an object with this ETag and generation.
    fn encode(&self, e_tag: Option<&str>, version: Option<&str>) -> Option<Version> {
        if self.backend.uses_generation() {
            if e_tag.is_none() && version.is_none() {
                return None;
            }
            Some(Version::new(format!(
                "{}|{}",
                version.unwrap_or_default(),
                e_tag.unwrap_or_default()
            )))
        } else if self.backend == ObjectBackend::Azure {
            // Azure quotes the ETag of a write, a GET and a HEAD, but not a
            // listing's: the same blob must have one version either way.
            e_tag.map(|e_tag| {
                if e_tag.starts_with('"') {
                    Version::new(e_tag)
                } else {
                    Version::new(format!("\"{e_tag}\""))
                }
            })
        } else {
            e_tag.map(Version::new)
        }
    }

    /// The ETag inside a version, if it has one.
    fn e_tag_of<'a>(&self, version: &'a Version) -> Option<&'a str> {
        let raw = version.as_str();
        let e_tag = if self.backend.uses_generation() {
            raw.split_once('|').map_or("", |(_, e_tag)| e_tag)
        } else {
            raw
        };
        (!e_tag.is_empty()).then_some(e_tag)
    }

    /// What `object_store` needs to update an object of this version, or
    /// `None` if the version cannot identify one on this backend.
    fn update_version(&self, version: &Version) -> Option<UpdateVersion> {
        let raw = version.as_str();
        if self.backend.uses_generation() {
            let (generation, e_tag) = raw.split_once('|')?;
            if generation.is_empty() {
                return None;
            }
            Some(UpdateVersion {
                e_tag: (!e_tag.is_empty()).then(|| e_tag.to_owned()),
                version: Some(generation.to_owned()),
            })
        } else if raw.is_empty() {
            None
        } else {
            Some(UpdateVersion {
                e_tag: Some(raw.to_owned()),
                version: None,
            })
        }
    }

    /// `expected`, made usable for a compare-and-swap or a conditional
    /// delete. On GCS a version from a listing has the ETag but no
    /// generation, which the conditions match: one HEAD reads the object's
    /// generation, and if the object still has the listed ETag, the
    /// version with that generation is returned (the condition then fails
    /// if the object changes after the HEAD). `None` if the object is gone
    /// or has changed: a conflict. Any other version is returned as it is,
    /// without a request.
    async fn with_generation(
        &self,
        op: Op,
        key: &str,
        path: &Path,
        expected: &Version,
    ) -> Result<Option<Version>, StoreError> {
        let generation_less = self.backend.uses_generation()
            && expected
                .as_str()
                .split_once('|')
                .is_some_and(|(generation, _)| generation.is_empty());
        if !generation_less {
            return Ok(Some(expected.clone()));
        }
        let Some(listed) = self.e_tag_of(expected) else {
            return Ok(None);
        };
        let meta = match self.store.head(path).await {
            Ok(meta) => meta,
            Err(e @ object_store::Error::NotFound { .. }) => {
                return if Facts::of(&e).missing_bucket() {
                    Err(self.error(op, key, e))
                } else {
                    Ok(None)
                };
            }
            Err(e) => return Err(self.error(op, key, e)),
        };
        let unquoted = |e_tag: &str| e_tag.trim_matches('"').to_owned();
        let same = meta
            .e_tag
            .as_deref()
            .is_some_and(|e_tag| unquoted(e_tag) == unquoted(listed));
        Ok(match (&meta.version, same) {
            (Some(_), true) => self.encode(meta.e_tag.as_deref(), meta.version.as_deref()),
            _ => None,
        })
    }

    fn conflict(&self, key: &str) -> StoreError {
        StoreError::Conflict {
            key: key.to_owned(),
            backend: self.name(),
        }
    }

    fn already_exists(&self, key: &str) -> StoreError {
        StoreError::AlreadyExists {
            key: key.to_owned(),
            backend: self.name(),
        }
    }

    /// The outcome of a successful write.
    fn written(&self, op: Op, key: &str, result: PutResult) -> Result<Written, StoreError> {
        match self.encode(result.e_tag.as_deref(), result.version.as_deref()) {
            Some(version) => Ok(Written {
                version,
                store_time: None,
            }),
            // The write landed, but without a version nobody can
            // compare-and-swap on it: say so, and let the caller re-read.
            None => Err(StoreError::Ambiguous {
                op: op.as_str(),
                key: key.to_owned(),
                backend: self.name(),
                source: "the store accepted the write but returned no ETag; a store without \
                         ETags cannot do compare-and-swap"
                    .into(),
            }),
        }
    }

    fn object_meta(
        &self,
        op: Op,
        key: &str,
        meta: &object_store::ObjectMeta,
    ) -> Result<(Version, Option<StoreTime>), StoreError> {
        let version = self
            .encode(meta.e_tag.as_deref(), meta.version.as_deref())
            .ok_or_else(|| StoreError::Backend {
                op: op.as_str(),
                key: key.to_owned(),
                backend: self.name(),
                source: "the store returned the object without an ETag; a store without ETags \
                         cannot do compare-and-swap"
                    .into(),
            })?;
        Ok((
            version,
            Some(StoreTime(meta.last_modified.timestamp_millis())),
        ))
    }

    /// Writes with a precondition, retrying a bounded number of times while
    /// the store reports another conditional write in flight on the key
    /// (S3's 409 `ConditionalRequestConflict`).
    async fn conditional_put(
        &self,
        op: Op,
        key: &str,
        path: &Path,
        body: Bytes,
        mode: PutMode,
    ) -> Result<Written, StoreError> {
        let payload = PutPayload::from_bytes(body);
        let started = Instant::now();
        let mut attempt = 0usize;
        loop {
            let result = self
                .store
                .put_opts(path, payload.clone(), PutOptions::from(mode.clone()))
                .await;
            match result {
                Ok(result) => return self.written(op, key, result),
                Err(e) if is_conditional_request_conflict(&e) => {
                    // object_store retries a 409 on compare-and-swap itself
                    // (within `max_retries`), not on create: retry creates
                    // here, on the same budget.
                    if op == Op::Create
                        && attempt < self.options.max_retries
                        && started.elapsed() < self.options.retry_timeout
                    {
                        attempt += 1;
                        tracing::debug!(
                            key,
                            backend = self.name(),
                            op = op.as_str(),
                            attempt,
                            "conditional request conflict; retrying"
                        );
                        tokio::time::sleep(conflict_backoff(attempt)).await;
                        continue;
                    }
                    // Another conditional write on this key kept being in
                    // flight: it is the one that wins, so ours lost.
                    return Err(match op {
                        Op::Create => self.already_exists(key),
                        _ => self.conflict(key),
                    });
                }
                Err(e) => return Err(self.error(op, key, e)),
            }
        }
    }
}

/// The pause before retry `attempt` (1, 2, …) after a conditional request
/// conflict: 50 ms doubling, at most 400 ms, with up to 50% jitter.
fn conflict_backoff(attempt: usize) -> Duration {
    crate::random::backoff(
        Duration::from_millis(50),
        Duration::from_millis(400),
        attempt,
    )
}

#[async_trait]
impl LeaseStore for ObjectStoreLease {
    fn backend(&self) -> &'static str {
        self.name()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            conditional_delete: self.conditional_delete,
            conditional_get: true,
            trusted_clock: self.trusted_clock,
        }
    }

    async fn get(&self, key: &str) -> Result<Option<StoredObject>, StoreError> {
        let path = self.path(Op::Get, key)?;
        match self
            .read(Op::Get, key, &path, GetOptions::default())
            .await?
        {
            Read::Found(object) => Ok(Some(object)),
            Read::Absent => Ok(None),
            Read::NotModified => Err(StoreError::Backend {
                op: Op::Get.as_str(),
                key: key.to_owned(),
                backend: self.name(),
                source: "the store answered an unconditional GET with 304 Not Modified".into(),
            }),
        }
    }

    async fn get_if_changed(&self, key: &str, known: &Version) -> Result<Conditional, StoreError> {
        let path = self.path(Op::GetIfChanged, key)?;
        let options = GetOptions {
            if_none_match: self.e_tag_of(known).map(str::to_owned),
            ..GetOptions::default()
        };
        Ok(
            match self.read(Op::GetIfChanged, key, &path, options).await? {
                Read::NotModified => Conditional::Unchanged,
                Read::Absent => Conditional::Absent,
                // A store that ignores If-None-Match sends the body anyway.
                Read::Found(object) if &object.version == known => Conditional::Unchanged,
                Read::Found(object) => Conditional::Changed(object),
            },
        )
    }

    async fn create(&self, key: &str, body: Bytes) -> Result<Written, StoreError> {
        let path = self.path(Op::Create, key)?;
        self.conditional_put(Op::Create, key, &path, body, PutMode::Create)
            .await
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        expected: &Version,
        body: Bytes,
    ) -> Result<Written, StoreError> {
        let path = self.path(Op::CompareAndSwap, key)?;
        let Some(expected) = self
            .with_generation(Op::CompareAndSwap, key, &path, expected)
            .await?
        else {
            return Err(self.conflict(key));
        };
        let Some(update) = self.update_version(&expected) else {
            // A version this backend cannot match: it cannot be the
            // object's current one as far as a CAS can tell.
            tracing::debug!(
                key,
                backend = self.name(),
                version = expected.as_str(),
                "compare-and-swap with a version that cannot identify an object here"
            );
            return Err(self.conflict(key));
        };
        self.conditional_put(
            Op::CompareAndSwap,
            key,
            &path,
            body,
            PutMode::Update(update),
        )
        .await
    }

    async fn put(&self, key: &str, body: Bytes) -> Result<Written, StoreError> {
        let path = self.path(Op::Put, key)?;
        match self.store.put(&path, PutPayload::from_bytes(body)).await {
            Ok(result) => self.written(Op::Put, key, result),
            Err(e) => Err(self.error(Op::Put, key, e)),
        }
    }

    /// One request for a `limit` up to 1,000 (see `listing`).
    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ObjectMeta>, StoreError> {
        self.listing(prefix, start_after, limit).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path(Op::Delete, key)?;
        match self.store.delete(&path).await {
            Ok(()) => Ok(()),
            Err(e @ object_store::Error::NotFound { .. }) => {
                if Facts::of(&e).missing_bucket() {
                    Err(self.error(Op::Delete, key, e))
                } else {
                    Ok(())
                }
            }
            Err(e) => Err(self.error(Op::Delete, key, e)),
        }
    }

    async fn delete_if_version(&self, key: &str, expected: &Version) -> Result<(), StoreError> {
        if !self.conditional_delete {
            return Err(StoreError::NotSupported {
                op: Op::DeleteIfVersion.as_str(),
                backend: self.name(),
            });
        }
        #[cfg(not(any(feature = "aws", feature = "azure", feature = "gcp")))]
        let result = {
            let _ = expected;
            Err(StoreError::NotSupported {
                op: Op::DeleteIfVersion.as_str(),
                backend: self.name(),
            })
        };
        #[cfg(any(feature = "aws", feature = "azure", feature = "gcp"))]
        let result = self.send_delete_if_version(key, expected).await;
        match result {
            // NotSupported promises that nothing is supported; callers
            // may then delete blindly. A server that passed the probe
            // and now answers 501 is an incident, not that.
            Err(StoreError::NotSupported { .. }) => Err(StoreError::Backend {
                op: Op::DeleteIfVersion.as_str(),
                key: key.to_owned(),
                backend: self.name(),
                source: format!(
                    "the server answered a conditional DELETE with 501 Not Implemented, \
                     though it honoured one when {} was opened; check that the endpoint \
                     still reaches the same service, then reopen the store",
                    self.location
                )
                .into(),
            }),
            other => other,
        }
    }
}

#[cfg(not(any(feature = "aws", feature = "azure", feature = "gcp")))]
impl ObjectStoreLease {
    /// Turns [`Capabilities::conditional_delete`] off and returns false:
    /// built without a cloud feature, no store has the means to send a
    /// conditional delete. (With one, it probes whether the server honours
    /// it.)
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it makes no request.
    pub async fn probe_conditional_delete(&mut self, probe_prefix: &str) -> bool {
        let _ = probe_prefix;
        self.conditional_delete = false;
        false
    }
}

/// The outcome of one GET.
enum Read {
    Found(StoredObject),
    Absent,
    /// 304: the object still has the ETag given in `If-None-Match`.
    NotModified,
}

impl ObjectStoreLease {
    /// One GET with `options`.
    async fn read(
        &self,
        op: Op,
        key: &str,
        path: &Path,
        options: GetOptions,
    ) -> Result<Read, StoreError> {
        let result = match self.store.get_opts(path, options).await {
            Ok(result) => result,
            Err(e @ object_store::Error::NotFound { .. }) => {
                return if Facts::of(&e).missing_bucket() {
                    Err(self.error(op, key, e))
                } else {
                    Ok(Read::Absent)
                };
            }
            Err(object_store::Error::NotModified { .. }) => return Ok(Read::NotModified),
            Err(e) => return Err(self.error(op, key, e)),
        };
        let (version, store_time) = self.object_meta(op, key, &result.meta)?;
        let body = match result.bytes().await {
            Ok(body) => body,
            Err(e) => return Err(self.error(op, key, e)),
        };
        Ok(Read::Found(StoredObject {
            body,
            version,
            store_time,
        }))
    }
}

impl ObjectStoreLease {
    /// Lists up to `limit` keys under `prefix` after `start_after`, in key
    /// order. S3, GCS and Azure list in key order and start after a key
    /// (`start-after`, `startOffset`, `marker`), and `object_store` fetches
    /// pages lazily, so a small `limit` costs one request.
    async fn listing(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ObjectMeta>, StoreError> {
        let trimmed = prefix.trim_end_matches('/');
        let list_path = if trimmed.is_empty() {
            self.root.clone()
        } else {
            Some(self.path(Op::List, trimmed)?)
        };
        // `start_after` need not be a valid key (other stores take any
        // string); if it is not one, list from the start and let the
        // filter below skip up to it.
        let offset = start_after.and_then(|after| self.path(Op::List, after).ok());
        let mut stream = match &offset {
            Some(offset) => self.store.list_with_offset(list_path.as_ref(), offset),
            None => self.store.list(list_path.as_ref()),
        };
        let mut out = Vec::new();
        while out.len() < limit {
            let meta = match stream.try_next().await {
                Ok(Some(meta)) => meta,
                Ok(None) => break,
                Err(e) => return Err(self.error(Op::List, prefix, e)),
            };
            let Some(key) = self.key_of(&meta.location) else {
                continue;
            };
            if !key_is_under(key, prefix) || start_after.is_some_and(|after| key <= after) {
                continue;
            }
            let (version, store_time) = self.object_meta(Op::List, key, &meta)?;
            out.push(ObjectMeta {
                key: key.to_owned(),
                version,
                size: meta.size,
                store_time,
            });
        }
        // Stop reading: dropping the stream fetches no further page.
        drop(stream);
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}
