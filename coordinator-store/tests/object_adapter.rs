//! [`ObjectStoreLease`] over `object_store`'s in-memory store: the shared
//! contract suite (the adapter's version handling, error mapping and listing
//! without a network), the mapping of HTTP failures of an S3 endpoint,
//! served by a scripted HTTP server on 127.0.0.1, and S3's conditional
//! delete and its probe against a small fake S3 that honours or ignores
//! `If-Match` on DELETE (as MinIO ignores it), with canned answers on top.

// Test helpers panic to report a failure, as the tests themselves do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use coordinator_store::conformance::{self, SuiteOptions, VersionScheme};
use coordinator_store::{
    LeaseStore, ObjectBackend, ObjectStoreLease, StoreError, StoreOptions, Version,
};
use object_store::aws::AmazonS3Builder;
use object_store::gcp::GoogleCloudStorageBuilder;
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
    /// Read the request and close the connection without an answer.
    Close,
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
                send(&mut socket, reply).await;
            });
        }
    });
    (endpoint, count)
}

/// Answers one request with `reply`.
async fn send(socket: &mut tokio::net::TcpStream, reply: Reply) {
    match reply {
        Reply::Hang => tokio::time::sleep(Duration::from_secs(60)).await,
        Reply::Close => {
            let _ = socket.shutdown().await;
        }
        Reply::OkWithoutEtag => {
            let response = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
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
}

fn s3_error(code: &'static str) -> &'static str {
    match code {
        "SlowDown" => "<?xml version=\"1.0\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>",
        "ConditionalRequestConflict" => "<?xml version=\"1.0\"?><Error><Code>ConditionalRequestConflict</Code><Message>A conflicting conditional operation is currently in progress against this resource. Please try again.</Message></Error>",
        "InternalError" => "<?xml version=\"1.0\"?><Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>",
        "NoSuchBucket" => "<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message><BucketName>scripted</BucketName></Error>",
        "InvalidAccessKeyId" => "<?xml version=\"1.0\"?><Error><Code>InvalidAccessKeyId</Code><Message>The AWS Access Key Id you provided does not exist in our records.</Message></Error>",
        "PreconditionFailed" => "<?xml version=\"1.0\"?><Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message></Error>",
        "NoSuchKey" => "<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>",
        "NotImplemented" => "<?xml version=\"1.0\"?><Error><Code>NotImplemented</Code><Message>A header you provided implies functionality that is not implemented.</Message></Error>",
        "InvalidRequest" => "<?xml version=\"1.0\"?><Error><Code>InvalidRequest</Code><Message>Conditional headers are not supported on DELETE.</Message></Error>",
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

// ---------------------------------------------------------------------------
// Conditional delete (S3 `DELETE` with `If-Match`) against a fake S3.

/// What the fake S3 does with `If-Match` on DELETE.
#[derive(Clone, Copy, Debug, PartialEq)]
enum IfMatchOnDelete {
    /// As AWS S3 and moto: 412 on another ETag, 404 on a missing key.
    Honour,
    /// As MinIO: deletes whatever is there.
    Ignore,
    /// 501 NotImplemented to any DELETE carrying `If-Match`.
    NotImplemented,
    /// 400 InvalidRequest to any DELETE carrying `If-Match`.
    BadRequest,
}

/// One request the fake saw.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    /// The path, without the query.
    path: String,
    if_match: Option<String>,
    /// The query's `X-Amz-SignedHeaders`, for presigned requests.
    signed_headers: Option<String>,
}

/// A small stateful S3 on 127.0.0.1: PUT (plain, `If-None-Match: *`,
/// `If-Match`), GET and DELETE, with `If-Match` on DELETE handled as `mode`
/// says. Canned replies, when queued, answer the next conditional DELETEs
/// instead. Connections close after each answer.
struct FakeS3 {
    mode: IfMatchOnDelete,
    objects: std::sync::Mutex<std::collections::BTreeMap<String, (Vec<u8>, String)>>,
    writes: std::sync::atomic::AtomicUsize,
    canned: std::sync::Mutex<std::collections::VecDeque<Reply>>,
    seen: std::sync::Mutex<Vec<Seen>>,
}

impl FakeS3 {
    fn new(mode: IfMatchOnDelete) -> Arc<Self> {
        Arc::new(Self {
            mode,
            objects: Default::default(),
            writes: Default::default(),
            canned: Default::default(),
            seen: Default::default(),
        })
    }

    /// Serves on 127.0.0.1 until the test's runtime ends; the endpoint.
    async fn serve(self: &Arc<Self>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let fake = self.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let fake = fake.clone();
                tokio::spawn(async move {
                    let Some((head, body)) = read_request(&mut socket).await else {
                        return;
                    };
                    let reply = fake.handle(&head, body);
                    match reply {
                        Answer::Canned(reply) => send(&mut socket, reply).await,
                        Answer::Http(response) => {
                            let _ = socket.write_all(&response).await;
                            let _ = socket.shutdown().await;
                        }
                    }
                });
            }
        });
        endpoint
    }

    fn queue(&self, replies: impl IntoIterator<Item = Reply>) {
        self.canned.lock().unwrap().extend(replies);
    }

    fn keys(&self) -> Vec<String> {
        self.objects.lock().unwrap().keys().cloned().collect()
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn conditional_deletes(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| s.method == "DELETE" && s.if_match.is_some())
            .collect()
    }

    fn handle(&self, head: &str, body: Vec<u8>) -> Answer {
        let mut lines = head.split("\r\n");
        let mut request_line = lines.next().unwrap_or_default().split(' ');
        let method = request_line.next().unwrap_or_default().to_owned();
        let target = request_line.next().unwrap_or_default();
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let header = |name: &str| {
            head.split("\r\n").skip(1).find_map(|line| {
                let (n, v) = line.split_once(':')?;
                n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
            })
        };
        let if_match = header("if-match");
        let if_none_match = header("if-none-match");
        let signed_headers = query
            .split('&')
            .find_map(|pair| pair.strip_prefix("X-Amz-SignedHeaders="))
            .map(|v| v.replace("%3B", ";"));
        self.seen.lock().unwrap().push(Seen {
            method: method.clone(),
            path: path.to_owned(),
            if_match: if_match.clone(),
            signed_headers,
        });
        if method == "DELETE" && if_match.is_some() {
            if let Some(reply) = self.canned.lock().unwrap().pop_front() {
                return Answer::Canned(reply);
            }
        }
        let mut objects = self.objects.lock().unwrap();
        let current = objects.get(path).map(|(_, e_tag)| e_tag.clone());
        match method.as_str() {
            "PUT" => {
                if if_none_match.as_deref() == Some("*") && current.is_some() {
                    return error(412, "Precondition Failed", "PreconditionFailed");
                }
                if let Some(expected) = &if_match {
                    match &current {
                        None => return error(404, "Not Found", "NoSuchKey"),
                        Some(e_tag) if e_tag != expected => {
                            return error(412, "Precondition Failed", "PreconditionFailed")
                        }
                        Some(_) => {}
                    }
                }
                let n = self
                    .writes
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let e_tag = format!("\"fake-{n}\"");
                objects.insert(path.to_owned(), (body, e_tag.clone()));
                http(200, "OK", &[("ETag", e_tag)], b"")
            }
            "GET" => match objects.get(path) {
                None => error(404, "Not Found", "NoSuchKey"),
                Some((body, e_tag)) => http(
                    200,
                    "OK",
                    &[
                        ("ETag", e_tag.clone()),
                        ("Last-Modified", "Sun, 29 Nov 2026 05:51:37 GMT".to_owned()),
                    ],
                    body,
                ),
            },
            "DELETE" => {
                if let Some(expected) = &if_match {
                    match self.mode {
                        IfMatchOnDelete::Honour => match &current {
                            None => return error(404, "Not Found", "NoSuchKey"),
                            Some(e_tag) if e_tag != expected => {
                                return error(412, "Precondition Failed", "PreconditionFailed")
                            }
                            Some(_) => {}
                        },
                        IfMatchOnDelete::Ignore => {}
                        IfMatchOnDelete::NotImplemented => {
                            return error(501, "Not Implemented", "NotImplemented")
                        }
                        IfMatchOnDelete::BadRequest => {
                            return error(400, "Bad Request", "InvalidRequest")
                        }
                    }
                }
                objects.remove(path);
                http(204, "No Content", &[], b"")
            }
            // `object_store` deletes through DeleteObjects
            // (`POST /<bucket>?delete` with the keys in XML).
            "POST" if query == "delete" => {
                let text = String::from_utf8_lossy(&body);
                let mut result = String::from("<DeleteResult>");
                for key in text.split("<Key>").skip(1) {
                    let key = key.split("</Key>").next().unwrap_or_default();
                    objects.remove(&format!("/scripted/{key}"));
                    result.push_str(&format!("<Deleted><Key>{key}</Key></Deleted>"));
                }
                result.push_str("</DeleteResult>");
                http(200, "OK", &[], result.as_bytes())
            }
            _ => error(405, "Method Not Allowed", "MethodNotAllowed"),
        }
    }
}

enum Answer {
    Canned(Reply),
    Http(Vec<u8>),
}

fn http(code: u16, reason: &str, headers: &[(&str, String)], body: &[u8]) -> Answer {
    let mut out = format!("HTTP/1.1 {code} {reason}\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    Answer::Http(bytes)
}

fn error(code: u16, reason: &str, s3_code: &str) -> Answer {
    let body = format!(
        "<?xml version=\"1.0\"?><Error><Code>{s3_code}</Code><Message>fake</Message></Error>"
    );
    http(
        code,
        reason,
        &[("Content-Type", "application/xml".to_owned())],
        body.as_bytes(),
    )
}

/// Reads one request: its head (as text) and its body (by Content-Length).
async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let deadline = Duration::from_secs(5);
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = tokio::time::timeout(deadline, socket.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length = head
        .split("\r\n")
        .find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = tokio::time::timeout(deadline, socket.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((head, body))
}

/// An S3 store on a fake S3, built by hand with the means to send
/// conditional deletes (not yet probed).
async fn on_fake_s3(mode: IfMatchOnDelete) -> (ObjectStoreLease, Arc<FakeS3>) {
    let fake = FakeS3::new(mode);
    let endpoint = fake.serve().await;
    let options = fast();
    let client_options = options.client_options().with_allow_http(true);
    let s3 = AmazonS3Builder::new()
        .with_bucket_name("scripted")
        .with_region("us-east-1")
        .with_endpoint(&endpoint)
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .with_client_options(client_options.clone())
        .with_retry(options.retry_config())
        .build()
        .unwrap();
    let store = ObjectStoreLease::new(
        Arc::new(s3.clone()),
        ObjectBackend::S3,
        "scripted",
        format!("s3://scripted/root?endpoint={endpoint}"),
        "root",
        options,
    )
    .unwrap()
    .with_s3_conditional_delete(s3, &client_options)
    .unwrap();
    (store, fake)
}

/// Runs `future` with the `tracing` lines it emits captured (at info and
/// above); returns its output and the lines.
async fn with_logs<T>(future: impl std::future::Future<Output = T>) -> (T, String) {
    #[derive(Clone, Default)]
    struct Buffer(Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // A current-thread runtime polls the future on this thread, where the
    // default subscriber is set.
    let _guard = tracing::subscriber::set_default(subscriber);
    let out = future.await;
    let logs = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    (out, logs)
}

/// MinIO accepts `If-Match` on DELETE and deletes anyway: the probe sees
/// the object gone after a DELETE naming a wrong ETag and leaves
/// conditional delete off, saying why; delete_if_version stays
/// NotSupported and sends nothing.
#[tokio::test]
async fn probe_turns_conditional_delete_off_where_if_match_is_ignored() {
    let (mut store, fake) = on_fake_s3(IfMatchOnDelete::Ignore).await;
    assert!(!store.capabilities().conditional_delete, "never assumed");
    let (on, logs) = with_logs(store.probe_conditional_delete(".coordinator-probe")).await;
    assert!(!on);
    assert!(!store.capabilities().conditional_delete);
    assert!(
        logs.contains("WARN")
            && logs.contains("coordinator_store")
            && logs.contains("conditional delete off")
            && logs.contains("naming another version was accepted")
            && logs.contains("backend=\"s3\""),
        "{logs}"
    );
    // The probe sent one conditional DELETE (a wrong ETag, signed), saw the
    // object gone, and stopped; nothing is left behind.
    let deletes = fake.conditional_deletes();
    assert_eq!(deletes.len(), 1, "{deletes:?}");
    assert!(
        deletes[0]
            .signed_headers
            .as_deref()
            .is_some_and(|h| h.contains("if-match")),
        "If-Match is bound to the signature: {deletes:?}"
    );
    assert!(fake.keys().is_empty(), "{:?}", fake.keys());

    let written = store.create("k", "v".into()).await.unwrap();
    let err = store
        .delete_if_version("k", &written.version)
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
    assert_eq!(fake.conditional_deletes().len(), 1, "nothing more was sent");
    assert!(store.get("k").await.unwrap().is_some());
}

/// A server that answers 501 or 400 to a DELETE with `If-Match` does not
/// support it: off, at info, and the probe object is cleaned up.
#[tokio::test]
async fn probe_turns_conditional_delete_off_where_it_is_refused() {
    for mode in [IfMatchOnDelete::NotImplemented, IfMatchOnDelete::BadRequest] {
        let (mut store, fake) = on_fake_s3(mode).await;
        let (on, logs) = with_logs(store.probe_conditional_delete(".coordinator-probe")).await;
        assert!(!on, "{mode:?}");
        assert!(
            logs.contains("INFO") && logs.contains("does not support a conditional DELETE"),
            "{mode:?}: {logs}"
        );
        assert!(fake.keys().is_empty(), "{mode:?}: cleaned up");
        let requests: Vec<String> = fake.seen().iter().map(|s| s.method.clone()).collect();
        assert_eq!(
            requests,
            ["PUT", "DELETE", "POST"],
            "{mode:?}: create, the refused conditional delete (not retried), the clean-up"
        );
    }
}

/// Where `If-Match` on DELETE is honoured, the probe turns it on, and
/// delete_if_version refuses a stale ETag, deletes on the current one and
/// refuses on a missing object.
#[tokio::test]
async fn probe_turns_conditional_delete_on_where_if_match_is_honoured() {
    let (mut store, fake) = on_fake_s3(IfMatchOnDelete::Honour).await;
    let (on, logs) = with_logs(store.probe_conditional_delete(".coordinator-probe")).await;
    assert!(on);
    assert!(store.capabilities().conditional_delete);
    assert!(logs.contains("conditional delete on"), "{logs}");
    let requests: Vec<String> = fake.seen().iter().map(|s| s.method.clone()).collect();
    assert_eq!(requests, ["PUT", "DELETE", "GET", "DELETE", "GET"]);
    assert!(fake.keys().is_empty());

    let first = store.create("k", "1".into()).await.unwrap();
    let second = store
        .compare_and_swap("k", &first.version, "2".into())
        .await
        .unwrap();
    let err = store
        .delete_if_version("k", &first.version)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { key, backend: "s3" } if key == "k"),
        "{err:?}"
    );
    assert_eq!(
        store.get("k").await.unwrap().unwrap().version,
        second.version
    );
    store.delete_if_version("k", &second.version).await.unwrap();
    assert!(store.get("k").await.unwrap().is_none());
    let err = store
        .delete_if_version("k", &second.version)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");

    let last = fake.conditional_deletes().pop().unwrap();
    assert_eq!(last.path, "/scripted/root/k");
    assert_eq!(last.if_match.as_deref(), Some(second.version.as_str()));
}

/// The answers to a conditional DELETE map like the rest of the adapter's:
/// 412, 404 NoSuchKey and 409 are conflicts (409 not retried), a missing
/// bucket and refused credentials are misconfigurations, 503 SlowDown is
/// throttling and 500 is ambiguous (each retried once), a lost answer is
/// ambiguous (not retried, bounded), 501 after a passed probe and 400 are
/// backend errors. Every error names the key and the backend.
#[tokio::test]
async fn conditional_delete_maps_statuses() {
    let (mut store, fake) = on_fake_s3(IfMatchOnDelete::Honour).await;
    assert!(store.probe_conditional_delete(".coordinator-probe").await);
    let version = Version::new("\"fake-0\"");
    let mut sent = fake.conditional_deletes().len();
    let run = |replies: Vec<Reply>| {
        fake.queue(replies);
        let store = &store;
        let version = &version;
        async move {
            let started = Instant::now();
            let err = store.delete_if_version("k", version).await.unwrap_err();
            (err, started.elapsed())
        }
    };
    let mut requests = |expected: usize, what: &str| {
        let now = fake.conditional_deletes().len();
        assert_eq!(now - sent, expected, "{what}: requests");
        sent = now;
    };

    let (err, _) = run(vec![Reply::Status(
        412,
        "Precondition Failed",
        s3_error("PreconditionFailed"),
    )])
    .await;
    assert!(
        matches!(&err, StoreError::Conflict { key, backend: "s3" } if key == "k"),
        "412: {err:?}"
    );
    requests(1, "412");

    let (err, _) = run(vec![Reply::Status(404, "Not Found", s3_error("NoSuchKey"))]).await;
    assert!(matches!(err, StoreError::Conflict { .. }), "404: {err:?}");
    requests(1, "404");

    let (err, _) = run(vec![Reply::Status(
        409,
        "Conflict",
        s3_error("ConditionalRequestConflict"),
    )])
    .await;
    assert!(matches!(err, StoreError::Conflict { .. }), "409: {err:?}");
    requests(1, "409 is not retried");

    let (err, _) = run(vec![Reply::Status(
        404,
        "Not Found",
        s3_error("NoSuchBucket"),
    )])
    .await;
    assert!(
        matches!(&err, StoreError::Misconfigured { backend: "s3", message } if message.contains("`scripted` does not exist") && message.contains("`k`")),
        "NoSuchBucket: {err:?}"
    );
    requests(1, "NoSuchBucket");

    let (err, _) = run(vec![Reply::Status(
        403,
        "Forbidden",
        s3_error("InvalidAccessKeyId"),
    )])
    .await;
    assert!(
        matches!(&err, StoreError::Misconfigured { message, .. } if message.contains("credentials were refused") && message.contains("delete_if_version on `k`") && message.contains("AWS_ACCESS_KEY_ID")),
        "403: {err:?}"
    );
    requests(1, "403");

    let slow_down = Reply::Status(503, "Slow Down", s3_error("SlowDown"));
    let (err, _) = run(vec![slow_down.clone(), slow_down]).await;
    assert!(
        matches!(&err, StoreError::Throttled { key, backend: "s3", .. } if key == "k"),
        "503 SlowDown: {err:?}"
    );
    requests(2, "503 is retried once (max_retries = 1)");

    let internal = Reply::Status(500, "Internal Server Error", s3_error("InternalError"));
    let (err, _) = run(vec![internal.clone(), internal]).await;
    assert!(
        matches!(&err, StoreError::Ambiguous { op: "delete_if_version", key, backend: "s3", .. } if key == "k"),
        "500: {err:?}"
    );
    assert!(err.to_string().contains("re-read"), "{err}");
    requests(2, "500 is retried once");

    // A 503 that clears: the retry's answer counts.
    fake.queue([Reply::Status(503, "Slow Down", s3_error("SlowDown"))]);
    let written = store.create("k2", "x".into()).await.unwrap();
    store
        .delete_if_version("k2", &written.version)
        .await
        .unwrap();
    assert!(store.get("k2").await.unwrap().is_none());
    requests(2, "503 then the real answer");

    let (err, elapsed) = run(vec![Reply::Hang]).await;
    assert!(
        matches!(
            &err,
            StoreError::Ambiguous {
                op: "delete_if_version",
                ..
            }
        ),
        "a hang: {err:?}"
    );
    assert!(
        elapsed < Duration::from_millis(1500),
        "one attempt of request_timeout = 500 ms: {elapsed:?}"
    );
    requests(1, "a timed-out conditional delete is not retried");

    let (err, _) = run(vec![Reply::Close]).await;
    assert!(
        matches!(
            &err,
            StoreError::Ambiguous {
                op: "delete_if_version",
                ..
            }
        ),
        "a dropped connection: {err:?}"
    );
    requests(1, "a dropped conditional delete is not retried");

    let (err, _) = run(vec![Reply::Status(
        501,
        "Not Implemented",
        s3_error("NotImplemented"),
    )])
    .await;
    assert!(
        matches!(&err, StoreError::Backend { op: "delete_if_version", key, backend: "s3", .. } if key == "k" && err.to_string().contains("501")),
        "501 after a passed probe is not NotSupported (callers would delete blindly): {err:?}"
    );
    requests(1, "501");

    let (err, _) = run(vec![Reply::Status(
        400,
        "Bad Request",
        s3_error("InvalidRequest"),
    )])
    .await;
    assert!(
        matches!(&err, StoreError::Backend { op: "delete_if_version", .. } if err.to_string().contains("InvalidRequest")),
        "400: {err:?}"
    );
    requests(1, "400");

    // Error messages name the endpoint and object, never the signature.
    let (err, _) = run(vec![Reply::Status(
        400,
        "Bad Request",
        s3_error("InvalidRequest"),
    )])
    .await;
    let text = format!("{err} {:?}", std::error::Error::source(&err));
    assert!(text.contains("/scripted/root/k"), "{text}");
    assert!(!text.contains("X-Amz-Signature"), "{text}");
}

/// The means of a conditional delete must be the very store the adapter
/// wraps, of the adapter's own backend.
#[tokio::test]
async fn conditional_delete_needs_the_wrapped_s3_store() {
    let options = fast();
    let client_options = options.client_options().with_allow_http(true);
    let s3 = |bucket: &str| {
        AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region("us-east-1")
            .with_endpoint("http://127.0.0.1:9")
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .with_client_options(client_options.clone())
            .build()
            .unwrap()
    };
    let lease = |backend| {
        ObjectStoreLease::new(
            Arc::new(s3("one")),
            backend,
            "one",
            "s3://one/p",
            "p",
            options,
        )
        .unwrap()
    };
    let err = lease(ObjectBackend::S3)
        .with_s3_conditional_delete(s3("two"), &client_options)
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Misconfigured { message, .. } if message.contains("AmazonS3(two)") && message.contains("AmazonS3(one)")),
        "{err:?}"
    );
    let err = lease(ObjectBackend::Gcs)
        .with_s3_conditional_delete(s3("one"), &client_options)
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Misconfigured { message, .. } if message.contains("need a store of backend `s3`")),
        "{err:?}"
    );
    let mut store = lease(ObjectBackend::S3)
        .with_s3_conditional_delete(s3("one"), &client_options)
        .unwrap();
    assert!(!store.capabilities().conditional_delete, "never assumed");

    // Without the means, the probe sends nothing and says no.
    let mut memory = ObjectStoreLease::in_memory();
    assert!(!memory.probe_conditional_delete("p").await);
    // Nothing listens on port 9: the probe fails, the capability stays off,
    // and the probe itself does not fail.
    assert!(!store.probe_conditional_delete("p").await);
}

