//! The S3 backend ([`ObjectStoreLease`] through [`open`]) against a real
//! S3-compatible server: moto on 127.0.0.1, started by `scripts/test`.
//!
//! Reads `COORD_S3_ENDPOINT` (and `COORD_S3_BUCKET`, default
//! `coordinator-test`; the bucket must exist) and the standard AWS
//! credential variables. Without `COORD_S3_ENDPOINT` the server tests print
//! `SKIPPED` and pass, unless `COORD_REQUIRE_S3=1` (set by `scripts/test`
//! under CI), when they fail: CI must never pass with the S3 tests skipped.
//!
//! moto's conditional PUT is a check-then-write without a lock, so a race
//! on moto can have two winners. The race cases run with
//! `expect_linearizable = false`: a double winner is reported as moto's,
//! loudly, and counted, never hidden; the exactly-one-winner guarantee is
//! tested on the memory and local stores, where it is ours. moto's
//! conditional DELETE (`If-Match`) is a check-then-delete without a lock in
//! the same way; the cases here are sequential, so they test our wire
//! handling, not its atomicity.
//!
//! [`ObjectStoreLease`]: coordinator_store::ObjectStoreLease

// Test helpers panic to report a failure, as the tests themselves do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{emulator_options as moto_options, say, unique, Emulator};
use coordinator_store::conformance::{self, SuiteOptions, VersionScheme};
use coordinator_store::{
    open, open_unprobed, open_unprobed_with, open_with, probe_cas, LeaseStore, LeaseStoreExt,
    StoreError, StoreOptions, PROBE_PREFIX,
};

const MOTO: Emulator = Emulator {
    name: "moto",
    backend: "S3",
    store_backend: "s3",
    linearizable: false,
    endpoint_var: "COORD_S3_ENDPOINT",
    require_var: "COORD_REQUIRE_S3",
    bucket_var: "COORD_S3_BUCKET",
};

/// The endpoint of the S3 server, or `None` (after saying so) to skip.
fn endpoint(test: &str) -> Option<String> {
    MOTO.endpoint(test)
}

fn bucket() -> String {
    MOTO.bucket()
}

