//! `coordinator-wire-bench`: real `coordinator run` worker processes on a
//! real S3 server behind a counting proxy, beside `coordinator-sim`'s prediction
//! for the same configuration.
//!
//! ```text
//! eval "$(scripts/moto.sh start)"
//! coordinator-wire-bench --workers 10 --window 5m [--election '{"heartbeat_interval":"1s"}'] [--json]
//! ```
//!
//! `scripts/bench-wire` builds everything, starts moto and runs this. See
//! the `wire` module of coordinator-testkit for what is measured.

use std::path::PathBuf;
use std::process::Command as StdCommand;
use std::time::Duration;

use clap::{Arg, ArgAction, ArgMatches, Command};
use coordinator_core::{parse_duration, Config};
use coordinator_testkit::wire::{self, KindRates, Trial, WireConfig, WireReport};
use coordinator_testkit::Requests;
use serde_json::{json, Value};

fn command() -> Command {
    Command::new("coordinator-wire-bench")
        .about("Real `coordinator run` worker processes on a real S3 server (moto) behind a counting proxy, beside coordinator-sim's prediction")
        .arg(Arg::new("workers").long("workers").default_value("3").help("worker processes"))
        .arg(Arg::new("election").long("election").help("the workers' timings as JSON (coordinator_core::Config), e.g. '{\"heartbeat_interval\":\"1s\"}'; default: the defaults"))
        .arg(Arg::new("window").long("window").default_value("10m").help("the steady window in which requests are counted"))
        .arg(Arg::new("warmup").long("warmup").help("from every worker agreeing to the window (default: two membership and list intervals)"))
        .arg(Arg::new("crash-trials").long("crash-trials").default_value("3").help("SIGKILL-the-leader trials"))
        .arg(Arg::new("graceful-trials").long("graceful-trials").default_value("3").help("SIGTERM-the-leader trials"))
        .arg(Arg::new("endpoint").long("endpoint").help("the S3 server (default: COORD_S3_ENDPOINT, else http://127.0.0.1:9000)"))
        .arg(Arg::new("bucket").long("bucket").help("its bucket (default: COORD_S3_BUCKET, else coordinator-test)"))
        .arg(Arg::new("coordinator-bin").long("coordinator-bin").help("the `coordinator` binary of coordinator-cli (default: next to this one)"))
        .arg(Arg::new("sim-bin").long("sim-bin").help("the coordinator-sim binary (default: next to this one)"))
        .arg(Arg::new("seed").long("seed").default_value("1").help("the simulator's seed"))
        .arg(Arg::new("sim-duration").long("sim-duration").default_value("1h").help("the simulator's simulated time"))
        .arg(Arg::new("json").long("json").action(ArgAction::SetTrue).help("print one JSON object"))
}

fn fail(message: String) -> ! {
    eprintln!("coordinator-wire-bench: {message}");
    std::process::exit(1);
}

fn text<'a>(m: &'a ArgMatches, name: &str) -> &'a str {
    m.get_one::<String>(name).map_or("", String::as_str)
}

fn num<T: std::str::FromStr>(m: &ArgMatches, name: &str) -> T {
    text(m, name)
        .parse()
        .unwrap_or_else(|_| fail(format!("--{name}: `{}` is not a number", text(m, name))))
}

fn duration(m: &ArgMatches, name: &str) -> Option<Duration> {
    m.get_one::<String>(name)
        .map(|t| parse_duration(t).unwrap_or_else(|e| fail(format!("--{name}: {e}"))))
}

fn sibling(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(name)))
        .unwrap_or_else(|| PathBuf::from(name))
}

