//! The main demo: three workers share one namespace through a local
//! directory, with three small plugins each. Watch the first election, a
//! crash (the leader is aborted without releasing anything) and the
//! fail-over, a graceful stop and its fast hand-over, and what it all cost in
//! store requests.
//!
//! ```text
//! cargo run --example global_coordinator
//! RUST_LOG=coordinator_runtime::election=info cargo run --example global_coordinator   # with the library's logs
//! ```
//!
//! The three workers run in this one process for convenience, but each has
//! its own registry, identity and election loop, exactly as separate
//! processes would (see `coordinator run`, coordinator-cli, for that).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use coordinator_core::{format_duration, Config};
use coordinator_runtime::{
    async_trait, Coordinator, CoordinatorConfig, CoordinatorPlugin, CoordinatorRegistry,
    LeaderContext, PluginError, StepDownReason,
};
use coordinator_store::{LeaseStore, LocalDirStore, StoreError};

/// The default timings divided by ten (heartbeat 5 s → 500 ms, lease 15 s →
/// 1.5 s, …) so the whole demo takes about half a minute.
fn demo_timings() -> Config {
    Config {
        heartbeat_interval: Duration::from_millis(500),
        heartbeat_jitter: Duration::from_millis(100),
        lease_timeout: Duration::from_millis(1500),
        renew_deadline: Duration::from_millis(1000),
        worker_timeout: Duration::from_millis(2000),
        membership_interval: Duration::from_millis(1000),
        successor_poll_interval: Duration::from_millis(200),
        worker_list_interval: Duration::from_millis(1200),
        request_timeout: Duration::from_millis(200),
        retry_backoff: Duration::from_millis(25),
        succession_step: Duration::from_millis(10),
        ..Config::default()
    }
}

static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// Prints one line prefixed with the seconds since the demo started.
macro_rules! say {
    ($($arg:tt)*) => {{
        let elapsed = START.get_or_init(Instant::now).elapsed().as_secs_f64();
        println!("[{elapsed:5.1}s] {}", format!($($arg)*));
    }};
}

// ----- three small plugins -----

/// Pretends to recover stalled queue messages whenever it becomes leader.
struct QueueJanitor {
    worker: String,
}

#[async_trait]
impl CoordinatorPlugin for QueueJanitor {
    fn name(&self) -> &str {
        "queue"
    }

    async fn on_become_coordinator(&self, ctx: LeaderContext) -> Result<(), PluginError> {
        say!(
            "{:>3} | queue: I lead now (epoch {}); recovering stalled claims",
            self.worker,
            ctx.epoch()
        );
        Ok(())
    }

    async fn on_stop_being_coordinator(&self, reason: StepDownReason) -> Result<(), PluginError> {
        say!("{:>3} | queue: stopped ({})", self.worker, explain(reason));
        Ok(())
    }
}

/// Runs a "job" every second, recording each run in a fenced object: the
/// epoch goes into the object and it is replaced by compare-and-swap, so a
/// deposed leader's late write is refused by the store.
struct Cron {
    worker: String,
    runs: AtomicU64,
}

#[async_trait]
impl CoordinatorPlugin for Cron {
    fn name(&self) -> &str {
        "cron"
    }

    async fn on_become_coordinator(&self, ctx: LeaderContext) -> Result<(), PluginError> {
        say!(
            "{:>3} | cron: scheduling jobs under epoch {}",
            self.worker,
            ctx.epoch()
        );
        Ok(())
    }

    async fn on_stop_being_coordinator(&self, reason: StepDownReason) -> Result<(), PluginError> {
        say!(
            "{:>3} | cron: stopped ({}) after {} runs on this worker",
            self.worker,
            explain(reason),
            self.runs.load(Ordering::Relaxed)
        );
        Ok(())
    }

