//! A counting HTTP/1.1 proxy between real workers and a real S3 server
//! (moto), for the wire benchmark (`coordinator-wire-bench`).
//!
//! The proxy listens on `127.0.0.1`, opens one upstream connection per
//! client connection, and forwards bytes both ways. It parses the client's
//! side just enough to find each request: the request line, the headers, and
//! the body framed by `Content-Length` or `Transfer-Encoding: chunked`. Each
//! request is counted by [`RequestKind`] as its head arrives. The answers
//! are copied back unparsed: counting needs no more, and pipelined or
//! `Expect: 100-continue` requests pass unchanged. The proxy also times the
//! server: from a request's head to the first byte that comes back after
//! it ([`RoundTrips`]; exact for clients that wait for each answer before
//! the next request, as the workers' HTTP client does), so that the
//! simulator can be given the same store latency.
//!
//! It never changes a byte, so what the workers send with the proxy in
//! front is what they send without it. It is the seed of the fault proxy
//! of the real-stack chaos test (issue 14): faults that act on requests
//! (latency, resets, a blackhole, injected errors) hook in where
//! [`RequestHead`] is classified; those that act on answers ("apply, then
//! lose the answer") need the answer framed the same way, with
//! [`forward_body`] on the upstream side.
//!
//! A plain tokio proxy rather than hyper: hyper's server and client would
//! re-frame every message (and normalise headers) between the worker and
//! the server, and its connection pool would decouple client connections
//! from upstream ones, which a later fault proxy needs to keep paired
//! (dropping one connection must drop exactly that one).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use coordinator_testkit::proxy::CountingProxy;
//! let proxy = CountingProxy::start("http://127.0.0.1:9000").await?;
//! // point the workers at proxy.endpoint() instead of the server …
//! let before = proxy.counts();
//! // … later
//! let during = proxy.counts() - before;
//! println!("{} GETs", during.get);
//! # Ok(()) }
//! ```

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The longest request head (request line and headers) accepted.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// What an S3 request is, as the simulator counts them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    /// `GET` of an object.
    Get,
    /// `PUT` of an object (conditional or not).
    Put,
    /// `GET` of a bucket with a `list-type` query (ListObjectsV2).
    List,
    /// `DELETE` of an object.
    Delete,
    /// `HEAD` of an object.
    Head,
    /// Anything else (`POST`, bucket operations the S3 tests' set-up sends…).
    Other,
}

impl RequestKind {
    /// Classifies a request by its method and target (`/bucket/key?query`).
    ///
    /// ```
    /// use coordinator_testkit::proxy::RequestKind;
    /// assert_eq!(RequestKind::of("GET", "/b?list-type=2&prefix=x"), RequestKind::List);
    /// assert_eq!(RequestKind::of("GET", "/b/ns/lease.json"), RequestKind::Get);
    /// ```
    pub fn of(method: &str, target: &str) -> Self {
        let query = target.split_once('?').map_or("", |(_, q)| q);
        match method {
            "GET" if query.split('&').any(|p| p.starts_with("list-type=")) => Self::List,
            "GET" => Self::Get,
            "PUT" => Self::Put,
            "DELETE" => Self::Delete,
            "HEAD" => Self::Head,
            _ => Self::Other,
        }
    }
}

/// Requests counted, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RequestCounts {
    /// Object `GET`s.
    pub get: u64,
    /// Object `PUT`s.
    pub put: u64,
    /// Listings.
    pub list: u64,
    /// `DELETE`s.
    pub delete: u64,
    /// `HEAD`s.
    pub head: u64,
    /// Everything else.
    pub other: u64,
}

impl RequestCounts {
    /// Every request.
    pub fn total(&self) -> u64 {
        self.get + self.put + self.list + self.delete + self.head + self.other
    }
}

impl std::ops::Sub for RequestCounts {
    type Output = Self;

    fn sub(self, before: Self) -> Self {
        Self {
            get: self.get.saturating_sub(before.get),
            put: self.put.saturating_sub(before.put),
            list: self.list.saturating_sub(before.list),
            delete: self.delete.saturating_sub(before.delete),
            head: self.head.saturating_sub(before.head),
            other: self.other.saturating_sub(before.other),
        }
    }
}

