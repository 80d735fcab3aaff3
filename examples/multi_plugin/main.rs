//! Three workers run the real queue, cron scheduler and TTL expirer of
//! `coordinator-plugins`, all three plugins on one coordinator per worker,
//! configured from a `coordinator.toml` file: messages enqueued and
//! consumed, a cron job every two seconds, records expiring, the leader
//! crashing and a hand-over, and the monitoring (the leadership watch,
//! events, `metrics()` and a Prometheus endpoint).
//!
//! ```text
//! cargo run --example multi_plugin
//! cargo run --example multi_plugin -- --url 's3://bucket/prefix?region=eu-west-1' --metrics-port 9464
//! curl localhost:9464/metrics        # while it runs
//! ```
//!
//! Options: `--config PATH` (default `examples/multi_plugin.toml`), `--url
//! URL` (default: a new temporary directory), `--namespace NS` (default:
//! the file's), `--metrics-port PORT`
//! (default: a free port; 0 turns the endpoint off). The three workers run
//! in this one process, each with its own registry, identity and election
//! loop, as separate processes would. `cargo test -p examples --example
//! multi_plugin` runs it and scrapes the endpoint with `curl`.

mod monitor;
mod settings;
#[cfg(test)]
mod tests;
mod worker;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use coordinator_plugins::scheduler::{JobSpec, SchedulerError};
use coordinator_plugins::ttl::Expiry;

