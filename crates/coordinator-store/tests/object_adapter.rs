//! [`ObjectStoreLease`] over `object_store`'s in-memory store: the shared
//! contract suite (the adapter's version handling, error mapping and listing
//! without a network), and the mapping of HTTP failures of an S3 endpoint,
//! served by a scripted HTTP server on 127.0.0.1.

// Test helpers panic to report a failure, as the tests themselves do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use coordinator_store::conformance::{self, SuiteOptions, VersionScheme};
use coordinator_store::{
    LeaseStore, ObjectBackend, ObjectStoreLease, StoreError, StoreOptions, Version,
};
use object_store::aws::AmazonS3Builder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_object_store_in_memory() {
    let store: Arc<dyn LeaseStore> = Arc::new(ObjectStoreLease::in_memory());
    assert_eq!(store.backend(), "memory-object-store");
    let options = SuiteOptions {
        // InMemory's ETag is a write counter.
        versions: VersionScheme::UniquePerWrite,
        ..SuiteOptions::default()
    };
    conformance::run_all_with(store.clone(), "conf", &options).await;
    conformance::run_all_with(store, "", &options).await;
}

/// One canned HTTP response.
#[derive(Clone)]
enum Reply {
    Status(u16, &'static str, &'static str),
    /// Accept the request and never answer.
    Hang,
    /// 200 without an ETag, as some S3 look-alikes answer a PUT.
    OkWithoutEtag,
}

/// Serves `replies` in order (the last one repeats) on 127.0.0.1 and counts
/// the requests. Stops when the test's runtime ends.
async fn server(replies: Vec<Reply>) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let n = seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let reply = replies[n.min(replies.len() - 1)].clone();
            tokio::spawn(async move {
                // Read the request head and body (small; one read suffices
                // for these tests' requests, but drain what arrives).
                let mut buf = vec![0u8; 64 * 1024];
                let _ =
                    tokio::time::timeout(Duration::from_millis(200), socket.read(&mut buf)).await;
                match reply {
                    Reply::Hang => tokio::time::sleep(Duration::from_secs(60)).await,
                    Reply::OkWithoutEtag => {
                        let response =
                            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
                        let _ = socket.write_all(response.as_bytes()).await;
                        let _ = socket.shutdown().await;
                    }
                    Reply::Status(code, reason, body) => {
                        // Successes carry what S3's would: an ETag and a date.
                        let success = if code == 200 {
                            "ETag: \"scripted\"\r\nLast-Modified: Sun, 29 Nov 2026 05:51:37 GMT\r\n"
                        } else {
                            ""
                        };
                        let response = format!(
                            "HTTP/1.1 {code} {reason}\r\n{success}Content-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = socket.write_all(response.as_bytes()).await;
                        let _ = socket.shutdown().await;
                    }
                }
            });
        }
    });
    (endpoint, count)
}

fn s3_error(code: &'static str) -> &'static str {
    match code {
        "SlowDown" => "<?xml version=\"1.0\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
        "ConditionalRequestConflict" => "<?xml version=\"1.0\"?><Error><Code>ConditionalRequestConflict</Code><Message>A conflicting conditional operation is currently in progress against this resource. Please try again.</Message></Error>",
        "InternalError" => "<?xml version=\"1.0\"?><Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>",
        "NoSuchBucket" => "<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message><BucketName>scripted</BucketName></Error>",
        "InvalidAccessKeyId" => "<?xml version=\"1.0\"?><Error><Code>InvalidAccessKeyId</Code><Message>The AWS Access Key Id you provided does not exist in our records.</Message></Error>",
        "PreconditionFailed" => "<?xml version=\"1.0\"?><Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message></Error>",
        _ => "",
    }
}

fn fast() -> StoreOptions {
    StoreOptions {
        request_timeout: Duration::from_millis(500),
        max_retries: 1,
        retry_timeout: Duration::from_secs(1),
    }
}

/// An S3 store on a scripted server, built by hand the way a caller with
/// its own `object_store` configuration would (static credentials: the
/// server ignores the signature).
async fn scripted(
    replies: Vec<Reply>,
) -> (Arc<dyn LeaseStore>, Arc<std::sync::atomic::AtomicUsize>) {
    let (endpoint, count) = server(replies).await;
    let options = fast();
    let s3 = AmazonS3Builder::new()
        .with_bucket_name("scripted")
        .with_region("us-east-1")
        .with_endpoint(&endpoint)
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .with_client_options(options.client_options().with_allow_http(true))
        .with_retry(options.retry_config())
        .build()
        .unwrap();
    let store = ObjectStoreLease::new(
        Arc::new(s3),
        ObjectBackend::S3,
        "scripted",
        format!("s3://scripted/root?endpoint={endpoint}"),
        "root",
        options,
    )
    .unwrap();
    (Arc::new(store), count)
}

fn requests(count: &std::sync::atomic::AtomicUsize) -> usize {
    count.load(std::sync::atomic::Ordering::SeqCst)
}

#[tokio::test]
async fn slow_down_and_429_are_throttled() {
    let (store, count) =
        scripted(vec![Reply::Status(503, "Slow Down", s3_error("SlowDown"))]).await;
    let err = store.put("k", "v".into()).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Throttled { key, backend: "s3", .. } if key == "k"),
        "{err:?}"
    );
    assert_eq!(requests(&count), 2, "one retry (max_retries = 1)");

    let (store, _) = scripted(vec![Reply::Status(429, "Too Many Requests", "")]).await;
    let err = store.get("k").await.unwrap_err();
    assert!(matches!(err, StoreError::Throttled { .. }), "{err:?}");
    assert!(err.is_transient());
}

