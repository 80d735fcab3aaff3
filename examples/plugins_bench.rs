//! Store cost and throughput of the plugins, for docs/benchmarks.md.
//!
//! ```sh
//! cargo run --release --example plugins_bench -- [--messages N] [--s3-messages M] [--workers W] [--concurrency C]
//! ```
//!
//! * **queue**: `N` messages (default 2000) enqueued in one batch, then
//!   handled by `W` consumers (default 8) of `C` handlers each (default 4,
//!   no-op handlers) while a leader sweeps every 200 ms, until the leader
//!   has deleted every message and claim. Real time, against a local
//!   directory (a temp dir) and, when `COORD_S3_ENDPOINT` is set, against
//!   that S3 endpoint (moto in CI) with `M` messages (default 500: moto
//!   lists slowly, and a listing must fit the store's request timeout). Prints messages per second and store
//!   requests per message, by kind (the leader's included).
//! * **ttl**: 5,000 records expiring over an hour on the memory store in
//!   paused time: requests per registration and per expiry (sweeps only).
//! * **scheduler**: one and ten per-minute jobs for 6 hours on the memory
//!   store in paused time: the leader's requests per scheduled run.

use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coordinator_core::{Namespace, WorkerId};
use coordinator_plugins::queue::{Queue, QueueConfig};
use coordinator_plugins::scheduler::{JobContext, JobError, JobSpec, Scheduler, SchedulerConfig};
use coordinator_plugins::ttl::{Expiry, Ttl, TtlConfig};
use coordinator_runtime::{Clock, LeaderContext, TokioClock};
use coordinator_store::{
    LeaseStore, LeaseStoreExt, LocalDirStore, MemoryStore, Metered, RequestCounts, RequestKind,
};
use tokio_util::sync::CancellationToken;

type BoxError = Box<dyn Error + Send + Sync>;

struct Args {
    messages: usize,
    s3_messages: usize,
    workers: usize,
    concurrency: usize,
}

fn args() -> Result<Args, BoxError> {
    let mut args = Args {
        messages: 2000,
        s3_messages: 500,
        workers: 8,
        concurrency: 4,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value: usize = it.next().ok_or(format!("{flag} needs a value"))?.parse()?;
        match flag.as_str() {
            "--messages" => args.messages = value,
            "--s3-messages" => args.s3_messages = value,
            "--workers" => args.workers = value,
            "--concurrency" => args.concurrency = value,
            other => {
                return Err(format!(
                    "unknown flag {other}; use --messages, --s3-messages, --workers, --concurrency"
                )
                .into())
            }
        }
    }
    Ok(args)
}

fn leader_context(
    store: Arc<dyn LeaseStore>,
    clock: Arc<dyn Clock>,
) -> Result<LeaderContext, BoxError> {
    let deadline = clock.now() + Duration::from_secs(365 * 86_400);
    Ok(LeaderContext::standalone(
        1,
        Namespace::new("bench")?,
        WorkerId::new("leader")?,
        store,
        clock,
        deadline,
    ))
}

fn per(counts: &RequestCounts, n: usize) -> String {
    let n = n.max(1) as f64;
    let parts: Vec<String> = RequestKind::ALL
        .iter()
        .filter(|k| counts.of(**k) > 0)
        .map(|k| format!("{k} {:.2}", counts.of(*k) as f64 / n))
        .collect();
    format!(
        "{} (total {:.2})",
        parts.join(", "),
        counts.total() as f64 / n
    )
}

async fn queue_bench(label: &str, inner: Arc<dyn LeaseStore>, args: &Args) -> Result<(), BoxError> {
    let metered = Arc::new(Metered::new(inner));
    let store: Arc<dyn LeaseStore> = metered.clone();
    let config = QueueConfig {
        concurrency: args.concurrency,
        poll_interval: Duration::from_millis(100),
        max_poll_interval: Duration::from_millis(400),
        sweep_interval: Duration::from_millis(200),
        claim_window: 64,
        ..QueueConfig::default()
    };
    let clock: Arc<dyn Clock> = Arc::new(coordinator_runtime::SystemClock::new());
    let queue = Queue::builder(&registry(store.clone(), clock.clone())?, "bench", "q")
        .config(config)
        .build()?;
    let ctx = leader_context(store.clone(), clock)?;
    let leader = queue.maintenance();
    leader.sweep(&ctx).await?;
    let started = Instant::now();
    queue
        .enqueue_batch((0..args.messages).map(|i| format!("message {i}")))
        .await?;
    let enqueued = started.elapsed();
    let after_enqueue = metered.snapshot();
    let start = Instant::now();
    let stop = CancellationToken::new();
    let mut tasks = Vec::new();
    for _ in 0..args.workers {
        let worker = queue.worker(
            |_m: coordinator_plugins::queue::Message,
             _c: coordinator_plugins::queue::ClaimHandle| async {
                Ok::<(), coordinator_plugins::queue::HandlerError>(())
            },
        );
        tasks.push(tokio::spawn(worker.run(stop.clone())));
    }
    let prefix = queue.prefix().to_owned();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        leader.sweep(&ctx).await?;
        let left = store.list(&format!("{prefix}/messages/")).await?.len()
            + store.list(&format!("{prefix}/claims/")).await?.len();
        if left == 0 {
            break;
        }
    }
    let handled = start.elapsed();
    stop.cancel();
    let mut races = 0;
    for task in tasks {
        races += task.await?.races_lost;
    }
    let total = metered.snapshot();
    println!(
        "queue [{label}] {} messages, {} workers x {}: enqueue {:.0} msg/s; handled and cleaned up {:.0} msg/s ({:?}); claim races lost {races}",
        args.messages,
        args.workers,
        args.concurrency,
        args.messages as f64 / enqueued.as_secs_f64(),
        args.messages as f64 / handled.as_secs_f64(),
        handled
    );
    println!(
        "queue [{label}] requests per message, enqueue: {}",
        per(&after_enqueue, args.messages)
    );
    println!("queue [{label}] requests per message, everything (workers' polls and the leader included): {}", per(&total, args.messages));
    Ok(())
}

