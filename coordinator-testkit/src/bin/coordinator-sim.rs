//! `coordinator-sim`: run the deterministic simulation from the command line.
//!
//! ```text
//! coordinator-sim --workers 100 --plugins 10 --mode global --duration 1h --seed 7 --faults swarm --json
//! coordinator-sim --workers 100 --seeds 0..2000 --faults swarm
//! coordinator-sim --workers 20 --seeds 0..100 --faults delete_lease,leader_partitions,timing_rollout
//! coordinator-sim --workers 10 --seed 3 --faults store_clock_steps,crashes --store self-hosted
//! coordinator-sim --workers 4 --seed 7 --duration 5m --faults crashes,pauses --timeline run.svg
//! ```
//!
//! One seed prints a summary table (or, with `--json`, one JSON object);
//! `--seeds` runs many on every core and summarises them, with a progress
//! bar on stderr. `--timeline FILE` (one seed) also draws the run
//! ([`coordinator_testkit::timeline::render_svg`]), or writes its
//! [`Timeline`] as JSON when `FILE`
//! ends in `.json`.
//!
//! Exit status ([`coordinator_testkit::exit_code`]): 0 when every run kept
//! its invariants (`--mode naive`, the replaced system, always exits 0: its
//! violations are the point of running it, and the report lists them); 1
//! when the simulator failed otherwise (its output could not be written); 2
//! when the command line is wrong (clap's usage errors, and values the
//! simulator refuses); 3 when a run in a core mode (`global`, `per-plugin`)
//! broke an invariant.

use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use clap::{Arg, ArgAction, ArgMatches, Command};
use coordinator_core::{parse_duration, Config};
use coordinator_testkit::timeline::{render_svg, Timeline};
use coordinator_testkit::{
    exit_code, parse_seeds, random_seed, FaultSet, LatencyModel, Mode, Report, Requests, Scenario,
    SeedTree, Sim, StoreFlavor, Summary, FAULT_KINDS,
};
use serde_json::{json, Value};

fn command() -> Command {
    Command::new("coordinator-sim")
        .about("Deterministic simulation of coordinator workers against a simulated object store, with faults and an invariant oracle")
        .arg(Arg::new("workers").long("workers").default_value("10").help("worker processes"))
        .arg(Arg::new("plugins").long("plugins").default_value("1").help("plugins per worker (one election each in per-plugin mode)"))
        .arg(Arg::new("mode").long("mode").default_value("global").help("global | per-plugin | naive (the replaced system)"))
        .arg(Arg::new("duration").long("duration").default_value("1h").help("simulated time: 90s, 10m, 1h"))
        .arg(Arg::new("seed").long("seed").help("root seed (default: COORD_SIM_SEED, else random)"))
        .arg(Arg::new("seeds").long("seeds").help("many seeds: 0..1000 or 1,5,9; summarised").conflicts_with("seed"))
        .arg(Arg::new("faults").long("faults").default_value("none").help(format!(
            "none | swarm (a random subset of fault kinds per seed) | a comma-separated list of kinds, each with intensities drawn from the seed: operator (every operator fault), {}",
            FAULT_KINDS.join(", ")
        )))
        .arg(Arg::new("exclude").long("exclude").help("fault kinds to turn off after drawing (e.g. --faults swarm --exclude wipe_namespace,delete_lease)"))
        .arg(Arg::new("store").long("store").help("the store's flavour: s3 | memory | local | self-hosted (default: drawn from the seed with faults, else s3)"))
        .arg(Arg::new("latency").long("latency").help("the store's round trip: s3 (10–40 ms, a shoulder to 150 ms and a tail to 600 ms; the default) or a fixed one such as 4ms (a local server: compare with coordinator-wire-bench)"))
        .arg(Arg::new("crash-leader-every").long("crash-leader-every").help("crash the leader this often (restart 30 s later)"))
        .arg(Arg::new("stop-leader-every").long("stop-leader-every").help("stop the leader gracefully this often, half a period after the crashes (restart 10 s later)"))
        .arg(Arg::new("stale-lease-age").long("stale-lease-age").help("start with a lease left by a leader that died this long ago"))
        .arg(Arg::new("config").long("config").help("the workers' timings as JSON (coordinator_core::Config), e.g. '{\"heartbeat_interval\":\"5s\"}'"))
        .arg(Arg::new("clock-rates").long("clock-rates").help("each worker slot's clock rate, comma-separated (1 is exact; slots past the list run at 1); rates beyond the drift tolerance (e.g. 0.5,1.5,1.5 with faults leader_partitions) break the promise, to see the oracle catch it"))
        .arg(Arg::new("threads").long("threads").help("threads for --seeds (default: every core)"))
        .arg(Arg::new("json").long("json").action(ArgAction::SetTrue).help("print one JSON object"))
        .arg(Arg::new("trace").long("trace").action(ArgAction::SetTrue).help("print the events up to the first violation and the last 200 of a single run"))
        .arg(Arg::new("timeline").long("timeline").value_name("FILE").conflicts_with("seeds").help("draw the run as a self-contained SVG timeline in FILE (lanes per worker, terms by epoch, down spans, faults, violations in red); FILE ending in .json gets the timeline as JSON"))
        .arg(Arg::new("trace-worker").long("trace-worker").help("with --trace: also every request and answer of these worker ids (comma-separated, or all)"))
        .after_help(EXIT_STATUS)
}

