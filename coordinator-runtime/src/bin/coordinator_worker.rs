//! `coordinator-worker`: one worker process that joins a namespace's
//! election and prints every change of leadership as one line on stdout.
//! Used by the multi-process tests; handy for trying fail-over by hand.
//!
//! ```text
//! coordinator-worker --url file:///tmp/coord --worker-id w1 [--namespace demo] [--fast]
//!                    [--election '{"heartbeat_interval":"1s"}'] [--events-json]
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
//! With `--events-json`, the same events come as one JSON object a line,
//! each with the instant it was printed on `CLOCK_MONOTONIC` in nanoseconds
//! (`mono_ns`; shared by every process on one Linux machine, so the wire
//! benchmark can compare workers' lines exactly; `null` on other systems):
//!
//! ```text
//! {"event":"ready","worker":"w1","namespace":"demo","mono_ns":81234567890}
//! {"event":"view","worker":"w1","leader":"w2","epoch":3,"is_leader":false,"mono_ns":81290000000}
//! {"event":"stopping","worker":"w1","mono_ns":…}
//! {"event":"stopped","worker":"w1","mono_ns":…}
//! ```
//!
//! SIGTERM or Ctrl-C stops gracefully (the lease is released, the heartbeat
//! deleted); SIGKILL is a crash.

use std::process::ExitCode;
use std::time::Duration;

use coordinator_runtime::{CoordinatorConfig, CoordinatorRegistry};
use serde_json::json;

const USAGE: &str =
    "usage: coordinator-worker --url URL --worker-id ID [--namespace NS] [--fast] [--election JSON] [--events-json]
  --url        a store URL: file:///abs/dir, s3://bucket/prefix?endpoint=..., memory://
  --worker-id  this worker's id (default: from POD_NAME/HOSTNAME plus a random suffix)
  --namespace  the namespace to join (default: demo)
  --fast       sub-second timings for tests and demos (lease 1.5 s, heartbeat 200 ms)
  --election   election timings as JSON, e.g. {\"heartbeat_interval\":\"1s\"}
  --events-json  print each event as one JSON line with a CLOCK_MONOTONIC timestamp (mono_ns)";

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
    events_json: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut url = None;
    let mut worker_id = None;
    let mut namespace = "demo".to_owned();
    let mut election = coordinator_core::Config::default();
    let mut events_json = false;
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
            "--events-json" => events_json = true,
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
        events_json,
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
    let json = args.events_json;
    if json {
        emit(json!({"event": "ready", "worker": me.as_str(), "namespace": args.namespace}));
    } else {
        println!("READY worker={me} namespace={}", args.namespace);
    }

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
                if json {
                    emit(json!({
                        "event": "view",
                        "worker": me.as_str(),
                        "leader": view.leader.as_ref().map(|l| l.as_str()),
                        "epoch": view.epoch,
                        "is_leader": view.is_leader,
                    }));
                } else {
                    let leader = view.leader.as_ref().map_or("none", |l| l.as_str());
                    println!(
                        "VIEW worker={me} leader={leader} epoch={} is_leader={}",
                        view.epoch, view.is_leader
                    );
                }
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
    if json {
        emit(json!({"event": "stopping", "worker": me.as_str()}));
    } else {
        println!("STOPPING worker={me}");
    }
    drop(coordinator);
    registry.close().await;
    if json {
        emit(json!({"event": "stopped", "worker": me.as_str()}));
    } else {
        println!("STOPPED worker={me}");
    }
    Ok(())
}

/// Prints one `--events-json` line: `fields` plus `mono_ns`.
fn emit(mut fields: serde_json::Value) {
    if let Some(object) = fields.as_object_mut() {
        object.insert("mono_ns".into(), json!(monotonic_ns()));
    }
    println!("{fields}");
}

/// Now on `CLOCK_MONOTONIC`, in nanoseconds: the same clock in every
/// process of the machine (not `CLOCK_BOOTTIME`, the election's clock,
/// because other programs, Python's `time.monotonic()` among them, read
/// this one).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn monotonic_ns() -> Option<u64> {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let secs = u64::try_from(ts.tv_sec).ok()?;
    let nanos = u64::try_from(ts.tv_nsec).ok()?;
    Some(secs.saturating_mul(1_000_000_000).saturating_add(nanos))
}

/// No machine-wide clock is read elsewhere: `mono_ns` is `null`.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn monotonic_ns() -> Option<u64> {
    None
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