#[tokio::test]
async fn conditional_request_conflict_is_retried_then_lost() {
    let conflict = Reply::Status(409, "Conflict", s3_error("ConditionalRequestConflict"));
    let (store, count) = scripted(vec![conflict.clone()]).await;
    let err = store.create("k", "v".into()).await.unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err:?}");
    assert_eq!(requests(&count), 2, "retried max_retries = 1 times");

    let (store, count) = scripted(vec![conflict]).await;
    let err = store
        .compare_and_swap("k", &Version::new("\"abc\""), "v".into())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    // object_store retries a 409 on If-Match itself (max_retries = 1).
    assert_eq!(requests(&count), 2);

    // A conflict that clears: the retry succeeds.
    let ok = Reply::Status(200, "OK", "");
    let (store, count) = scripted(vec![
        Reply::Status(409, "Conflict", s3_error("ConditionalRequestConflict")),
        ok,
    ])
    .await;
    let written = store.create("k", "v".into()).await.unwrap();
    assert!(written.version.as_str().contains("scripted"), "{written:?}");
    assert_eq!(requests(&count), 2);
}

#[tokio::test]
async fn precondition_failures_are_conflicts() {
    let failed = Reply::Status(412, "Precondition Failed", s3_error("PreconditionFailed"));
    let (store, _) = scripted(vec![failed]).await;
    let err = store.create("k", "v".into()).await.unwrap_err();
    assert!(matches!(err, StoreError::AlreadyExists { .. }), "{err:?}");
    let err = store
        .compare_and_swap("k", &Version::new("\"abc\""), "v".into())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
}

#[tokio::test]
async fn server_errors_on_writes_are_ambiguous_on_reads_unavailable() {
    let internal = Reply::Status(500, "Internal Server Error", s3_error("InternalError"));
    let (store, count) = scripted(vec![internal]).await;
    let err = store
        .compare_and_swap("k", &Version::new("\"abc\""), "v".into())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Ambiguous { op: "compare_and_swap", key, backend: "s3", .. } if key == "k"),
        "{err:?}"
    );
    let err = store.get("k").await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert_eq!(requests(&count), 4, "each retried once");
}

#[tokio::test]
async fn write_timeouts_are_ambiguous_and_bounded() {
    let (store, count) = scripted(vec![Reply::Hang]).await;
    let started = Instant::now();
    let err = store.create("k", "v".into()).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        matches!(&err, StoreError::Ambiguous { op: "create", .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("re-read"), "{err}");
    // A conditional write is not retried after a timeout: it may have landed.
    assert_eq!(requests(&count), 1);
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");

    let started = Instant::now();
    let err = store.get("k").await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    // Reads are retried (max_retries = 1): two attempts of 500 ms at most.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn missing_bucket_and_bad_credentials_are_misconfigured() {
    let (store, _) = scripted(vec![Reply::Status(
        404,
        "Not Found",
        s3_error("NoSuchBucket"),
    )])
    .await;
    for err in [
        store.get("state.json").await.unwrap_err(),
        store.create("state.json", "v".into()).await.unwrap_err(),
        store.delete("state.json").await.unwrap_err(),
    ] {
        assert!(
            matches!(&err, StoreError::Misconfigured { backend: "s3", message } if message.contains("`scripted` does not exist") && message.contains("state.json")),
            "{err:?}"
        );
    }

    let (store, _) = scripted(vec![Reply::Status(
        403,
        "Forbidden",
        s3_error("InvalidAccessKeyId"),
    )])
    .await;
    let err = store.get("state.json").await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Misconfigured { message, .. } if message.contains("credentials were refused") && message.contains("AWS_ACCESS_KEY_ID")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_write_acknowledged_without_etag_is_ambiguous() {
    let (store, _) = scripted(vec![Reply::OkWithoutEtag]).await;
    let err = store.create("k", "v".into()).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Ambiguous { op: "create", .. } if err.to_string().contains("no ETag")),
        "{err:?}"
    );
}
