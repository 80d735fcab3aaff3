//! [`open`]: a [`LeaseStore`] from a URL, checked by the conditional-write
//! probe before it is handed out.
//!
//! | URL | store |
//! | --- | --- |
//! | `s3://bucket/prefix` | Amazon S3 ([`ObjectStoreLease`]) |
//! | `s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1` | an S3-compatible server (MinIO, R2, moto) |
//! | `gs://bucket/prefix` | Google Cloud Storage |
//! | `az://container/prefix` | Azure Blob Storage |
//! | `file:///abs/dir` | [`LocalDirStore`] (one machine only) |
//! | `memory://` | a fresh [`MemoryStore`] |
//!
//! Credentials come from each service's standard environment variables
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
//! `AWS_REGION`; `GOOGLE_APPLICATION_CREDENTIALS`;
//! `AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY`, …), never from
//! the URL.

// Built without a cloud feature, only `file://` and `memory://` open: the
// URL parts and options that only the cloud backends read are unused then.
#![cfg_attr(
    not(any(feature = "aws", feature = "azure", feature = "gcp")),
    allow(dead_code)
)]

use std::sync::Arc;

#[cfg(feature = "aws")]
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
#[cfg(feature = "azure")]
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
#[cfg(feature = "gcp")]
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
#[cfg(any(feature = "aws", feature = "azure", feature = "gcp"))]
use object_store::ObjectStore;
use url::Url;

#[cfg(any(feature = "aws", feature = "azure", feature = "gcp"))]
use crate::object::ObjectBackend;
use crate::object::{ObjectStoreLease, StoreOptions};
use crate::probe::{probe_cas, PROBE_PREFIX};
use crate::{LeaseStore, LocalDirStore, MemoryStore, StoreError};

/// The URL forms [`open`] accepts, for error messages.
const VALID_FORMS: &str = "s3://bucket/prefix[?endpoint=URL&region=REGION], \
                           gs://bucket/prefix[?endpoint=URL], az://container/prefix[?endpoint=URL], \
                           file:///absolute/dir, memory://";

/// The URL option of `s3://`, `gs://` and `az://` that overrides whether
/// the store's clock is trusted (see [`open`]).
const TRUST_STORE_CLOCK: &str = "trust_store_clock";

/// The URL option of `file://` that lets a directory on a network, cluster
/// or FUSE file system be used (see [`open`]).
const ALLOW_NETWORK_FILESYSTEM: &str = "allow_network_filesystem";

/// The backend name in errors about a URL whose scheme is not known.
const UNKNOWN: &str = "unknown";

/// Opens the store a URL names, with the default [`StoreOptions`], and
/// checks with [`probe_cas`] that it refuses stale conditional writes.
///
/// On S3 it then probes conditional delete
/// ([`ObjectStoreLease::probe_conditional_delete`], five more requests):
/// [`Capabilities::conditional_delete`](crate::Capabilities::conditional_delete)
/// is true only if the server refused a `DELETE` with a wrong `If-Match`
/// and honoured one with the right ETag (AWS S3, moto); elsewhere (MinIO
/// ignores `If-Match` on DELETE) it is false, a `tracing` line says why,
/// and the open still succeeds.
///
/// The store is rooted at the URL's path: keys given to it are relative to
/// `prefix` in `s3://bucket/prefix`. See the [crate docs](crate#opening-a-store) for the
/// URL forms and where credentials come from.
///
/// On S3-compatible servers (`endpoint=` given) an `http://` endpoint turns
/// on plain HTTP, and requests are path-style (`endpoint/bucket/key`).
/// With an `endpoint=`, AWS credentials must be in the environment:
/// looking them up in the EC2 instance metadata makes no sense off AWS.
/// HTTP client settings (timeouts, plain HTTP) come from [`StoreOptions`]
/// and the URL only, not from `object_store`'s client variables such as
/// `AWS_ALLOW_HTTP`.
///
/// # Store clocks: `trust_store_clock`
///
/// [`Capabilities::trusted_clock`](crate::Capabilities::trusted_clock)
/// lets a worker that starts take a stale lease at once, judging its age by
/// the store's timestamps. It is true only for AWS S3, GCS and Azure Blob
/// Storage themselves: an `s3://` or `az://` URL without `endpoint=`, a
/// `gs://` URL, and no endpoint or emulator set in the environment either
/// (`AWS_ENDPOINT`, `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3`,
/// `GOOGLE_BASE_URL`, `AZURE_STORAGE_USE_EMULATOR`, `AZURE_ENDPOINT`,
/// `AZURE_USE_FABRIC_ENDPOINT`, …). Any other server (MinIO, R2, Ceph,
/// moto, Azurite, a GCS emulator) is not trusted: if its clock steps by a
/// few seconds, a live lease looks stale and a starting worker takes it
/// while its leader still leads. Workers then wait a full lease timeout of
/// their own clock instead, which is always safe.
///
/// Add `trust_store_clock=true` to the URL (`s3://bucket/prefix?endpoint=…&trust_store_clock=true`)
/// only for a server whose clock you know is slewed, never stepped (NTP
/// with stepping disabled, say). `trust_store_clock=false` turns the
/// shortcut off for a cloud service too. Any other value is refused.
///
/// # Local directories: `allow_network_filesystem`
///
/// `file:///dir` is refused if the directory (or, before it exists, its
/// nearest existing parent) is on a network, cluster or FUSE file system
/// (NFS, SMB/CIFS, CephFS, AFS, 9P, GFS2, OCFS2, Lustre, any FUSE mount,
/// …; detected on Linux by `statfs`, not detected elsewhere): their locks
/// may not be honoured, or only per client, so a compare-and-swap can let
/// two writers win. Use a local disk or an object store. If you have
/// verified that the file system honours `flock` between every process
/// and machine that uses the directory, write
/// `file:///dir?allow_network_filesystem=true`
/// ([`LocalDirStore::with_network_filesystem_allowed`]).
///
/// # Errors
///
/// * [`StoreError::Misconfigured`] for a malformed URL, an unknown scheme, a
///   relative `file:` path, a missing bucket name, unknown query
///   parameters, a `trust_store_clock` or `allow_network_filesystem` that
///   is neither `true` nor `false`, missing credentials, a bucket that does
///   not exist, refused credentials, a local directory on a network file
///   system, or a backend that silently overwrites conditional writes. The
///   message says what to fix.
/// * Whatever the probe's requests fail with otherwise (say
///   [`StoreError::Unavailable`] when nothing answers at the endpoint).
///
/// # Cancel safety
///
/// Dropping the future may leave the probes' small scratch objects behind
/// under `.coordinator-probe/`.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), coordinator_store::StoreError> {
/// let store = coordinator_store::open("memory://").await?;
/// store.create("ns/state.json", "v1".into()).await?;
/// assert_eq!(store.backend(), "memory");
///
/// let err = coordinator_store::open("ftp://host/dir").await.unwrap_err();
/// assert!(err.to_string().contains("s3://"), "lists the valid schemes: {err}");
/// # Ok(())
/// # }
/// ```
pub async fn open(url: &str) -> Result<Arc<dyn LeaseStore>, StoreError> {
    open_with(url, StoreOptions::default()).await
}

