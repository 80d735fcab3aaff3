//! How a failure of [`ObjectStoreLease`] becomes a [`StoreError`].
//!
//! `object_store` does not export the type that carries the HTTP status, so
//! the status and the service's error code are read from the messages of
//! an error's source chain. Both ways the adapter talks to the service
//! (`object_store`'s calls, and S3's conditional DELETE, which bypasses
//! them) need the same reading and the same order of checks (a
//! misconfiguration first, because a missing bucket or refused credentials
//! come back as the 404 or 403 a precondition would), so it lives here once.

use std::fmt;

#[cfg(any(feature = "aws", feature = "azure", feature = "gcp"))]
use object_store::client::{HttpError, HttpErrorKind};

use super::{ObjectBackend, ObjectStoreLease, Op};
use crate::StoreError;

impl ObjectStoreLease {
    /// Maps an `object_store` error of `op` on `key` to a [`StoreError`].
    ///
    /// Callers handle first the outcomes that are not errors for their
    /// operation (a missing object on `get`, `NotModified` on
    /// `get_if_changed`).
    pub(super) fn error(&self, op: Op, key: &str, err: object_store::Error) -> StoreError {
        let facts = Facts::of(&err);
        let refused = matches!(
            err,
            object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. }
        );
        if let Some(misconfigured) = self.misconfiguration(op, key, &facts, refused) {
            return misconfigured;
        }

        match err {
            object_store::Error::Precondition { .. }
            | object_store::Error::AlreadyExists { .. }
                if op == Op::Create =>
            {
                return self.already_exists(key);
            }
            object_store::Error::NotModified { .. } if op == Op::Create => {
                return self.already_exists(key);
            }
            object_store::Error::Precondition { .. }
            | object_store::Error::AlreadyExists { .. }
            | object_store::Error::NotFound { .. }
                if op == Op::CompareAndSwap =>
            {
                // If-Match on a missing key, or another version there.
                return self.conflict(key);
            }
            object_store::Error::NotFound { .. } => {
                return StoreError::NotFound {
                    key: key.to_owned(),
                    backend: self.name(),
                };
            }
            object_store::Error::NotImplemented { .. }
            | object_store::Error::NotSupported { .. } => {
                return StoreError::NotSupported {
                    op: op.as_str(),
                    backend: self.name(),
                };
            }
            _ => {}
        }
        let source = Box::new(Described {
            message: facts.message.clone(),
            inner: Box::new(err),
        });
        self.classify(op, key, &facts, source)
    }

    /// The [`StoreError::Misconfigured`] a failure points to, if any: a
    /// missing bucket, refused credentials (`refused`, or a status or code
    /// that says so), a wrong region. Checked before anything else, because
    /// these come back as a 404 or 403 that would otherwise read as a
    /// missing object or a refused precondition.
    pub(super) fn misconfiguration(
        &self,
        op: Op,
        key: &str,
        facts: &Facts,
        refused: bool,
    ) -> Option<StoreError> {
        let backend = self.name();
        if facts.missing_bucket() {
            return Some(StoreError::Misconfigured {
                backend,
                message: format!(
                    "the bucket `{}` does not exist ({} on `{key}` at {}); create it, or fix the \
                     bucket name in the store URL",
                    self.bucket,
                    op.as_str(),
                    self.location
                ),
            });
        }
        if refused || facts.credentials_refused() {
            return Some(StoreError::Misconfigured {
                backend,
                message: format!(
                    "the credentials were refused for bucket `{}` ({} on `{key}` at {}): {}; \
                     check {} and that they may get, put, list and delete objects under the prefix",
                    self.bucket,
                    op.as_str(),
                    self.location,
                    facts.message,
                    credential_hint(self.backend)
                ),
            });
        }
        if facts.wrong_region() {
            return Some(StoreError::Misconfigured {
                backend,
                message: format!(
                    "the bucket `{}` answered with a redirect or a region error ({} on `{key}` at \
                     {}): {}; set the bucket's region with `?region=` in the URL or AWS_REGION",
                    self.bucket,
                    op.as_str(),
                    self.location,
                    facts.message
                ),
            });
        }
        None
    }

    /// Maps a failure that is neither a misconfiguration nor an outcome of
    /// the operation's precondition: throttling, a transport failure or a
    /// server error, each [`StoreError::Ambiguous`] where a write may have
    /// landed; anything else is [`StoreError::Backend`].
    pub(super) fn classify(
        &self,
        op: Op,
        key: &str,
        facts: &Facts,
        source: crate::BoxError,
    ) -> StoreError {
        let backend = self.name();
        if facts.throttled() {
            return StoreError::Throttled {
                key: key.to_owned(),
                backend,
                retry_after: None,
            };
        }
        // The store acknowledged a write without a version (object_store
        // reads the ETag header after the write is done): it landed, but
        // cannot be compare-and-swapped on.
        if op.writes() && facts.has("ETag Header missing") {
            return StoreError::Ambiguous {
                op: op.as_str(),
                key: key.to_owned(),
                backend,
                source: format!(
                    "{}; the write was applied, but a store that returns no ETag cannot do \
                     compare-and-swap",
                    facts.message
                )
                .into(),
            };
        }
        let ambiguous = |source| StoreError::Ambiguous {
            op: op.as_str(),
            key: key.to_owned(),
            backend,
            source,
        };
        let unavailable = |source| StoreError::Unavailable {
            key: key.to_owned(),
            backend,
            source,
        };
        match (facts.transport, facts.status) {
            // The connection was never made: nothing was sent.
            (Some(Transport::Connect), _) => unavailable(source),
            // Sent (perhaps in part) and then lost: a write may have landed.
            (Some(_), _) | (None, Some(408)) if op.writes() => ambiguous(source),
            (Some(_), _) | (None, Some(408)) => unavailable(source),
            // The service refused before applying anything.
            (None, Some(503)) => unavailable(source),
            // The server does not implement the request: nothing was
            // applied, and a retry will not do better.
            (None, Some(501)) => StoreError::Backend {
                op: op.as_str(),
                key: key.to_owned(),
                backend,
                source,
            },
            // A server error may come after the write was applied.
            (None, Some(500..=599)) if op.writes() => ambiguous(source),
            (None, Some(500..=599)) => unavailable(source),
            _ => StoreError::Backend {
                op: op.as_str(),
                key: key.to_owned(),
                backend,
                source,
            },
        }
    }
}

