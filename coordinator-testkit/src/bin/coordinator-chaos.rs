//! `coordinator-chaos`: the real-stack chaos test (issue 14). Real
//! `coordinator-chaos-worker` processes on a real S3 server behind the
//! fault proxy, under the nemesis, checked from their logs.
//!
//! ```text
//! coordinator-chaos --endpoint http://127.0.0.1:9000 --worker-bin PATH
//!     [--seed N] [--duration 10m] [--workers 4] [--out DIR] [--broken]
//! ```
//!
//! Prints the report as JSON; with `--out`, writes `report.json`,
//! `timeline.json`, `timeline.svg` (the picture: `timeline::render_svg`)
//! and `runlog.json` there, and each worker process's log
//! (`COORDINATOR_LOG=coordinator=info`) in `logs/<worker>-<life>.log`
//! while it runs, and the auditor's in `logs/auditor.log`. Exit status: 0 no violation,
//! 1 the run failed, 2 a usage error, 3 a violation.
//!
//! `coordinator-chaos --check DIR/runlog.json` checks a stored run again
//! (after a change to the checker) and rewrites `timeline.json` and
//! `timeline.svg` beside it; `coordinator-chaos --draw timeline.json`
//! draws a stored timeline as the SVG beside it (same name, `.svg`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use coordinator_testkit::timeline::render_svg;

use coordinator_testkit::chaos::run::{run, ChaosConfig};
use coordinator_testkit::{exit_code, random_seed};

const USAGE: &str = "usage: coordinator-chaos --endpoint URL --worker-bin PATH [--bucket B] [--seed N] [--duration 10m] [--workers 4] [--out DIR] [--broken]
       coordinator-chaos --check DIR/runlog.json";

/// `90s`, `10m`, `1h`, or seconds.
fn duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = match text.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => text.split_at(i),
        None => (text, "s"),
    };
    let n: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration; write 90s, 10m or 1h"))?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("`{text}`: the unit is s, m or h")),
    };
    Ok(Duration::from_secs_f64(seconds))
}

struct Args {
    config: ChaosConfig,
    out: Option<PathBuf>,
}

fn parse() -> Result<Args, String> {
    let mut endpoint = std::env::var("COORD_S3_ENDPOINT").ok();
    let mut bucket = std::env::var("COORD_S3_BUCKET").ok();
    let mut worker_bin = None;
    let mut seed = None;
    let mut length = Duration::from_secs(600);
    let mut workers = 4;
    let mut out = None;
    let mut broken = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--endpoint" => endpoint = Some(value()?),
            "--bucket" => bucket = Some(value()?),
            "--worker-bin" => worker_bin = Some(PathBuf::from(value()?)),
            "--seed" => seed = Some(value()?.parse().map_err(|e| format!("--seed: {e}"))?),
            "--duration" => length = duration(&value()?)?,
            "--workers" => {
                workers = value()?.parse().map_err(|e| format!("--workers: {e}"))?;
                if workers < 2 {
                    return Err("--workers: at least 2".into());
                }
            }
            "--out" => out = Some(PathBuf::from(value()?)),
            "--broken" => broken = true,
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    let endpoint = endpoint.ok_or("--endpoint (or COORD_S3_ENDPOINT) is required")?;
    let worker_bin = worker_bin.ok_or("--worker-bin is required")?;
    let seed = seed.unwrap_or_else(random_seed);
    let mut config = ChaosConfig::new(seed, length, worker_bin, &endpoint);
    if let Some(bucket) = bucket {
        config.bucket = bucket;
    }
    config.workers = workers;
    config.broken = broken;
    if let Some(dir) = &out {
        let logs = dir.join("logs");
        std::fs::create_dir_all(&logs).map_err(|e| format!("creating {}: {e}", logs.display()))?;
        config.log_dir = Some(logs);
    }
    Ok(Args { config, out })
}