/// [`open`] with explicit timeouts and retries for object stores (ignored by
/// `file://` and `memory://`).
///
/// # Errors
///
/// As for [`open`].
///
/// # Cancel safety
///
/// As for [`open`].
pub async fn open_with(
    url: &str,
    options: StoreOptions,
) -> Result<Arc<dyn LeaseStore>, StoreError> {
    match build(url, options)? {
        Built::Object(mut store) => {
            probe_cas(store.as_ref(), PROBE_PREFIX).await?;
            // Only turns a capability on; never fails the open.
            store.probe_conditional_delete(PROBE_PREFIX).await;
            Ok(Arc::new(*store))
        }
        Built::Other(store) => {
            probe_cas(store.as_ref(), PROBE_PREFIX).await?;
            Ok(store)
        }
    }
}

/// [`open`] without the conditional-write probe: no request is made. For
/// tests that count requests or inject faults (feature `test-util`);
/// anything that elects a leader should use [`open`].
///
/// Conditional delete is never assumed, so on S3 it stays off
/// ([`StoreError::NotSupported`]): only the probe of [`open`] turns it on.
///
/// # Errors
///
/// [`StoreError::Misconfigured`] for the URL problems [`open`] lists (not
/// those only a request can find: a missing bucket, refused credentials),
/// a local directory on a network file system included.
///
/// # Cancel safety
///
/// Cancel safe: it only builds the client.
#[cfg(any(feature = "test-util", test))]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub async fn open_unprobed(url: &str) -> Result<Arc<dyn LeaseStore>, StoreError> {
    open_unprobed_with(url, StoreOptions::default()).await
}

/// [`open_unprobed`] with explicit timeouts and retries.
///
/// # Errors
///
/// As for [`open_unprobed`].
///
/// # Cancel safety
///
/// Cancel safe: it only builds the client.
#[cfg(any(feature = "test-util", test))]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub async fn open_unprobed_with(
    url: &str,
    options: StoreOptions,
) -> Result<Arc<dyn LeaseStore>, StoreError> {
    open_unprobed_inner(url, options)
}

/// The store for `url`, built without a request: [`open_unprobed_with`]
/// and [`open_read_only_with`](crate::open_read_only_with).
pub(crate) fn open_unprobed_inner(
    url: &str,
    options: StoreOptions,
) -> Result<Arc<dyn LeaseStore>, StoreError> {
    Ok(match build(url, options)? {
        Built::Object(store) => Arc::new(*store),
        Built::Other(store) => store,
    })
}

/// A store built from a URL, before any probe.
enum Built {
    /// An `object_store` backend, kept concrete so that [`open_with`] can
    /// run its conditional-delete probe before handing it out.
    Object(Box<ObjectStoreLease>),
    /// The local directory or memory store.
    Other(Arc<dyn LeaseStore>),
}

