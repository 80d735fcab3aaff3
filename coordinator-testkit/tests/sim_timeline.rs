//! `Sim::run_with_timeline` and `coordinator-sim --timeline`: the picture
//! of a simulated run shows what the oracle saw (beliefs that never
//! overlap in a run that passed, with increasing epochs; the faults it
//! injected), draws a broken run's violations in red over the workers
//! involved, and does not change the run.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use common::svg::parse;
use coordinator_testkit::timeline::{render_svg, MarkKind, Timeline};
use coordinator_testkit::{
    exit_code, Episodes, FaultSet, Scenario, SeedTree, Sim, ViolationKind, FAULT_KINDS,
};

const MS: u64 = 1_000_000;

fn with_faults(seed: u64, workers: usize, names: &[&str], minutes: u64) -> Scenario {
    let mut s = Scenario::new(seed, workers);
    s.duration = Duration::from_secs(minutes * 60);
    s.faults = FaultSet::select(names, &mut SeedTree::new(seed).swarm()).unwrap();
    s.probes = true;
    s.fault_spec = names.join(",");
    s
}

/// Every lane's terms, flattened and sorted by start: (lane, epoch, from, to).
fn beliefs(t: &Timeline) -> Vec<(usize, u64, u64, u64)> {
    let mut all: Vec<(usize, u64, u64, u64)> = t
        .lanes
        .iter()
        .enumerate()
        .flat_map(|(i, l)| {
            l.terms
                .iter()
                .map(move |x| (i, x.epoch, x.start_ns, x.end_ns))
        })
        .collect();
    all.sort_by_key(|b| (b.2, b.3));
    all
}

#[test]
fn drawing_a_run_does_not_change_it() {
    for seed in 0..3 {
        let scenario = Scenario::swarm(seed, 6);
        let plain = Sim::new(scenario.clone()).run();
        let (drawn, _) = Sim::new(scenario).run_with_timeline();
        assert_eq!(plain.trace_hash, drawn.trace_hash, "seed {seed}");
        assert_eq!(plain.violation_count, drawn.violation_count);
        assert_eq!(plain.events, drawn.events);
    }
}

#[test]
fn a_run_that_passed_draws_disjoint_beliefs_with_increasing_epochs() {
    let names = [
        "crashes",
        "pauses",
        "leader_partitions",
        "delete_lease",
        "corrupt_lease",
    ];
    let mut seen_down = std::collections::BTreeSet::new();
    for seed in 0..4 {
        let (report, t) = Sim::new(with_faults(seed, 4, &names, 20)).run_with_timeline();
        assert!(report.passed(), "{}", report.table());
        let workers: Vec<&str> = t.lanes.iter().map(|l| l.worker.as_str()).collect();
        assert_eq!(workers, ["w0000", "w0001", "w0002", "w0003"]);
        assert_eq!((t.start_ns, t.end_ns), (0, 20 * 60 * 1000 * MS));
        assert!(t.title.contains(&format!("--seed {seed}")), "{}", t.title);
        let b = beliefs(&t);
        assert!(
            b.len() as u64 >= report.acquisitions,
            "a bar per acquisition"
        );
        for pair in b.windows(2) {
            let ((la, ea, _, end_a), (lb, eb, start_b, _)) = (pair[0], pair[1]);
            assert!(
                end_a <= start_b,
                "seed {seed}: lanes {la} and {lb} overlap at {start_b} ns"
            );
            assert!(ea < eb || (ea == eb && la == lb), "epochs {ea} then {eb}");
        }
        for lane in &t.lanes {
            for d in &lane.down {
                assert!(d.start_ns <= d.end_ns && d.end_ns <= t.end_ns, "{d:?}");
                seen_down.insert(d.why.clone());
            }
        }
        // Every operator fault is a run-wide operator mark named as in
        // --faults.
        let operator_marks = t
            .marks
            .iter()
            .filter(|m| {
                m.kind == MarkKind::Operator
                    && m.worker.is_none()
                    && FAULT_KINDS.contains(&m.label.as_str())
            })
            .count() as u64;
        assert_eq!(operator_marks, report.operator_faults, "seed {seed}");
        assert!(t.marks.iter().any(|m| m.kind == MarkKind::Fault));
        assert!(t.marks.windows(2).all(|m| m[0].at_ns <= m[1].at_ns));
        assert!(t.violations.is_empty());
    }
    for why in ["killed", "paused", "partitioned"] {
        assert!(seen_down.contains(why), "no {why} span in {seen_down:?}");
    }
}

