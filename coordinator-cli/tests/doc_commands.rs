//! The `coordinator` commands that README.md, coordinator-cli/README.md
//! and docs/configuration.md show outside the walk-through (walkthrough.rs)
//! and the troubleshooting guide (troubleshooting.rs), read from the
//! documents and run through `bash` as written, with the `coordinator`
//! binary of this build first on `PATH`, in a temporary directory. Where a
//! document quotes output, the quoted lines must appear in order (words
//! with digits compared as `#`, `…` for any text).
//!
//! Three substitutions, each because a test cannot use the document's
//! value: `/tmp/coord` becomes a temporary directory, `127.0.0.1:9464` the
//! address a worker bound for the test (port 0, so parallel runs cannot
//! collide), and the README's `cargo run -p coordinator-cli --` the binary
//! cargo built for this test (the same package; a nested cargo would wait
//! on the suite's build lock). The configuration errors' input files are
//! not shown in the documents: the test writes files that hold the quoted
//! mistakes at the quoted lines and columns.
#![cfg(unix)]
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "../../coordinator-testkit/tests/common/doc_commands.rs"]
mod doc_commands;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::worker::{Stderr, Worker};

use doc_commands::{assert_quoted, commands, DocCommand};

/// How long a worker may take to print what a test waits for.
const WITHIN: Duration = Duration::from_secs(30);

/// The document's command, found by its text.
fn find(doc: &str, text: &str) -> DocCommand {
    commands(doc)
        .into_iter()
        .find(|c| c.text == text)
        .unwrap_or_else(|| panic!("{doc} no longer shows `{text}`"))
}

/// `bash -c` with the command's text, `coordinator` on `PATH`, in `cwd`.
fn shell(text: &str, cwd: &Path) -> (i32, String) {
    let store = cwd.join("coord").display().to_string();
    let text = text
        .replace("cargo run -p coordinator-cli --", "coordinator")
        .replace("/tmp/coord", &store);
    let bin_dir = Path::new(common::BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut command = Command::new("bash");
    command
        .args(["-c", &text])
        .current_dir(cwd)
        .env("PATH", path);
    for (name, _) in std::env::vars() {
        if name.starts_with("COORDINATOR_") {
            command.env_remove(name);
        }
    }
    let run = common::run(&mut command);
    // The output names the store as the document does.
    (run.code, run.all().replace(&store, "/tmp/coord"))
}

/// A worker started from a command line.
fn start(args: &[&str]) -> Worker {
    Worker::spawn(common::coordinator().args(args), Stderr::Inherit)
}

#[test]
fn the_readme_runs_a_worker_and_reads_its_status_through_cargo_run() {
    let dir = tempfile::tempdir().unwrap();
    let worker = find(
        "README.md",
        "cargo run -p coordinator-cli -- --url file:///tmp/coord --namespace demo run --worker-id w1   # a worker",
    );
    let status = find(
        "README.md",
        "cargo run -p coordinator-cli -- --url file:///tmp/coord --namespace demo status               # who leads (read-only)",
    );
    let words = doc_commands::words(&worker.text);
    let dashes = words.iter().position(|w| w == "--").unwrap();
    let args: Vec<String> = words[dashes + 1..]
        .iter()
        .map(|w| {
            w.replace(
                "/tmp/coord",
                &dir.path().join("coord").display().to_string(),
            )
        })
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let w1 = start(&args);
    w1.until("leader=w1 epoch=1 is_leader=true", WITHIN);
    let (code, out) = shell(&status.text, dir.path());
    assert_eq!(code, 0, "`{}`", status.text);
    assert!(out.contains("healthy: w1 leads at epoch 1"), "{out}");
    drop(w1);
    let help = find(
        "coordinator-cli/README.md",
        "cargo run -p coordinator-cli -- --help   # from the repository",
    );
    let (code, out) = shell(&help.text, dir.path());
    assert_eq!(code, 0);
    for subcommand in ["status", "watch", "probe", "diagnose", "run", "config"] {
        assert!(out.contains(&format!("  {subcommand} ")), "{out}");
    }
}

#[test]
fn the_probe_prints_what_the_readme_quotes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("coord")).unwrap();
    let probe = find(
        "coordinator-cli/README.md",
        "coordinator probe file:///tmp/coord --rounds 20",
    );
    assert!(probe.output.len() >= 10, "{probe:?}");
    let (code, out) = shell(&probe.text, dir.path());
    assert_eq!(code, 0, "the quoted verdict is `usable`");
    assert_quoted(&probe, &out);
}

