//! Conditional delete, which `object_store` has no API for: S3's `DELETE`
//! with `If-Match: <etag>`, Azure's `Delete Blob` with `If-Match: <etag>`,
//! GCS's XML-API `DELETE` with `x-goog-if-generation-match: <generation>`.
//!
//! Every other call of [`ObjectStoreLease`] goes through `object_store`,
//! which signs, sends, times out and retries it. This one cannot, so the
//! module does that work itself: it authorises the DELETE with the concrete
//! store's own credentials (S3: presigned by [`AmazonS3`], `If-Match` among
//! the signed headers; Azure: [`AzureAuthorizer`] over the store's
//! credential, which signs `If-Match` in a SharedKey signature; GCS: the
//! store's bearer token, as `object_store` sends it), sends it through
//! `object_store`'s HTTP client abstraction, bounds it with its own retry
//! and timeout loop (the same bound as [`StoreOptions`] gives the other
//! calls) and maps the raw answer onto [`StoreError`]. That is a small HTTP
//! client of its own, so it lives apart from the adapter, whose code is
//! about `object_store` alone. The capability switch that decides whether
//! the server can be trusted with it
//! ([`ObjectStoreLease::probe_conditional_delete`]) lives here too, next to
//! what it switches on.

use std::time::{Duration, Instant};

use futures::StreamExt;
#[cfg(feature = "aws")]
use object_store::aws::AmazonS3;
#[cfg(feature = "azure")]
use object_store::azure::{AzureAuthorizer, MicrosoftAzure};
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpRequestBody,
    ReqwestConnector,
};
#[cfg(feature = "gcp")]
use object_store::gcp::GoogleCloudStorage;
use object_store::path::Path;
use object_store::signer::{HeaderName, HeaderValue, Method};
#[cfg(feature = "aws")]
use object_store::signer::{SignedUrlOptions, Signer};
use object_store::ClientOptions;

use super::classify::{Described, Facts};
use super::{ObjectBackend, ObjectStoreLease, Op, StoreOptions};
use crate::probe::DeleteProbe;
use crate::{StoreError, Version};

/// What a conditional DELETE needs, which `object_store` has no API for:
/// the concrete store (its credentials, and for S3 its signer, region,
/// endpoint and addressing style), where its objects live, and an HTTP
/// client with the store's timeouts to send it.
#[derive(Clone)]
pub(super) struct ConditionalDelete {
    how: How,
    client: HttpClient,
}

/// How each service authorises and addresses the request.
#[derive(Clone)]
enum How {
    /// Presigned by the store, `If-Match` among the signed headers.
    #[cfg(feature = "aws")]
    S3(AmazonS3),
    /// SharedKey (or bearer, or SAS) through [`AzureAuthorizer`].
    #[cfg(feature = "azure")]
    Azure {
        store: MicrosoftAzure,
        account: String,
        /// `<account URL>/<container>`, without a trailing `/`.
        container_url: url::Url,
    },
    /// The store's bearer token, on the XML API object_store uses.
    #[cfg(feature = "gcp")]
    Gcs {
        store: GoogleCloudStorage,
        /// `<base URL>/<percent-encoded bucket>`.
        bucket_url: String,
    },
}

/// The `tracing` target of this module's lines: the adapter's, which
/// [`ObjectStoreLease::probe_conditional_delete`] documents, so that a
/// filter or log pipeline keyed on it sees the conditional delete's lines
/// with the rest of the adapter's.
const TRACING_TARGET: &str = "coordinator_store::object";

/// How long a presigned conditional DELETE stays valid. It never leaves the
/// process and is sent at once, so this only has to absorb clock skew
/// between this host and the server: 15 minutes is the skew S3 tolerates
/// for the header-signed requests every other call of this adapter makes,
/// so a host whose other calls work is not refused here.
#[cfg(feature = "aws")]
const PRESIGNED_DELETE_VALIDITY: Duration = Duration::from_secs(15 * 60);

/// How much of an error response's body is kept for classifying it (S3,
/// Azure and GCS error documents are a few hundred bytes).
const ERROR_BODY_LIMIT: usize = 4096;