fn build(url: &str, options: StoreOptions) -> Result<Built, StoreError> {
    let parsed = parse(url)?;
    #[cfg(not(all(feature = "aws", feature = "azure", feature = "gcp")))]
    let not_compiled = |backend: &'static str, feature: &'static str| StoreError::NotCompiled {
        scheme: backend_scheme(backend),
        backend,
        feature,
    };
    #[cfg(not(any(feature = "aws", feature = "azure", feature = "gcp")))]
    let _ = options;
    match parsed.scheme.as_str() {
        #[cfg(feature = "aws")]
        "s3" => Ok(Built::Object(Box::new(s3(url, &parsed, options)?))),
        #[cfg(not(feature = "aws"))]
        "s3" => Err(not_compiled("s3", "aws")),
        #[cfg(feature = "gcp")]
        "gs" => Ok(Built::Object(Box::new(gcs(url, &parsed, options)?))),
        #[cfg(not(feature = "gcp"))]
        "gs" => Err(not_compiled("gcs", "gcp")),
        #[cfg(feature = "azure")]
        "az" => Ok(Built::Object(Box::new(azure(url, &parsed, options)?))),
        #[cfg(not(feature = "azure"))]
        "az" => Err(not_compiled("azure", "azure")),
        "file" => Ok(Built::Other(Arc::new(local(url, &parsed)?))),
        "memory" => {
            allow_params(url, &parsed, "memory", &[])?;
            Ok(Built::Other(Arc::new(MemoryStore::new())))
        }
        other => Err(misconfigured(
            UNKNOWN,
            format!("unknown scheme `{other}` in the store URL `{url}`; use one of: {VALID_FORMS}"),
        )),
    }
}

fn misconfigured(backend: &'static str, message: String) -> StoreError {
    StoreError::Misconfigured { backend, message }
}

/// The URL scheme of a cloud backend, for [`StoreError::NotCompiled`].
#[cfg(not(all(feature = "aws", feature = "azure", feature = "gcp")))]
fn backend_scheme(backend: &'static str) -> &'static str {
    match backend {
        "s3" => "s3",
        "gcs" => "gs",
        _ => "az",
    }
}

/// The parts of a store URL.
struct Parsed {
    url: Url,
    scheme: String,
    /// The bucket or container (the URL's host), if any.
    bucket: Option<String>,
    /// The path without leading or trailing `/`, percent-decoded.
    prefix: String,
}

/// The backend a URL names by its scheme, for errors about the URL itself.
fn backend_of(raw: &str) -> &'static str {
    match raw.split_once(':').map(|(scheme, _)| scheme) {
        Some("s3") => "s3",
        Some("gs") => "gcs",
        Some("az") => "azure",
        Some("file") => "local",
        Some("memory") => "memory",
        _ => UNKNOWN,
    }
}

fn parse(raw: &str) -> Result<Parsed, StoreError> {
    let url = match Url::parse(raw) {
        Ok(url) => url,
        Err(url::ParseError::RelativeUrlWithoutBase) => {
            return Err(misconfigured(
                UNKNOWN,
                format!(
                    "`{raw}` is not a store URL (it has no scheme); for a local directory use an \
                     absolute file:///absolute/dir URL, otherwise one of: {VALID_FORMS}"
                ),
            ))
        }
        Err(e) => {
            return Err(misconfigured(
                backend_of(raw),
                format!("malformed store URL `{raw}`: {e}; expected one of: {VALID_FORMS}"),
            ))
        }
    };
    let scheme = url.scheme().to_owned();
    let bucket = url
        .host_str()
        .filter(|host| !host.is_empty())
        .map(str::to_owned);
    let prefix = percent_decode(url.path().trim_matches('/')).ok_or_else(|| {
        misconfigured(
            backend_of(raw),
            format!("malformed store URL `{raw}`: its path has an invalid percent-escape or is not UTF-8"),
        )
    })?;
    Ok(Parsed {
        url,
        scheme,
        bucket,
        prefix,
    })
}

/// Decodes `%XX` escapes; `None` if one is malformed or the result is not
/// UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The query parameters, refusing any not in `allowed`.
fn allow_params(
    raw: &str,
    parsed: &Parsed,
    backend: &'static str,
    allowed: &[&str],
) -> Result<Vec<(String, String)>, StoreError> {
    let mut params = Vec::new();
    for (name, value) in parsed.url.query_pairs() {
        if !allowed.contains(&name.as_ref()) {
            let valid = if allowed.is_empty() {
                "none".to_owned()
            } else {
                allowed.join(", ")
            };
            return Err(misconfigured(
                backend,
                format!(
                    "unknown parameter `{name}` in the store URL `{raw}`; the {backend} store \
                     accepts: {valid} (credentials come from the environment, never the URL)"
                ),
            ));
        }
        params.push((name.into_owned(), value.into_owned()));
    }
    Ok(params)
}

fn bucket(
    raw: &str,
    parsed: &Parsed,
    backend: &'static str,
    noun: &str,
) -> Result<String, StoreError> {
    parsed.bucket.clone().ok_or_else(|| {
        misconfigured(
            backend,
            format!(
                "the store URL `{raw}` names no {noun}; write it as {}://{noun}/prefix",
                parsed.scheme
            ),
        )
    })
}

/// Turns an `object_store` builder error into a message naming the fix.
#[cfg(any(feature = "aws", feature = "gcp"))]
fn build_error(backend: &'static str, raw: &str, e: object_store::Error) -> StoreError {
    misconfigured(
        backend,
        format!("could not set up the store for `{raw}`: {e}"),
    )
}

