//! The commands against S3 (moto in CI: scripts/test sets
//! `COORD_S3_ENDPOINT`). Skipped, loudly, when it is unset; fails when
//! `COORD_REQUIRE_S3=1`.
#![cfg(unix)]
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::worker::{Stderr, Worker};
use common::{coordinator, run};

fn start(url: &str, id: &str) -> Worker {
    Worker::spawn(
        coordinator().args([
            "--url",
            url,
            "--namespace",
            "demo",
            "run",
            "--fast",
            "--worker-id",
            id,
        ]),
        Stderr::Inherit,
    )
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
    let s1 = start(&url, "s1");
    s1.until("is_leader=true", Duration::from_secs(20));
    let s2 = start(&url, "s2");
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

    for worker in [s1, s2] {
        worker.signal("TERM");
        worker.wait();
    }
    let r = run(coordinator().args(["--url", &url, "--namespace", "demo", "status"]));
    assert_eq!(r.code, 3, "both released");
}
