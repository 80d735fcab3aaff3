//! The commands against S3 (moto in CI: scripts/test sets
//! `COORD_S3_ENDPOINT`). Skipped, loudly, when it is unset; fails when
//! `COORD_REQUIRE_S3=1`.
#![cfg(unix)]
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{coordinator, run};

fn start(url: &str, id: &str) -> (Child, std::sync::mpsc::Receiver<String>) {
    let mut child = coordinator()
        .args([
            "--url",
            url,
            "--namespace",
            "demo",
            "run",
            "--fast",
            "--worker-id",
            id,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Kills the workers if the test fails half-way (no orphan processes).
struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn term(child: &mut Child) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

#[test]
fn run_status_watch_and_diagnose_on_s3() {
    let Some(endpoint) = common::s3_endpoint("run_status_watch_and_diagnose_on_s3") else {
        return;
    };
    let url = format!(
        "s3://{}/{}?endpoint={endpoint}",
        common::s3_bucket(),
        common::unique("s3")
    );
    let (w1, lines) = start(&url, "s1");
    let mut workers = Workers(vec![w1]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let line = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("s1 leads within 20 s");
        println!("[s1] {line}");
        if line.contains("is_leader=true") {
            break;
        }
    }
    let (w2, _lines2) = start(&url, "s2");
    workers.0.push(w2);
    std::thread::sleep(Duration::from_millis(1500));

    let r = run(coordinator().args(["--url", &url, "--namespace", "demo", "--json", "status"]));
    assert_eq!(r.code, 0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["backend"], "s3");
    assert_eq!(v["lease"]["leader"], "s1");
    assert_eq!(v["verdict"]["status"], "healthy");
    assert_eq!(v["requests"]["total"], v["requests"]["bound"]);
    assert_eq!(v["requests"]["counts"]["put"], 0);
    assert!(
        v["lease"]["age_host_clock_ms"].is_i64(),
        "S3 gives timestamps"
    );

    let r = run(coordinator().args([
        "--url",
        &url,
        "--namespace",
        "demo",
        "--json",
        "watch",
        "--interval",
        "200ms",
        "--duration",
        "600ms",
    ]));
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains(r#""event":"leader""#), "{}", r.stdout);
    assert!(r.stdout.contains(r#""worker":"s2""#), "{}", r.stdout);

    let r = run(coordinator().args([
        "--url",
        &url,
        "--namespace",
        "demo",
        "--json",
        "diagnose",
        "--watch",
        "300ms",
        "--rounds",
        "2",
    ]));
    assert_eq!(r.code, 0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["probe"]["ok"], true);
    assert_eq!(v["status"]["lease"]["leader"], "s1");

    // A missing bucket ends watch at once (exit 1) rather than polling an
    // error forever.
    let r = run(coordinator().args([
        "--url",
        &format!(
            "s3://no-such-bucket-{}/p?endpoint={endpoint}",
            std::process::id()
        ),
        "--namespace",
        "demo",
        "watch",
    ]));
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("does not exist"), "{}", r.stderr);

    for child in &mut workers.0 {
        term(child);
    }
    let r = run(coordinator().args(["--url", &url, "--namespace", "demo", "status"]));
    assert_eq!(r.code, 3, "both released");
}