    async fn coordinator_work(&self, ctx: &LeaderContext) -> Result<(), PluginError> {
        let key = format!("demo/{}/cron-last-run.json", ctx.namespace());
        let store = ctx.store();
        let current = store.get(&key).await?;
        let run = current
            .as_ref()
            .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.body).ok())
            .and_then(|v| v["run"].as_u64())
            .unwrap_or(0)
            + 1;
        let body = serde_json::json!({ "run": run, "epoch": ctx.epoch(), "by": ctx.worker_id() });
        let bytes = bytes::Bytes::from(body.to_string());
        // Check the deadline synchronously just before the effect.
        if !ctx.is_valid() {
            return Ok(());
        }
        let written = match &current {
            Some(object) => store.compare_and_swap(&key, &object.version, bytes).await,
            None => store.create(&key, bytes).await,
        };
        match written {
            Ok(_) => {
                self.runs.fetch_add(1, Ordering::Relaxed);
                say!(
                    "{:>3} | cron: job run #{run} (epoch {})",
                    self.worker,
                    ctx.epoch()
                );
            }
            Err(StoreError::Conflict { .. } | StoreError::AlreadyExists { .. }) => {
                say!(
                    "{:>3} | cron: run #{run} refused: someone else wrote first",
                    self.worker
                );
            }
            Err(other) => return Err(other.into()),
        }
        Ok(())
    }

    fn work_interval(&self) -> Option<Duration> {
        Some(Duration::from_secs(1))
    }
}

/// Sweeps expired records every two seconds (here: only says so).
struct TtlSweeper {
    worker: String,
}

#[async_trait]
impl CoordinatorPlugin for TtlSweeper {
    fn name(&self) -> &str {
        "ttl"
    }

    async fn on_become_coordinator(&self, ctx: LeaderContext) -> Result<(), PluginError> {
        say!(
            "{:>3} | ttl: sweeping expired records (epoch {}), {} ms left on my lease",
            self.worker,
            ctx.epoch(),
            ctx.remaining().as_millis()
        );
        Ok(())
    }

    async fn on_stop_being_coordinator(&self, reason: StepDownReason) -> Result<(), PluginError> {
        say!("{:>3} | ttl: stopped ({})", self.worker, explain(reason));
        Ok(())
    }

    async fn coordinator_work(&self, ctx: &LeaderContext) -> Result<(), PluginError> {
        if ctx.is_valid() {
            say!("{:>3} | ttl: sweep found nothing expired", self.worker);
        }
        Ok(())
    }

    fn work_interval(&self) -> Option<Duration> {
        Some(Duration::from_secs(2))
    }
}

fn explain(reason: StepDownReason) -> &'static str {
    match reason {
        StepDownReason::RenewDeadlineExceeded => {
            "renew deadline passed: my lease could not be renewed"
        }
        StepDownReason::LeaseLost => "another worker holds the lease",
        StepDownReason::Stopping => "this worker is stopping and hands the lease on",
        StepDownReason::Refused => "the namespace belongs to another system",
        StepDownReason::LeaseUnusable => "the lease was found corrupt or overwritten",
        _ => "another reason",
    }
}

// ----- the demo -----

struct Worker {
    name: String,
    registry: CoordinatorRegistry,
    coordinator: Arc<Coordinator>,
}

async fn start_worker(
    store: Arc<dyn LeaseStore>,
    config: &CoordinatorConfig,
    name: &str,
) -> Result<Worker, Box<dyn std::error::Error>> {
    let registry = CoordinatorRegistry::new(store, config.clone().with_worker_id(name))?;
    let worker = name.to_owned();
    registry
        .attach(
            "demo",
            Arc::new(QueueJanitor {
                worker: worker.clone(),
            }),
        )
        .await?;
    registry
        .attach(
            "demo",
            Arc::new(Cron {
                worker: worker.clone(),
                runs: AtomicU64::new(0),
            }),
        )
        .await?;
    let coordinator = registry
        .attach("demo", Arc::new(TtlSweeper { worker }))
        .await?;
    Ok(Worker {
        name: name.to_owned(),
        registry,
        coordinator,
    })
}

fn leader_of(workers: &[Worker]) -> Option<usize> {
    workers.iter().position(|w| w.coordinator.is_leader())
}

