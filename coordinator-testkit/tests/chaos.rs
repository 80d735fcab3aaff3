//! The chaos test in CI: real `coordinator-chaos-worker` processes on moto
//! behind the fault proxy, under the nemesis, for a fixed set of seeds
//! (about 55 s each; `COORD_SIM_SEED` replaces the set), `scripts/chaos`
//! as docs/chaos.md shows it (one 45 s seed), and a run of broken
//! registers that the checker must catch. Needs an S3 server
//! (`COORD_S3_ENDPOINT`; scripts/test starts moto); skipped without one
//! unless `COORD_REQUIRE_S3=1`.
#![cfg(unix)]
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use coordinator_testkit::chaos::check::ViolationKind;
use coordinator_testkit::chaos::nemesis::{Step, Target};
use coordinator_testkit::chaos::run::{run, ChaosConfig, Outcome};
use coordinator_testkit::seeds_from_env;

/// One run at a time: two would share two cores with moto.
static SERIAL: Mutex<()> = Mutex::new(());

fn endpoint(test: &str) -> Option<String> {
    match std::env::var("COORD_S3_ENDPOINT") {
        Ok(endpoint) => Some(endpoint),
        Err(_) if std::env::var("COORD_REQUIRE_S3").as_deref() == Ok("1") => {
            panic!("COORD_REQUIRE_S3=1 but COORD_S3_ENDPOINT is unset: start moto with scripts/moto.sh start")
        }
        Err(_) => {
            eprintln!("SKIPPED {test}: COORD_S3_ENDPOINT is not set (run scripts/test)");
            None
        }
    }
}

/// Builds `coordinator-chaos-worker` and returns its path, as cargo
/// reports it.
fn worker_bin() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["build", "-p", "coordinator-testkit", "--features", "chaos"])
        .args(["--bin", "coordinator-chaos-worker"])
        .args(["--message-format", "json-render-diagnostics"])
        .output()
        .expect("run cargo build");
    assert!(
        output.status.success(),
        "cargo build of coordinator-chaos-worker failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["target"]["name"] == "coordinator-chaos-worker")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("cargo reported the coordinator-chaos-worker executable")
}

fn config(seed: u64, seconds: u64, endpoint: &str) -> ChaosConfig {
    let mut config = ChaosConfig::new(seed, Duration::from_secs(seconds), worker_bin(), endpoint);
    if let Ok(bucket) = std::env::var("COORD_S3_BUCKET") {
        config.bucket = bucket;
    }
    config
}

fn go(config: &ChaosConfig) -> Outcome {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let outcome = runtime.block_on(run(config)).unwrap();
    eprintln!("{}", serde_json::to_string_pretty(&outcome.report).unwrap());
    outcome
}

#[test]
fn seeded_runs_keep_every_invariant() {
    let Some(endpoint) = endpoint("seeded_runs_keep_every_invariant") else {
        return;
    };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for seed in seeds_from_env(&[1]) {
        let outcome = go(&config(seed, 55, &endpoint));
        let report = &outcome.report;
        assert!(
            report.violations.is_empty(),
            "seed {seed}: {:#?}\nrerun: COORD_SIM_SEED={seed} cargo test -p coordinator-testkit --features chaos --test chaos",
            report.violations
        );
        assert!(report.terms >= 1, "seed {seed}: nobody ever led");
        assert!(
            report.register_writes[0] > 0,
            "seed {seed}: no register write accepted"
        );
        assert!(!report.steps.is_empty(), "seed {seed}: no step played");
    }
}