#[test]
fn per_plugin_runs_get_a_lane_per_worker_and_plugin_and_canaries_their_own() {
    let mut scenario = with_faults(3, 3, &["crashes", "canary_rollback", "timing_rollout"], 10);
    scenario.mode = coordinator_testkit::Mode::PerPlugin;
    scenario.plugins = 2;
    let (report, t) = Sim::new(scenario).run_with_timeline();
    assert!(report.passed(), "{}", report.table());
    assert!(report.canaries > 0, "{}", report.table());
    let names: Vec<&str> = t.lanes.iter().map(|l| l.worker.as_str()).collect();
    assert_eq!(
        names[..6],
        [
            "w0000 plugin-0",
            "w0000 plugin-1",
            "w0001 plugin-0",
            "w0001 plugin-1",
            "w0002 plugin-0",
            "w0002 plugin-1"
        ]
    );
    let canaries: Vec<&coordinator_testkit::timeline::Lane> = t
        .lanes
        .iter()
        .filter(|l| l.worker.starts_with("canary-"))
        .collect();
    // A canary that saw no release never led: no lane.
    assert!(canaries.len() as u64 <= report.canaries);
    assert!(!canaries.is_empty());
    for c in canaries {
        assert_eq!(c.terms.len(), 1, "{c:?}");
        assert!(t
            .marks
            .iter()
            .any(|m| m.worker.as_deref() == Some(c.worker.as_str())
                && m.label.starts_with("rolled back")));
    }
    // A process's mark is on each of its elections' lanes.
    let crash_lanes = |at: u64| {
        t.marks
            .iter()
            .filter(|m| m.at_ns == at && m.label == "crash")
            .count()
    };
    let first_crash = t.marks.iter().find(|m| m.label == "crash").unwrap();
    assert_eq!(crash_lanes(first_crash.at_ns) % 2, 0);
}

/// The first leader's clock runs at half speed, the others' 50% fast (far
/// beyond the configured drift tolerance): its deadline outlasts their
/// lease timeout, and a partition makes a second leader.
fn broken_promise() -> Scenario {
    let mut scenario = Scenario::new(1, 3);
    scenario.duration = Duration::from_secs(300);
    scenario.storm_share = 1.0;
    scenario.clock_rates = Some(vec![0.5, 1.5, 1.5]);
    scenario.faults.leader_partitions = Some(Episodes {
        mean_every_ms: 60_000,
        min_ms: 30_000,
        max_ms: 40_000,
    });
    scenario
}

#[test]
fn a_split_brain_is_drawn_in_red_over_the_overlapping_beliefs() {
    let (report, t) = Sim::new(broken_promise()).run_with_timeline();
    assert!(report.split_brain_count > 0, "{}", report.table());
    assert_eq!(t.violations.len() as u64, report.violation_count);
    let split = t
        .violations
        .iter()
        .find(|v| {
            v.what
                .starts_with(&format!("{:?}", ViolationKind::SplitBrain))
        })
        .unwrap();
    assert_eq!(split.workers.len(), 2, "{split:?}");
    assert!(split.end_ns > split.start_ns, "the overlap has a length");
    // Both named workers believe across the whole red span.
    for w in &split.workers {
        let lane = t.lanes.iter().find(|l| &l.worker == w).unwrap();
        assert!(
            lane.terms
                .iter()
                .any(|x| x.start_ns <= split.start_ns && split.end_ns <= x.end_ns),
            "{w} does not lead through the violation"
        );
    }
    let svg = parse(&render_svg(&t));
    assert_eq!(svg.with_class("g", "violation").len(), t.violations.len());
}

#[test]
fn the_replaced_system_is_drawn_with_its_violations() {
    let mut scenario = Scenario::new(1, 3);
    scenario.mode = coordinator_testkit::Mode::Naive;
    scenario.duration = Duration::from_secs(300);
    scenario.storm_share = 1.0;
    scenario.faults.pauses = Some(Episodes {
        mean_every_ms: 30_000,
        min_ms: 20_000,
        max_ms: 40_000,
    });
    let (report, t) = Sim::new(scenario).run_with_timeline();
    assert!(!report.passed());
    assert!(!t.violations.is_empty());
    assert!(t.violations.iter().all(|v| !v.workers.is_empty()));
    assert!(t
        .lanes
        .iter()
        .any(|l| l.down.iter().any(|d| d.why == "paused")));
}

// ----- the binary -----

fn sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_coordinator-sim"))
        .args(args)
        .env_remove("COORD_SIM_SEED")
        .output()
        .expect("run coordinator-sim")
}

/// A directory of one test's own, removed when the test ends.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "coordinator-sim-timeline-{}-{test}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const RUN: [&str; 10] = [
    "--workers",
    "4",
    "--seed",
    "7",
    "--duration",
    "5m",
    "--faults",
    "crashes,pauses",
    "--json",
    "--timeline",
];

