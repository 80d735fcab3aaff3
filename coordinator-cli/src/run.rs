//! `coordinator run`: one worker process that joins the election of each
//! configured namespace and prints every change of leadership as one line
//! (see [`crate::events`] for the lines and `--events-json`; the wire
//! benchmark and the multi-process fail-over test run this command).
//!
//! With `--plugins`, the maintenance side of every queue and TTL expirer
//! named under `[plugins]` in the config file is attached
//! to each namespace through the registry, under the election its mode
//! names (their leader-only work runs where this worker leads that
//! election). Schedulers are not: their job handlers are application code
//! this command cannot register, so it says so on stderr at start.
//! SIGTERM or Ctrl-C stops gracefully: the plugins are told, the lease is
//! released and the heartbeat deleted. SIGKILL is a crash.

use std::sync::Arc;
use std::time::Duration;

use coordinator_plugins::queue::Queue;
use coordinator_plugins::ttl::Ttl;
use coordinator_runtime::{Coordinator, CoordinatorPlugin, CoordinatorRegistry, HealthStatus};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::cli::{Globals, RunArgs};
use crate::events::{Event, Stamped};
use crate::{config, exit, output, redact, store, Failure};

/// The sub-second timings of `--fast`: heartbeat 200 ms + up to 50 ms of
/// jitter, lease timeout 1.5 s, renew deadline 1 s, worker timeout 1.5 s,
/// and a recovery wait of 6 s (four lease timeouts, the defaults' ratio),
/// so a rolled-back canary's lease is replaced within seconds.
pub(crate) fn fast_election() -> coordinator_core::Config {
    coordinator_core::Config {
        heartbeat_interval: Duration::from_millis(200),
        heartbeat_jitter: Duration::from_millis(50),
        lease_timeout: Duration::from_millis(1500),
        renew_deadline: Duration::from_millis(1000),
        worker_timeout: Duration::from_millis(1500),
        membership_interval: Duration::from_millis(500),
        worker_list_interval: Duration::from_millis(500),
        request_timeout: Duration::from_millis(300),
        retry_backoff: Duration::from_millis(50),
        succession_step: Duration::from_millis(100),
        recovery_wait: Duration::from_secs(6),
        ..coordinator_core::Config::default()
    }
}