/// The server's round trips as the proxy saw them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RoundTrips {
    /// Round trips timed.
    pub count: u64,
    /// Their sum, microseconds.
    pub total_us: u64,
}

impl RoundTrips {
    /// The mean round trip in milliseconds (0 without any).
    pub fn mean_ms(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.total_us as f64 / self.count as f64 / 1000.0
        }
    }
}

impl std::ops::Sub for RoundTrips {
    type Output = Self;

    fn sub(self, before: Self) -> Self {
        Self {
            count: self.count.saturating_sub(before.count),
            total_us: self.total_us.saturating_sub(before.total_us),
        }
    }
}

struct Counters {
    get: AtomicU64,
    put: AtomicU64,
    list: AtomicU64,
    delete: AtomicU64,
    head: AtomicU64,
    other: AtomicU64,
    round_trips: AtomicU64,
    round_trip_us: AtomicU64,
    /// The origin of the connections' microsecond timestamps.
    origin: Instant,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            get: AtomicU64::new(0),
            put: AtomicU64::new(0),
            list: AtomicU64::new(0),
            delete: AtomicU64::new(0),
            head: AtomicU64::new(0),
            other: AtomicU64::new(0),
            round_trips: AtomicU64::new(0),
            round_trip_us: AtomicU64::new(0),
            origin: Instant::now(),
        }
    }
}

impl Counters {
    fn count(&self, kind: RequestKind) {
        let counter = match kind {
            RequestKind::Get => &self.get,
            RequestKind::Put => &self.put,
            RequestKind::List => &self.list,
            RequestKind::Delete => &self.delete,
            RequestKind::Head => &self.head,
            RequestKind::Other => &self.other,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Microseconds since `origin`, at least 1 (0 means "none pending").
    fn now_us(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_micros())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    fn round_trip(&self, us: u64) {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        self.round_trip_us.fetch_add(us, Ordering::Relaxed);
    }

    fn round_trips(&self) -> RoundTrips {
        RoundTrips {
            count: self.round_trips.load(Ordering::Relaxed),
            total_us: self.round_trip_us.load(Ordering::Relaxed),
        }
    }

    fn snapshot(&self) -> RequestCounts {
        RequestCounts {
            get: self.get.load(Ordering::Relaxed),
            put: self.put.load(Ordering::Relaxed),
            list: self.list.load(Ordering::Relaxed),
            delete: self.delete.load(Ordering::Relaxed),
            head: self.head.load(Ordering::Relaxed),
            other: self.other.load(Ordering::Relaxed),
        }
    }
}

/// A request's head as the proxy read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    /// `GET`, `PUT`…
    pub method: String,
    /// The request target: `/bucket/key?query`.
    pub target: String,
    /// How the body that follows is framed.
    pub body: BodyFraming,
    /// The raw bytes of the head, forwarded as read.
    pub raw: Vec<u8>,
}

impl RequestHead {
    /// What the request is.
    pub fn kind(&self) -> RequestKind {
        RequestKind::of(&self.method, &self.target)
    }
}

/// How a message body is delimited (RFC 9112, section 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body (a request without `Content-Length` or chunked coding).
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A running counting proxy. Dropping it stops accepting and ends every
/// connection it serves.
pub struct CountingProxy {
    addr: SocketAddr,
    counters: Arc<Counters>,
    accept: JoinHandle<()>,
}

impl CountingProxy {
    /// Listens on an ephemeral port of 127.0.0.1 and forwards to the server
    /// at `upstream` (`http://host:port`, a path is ignored).
    ///
    /// # Errors
    /// `upstream` is not an `http://host:port` URL that resolves, or the
    /// proxy cannot listen.
    pub async fn start(upstream: &str) -> io::Result<Self> {
        let upstream = resolve(upstream).await?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let counters = Arc::new(Counters::default());
        let shared = Arc::clone(&counters);
        let accept = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let client = match listener.accept().await {
                    Ok((client, _)) => client,
                    Err(_) => {
                        // Out of descriptors, say: let connections end.
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let counters = Arc::clone(&shared);
                connections.spawn(async move {
                    // A connection that fails ends; the client sees the
                    // close, as it would see the server's.
                    let _ = serve(client, upstream, counters).await;
                });
                // Reap the finished ones; the set aborts the rest on drop.
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(Self {
            addr,
            counters,
            accept,
        })
    }

    /// The address the proxy listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, for a store URL's `endpoint=`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The requests forwarded so far.
    pub fn counts(&self) -> RequestCounts {
        self.counters.snapshot()
    }

    /// The server's round trips timed so far.
    pub fn round_trips(&self) -> RoundTrips {
        self.counters.round_trips()
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn resolve(upstream: &str) -> io::Result<SocketAddr> {
    let rest = upstream.strip_prefix("http://").ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("upstream `{upstream}` is not an http:// URL"),
        )
    })?;
    let authority = rest.split('/').next().unwrap_or(rest);
    tokio::net::lookup_host(authority)
        .await?
        .next()
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("`{authority}` resolves to no address"),
            )
        })
}