impl ObjectStoreLease {
    /// Checks that `backend` is this store's and that `given` displays as
    /// the store this one wraps (same service, bucket or container, and
    /// not a wrapper such as a `PrefixStore`), then keeps `how` with an
    /// HTTP client built from `client_options`.
    fn with_conditional_delete(
        mut self,
        backend: ObjectBackend,
        given: String,
        how: How,
        client_options: &ClientOptions,
    ) -> Result<Self, StoreError> {
        let misconfigured = |message: String| StoreError::Misconfigured {
            backend: self.name(),
            message,
        };
        if self.backend != backend {
            return Err(misconfigured(format!(
                "conditional deletes through {given} need a store of backend `{backend}`, but {} \
                 is a {} store; leave them off (delete_if_version is then NotSupported)",
                self.location, self.backend
            )));
        }
        // A different bucket, or a wrapper around the store, would make the
        // DELETE name another object than this store's other calls.
        let wrapped = self.store.to_string();
        if wrapped != given {
            return Err(misconfigured(format!(
                "the store given for conditional deletes ({given}) is not the store {} wraps \
                 ({wrapped}); pass a clone of the very store given to ObjectStoreLease::new",
                self.location
            )));
        }
        let client = ReqwestConnector::default()
            .connect(client_options)
            .map_err(|e| {
                misconfigured(format!(
                    "could not build the HTTP client for conditional deletes on {}: {e}; check \
                     the client options (proxy, certificates)",
                    self.location
                ))
            })?;
        self.deleter = Some(ConditionalDelete { how, client });
        Ok(self)
    }