/// `list_page` on S3 reads one page and stops: a deep prefix (the server
/// always says more pages follow) costs one request, not one per 1,000.
#[tokio::test]
async fn list_page_reads_one_page_of_a_deep_prefix() {
    let contents: String = (0..1_000)
        .map(|i| {
            format!(
                "<Contents><Key>root/q/k{i:05}</Key><LastModified>2026-11-29T05:51:37.000Z</LastModified><ETag>\"e{i}\"</ETag><Size>1</Size><StorageClass>STANDARD</StorageClass></Contents>"
            )
        })
        .collect();
    let page = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>scripted</Name><Prefix>root/q/</Prefix><KeyCount>1000</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated><NextContinuationToken>more</NextContinuationToken>{contents}</ListBucketResult>"
    );
    let page: &'static str = Box::leak(page.into_boxed_str());
    let (store, count) = scripted(vec![Reply::Status(200, "OK", page)]).await;
    let listed = store.list_page("q", None, 10).await.unwrap();
    assert_eq!(listed.len(), 10);
    assert_eq!(listed[0].key, "q/k00000");
    assert_eq!(requests(&count), 1, "one LIST for one page");
    // The scripted server ignores `start-after`; keys up to it are still
    // skipped, and the rest of the page is read in one more request.
    let after = store.list_page("q", Some("q/k00003"), 996).await.unwrap();
    assert_eq!(after.first().map(|m| m.key.as_str()), Some("q/k00004"));
    assert_eq!(after.len(), 996);
    assert_eq!(requests(&count), 2);
}