/// `coordinator run`.
pub(crate) async fn command(globals: &Globals, args: &RunArgs) -> Result<u8, Failure> {
    let resolved = config::load(globals)?;
    let url = resolved.url()?.to_owned();
    let namespaces = resolved.namespaces()?;
    let mut config = resolved.config.coordinator.clone();
    if args.fast {
        config.election = fast_election();
    }
    if let Some(id) = &args.worker_id {
        config.worker_id = Some(id.clone());
    }
    config
        .validate()
        .map_err(|e| Failure::usage(format!("run: {e}")))?;
    redact::url(&url);
    refuse_unusable(&url, &namespaces).await?;
    // A worker writes, so it opens the store with the probe: a store that
    // silently overwrites conditional writes is refused here.
    let store = coordinator_store::open(&url)
        .await
        .map_err(|e| store::store_failure(&e))?;
    let registry =
        CoordinatorRegistry::new(store, config).map_err(|e| Failure::error(format!("run: {e}")))?;
    let me = registry.worker_id().clone();

    if args.plugins {
        for name in &resolved.config.plugins.scheduler.names {
            eprintln!(
                "coordinator: run --plugins: scheduler `{name}` not attached: its job handlers are \
                 application code this command cannot register, so a worker leading it here would \
                 run no job; run the scheduler inside the application (`Scheduler::builder` with \
                 `.handler(..)`, then `CoordinatorRegistry::attach`)"
            );
        }
    }
    let json = args.events_json;
    let print = |stamped: Stamped| output::line(&stamped.line(json));
    let (changes, mut lines) = mpsc::unbounded_channel::<Stamped>();
    let mut coordinators = Vec::new();
    for namespace in &namespaces {
        let coordinator = registry
            .get(namespace)
            .await
            .map_err(|e| Failure::error(format!("run: namespace `{namespace}`: {e}")))?;
        if args.plugins {
            // Through the registry, so each plugin runs under the election
            // its mode names (`mode`, `[coordinator.plugin_modes]`): a
            // per-plugin one gets its own coordinator beside the shared one.
            for plugin in plugins(&registry, &resolved.config.plugins, namespace)? {
                let name = plugin.name().to_owned();
                registry.attach(namespace, plugin).await.map_err(|e| {
                    Failure::error(format!("run --plugins: `{name}` in `{namespace}`: {e}"))
                })?;
            }
        }
        print(
            Event::Ready {
                worker: me.to_string(),
                namespace: namespace.clone(),
            }
            .now(),
        );
        let mut leadership = coordinator.leadership();
        let changes = changes.clone();
        let me = me.to_string();
        let namespace = namespace.clone();
        tokio::spawn(async move {
            let mut last = None;
            loop {
                {
                    // One line per change of leader, epoch or role (not
                    // per renewal), stamped when seen, not when printed.
                    let view = leadership.borrow_and_update();
                    let shown = (view.leader.clone(), view.epoch, view.is_leader);
                    if last.as_ref() != Some(&shown) {
                        let event = Event::View {
                            worker: me.clone(),
                            namespace: namespace.clone(),
                            leader: view.leader.as_ref().map(|l| l.as_str().to_owned()),
                            epoch: view.epoch,
                            is_leader: view.is_leader,
                        };
                        if changes.send(event.now()).is_err() {
                            break;
                        }
                        last = Some(shown);
                    }
                }
                if leadership.changed().await.is_err() {
                    break;
                }
            }
        });
        coordinators.push(coordinator);
    }
    drop(changes);
    let server = match args.metrics_addr {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| Failure::error(format!("--metrics-addr {addr}: {e}")))?;
            let bound = listener
                .local_addr()
                .map_err(|e| Failure::error(format!("--metrics-addr {addr}: {e}")))?;
            print(
                Event::Metrics {
                    addr: bound.to_string(),
                }
                .now(),
            );
            Some(tokio::spawn(serve(listener, coordinators.clone())))
        }
        None => None,
    };

    let mut terminate = signal_terminate()
        .map_err(|e| Failure::error(format!("installing a SIGTERM handler: {e}")))?;
    loop {
        tokio::select! {
            line = lines.recv() => match line {
                Some(stamped) => print(stamped),
                None => break,
            },
            () = terminate.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    let worker = me.to_string();
    print(
        Event::Stopping {
            worker: worker.clone(),
        }
        .now(),
    );
    if let Some(server) = server {
        server.abort();
        let _ = server.await;
    }
    drop(coordinators);
    registry.close().await;
    print(Event::Stopped { worker }.now());
    Ok(exit::OK)
}

/// Answers `GET /metrics` and `GET /healthz`, one request per connection.
async fn serve(listener: tokio::net::TcpListener, coordinators: Vec<Arc<Coordinator>>) {
    loop {
        let Ok((mut socket, _)) = listener.accept().await else {
            continue;
        };
        let coordinators = coordinators.clone();
        tokio::spawn(async move {
            let mut buffer = vec![0u8; 4096];
            let mut read = 0;
            // Read the request head (a GET has no body).
            while read < buffer.len() {
                match socket.read(&mut buffer[read..]).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        read += n;
                        if buffer[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                }
            }
            let head = String::from_utf8_lossy(&buffer[..read]);
            let path = head.split_whitespace().nth(1).unwrap_or("/");
            let (status, kind, body) = respond(path, &coordinators);
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
            let _ = socket.shutdown().await;
        });
    }
}

fn respond(path: &str, coordinators: &[Arc<Coordinator>]) -> (&'static str, &'static str, String) {
    match path {
        "/metrics" => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            coordinator_runtime::prometheus_text(coordinators),
        ),
        "/healthz" => {
            let healths: Vec<serde_json::Value> = coordinators
                .iter()
                .map(|c| {
                    let h = c.health();
                    serde_json::json!({
                        "namespace": c.namespace().to_string(),
                        "status": h.status,
                        "reason": h.reason,
                    })
                })
                .collect();
            let worst = coordinators
                .iter()
                .map(|c| c.health().status)
                .max()
                .unwrap_or(HealthStatus::Healthy);
            let status = if worst == HealthStatus::Unhealthy {
                "503 Service Unavailable"
            } else {
                "200 OK"
            };
            (
                status,
                "application/json",
                serde_json::json!({ "status": worst, "namespaces": healths }).to_string(),
            )
        }
        _ => (
            "404 Not Found",
            "text/plain",
            "try /metrics or /healthz\n".into(),
        ),
    }
}