/// Checks an `endpoint=` value; returns whether it is plain HTTP.
#[cfg(any(feature = "aws", feature = "azure", feature = "gcp"))]
fn check_endpoint(raw: &str, backend: &'static str, endpoint: &str) -> Result<bool, StoreError> {
    match Url::parse(endpoint) {
        Ok(url) if url.scheme() == "http" && url.host_str().is_some() => Ok(true),
        Ok(url) if url.scheme() == "https" && url.host_str().is_some() => Ok(false),
        _ => Err(misconfigured(
            backend,
            format!(
                "the endpoint `{endpoint}` in the store URL `{raw}` is not an http:// or https:// \
                 URL; write it as ?endpoint=http://127.0.0.1:9000"
            ),
        )),
    }
}

/// Reads a `true`/`false` URL option; anything else is refused with a
/// message that says what to write (`what` says what `true` does).
fn flag(
    raw: &str,
    backend: &'static str,
    name: &str,
    value: &str,
    what: &str,
) -> Result<bool, StoreError> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(misconfigured(
            backend,
            format!(
                "`{name}={value}` in the store URL `{raw}`: the value must be `true` or \
                 `false`; write `{name}=true` {what}, or leave it out"
            ),
        )),
    }
}

/// What `trust_store_clock=true` does, for [`flag`]'s error.
#[cfg(any(feature = "aws", feature = "azure", feature = "gcp"))]
const TRUST_STORE_CLOCK_WHAT: &str = "to let a starting worker judge a lease's age by this \
    store's timestamps (only for a server whose clock is never stepped)";

/// Whether a store's clock is trusted: the URL's `trust_store_clock` if
/// given, else `cloud` (the store is the cloud service itself).
#[cfg(any(feature = "aws", feature = "azure", feature = "gcp"))]
fn store_clock_trusted(
    raw: &str,
    backend: &'static str,
    params: &[(String, String)],
    cloud: bool,
) -> Result<bool, StoreError> {
    let mut trusted = cloud;
    for (name, value) in params {
        if name == TRUST_STORE_CLOCK {
            trusted = flag(raw, backend, name, value, TRUST_STORE_CLOCK_WHAT)?;
        }
    }
    Ok(trusted)
}

/// True if an S3 builder reaches AWS S3 itself: no endpoint from the URL
/// or the environment (`AWS_ENDPOINT`, `AWS_ENDPOINT_URL`,
/// `AWS_ENDPOINT_URL_S3`), no plain HTTP. Any endpoint counts as custom,
/// even an `amazonaws.com` one: telling them apart is not worth a
/// mistake, and `trust_store_clock=true` says it.
#[cfg(feature = "aws")]
fn is_aws_s3(builder: &AmazonS3Builder, allow_http: bool) -> bool {
    !allow_http
        && builder
            .get_config_value(&AmazonS3ConfigKey::Endpoint)
            .is_none()
        && builder
            .get_config_value(&AmazonS3ConfigKey::S3Endpoint)
            .is_none()
}

/// True if a GCS builder reaches Google Cloud Storage itself: no base URL
/// (an emulator such as fake-gcs-server, set by `GOOGLE_BASE_URL`, the
/// URL's `endpoint=` or the service account key's `gcs_base_url`).
#[cfg(feature = "gcp")]
fn is_google_cloud_storage(builder: &GoogleCloudStorageBuilder) -> bool {
    gcs_base_url(builder).is_none()
}

/// The base URL a GCS builder was given, as `object_store` finds it: the
/// builder's (`GOOGLE_BASE_URL`, the URL's `endpoint=`), else the
/// service account key's `gcs_base_url`; `None` for Google's own
/// (`https://storage.googleapis.com`).
#[cfg(feature = "gcp")]
fn gcs_base_url(builder: &GoogleCloudStorageBuilder) -> Option<String> {
    if let Some(url) = builder.get_config_value(&GoogleConfigKey::BaseUrl) {
        return Some(url);
    }
    let key = builder
        .get_config_value(&GoogleConfigKey::ServiceAccountKey)
        .or_else(|| {
            let path = builder.get_config_value(&GoogleConfigKey::ServiceAccount)?;
            std::fs::read_to_string(path).ok()
        })?;
    let key: serde_json::Value = serde_json::from_str(&key).ok()?;
    Some(key.get("gcs_base_url")?.as_str()?.to_owned())
}

/// Google's own GCS endpoint (`object_store`'s default base URL).
#[cfg(feature = "gcp")]
const GCS_BASE_URL: &str = "https://storage.googleapis.com";

/// True if an Azure builder reaches Azure Blob Storage itself: no
/// emulator (Azurite, `AZURE_STORAGE_USE_EMULATOR`), no endpoint from the
/// URL or the environment, not the Fabric (OneLake) endpoint, no plain
/// HTTP.
#[cfg(feature = "azure")]
fn is_azure_blob_storage(builder: &MicrosoftAzureBuilder, allow_http: bool) -> bool {
    // object_store's spellings of false; any other value (even one it will
    // refuse to parse) does not prove the emulator is off.
    let off = |key: AzureConfigKey| {
        builder.get_config_value(&key).is_none_or(|value| {
            matches!(
                value.to_ascii_lowercase().as_str(),
                "0" | "false" | "off" | "no" | "n"
            )
        })
    };
    !allow_http
        && off(AzureConfigKey::UseEmulator)
        && off(AzureConfigKey::UseFabricEndpoint)
        && builder
            .get_config_value(&AzureConfigKey::Endpoint)
            .is_none()
}

