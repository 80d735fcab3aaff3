//! The fault proxy: the counting proxy's framing (`crate::proxy`), one
//! listener per worker, and faults decided per request.
//!
//! Each client connection gets its own upstream connection, opened at its
//! first forwarded request, so closing or resetting one drops exactly that
//! one. Requests are read whole (head and body) before the decision;
//! answers are read whole (framed by `Content-Length`, chunked coding, or
//! the end of the connection) before they are passed on or, for
//! [`Action::LoseAnswer`], thrown away. The workers' HTTP client waits for
//! each answer before it sends the next request on a connection, so
//! reading one answer per request is exact for it.
//!
//! Every listener has its own faults and partition switch
//! ([`FaultProxy::set_worker_faults`], [`FaultProxy::partition`]); faults
//! for every listener are set with [`FaultProxy::set_faults`].

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use coordinator_core::SplitMix64;
use serde::Serialize;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::faults::{decide, error_answer, Action, NetFault};
use crate::proxy::{forward_body, read_request_head, BodyFraming};

/// What a proxy did, by decision, over all its listeners.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FaultCounts {
    /// Requests forwarded with their answers.
    pub forwarded: u64,
    /// Requests delayed by a latency fault.
    pub delayed: u64,
    /// Connections closed without an answer.
    pub closed: u64,
    /// Connections reset.
    pub reset: u64,
    /// Requests held unanswered (blackhole, partition).
    pub blackholed: u64,
    /// `503 SlowDown` answers injected.
    pub slow_down: u64,
    /// `500` answers injected.
    pub server_error: u64,
    /// Requests applied whose answer was thrown away.
    pub lost_answers: u64,
}

#[derive(Default)]
struct Counters([AtomicU64; 8]);

impl Counters {
    fn add(&self, i: usize) {
        self.0[i].fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> FaultCounts {
        let n = |i: usize| self.0[i].load(Ordering::Relaxed);
        FaultCounts {
            forwarded: n(0),
            delayed: n(1),
            closed: n(2),
            reset: n(3),
            blackholed: n(4),
            slow_down: n(5),
            server_error: n(6),
            lost_answers: n(7),
        }
    }
}

struct Listener {
    faults: Mutex<Vec<NetFault>>,
    partitioned: AtomicBool,
    rng: Mutex<SplitMix64>,
}

struct Shared {
    upstream: SocketAddr,
    faults: Mutex<Vec<NetFault>>,
    counters: Counters,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running fault proxy. Dropping it stops every listener and connection.
pub struct FaultProxy {
    shared: Arc<Shared>,
    listeners: Vec<(SocketAddr, Arc<Listener>)>,
    tasks: JoinSet<()>,
}

impl FaultProxy {
    /// Starts `listeners` listeners on ephemeral ports of 127.0.0.1, each
    /// forwarding to `upstream` (`http://host:port`); listener `i` draws
    /// its decisions from a stream seeded with `seed` and `i`.
    ///
    /// # Errors
    /// `upstream` does not resolve, or a listener cannot bind.
    pub async fn start(upstream: &str, listeners: usize, seed: u64) -> io::Result<Self> {
        let authority = upstream.strip_prefix("http://").unwrap_or(upstream);
        let authority = authority.split('/').next().unwrap_or(authority);
        let upstream = tokio::net::lookup_host(authority)
            .await?
            .next()
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("`{authority}` resolves to no address"),
                )
            })?;
        let shared = Arc::new(Shared {
            upstream,
            faults: Mutex::new(Vec::new()),
            counters: Counters::default(),
        });
        let mut tasks = JoinSet::new();
        let mut all = Vec::new();
        for i in 0..listeners {
            let socket = TcpListener::bind("127.0.0.1:0").await?;
            let addr = socket.local_addr()?;
            let listener = Arc::new(Listener {
                faults: Mutex::new(Vec::new()),
                partitioned: AtomicBool::new(false),
                rng: Mutex::new(SplitMix64::new(coordinator_core::mix64(
                    seed ^ coordinator_core::mix64(i as u64 + 1),
                ))),
            });
            all.push((addr, Arc::clone(&listener)));
            let shared = Arc::clone(&shared);
            tasks.spawn(accept(socket, shared, listener));
        }
        Ok(Self {
            shared,
            listeners: all,
            tasks,
        })
    }

    /// `http://127.0.0.1:PORT` of listener `i`.
    ///
    /// # Panics
    /// If there is no listener `i`.
    pub fn endpoint(&self, i: usize) -> String {
        format!("http://{}", self.listeners[i].0)
    }

    /// Sets the faults of every listener (replacing the previous ones).
    pub fn set_faults(&self, faults: Vec<NetFault>) {
        *lock(&self.shared.faults) = faults;
    }

    /// Sets listener `i`'s own faults.
    pub fn set_worker_faults(&self, i: usize, faults: Vec<NetFault>) {
        if let Some((_, l)) = self.listeners.get(i) {
            *lock(&l.faults) = faults;
        }
    }

    /// Cuts listener `i` off (every request held unanswered) or heals it.
    pub fn partition(&self, i: usize, cut: bool) {
        if let Some((_, l)) = self.listeners.get(i) {
            l.partitioned.store(cut, Ordering::Relaxed);
        }
    }

    /// What the proxy did so far.
    pub fn counts(&self) -> FaultCounts {
        self.shared.counters.snapshot()
    }

    /// Stops every listener and connection.
    pub fn shutdown(&mut self) {
        self.tasks.abort_all();
    }
}