/// The command docs/chaos.md shows, shorter: exit 0, the report and the
/// timeline written.
#[test]
fn the_script_runs_a_seed_and_writes_its_files() {
    let Some(_endpoint) = endpoint("the_script_runs_a_seed_and_writes_its_files") else {
        return;
    };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = std::env::temp_dir().join(format!("coordinator-chaos-script-{}", std::process::id()));
    let status = Command::new(root.join("scripts/chaos"))
        .args(["--duration", "45s", "--seed", "5", "--out"])
        .arg(&out)
        .status()
        .expect("run scripts/chaos");
    assert!(status.success(), "scripts/chaos --seed 5 exited {status}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["seed"], 5);
    assert_eq!(report["violations"].as_array().map(Vec::len), Some(0));
    let timeline: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("timeline.json")).unwrap()).unwrap();
    assert_eq!(timeline["lanes"].as_array().map(Vec::len), Some(4));
    let picture = std::fs::read_to_string(out.join("timeline.svg")).unwrap();
    assert!(picture.starts_with("<svg"), "{picture:.80}");
    assert_eq!(
        picture.matches("class=\"lane\"").count(),
        4,
        "one lane per worker"
    );
    assert!(picture.contains("class=\"term\""), "leadership terms drawn");
    let log = std::fs::read_to_string(out.join("logs/w0-0.log")).unwrap();
    assert!(
        log.contains("coordinator starting"),
        "each worker process's log is kept: {log:.300}"
    );
    let auditor = std::fs::read_to_string(out.join("logs/auditor.log")).unwrap();
    assert!(
        auditor.contains("worker_id=auditor"),
        "the auditor's log is kept: {auditor:.300}"
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn a_broken_register_is_caught() {
    let Some(endpoint) = endpoint("a_broken_register_is_caught") else {
        return;
    };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut config = config(7, 40, &endpoint);
    config.broken = true;
    config.steps = Some(vec![
        Step::Pause {
            target: Target::Leader,
            hold: Duration::from_secs(7),
        },
        Step::Partition {
            target: Target::Leader,
            hold: Duration::from_secs(7),
        },
    ]);
    let outcome = go(&config);
    let kinds: Vec<ViolationKind> = outcome.report.violations.iter().map(|v| v.kind).collect();
    assert!(
        kinds.contains(&ViolationKind::EffectAfterDeadline),
        "the broken register went unnoticed: {kinds:?}"
    );
    assert!(
        !outcome.timeline.violations.is_empty(),
        "the timeline shows the violations"
    );
}

/// The run supervises its workers like a service manager: a process that
/// exits on its own is restarted, counted if it never got ready (a store
/// probe failing under faults) and reported if it had (a crash). The
/// "workers" here are a shell script: w0 fails before `ready`, the others
/// print `ready` and exit.
#[test]
fn workers_that_exit_on_their_own_are_restarted_and_judged() {
    let Some(endpoint) = endpoint("workers_that_exit_on_their_own_are_restarted_and_judged") else {
        return;
    };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::env::temp_dir().join(format!("coordinator-chaos-exit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("exiting-worker");
    std::fs::write(
        &script,
        r#"#!/bin/sh
# args: --url U --worker-id ID ...
if [ "$4" = w0 ]; then echo 'store probe failed' >&2; exit 1; fi
sleep 1
printf '{"worker":"%s","mono_ns":1,"event":"ready"}\n' "$4"
sleep 1
exit 3
"#,
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut config = ChaosConfig::new(3, Duration::from_secs(6), script, &endpoint);
    if let Ok(bucket) = std::env::var("COORD_S3_BUCKET") {
        config.bucket = bucket;
    }
    config.workers = 2;
    config.queue = false;
    config.warmup = Duration::from_secs(1);
    config.steps = Some(Vec::new());
    let outcome = go(&config);
    let w0: Vec<_> = outcome
        .log
        .lives
        .iter()
        .filter(|l| l.worker == "w0")
        .collect();
    let w1: Vec<_> = outcome
        .log
        .lives
        .iter()
        .filter(|l| l.worker == "w1")
        .collect();
    assert!(w0.len() >= 2, "w0 was restarted after it exited: {w0:?}");
    assert!(w1.len() >= 2, "w1 was restarted after it exited: {w1:?}");
    assert!(
        w0.iter().chain(&w1).filter(|l| l.exit.is_some()).count() >= 2,
        "exits recorded"
    );
    assert_eq!(
        outcome.report.start_failures,
        w0.iter().filter(|l| l.exit.is_some()).count() as u64
    );
    let crashes = outcome
        .report
        .violations
        .iter()
        .filter(|v| v.kind == ViolationKind::WorkerExited)
        .count();
    assert_eq!(
        crashes,
        w1.iter().filter(|l| l.exit.is_some()).count(),
        "each exit after ready is reported: {:#?}",
        outcome.report.violations
    );
    assert!(
        outcome
            .log
            .actions
            .iter()
            .any(|a| a.label.starts_with("w0 exited on its own")),
        "the exit is on the timeline"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The pictures docs/chaos.md shows are what `coordinator-chaos --draw`
/// makes of the timelines committed beside them (no S3 server needed).
#[test]
fn the_documented_pictures_are_drawn_from_their_timelines() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let doc = std::fs::read_to_string(root.join("docs/chaos.md")).unwrap();
    let dir = std::env::temp_dir().join(format!("coordinator-chaos-draw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for seed in [12, 13, 23, 30] {
        let name = format!("timeline-seed-{seed}");
        assert!(
            doc.contains(&format!("(chaos/{name}.svg)")),
            "docs/chaos.md shows {name}.svg"
        );
        let json = dir.join(format!("{name}.json"));
        std::fs::copy(root.join(format!("docs/chaos/{name}.json")), &json).unwrap();
        let status = Command::new(env!("CARGO_BIN_EXE_coordinator-chaos"))
            .arg("--draw")
            .arg(&json)
            .status()
            .unwrap();
        assert!(status.success(), "--draw {name}.json exited {status}");
        let drawn = std::fs::read(dir.join(format!("{name}.svg"))).unwrap();
        let committed = std::fs::read(root.join(format!("docs/chaos/{name}.svg"))).unwrap();
        assert!(
            drawn == committed,
            "docs/chaos/{name}.svg is not what --draw makes of its timeline: run \
             `cargo run -p coordinator-testkit --features chaos --bin coordinator-chaos -- --draw docs/chaos/{name}.json`"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
