//! `coordinator-worker`: one worker process that joins a namespace's
//! election and prints every change of leadership as one line on stdout.
//! Used by the multi-process tests; handy for trying fail-over by hand.
//!
//! ```text
//! coordinator-worker --url file:///tmp/coord --worker-id w1 [--namespace demo] [--fast]
//!                    [--election '{"heartbeat_interval":"1s"}']
//! ```
//!
//! Output, one line per change (`key=value` fields):
//!
//! ```text
//! READY worker=w1 namespace=demo
//! VIEW worker=w1 leader=w2 epoch=3 is_leader=false
//! STOPPING worker=w1
//! STOPPED worker=w1
//! ```
//!
//! SIGTERM or Ctrl-C stops gracefully (the lease is released, the heartbeat
//! deleted); SIGKILL is a crash.

use std::process::ExitCode;
use std::time::Duration;

use coordinator_runtime::{CoordinatorConfig, CoordinatorRegistry};

const USAGE: &str =
    "usage: coordinator-worker --url URL --worker-id ID [--namespace NS] [--fast] [--election JSON]
  --url        a store URL: file:///abs/dir, s3://bucket/prefix?endpoint=..., memory://
  --worker-id  this worker's id (default: from POD_NAME/HOSTNAME plus a random suffix)
  --namespace  the namespace to join (default: demo)
  --fast       sub-second timings for tests and demos (lease 1.5 s, heartbeat 200 ms)
  --election   election timings as JSON, e.g. {\"heartbeat_interval\":\"1s\"}";

/// The sub-second timings of `--fast`: heartbeat 200 ms + up to 50 ms of
/// jitter, lease timeout 1.5 s, renew deadline 1 s, worker timeout 1.5 s.
fn fast_election() -> coordinator_core::Config {
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
        ..coordinator_core::Config::default()
    }
}

struct Args {
    url: String,
    worker_id: Option<String>,
    namespace: String,
    election: coordinator_core::Config,
}

fn parse_args() -> Result<Args, String> {
    let mut url = None;
    let mut worker_id = None;
    let mut namespace = "demo".to_owned();
    let mut election = coordinator_core::Config::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--url" => url = Some(value("--url")?),
            "--worker-id" => worker_id = Some(value("--worker-id")?),
            "--namespace" => namespace = value("--namespace")?,
            "--fast" => election = fast_election(),
            "--election" => {
                election = serde_json::from_str(&value("--election")?)
                    .map_err(|e| format!("--election: {e}"))?;
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    let url = url.ok_or("--url is required")?;
    Ok(Args {
        url,
        worker_id,
        namespace,
        election,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("coordinator-worker: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("coordinator-worker: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let store = coordinator_store::open(&args.url)
        .await
        .map_err(|e| e.to_string())?;
    let mut config = CoordinatorConfig::default().with_election(args.election);
    config.worker_id = args.worker_id;
    let registry = CoordinatorRegistry::new(store, config).map_err(|e| e.to_string())?;
    let me = registry.worker_id().clone();
    let coordinator = registry
        .get(&args.namespace)
        .await
        .map_err(|e| e.to_string())?;
    println!("READY worker={me} namespace={}", args.namespace);

    let mut leadership = coordinator.leadership();
    let mut terminate =
        signal_terminate().map_err(|e| format!("installing a SIGTERM handler: {e}"))?;
    let mut last = None;
    loop {
        {
            // One line per change of leader, epoch or role (not per renewal).
            let view = leadership.borrow_and_update();
            let shown = (view.leader.clone(), view.epoch, view.is_leader);
            if last.as_ref() != Some(&shown) {
                let leader = view.leader.as_ref().map_or("none", |l| l.as_str());
                println!(
                    "VIEW worker={me} leader={leader} epoch={} is_leader={}",
                    view.epoch, view.is_leader
                );
                last = Some(shown);
            }
        }
        tokio::select! {
            changed = leadership.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            () = terminate.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    println!("STOPPING worker={me}");
    drop(coordinator);
    registry.close().await;
    println!("STOPPED worker={me}");
    Ok(())
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