/// Waits (polling every 10 ms) until `pick` finds a worker; returns it and
/// how long it took.
async fn wait_for_leader(
    workers: &[Worker],
    max: Duration,
    pick: impl Fn(&[Worker]) -> Option<usize>,
) -> Option<(usize, Duration)> {
    let start = Instant::now();
    while start.elapsed() < max {
        if let Some(i) = pick(workers) {
            return Some((i, start.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

fn print_config(timings: &Config) {
    let d = Config::default();
    println!("Config used by this demo (each timing is the default divided by ten):");
    let rows = [
        (
            "heartbeat_interval",
            timings.heartbeat_interval,
            d.heartbeat_interval,
        ),
        (
            "heartbeat_jitter",
            timings.heartbeat_jitter,
            d.heartbeat_jitter,
        ),
        ("lease_timeout", timings.lease_timeout, d.lease_timeout),
        ("renew_deadline", timings.renew_deadline, d.renew_deadline),
        ("worker_timeout", timings.worker_timeout, d.worker_timeout),
        (
            "membership_interval",
            timings.membership_interval,
            d.membership_interval,
        ),
        (
            "successor_poll_interval",
            timings.successor_poll_interval,
            d.successor_poll_interval,
        ),
        (
            "worker_list_interval",
            timings.worker_list_interval,
            d.worker_list_interval,
        ),
        (
            "request_timeout",
            timings.request_timeout,
            d.request_timeout,
        ),
        ("retry_backoff", timings.retry_backoff, d.retry_backoff),
        (
            "succession_step",
            timings.succession_step,
            d.succession_step,
        ),
    ];
    for (name, value, default) in rows {
        println!(
            "  {name:<22} {:>7}   (default {})",
            format_duration(value),
            format_duration(default)
        );
    }
    println!(
        "  {:<22} {:>7}   (default {})",
        "drift_tolerance", timings.drift_tolerance, d.drift_tolerance
    );
    println!();
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .init();
    }
    START.get_or_init(Instant::now);
    let timings = demo_timings();
    timings.validate()?;
    let config = CoordinatorConfig::default().with_election(timings.clone());

    let dir = tempfile::tempdir()?;
    let store: Arc<dyn LeaseStore> = Arc::new(LocalDirStore::new(dir.path().to_path_buf()));
    println!("Coordinator demo: three workers (w1, w2, w3), each with three plugins");
    println!("(queue, cron, ttl), sharing namespace `demo` in a local directory:");
    println!("  {}", dir.path().display());
    println!("Every worker runs ONE election loop for all three plugins (global mode).");
    println!();
    print_config(&timings);

    // 1. First election.
    say!("== 1. Three workers start; the first to create the lease leads ==");
    let mut workers = Vec::new();
    for name in ["w1", "w2", "w3"] {
        workers.push(start_worker(store.clone(), &config, name).await?);
        say!("{name:>3} | started");
    }
    let Some((first, took)) = wait_for_leader(&workers, Duration::from_secs(10), leader_of).await
    else {
        return Err("no leader after 10 s".into());
    };
    say!(
        "==> {} leads (epoch {}) after {} ms; the others follow with one GET per heartbeat",
        workers[first].name,
        workers[first].coordinator.epoch(),
        took.as_millis()
    );
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let roster: Vec<String> = workers[first]
        .coordinator
        .workers()
        .iter()
        .map(ToString::to_string)
        .collect();
    say!("==> the leader's roster: {roster:?} (from heartbeat objects under workers/)");

    // 2. Crash of the leader: no release.
    println!();
    let crashed = first;
    let epoch = workers[crashed].coordinator.epoch();
    say!(
        "== 2. {} crashes (its loop is aborted: no release, heartbeat left behind) ==",
        workers[crashed].name
    );
    say!(
        "     Followers must see the lease unchanged for lease_timeout ({}) before taking over;",
        format_duration(timings.lease_timeout)
    );
    say!(
        "     the crashed worker's plugins are cancelled at its renew deadline ({}) first.",
        format_duration(timings.renew_deadline)
    );
    workers[crashed].coordinator.abort();
    let Some((second, failover)) = wait_for_leader(&workers, Duration::from_secs(10), |ws| {
        ws.iter()
            .position(|w| w.coordinator.is_leader() && w.coordinator.epoch() > epoch)
    })
    .await
    else {
        return Err("no fail-over after 10 s".into());
    };
    say!(
        "==> fail-over: {} leads (epoch {}) {} ms after the crash (bound: lease_timeout + one poll ≈ {} ms)",
        workers[second].name,
        workers[second].coordinator.epoch(),
        failover.as_millis(),
        (timings.lease_timeout + timings.heartbeat_interval + timings.heartbeat_jitter).as_millis()
    );
    tokio::time::sleep(Duration::from_millis(3000)).await;

    // 3. Graceful stop: release, fast hand-over.
    println!();
    let epoch = workers[second].coordinator.epoch();
    say!(
        "== 3. {} stops gracefully: it releases the lease and deletes its heartbeat ==",
        workers[second].name
    );
    let stopping = workers[second].coordinator.clone();
    let stop = tokio::spawn(async move { stopping.stop().await });
    let Some((third, handover)) = wait_for_leader(&workers, Duration::from_secs(10), |ws| {
        ws.iter()
            .position(|w| w.coordinator.is_leader() && w.coordinator.epoch() > epoch)
    })
    .await
    else {
        return Err("no hand-over after 10 s".into());
    };
    stop.await?;
    say!(
        "==> hand-over: {} leads (epoch {}) {} ms after the stop began (within one poll of the designated successor, {}; no lease wait)",
        workers[third].name,
        workers[third].coordinator.epoch(),
        handover.as_millis(),
        format_duration(timings.successor_poll_interval.min(timings.heartbeat_interval))
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;

    // 4. What it cost.
    println!();
    say!("== 4. Metrics of each worker (store requests of the election loop, plugins apart) ==");
    println!(
        "  {:<4} {:<9} {:>5} {:>10} {:>8} {:>9} {:>5} {:>5} {:>5} {:>6} {:>7} {:>11} {:>9}",
        "id",
        "state",
        "epoch",
        "heartbeats",
        "renewals",
        "elections",
        "GET",
        "PUT",
        "LIST",
        "DELETE",
        "errors",
        "USD (S3)",
        "plugin req"
    );
    for worker in &workers {
        let m = worker.coordinator.metrics();
        let role = if m.is_leader {
            "leader".to_owned()
        } else {
            format!("{:?}", m.state).to_lowercase()
        };
        println!(
            "  {:<4} {:<9} {:>5} {:>10} {:>8} {:>9} {:>5} {:>5} {:>5} {:>6} {:>7} {:>11.7} {:>9}",
            worker.name,
            role,
            m.epoch,
            m.counters.heartbeats,
            m.counters.renewals,
            m.counters.elections,
            m.requests.get,
            m.requests.put,
            m.requests.list,
            m.requests.delete,
            m.counters.store_errors,
            m.requests_usd,
            m.plugin_requests.total()
        );
    }
    println!("  errors: store requests that failed (none expected here). USD: the election loop's");
    println!(
        "  requests at S3 Standard prices. In per-plugin mode each of the three plugins would"
    );
    println!("  run its own loop: about three times these requests.");
    println!();

    say!("== 5. Closing: every loop releases what it holds and deletes its heartbeat ==");
    for worker in &workers {
        worker.registry.close().await;
    }
    // The aborted worker's loop is gone; its plugins ended at its deadline.
    workers[crashed].coordinator.wait_stopped().await;
    say!("done. Summary:");
    println!(
        "  first election {} ms, fail-over after crash {} ms (lease_timeout {}), hand-over after stop {} ms",
        took.as_millis(),
        failover.as_millis(),
        format_duration(timings.lease_timeout),
        handover.as_millis()
    );
    Ok(())
}