// ---------------------------------------------------------------------------
// Conditional delete on GCS (XML-API `DELETE` with
// `x-goog-if-generation-match`) against a small fake GCS. No GCS emulator
// installable here honours the generation on DELETE (see
// tests/gcs_emulators.rs), so this fake is where the request's shape and
// the mapping of its answers are tested.

/// One request the fake GCS saw.
#[derive(Clone, Debug)]
struct SeenGcs {
    method: String,
    path: String,
    generation_match: Option<String>,
    authorization: Option<String>,
}

/// A small stateful GCS XML API on 127.0.0.1: PUT, GET and DELETE of
/// `/<bucket>/<object>`, every `x-goog-if-generation-match` honoured
/// (`0`: must not exist), unless `ignore_on_delete` (as fake-gcs-server
/// v1.54.0 ignores it on DELETE).
struct FakeGcs {
    ignore_on_delete: bool,
    /// Object path → (body, generation).
    objects: std::sync::Mutex<std::collections::BTreeMap<String, (Vec<u8>, u64)>>,
    generation: std::sync::atomic::AtomicU64,
    seen: std::sync::Mutex<Vec<SeenGcs>>,
}

impl FakeGcs {
    async fn serve(ignore_on_delete: bool) -> (Arc<Self>, String) {
        let fake = Arc::new(Self {
            ignore_on_delete,
            objects: Default::default(),
            generation: std::sync::atomic::AtomicU64::new(1_700_000_000_000_000),
            seen: Default::default(),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let serving = fake.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let fake = serving.clone();
                tokio::spawn(async move {
                    let Some((head, body)) = read_request(&mut socket).await else {
                        return;
                    };
                    if let Answer::Http(response) = fake.handle(&head, body) {
                        let _ = socket.write_all(&response).await;
                        let _ = socket.shutdown().await;
                    }
                });
            }
        });
        (fake, endpoint)
    }

    fn seen(&self) -> Vec<SeenGcs> {
        self.seen.lock().unwrap().clone()
    }

    fn handle(&self, head: &str, body: Vec<u8>) -> Answer {
        let mut request_line = head.split("\r\n").next().unwrap_or_default().split(' ');
        let method = request_line.next().unwrap_or_default().to_owned();
        let target = request_line.next().unwrap_or_default();
        let path = target.split_once('?').map_or(target, |(p, _)| p).to_owned();
        let header = |name: &str| {
            head.split("\r\n").skip(1).find_map(|line| {
                let (n, v) = line.split_once(':')?;
                n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
            })
        };
        let generation_match = header("x-goog-if-generation-match");
        self.seen.lock().unwrap().push(SeenGcs {
            method: method.clone(),
            path: path.clone(),
            generation_match: generation_match.clone(),
            authorization: header("authorization"),
        });
        let wanted: Option<u64> = generation_match.as_deref().map(|g| g.parse().unwrap());
        let mut objects = self.objects.lock().unwrap();
        let current = objects.get(&path).map(|(_, generation)| *generation);
        let failed = |wanted: Option<u64>| match wanted {
            None => false,
            Some(0) => current.is_some(),
            Some(g) => current != Some(g),
        };
        let gcs_error = |code: u16, reason: &str, gcs_code: &str| error(code, reason, gcs_code);
        match method.as_str() {
            "PUT" => {
                if failed(wanted) {
                    return gcs_error(412, "Precondition Failed", "PreconditionFailed");
                }
                let generation = self
                    .generation
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                objects.insert(path, (body, generation));
                http(
                    200,
                    "OK",
                    &[
                        ("ETag", format!("\"e{generation}\"")),
                        ("x-goog-generation", generation.to_string()),
                    ],
                    b"",
                )
            }
            "GET" | "HEAD" => match objects.get(&path) {
                Some((body, generation)) => {
                    let answer = http(
                        200,
                        "OK",
                        &[
                            ("ETag", format!("\"e{generation}\"")),
                            ("x-goog-generation", generation.to_string()),
                            ("Last-Modified", "Sun, 29 Nov 2026 05:51:37 GMT".to_owned()),
                        ],
                        body,
                    );
                    match answer {
                        // HEAD: the same head, no body.
                        Answer::Http(mut bytes) if method == "HEAD" => {
                            let end = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
                            bytes.truncate(end + 4);
                            Answer::Http(bytes)
                        }
                        other => other,
                    }
                }
                None => gcs_error(404, "Not Found", "NoSuchKey"),
            },
            "DELETE" => {
                if current.is_none() {
                    return gcs_error(404, "Not Found", "NoSuchKey");
                }
                if !self.ignore_on_delete && failed(wanted) {
                    return gcs_error(412, "Precondition Failed", "PreconditionFailed");
                }
                objects.remove(&path);
                http(204, "No Content", &[], b"")
            }
            _ => gcs_error(405, "Method Not Allowed", "MethodNotAllowed"),
        }
    }
}

