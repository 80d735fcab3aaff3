//! The wire and the simulator count the same requests: four real
//! `coordinator run` processes on moto, behind the counting proxy, at
//! five times the default rates (heartbeat 1 s), for a 50 s window (about
//! 350 requests), against `Sim` with the same timings and the server's
//! latency as the proxy timed it. Needs an S3 server
//! (`COORD_S3_ENDPOINT`; scripts/test starts moto); skipped without one
//! unless `COORD_REQUIRE_S3=1`.
#![cfg(unix)]
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use coordinator_testkit::wire::{self, KindRates, WireConfig};
use coordinator_testkit::{LatencyModel, Scenario, Sim};

/// Builds the `coordinator` binary of coordinator-cli (a no-op when
/// `cargo test --workspace` has) and returns its path, as cargo reports
/// it: `CARGO_BIN_EXE_coordinator` exists only in the CLI crate's own
/// tests.
fn coordinator_bin() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["build", "-p", "coordinator-cli", "--bin", "coordinator"])
        .args(["--message-format", "json-render-diagnostics"])
        .output()
        .expect("run cargo build");
    assert!(
        output.status.success(),
        "cargo build of coordinator-cli's coordinator failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["target"]["name"] == "coordinator")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("cargo reported the coordinator executable")
}

#[test]
fn wire_and_simulator_request_counts_agree_within_two_percent() {
    let Ok(endpoint) = std::env::var("COORD_S3_ENDPOINT") else {
        if std::env::var("COORD_REQUIRE_S3").as_deref() == Ok("1") {
            panic!("COORD_REQUIRE_S3=1 but COORD_S3_ENDPOINT is unset: start moto with scripts/moto.sh start");
        }
        eprintln!("SKIPPED wire_and_simulator_request_counts_agree_within_two_percent: COORD_S3_ENDPOINT is not set (run scripts/test)");
        return;
    };
    let election = wire::short_timings();
    election.validate().unwrap();
    let workers = 4;

    let mut config = WireConfig::new(workers, election.clone(), coordinator_bin(), &endpoint);
    if let Ok(bucket) = std::env::var("COORD_S3_BUCKET") {
        config.bucket = bucket;
    }
    config.warmup = Duration::from_secs(5);
    config.window = Duration::from_secs(50);
    config.crash_trials = 0;
    config.graceful_trials = 0;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let report = runtime.block_on(wire::run(&config)).unwrap();

    let mut scenario = Scenario::new(1, workers);
    scenario.config = election;
    scenario.duration = Duration::from_secs(20 * 60);
    // The server's latency as the proxy timed it: at short timings a few
    // milliseconds per request are a few percent of the requests.
    scenario.latency = LatencyModel::fixed(report.sim_latency_ms());
    let sim = Sim::new(scenario).run();
    assert!(sim.violations.is_empty(), "{:?}", sim.violations);
    let predicted = KindRates::of_sim(&sim.requests, sim.worker_hours);

    let measured = report.requests_per_worker_hour;
    let mut table = String::new();
    for ((name, wire), (_, sim)) in measured.rows().iter().zip(predicted.rows()) {
        table += &format!("{name:>6}: wire {wire:9.1}  sim {sim:9.1}\n");
    }
    eprintln!(
        "requests per worker-hour over {:.1} s, server round trip {:.1} ms ({} requests, {} leader changes):\n{table}",
        report.window_seconds,
        report.mean_round_trip_ms,
        report.requests.total(),
        report.leader_changes_in_window
    );
    assert_eq!(report.leader_changes_in_window, 0, "a quiet window");
    assert_eq!(measured.other, 0.0, "only GET, PUT, LIST, DELETE and HEAD");
    let difference = (measured.total - predicted.total) / predicted.total;
    assert!(
        difference.abs() <= 0.02,
        "wire {:.1} vs simulator {:.1} requests per worker-hour: {:+.2}% (more than 2%)\n{table}",
        measured.total,
        predicted.total,
        difference * 100.0
    );
}
