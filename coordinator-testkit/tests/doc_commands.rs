//! Every simulator, benchmark and `cargo test`/`cargo bench` command that
//! README.md, coordinator-testkit/README.md and docs/benchmarks.md show,
//! read from the documents and run (or, for what cannot run in a test,
//! checked against what it names). The `--timeline` commands are
//! sim_timeline.rs's; the CLI's commands are coordinator-cli's
//! doc_commands.rs's.
//!
//! The documents' runs are long (an hour of simulated time, 2000 seeds, a
//! 10 000-message queue): each runs here with the document's flags as
//! written except `--duration` (2 minutes, or 11 with the periodic leader
//! crashes and stops, two periods), `--seeds` (the range's first
//! two) and the plugin simulator's `--messages` (500), so the flags still
//! parse, combine and run to a clean exit within a few seconds in a debug
//! build.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[path = "common/doc_commands.rs"]
mod doc_commands;

use std::process::Command;

use doc_commands::{commands, root, words, DocCommand};

const DOCS: [&str; 3] = [
    "README.md",
    "coordinator-testkit/README.md",
    "docs/benchmarks.md",
];

fn all() -> Vec<DocCommand> {
    DOCS.iter().flat_map(|doc| commands(doc)).collect()
}

/// The arguments after the program, if `command` runs the binary `bin`
/// (as `bin`, `$S` = target/release/coordinator-sim, a `/usr/bin/time`
/// prefix, or `cargo run … --bin bin --`).
fn invocation(command: &DocCommand, bin: &str) -> Option<Vec<String>> {
    let mut words = words(&command.text);
    if words.first().map(String::as_str) == Some("/usr/bin/time") {
        words.remove(0);
        if words.first().map(String::as_str) == Some("-v") {
            words.remove(0);
        }
    }
    let program = words.first()?.as_str();
    if program == bin || (bin == "coordinator-sim" && program == "$S") {
        return Some(words[1..].to_vec());
    }
    if program == "cargo" && words.get(1).map(String::as_str) == Some("run") {
        let at = words
            .windows(2)
            .position(|w| w[0] == "--bin" && w[1] == bin)?;
        let dashes = at + words[at..].iter().position(|w| w == "--")?;
        return Some(words[dashes + 1..].to_vec());
    }
    None
}

/// Replaces the value after `flag`, if present, with `with(value)`.
/// Runs `cmd` with `args` (the documented command, shortened) and requires
/// exit status 0; returns its output and where the command is documented.
fn run_passing(
    cmd: &mut Command,
    args: &[String],
    command: &DocCommand,
) -> (std::process::Output, String) {
    let out = cmd.args(args).output().unwrap();
    let where_ = format!(
        "{}:{}: `{}` ({args:?})",
        command.doc, command.line, command.text
    );
    assert_eq!(
        out.status.code(),
        Some(coordinator_testkit::exit_code::PASSED),
        "{where_}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out, where_)
}

fn shorten(args: &mut [String], flag: &str, with: impl Fn(&str) -> String) {
    if let Some(at) = args.iter().position(|a| a == flag) {
        args[at + 1] = with(&args[at + 1]);
    }
}

#[test]
fn the_parser_reads_console_and_sh_blocks() {
    let doc = "text `not a command`\n```sh\n# a comment\nrun a \\\n  --b c   # why\n```\n\
               ```console\n$ one\nout 1\n  out 2\n$ two\n```\n```toml\nx = 1\n```\n";
    let found = doc_commands::parse("x.md", doc);
    let texts: Vec<&str> = found.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(texts, ["run a --b c   # why", "one", "two"]);
    assert_eq!(found[0].line, 4);
    assert_eq!(found[1].output, ["out 1", "  out 2"]);
    assert_eq!(words(&found[0].text), ["run", "a", "--b", "c"]);
    assert!(doc_commands::same_line(
        "took 19.5 ms  (w1)",
        "took 3 ms (w22)"
    ));
    assert!(!doc_commands::same_line("took 19.5 ms", "took 3 s"));
    assert!(doc_commands::same_line(
        "expected one of `a`, …",
        "expected one of `a`, `b`"
    ));
    assert!(!doc_commands::same_line(
        "expected one of `a`, …",
        "expected `b`"
    ));
}

#[test]
fn every_documented_simulator_run_exits_cleanly() {
    let mut ran = 0;
    for command in all() {
        let Some(mut args) = invocation(&command, "coordinator-sim") else {
            continue;
        };
        if args.iter().any(|a| a == "--timeline") {
            continue; // sim_timeline.rs runs these and checks the drawing.
        }
        for arg in &mut args {
            // The testkit README's replay commands name a seed to fill in.
            *arg = arg.replace("<seed>", "1");
        }
        // Long enough for two periods of the leader crashes and stops.
        let periodic = args.iter().any(|a| a.ends_with("-leader-every"));
        let duration = if periodic { "11m" } else { "2m" };
        shorten(&mut args, "--duration", |_| duration.to_owned());
        shorten(&mut args, "--seeds", |range| {
            let start: u64 = range.split("..").next().unwrap().parse().unwrap();
            format!("{start}..{}", start + 2)
        });
        let (out, where_) = run_passing(
            Command::new(env!("CARGO_BIN_EXE_coordinator-sim")).env_remove("COORD_SIM_SEED"),
            &args,
            &command,
        );
        if args.iter().any(|a| a == "--json") {
            let report: serde_json::Value = serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|e| panic!("{where_}: --json printed no JSON object: {e}"));
            if periodic {
                assert!(
                    report["failover_seconds"]["count"].as_u64() > Some(0)
                        && report["handover_seconds"]["count"].as_u64() > Some(0),
                    "{where_}: no fail-over or hand-over measured"
                );
            }
        }
        ran += 1;
    }
    // README 1, the testkit README 4, benchmarks.md 10 (at the time of writing).
    assert!(ran >= 15, "only {ran} simulator commands found");
}