#[test]
fn timeline_writes_the_svg_or_the_json_of_the_run() {
    let dir = Scratch::new("run");
    let svg_file = dir.file("run.svg");
    let json_file = dir.file("run.json");
    let out = sim(&[&RUN[..], &[svg_file.to_str().unwrap()]].concat());
    assert_eq!(out.status.code(), Some(exit_code::PASSED), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let acquisitions = report["acquisitions"].as_u64().unwrap();
    let svg_text = std::fs::read_to_string(&svg_file).unwrap();
    let svg = parse(&svg_text);
    assert_eq!(svg.with_class("g", "lane").len(), 4);
    assert!(svg.with_class("rect", "term").len() as u64 >= acquisitions);

    let out = sim(&[&RUN[..], &[json_file.to_str().unwrap()]].concat());
    assert_eq!(out.status.code(), Some(exit_code::PASSED), "{out:?}");
    let timeline: Timeline =
        serde_json::from_str(&std::fs::read_to_string(&json_file).unwrap()).unwrap();
    // The same seed draws the same picture: the JSON is the SVG's data.
    assert_eq!(render_svg(&timeline), svg_text);
    assert_eq!(timeline.lanes.len(), 4);
}

#[test]
fn timeline_of_a_broken_run_has_red_violations_and_the_broken_status() {
    let dir = Scratch::new("broken");
    let file = dir.file("broken.svg");
    let out = sim(&[
        "--workers",
        "3",
        "--seed",
        "1",
        "--duration",
        "5m",
        "--clock-rates",
        "0.5,1.5,1.5",
        "--faults",
        "leader_partitions",
        "--timeline",
        file.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(exit_code::INVARIANT_BROKEN),
        "{out:?}"
    );
    let svg = parse(&std::fs::read_to_string(&file).unwrap());
    let red = svg.with_class("g", "violation");
    assert!(!red.is_empty());
    assert!(red[0].title().unwrap().contains("SplitBrain"));
}

#[test]
fn timeline_refuses_many_seeds_and_reports_an_unwritable_file() {
    let out = sim(&["--seeds", "0..2", "--timeline", "x.svg"]);
    assert_eq!(out.status.code(), Some(exit_code::USAGE), "{out:?}");
    let dir = Scratch::new("unwritable");
    let missing = dir.file("no/such/dir/run.svg");
    let out = sim(&[
        "--workers",
        "2",
        "--duration",
        "1m",
        "--seed",
        "1",
        "--timeline",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(exit_code::ERROR), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot write") && stderr.contains("run.svg"),
        "{stderr}"
    );
}

/// The `coordinator-sim … --timeline FILE` commands the docs show, with
/// the file each writes.
fn documented_commands() -> Vec<(Vec<String>, String)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    for doc in ["README.md", "../docs/benchmarks.md"] {
        let text = std::fs::read_to_string(root.join(doc)).unwrap();
        for line in text.lines().map(str::trim) {
            let args = match (
                line.strip_prefix("coordinator-sim "),
                line.split_once("--bin coordinator-sim -- "),
            ) {
                (Some(args), _) | (None, Some((_, args))) => args,
                _ => continue,
            };
            if !args.contains("--timeline ") {
                continue;
            }
            let args: Vec<String> = args.split_whitespace().map(str::to_owned).collect();
            let at = args.iter().position(|a| a == "--timeline").unwrap();
            found.push((args.clone(), args[at + 1].clone()));
        }
    }
    found
}

#[test]
fn every_documented_timeline_command_runs_and_the_committed_example_is_its_output() {
    let commands = documented_commands();
    assert!(commands.len() >= 4, "{commands:?}");
    let mut example_checked = false;
    let dir = Scratch::new("documented");
    for (i, (mut args, file)) in commands.into_iter().enumerate() {
        let out_file = dir.file(&format!("doc-{i}-{}", file.replace('/', "_")));
        let at = args.iter().position(|a| a == &file).unwrap();
        args[at] = out_file.to_str().unwrap().to_owned();
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = sim(&refs);
        let code = out.status.code();
        assert!(
            code == Some(exit_code::PASSED) || code == Some(exit_code::INVARIANT_BROKEN),
            "{args:?}: {out:?}"
        );
        let written = std::fs::read_to_string(&out_file).unwrap();
        if file.ends_with(".json") {
            let _: Timeline = serde_json::from_str(&written).unwrap();
        } else {
            let svg = parse(&written);
            // A broken run is drawn with its violations, a clean one
            // without; the replaced system breaks them and exits 0.
            let red = !svg.with_class("g", "violation").is_empty();
            let naive = args.windows(2).any(|w| w == ["--mode", "naive"]);
            assert_eq!(
                red,
                naive || code == Some(exit_code::INVARIANT_BROKEN),
                "{args:?}"
            );
        }
        if file == "docs/img/sim-timeline.svg" {
            let committed =
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/img/sim-timeline.svg");
            let committed = std::fs::read_to_string(committed).unwrap();
            assert!(
                committed == written,
                "docs/img/sim-timeline.svg is not what its command draws now; regenerate it: \
                 cargo run --release -p coordinator-testkit --bin coordinator-sim -- {}",
                refs.join(" ").replace(out_file.to_str().unwrap(), &file)
            );
            example_checked = true;
        }
    }
    assert!(
        example_checked,
        "docs/benchmarks.md shows no command for docs/img/sim-timeline.svg"
    );
}