/// Serves one client connection over its own upstream connection.
async fn serve(client: TcpStream, upstream: SocketAddr, counters: Arc<Counters>) -> io::Result<()> {
    client.set_nodelay(true)?;
    let server = TcpStream::connect(upstream).await?;
    server.set_nodelay(true)?;
    let (client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    // When the oldest unanswered request was sent (µs since the counters'
    // origin; 0: none).
    let pending = AtomicU64::new(0);
    // Answers: copied as they come; the first bytes after a request end
    // its round trip. Both directions run in this task, so that ending it
    // (the proxy dropped) ends the connection on both sides.
    let answers = async {
        let mut buffer = vec![0; 16 * 1024];
        loop {
            let n = match server_read.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let sent = pending.swap(0, Ordering::Relaxed);
            if sent != 0 {
                counters.round_trip(counters.now_us().saturating_sub(sent));
            }
            if client_write.write_all(&buffer[..n]).await.is_err() {
                break;
            }
        }
        let _ = client_write.shutdown().await;
    };
    let mut client_read = BufReader::new(client_read);
    let requests = async {
        while let Some(head) = read_request_head(&mut client_read).await? {
            counters.count(head.kind());
            let _ = pending.compare_exchange(
                0,
                counters.now_us(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
            server_write.write_all(&head.raw).await?;
            forward_body(&mut client_read, &mut server_write, head.body).await?;
        }
        server_write.shutdown().await
    };
    tokio::pin!(answers, requests);
    tokio::select! {
        result = &mut requests => {
            if result.is_ok() {
                // The client is done sending: the last answers still come.
                answers.await;
            }
            result
        }
        // The server closed: so does the client's connection.
        () = &mut answers => Ok(()),
    }
}

/// Reads one request head; `None` at a clean end of the connection.
///
/// # Errors
/// The connection fails, ends inside a head, or sends a head that is not
/// HTTP/1.x or longer than 64 KiB.
pub async fn read_request_head<R: AsyncBufRead + Unpin>(
    reader: &mut R,
) -> io::Result<Option<RequestHead>> {
    let mut raw = Vec::new();
    let mut line = Vec::new();
    // The request line (empty lines before it are allowed and skipped).
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return if raw.is_empty() {
                Ok(None)
            } else {
                Err(bad("the connection ended inside a request head"))
            };
        }
        raw.extend_from_slice(&line);
        if line != b"\r\n" && line != b"\n" {
            break;
        }
    }
    let request_line = String::from_utf8_lossy(&line).trim_end().to_owned();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(bad(&format!("not a request line: `{request_line}`")));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(bad(&format!("not HTTP/1.x: `{request_line}`")));
    }
    let (method, target) = (method.to_owned(), target.to_owned());
    let mut body = BodyFraming::None;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return Err(bad("the connection ended inside a request head"));
        }
        raw.extend_from_slice(&line);
        if raw.len() > MAX_HEAD_BYTES {
            return Err(bad("request head longer than 64 KiB"));
        }
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        let text = String::from_utf8_lossy(&line);
        let Some((name, value)) = text.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            if value
                .rsplit(',')
                .next()
                .is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked"))
            {
                body = BodyFraming::Chunked;
            }
        } else if name.eq_ignore_ascii_case("content-length") && body != BodyFraming::Chunked {
            let length = value
                .parse()
                .map_err(|_| bad(&format!("bad Content-Length `{value}`")))?;
            body = BodyFraming::Length(length);
        }
    }
    Ok(Some(RequestHead {
        method,
        target,
        body,
        raw,
    }))
}