/// The exit statuses, as `--help` prints them.
const EXIT_STATUS: &str = "Exit status:
  0  every run kept its invariants (--mode naive always exits 0: its violations are reported, not failed on)
  1  the simulator failed otherwise (its output could not be written)
  2  the command line is wrong (a usage error, or a value the simulator refuses)
  3  a run in a core mode (global, per-plugin) broke an invariant";

/// A value on the command line the simulator refuses: a usage error.
fn fail(message: String) -> ! {
    eprintln!("coordinator-sim: {message}");
    std::process::exit(exit_code::USAGE);
}

/// The simulator failed after accepting its command line.
fn error(message: String) -> ! {
    eprintln!("coordinator-sim: {message}");
    std::process::exit(exit_code::ERROR);
}

fn num<T: std::str::FromStr>(m: &ArgMatches, name: &str) -> T {
    let text = m.get_one::<String>(name).map(String::as_str).unwrap_or("");
    text.parse()
        .unwrap_or_else(|_| fail(format!("--{name}: `{text}` is not a number")))
}

fn duration(m: &ArgMatches, name: &str) -> Option<Duration> {
    m.get_one::<String>(name)
        .map(|t| parse_duration(t).unwrap_or_else(|e| fail(format!("--{name}: {e}"))))
}

/// How each seed's faults are chosen.
enum Faults {
    None,
    Swarm,
    Only(Vec<String>),
}

struct Plan {
    base: Scenario,
    faults: Faults,
    exclude: Vec<String>,
    store: Option<StoreFlavor>,
}

impl Plan {
    fn scenario(&self, seed: u64) -> Scenario {
        let mut s = self.base.clone();
        s.seed = seed;
        let rng = &mut SeedTree::new(seed).swarm();
        match &self.faults {
            Faults::None => {}
            Faults::Swarm => {
                s.faults = FaultSet::swarm(rng);
                s.probes = true;
                s.fault_spec = "swarm".into();
            }
            Faults::Only(names) => {
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                s.faults = FaultSet::select(&names, rng).unwrap_or_else(|e| fail(e));
                s.probes = true;
                s.fault_spec = names.join(",");
            }
        }
        if !self.exclude.is_empty() {
            let names: Vec<&str> = self.exclude.iter().map(String::as_str).collect();
            s.faults.without(&names).unwrap_or_else(|e| fail(e));
            s.fault_spec = format!("{} --exclude {}", s.fault_spec, self.exclude.join(","));
        }
        if let Some(rates) = &s.clock_rates {
            // So that the rerun hint (`--faults <fault_spec>`) replays them.
            let rates: Vec<String> = rates.iter().map(f64::to_string).collect();
            s.fault_spec = format!("{} --clock-rates {}", s.fault_spec, rates.join(","));
        }
        if let Some(store) = self.store {
            s.faults.store = store;
        }
        s
    }

    fn label(&self) -> String {
        let base = match &self.faults {
            Faults::None => "none".into(),
            Faults::Swarm => "swarm".into(),
            Faults::Only(names) => names.join(","),
        };
        if self.exclude.is_empty() {
            base
        } else {
            format!("{base} --exclude {}", self.exclude.join(","))
        }
    }
}