#[test]
fn the_metrics_and_healthz_endpoints_print_what_the_readme_quotes() {
    let dir = tempfile::tempdir().unwrap();
    let url = common::file_url(&dir.path().join("coord"));
    // The README's worker serves on 127.0.0.1:9464; this one on a port of
    // its own, whose address its METRICS line gives.
    let m1 = start(&[
        "--url",
        &url,
        "--namespace",
        "demo",
        "run",
        "--worker-id",
        "m1",
        "--metrics-addr",
        "127.0.0.1:0",
    ]);
    let lines = m1.until("is_leader=true", WITHIN);
    let addr = lines
        .iter()
        .find_map(|l| l.strip_prefix("METRICS http://"))
        .and_then(|rest| rest.split('/').next())
        .expect("the METRICS line")
        .to_owned();
    let doc = "coordinator-cli/README.md";
    let shown: Vec<DocCommand> = commands(doc)
        .into_iter()
        .filter(|c| c.text.starts_with("curl "))
        .collect();
    assert_eq!(shown.len(), 2, "{shown:?}");
    for command in shown {
        let (code, out) = shell(&command.text.replace("127.0.0.1:9464", &addr), dir.path());
        assert_eq!(code, 0, "`{}`", command.text);
        assert!(!command.output.is_empty());
        assert_quoted(&command, &out);
    }
}

/// Each configuration error the documents quote, with a file (or
/// variable) that makes it; every one must exit with a failure.
#[test]
fn the_configuration_errors_are_the_ones_the_docs_quote() {
    let dir = tempfile::tempdir().unwrap();
    // Line 7: a lease timeout shorter than the renew deadline allows.
    std::fs::write(
        dir.path().join("coordinator.toml"),
        "url = \"memory://\"\nnamespace = \"demo\"\n\n[coordinator.election]\n\
         heartbeat_interval = \"2s\"\nrenew_deadline = \"10s\"\nlease_timeout = \"5s\"\n",
    )
    .unwrap();
    // Line 2, column 1: a misspelt key of the election table.
    std::fs::write(
        dir.path().join("bad.toml"),
        "[coordinator.election]\nlease_timout = \"20s\"\n",
    )
    .unwrap();
    // The document's own comment gives this file.
    std::fs::write(
        dir.path().join("pbare.toml"),
        "[plugins.queue.config]\npoll_interval = 1000\n",
    )
    .unwrap();
    let shown = [
        ("coordinator-cli/README.md", "coordinator --config coordinator.toml config"),
        ("coordinator-cli/README.md", "coordinator --config bad.toml config"),
        ("docs/configuration.md", "coordinator --config coordinator.toml config"),
        (
            "docs/configuration.md",
            "COORDINATOR_ELECTION_HEARTBEAT_INTERVAL=5000 coordinator --url memory:// config",
        ),
        (
            "docs/configuration.md",
            "coordinator --url memory:// --config pbare.toml config   # [plugins.queue.config] poll_interval = 1000",
        ),
    ];
    for (doc, text) in shown {
        let command = find(doc, text);
        assert_eq!(command.output.len(), 1, "{command:?}");
        let (code, out) = shell(&command.text, dir.path());
        assert_ne!(code, 0, "{doc}: `{text}` must fail");
        assert_quoted(&command, &out);
    }
}