/// Copies one message body from `reader` to `writer`, as framed.
///
/// # Errors
/// Either side fails, or the body ends early or is badly chunked.
pub async fn forward_body<R, W>(
    reader: &mut R,
    writer: &mut W,
    framing: BodyFraming,
) -> io::Result<()>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    match framing {
        BodyFraming::None => Ok(()),
        BodyFraming::Length(length) => copy_exact(reader, writer, length).await,
        BodyFraming::Chunked => {
            let mut line = Vec::new();
            loop {
                line.clear();
                if reader.read_until(b'\n', &mut line).await? == 0 {
                    return Err(bad("the connection ended inside a chunked body"));
                }
                writer.write_all(&line).await?;
                let text = String::from_utf8_lossy(&line);
                let size = text.trim().split(';').next().unwrap_or("").trim();
                let size = u64::from_str_radix(size, 16)
                    .map_err(|_| bad(&format!("bad chunk size `{size}`")))?;
                if size == 0 {
                    // Trailers, up to an empty line.
                    loop {
                        line.clear();
                        if reader.read_until(b'\n', &mut line).await? == 0 {
                            return Err(bad("the connection ended inside chunk trailers"));
                        }
                        writer.write_all(&line).await?;
                        if line == b"\r\n" || line == b"\n" {
                            return Ok(());
                        }
                    }
                }
                // The chunk and its CRLF.
                copy_exact(reader, writer, size + 2).await?;
            }
        }
    }
}

async fn copy_exact<R, W>(reader: &mut R, writer: &mut W, length: u64) -> io::Result<()>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let copied = tokio::io::copy(&mut reader.take(length), writer).await?;
    if copied < length {
        return Err(bad("the connection ended inside a body"));
    }
    Ok(())
}

fn bad(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn heads_and_bodies_are_framed() {
        let input: &[u8] = b"PUT /b/k HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\
GET /b?list-type=2&prefix=p HTTP/1.1\r\n\r\n\
PUT /b/c HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n\
DELETE /b/k HTTP/1.1\r\n\r\n";
        let mut reader = BufReader::new(input);
        let mut out = Vec::new();
        let mut kinds = Vec::new();
        while let Some(head) = read_request_head(&mut reader).await.unwrap() {
            kinds.push(head.kind());
            out.extend_from_slice(&head.raw);
            forward_body(&mut reader, &mut out, head.body)
                .await
                .unwrap();
        }
        assert_eq!(
            kinds,
            [
                RequestKind::Put,
                RequestKind::List,
                RequestKind::Put,
                RequestKind::Delete
            ]
        );
        assert_eq!(out, input, "every byte is forwarded unchanged");
    }

    #[tokio::test]
    async fn a_truncated_body_is_an_error() {
        let input: &[u8] = b"PUT /b/k HTTP/1.1\r\nContent-Length: 9\r\n\r\nabc";
        let mut reader = BufReader::new(input);
        let head = read_request_head(&mut reader).await.unwrap().unwrap();
        let mut out = Vec::new();
        assert!(forward_body(&mut reader, &mut out, head.body)
            .await
            .is_err());
    }

    #[tokio::test]
    async fn the_proxy_counts_and_forwards() {
        // A tiny upstream that answers every request with an empty 200.
        let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = upstream.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (stream, _) = upstream.accept().await.unwrap();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut read = BufReader::new(read);
                    while let Some(head) = read_request_head(&mut read).await.unwrap() {
                        forward_body(&mut read, &mut tokio::io::sink(), head.body)
                            .await
                            .unwrap();
                        write
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                            .await
                            .unwrap();
                    }
                });
            }
        });
        let proxy = CountingProxy::start(&format!("http://{addr}"))
            .await
            .unwrap();
        let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
        client
            .write_all(
                b"HEAD /b/k HTTP/1.1\r\n\r\nPUT /b/k HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi",
            )
            .await
            .unwrap();
        let mut answers = vec![0; 2 * 38];
        client.read_exact(&mut answers).await.unwrap();
        let counts = proxy.counts();
        assert_eq!((counts.head, counts.put, counts.total()), (1, 1, 2));
        assert!(proxy.round_trips().count >= 1);
    }
}
