//! S3's conditional delete: a `DELETE` with `If-Match: <etag>`, which
//! `object_store` has no API for.
//!
//! Every other call of [`ObjectStoreLease`] goes through `object_store`,
//! which signs, sends, times out and retries it. This one cannot, so the
//! module does that work itself: it presigns the DELETE with the concrete
//! [`AmazonS3`] (`If-Match` among the signed headers), sends it through
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
use object_store::aws::AmazonS3;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpRequestBody,
    ReqwestConnector,
};
use object_store::path::Path;
use object_store::signer::{HeaderName, HeaderValue, Method, SignedUrlOptions, Signer};
use object_store::ClientOptions;

use super::classify::{Described, Facts};
use super::{ObjectBackend, ObjectStoreLease, Op, StoreOptions};
use crate::probe::DeleteProbe;
use crate::{StoreError, Version};

/// What S3's conditional DELETE needs, which `object_store` has no API for:
/// the concrete store, to presign the request with its credentials, region,
/// endpoint and addressing style, and an HTTP client with the store's
/// timeouts to send it.
#[derive(Clone)]
pub(super) struct S3Delete {
    signer: AmazonS3,
    client: HttpClient,
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
const PRESIGNED_DELETE_VALIDITY: Duration = Duration::from_secs(15 * 60);

/// How much of an error response's body is kept for classifying it (S3
/// error documents are a few hundred bytes).
const ERROR_BODY_LIMIT: usize = 4096;

impl ObjectStoreLease {
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
    pub fn with_s3_conditional_delete(
        mut self,
        s3: AmazonS3,
        client_options: &ClientOptions,
    ) -> Result<Self, StoreError> {
        let misconfigured = |message: String| StoreError::Misconfigured {
            backend: self.name(),
            message,
        };
        if self.backend != ObjectBackend::S3 {
            return Err(misconfigured(format!(
                "conditional deletes through an AmazonS3 need an S3 store, but {} is a {} store; \
                 leave them off (delete_if_version is then NotSupported)",
                self.location, self.backend
            )));
        }
        // Both display as `AmazonS3(<bucket>)`: a different bucket, or a
        // wrapper around the store, would make the presigned DELETE name
        // another object than this store's other calls.
        let (wrapped, given) = (self.store.to_string(), s3.to_string());
        if wrapped != given {
            return Err(misconfigured(format!(
                "the AmazonS3 given for conditional deletes ({given}) is not the store {} wraps \
                 ({wrapped}); pass a clone of the very AmazonS3 given to ObjectStoreLease::new",
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
        self.s3_delete = Some(S3Delete { signer: s3, client });
        Ok(self)
    }

    /// Checks whether the server honours `If-Match` on DELETE, and turns
    /// [`Capabilities::conditional_delete`](crate::Capabilities::conditional_delete)
    /// on if it does, off if not; returns the capability.
    /// [`open`](crate::open) calls it.
    ///
    /// On a scratch object `<probe_prefix>/<random>-delete` it makes five
    /// requests: create; a conditional delete naming a wrong ETag, which must
    /// be refused; a get, which must find the object unchanged; a
    /// conditional delete naming its ETag, which must succeed; a get, which
    /// must find nothing. If the object may be left (the probe stopped
    /// early), a plain delete removes it.
    ///
    /// A server that deletes on the wrong ETag (MinIO ignores `If-Match` on
    /// DELETE), refuses the right one, answers 501 or 400, or fails on the
    /// way leaves the capability off, with a `tracing` line (target
    /// `coordinator_store::object`) saying why. It never fails: a store
    /// that worked without conditional deletes keeps working, with
    /// [`delete_if_version`](crate::LeaseStore::delete_if_version) returning
    /// [`StoreError::NotSupported`] as before. Without the means
    /// ([`with_s3_conditional_delete`](Self::with_s3_conditional_delete);
    /// any store but S3) it makes no request and returns false.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future leaves the capability as it was and may leave
    /// the small scratch object behind.
    pub async fn probe_conditional_delete(&mut self, probe_prefix: &str) -> bool {
        if self.s3_delete.is_none() {
            tracing::debug!(
                target: TRACING_TARGET,backend = self.name(),
                location = self.location.as_str(),
                "conditional delete off: this store has no means to send one"
            );
            self.conditional_delete = false;
            return false;
        }
        let this: &Self = self;
        let outcome =
            crate::probe::conditional_delete(this, probe_prefix, |key, version| async move {
                this.s3_delete_if_version(&key, &version).await
            })
            .await;
        let (backend, location) = (self.name(), self.location.as_str());
        let on = match outcome {
            DeleteProbe::Honoured => {
                tracing::info!(
                    target: TRACING_TARGET,backend,
                    location,
                    "conditional delete on: the server refused a DELETE with a wrong If-Match and \
                     honoured one with the right ETag"
                );
                true
            }
            DeleteProbe::Unsupported(reason) => {
                tracing::info!(
                    target: TRACING_TARGET,backend,
                    location,
                    reason = reason.as_str(),
                    "conditional delete off: the server does not support If-Match on DELETE; \
                     callers fall back to tombstones"
                );
                false
            }
            DeleteProbe::Ignored(reason) => {
                tracing::warn!(
                    target: TRACING_TARGET,backend,
                    location,
                    reason = reason.as_str(),
                    "conditional delete off: the server does not honour If-Match on DELETE; \
                     callers fall back to tombstones"
                );
                false
            }
            DeleteProbe::Failed(error) => {
                tracing::warn!(
                    target: TRACING_TARGET,backend,
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
}

/// The outcome of one attempt of S3's conditional DELETE.
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
    NotSent(S3DeleteError),
    /// The request went out and its answer was lost: it may have been
    /// applied.
    Lost(S3DeleteError),
    /// The request could not be built.
    Invalid(S3DeleteError),
}

/// Why S3's conditional DELETE failed, for the source of a [`StoreError`].
/// Never holds the presigned URL: its query carries the signature (and any
/// session token).
#[derive(Debug, thiserror::Error)]
enum S3DeleteError {
    /// Presigning failed (the credentials could not be fetched, …).
    #[error("could not sign the conditional DELETE: {0}")]
    Sign(#[source] object_store::Error),
    /// The presigned URL is not a valid request URI.
    #[error("DELETE {endpoint}: the signed URL is not a valid request URI: {reason}")]
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
    /// S3's conditional delete, whether or not the probe has proven that
    /// the server honours it: a presigned `DELETE` with `If-Match: <etag>`,
    /// retried like `object_store` retries a conditional write (see
    /// [`StoreOptions`]), within the same bound.
    pub(super) async fn s3_delete_if_version(
        &self,
        key: &str,
        expected: &Version,
    ) -> Result<(), StoreError> {
        let op = Op::DeleteIfVersion;
        let Some(s3) = &self.s3_delete else {
            return Err(StoreError::NotSupported {
                op: op.as_str(),
                backend: self.name(),
            });
        };
        let path = self.path(op, key)?;
        let Some(e_tag) = self
            .e_tag_of(expected)
            .and_then(|e_tag| HeaderValue::from_str(e_tag).ok())
        else {
            // A version with no ETag that can be sent cannot be the
            // object's current one as far as If-Match can tell, as for
            // compare-and-swap.
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
            let outcome = self.s3_delete_attempt(s3, &path, &e_tag).await;
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
            return self.s3_delete_outcome(key, outcome);
        }
    }

    /// One attempt, cut off after `request_timeout` (signing included, so
    /// a slow credential refresh cannot stretch the bound).
    async fn s3_delete_attempt(&self, s3: &S3Delete, path: &Path, e_tag: &HeaderValue) -> Attempt {
        let mut sent = false;
        let mut endpoint = String::new();
        let timeout = self.options.request_timeout;
        let result = tokio::time::timeout(
            timeout,
            s3_delete_once(s3, path, e_tag, &mut sent, &mut endpoint),
        )
        .await;
        match result {
            Ok(attempt) => attempt,
            Err(_elapsed) => {
                let err = S3DeleteError::TimedOut { endpoint, timeout };
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
    fn s3_delete_outcome(&self, key: &str, outcome: Attempt) -> Result<(), StoreError> {
        let op = Op::DeleteIfVersion;
        let backend = self.name();
        let described = |facts: Facts, err: S3DeleteError| -> crate::BoxError {
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
                let err = S3DeleteError::Status {
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

/// One conditional DELETE: presign it, send it, read the status (and the
/// start of an error body). Sets `sent` just before the request goes out
/// and `endpoint` once the URL is known, for the caller's deadline.
async fn s3_delete_once(
    s3: &S3Delete,
    path: &Path,
    e_tag: &HeaderValue,
    sent: &mut bool,
    endpoint: &mut String,
) -> Attempt {
    // If-Match is signed, so the signature binds the precondition: the
    // request is only valid with the very ETag we mean.
    let options = SignedUrlOptions::new().with_signed_header(if_match(), e_tag.clone());
    let url = match s3
        .signer
        .signed_url_opts(Method::DELETE, path, PRESIGNED_DELETE_VALIDITY, &options)
        .await
    {
        Ok(url) => url,
        Err(e) => return Attempt::NotSent(S3DeleteError::Sign(e)),
    };
    let mut bare = url.clone();
    bare.set_query(None);
    *endpoint = bare.to_string();
    let mut request = HttpRequest::new(HttpRequestBody::empty());
    *request.method_mut() = Method::DELETE;
    *request.uri_mut() = match url.as_str().parse() {
        Ok(uri) => uri,
        Err(e) => {
            return Attempt::Invalid(S3DeleteError::Uri {
                endpoint: endpoint.clone(),
                reason: format!("{e}"),
            })
        }
    };
    request.headers_mut().insert(if_match(), e_tag.clone());
    *sent = true;
    let response = match s3.client.execute(request).await {
        Ok(response) => response,
        Err(source) => {
            let connect = source.kind() == HttpErrorKind::Connect;
            let err = S3DeleteError::Http {
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

/// The `If-Match` header name (a function, not a `const`: a `HeaderName`
/// const trips clippy's interior-mutability lints).
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