/// How a request failed in transport (`object_store`'s `HttpErrorKind`,
/// which only its cloud backends have).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(
    not(any(feature = "aws", feature = "azure", feature = "gcp")),
    allow(
        dead_code,
        reason = "only the cloud backends' HTTP client fails in transport"
    )
)]
pub(super) enum Transport {
    /// No connection was made: nothing was sent.
    Connect,
    /// Sent, perhaps in part, and then lost.
    Lost,
}

/// What an error (from `object_store`, or of a conditional DELETE) tells,
/// found by walking its source chain.
///
/// `object_store` does not export the type that carries the HTTP status, so
/// the status and the service's error code are read from the messages of
/// the chain (`"… non-2xx status code: 503 Service Unavailable: <body>"`).
pub(super) struct Facts {
    /// The transport failure, if the request got no response.
    pub(super) transport: Option<Transport>,
    /// The HTTP status of the response, if any.
    pub(super) status: Option<u16>,
    /// Every message of the chain, joined (for searching: the messages
    /// repeat their sources').
    pub(super) text: String,
    /// The error's own message, which includes its sources' (for people).
    pub(super) message: String,
}

impl Facts {
    pub(super) fn of(err: &(dyn std::error::Error + 'static)) -> Self {
        #[cfg_attr(
            not(any(feature = "aws", feature = "azure", feature = "gcp")),
            allow(
                unused_mut,
                reason = "only the cloud backends' HTTP client fails in transport"
            )
        )]
        let mut transport = None;
        let mut messages = Vec::new();
        let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(e) = current {
            #[cfg(any(feature = "aws", feature = "azure", feature = "gcp"))]
            if transport.is_none() {
                if let Some(http) = e.downcast_ref::<HttpError>() {
                    transport = Some(match http.kind() {
                        HttpErrorKind::Connect => Transport::Connect,
                        _ => Transport::Lost,
                    });
                }
            }
            messages.push(e.to_string());
            current = e.source();
        }
        let text = messages.join(": ");
        let status = parse_status(&text);
        // The innermost cause ("Connection refused (os error 111)") is
        // often missing from the outer messages; say it.
        let mut message = err.to_string();
        if let Some(root) = messages.last() {
            if !message.contains(root.as_str()) {
                message = format!("{message} (cause: {root})");
            }
        }
        Self {
            transport,
            status,
            message,
            text,
        }
    }

    pub(super) fn has(&self, code: &str) -> bool {
        self.text.contains(code)
    }

    pub(super) fn missing_bucket(&self) -> bool {
        self.has("NoSuchBucket")
            || self.has("ContainerNotFound")
            || self.has("The specified bucket does not exist")
    }

    pub(super) fn credentials_refused(&self) -> bool {
        matches!(self.status, Some(401 | 403))
            || self.has("InvalidAccessKeyId")
            || self.has("SignatureDoesNotMatch")
            || self.has("AuthenticationFailed")
    }

    pub(super) fn wrong_region(&self) -> bool {
        self.has("incorrectly configured region")
            || self.has("PermanentRedirect")
            || self.has("AuthorizationHeaderMalformed")
            || self.status == Some(301)
    }

    pub(super) fn throttled(&self) -> bool {
        self.status == Some(429)
            || self.has("SlowDown")
            || self.has("TooManyRequests")
            || self.has("ServerBusy")
    }
}

/// An error with a message that names its root cause.
#[derive(Debug)]
pub(super) struct Described {
    pub(super) message: String,
    pub(super) inner: crate::BoxError,
}

impl fmt::Display for Described {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Described {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.inner.as_ref())
    }
}

/// The HTTP status in an `object_store` error message, if any.
fn parse_status(text: &str) -> Option<u16> {
    const MARKER: &str = "status code: ";
    let at = text.find(MARKER)? + MARKER.len();
    let digits = text.get(at..at + 3)?;
    digits.parse().ok()
}

/// True for S3's 409 `ConditionalRequestConflict`: another conditional write
/// on the key is in flight; the request was not applied and may be retried.
pub(super) fn is_conditional_request_conflict(err: &object_store::Error) -> bool {
    Facts::of(err).has("ConditionalRequestConflict")
}

/// Where a backend's credentials come from, for error messages.
fn credential_hint(backend: ObjectBackend) -> &'static str {
    match backend {
        ObjectBackend::S3 => {
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the role in use); without \
             s3:ListBucket, S3 answers a read of a missing object with 403"
        }
        ObjectBackend::Gcs => "GOOGLE_APPLICATION_CREDENTIALS / GOOGLE_SERVICE_ACCOUNT (or the workload identity in use)",
        ObjectBackend::Azure => "AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY (or the identity in use)",
        ObjectBackend::Memory => "the store's configuration",
    }
}