#[cfg(feature = "plugins")]
#[test]
fn every_documented_plugin_simulator_run_keeps_its_oracle() {
    let mut ran = 0;
    for command in all() {
        let Some(mut args) = invocation(&command, "coordinator-plugin-sim") else {
            continue;
        };
        // A 10 000-message queue takes 40 s in a debug build; 500 exercise
        // the same crashes and faults.
        if args.first().map(String::as_str) == Some("queue") {
            if args.iter().any(|a| a == "--messages") {
                shorten(&mut args, "--messages", |_| "500".to_owned());
            } else {
                args.extend(["--messages".to_owned(), "500".to_owned()]);
            }
        }
        let (out, where_) = run_passing(
            &mut Command::new(env!("CARGO_BIN_EXE_coordinator-plugin-sim")),
            &args,
            &command,
        );
        let _: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{where_}: no JSON report: {e}"));
        ran += 1;
    }
    assert!(ran >= 4, "only {ran} plugin simulator commands found");
}

/// `scripts/bench-wire` builds in release mode, starts moto and runs for
/// minutes: too long for the suite. What can drift is checked: the script
/// passes its arguments to coordinator-wire-bench, and that binary accepts
/// every flag the documents give it.
#[cfg(feature = "wire")]
#[test]
fn every_flag_documented_for_the_wire_benchmark_is_accepted() {
    let script = std::fs::read_to_string(root().join("scripts/bench-wire")).unwrap();
    assert!(
        script.contains("coordinator-wire-bench\"") && script.contains("\"$@\""),
        "scripts/bench-wire no longer passes its arguments to coordinator-wire-bench"
    );
    let help = Command::new(env!("CARGO_BIN_EXE_coordinator-wire-bench"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    let mut flags = 0;
    for command in all() {
        let text = &command.text;
        let Some(at) = text.find("scripts/bench-wire") else {
            continue;
        };
        for flag in words(&text[at..])
            .iter()
            .map(|w| w.trim_end_matches(';'))
            .filter(|w| w.starts_with("--"))
        {
            assert!(
                help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n")),
                "{}:{}: coordinator-wire-bench does not accept `{flag}`",
                command.doc,
                command.line
            );
            flags += 1;
        }
    }
    assert!(flags >= 10, "only {flags} bench-wire flags found");
}

/// The `cargo test` and `cargo bench` commands are run by CI itself
/// (`scripts/test` runs every test; clippy's `--all-targets` builds every
/// bench): running cargo inside a test would fight the suite for the build
/// lock. What can drift is checked: the target each names exists, a test
/// filter matches a test, and a replay command's variable is read.
#[test]
fn every_documented_cargo_test_and_bench_names_a_real_target() {
    let mut checked = 0;
    for command in all() {
        let words = words(&command.text);
        let Some(cargo) = words.iter().position(|w| w == "cargo") else {
            continue;
        };
        let kind = words[cargo + 1].as_str();
        let (flag, dir) = match kind {
            "test" => ("--test", "tests"),
            "bench" => ("--bench", "benches"),
            _ => continue,
        };
        let where_ = format!("{}:{}: `{}`", command.doc, command.line, command.text);
        let package = &words[words.iter().position(|w| w == "-p").unwrap() + 1];
        let Some(at) = words.iter().position(|w| w == flag) else {
            continue; // a whole package's tests (`cargo test -p X`), run by CI
        };
        let target = &words[at + 1];
        let source = root().join(package).join(dir).join(format!("{target}.rs"));
        let source = std::fs::read_to_string(&source)
            .unwrap_or_else(|e| panic!("{where_}: no {} ({e})", source.display()));
        if kind == "test" {
            if let Some(filter) = words.get(at + 2).filter(|w| !w.starts_with('-')) {
                assert!(
                    source.contains(&format!("fn {filter}")),
                    "{where_}: no test in {target} matches `{filter}`"
                );
            }
            if let Some(var) = words[..cargo].iter().find_map(|w| w.split_once('=')) {
                assert!(
                    source.contains(var.0),
                    "{where_}: {target} does not read {}",
                    var.0
                );
            }
        } else {
            let manifest =
                std::fs::read_to_string(root().join(package).join("Cargo.toml")).unwrap();
            assert!(
                manifest.contains(&format!("name = \"{target}\"")),
                "{where_}: {package}/Cargo.toml declares no bench `{target}`"
            );
        }
        checked += 1;
    }
    assert!(
        checked >= 8,
        "only {checked} cargo test/bench commands found"
    );
}