    /// Gives an S3 store the means to send conditional deletes: `s3` is the
    /// [`AmazonS3`] this store wraps (a clone of it), `client_options` the
    /// client options it was built with ([`StoreOptions::client_options`],
    /// plus plain HTTP where the endpoint is `http://`).
    ///
    /// `object_store` has no conditional delete, so each
    /// [`delete_if_version`](crate::LeaseStore::delete_if_version) is a
    /// `DELETE` presigned by `s3`, with `If-Match: <etag>` among its signed
    /// headers, sent through `object_store`'s HTTP client abstraction with a
    /// client built from `client_options` (a connection pool of its own),
    /// and retried within this store's [`StoreOptions`] like every other
    /// call.
    ///
    /// This does not turn
    /// [`Capabilities::conditional_delete`](crate::Capabilities::conditional_delete)
    /// on: some S3-compatible servers (MinIO) accept `If-Match` on DELETE and
    /// delete anyway. Call
    /// [`probe_conditional_delete`](Self::probe_conditional_delete) next, as
    /// [`open`](crate::open) does.
    ///
    /// # Errors
    ///
    /// [`StoreError::Misconfigured`] if this store's backend is not
    /// [`ObjectBackend::S3`]; if `s3` is visibly not the store this one
    /// wraps (another bucket, or the wrapped store is a wrapper such as a
    /// `PrefixStore`: the signed DELETE would name another object than the
    /// other calls do; the check compares the two stores' names, so it
    /// cannot tell two endpoints apart, but then the probe's delete naming
    /// the right ETag is refused and conditional delete stays off); or if
    /// no HTTP client can be built from `client_options`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use coordinator_store::{LeaseStore, ObjectBackend, ObjectStoreLease, StoreOptions};
    /// use object_store::aws::AmazonS3Builder;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let options = StoreOptions::default();
    /// let client_options = options.client_options();
    /// let s3 = AmazonS3Builder::new()
    ///     .with_bucket_name("my-bucket")
    ///     .with_region("eu-west-1")
    ///     .with_access_key_id("AKIDEXAMPLE")
    ///     .with_secret_access_key("secret")
    ///     .with_client_options(client_options.clone())
    ///     .with_retry(options.retry_config())
    ///     .build()?;
    /// let store = ObjectStoreLease::new(
    ///     Arc::new(s3.clone()),
    ///     ObjectBackend::S3,
    ///     "my-bucket",
    ///     "s3://my-bucket/prod",
    ///     "prod",
    ///     options,
    /// )?
    /// .with_s3_conditional_delete(s3, &client_options)?;
    /// // Off until `probe_conditional_delete` has seen the server honour it.
    /// assert!(!store.capabilities().conditional_delete);
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "aws")]
    #[cfg_attr(docsrs, doc(cfg(feature = "aws")))]
    pub fn with_s3_conditional_delete(
        self,
        s3: AmazonS3,
        client_options: &ClientOptions,
    ) -> Result<Self, StoreError> {
        let given = s3.to_string();
        self.with_conditional_delete(ObjectBackend::S3, given, How::S3(s3), client_options)
    }

    /// Gives an Azure store the means to send conditional deletes
    /// (`Delete Blob` with `If-Match: <etag>`): `azure` is the
    /// [`MicrosoftAzure`] this store wraps (a clone of it), `account` its
    /// storage account, `account_url` the URL its containers live under
    /// (`https://<account>.blob.core.windows.net`; for Azurite
    /// `http://127.0.0.1:10000/devstoreaccount1`, the account in the path),
    /// `client_options` the client options it was built with.
    ///
    /// Each request is authorised by [`AzureAuthorizer`] with the store's
    /// own credential (a SharedKey signature, which covers `If-Match`; a
    /// bearer token; or SAS query pairs), sent and retried as for
    /// [`with_s3_conditional_delete`](Self::with_s3_conditional_delete).
    /// Nothing is assumed: call
    /// [`probe_conditional_delete`](Self::probe_conditional_delete) next,
    /// as [`open`](crate::open) does.
    ///
    /// # Errors
    ///
    /// [`StoreError::Misconfigured`] if this store's backend is not
    /// [`ObjectBackend::Azure`], if `azure` is visibly not the store this
    /// one wraps or belongs to another account, if `account_url` cannot
    /// hold a path, or if no HTTP client can be built from
    /// `client_options`.
    #[cfg(feature = "azure")]
    #[cfg_attr(docsrs, doc(cfg(feature = "azure")))]
    pub fn with_azure_conditional_delete(
        self,
        azure: MicrosoftAzure,
        account: &str,
        account_url: url::Url,
        client_options: &ClientOptions,
    ) -> Result<Self, StoreError> {
        let given = azure.to_string();
        // `MicrosoftAzure { account: <account>, container: <container> }`
        if !given.contains(&format!("account: {account},")) {
            return Err(StoreError::Misconfigured {
                backend: self.name(),
                message: format!(
                    "the account `{account}` given for conditional deletes is not the account of \
                     {given}; pass the account the store was built with"
                ),
            });
        }
        let mut container_url = account_url.clone();
        match container_url.path_segments_mut() {
            Ok(mut segments) => {
                segments.pop_if_empty().push(&self.bucket);
            }
            Err(()) => {
                return Err(StoreError::Misconfigured {
                    backend: self.name(),
                    message: format!(
                        "the account URL `{account_url}` for conditional deletes cannot hold a \
                         path; give an http:// or https:// URL"
                    ),
                })
            }
        }
        let how = How::Azure {
            store: azure,
            account: account.to_owned(),
            container_url,
        };
        self.with_conditional_delete(ObjectBackend::Azure, given, how, client_options)
    }

    /// Gives a GCS store the means to send conditional deletes (an XML-API
    /// `DELETE` with `x-goog-if-generation-match: <generation>`): `gcs` is
    /// the [`GoogleCloudStorage`] this store wraps (a clone of it),
    /// `base_url` the base URL it was built with
    /// (`https://storage.googleapis.com` unless an emulator's),
    /// `client_options` the client options it was built with.
    ///
    /// Each request carries the store's own bearer token, as `object_store`
    /// sends its own GCS requests, and is sent and retried as for
    /// [`with_s3_conditional_delete`](Self::with_s3_conditional_delete).
    /// The generation comes from the version: a version from a GCS listing
    /// has none, and its conditional delete is a
    /// [`StoreError::Conflict`] without a request, as its compare-and-swap
    /// is. Nothing is assumed: call
    /// [`probe_conditional_delete`](Self::probe_conditional_delete) next,
    /// as [`open`](crate::open) does.
    ///
    /// # Errors
    ///
    /// [`StoreError::Misconfigured`] if this store's backend is not
    /// [`ObjectBackend::Gcs`], if `gcs` is visibly not the store this one
    /// wraps, or if no HTTP client can be built from `client_options`.
    #[cfg(feature = "gcp")]
    #[cfg_attr(docsrs, doc(cfg(feature = "gcp")))]
    pub fn with_gcs_conditional_delete(
        self,
        gcs: GoogleCloudStorage,
        base_url: &str,
        client_options: &ClientOptions,
    ) -> Result<Self, StoreError> {
        let given = gcs.to_string();
        let bucket_url = format!(
            "{}/{}",
            base_url.trim_end_matches('/'),
            percent_encode_all(&self.bucket)
        );
        let how = How::Gcs {
            store: gcs,
            bucket_url,
        };
        self.with_conditional_delete(ObjectBackend::Gcs, given, how, client_options)
    }

    /// Checks whether the server honours a conditional DELETE, and turns
    /// [`Capabilities::conditional_delete`](crate::Capabilities::conditional_delete)
    /// on if it does, off if not; returns the capability.
    /// [`open`](crate::open) calls it.
    ///
    /// On a scratch object `<probe_prefix>/<random>-delete` it makes five
    /// requests: create; a conditional delete naming a wrong version (ETag
    /// on S3 and Azure, generation on GCS), which must be refused; a get,
    /// which must find the object unchanged; a conditional delete naming
    /// its version, which must succeed; a get, which must find nothing. If
    /// the object may be left (the probe stopped early), a plain delete
    /// removes it.
    ///
    /// A server that deletes on the wrong version (MinIO ignores `If-Match`
    /// on DELETE, fake-gcs-server ignores `x-goog-if-generation-match`),
    /// refuses the right one, answers 501 or 400, or fails on the way
    /// leaves the capability off, with a `tracing` line (target
    /// `coordinator_store::object`) saying why. It never fails: a store
    /// that worked without conditional deletes keeps working, with
    /// [`delete_if_version`](crate::LeaseStore::delete_if_version) returning
    /// [`StoreError::NotSupported`] as before. Without the means
    /// ([`with_s3_conditional_delete`](Self::with_s3_conditional_delete),
    /// `with_azure_conditional_delete`, `with_gcs_conditional_delete`) it
    /// makes no request and returns false.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future leaves the capability as it was and may leave
    /// the small scratch object behind.
    pub async fn probe_conditional_delete(&mut self, probe_prefix: &str) -> bool {
        if self.deleter.is_none() {
            tracing::debug!(
                target: TRACING_TARGET,
                backend = self.name(),
                location = self.location.as_str(),
                "conditional delete off: this store has no means to send one"
            );
            self.conditional_delete = false;
            return false;
        }
        let this: &Self = self;
        let outcome = crate::probe::conditional_delete(
            this,
            probe_prefix,
            |written| this.wrong_version(written),
            |key, version| async move { this.send_delete_if_version(&key, &version).await },
        )
        .await;
        let (backend, location) = (self.name(), self.location.as_str());
        let on = match outcome {
            DeleteProbe::Honoured => {
                tracing::info!(
                    target: TRACING_TARGET,
                    backend,
                    location,
                    "conditional delete on: the server refused a DELETE naming a wrong version \
                     and honoured one naming the right one"
                );
                true
            }
            DeleteProbe::Unsupported(reason) => {
                tracing::info!(
                    target: TRACING_TARGET,
                    backend,
                    location,
                    reason = reason.as_str(),
                    "conditional delete off: the server does not support a conditional DELETE; \
                     callers fall back to tombstones"
                );
                false
            }
            DeleteProbe::Ignored(reason) => {
                tracing::warn!(
                    target: TRACING_TARGET,
                    backend,
                    location,
                    reason = reason.as_str(),
                    "conditional delete off: the server does not honour the condition of a \
                     DELETE; callers fall back to tombstones"
                );
                false
            }
            DeleteProbe::Failed(error) => {
                tracing::warn!(
                    target: TRACING_TARGET,
                    backend,
                    location,
                    error = %error,
                    "conditional delete off: its probe failed; callers fall back to tombstones \
                     (reopen the store to probe again)"
                );
                false
            }
        };
        self.conditional_delete = on;
        on
    }

    /// A version of this backend's shape that is not `written`: a random
    /// MD5-shaped ETag, or on GCS generation 1 (generations are
    /// microsecond timestamps) with `written`'s ETag.
    fn wrong_version(&self, written: &Version) -> Version {
        if self.backend.uses_generation() {
            let e_tag = self.e_tag_of(written).unwrap_or_default();
            return Version::new(format!("1|{e_tag}"));
        }
        let mut wrong = Version::new(format!("\"{}\"", crate::random::hex128()));
        if &wrong == written {
            wrong = Version::new(format!("\"{}\"", crate::random::hex128()));
        }
        wrong
    }
}