fn s3_url(endpoint: &str, bucket: &str, prefix: &str) -> String {
    format!("s3://{bucket}/{prefix}?endpoint={endpoint}&region=us-east-1")
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_on_moto() {
    let Some(endpoint) = endpoint("conformance_suite_on_moto") else {
        return;
    };
    let url = s3_url(&endpoint, &bucket(), &unique("conformance"));
    let store = open_with(&url, moto_options())
        .await
        .unwrap_or_else(|e| panic!("open {url}: {e}"));
    assert_eq!(store.backend(), "s3");
    let caps = store.capabilities();
    assert!(caps.conditional_get, "{caps:?}");
    // A custom endpoint: its clock may step, so it is not trusted unless
    // the URL says trust_store_clock=true.
    assert!(!caps.trusted_clock, "{caps:?}");
    // moto honours If-Match on DELETE, so the probe of open() turns
    // conditional delete on, and the suite's delete_if_version case runs
    // the real thing rather than checking NotSupported.
    assert!(
        caps.conditional_delete,
        "the conditional-delete probe must pass on moto: {caps:?}"
    );

    // 2,500 keys: three pages of S3's 1,000-key listings. Every case runs
    // here except the races (rounds: 0), which run below, where their
    // reports are shown rather than left in captured output.
    let options = SuiteOptions {
        list_keys: 2_500,
        contenders: 10,
        rounds: 0,
        expect_linearizable: MOTO.linearizable,
        versions: VersionScheme::ContentDigest,
    };
    let started = Instant::now();
    conformance::run_all_with(store.clone(), "suite", &options).await;
    say(format!(
        "conformance suite on moto: {:?}",
        started.elapsed()
    ));

    // The races, with fewer contenders than on the in-process stores (moto
    // serves each request on a Python thread, on 2 cores).
    // COORD_S3_CONTENDERS and COORD_S3_ROUNDS make them bigger, to hunt for
    // moto's double winners.
    let contenders = env_usize("COORD_S3_CONTENDERS", 20);
    let rounds = env_usize("COORD_S3_ROUNDS", 10);
    MOTO.races(store, contenders, rounds).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_passes_on_moto_and_cleans_up() {
    let Some(endpoint) = endpoint("probe_passes_on_moto_and_cleans_up") else {
        return;
    };
    let url = s3_url(&endpoint, &bucket(), &unique("probe"));
    let store = open_unprobed(&url).await.unwrap();
    let started = Instant::now();
    probe_cas(store.as_ref(), PROBE_PREFIX)
        .await
        .unwrap_or_else(|e| panic!("the probe must pass on moto: {e}"));
    eprintln!("probe on moto: {:?}", started.elapsed());
    assert!(
        store.list(PROBE_PREFIX).await.unwrap().is_empty(),
        "the probe deletes its object"
    );
    // open() runs the same probe, and the conditional-delete probe, which
    // cleans up after itself too.
    let started = Instant::now();
    let opened = open(&url).await.unwrap();
    eprintln!("open (both probes) on moto: {:?}", started.elapsed());
    assert!(opened.capabilities().conditional_delete);
    assert!(
        store.list(PROBE_PREFIX).await.unwrap().is_empty(),
        "the probes of open() delete their objects"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_bucket_is_misconfigured_naming_it() {
    let Some(endpoint) = endpoint("missing_bucket_is_misconfigured_naming_it") else {
        return;
    };
    let url = s3_url(&endpoint, "no-such-bucket-coord", "p");
    let err = open(&url).await.unwrap_err();
    let StoreError::Misconfigured { backend, message } = &err else {
        panic!("expected Misconfigured, got {err:?}");
    };
    assert_eq!(*backend, "s3");
    assert!(
        message.contains("`no-such-bucket-coord` does not exist") && message.contains("create it"),
        "{message}"
    );

    // A read must not mistake a missing bucket for a missing object.
    let store = open_unprobed(&url).await.unwrap();
    let err = store.get("state.json").await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Misconfigured { message, .. } if message.contains("no-such-bucket-coord") && message.contains("state.json")),
        "{err:?}"
    );
    let err = store.list("").await.unwrap_err();
    assert!(matches!(err, StoreError::Misconfigured { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_rooted_at_the_url_prefix() {
    let Some(endpoint) = endpoint("keys_are_rooted_at_the_url_prefix") else {
        return;
    };
    let prefix = unique("rooted");
    let bucket = bucket();
    let inner = open(&s3_url(&endpoint, &bucket, &format!("{prefix}/inner")))
        .await
        .unwrap();
    let outer = open_unprobed(&s3_url(&endpoint, &bucket, &prefix))
        .await
        .unwrap();
    inner.create("ns/state.json", "x".into()).await.unwrap();
    let listed = outer.list("").await.unwrap();
    let keys: Vec<&str> = listed.iter().map(|m| m.key.as_str()).collect();
    assert_eq!(keys, ["inner/ns/state.json"]);
    assert!(outer.get("inner/ns/state.json").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unconditional_put_and_get_if_changed_on_moto() {
    let Some(endpoint) = endpoint("unconditional_put_and_get_if_changed_on_moto") else {
        return;
    };
    let store = open(&s3_url(&endpoint, &bucket(), &unique("cget")))
        .await
        .unwrap();
    let first = store.put("w/a.json", "1".into()).await.unwrap();
    assert!(matches!(
        store
            .get_if_changed("w/a.json", &first.version)
            .await
            .unwrap(),
        coordinator_store::Conditional::Unchanged
    ));
    let got = store.get("w/a.json").await.unwrap().unwrap();
    assert_eq!(
        got.version, first.version,
        "a write's version is what a read sees"
    );
    assert!(got.store_time.is_some(), "S3 reports Last-Modified");
}

/// S3's conditional delete (`DELETE` with `If-Match`) against moto, through
/// a store from open(): on after the probe, refusing a stale ETag without
/// deleting, deleting on the current one, refusing on a missing object.
/// Without the probe (open_unprobed) it is never assumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_delete_on_moto() {
    let Some(endpoint) = endpoint("conditional_delete_on_moto") else {
        return;
    };
    let url = s3_url(&endpoint, &bucket(), &unique("cdelete"));
    let store = open_with(&url, moto_options()).await.unwrap();
    MOTO.conditional_delete(store.as_ref()).await;

    let unprobed = open_unprobed(&url).await.unwrap();
    assert!(!unprobed.capabilities().conditional_delete);
    let written = unprobed.create("q/other.json", "x".into()).await.unwrap();
    let err = unprobed
        .delete_if_version("q/other.json", &written.version)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NotSupported {
                op: "delete_if_version",
                backend: "s3"
            }
        ),
        "{err:?}"
    );
    assert!(unprobed.get("q/other.json").await.unwrap().is_some());
}

/// Nothing listens on the port: the store is unavailable, quickly, and the
/// error names the key, the backend and the endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_is_unavailable_and_quick() {
    // No server is needed; only credentials, which open() insists on for
    // an endpoint, and which scripts/test exports.
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_none()
        && endpoint("connection_refused_is_unavailable_and_quick").is_none()
    {
        return;
    }
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = s3_url(&format!("http://127.0.0.1:{port}"), "coordinator-test", "p");
    let options = StoreOptions {
        request_timeout: Duration::from_secs(1),
        max_retries: 1,
        retry_timeout: Duration::from_secs(1),
    };
    let started = Instant::now();
    let err = open_with(&url, options).await.unwrap_err();
    let elapsed = started.elapsed();
    let StoreError::Unavailable { key, backend, .. } = &err else {
        panic!("expected Unavailable, got {err:?}");
    };
    assert_eq!(*backend, "s3");
    assert!(key.starts_with(PROBE_PREFIX), "{key}");
    let message = err.to_string();
    assert!(
        message.contains(&format!("127.0.0.1:{port}"))
            && message.contains("Connection refused")
            && message.contains("check the endpoint"),
        "{message}"
    );
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");

    let store = open_unprobed_with(&url, options).await.unwrap();
    let err = store.get("state.json").await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
}

#[tokio::test]
async fn url_errors_say_what_to_fix() {
    let misconfigured = |result: Result<Arc<dyn LeaseStore>, StoreError>| match result {
        Err(StoreError::Misconfigured { message, .. }) => message,
        other => panic!("expected Misconfigured, got {other:?}"),
    };
    let m = misconfigured(open("s3://bucket:99999/x").await);
    assert!(m.contains("malformed store URL"), "{m}");
    let m = misconfigured(open("gopher://bucket/x").await);
    assert!(
        m.contains("unknown scheme `gopher`") && m.contains("s3://") && m.contains("file:///"),
        "{m}"
    );
    let m = misconfigured(open("file://relative/dir").await);
    assert!(m.contains("absolute file:///"), "{m}");
    let m = misconfigured(open("relative/dir").await);
    assert!(m.contains("absolute file:///"), "{m}");
    let m = misconfigured(open("s3:///prefix-without-bucket").await);
    assert!(m.contains("names no bucket"), "{m}");
}