fn ttl_bench() -> Result<(), BoxError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()?;
    runtime.block_on(async {
        let metered = Arc::new(Metered::new(MemoryStore::new()));
        let store: Arc<dyn LeaseStore> = metered.clone();
        let clock = Arc::new(TokioClock::starting_at(1_700_000_000_000));
        let ttl = Ttl::builder(&registry(store.clone(), clock.clone())?, "bench", "t")
            .config(TtlConfig::default())
            .build()?;
        let n = 5_000u64;
        for i in 0..n {
            ttl.put(
                &format!("k{i}"),
                "v",
                Expiry::After(Duration::from_millis(1_000 + i * 720)),
            )
            .await?;
        }
        let registered = metered.counter().reset();
        let sweeper = ttl.sweeper();
        let ctx = leader_context(store.clone(), clock.clone())?;
        let sweeps = (3_600 + 120) / 10;
        for _ in 0..sweeps {
            sweeper.sweep(&ctx).await?;
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
        let swept = metered.snapshot();
        let left = store
            .list(&format!("{}/records/", ttl.prefix()))
            .await?
            .len();
        println!("ttl: {n} records, 1 min buckets, 10 s sweeps, hard delete; left {left}");
        println!(
            "ttl: requests per registration: {}",
            per(&registered, n as usize)
        );
        println!(
            "ttl: requests per expiry ({sweeps} sweeps over the hour included): {}",
            per(&swept, n as usize)
        );
        Ok::<(), BoxError>(())
    })
}

fn scheduler_bench(jobs: usize) -> Result<(), BoxError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()?;
    runtime.block_on(async {
        let metered = Arc::new(Metered::new(MemoryStore::new()));
        let store: Arc<dyn LeaseStore> = metered.clone();
        let clock = Arc::new(TokioClock::starting_at(1_700_000_000_000));
        let runs = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = runs.clone();
        let scheduler = Scheduler::builder(&registry(store.clone(), clock.clone())?, "bench", "cron")
            .config(SchedulerConfig::default())
            .handler("tick", move |_ctx: JobContext| {
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                std::future::ready(Ok::<(), JobError>(()))
            })
            .build()?;
        for j in 0..jobs {
            scheduler.add(JobSpec::new(format!("job{j}"), "* * * * *").handler("tick")).await?;
        }
        metered.counter().reset();
        let plugin = scheduler.plugin();
        let ctx = leader_context(store.clone(), clock.clone())?;
        coordinator_runtime::CoordinatorPlugin::on_become_coordinator(&plugin, ctx).await?;
        tokio::time::sleep(Duration::from_secs(6 * 3600)).await;
        let counts = metered.snapshot();
        let runs = runs.load(std::sync::atomic::Ordering::Relaxed) as usize;
        println!("scheduler: {jobs} per-minute job(s) for 6 h: {runs} runs; the leader's requests per run (10 s reloads, history trimming included): {}", per(&counts, runs));
        Ok::<(), BoxError>(())
    })
}

/// A registry over `store` on `clock` that starts no coordinator: the
/// benchmarks drive the plugins' leader parts with a standalone context.
fn registry(
    store: Arc<dyn LeaseStore>,
    clock: Arc<dyn Clock>,
) -> Result<coordinator_runtime::CoordinatorRegistry, BoxError> {
    Ok(coordinator_runtime::CoordinatorRegistry::builder(store)
        .config(coordinator_runtime::CoordinatorConfig::default().with_worker_id("bench"))
        .clock(clock)
        .build()?)
}

fn main() -> Result<(), BoxError> {
    let args = args()?;
    println!(
        "machine: {} cores; {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| c
                .lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.to_owned()))
            .unwrap_or_default()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let dir = tempfile::tempdir()?;
        queue_bench("local directory", Arc::new(LocalDirStore::new(dir.path().to_path_buf())), &args).await?;
        match std::env::var("COORD_S3_ENDPOINT") {
            Ok(endpoint) => {
                let bucket = std::env::var("COORD_S3_BUCKET").unwrap_or_else(|_| "coordinator-test".into());
                let unique = format!("bench-{}-{}", std::process::id(), std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis());
                let store = coordinator_store::open(&format!("s3://{bucket}/{unique}?endpoint={endpoint}")).await?;
                let s3_args = Args { messages: args.s3_messages, ..args };
                queue_bench("s3 (moto)", store, &s3_args).await?;
            }
            Err(_) => println!("queue [s3]: SKIPPED, COORD_S3_ENDPOINT is not set (eval \"$(scripts/moto.sh start)\")"),
        }
        Ok::<(), BoxError>(())
    })?;
    ttl_bench()?;
    scheduler_bench(1)?;
    scheduler_bench(10)?;
    Ok(())
}