/// Reads each namespace's lease first (read-only) and refuses, before
/// anything is written (the store probe, a heartbeat), a namespace whose
/// lease another implementation wrote: it writes unconditionally, so no
/// wait makes sharing safe. A newer-format lease is not refused: the
/// library follows it while it changes and replaces it once it stood
/// unchanged for `recovery_wait` (the designed roll-back of a canary).
async fn refuse_unusable(url: &str, namespaces: &[String]) -> Result<(), Failure> {
    // A directory that does not exist yet holds no lease; the worker's
    // store creates it.
    let (store, _) = store::open_read_only_anywhere(url).await?;
    for name in namespaces {
        let namespace = coordinator_core::Namespace::new(name.as_str())
            .map_err(|e| Failure::usage(format!("namespace: {e}")))?;
        let key = coordinator_core::Keys::global(&namespace).lease();
        let object = store
            .get(&key)
            .await
            .map_err(|e| store::store_failure(&e))?;
        if let Some(object) = object {
            if let Err(e @ coordinator_core::RecordError::Foreign { .. }) =
                coordinator_core::decode::<coordinator_core::LeaseRecord>(&key, &object.body)
            {
                return Err(Failure::error(format!(
                    "run: namespace `{name}` refused, nothing written: {e}"
                )));
            }
        }
    }
    Ok(())
}

/// The plugins `[plugins]` names, built for `namespace` from `registry`.
fn plugins(
    registry: &CoordinatorRegistry,
    config: &config::PluginsConfig,
    namespace: &str,
) -> Result<Vec<Arc<dyn CoordinatorPlugin>>, Failure> {
    let mut out: Vec<Arc<dyn CoordinatorPlugin>> = Vec::new();
    let fail = |kind: &str, name: &str, e: &dyn std::fmt::Display| {
        Failure::error(format!("run --plugins: {kind} `{name}`: {e}"))
    };
    for name in &config.queue.names {
        let queue = Queue::builder(registry, namespace, name.as_str())
            .config(config.queue.config.clone())
            .build()
            .map_err(|e| fail("queue", name, &e))?;
        out.push(Arc::new(queue.maintenance()));
    }
    for name in &config.ttl.names {
        let ttl = Ttl::builder(registry, namespace, name.as_str())
            .config(config.ttl.config.clone())
            .build()
            .map_err(|e| fail("ttl", name, &e))?;
        out.push(Arc::new(ttl.sweeper()));
    }
    // Schedulers are not attached: see the notice `command` prints.
    Ok(out)
}

/// Completes on SIGTERM (never on platforms without it).
struct Terminate {
    #[cfg(unix)]
    signal: tokio::signal::unix::Signal,
}

impl Terminate {
    async fn recv(&mut self) {
        #[cfg(unix)]
        {
            self.signal.recv().await;
        }
        #[cfg(not(unix))]
        std::future::pending::<()>().await;
    }
}

fn signal_terminate() -> std::io::Result<Terminate> {
    Ok(Terminate {
        #[cfg(unix)]
        signal: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?,
    })
}