async fn accept(socket: TcpListener, shared: Arc<Shared>, listener: Arc<Listener>) {
    let mut connections = JoinSet::new();
    loop {
        let client = match socket.accept().await {
            Ok((client, _)) => client,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let shared = Arc::clone(&shared);
        let listener = Arc::clone(&listener);
        connections.spawn(async move {
            // A failed connection ends; the client sees the close.
            let _ = serve(client, shared, listener).await;
        });
        while connections.try_join_next().is_some() {}
    }
}

type Upstream = (BufReader<OwnedReadHalf>, OwnedWriteHalf);

async fn serve(client: TcpStream, shared: Arc<Shared>, listener: Arc<Listener>) -> io::Result<()> {
    client.set_nodelay(true)?;
    let (client_read, mut client_write) = client.into_split();
    let mut client_read = BufReader::new(client_read);
    let mut upstream: Option<Upstream> = None;
    let counters = &shared.counters;
    while let Some(head) = read_request_head(&mut client_read).await? {
        let mut body = Vec::new();
        forward_body(&mut client_read, &mut body, head.body).await?;
        let decision = {
            let mut faults = lock(&shared.faults).clone();
            faults.extend(lock(&listener.faults).iter().copied());
            let partitioned = listener.partitioned.load(Ordering::Relaxed);
            decide(&faults, partitioned, &mut lock(&listener.rng))
        };
        if !decision.delay.is_zero() {
            counters.add(1);
            tokio::time::sleep(decision.delay).await;
        }
        match decision.action {
            Action::Blackhole => {
                counters.add(4);
                // Hold the connection until the client gives up.
                drop(upstream.take());
                let mut sink = [0u8; 4096];
                while client_read.read(&mut sink).await.unwrap_or(0) > 0 {}
                return Ok(());
            }
            Action::Close => {
                counters.add(2);
                return Ok(());
            }
            Action::Reset => {
                counters.add(3);
                let stream = client_read
                    .into_inner()
                    .reunite(client_write)
                    .map_err(|e| {
                        io::Error::other(format!("reuniting the client connection: {e}"))
                    })?;
                // Linger zero: close sends RST.
                #[allow(deprecated)]
                stream.set_linger(Some(Duration::ZERO))?;
                return Ok(());
            }
            Action::SlowDown | Action::ServerError => {
                counters.add(if decision.action == Action::SlowDown {
                    5
                } else {
                    6
                });
                client_write
                    .write_all(&error_answer(decision.action))
                    .await?;
            }
            Action::Forward | Action::LoseAnswer => {
                if upstream.is_none() {
                    let server = TcpStream::connect(shared.upstream).await?;
                    server.set_nodelay(true)?;
                    let (r, w) = server.into_split();
                    upstream = Some((BufReader::new(r), w));
                }
                let Some((server_read, server_write)) = upstream.as_mut() else {
                    return Ok(());
                };
                server_write.write_all(&head.raw).await?;
                server_write.write_all(&body).await?;
                let (answer, close) = read_answer(server_read, &head.method).await?;
                if decision.action == Action::LoseAnswer {
                    counters.add(7);
                    return Ok(());
                }
                counters.add(0);
                client_write.write_all(&answer).await?;
                if close {
                    let _ = client_write.shutdown().await;
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

/// Reads one answer whole (interim `1xx` answers included); `true` if the
/// server closes the connection after it.
async fn read_answer<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    method: &str,
) -> io::Result<(Vec<u8>, bool)> {
    let mut raw = Vec::new();
    loop {
        let start = raw.len();
        let mut line = Vec::new();
        if reader.read_until(b'\n', &mut line).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed before answering",
            ));
        }
        raw.extend_from_slice(&line);
        let status_line = String::from_utf8_lossy(&line).trim_end().to_owned();
        let mut parts = status_line.split(' ');
        let version = parts.next().unwrap_or("");
        let status: u16 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        let mut framing = None;
        let mut close = version == "HTTP/1.0";
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line).await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed inside an answer head",
                ));
            }
            raw.extend_from_slice(&line);
            if line == b"\r\n" || line == b"\n" {
                break;
            }
            let text = String::from_utf8_lossy(&line);
            let Some((name, value)) = text.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("transfer-encoding")
                && value.to_ascii_lowercase().ends_with("chunked")
            {
                framing = Some(BodyFraming::Chunked);
            } else if name.eq_ignore_ascii_case("content-length") && framing.is_none() {
                let n = value.parse().map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("bad Content-Length `{value}`"),
                    )
                })?;
                framing = Some(BodyFraming::Length(n));
            } else if name.eq_ignore_ascii_case("connection") {
                let value = value.to_ascii_lowercase();
                close = value.contains("close") || (close && !value.contains("keep-alive"));
            }
        }
        if (100..200).contains(&status) {
            debug_assert!(raw.len() > start);
            continue;
        }
        let no_body = method == "HEAD" || status == 204 || status == 304;
        match framing {
            _ if no_body => {}
            Some(framing) => forward_body(reader, &mut raw, framing).await?,
            None => {
                reader.read_to_end(&mut raw).await?;
                close = true;
            }
        }
        return Ok((raw, close));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// An upstream that answers each request `200` with the count of
    /// requests it applied so far as the body.
    async fn upstream() -> (SocketAddr, Arc<AtomicU64>) {
        let socket = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let applied = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&applied);
        tokio::spawn(async move {
            loop {
                let (stream, _) = socket.accept().await.unwrap();
                let counter = Arc::clone(&counter);
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut read = BufReader::new(read);
                    while let Ok(Some(head)) = read_request_head(&mut read).await {
                        forward_body(&mut read, &mut tokio::io::sink(), head.body)
                            .await
                            .unwrap();
                        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                        let body = n.to_string();
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if write.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (addr, applied)
    }

    async fn request(endpoint: &str) -> io::Result<String> {
        let addr = endpoint.trim_start_matches("http://");
        let mut stream = TcpStream::connect(addr).await?;
        stream
            .write_all(b"PUT /b/k HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi")
            .await?;
        let mut reader = BufReader::new(stream);
        let (answer, _) =
            tokio::time::timeout(Duration::from_millis(500), read_answer(&mut reader, "PUT"))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no answer"))??;
        Ok(String::from_utf8_lossy(&answer).into_owned())
    }

    #[tokio::test]
    async fn each_fault_does_what_it_says() {
        let (addr, applied) = upstream().await;
        let mut proxy = FaultProxy::start(&format!("http://{addr}"), 2, 1)
            .await
            .unwrap();
        let (a, b) = (proxy.endpoint(0), proxy.endpoint(1));
        assert!(request(&a).await.unwrap().ends_with("\r\n\r\n1"));

        proxy.set_faults(vec![NetFault::SlowDown { share: 1.0 }]);
        assert!(request(&a).await.unwrap().contains("<Code>SlowDown</Code>"));
        proxy.set_faults(vec![NetFault::ServerError { share: 1.0 }]);
        assert!(request(&b).await.unwrap().starts_with("HTTP/1.1 500"));
        assert_eq!(
            applied.load(Ordering::SeqCst),
            1,
            "injected answers apply nothing"
        );

        // Lose the answer: applied, but the client sees the connection end.
        proxy.set_faults(vec![NetFault::LoseAnswer { share: 1.0 }]);
        assert!(request(&a).await.is_err());
        assert_eq!(applied.load(Ordering::SeqCst), 2, "applied");

        proxy.set_faults(vec![NetFault::Drop { share: 1.0 }]);
        assert!(request(&a).await.is_err());
        proxy.set_faults(vec![NetFault::Reset { share: 1.0 }]);
        assert!(request(&a).await.is_err());
        assert_eq!(applied.load(Ordering::SeqCst), 2, "never forwarded");

        // A partition cuts one listener only; a blackhole holds every one.
        proxy.set_faults(vec![]);
        proxy.partition(0, true);
        assert_eq!(
            request(&a).await.unwrap_err().kind(),
            io::ErrorKind::TimedOut
        );
        assert!(request(&b).await.is_ok());
        proxy.partition(0, false);
        proxy.set_worker_faults(1, vec![NetFault::Blackhole]);
        assert!(request(&a).await.is_ok());
        assert_eq!(
            request(&b).await.unwrap_err().kind(),
            io::ErrorKind::TimedOut
        );
        let counts = proxy.counts();
        assert_eq!(
            (counts.slow_down, counts.server_error, counts.lost_answers),
            (1, 1, 1)
        );
        assert_eq!((counts.closed, counts.reset, counts.blackholed), (1, 1, 2));
        assert_eq!(counts.forwarded, 3);
        proxy.shutdown();
    }
}