impl ObjectStoreLease {
    /// What a conditional DELETE names: the ETag (S3, Azure) or the
    /// generation (GCS) of `expected`, as a header value; `None` if the
    /// version has none that can be sent.
    fn delete_condition(&self, expected: &Version) -> Option<HeaderValue> {
        let raw = if self.backend.uses_generation() {
            self.update_version(expected)?.version?
        } else {
            self.e_tag_of(expected)?.to_owned()
        };
        HeaderValue::from_str(&raw).ok()
    }
}

/// `text` with every byte but ASCII letters and digits percent-encoded, as
/// `object_store` encodes GCS bucket and object names.
#[cfg(feature = "gcp")]
fn percent_encode_all(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The outcome of one attempt of a conditional DELETE.
enum Attempt {
    /// The server answered.
    Answered {
        status: u16,
        /// The status's reason phrase (`Precondition Failed`).
        reason: &'static str,
        /// The URL without its query (which holds the signature).
        endpoint: String,
        /// The start of the body of an error answer.
        body: String,
    },
    /// Nothing reached the server (signing failed, no connection was made,
    /// the attempt's deadline passed before sending): safe to retry.
    NotSent(DeleteError),
    /// The request went out and its answer was lost: it may have been
    /// applied.
    Lost(DeleteError),
    /// The request could not be built.
    Invalid(DeleteError),
}

/// Why a conditional DELETE failed, for the source of a [`StoreError`].
/// Never holds a URL's query: on S3 it carries the signature (and any
/// session token), on Azure a SAS token's.
#[derive(Debug, thiserror::Error)]
enum DeleteError {
    /// Signing or authorising failed (the credentials could not be
    /// fetched, …).
    #[error("could not sign the conditional DELETE: {0}")]
    Sign(#[source] object_store::Error),
    /// The URL is not a valid request URI.
    #[error("DELETE {endpoint}: the URL is not a valid request URI: {reason}")]
    Uri { endpoint: String, reason: String },
    /// The request failed on the way (connecting, sending, reading).
    #[error("DELETE {endpoint}: {source}")]
    Http {
        endpoint: String,
        #[source]
        source: HttpError,
    },
    /// The attempt's deadline passed.
    #[error("DELETE {endpoint}: no answer within {timeout:?} (request_timeout)")]
    TimedOut { endpoint: String, timeout: Duration },
    /// The server answered with an error status. `status code: ` is the
    /// marker [`Facts::of`] finds the status by, as in `object_store`'s
    /// messages.
    #[error("DELETE {endpoint}: status code: {status} {reason}: {code}: {message}")]
    Status {
        endpoint: String,
        status: u16,
        reason: &'static str,
        code: String,
        message: String,
    },
}

impl ObjectStoreLease {
    /// The conditional delete, whether or not the probe has proven that the
    /// server honours it: a `DELETE` with `If-Match: <etag>` (S3, Azure) or
    /// `x-goog-if-generation-match: <generation>` (GCS), retried like
    /// `object_store` retries a conditional write (see [`StoreOptions`]),
    /// within the same bound.
    pub(super) async fn send_delete_if_version(
        &self,
        key: &str,
        expected: &Version,
    ) -> Result<(), StoreError> {
        let op = Op::DeleteIfVersion;
        let Some(deleter) = &self.deleter else {
            return Err(StoreError::NotSupported {
                op: op.as_str(),
                backend: self.name(),
            });
        };
        let path = self.path(op, key)?;
        // A GCS listing's version: one HEAD for the generation.
        let Some(expected) = self.with_generation(op, key, &path, expected).await? else {
            return Err(self.conflict(key));
        };
        let Some(condition) = self.delete_condition(&expected) else {
            // A version with no ETag (no generation on GCS) that can be
            // sent cannot be the object's current one as far as the
            // condition can tell, as for compare-and-swap.
            tracing::debug!(
                target: TRACING_TARGET,key,
                backend = self.name(),
                version = expected.as_str(),
                "conditional delete with a version that cannot identify an object here"
            );
            return Err(self.conflict(key));
        };
        let started = Instant::now();
        let mut attempt = 0usize;
        loop {
            let outcome = self.delete_attempt(deleter, &path, &condition).await;
            let retryable = match &outcome {
                Attempt::NotSent(_) => true,
                // As `object_store` retries, except 501: a server that does
                // not implement the request will not on a retry either.
                Attempt::Answered { status, .. } => {
                    *status == 429 || (*status != 501 && (500..=599).contains(status))
                }
                Attempt::Lost(_) | Attempt::Invalid(_) => false,
            };
            if retryable
                && attempt < self.options.max_retries
                && started.elapsed() < self.options.retry_timeout
            {
                attempt += 1;
                tracing::debug!(
                    target: TRACING_TARGET,key,
                    backend = self.name(),
                    op = op.as_str(),
                    attempt,
                    "conditional delete not applied; retrying"
                );
                tokio::time::sleep(retry_backoff(attempt)).await;
                continue;
            }
            return self.delete_outcome(key, outcome);
        }
    }

    /// One attempt, cut off after `request_timeout` (signing included, so
    /// a slow credential refresh cannot stretch the bound).
    async fn delete_attempt(
        &self,
        deleter: &ConditionalDelete,
        path: &Path,
        condition: &HeaderValue,
    ) -> Attempt {
        let mut sent = false;
        let mut endpoint = String::new();
        let timeout = self.options.request_timeout;
        let result = tokio::time::timeout(
            timeout,
            delete_once(deleter, path, condition, &mut sent, &mut endpoint),
        )
        .await;
        match result {
            Ok(attempt) => attempt,
            Err(_elapsed) => {
                let err = DeleteError::TimedOut { endpoint, timeout };
                if sent {
                    Attempt::Lost(err)
                } else {
                    Attempt::NotSent(err)
                }
            }
        }
    }

    /// Maps the last attempt's outcome, the way [`ObjectStoreLease::error`]
    /// maps `object_store`'s errors.
    fn delete_outcome(&self, key: &str, outcome: Attempt) -> Result<(), StoreError> {
        let op = Op::DeleteIfVersion;
        let backend = self.name();
        let described = |facts: Facts, err: DeleteError| -> crate::BoxError {
            Box::new(Described {
                message: facts.message,
                inner: Box::new(err),
            })
        };
        match outcome {
            Attempt::Answered { status, .. } if (200..300).contains(&status) => Ok(()),
            Attempt::Answered {
                status,
                reason,
                endpoint,
                body,
            } => {
                let err = DeleteError::Status {
                    endpoint,
                    status,
                    reason,
                    code: xml_element(&body, "Code").unwrap_or_default().to_owned(),
                    message: xml_element(&body, "Message").unwrap_or_default().to_owned(),
                };
                let mut facts = Facts::of(&err);
                facts.status = Some(status);
                if let Some(misconfigured) = self.misconfiguration(op, key, &facts, false) {
                    return Err(misconfigured);
                }
                match status {
                    // 412: another ETag is there. 404 (`NoSuchKey`; a
                    // missing bucket was caught above): no object, which the
                    // contract reports as a conflict, like a compare-and-swap
                    // on a missing key. 409 (`ConditionalRequestConflict`):
                    // another write or delete of the key completed first, so
                    // the version we held is not current any more; a retry
                    // could only be refused.
                    404 | 409 | 412 => Err(self.conflict(key)),
                    // The server does not implement conditional deletes;
                    // the caller (the probe) turns them off.
                    501 => Err(StoreError::NotSupported {
                        op: op.as_str(),
                        backend,
                    }),
                    _ => Err(self.classify(op, key, &facts, Box::new(err))),
                }
            }
            Attempt::Lost(err) => Err(StoreError::Ambiguous {
                op: op.as_str(),
                key: key.to_owned(),
                backend,
                source: described(Facts::of(&err), err),
            }),
            Attempt::NotSent(err) => {
                let facts = Facts::of(&err);
                if let Some(misconfigured) = self.misconfiguration(op, key, &facts, false) {
                    return Err(misconfigured);
                }
                Err(StoreError::Unavailable {
                    key: key.to_owned(),
                    backend,
                    source: described(facts, err),
                })
            }
            Attempt::Invalid(err) => Err(StoreError::Backend {
                op: op.as_str(),
                key: key.to_owned(),
                backend,
                source: Box::new(err),
            }),
        }
    }
}

/// One conditional DELETE: authorise it, send it, read the status (and
/// the start of an error body). Sets `sent` just before the request goes
/// out and `endpoint` once the URL is known, for the caller's deadline.
async fn delete_once(
    deleter: &ConditionalDelete,
    path: &Path,
    condition: &HeaderValue,
    sent: &mut bool,
    endpoint: &mut String,
) -> Attempt {
    let request = match deleter.request(path, condition, endpoint).await {
        Ok(request) => request,
        Err(attempt) => return attempt,
    };
    *sent = true;
    let response = match deleter.client.execute(request).await {
        Ok(response) => response,
        Err(source) => {
            let connect = source.kind() == HttpErrorKind::Connect;
            let err = DeleteError::Http {
                endpoint: endpoint.clone(),
                source,
            };
            return if connect {
                Attempt::NotSent(err)
            } else {
                Attempt::Lost(err)
            };
        }
    };
    let status = response.status().as_u16();
    let reason = response.status().canonical_reason().unwrap_or_default();
    let body = if response.status().is_success() {
        String::new()
    } else {
        error_body(response.into_body()).await
    };
    Attempt::Answered {
        status,
        reason,
        endpoint: endpoint.clone(),
        body,
    }
}

impl ConditionalDelete {
    /// The authorised request for `path` with `condition` (the ETag for
    /// `If-Match`, or GCS's generation). Sets `endpoint` to its URL
    /// without the query (which may hold a signature or a SAS token).
    async fn request(
        &self,
        path: &Path,
        condition: &HeaderValue,
        endpoint: &mut String,
    ) -> Result<HttpRequest, Attempt> {
        match &self.how {
            #[cfg(feature = "aws")]
            How::S3(signer) => {
                // If-Match is signed, so the signature binds the
                // precondition: the request is only valid with the very
                // ETag we mean.
                let options =
                    SignedUrlOptions::new().with_signed_header(if_match(), condition.clone());
                let url = signer
                    .signed_url_opts(Method::DELETE, path, PRESIGNED_DELETE_VALIDITY, &options)
                    .await
                    .map_err(|e| Attempt::NotSent(DeleteError::Sign(e)))?;
                let mut request = delete_request(&url, endpoint)?;
                request.headers_mut().insert(if_match(), condition.clone());
                Ok(request)
            }
            #[cfg(feature = "azure")]
            How::Azure {
                store,
                account,
                container_url,
            } => {
                // As object_store addresses a blob: each part of the path a
                // percent-encoded segment under the container.
                let mut url = container_url.clone();
                if let Ok(mut segments) = url.path_segments_mut() {
                    segments.extend(path.parts());
                }
                let mut request = delete_request(&url, endpoint)?;
                request.headers_mut().insert(if_match(), condition.clone());
                let credential = store
                    .credentials()
                    .get_credential()
                    .await
                    .map_err(|e| Attempt::NotSent(DeleteError::Sign(e)))?;
                // Adds x-ms-date and x-ms-version, then the SharedKey
                // signature (which covers If-Match), the bearer token or
                // the SAS query pairs.
                AzureAuthorizer::new(&credential, account)
                    .try_authorize(&mut request)
                    .map_err(|e| Attempt::NotSent(DeleteError::Sign(e)))?;
                Ok(request)
            }
            #[cfg(feature = "gcp")]
            How::Gcs { store, bucket_url } => {
                // The XML API, as object_store's own GCS requests.
                let raw = format!("{bucket_url}/{}", percent_encode_all(path.as_ref()));
                let url = url::Url::parse(&raw).map_err(|e| {
                    Attempt::Invalid(DeleteError::Uri {
                        endpoint: raw.clone(),
                        reason: e.to_string(),
                    })
                })?;
                let mut request = delete_request(&url, endpoint)?;
                request.headers_mut().insert(
                    HeaderName::from_static("x-goog-if-generation-match"),
                    condition.clone(),
                );
                let credential = store
                    .credentials()
                    .get_credential()
                    .await
                    .map_err(|e| Attempt::NotSent(DeleteError::Sign(e)))?;
                let mut bearer = HeaderValue::from_str(&format!("Bearer {}", credential.bearer))
                    .map_err(|e| {
                        Attempt::Invalid(DeleteError::Uri {
                            endpoint: endpoint.clone(),
                            reason: format!("the bearer token is not a valid header value: {e}"),
                        })
                    })?;
                bearer.set_sensitive(true);
                request
                    .headers_mut()
                    .insert(HeaderName::from_static("authorization"), bearer);
                Ok(request)
            }
        }
    }
}

/// A bodiless DELETE of `url`; sets `endpoint` to `url` without its query.
fn delete_request(url: &url::Url, endpoint: &mut String) -> Result<HttpRequest, Attempt> {
    let mut bare = url.clone();
    bare.set_query(None);
    *endpoint = bare.to_string();
    let mut request = HttpRequest::new(HttpRequestBody::empty());
    *request.method_mut() = Method::DELETE;
    *request.uri_mut() = url.as_str().parse().map_err(|e| {
        Attempt::Invalid(DeleteError::Uri {
            endpoint: endpoint.clone(),
            reason: format!("{e}"),
        })
    })?;
    Ok(request)
}

/// The `If-Match` header name (a function, not a `const`: a `HeaderName`
/// const trips clippy's interior-mutability lints).
#[cfg(any(feature = "aws", feature = "azure"))]
fn if_match() -> HeaderName {
    HeaderName::from_static("if-match")
}

/// The start of an error answer's body, lossily decoded. A body that fails
/// half-way keeps what arrived: the status alone decides the outcome.
async fn error_body(body: object_store::client::HttpResponseBody) -> String {
    let mut stream = body.bytes_stream();
    let mut kept = Vec::new();
    while let Some(Ok(chunk)) = stream.next().await {
        let room = ERROR_BODY_LIMIT.saturating_sub(kept.len());
        kept.extend_from_slice(chunk.get(..room.min(chunk.len())).unwrap_or_default());
        if kept.len() >= ERROR_BODY_LIMIT {
            break;
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

/// The text of the first `<name>…</name>` element of an S3 error document.
fn xml_element<'a>(body: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = body.find(&open)? + open.len();
    let rest = body.get(start..)?;
    Some(rest.get(..rest.find(&close)?)?.trim())
}

/// The pause before retry `attempt` (1, 2, …) of a conditional delete:
/// 100 ms doubling, with up to 50% jitter, never more than
/// [`StoreOptions::MAX_BACKOFF`] (the policy of [`StoreOptions::retry_config`]).
fn retry_backoff(attempt: usize) -> Duration {
    crate::random::backoff(
        Duration::from_millis(100),
        Duration::from_millis(1_600),
        attempt,
    )
    .min(StoreOptions::MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_code_and_message_of_s3_errors() {
        let body = "<?xml version=\"1.0\"?><Error><Code>PreconditionFailed</Code>\
                    <Message> At least one of the pre-conditions did not hold </Message></Error>";
        assert_eq!(xml_element(body, "Code"), Some("PreconditionFailed"));
        assert_eq!(
            xml_element(body, "Message"),
            Some("At least one of the pre-conditions did not hold")
        );
        assert_eq!(xml_element(body, "Key"), None);
        assert_eq!(xml_element("<Code>unterminated", "Code"), None);
        assert_eq!(xml_element("", "Code"), None);
    }

    #[test]
    fn conditional_delete_backoff_stays_within_the_documented_pause() {
        assert!(retry_backoff(1) >= Duration::from_millis(100));
        for attempt in 1..64 {
            assert!(
                retry_backoff(attempt) <= StoreOptions::MAX_BACKOFF,
                "{attempt}"
            );
        }
    }
}