/// True if the environment gives AWS credentials that need no instance
/// metadata service.
#[cfg(feature = "aws")]
fn aws_credentials_in_env() -> bool {
    [
        "AWS_ACCESS_KEY_ID",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ]
    .iter()
    .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()))
}

#[cfg(feature = "aws")]
fn s3(raw: &str, parsed: &Parsed, options: StoreOptions) -> Result<ObjectStoreLease, StoreError> {
    const BACKEND: &str = "s3";
    let params = allow_params(
        raw,
        parsed,
        BACKEND,
        &["endpoint", "region", TRUST_STORE_CLOCK],
    )?;
    let bucket = bucket(raw, parsed, BACKEND, "bucket")?;
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(&bucket)
        .with_retry(options.retry_config())
        .with_virtual_hosted_style_request(false);
    let mut allow_http = false;
    for (name, value) in &params {
        match name.as_str() {
            "endpoint" => {
                allow_http = check_endpoint(raw, BACKEND, value)?;
                if !aws_credentials_in_env() {
                    return Err(misconfigured(
                        BACKEND,
                        format!(
                            "no AWS credentials in the environment for the endpoint `{value}` \
                             (store URL `{raw}`); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY \
                             (any values for moto)"
                        ),
                    ));
                }
                builder = builder.with_endpoint(value);
            }
            "region" => builder = builder.with_region(value),
            _ => {}
        }
    }
    let trusted = store_clock_trusted(raw, BACKEND, &params, is_aws_s3(&builder, allow_http))?;
    // One set of client options for the store and for the client that
    // sends its conditional deletes: same timeouts, same plain-HTTP rule.
    let client_options = options.client_options().with_allow_http(allow_http);
    let store = builder
        .with_client_options(client_options.clone())
        .build()
        .map_err(|e| build_error(BACKEND, raw, e))?;
    lease(
        Arc::new(store.clone()),
        ObjectBackend::S3,
        bucket,
        parsed,
        options,
        trusted,
    )?
    .with_s3_conditional_delete(store, &client_options)
}

#[cfg(feature = "gcp")]
fn gcs(raw: &str, parsed: &Parsed, options: StoreOptions) -> Result<ObjectStoreLease, StoreError> {
    const BACKEND: &str = "gcs";
    let params = allow_params(raw, parsed, BACKEND, &["endpoint", TRUST_STORE_CLOCK])?;
    let bucket = bucket(raw, parsed, BACKEND, "bucket")?;
    let mut builder = GoogleCloudStorageBuilder::from_env()
        .with_bucket_name(&bucket)
        .with_retry(options.retry_config());
    for (name, value) in &params {
        if name == "endpoint" {
            check_endpoint(raw, BACKEND, value)?;
            if !gcs_credentials_configured(&builder) {
                return Err(misconfigured(
                    BACKEND,
                    format!(
                        "no GCS credentials configured for the endpoint `{value}` (store URL \
                         `{raw}`); set GOOGLE_SERVICE_ACCOUNT_KEY (for an emulator: \
                         {{\"disable_oauth\":true,\"client_email\":\"\",\"private_key\":\"\",\"private_key_id\":\"\"}}) \
                         or GOOGLE_SERVICE_ACCOUNT, so that no instance metadata server is asked"
                    ),
                ));
            }
            builder = builder.with_base_url(value);
        }
    }
    let trusted = store_clock_trusted(raw, BACKEND, &params, is_google_cloud_storage(&builder))?;
    let base_url = gcs_base_url(&builder).unwrap_or_else(|| GCS_BASE_URL.to_owned());
    // One set of client options for the store and for the client that
    // sends its conditional deletes: same timeouts, same plain-HTTP rule.
    let client_options = options
        .client_options()
        .with_allow_http(base_url.starts_with("http://"));
    let store = builder
        .with_client_options(client_options.clone())
        .build()
        .map_err(|e| build_error(BACKEND, raw, e))?;
    lease(
        Arc::new(store.clone()),
        ObjectBackend::Gcs,
        bucket,
        parsed,
        options,
        trusted,
    )?
    .with_gcs_conditional_delete(store, &base_url, &client_options)
}

/// True if a GCS builder has credentials of its own (a service account
/// key or its path, application credentials, a bearer token), so that
/// `object_store` will not ask an instance metadata server.
#[cfg(feature = "gcp")]
fn gcs_credentials_configured(builder: &GoogleCloudStorageBuilder) -> bool {
    [
        GoogleConfigKey::ServiceAccountKey,
        GoogleConfigKey::ServiceAccount,
        GoogleConfigKey::ApplicationCredentials,
        GoogleConfigKey::BearerToken,
    ]
    .iter()
    .any(|key| builder.get_config_value(key).is_some())
}