fn main() {
    let m = command().get_matches();
    let mut base = Scenario::new(0, num(&m, "workers"));
    base.plugins = num::<usize>(&m, "plugins").max(1);
    base.mode = m
        .get_one::<String>("mode")
        .map(|s| {
            s.parse::<Mode>()
                .unwrap_or_else(|e| fail(format!("--mode: {e}")))
        })
        .unwrap_or(Mode::Global);
    base.duration = duration(&m, "duration").unwrap_or(Duration::from_secs(3600));
    match m.get_one::<String>("latency").map(String::as_str) {
        None | Some("s3") => {}
        Some(text) => {
            let fixed = parse_duration(text).unwrap_or_else(|e| {
                fail(format!(
                    "--latency: `{text}` is neither s3 nor a duration: {e}"
                ))
            });
            let ms = u64::try_from(fixed.as_millis()).unwrap_or(u64::MAX);
            base.latency = LatencyModel::fixed(ms);
        }
    }
    base.crash_leader_every = duration(&m, "crash-leader-every");
    base.stop_leader_every = duration(&m, "stop-leader-every");
    base.stale_lease_age = duration(&m, "stale-lease-age");
    base.trace = m.get_flag("trace");
    if let Some(text) = m.get_one::<String>("clock-rates") {
        let rates: Vec<f64> = text
            .split(',')
            .map(|r| match r.trim().parse::<f64>() {
                Ok(rate) if rate > 0.0 && rate.is_finite() => rate,
                _ => fail(format!(
                    "--clock-rates: `{r}` is not a clock rate; write positive numbers, e.g. 0.5,1.5,1.5"
                )),
            })
            .collect();
        base.clock_rates = Some(rates);
    }
    base.trace_worker = m.get_one::<String>("trace-worker").cloned();
    if let Some(text) = m.get_one::<String>("config") {
        let config: Config =
            serde_json::from_str(text).unwrap_or_else(|e| fail(format!("--config: {e}")));
        config
            .validate()
            .unwrap_or_else(|e| fail(format!("--config: {e}")));
        base.config = config;
    }
    let faults = match m.get_one::<String>("faults").map(String::as_str) {
        Some("none") | None => Faults::None,
        Some("swarm") => Faults::Swarm,
        Some(list) => {
            let names: Vec<String> = list.split(',').map(|n| n.trim().to_owned()).collect();
            // Checked once here, with a clear message.
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            if let Err(e) = FaultSet::select(&refs, &mut SeedTree::new(0).swarm()) {
                fail(format!("--faults: {e}"));
            }
            Faults::Only(names)
        }
    };
    let store = m
        .get_one::<String>("store")
        .map(|t| StoreFlavor::parse(t).unwrap_or_else(|e| fail(format!("--store: {e}"))));
    let exclude: Vec<String> = m
        .get_one::<String>("exclude")
        .map(|t| t.split(',').map(|n| n.trim().to_owned()).collect())
        .unwrap_or_default();
    if !exclude.is_empty() {
        let refs: Vec<&str> = exclude.iter().map(String::as_str).collect();
        if let Err(e) = FaultSet::none().without(&refs) {
            fail(format!("--exclude: {e}"));
        }
    }
    let plan = Plan {
        base,
        faults,
        exclude,
        store,
    };
    let json_out = m.get_flag("json");

    if let Some(text) = m.get_one::<String>("seeds") {
        let seeds = parse_seeds(text).unwrap_or_else(|e| fail(format!("--seeds: {e}")));
        let threads = m
            .get_one::<String>("threads")
            .map(|_| num::<usize>(&m, "threads"))
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1);
        many(&plan, text, &seeds, threads, json_out);
        return;
    }

    let seed = match m.get_one::<String>("seed") {
        Some(_) => num(&m, "seed"),
        None => match std::env::var("COORD_SIM_SEED") {
            Ok(t) if !t.trim().is_empty() => t
                .trim()
                .parse()
                .unwrap_or_else(|_| fail(format!("COORD_SIM_SEED: `{t}` is not a seed"))),
            _ => random_seed(),
        },
    };
    eprintln!("coordinator-sim: seed {seed} (replay with --seed {seed} or COORD_SIM_SEED={seed})");
    let sim = Sim::new(plan.scenario(seed));
    let report = match m.get_one::<String>("timeline") {
        Some(file) => {
            let (report, timeline) = sim.run_with_timeline();
            write_timeline(file, &timeline);
            report
        }
        None => sim.run(),
    };
    if json_out {
        println!(
            "{}",
            serde_json::to_string(&report).unwrap_or_else(|e| error(e.to_string()))
        );
    } else {
        print!("{}", report.table());
        if !report.trace_before_first_violation.is_empty() {
            println!("  trace up to the first violation:");
            for line in &report.trace_before_first_violation {
                println!("  | {line}");
            }
            println!("  trace at the end of the run:");
        }
        for line in &report.trace_tail {
            println!("  | {line}");
        }
        if !report.passed() {
            println!("  rerun: {}", report.rerun_hint());
        }
    }
    if !report.passed() && plan.base.mode != Mode::Naive {
        std::process::exit(exit_code::INVARIANT_BROKEN);
    }
}

