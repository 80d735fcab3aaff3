//! `coordinator-chaos-worker`: one worker process of the chaos test. It
//! builds its coordinator as `coordinator run` does (the real runtime,
//! [`SystemClock`](coordinator_runtime::SystemClock), a store opened and
//! probed from a URL), attaches the fenced register plugin, and prints
//! JSON lines ([`Line`]) with `CLOCK_MONOTONIC` timestamps.
//!
//! ```text
//! coordinator-chaos-worker --url URL --worker-id ID [--namespace NS]
//!     [--election JSON] [--register-interval-ms N] [--store-timeout-ms N]
//!     [--queue]
//! ```
//!
//! With `--queue` it also produces and consumes messages of the chaos
//! queue and runs the queue's maintenance on its coordinator.
//!
//! Test-only: `COORD_CHAOS_BROKEN=ignore-term` runs the broken register
//! ([`Safety::IgnoreTerm`]), which the checker must catch. Any other value
//! is refused. SIGTERM stops gracefully (the lease released).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use coordinator_core::Keys;
use coordinator_plugins::queue::Queue;
use coordinator_runtime::{CoordinatorConfig, CoordinatorRegistry};
use coordinator_store::StoreOptions;
use coordinator_testkit::chaos::events::{Line, WorkerEvent};
use coordinator_testkit::chaos::queue;
use coordinator_testkit::chaos::register::{FencedRegister, Safety};
use coordinator_testkit::chaos::{boottime_ms_to_monotonic_ns, monotonic_ns};

const USAGE: &str = "usage: coordinator-chaos-worker --url URL --worker-id ID [--namespace NS] [--election JSON] [--register-interval-ms N] [--store-timeout-ms N] [--queue]";

struct Args {
    url: String,
    worker_id: String,
    namespace: String,
    election: coordinator_core::Config,
    register_interval: Duration,
    store_timeout: Duration,
    safety: Safety,
    queue: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut url = None;
    let mut worker_id = None;
    let mut namespace = "chaos".to_owned();
    let mut election = coordinator_core::Config::default();
    let mut register_interval = Duration::from_millis(200);
    let mut store_timeout = Duration::from_millis(500);
    let mut queue = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        let ms = |text: String, name: &str| {
            text.parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|e| format!("{name}: {e}"))
        };
        match arg.as_str() {
            "--url" => url = Some(value("--url")?),
            "--worker-id" => worker_id = Some(value("--worker-id")?),
            "--namespace" => namespace = value("--namespace")?,
            "--election" => {
                election = serde_json::from_str(&value("--election")?)
                    .map_err(|e| format!("--election: {e}"))?;
            }
            "--register-interval-ms" => {
                register_interval = ms(value(&arg)?, "--register-interval-ms")?;
            }
            "--store-timeout-ms" => store_timeout = ms(value(&arg)?, "--store-timeout-ms")?,
            "--queue" => queue = true,
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    let safety = match std::env::var("COORD_CHAOS_BROKEN").as_deref() {
        Err(_) | Ok("") => Safety::Checked,
        Ok("ignore-term") => Safety::IgnoreTerm,
        Ok(other) => {
            return Err(format!(
                "COORD_CHAOS_BROKEN=`{other}`: the only broken mode is `ignore-term`"
            ))
        }
    };
    Ok(Args {
        url: url.ok_or("--url is required")?,
        worker_id: worker_id.ok_or("--worker-id is required")?,
        namespace,
        election,
        register_interval,
        store_timeout,
        safety,
        queue,
    })
}

fn emit(worker: &str, event: WorkerEvent) {
    let line = Line {
        worker: worker.to_owned(),
        mono_ns: monotonic_ns(),
        event,
    };
    if let Ok(text) = serde_json::to_string(&line) {
        println!("{text}");
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("coordinator-chaos-worker: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("coordinator-chaos-worker: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    // The library's own account of the run (its stderr goes to a file per
    // process under `coordinator-chaos --out`).
    let filter = tracing_subscriber::EnvFilter::try_from_env("COORDINATOR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
    let options = StoreOptions {
        request_timeout: args.store_timeout,
        max_retries: 2,
        retry_timeout: args.store_timeout * 2,
    };
    let store = coordinator_store::open_with(&args.url, options)
        .await
        .map_err(|e| e.to_string())?;
    let config = CoordinatorConfig::default()
        .with_election(args.election)
        .with_worker_id(args.worker_id.clone());
    let registry = CoordinatorRegistry::new(store, config).map_err(|e| e.to_string())?;
    let seed = coordinator_runtime::os_seed();
    let coordinator = registry
        .get(&args.namespace)
        .await
        .map_err(|e| e.to_string())?;
    let namespace = coordinator_core::Namespace::new(&args.namespace).map_err(|e| e.to_string())?;
    let key = format!(
        "{}chaos/register.json",
        Keys::global(&namespace).data_prefix()
    );
    let me = args.worker_id.clone();
    let sink = me.clone();
    let register = FencedRegister::new(
        key,
        me.clone(),
        args.register_interval,
        args.safety,
        seed,
        Arc::new(move |event| emit(&sink, event)),
    );
    coordinator
        .add_plugin(Arc::new(register))
        .map_err(|e| e.to_string())?;
    let mut tasks = tokio::task::JoinSet::new();
    if args.queue {
        let queue = Queue::builder(&registry, &args.namespace, queue::QUEUE)
            .config(queue::queue_config(seed ^ 1))
            .build()
            .map_err(|e| e.to_string())?;
        registry
            .attach(&args.namespace, Arc::new(queue.maintenance()))
            .await
            .map_err(|e| e.to_string())?;
        let (a, b) = (me.clone(), me.clone());
        tasks.spawn(queue::produce(
            queue.clone(),
            me.clone(),
            seed & 0xFFFF,
            Duration::from_millis(500),
            Arc::new(move |event| emit(&a, event)),
        ));
        tasks.spawn(queue::consume(
            queue,
            seed ^ 2,
            Arc::new(move |event| emit(&b, event)),
        ));
    }
    emit(&me, WorkerEvent::Ready);

    let mut leadership = coordinator.leadership();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("installing a SIGTERM handler: {e}"))?;
    // (epoch, deadline) last printed while leading.
    let mut shown: Option<(u64, u64)> = None;
    loop {
        {
            let view = leadership.borrow_and_update();
            let now = match (view.is_leader, view.deadline) {
                (true, Some(deadline)) => Some((view.epoch, deadline.as_millis())),
                _ => None,
            };
            if let Some((epoch, _)) = shown {
                if now.is_none_or(|(e, _)| e != epoch) {
                    emit(&me, WorkerEvent::NotLeading { epoch });
                    shown = None;
                }
            }
            if let Some((epoch, deadline_ms)) = now {
                if shown != Some((epoch, deadline_ms)) {
                    emit(
                        &me,
                        WorkerEvent::Leading {
                            epoch,
                            deadline_ns: boottime_ms_to_monotonic_ns(deadline_ms),
                        },
                    );
                    shown = Some((epoch, deadline_ms));
                }
            }
        }
        tokio::select! {
            changed = leadership.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            _ = terminate.recv() => break,
        }
    }
    emit(&me, WorkerEvent::Stopping);
    tasks.abort_all();
    drop(coordinator);
    registry.close().await;
    emit(&me, WorkerEvent::Stopped);
    Ok(())
}