/// Runs `coordinator-sim --json` with `args`; its JSON.
fn simulate(sim: &PathBuf, args: &[String]) -> Value {
    let output = StdCommand::new(sim)
        .args(args)
        .arg("--json")
        .output()
        .unwrap_or_else(|e| fail(format!("running {}: {e}", sim.display())));
    if !output.status.success() {
        fail(format!(
            "{} {} failed: {}",
            sim.display(),
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| fail(format!("coordinator-sim's JSON: {e}")))
}

fn sim_requests(report: &Value) -> Requests {
    let n = |kind: &str| report["requests"][kind].as_u64().unwrap_or(0);
    Requests {
        get: n("get"),
        head: n("head"),
        put: n("put"),
        list: n("list"),
        delete: n("delete"),
    }
}

fn percent(wire: f64, sim: f64) -> Option<f64> {
    (sim > 0.0).then(|| (wire - sim) / sim * 100.0)
}

fn main() {
    let m = command().get_matches();
    let workers: usize = num(&m, "workers");
    if workers == 0 {
        fail("--workers must be at least 1".into());
    }
    let election_json = m.get_one::<String>("election").cloned();
    let election: Config = election_json.as_deref().map_or_else(Config::default, |t| {
        serde_json::from_str(t).unwrap_or_else(|e| fail(format!("--election: {e}")))
    });
    election
        .validate()
        .unwrap_or_else(|e| fail(format!("--election: {e}")));
    let endpoint = m
        .get_one::<String>("endpoint")
        .cloned()
        .or_else(|| std::env::var("COORD_S3_ENDPOINT").ok())
        .unwrap_or_else(|| "http://127.0.0.1:9000".into());
    let coordinator_bin = m
        .get_one::<String>("coordinator-bin")
        .map_or_else(|| sibling("coordinator"), PathBuf::from);
    let sim_bin = m
        .get_one::<String>("sim-bin")
        .map_or_else(|| sibling("coordinator-sim"), PathBuf::from);
    for bin in [&coordinator_bin, &sim_bin] {
        if !bin.exists() {
            fail(format!(
                "{} not found: build it (scripts/bench-wire does) or pass its path",
                bin.display()
            ));
        }
    }
    let mut config = WireConfig::new(workers, election.clone(), coordinator_bin, &endpoint);
    if let Some(bucket) = m
        .get_one::<String>("bucket")
        .cloned()
        .or_else(|| std::env::var("COORD_S3_BUCKET").ok())
    {
        config.bucket = bucket;
    }
    config.window = duration(&m, "window").unwrap_or(config.window);
    config.warmup = duration(&m, "warmup").unwrap_or(config.warmup);
    config.crash_trials = num(&m, "crash-trials");
    config.graceful_trials = num(&m, "graceful-trials");

    eprintln!(
        "coordinator-wire-bench: {workers} workers on {endpoint}: cold start, {:?} warm-up, {:?} window, {} + {} trials",
        config.warmup, config.window, config.crash_trials, config.graceful_trials
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(format!("tokio: {e}")));
    let report = runtime
        .block_on(wire::run(&config))
        .unwrap_or_else(|e| fail(e));

    // The simulator, with the store latency the proxy measured (it takes
    // well under a second).
    let election_arg =
        serde_json::to_string(&election).unwrap_or_else(|e| fail(format!("--election: {e}")));
    let base = vec![
        "--workers".to_owned(),
        workers.to_string(),
        "--seed".into(),
        text(&m, "seed").to_owned(),
        "--duration".into(),
        text(&m, "sim-duration").to_owned(),
        "--latency".into(),
        format!("{}ms", report.sim_latency_ms()),
        "--config".into(),
        election_arg,
    ];
    let steady = simulate(&sim_bin, &base);
    // Trials: a crash and a graceful stop of the leader every five
    // minutes.
    let mut with_trials = base.clone();
    with_trials
        .extend(["--crash-leader-every", "5m", "--stop-leader-every", "5m"].map(str::to_owned));
    let trials = simulate(&sim_bin, &with_trials);
    let sim_rates = KindRates::of_sim(
        &sim_requests(&steady),
        steady["worker_hours"].as_f64().unwrap_or(f64::NAN),
    );

    if m.get_flag("json") {
        let diff: Value = report
            .requests_per_worker_hour
            .rows()
            .iter()
            .zip(sim_rates.rows())
            .map(|((name, wire), (_, sim))| (name.to_string(), json!(percent(*wire, sim))))
            .collect::<serde_json::Map<_, _>>()
            .into();
        let out = json!({
            "election": election,
            "wire": report,
            "sim": {
                "args": base,
                "requests_per_worker_hour": sim_rates,
                "convergence_seconds": steady["convergence_seconds"],
                "failover_seconds": trials["failover_seconds"],
                "handover_seconds": trials["handover_seconds"],
            },
            "difference_percent": diff,
        });
        println!("{out}");
    } else {
        print_table(&report, &sim_rates, &steady, &trials, &base);
    }
}

fn list(trials: &[Trial], pick: impl Fn(&Trial) -> f64) -> String {
    if trials.is_empty() {
        return "-".into();
    }
    trials
        .iter()
        .map(|t| format!("{:.2}", pick(t)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn summary(value: &Value) -> String {
    let f = |k: &str| value[k].as_f64().map_or("-".into(), |v| format!("{v:.2}"));
    format!(
        "p50 {} max {} (n={})",
        f("p50"),
        f("max"),
        value["count"].as_u64().unwrap_or(0)
    )
}

fn print_table(
    report: &WireReport,
    sim: &KindRates,
    steady: &Value,
    trials: &Value,
    sim_args: &[String],
) {
    println!(
        "{} workers; steady window {:.0} s; server round trip {:.1} ms (mean of {}); simulator: coordinator-sim {}",
        report.workers,
        report.window_seconds,
        report.mean_round_trip_ms,
        report.round_trips.count,
        sim_args.join(" ")
    );
    println!();
    println!(
        "| requests per worker-hour | wire | simulator | difference |\n| --- | ---: | ---: | ---: |"
    );
    for ((name, wire), (_, predicted)) in report
        .requests_per_worker_hour
        .rows()
        .iter()
        .zip(sim.rows())
    {
        if *name == "other" && *wire == 0.0 {
            continue;
        }
        let diff = percent(*wire, predicted).map_or("-".into(), |d| format!("{d:+.1}%"));
        println!("| {name} | {wire:.1} | {predicted:.1} | {diff} |");
    }
    println!();
    let c = &report.cold_start;
    println!("| timing (s) | wire | simulator |\n| --- | --- | --- |");
    println!(
        "| cold start: first leader (from the first launch) | {:.2} | {} (first acquisition; workers start within 0–1 s) |",
        c.first_leader_seconds,
        steady["convergence_seconds"]
            .as_f64()
            .map_or("-".into(), |v| format!("{v:.2}"))
    );
    println!(
        "| cold start: every worker agrees, from the first launch / the last ({:.2} s apart) | {:.2} / {:.2} | - |",
        c.launch_spread_seconds, c.all_agree_seconds, c.all_agree_after_last_launch_seconds
    );
    println!(
        "| crash fail-over (SIGKILL → new leader) | {} | {} |",
        list(&report.failover, |t| t.new_leader_seconds),
        summary(&trials["failover_seconds"])
    );
    println!(
        "| … every survivor agrees | {} | - |",
        list(&report.failover, |t| t.all_agree_seconds)
    );
    println!(
        "| graceful hand-over (SIGTERM → new leader) | {} | {} |",
        list(&report.handover, |t| t.new_leader_seconds),
        summary(&trials["handover_seconds"])
    );
    println!(
        "| … every survivor agrees | {} | - |",
        list(&report.handover, |t| t.all_agree_seconds)
    );
    println!();
    println!(
        "window: {} requests ({} GET, {} PUT, {} LIST, {} DELETE, {} HEAD, {} other), {} leader changes; before it: {} requests",
        report.requests.total(),
        report.requests.get,
        report.requests.put,
        report.requests.list,
        report.requests.delete,
        report.requests.head,
        report.requests.other,
        report.leader_changes_in_window,
        report.startup_requests.total(),
    );
}