/// `--check RUNLOG`: the checker again over stored logs.
fn recheck(path: &std::path::Path) -> ExitCode {
    let log: coordinator_testkit::chaos::events::RunLog = match std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| e.to_string()))
    {
        Ok(log) => log,
        Err(e) => {
            eprintln!("coordinator-chaos: reading {}: {e}", path.display());
            return ExitCode::from(exit_code::ERROR as u8);
        }
    };
    let checked = coordinator_testkit::chaos::check::check(&log);
    let timeline = coordinator_testkit::chaos::check::timeline(&log, &checked);
    let beside = path.with_file_name("timeline.json");
    if let Err(e) = serde_json::to_vec(&timeline)
        .map_err(std::io::Error::other)
        .and_then(|json| std::fs::write(&beside, json))
    {
        eprintln!("coordinator-chaos: writing {}: {e}", beside.display());
        return ExitCode::from(exit_code::ERROR as u8);
    }
    let picture = path.with_file_name("timeline.svg");
    if let Err(e) = std::fs::write(&picture, render_svg(&timeline)) {
        eprintln!("coordinator-chaos: writing {}: {e}", picture.display());
        return ExitCode::from(exit_code::ERROR as u8);
    }
    let summary = serde_json::json!({
        "terms": checked.beliefs.len(),
        "register_writes": [checked.register_writes_ok, checked.register_writes_fenced, checked.register_writes_failed],
        "takeovers_checked": checked.takeovers.len(),
        "takeovers_unchecked": checked.takeovers_unchecked,
        "start_failures": checked.start_failures,
        "queue": checked.queue,
        "violations": checked.violations,
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&summary).unwrap_or_default()
    );
    if checked.violations.is_empty() {
        ExitCode::from(exit_code::PASSED as u8)
    } else {
        ExitCode::from(exit_code::INVARIANT_BROKEN as u8)
    }
}

/// `--draw timeline.json`: the stored timeline as `timeline.svg` beside it.
fn draw(path: &std::path::Path) -> ExitCode {
    let timeline: coordinator_testkit::timeline::Timeline = match std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| e.to_string()))
    {
        Ok(timeline) => timeline,
        Err(e) => {
            eprintln!("coordinator-chaos: reading {}: {e}", path.display());
            return ExitCode::from(exit_code::ERROR as u8);
        }
    };
    let picture = path.with_extension("svg");
    if let Err(e) = std::fs::write(&picture, render_svg(&timeline)) {
        eprintln!("coordinator-chaos: writing {}: {e}", picture.display());
        return ExitCode::from(exit_code::ERROR as u8);
    }
    println!("{}", picture.display());
    ExitCode::from(exit_code::PASSED as u8)
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    if let [_, flag, path] = argv.as_slice() {
        if flag == "--check" {
            return recheck(std::path::Path::new(path));
        }
        if flag == "--draw" {
            return draw(std::path::Path::new(path));
        }
    }
    let args = match parse() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("coordinator-chaos: {message}\n{USAGE}");
            return ExitCode::from(exit_code::USAGE as u8);
        }
    };
    // The auditor runs in this process: its library log (and the
    // operator's store) goes beside the workers' logs.
    if let Some(dir) = &args.config.log_dir {
        let path = dir.join("auditor.log");
        match std::fs::File::create(&path) {
            Ok(file) => {
                let _ = tracing_subscriber::fmt()
                    .with_env_filter(tracing_subscriber::EnvFilter::new("coordinator=info"))
                    .with_writer(std::sync::Mutex::new(file))
                    .with_ansi(false)
                    .try_init();
            }
            Err(e) => {
                eprintln!("coordinator-chaos: creating {}: {e}", path.display());
                return ExitCode::from(exit_code::ERROR as u8);
            }
        }
    }
    eprintln!(
        "coordinator-chaos: seed {} for {:.0} s (rerun with --seed {})",
        args.config.seed,
        args.config.duration.as_secs_f64(),
        args.config.seed
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("coordinator-chaos: starting tokio: {e}");
            return ExitCode::from(exit_code::ERROR as u8);
        }
    };
    let outcome = match runtime.block_on(run(&args.config)) {
        Ok(outcome) => outcome,
        Err(message) => {
            eprintln!("coordinator-chaos: {message}");
            return ExitCode::from(exit_code::ERROR as u8);
        }
    };
    if let Some(dir) = &args.out {
        let written = std::fs::create_dir_all(dir).and_then(|()| {
            for (name, json) in [
                ("report.json", serde_json::to_vec_pretty(&outcome.report)),
                ("timeline.json", serde_json::to_vec(&outcome.timeline)),
                ("runlog.json", serde_json::to_vec(&outcome.log)),
            ] {
                std::fs::write(dir.join(name), json.map_err(std::io::Error::other)?)?;
            }
            std::fs::write(dir.join("timeline.svg"), render_svg(&outcome.timeline))
        });
        if let Err(e) = written {
            eprintln!("coordinator-chaos: writing {}: {e}", dir.display());
            return ExitCode::from(exit_code::ERROR as u8);
        }
    }
    match serde_json::to_string_pretty(&outcome.report) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("coordinator-chaos: {e}"),
    }
    if outcome.report.violations.is_empty() {
        ExitCode::from(exit_code::PASSED as u8)
    } else {
        for v in &outcome.report.violations {
            eprintln!("VIOLATION {:?}: {}", v.kind, v.what);
        }
        ExitCode::from(exit_code::INVARIANT_BROKEN as u8)
    }
}