/// Writes the picture of a run (or, for a `.json` file, its data).
fn write_timeline(file: &str, timeline: &Timeline) {
    let text = if file.ends_with(".json") {
        serde_json::to_string_pretty(timeline)
            .unwrap_or_else(|e| error(format!("--timeline {file}: {e}")))
    } else {
        render_svg(timeline)
    };
    std::fs::write(file, text).unwrap_or_else(|e| {
        error(format!(
            "--timeline: cannot write {file}: {e}; check that its directory exists and is writable"
        ))
    });
    eprintln!("coordinator-sim: timeline written to {file}");
}

fn many(plan: &Plan, label: &str, seeds: &[u64], threads: usize, json_out: bool) {
    eprintln!(
        "coordinator-sim: {} seeds ({label}) on {threads} threads; replay one with --seed <seed>",
        seeds.len()
    );
    let started = std::time::Instant::now();
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let failed = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Report>>> = Mutex::new(vec![None; seeds.len()]);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= seeds.len() {
                    break;
                }
                let report = Sim::new(plan.scenario(seeds[i])).run();
                if !report.passed() {
                    failed.fetch_add(1, Ordering::Relaxed);
                    if !json_out {
                        eprintln!(
                            "\rseed {} FAILED: {} violations; first: {}",
                            report.seed,
                            report.violation_count,
                            report
                                .violations
                                .first()
                                .map_or(String::new(), |v| format!("{:?} {}", v.kind, v.detail))
                        );
                    }
                }
                if let Ok(mut r) = results.lock() {
                    r[i] = Some(report);
                }
                let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                let total = seeds.len();
                if !json_out && (d * 200 / total != (d - 1) * 200 / total || d == total) {
                    progress(d, total, failed.load(Ordering::Relaxed), started);
                }
            });
        }
    });
    if !json_out {
        eprintln!();
    }
    let wall = started.elapsed().as_secs_f64();
    let reports: Vec<Report> = results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect();
    let summary = summarise(plan, label, &reports, wall, threads);
    if json_out {
        println!("{summary}");
    } else {
        print_summary(&summary);
    }
    if summary["failed_seeds"]
        .as_array()
        .is_some_and(|a| !a.is_empty())
        && plan.base.mode != Mode::Naive
    {
        std::process::exit(exit_code::INVARIANT_BROKEN);
    }
}

