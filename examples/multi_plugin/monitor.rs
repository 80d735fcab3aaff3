//! What the example prints and how it watches the workers: one stamped line
//! per step, the leadership watch, the events worth a line, and the
//! Prometheus endpoint.

use std::fmt::Display;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use coordinator_runtime::{Coordinator, Event};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

/// Prints lines stamped with the seconds since the start, and keeps them
/// for the test.
#[derive(Clone)]
pub(crate) struct Out {
    start: Instant,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Out {
    pub(crate) fn new() -> Self {
        Self {
            start: Instant::now(),
            lines: Arc::default(),
        }
    }

    /// One stamped line.
    pub(crate) fn say(&self, text: impl Display) {
        let elapsed = self.start.elapsed().as_secs_f64();
        self.plain(format!("[{elapsed:5.1}s] {text}"));
    }

    /// One line as it is.
    pub(crate) fn plain(&self, text: impl Display) {
        let line = text.to_string();
        println!("{line}");
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(line);
    }

    /// Every line printed so far.
    pub(crate) fn lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Says when `worker` starts or stops leading, from the coordinator's
/// leadership watch (a late subscriber sees the current view at once).
pub(crate) fn watch_leadership(
    out: Out,
    worker: String,
    coordinator: Arc<Coordinator>,
) -> JoinHandle<()> {
    let mut views = coordinator.leadership();
    tokio::spawn(async move {
        let mut leading = false;
        loop {
            let view = views.borrow_and_update().clone();
            if view.is_leader != leading {
                leading = view.is_leader;
                if leading {
                    out.say(format!(
                        "{worker:>3} | watch: I lead now (epoch {})",
                        view.epoch
                    ));
                } else {
                    out.say(format!("{worker:>3} | watch: I no longer lead"));
                }
            }
            if views.changed().await.is_err() {
                return;
            }
        }
    })
}

/// Says what the roster events and the refusals are; the leadership events
/// are the watch's.
pub(crate) fn print_events(out: Out, worker: String, coordinator: &Coordinator) -> JoinHandle<()> {
    let mut events = coordinator.events();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let text = match event {
                Event::WorkerJoined { worker_id, .. } => format!("worker {worker_id} joined"),
                Event::WorkerTimedOut { worker_id, .. } => {
                    format!("worker {worker_id} timed out (its heartbeat stopped changing)")
                }
                Event::WorkerLeft { worker_id, .. } => format!("worker {worker_id} left"),
                Event::DuplicateWorkerId { worker_id, .. } => {
                    format!("another process uses the id {worker_id}")
                }
                Event::RecordProblem { error, .. } => format!("record problem: {error}"),
                Event::Refused { error, .. } => format!("refused: {error}"),
                _ => continue,
            };
            out.say(format!("{worker:>3} | event: {text}"));
        }
    })
}

/// A port on 127.0.0.1 that was free a moment ago.
pub(crate) fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// Installs `metrics-exporter-prometheus` as the process's `metrics`
/// recorder, serving `/metrics` on 127.0.0.1:`port`; the runtime's
/// `metrics` feature feeds it.
pub(crate) fn serve_prometheus(port: u16) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .install()?;
    Ok(())
}

/// `GET /metrics` on 127.0.0.1:`port`: the body.
pub(crate) async fn scrape(port: u16) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let mut stream = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let response = String::from_utf8(response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or("no HTTP header in the answer")?;
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return Err(format!("GET /metrics: {}", head.lines().next().unwrap_or("")).into());
    }
    Ok(body.to_owned())
}

/// The distinct metric names of a Prometheus text body that start with
/// `coordinator_`, sorted.
pub(crate) fn metric_names(body: &str) -> Vec<String> {
    let mut names: Vec<String> = body
        .lines()
        .filter(|line| line.starts_with("coordinator_"))
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}