/// A GCS store on a fake GCS, built as open() builds one for an emulator
/// (an empty bearer token, no metadata server), with the means to send
/// conditional deletes (not yet probed).
async fn on_fake_gcs(ignore_on_delete: bool) -> (ObjectStoreLease, Arc<FakeGcs>) {
    let (fake, endpoint) = FakeGcs::serve(ignore_on_delete).await;
    let options = fast();
    let client_options = options.client_options().with_allow_http(true);
    let gcs = GoogleCloudStorageBuilder::new()
        .with_bucket_name("scripted")
        .with_base_url(&endpoint)
        .with_service_account_key(
            r#"{"disable_oauth":true,"client_email":"","private_key":"","private_key_id":""}"#,
        )
        .with_client_options(client_options.clone())
        .with_retry(options.retry_config())
        .build()
        .unwrap();
    let store = ObjectStoreLease::new(
        Arc::new(gcs.clone()),
        ObjectBackend::Gcs,
        "scripted",
        format!("gs://scripted/root?endpoint={endpoint}"),
        "root",
        options,
    )
    .unwrap()
    .with_gcs_conditional_delete(gcs, &endpoint, &client_options)
    .unwrap();
    (store, fake)
}

/// On a GCS that honours the generation on DELETE the probe turns
/// conditional delete on; a stale generation is refused and deletes
/// nothing, the current one deletes, a missing object is a conflict, and
/// a listing's version (no generation) costs one HEAD first, for delete
/// and compare-and-swap alike. The request is the XML API's, with the
/// generation and the store's bearer token.
#[tokio::test]
async fn gcs_conditional_delete_sends_the_generation() {
    let (mut store, fake) = on_fake_gcs(false).await;
    let (on, logs) = with_logs(store.probe_conditional_delete(".coordinator-probe")).await;
    assert!(on, "{logs}");
    assert!(store.capabilities().conditional_delete);
    let methods: Vec<String> = fake.seen().iter().map(|s| s.method.clone()).collect();
    assert_eq!(methods, ["PUT", "DELETE", "GET", "DELETE", "GET"]);
    let wrong = &fake.seen()[1];
    assert_eq!(
        wrong.generation_match.as_deref(),
        Some("1"),
        "the probe names generation 1, which no object has: {wrong:?}"
    );

    let first = store.create("k/a b.json", "1".into()).await.unwrap();
    let second = store
        .compare_and_swap("k/a b.json", &first.version, "2".into())
        .await
        .unwrap();
    let err = store
        .delete_if_version("k/a b.json", &first.version)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { key, backend: "gcs" } if key == "k/a b.json"),
        "{err:?}"
    );
    assert_eq!(
        store.get("k/a b.json").await.unwrap().unwrap().version,
        second.version
    );
    // What a GCS listing gives: the ETag, no generation. One HEAD reads
    // the generation; a listed ETag that is no longer the object's is a
    // conflict, with no DELETE sent.
    let listed = |written: &coordinator_store::Written| {
        let e_tag = written.version.as_str().split_once('|').unwrap().1;
        Version::new(format!("|{e_tag}"))
    };
    let sent_before = fake.seen().len();
    let err = store
        .delete_if_version("k/a b.json", &listed(&first))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    let methods: Vec<String> = fake.seen()[sent_before..]
        .iter()
        .map(|s| s.method.clone())
        .collect();
    assert_eq!(methods, ["HEAD"], "no DELETE for a stale listed ETag");

    let sent_before = fake.seen().len();
    store
        .delete_if_version("k/a b.json", &listed(&second))
        .await
        .unwrap();
    let methods: Vec<String> = fake.seen()[sent_before..]
        .iter()
        .map(|s| s.method.clone())
        .collect();
    assert_eq!(
        methods,
        ["HEAD", "DELETE"],
        "a listed version costs one HEAD"
    );
    let last = fake.seen().pop().unwrap();
    let generation = second.version.as_str().split_once('|').unwrap().0;
    assert_eq!(last.generation_match.as_deref(), Some(generation));
    assert_eq!(
        last.path, "/scripted/root%2Fk%2Fa%20b%2Ejson",
        "as object_store encodes GCS object names"
    );
    assert_eq!(
        last.authorization.as_deref(),
        Some("Bearer"),
        "the store's (empty) bearer token"
    );
    assert!(store.get("k/a b.json").await.unwrap().is_none());
    let err = store
        .delete_if_version("k/a b.json", &second.version)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");

    // A compare-and-swap with a listed version: the same HEAD first.
    let written = store.create("k/c", "1".into()).await.unwrap();
    let swapped = store
        .compare_and_swap("k/c", &listed(&written), "2".into())
        .await
        .unwrap();
    let err = store
        .compare_and_swap("k/c", &listed(&written), "3".into())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    assert_eq!(
        store.get("k/c").await.unwrap().unwrap().version,
        swapped.version
    );
}

/// A GCS that ignores the generation on DELETE (as fake-gcs-server
/// v1.54.0 does) leaves conditional delete off, saying why.
#[tokio::test]
async fn gcs_probe_turns_conditional_delete_off_where_the_generation_is_ignored() {
    let (mut store, _fake) = on_fake_gcs(true).await;
    let (on, logs) = with_logs(store.probe_conditional_delete(".coordinator-probe")).await;
    assert!(!on);
    assert!(
        logs.contains("WARN")
            && logs.contains("naming another version was accepted")
            && logs.contains("backend=\"gcs\""),
        "{logs}"
    );
    let written = store.create("k", "v".into()).await.unwrap();
    let err = store
        .delete_if_version("k", &written.version)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotSupported { backend: "gcs", .. }),
        "{err:?}"
    );
}