#[cfg(feature = "azure")]
fn azure(
    raw: &str,
    parsed: &Parsed,
    options: StoreOptions,
) -> Result<ObjectStoreLease, StoreError> {
    const BACKEND: &str = "azure";
    let params = allow_params(raw, parsed, BACKEND, &["endpoint", TRUST_STORE_CLOCK])?;
    let container = bucket(raw, parsed, BACKEND, "container")?;
    let mut builder = MicrosoftAzureBuilder::from_env()
        .with_container_name(&container)
        .with_retry(options.retry_config());
    let mut allow_http = false;
    for (name, value) in &params {
        if name == "endpoint" {
            allow_http = check_endpoint(raw, BACKEND, value)?;
            builder = builder.with_endpoint(value.clone());
        }
    }
    let trusted = store_clock_trusted(
        raw,
        BACKEND,
        &params,
        is_azure_blob_storage(&builder, allow_http),
    )?;
    let account = azure_account(&builder);
    // One set of client options for the store and for the client that
    // sends its conditional deletes: same timeouts, same plain-HTTP rule.
    let plain_http = allow_http
        || account
            .as_ref()
            .is_some_and(|(_, url)| url.scheme() == "http");
    let mut client_options = options.client_options().with_allow_http(plain_http);
    if plain_http {
        // Only an emulator speaks plain HTTP. Azurite (Node.js) closes a
        // keep-alive connection after 5 s idle (its --blobKeepAliveTimeout
        // is ignored in 3.35.0), and a write sent on a pooled connection
        // just as it closes fails with a reset: ambiguous, since a
        // conditional write is not retried. Drop idle connections first.
        client_options = client_options.with_pool_idle_timeout(AZURITE_POOL_IDLE);
    }
    let store = builder
        .with_client_options(client_options.clone())
        .build()
        .map_err(|e| {
            misconfigured(
                BACKEND,
                format!(
                    "could not set up the store for `{raw}`: {e}; the storage account comes from \
                     AZURE_STORAGE_ACCOUNT_NAME and its key from AZURE_STORAGE_ACCOUNT_KEY"
                ),
            )
        })?;
    let lease = lease(
        Arc::new(store.clone()),
        ObjectBackend::Azure,
        container,
        parsed,
        options,
        trusted,
    )?;
    match account {
        Some((account, url)) => {
            lease.with_azure_conditional_delete(store, &account, url, &client_options)
        }
        None => Ok(lease),
    }
}

/// How long a pooled connection to a plain-HTTP Azure endpoint (Azurite)
/// may stay idle: under Node.js's 5 s keep-alive timeout.
#[cfg(feature = "azure")]
const AZURITE_POOL_IDLE: std::time::Duration = std::time::Duration::from_secs(3);

/// The storage account and the URL its containers live under, as
/// `object_store` derives them from the builder: Azurite's
/// (`AZURITE_BLOB_STORAGE_URL`, default `http://127.0.0.1:10000`, plus the
/// account) with the emulator on, else the endpoint (the URL's
/// `endpoint=`, `AZURE_STORAGE_ENDPOINT`, …), else the Fabric or the
/// public one. `None` if that cannot be told (no account).
#[cfg(feature = "azure")]
fn azure_account(builder: &MicrosoftAzureBuilder) -> Option<(String, Url)> {
    // object_store's spellings of true.
    let on = |key: AzureConfigKey| {
        builder.get_config_value(&key).is_some_and(|value| {
            matches!(
                value.to_ascii_lowercase().as_str(),
                "1" | "true" | "on" | "yes" | "y"
            )
        })
    };
    let account = builder.get_config_value(&AzureConfigKey::AccountName);
    if on(AzureConfigKey::UseEmulator) {
        let account = account.unwrap_or_else(|| "devstoreaccount1".to_owned());
        let base = std::env::var("AZURITE_BLOB_STORAGE_URL")
            .unwrap_or_else(|_| "http://127.0.0.1:10000".to_owned());
        let mut url = Url::parse(&base).ok()?;
        url.path_segments_mut().ok()?.pop_if_empty().push(&account);
        return Some((account, url));
    }
    let account = account?;
    let url = match builder.get_config_value(&AzureConfigKey::Endpoint) {
        Some(endpoint) => endpoint,
        None if on(AzureConfigKey::UseFabricEndpoint) => {
            format!("https://{account}.blob.fabric.microsoft.com")
        }
        None => format!("https://{account}.blob.core.windows.net"),
    };
    Some((account, Url::parse(&url).ok()?))
}

#[cfg(any(feature = "aws", feature = "azure", feature = "gcp"))]
fn lease(
    store: Arc<dyn ObjectStore>,
    backend: ObjectBackend,
    bucket: String,
    parsed: &Parsed,
    options: StoreOptions,
    trusted_clock: bool,
) -> Result<ObjectStoreLease, StoreError> {
    let location = format!("{}://{}/{}", parsed.scheme, bucket, parsed.prefix);
    Ok(
        ObjectStoreLease::new(store, backend, bucket, location, &parsed.prefix, options)?
            .with_trusted_store_clock(trusted_clock),
    )
}

