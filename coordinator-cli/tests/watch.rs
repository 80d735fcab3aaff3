//! `coordinator watch`: one line per change, JSON lines, the cost printed
//! at start, read-only.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{coordinator, file_url, files, run};
use coordinator_runtime::{CoordinatorConfig, CoordinatorRegistry};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_a_hand_over_in_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let url = file_url(dir.path());
    let watcher = {
        let url = url.clone();
        std::thread::spawn(move || {
            run(coordinator().args([
                "--url",
                &url,
                "--namespace",
                "demo",
                "--json",
                "watch",
                "--interval",
                "100ms",
                "--duration",
                "4s",
            ]))
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let store = coordinator_store::open(&url).await.unwrap();
    let config = CoordinatorConfig::default()
        .with_worker_id("w1")
        .with_election(coordinator_core::Config {
            heartbeat_interval: Duration::from_millis(200),
            heartbeat_jitter: Duration::from_millis(50),
            lease_timeout: Duration::from_millis(1500),
            renew_deadline: Duration::from_millis(1000),
            worker_timeout: Duration::from_millis(1500),
            membership_interval: Duration::from_millis(500),
            worker_list_interval: Duration::from_millis(500),
            request_timeout: Duration::from_millis(300),
            retry_backoff: Duration::from_millis(50),
            ..coordinator_core::Config::default()
        });
    let registry = CoordinatorRegistry::new(store, config).unwrap();
    let c = registry.get("demo").await.unwrap();
    c.leadership().wait_for(|v| v.is_leader).await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    drop(c);
    registry.close().await;
    let r = tokio::task::spawn_blocking(move || watcher.join().unwrap())
        .await
        .unwrap();
    assert_eq!(r.code, 0);
    let lines: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["event"], "start");
    assert!(lines[0]["cost"]
        .as_str()
        .unwrap()
        .contains("requests an hour"));
    let events: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
    for expected in ["no_lease", "leader", "joined", "released", "left", "end"] {
        assert!(events.contains(&expected), "{expected} in {events:?}");
    }
    let leader = lines.iter().find(|l| l["event"] == "leader").unwrap();
    assert_eq!(leader["worker"], "w1");
    assert_eq!(leader["epoch"], 1);
}

#[test]
fn human_lines_and_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(coordinator().args([
        "--url",
        &file_url(dir.path()),
        "--namespace",
        "demo",
        "watch",
        "--interval",
        "5s",
        "--duration",
        "200ms",
    ]));
    assert_eq!(r.code, 0);
    assert!(
        r.stdout.starts_with("watching demo: 2 requests per poll"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("1440 requests an hour"), "{}", r.stdout);
    assert!(r.stdout.contains("no_lease"), "{}", r.stdout);
    assert!(files(dir.path()).is_empty(), "watch wrote something");

    let r = run(coordinator().args(["--url", "file:///no/such/dir", "-n", "demo", "watch"]));
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("does not exist"), "{}", r.stderr);
    let r = run(coordinator().args([
        "--url",
        "memory://",
        "-n",
        "demo",
        "watch",
        "--interval",
        "often",
    ]));
    assert_eq!(r.code, 2);
}

#[test]
fn every_read_only_command_on_memory() {
    // A fresh memory store per process: an unused namespace, read cleanly.
    let r = run(coordinator().args([
        "--url",
        "memory://",
        "-n",
        "demo",
        "watch",
        "--interval",
        "50ms",
        "--duration",
        "120ms",
    ]));
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("no_lease"), "{}", r.stdout);
    let r = run(coordinator().args([
        "--url",
        "memory://",
        "-n",
        "demo",
        "--json",
        "diagnose",
        "--watch",
        "100ms",
        "--rounds",
        "2",
    ]));
    assert_eq!(r.code, 0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["probe"]["backend"], "memory");
    assert_eq!(v["status"]["verdict"]["status"], "no_leader");
}

