//! The `coordinator-sim` binary's exit statuses, run as a script would run
//! it: a broken invariant (3) is told apart from a usage error (2, clap's
//! code) and from a clean run (0).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use coordinator_testkit::exit_code;

fn sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_coordinator-sim"))
        .args(args)
        .env_remove("COORD_SIM_SEED")
        .output()
        .expect("run coordinator-sim")
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("exited, not killed")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Clocks at half and one and a half times the true rate, with a drift
/// tolerance of 10%: the first leader's deadline outlasts the others' lease
/// timeout, and two workers believe they lead.
const BROKEN: &[&str] = &[
    "--workers",
    "3",
    "--duration",
    "1m",
    "--seed",
    "1",
    "--clock-rates",
    "0.5,1.5,1.5",
];

#[test]
fn a_broken_invariant_exits_3_with_a_rerun_that_breaks_it_again() {
    let out = sim(BROKEN);
    let text = stdout(&out);
    assert_eq!(code(&out), exit_code::INVARIANT_BROKEN, "{text}");
    assert_eq!(exit_code::INVARIANT_BROKEN, 3);
    assert!(text.contains("SplitBrain"), "{text}");
    let rerun = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("rerun: "))
        .expect("a rerun hint");
    let args: Vec<&str> = rerun
        .split_once(" -- ")
        .expect("cargo run … -- <args>")
        .1
        .split_whitespace()
        .collect();
    assert!(rerun.contains("--clock-rates 0.5,1.5,1.5"), "{rerun}");
    let again = sim(&args);
    assert_eq!(code(&again), exit_code::INVARIANT_BROKEN, "{rerun}");

    // Many seeds: the same status.
    let mut many = BROKEN.to_vec();
    many.retain(|a| *a != "--seed" && *a != "1");
    many.extend(["--seeds", "1..3", "--threads", "1", "--json"]);
    let out = sim(&many);
    assert_eq!(code(&out), exit_code::INVARIANT_BROKEN, "{}", stdout(&out));
}

#[test]
fn usage_errors_exit_2_like_clap() {
    for args in [
        &["--no-such-flag"][..],
        &["--workers"],
        &["--faults", "gremlins"],
        &["--duration", "forever"],
        &["--clock-rates", "0,1"],
        &["--seeds", "9..3"],
    ] {
        let out = sim(args);
        assert_eq!(
            code(&out),
            exit_code::USAGE,
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_clean_run_exits_0_and_the_replaced_system_is_reported_not_failed() {
    let out = sim(&["--workers", "3", "--duration", "1m", "--seed", "1"]);
    assert_eq!(code(&out), exit_code::PASSED, "{}", stdout(&out));
    // The naive model of the replaced system breaks invariants by design
    // (unconditional writes): reported, exit 0, as `--help` says.
    let out = sim(&[
        "--mode",
        "naive",
        "--workers",
        "5",
        "--duration",
        "2m",
        "--seed",
        "1",
        "--json",
    ]);
    assert_eq!(code(&out), exit_code::PASSED);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["violation_count"].as_u64().unwrap() > 0, "{report}");
}

#[test]
fn help_lists_the_exit_statuses() {
    let out = sim(&["--help"]);
    assert_eq!(code(&out), 0);
    let text = stdout(&out);
    for line in [
        "Exit status:",
        "0  every run kept its invariants",
        "2  the command line is wrong",
        "3  a run in a core mode (global, per-plugin) broke an invariant",
    ] {
        assert!(text.contains(line), "{line:?} missing from --help:\n{text}");
    }
}