use monitor::Out;
use settings::{Args, FileConfig};
use worker::{lock, start_worker, Progress, Worker};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Polls `done` every 50 ms for at most `max`; how long it took.
async fn until(
    what: &str,
    max: Duration,
    mut done: impl FnMut() -> bool,
) -> Result<Duration, Error> {
    let start = std::time::Instant::now();
    while !done() {
        if start.elapsed() > max {
            return Err(format!("gave up after {max:?} waiting for {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(start.elapsed())
}

fn leader(workers: &[Worker]) -> Option<usize> {
    workers.iter().position(|w| w.coordinator.is_leader())
}

/// What a run printed and where its endpoint listens, for the test.
#[cfg_attr(not(test), allow(dead_code))] // read by the tests
struct Report {
    /// Every line printed.
    lines: Vec<String>,
    /// Where the Prometheus endpoint listens, if it was started.
    metrics_port: Option<u16>,
}

async fn run(args: Args) -> Result<Report, Error> {
    let out = Out::new();
    let file = FileConfig::load(&args.config).map_err(|e| e.to_string())?;
    let namespace = args
        .namespace
        .clone()
        .or_else(|| file.namespace.clone())
        .unwrap_or_else(|| "shop".into());
    let temp = tempfile::tempdir()?;
    let url = match args.url.clone().or_else(|| file.url.clone()) {
        Some(url) => url,
        None => format!("file://{}", temp.path().display()),
    };
    let store = coordinator_store::open(&url).await?;
    let metrics_port = match args.metrics_port {
        Some(0) => None,
        Some(port) => Some(port),
        None => Some(monitor::free_port()?),
    };
    if let Some(port) = metrics_port {
        monitor::serve_prometheus(port).map_err(|e| e.to_string())?;
    }
    out.plain(format!(
        "Multi-plugin example: workers w1, w2, w3 in namespace `{namespace}`, configured by {}",
        args.config.display()
    ));
    out.plain(format!("store: {url} ({})", store.backend()));
    match metrics_port {
        Some(port) => out.plain(format!(
            "Prometheus: curl localhost:{port}/metrics   (while it runs)"
        )),
        None => out.plain("Prometheus: off (--metrics-port 0)"),
    }
    let election = &file.coordinator.election;
    out.plain(format!(
        "timings: heartbeat {:?}, lease_timeout {:?}, renew_deadline {:?}",
        election.heartbeat_interval, election.lease_timeout, election.renew_deadline
    ));
    out.plain("");

    let progress = Arc::new(Progress::default());
    out.say("== 1. Three workers start, each with the queue, the scheduler and the TTL expirer ==");
    let mut workers = Vec::new();
    for name in ["w1", "w2", "w3"] {
        workers.push(start_worker(name, store.clone(), &file, &namespace, &out, &progress).await?);
    }
    let first_leader = until("a leader", Duration::from_secs(15), || {
        leader(&workers).is_some()
    })
    .await?;
    let first = leader(&workers).ok_or("no leader")?;
    out.say(format!(
        "==> {} leads (epoch {}) after {} ms",
        workers[first].name,
        workers[first].coordinator.epoch(),
        first_leader.as_millis()
    ));

    out.say("== 2. Queue: w1 enqueues 6 orders; every worker consumes ==");
    let producer = workers[0].queue.clone();
    for i in 1..=6 {
        producer.enqueue(format!("order-{i}")).await?;
    }
    until("6 orders handled", Duration::from_secs(20), || {
        progress.handled.load(Ordering::Relaxed) >= 6
    })
    .await?;
    // The leader's sweep counts finished claims and removes them.
    let mut stats = producer.stats().await?;
    let started = std::time::Instant::now();
    while stats.completed < 6 && started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        stats = producer.stats().await?;
    }
    out.say(format!(
        "==> queue stats after the leader's sweep: {} pending, {} in flight, {} completed",
        stats.pending, stats.in_flight, stats.completed
    ));

    out.say("== 3. Cron: the job `report` every 2 seconds (6 fields, seconds first), run by the leader only ==");
    match workers[0]
        .scheduler
        .add(JobSpec::new("report", "*/2 * * * * *"))
        .await
    {
        Ok(()) | Err(SchedulerError::JobExists { .. }) => {}
        Err(other) => return Err(other.into()),
    }
    until("2 cron runs", Duration::from_secs(15), || {
        lock(&progress.cron_runs).len() >= 2
    })
    .await?;

    out.say("== 4. TTL: w2 registers 3 sessions that expire after 2 s; the leader's sweep expires them ==");
    for i in 1..=3 {
        workers[1]
            .ttl
            .put(
                &format!("session/{i}"),
                "user",
                Expiry::After(Duration::from_secs(2)),
            )
            .await?;
    }
    until("3 sessions expired", Duration::from_secs(20), || {
        lock(&progress.expired).len() >= 3
    })
    .await?;

    out.say("== 5. The leader crashes (no release, heartbeat left behind) ==");
    let crashed = leader(&workers).ok_or("no leader to crash")?;
    let old_epoch = workers[crashed].coordinator.epoch();
    for c in workers[crashed].registry.coordinators() {
        c.abort();
    }
    workers[crashed].consumer.cancel();
    out.say(format!(
        "{:>3} | crashed under epoch {old_epoch}; the others take over after lease_timeout ({:?}) of silence",
        workers[crashed].name, election.lease_timeout
    ));
    out.say(format!(
        "     (only its loop died here: its plugins keep their term until its renew deadline, {:?}; a slot they claim then is still claimed once)",
        election.renew_deadline
    ));
    let failover = until("a new leader", Duration::from_secs(30), || {
        workers
            .iter()
            .any(|w| w.coordinator.is_leader() && w.coordinator.epoch() > old_epoch)
    })
    .await?;
    let second = leader(&workers).ok_or("no leader")?;
    out.say(format!(
        "==> fail-over: {} leads (epoch {}) {} ms after the crash",
        workers[second].name,
        workers[second].coordinator.epoch(),
        failover.as_millis()
    ));
    let survivor = (crashed + 1) % workers.len();
    for i in 7..=9 {
        workers[survivor]
            .queue
            .enqueue(format!("order-{i}"))
            .await?;
    }
    workers[survivor]
        .ttl
        .put("session/4", "user", Expiry::After(Duration::from_secs(1)))
        .await?;
    until(
        "the work to resume under the new epoch",
        Duration::from_secs(30),
        || {
            progress.handled.load(Ordering::Relaxed) >= 9
                && lock(&progress.cron_runs)
                    .iter()
                    .any(|(_, e)| *e > old_epoch)
                && lock(&progress.expired)
                    .iter()
                    .any(|(_, _, e)| *e > old_epoch)
        },
    )
    .await?;
    out.say(format!(
        "==> after the fail-over: 9 orders handled, cron and TTL run under epoch {}",
        workers[second].coordinator.epoch()
    ));
    until(
        "the crashed worker to leave the roster",
        Duration::from_secs(30),
        || {
            workers[second]
                .coordinator
                .metrics()
                .counters
                .worker_timeouts
                >= 1
        },
    )
    .await?;
    out.say(format!(
        "==> {}'s roster: {:?} (the crashed worker timed out after worker_timeout, {:?})",
        workers[second].name,
        workers[second]
            .coordinator
            .workers()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        election.worker_timeout
    ));

    out.plain("");
    out.say("== 6. metrics() of each worker's coordinator ==");
    out.plain(format!(
        "  {:<3} {:<8} {:>5} {:>10} {:>8} {:>7} {:>12} {:>13} {:>13}",
        "id",
        "state",
        "epoch",
        "heartbeats",
        "renewals",
        "workers",
        "election req",
        "store errors",
        "hook failures"
    ));
    for w in &workers {
        let m = w.coordinator.metrics();
        let state = if m.is_leader {
            "leader".to_owned()
        } else {
            format!("{:?}", m.state).to_lowercase()
        };
        let failures: u64 = m.plugin_hook_failures.iter().map(|f| f.failures).sum();
        out.plain(format!(
            "  {:<3} {:<8} {:>5} {:>10} {:>8} {:>7} {:>12} {:>13} {:>13}",
            w.name,
            state,
            m.epoch,
            m.counters.heartbeats,
            m.counters.renewals,
            m.worker_count,
            m.requests.total(),
            m.counters.store_errors,
            failures
        ));
    }
    if let Some(port) = metrics_port {
        let body = monitor::scrape(port).await?;
        let names = monitor::metric_names(&body);
        out.say(format!(
            "== 7. Prometheus: GET localhost:{port}/metrics gave {} lines, {} coordinator_* metrics ==",
            body.lines().count(),
            names.len()
        ));
        out.plain(format!("  {}", names.join(" ")));
        let leading = format!("worker_id=\"{}\"", workers[second].name);
        if let Some(line) = body
            .lines()
            .find(|l| l.starts_with("coordinator_is_leader{") && l.contains(&leading))
        {
            out.plain(format!("  {line}"));
        }
    }

    out.plain("");
    out.say(format!(
        "== 8. Hand-over: {} stops gracefully (releases the lease), then everyone closes ==",
        workers[second].name
    ));
    let last_epoch = workers[second].coordinator.epoch();
    let stopping = workers[second].coordinator.clone();
    let stop = tokio::spawn(async move { stopping.stop().await });
    let handover = until("a successor", Duration::from_secs(30), || {
        workers
            .iter()
            .any(|w| w.coordinator.is_leader() && w.coordinator.epoch() > last_epoch)
    })
    .await?;
    stop.await?;
    let third = leader(&workers).ok_or("no leader")?;
    out.say(format!(
        "==> hand-over: {} leads (epoch {}) {} ms after the stop began (no lease wait)",
        workers[third].name,
        workers[third].coordinator.epoch(),
        handover.as_millis()
    ));
    let mut consumed = Vec::new();
    for w in workers {
        w.consumer.cancel();
        let stats = w.consuming.await?;
        w.registry.close().await;
        for task in w.monitors {
            task.abort();
        }
        consumed.push(format!("{} {}", w.name, stats.completed));
    }
    out.say(format!(
        "done: first leader {} ms, fail-over {} ms, hand-over {} ms; orders handled per worker: {}; {} cron runs; {} sessions expired",
        first_leader.as_millis(),
        failover.as_millis(),
        handover.as_millis(),
        consumed.join(", "),
        lock(&progress.cron_runs).len(),
        lock(&progress.expired).len()
    ));
    Ok(Report {
        lines: out.lines(),
        metrics_port,
    })
}

#[tokio::main]
async fn main() {
    let args = match Args::parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(usage) => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .init();
    }
    if let Err(error) = run(args).await {
        eprintln!("multi_plugin: {error}");
        std::process::exit(1);
    }
}