/// A vacant lease (no leader, not released: what a worker writes in place
/// of a deleted lease) is not called released by `watch` or `status`: it is
/// taken only after the longest takeover wait on record, which both name.
#[test]
fn a_vacant_lease_is_told_apart_from_a_released_one() {
    let dir = tempfile::tempdir().unwrap();
    let lease = dir.path().join("plg_coordinator_global/demo/state.json");
    std::fs::create_dir_all(lease.parent().unwrap()).unwrap();
    let record = |released: bool| {
        serde_json::json!({
            "format": 1, "leader": null, "epoch": 4, "nonce": 7, "renewals": 0,
            "released": released, "lease_timeout_ms": 60000, "renew_deadline_ms": 49090,
            "drift_tolerance": 0.1, "successors": [], "roster_size": 0, "reserved_epoch": 4,
            "acquired_at_unix_ms": 0, "written_at_unix_ms": 1796635375055_u64
        })
        .to_string()
    };
    let url = file_url(dir.path());
    let watch = || {
        run(coordinator().args([
            "--url",
            &url,
            "-n",
            "demo",
            "watch",
            "--interval",
            "50ms",
            "--duration",
            "120ms",
        ]))
    };
    let status = || run(coordinator().args(["--url", &url, "-n", "demo", "status"]));

    std::fs::write(&lease, record(false)).unwrap();
    let w = watch();
    assert!(
        w.stdout.contains(
            "vacant     lease vacant at epoch 4 (written in place of a missing lease; its last \
             holder is unknown): no leader until a worker has seen it unchanged for the longest \
             takeover wait on record, 1m00s"
        ),
        "{}",
        w.stdout
    );
    assert!(!w.stdout.contains("released"), "{}", w.stdout);
    let s = status();
    assert_eq!(s.code, 3);
    assert!(
        s.stdout.contains("the lease is vacant at epoch 4"),
        "{}",
        s.stdout
    );
    assert!(
        s.stdout.contains("longest takeover wait on record, 1m00s"),
        "{}",
        s.stdout
    );
    assert!(!s.stdout.contains("within a poll"), "{}", s.stdout);

    std::fs::write(&lease, record(true)).unwrap();
    let w = watch();
    assert!(
        w.stdout.contains("lease released at epoch 4: no leader"),
        "{}",
        w.stdout
    );
    let s = status();
    assert_eq!(s.code, 3);
    assert!(
        s.stdout
            .contains("the lease was released at epoch 4; the next worker takes it within a poll"),
        "{}",
        s.stdout
    );
}

/// A heartbeat that stood past the worker timeout before it vanished is a
/// worker that timed out and was removed, not one that left; a fresh
/// heartbeat removed is a worker that left.
#[test]
fn a_timed_out_worker_removed_is_not_reported_as_left() {
    let dir = tempfile::tempdir().unwrap();
    let workers = dir.path().join("plg_coordinator_global/demo/workers");
    std::fs::create_dir_all(&workers).unwrap();
    let stale = workers.join("stale.json");
    let fresh = workers.join("fresh.json");
    std::fs::write(&stale, "{}").unwrap();
    std::fs::write(&fresh, "{\"n\":0}").unwrap();
    let url = file_url(dir.path());
    let watcher = std::thread::spawn(move || {
        run(coordinator()
            .env("COORDINATOR_ELECTION_HEARTBEAT_INTERVAL", "200ms")
            .env("COORDINATOR_ELECTION_HEARTBEAT_JITTER", "50ms")
            .env("COORDINATOR_ELECTION_MEMBERSHIP_INTERVAL", "500ms")
            .env("COORDINATOR_ELECTION_WORKER_TIMEOUT", "1s")
            .args([
                "--url",
                &url,
                "-n",
                "demo",
                "watch",
                "--interval",
                "100ms",
                "--duration",
                "4500ms",
            ]))
    });
    // `fresh` keeps beating (a new version every 100 ms); `stale` never does.
    let started = std::time::Instant::now();
    let mut n = 0;
    while started.elapsed() < Duration::from_millis(3000) {
        n += 1;
        std::fs::write(&fresh, format!("{{\"n\":{n}}}")).unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::remove_file(&stale).unwrap();
    std::fs::remove_file(&fresh).unwrap();
    let r = watcher.join().unwrap();
    assert_eq!(r.code, 0);
    assert!(
        r.stdout.contains("timed_out  worker stale timed out"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(
            "removed    worker stale removed after it timed out: its heartbeat stood unchanged for"
        ),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("worker stale left"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("left       worker fresh left (heartbeat object removed)"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("worker fresh timed out"), "{}", r.stdout);
}