fn local(raw: &str, parsed: &Parsed) -> Result<LocalDirStore, StoreError> {
    const BACKEND: &str = "local";
    let params = allow_params(raw, parsed, BACKEND, &[ALLOW_NETWORK_FILESYSTEM])?;
    let mut allow_network_filesystem = false;
    for (name, value) in &params {
        if name == ALLOW_NETWORK_FILESYSTEM {
            allow_network_filesystem = flag(
                raw,
                BACKEND,
                name,
                value,
                "only if you have verified that this file system honours flock locks between \
                 every process and machine that uses the directory",
            )?;
        }
    }
    let absolute = raw.starts_with("file:///") || raw.starts_with("file://localhost/");
    let dir = match parsed.url.to_file_path() {
        Ok(dir) if absolute => dir,
        _ => {
            return Err(misconfigured(
                BACKEND,
                format!(
                    "`{raw}` is not an absolute directory; use an absolute file:///absolute/dir \
                     URL (three slashes), e.g. file:///var/lib/coordinator"
                ),
            ))
        }
    };
    let store = LocalDirStore::new(dir).with_network_filesystem_allowed(allow_network_filesystem);
    // Refused here, before any request, so that `open_unprobed` refuses
    // too; the store checks again when it first takes a lock.
    store.check_filesystem()?;
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn message(url: &str) -> (&'static str, String) {
        match open_unprobed(url).await {
            Err(StoreError::Misconfigured { backend, message }) => (backend, message),
            other => panic!("{url}: expected Misconfigured, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn unknown_scheme_lists_the_valid_ones() {
        let (_, m) = message("ftp://host/dir").await;
        assert!(m.contains("unknown scheme `ftp`"), "{m}");
        for scheme in ["s3://", "gs://", "az://", "file:///", "memory://"] {
            assert!(m.contains(scheme), "{m}");
        }
    }

    #[tokio::test]
    async fn relative_file_paths_are_refused() {
        for url in [
            "file://relative/dir",
            "file:relative/dir",
            "relative/dir",
            "/abs/dir",
        ] {
            let (_, m) = message(url).await;
            assert!(m.contains("file:///"), "{url}: {m}");
        }
    }

    #[cfg(all(feature = "aws", feature = "gcp", feature = "azure"))]
    #[tokio::test]
    async fn malformed_urls_are_refused() {
        let (_, m) = message("s3://bucket:notaport/x").await;
        assert!(m.contains("malformed store URL"), "{m}");
        let (_, m) = message("s3://bucket/a%zz").await;
        assert!(m.contains("percent-escape"), "{m}");
        let (b, m) = message("s3://bucket/a//b").await;
        assert_eq!(b, "s3");
        assert!(m.contains("not a valid object path"), "{m}");
    }

    #[cfg(all(feature = "aws", feature = "gcp", feature = "azure"))]
    #[tokio::test]
    async fn missing_bucket_names_are_refused() {
        let (b, m) = message("s3:///prefix").await;
        assert_eq!(b, "s3");
        assert!(
            m.contains("names no bucket") && m.contains("s3://bucket/prefix"),
            "{m}"
        );
        let (b, m) = message("az:///prefix").await;
        assert_eq!(b, "azure");
        assert!(m.contains("names no container"), "{m}");
    }

    #[cfg(all(feature = "aws", feature = "gcp", feature = "azure"))]
    #[tokio::test]
    async fn unknown_parameters_are_refused() {
        let (_, m) = message("s3://bucket/p?secret=x").await;
        assert!(
            m.contains("unknown parameter `secret`") && m.contains("endpoint, region"),
            "{m}"
        );
        let (_, m) = message("memory://?x=1").await;
        assert!(m.contains("unknown parameter `x`"), "{m}");
        let (_, m) = message("s3://bucket/p?endpoint=127.0.0.1:9000").await;
        assert!(m.contains("not an http:// or https:// URL"), "{m}");
    }

    #[tokio::test]
    async fn opens_local_and_memory_stores() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        let store = open(&url).await.unwrap();
        assert_eq!(store.backend(), "local");
        store.create("k", "v".into()).await.unwrap();
        assert!(dir.path().join("k").exists(), "rooted at the directory");

        let store = open("memory://").await.unwrap();
        assert_eq!(store.backend(), "memory");
        assert!(
            store.list_page("", None, 10).await.unwrap().is_empty(),
            "the probe cleaned up"
        );
    }

    #[cfg(all(feature = "aws", feature = "gcp", feature = "azure"))]
    #[tokio::test]
    async fn s3_urls_build_without_requests() {
        let store = open_unprobed("s3://my-bucket/some/prefix?region=eu-west-1")
            .await
            .unwrap();
        assert_eq!(store.backend(), "s3");
        // AWS S3 itself, unless this environment points S3 elsewhere
        // (tests/store_clock.rs checks both in a controlled environment).
        let endpoint_in_env = ["AWS_ENDPOINT", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"]
            .iter()
            .any(|name| std::env::var_os(name).is_some());
        assert_eq!(store.capabilities().trusted_clock, !endpoint_in_env);
        assert!(!store.capabilities().conditional_delete);
        assert!(format!("{store:?}").contains("s3://my-bucket/some/prefix"));

        let store = open_unprobed("s3://my-bucket/p?region=eu-west-1&trust_store_clock=false")
            .await
            .unwrap();
        assert!(!store.capabilities().trusted_clock, "the opt-out holds");
    }

    #[cfg(all(feature = "aws", feature = "gcp", feature = "azure"))]
    #[tokio::test]
    async fn override_values_other_than_true_or_false_are_refused() {
        for (url, backend, name) in [
            (
                "s3://bucket/p?trust_store_clock=yes",
                "s3",
                "trust_store_clock",
            ),
            (
                "gs://bucket/p?trust_store_clock=1",
                "gcs",
                "trust_store_clock",
            ),
            (
                "az://container/p?trust_store_clock=",
                "azure",
                "trust_store_clock",
            ),
            (
                "file:///var/lib/coordinator?allow_network_filesystem=TRUE",
                "local",
                "allow_network_filesystem",
            ),
        ] {
            let (b, m) = message(url).await;
            assert_eq!(b, backend, "{url}");
            assert!(
                m.contains("must be `true` or `false`") && m.contains(&format!("`{name}=true`")),
                "{url}: {m}"
            );
        }
        // The options belong to their schemes only.
        let (_, m) = message("memory://?trust_store_clock=true").await;
        assert!(m.contains("unknown parameter `trust_store_clock`"), "{m}");
        let (_, m) = message("s3://bucket/p?allow_network_filesystem=true").await;
        assert!(
            m.contains("unknown parameter `allow_network_filesystem`")
                && m.contains("trust_store_clock"),
            "lists the valid ones: {m}"
        );
    }

    /// Which builders reach the cloud services themselves, as the
    /// environment or the URL may configure them (no environment read).
    #[cfg(all(feature = "aws", feature = "gcp", feature = "azure"))]
    #[test]
    fn only_the_cloud_services_themselves_are_trusted_by_default() {
        let s3 = AmazonS3Builder::new;
        assert!(is_aws_s3(&s3(), false), "AWS S3");
        assert!(!is_aws_s3(&s3(), true), "plain HTTP");
        assert!(
            !is_aws_s3(&s3().with_endpoint("http://127.0.0.1:9000"), true),
            "MinIO, moto"
        );
        assert!(
            !is_aws_s3(
                &s3().with_endpoint("https://acct.r2.cloudflarestorage.com"),
                false
            ),
            "R2"
        );
        assert!(
            !is_aws_s3(
                &s3().with_config(AmazonS3ConfigKey::S3Endpoint, "https://ceph.example"),
                false
            ),
            "AWS_ENDPOINT_URL_S3"
        );

        let gcs = GoogleCloudStorageBuilder::new;
        assert!(is_google_cloud_storage(&gcs()), "GCS");
        assert!(
            !is_google_cloud_storage(
                &gcs().with_config(GoogleConfigKey::BaseUrl, "http://127.0.0.1:4443")
            ),
            "fake-gcs-server (GOOGLE_BASE_URL)"
        );

        let azure = MicrosoftAzureBuilder::new;
        assert!(is_azure_blob_storage(&azure(), false), "Azure");
        assert!(
            is_azure_blob_storage(
                &azure().with_config(AzureConfigKey::UseEmulator, "false"),
                false
            ),
            "emulator explicitly off"
        );
        assert!(
            !is_azure_blob_storage(&azure().with_use_emulator(true), false),
            "Azurite"
        );
        assert!(
            !is_azure_blob_storage(
                &azure().with_config(AzureConfigKey::UseEmulator, "1"),
                false
            ),
            "Azurite (AZURE_STORAGE_USE_EMULATOR=1)"
        );
        assert!(
            !is_azure_blob_storage(
                &azure().with_endpoint("http://127.0.0.1:10000/devstoreaccount1".to_owned()),
                true
            ),
            "Azurite by endpoint"
        );
        assert!(
            !is_azure_blob_storage(
                &azure().with_config(AzureConfigKey::UseFabricEndpoint, "true"),
                false
            ),
            "Fabric"
        );
    }

    #[tokio::test]
    async fn a_local_directory_opens_with_the_network_filesystem_override() {
        // tmp is a local file system: accepted with and without it.
        let dir = tempfile::tempdir().unwrap();
        for query in [
            "",
            "?allow_network_filesystem=false",
            "?allow_network_filesystem=true",
        ] {
            let url = format!("file://{}{query}", dir.path().display());
            let store = open(&url).await.unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(store.backend(), "local");
        }
    }

    /// A cloud URL whose backend this build leaves out is refused with
    /// NotCompiled, naming the Cargo feature to enable; one this build has
    /// is not. Runs in every feature combination (CI runs it without the
    /// cloud features).
    #[tokio::test]
    async fn cloud_urls_name_the_feature_this_build_leaves_out() {
        for (url, backend, feature, compiled) in [
            (
                "s3://bucket/p?region=eu-west-1",
                "s3",
                "aws",
                cfg!(feature = "aws"),
            ),
            ("gs://bucket/p", "gcs", "gcp", cfg!(feature = "gcp")),
            (
                "az://container/p",
                "azure",
                "azure",
                cfg!(feature = "azure"),
            ),
        ] {
            match open_unprobed(url).await {
                Err(err @ StoreError::NotCompiled { .. }) => {
                    assert!(!compiled, "{url}: {err}");
                    let StoreError::NotCompiled {
                        scheme,
                        backend: b,
                        feature: f,
                    } = &err
                    else {
                        unreachable!()
                    };
                    assert_eq!((*b, *f), (backend, feature), "{url}");
                    assert!(url.starts_with(&format!("{scheme}://")), "{url}");
                    let message = err.to_string();
                    assert!(
                        message.contains(&format!("Cargo feature `{feature}`")),
                        "{message}"
                    );
                    assert_eq!(err.backend(), backend);
                }
                // Built, or refused for what the environment lacks
                // (credentials): not for a missing backend. No request.
                other => assert!(compiled, "{url}: {other:?}"),
            }
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b").as_deref(), Some("a b"));
        assert_eq!(percent_decode("a%2"), None);
        assert_eq!(percent_decode("plain/path").as_deref(), Some("plain/path"));
    }
}