fn progress(done: usize, total: usize, failed: usize, started: std::time::Instant) {
    let width = 40;
    let filled = done * width / total.max(1);
    let elapsed = started.elapsed().as_secs_f64();
    let eta = elapsed / done.max(1) as f64 * (total - done) as f64;
    eprint!(
        "\r[{}{}] {done}/{total} seeds, {failed} failed, {elapsed:.0}s elapsed, eta {eta:.0}s ",
        "#".repeat(filled),
        ".".repeat(width - filled)
    );
    let _ = std::io::stderr().flush();
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

fn summarise(plan: &Plan, label: &str, reports: &[Report], wall: f64, threads: usize) -> Value {
    let mut requests = Requests::default();
    for r in reports {
        requests.add(&r.requests);
    }
    let pooled = |f: fn(&Report) -> &Vec<f64>| {
        let all: Vec<f64> = reports.iter().flat_map(|r| f(r).iter().copied()).collect();
        Summary::of(&all)
    };
    let convergence: Vec<f64> = reports
        .iter()
        .filter_map(|r| r.convergence_seconds)
        .collect();
    let failed: Vec<Value> = reports
        .iter()
        .filter(|r| !r.passed())
        .map(|r| {
            json!({
                "seed": r.seed,
                "faults": r.faults,
                "violation_count": r.violation_count,
                "violations": r.violations.iter().take(3).collect::<Vec<_>>(),
                "rerun": r.rerun_hint(),
            })
        })
        .collect();
    let sum = |f: fn(&Report) -> u64| reports.iter().map(f).sum::<u64>();
    json!({
        "seeds": label,
        "runs": reports.len(),
        "threads": threads,
        "workers": plan.base.workers,
        "plugins": plan.base.plugins,
        "mode": plan.base.mode,
        "faults": plan.label(),
        "simulated_seconds": plan.base.duration.as_secs_f64(),
        "wall_seconds": (wall * 1000.0).round() / 1000.0,
        "wall_seconds_per_seed": if reports.is_empty() { 0.0 } else { wall * threads as f64 / reports.len() as f64 },
        "failed_seeds": failed,
        "violations": sum(|r| r.violation_count),
        "split_brain_count": sum(|r| r.split_brain_count),
        "requests": requests,
        "requests_per_worker_hour": mean(reports.iter().map(|r| r.requests_per_worker_hour)),
        "usd_per_worker_month": mean(reports.iter().map(|r| r.usd_per_worker_month)),
        "leader_usd_per_month": mean(reports.iter().map(|r| r.leader_usd_per_month)),
        "convergence_seconds": Summary::of(&convergence),
        "failover_seconds": pooled(|r| &r.failover_samples),
        "handover_seconds": pooled(|r| &r.handover_samples),
        "recovery_seconds": pooled(|r| &r.recovery_samples),
        "liveness_margin_seconds": pooled(|r| &r.margin_samples),
        "leader_changes": sum(|r| r.leader_changes),
        "liveness_checks": sum(|r| r.liveness_checks),
        "recovery_checks": sum(|r| r.recovery_checks),
        "residual_cases": sum(|r| r.residual_cases),
        "epochs_restarted": sum(|r| r.epochs_restarted),
        "operator_faults": sum(|r| r.operator_faults),
        "lifecycle_deletions": sum(|r| r.lifecycle_deletions),
        "canaries": sum(|r| r.canaries),
        "rollout_restarts": sum(|r| r.rollout_restarts),
        "store_clock_steps": sum(|r| r.store_clock_steps),
        "roster_checks": sum(|r| r.roster_checks),
        "foreign_detected": sum(|r| r.foreign_detected),
        "fenced_old_epoch_rejected": sum(|r| r.fenced.old_epoch_rejected),
        "events": sum(|r| r.events),
    })
}

fn print_summary(v: &Value) {
    let keys = [
        "seeds",
        "runs",
        "threads",
        "workers",
        "plugins",
        "mode",
        "faults",
        "simulated_seconds",
        "wall_seconds",
        "wall_seconds_per_seed",
        "violations",
        "split_brain_count",
        "requests",
        "requests_per_worker_hour",
        "usd_per_worker_month",
        "leader_usd_per_month",
        "convergence_seconds",
        "failover_seconds",
        "handover_seconds",
        "recovery_seconds",
        "liveness_margin_seconds",
        "leader_changes",
        "liveness_checks",
        "recovery_checks",
        "residual_cases",
        "epochs_restarted",
        "operator_faults",
        "lifecycle_deletions",
        "canaries",
        "rollout_restarts",
        "store_clock_steps",
        "roster_checks",
        "foreign_detected",
        "fenced_old_epoch_rejected",
        "events",
    ];
    for k in keys {
        println!("  {k:<28} {}", v[k]);
    }
    if let Some(failed) = v["failed_seeds"].as_array() {
        println!("  {:<28} {}", "failed seeds", failed.len());
        for f in failed.iter().take(20) {
            println!("    seed {}: {}", f["seed"], f["violations"]);
            println!("      rerun: {}", f["rerun"].as_str().unwrap_or(""));
        }
    }
}
