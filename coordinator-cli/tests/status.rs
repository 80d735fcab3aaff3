//! `coordinator status` on real namespaces: a local directory with live
//! workers (run in this test process), memory, and moto when
//! `COORD_S3_ENDPOINT` is set. Bad input: each a clear message, a non-zero
//! exit, nothing written.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{coordinator, file_url, files, run};
use coordinator_runtime::{CoordinatorConfig, CoordinatorRegistry};
use coordinator_store::LeaseStoreExt;

fn fast() -> coordinator_core::Config {
    coordinator_core::Config {
        heartbeat_interval: Duration::from_millis(200),
        heartbeat_jitter: Duration::from_millis(50),
        lease_timeout: Duration::from_millis(1500),
        renew_deadline: Duration::from_millis(1000),
        worker_timeout: Duration::from_millis(1500),
        membership_interval: Duration::from_millis(500),
        worker_list_interval: Duration::from_millis(500),
        request_timeout: Duration::from_millis(300),
        retry_backoff: Duration::from_millis(50),
        succession_step: Duration::from_millis(100),
        ..coordinator_core::Config::default()
    }
}

async fn worker(url: &str, id: &str) -> CoordinatorRegistry {
    let store = coordinator_store::open(url).await.unwrap();
    let config = CoordinatorConfig::default()
        .with_worker_id(id)
        .with_election(fast());
    CoordinatorRegistry::new(store, config).unwrap()
}

fn status(url: &str, extra: &[&str]) -> common::Run {
    let mut command = coordinator();
    command.args(["--url", url, "--namespace", "demo", "status"]);
    command.args(extra);
    run(&mut command)
}

/// Sets `path`'s modification time (the local store's timestamp) to
/// `ago` before now.
fn age_file(path: &std::path::Path, ago: Duration) {
    let when = std::time::SystemTime::now() - ago;
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(when).unwrap();
}

/// The verdict's renewal rule (`coordinator_core::RenewalRule`, shared with
/// `Coordinator::health`): with the default timings a lease renewed 10.5 s
/// ago is late (past 5 s + 1 s of jitter + 2 s request timeout), 20 s ago
/// past the recorded 10 s renew deadline plus 2 s of tolerance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_then_past_the_deadline_by_the_shared_renewal_rule() {
    let dir = tempfile::tempdir().unwrap();
    let url = file_url(dir.path());
    let store = coordinator_store::open(&url).await.unwrap();
    let registry =
        CoordinatorRegistry::new(store, CoordinatorConfig::default().with_worker_id("w1")).unwrap();
    let c1 = registry.get("demo").await.unwrap();
    c1.leadership().wait_for(|v| v.is_leader).await.unwrap();
    // A crash: no release, no more renewals.
    c1.abort();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let lease = dir.path().join("plg_coordinator_global/demo/state.json");
    let judged = |ago: Duration| {
        age_file(&lease, ago);
        let url = url.clone();
        std::thread::spawn(move || status(&url, &["--json"]))
            .join()
            .unwrap()
    };
    let r = judged(Duration::from_millis(10_500));
    assert_eq!(r.code, 0, "late is still a leader");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["verdict"]["status"], "degraded", "{}", r.stdout);
    let message = v["verdict"]["message"].as_str().unwrap();
    assert!(message.contains("leader late to renew"), "{message}");
    assert!(
        message.contains("expected every 6.0s at most (plus 2.0s"),
        "{message}"
    );

    let r = judged(Duration::from_secs(20));
    assert_eq!(r.code, 3, "past the deadline: no live leader");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let message = v["verdict"]["message"].as_str().unwrap();
    assert!(message.contains("no live leader: w1"), "{message}");
    assert!(
        message.contains("past its renew deadline 10.0s plus 2.0s"),
        "{message}"
    );
    drop(c1);
    registry.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_leader_then_released() {
    let dir = tempfile::tempdir().unwrap();
    let url = file_url(dir.path());
    let w1 = worker(&url, "w1").await;
    let c1 = w1.get("demo").await.unwrap();
    c1.leadership().wait_for(|v| v.is_leader).await.unwrap();
    let w2 = worker(&url, "w2").await;
    let c2 = w2.get("demo").await.unwrap();
    // Let the leader list w2 and publish the roster.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let r = tokio::task::spawn_blocking({
        let url = url.clone();
        move || status(&url, &[])
    })
    .await
    .unwrap();
    assert_eq!(r.code, 0, "a live leader exits 0");
    assert!(
        r.stdout.contains("healthy: w1 leads at epoch 1"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("successors        w2"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("requests: 6 (get 4, list 2; bound 6; writes 0)"),
        "{}",
        r.stdout
    );

    let r = tokio::task::spawn_blocking({
        let url = url.clone();
        move || status(&url, &["--json", "--heartbeats"])
    })
    .await
    .unwrap();
    assert_eq!(r.code, 0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["lease"]["leader"], "w1");
    assert_eq!(v["lease"]["epoch"], 1);
    assert_eq!(v["lease"]["released"], false);
    assert_eq!(v["verdict"]["status"], "healthy");
    assert_eq!(v["workers"].as_array().unwrap().len(), 2);
    assert_eq!(v["workers"][1]["worker_id"], "w2");
    assert_eq!(v["workers"][1]["heartbeat"]["state"], "ok");
    assert_eq!(v["roster"], serde_json::json!(["w1", "w2"]));
    // With --heartbeats: one more GET per worker, within the bound.
    assert_eq!(v["requests"]["total"], 8);
    assert_eq!(v["requests"]["bound"], 8);
    assert_eq!(v["requests"]["counts"]["put"], 0);

    drop((c1, c2));
    w1.close().await;
    let r = tokio::task::spawn_blocking({
        let url = url.clone();
        move || status(&url, &[])
    })
    .await
    .unwrap();
    // w2 takes over within a poll; either it leads or the lease is released.
    assert!(r.code == 0 || r.code == 3, "{}", r.code);
    w2.close().await;
    let r = tokio::task::spawn_blocking(move || status(&url, &[]))
        .await
        .unwrap();
    assert_eq!(r.code, 3, "released: no leader");
    assert!(r.stdout.contains("the lease was released"), "{}", r.stdout);
}

#[test]
fn empty_namespace_exits_3_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let r = status(&file_url(dir.path()), &[]);
    assert_eq!(r.code, 3);
    assert!(
        r.stdout.contains("no leader: the namespace is unused"),
        "{}",
        r.stdout
    );
    assert!(
        files(dir.path()).is_empty(),
        "status wrote {:?}",
        files(dir.path())
    );

    let r = status("memory://", &["--json"]);
    assert_eq!(r.code, 3);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["verdict"]["status"], "no_leader");
}

#[test]
fn a_foreign_lease_exits_4_and_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let lease = dir.path().join("plg_coordinator_global/demo/state.json");
    std::fs::create_dir_all(lease.parent().unwrap()).unwrap();
    let foreign = br#"{"leader":"old-system-7","expiresAt":1700000000000}"#;
    std::fs::write(&lease, foreign).unwrap();
    let before = files(dir.path());
    let r = status(&file_url(dir.path()), &[]);
    assert_eq!(r.code, 4);
    assert!(r.stdout.contains("another implementation"), "{}", r.stdout);
    assert_eq!(files(dir.path()), before);
    assert_eq!(std::fs::read(&lease).unwrap(), foreign);
}

#[test]
fn bad_urls_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir");
    let r = status(&file_url(&missing), &[]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("does not exist"), "{}", r.stderr);
    assert!(!missing.exists(), "status created the directory");

    let r = status("ftp://host/dir", &[]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("unknown scheme"), "{}", r.stderr);

    let r = status("s3://", &[]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("names no bucket"), "{}", r.stderr);

    let r = run(coordinator().args(["--namespace", "demo", "status"]));
    assert_eq!(r.code, 2, "no URL at all is a usage error");
    assert!(r.stderr.contains("COORDINATOR_URL"), "{}", r.stderr);

    let r = run(coordinator().args(["--url", "memory://", "--namespace", "a/b", "status"]));
    assert_eq!(r.code, 2);
}

#[test]
fn s3_status_missing_bucket_and_bad_credentials() {
    let Some(endpoint) = common::s3_endpoint("s3_status_missing_bucket_and_bad_credentials") else {
        return;
    };
    let bucket = common::s3_bucket();
    let prefix = common::unique("status");
    let url = format!("s3://{bucket}/{prefix}?endpoint={endpoint}");
    let r = status(&url, &[]);
    assert_eq!(r.code, 3, "an unused namespace on S3");
    assert!(r.stdout.contains("s3 store"), "{}", r.stdout);

    let r = status(
        &format!(
            "s3://no-such-bucket-{}/p?endpoint={endpoint}",
            std::process::id()
        ),
        &[],
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.to_lowercase().contains("bucket"), "{}", r.stderr);

    // No credentials at all (moto accepts any it is given).
    let r = run(coordinator()
        .args(["--url", &url, "--namespace", "demo", "status"])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN"));
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.to_lowercase().contains("credential"),
        "{}",
        r.stderr
    );

    // Nothing written under the prefix.
    let store = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(coordinator_store::open_read_only(&url))
        .unwrap();
    let listed = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(store.list(""))
        .unwrap();
    assert!(listed.is_empty(), "status wrote {listed:?}");
    let _ = Arc::clone(&store);
}

/// The first job's `next_run_unix_ms` in `status --json`'s output.
fn v_next_run(stdout: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(stdout).unwrap();
    v["plugins"][2]["data"][0]["next_run_unix_ms"]
        .as_u64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_data_of_the_configured_queues_schedulers_and_ttls() {
    use coordinator_plugins::queue::Queue;
    use coordinator_plugins::scheduler::{JobSpec, Scheduler};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let url = file_url(&data);
    let registry = worker(&url, "w1").await;
    let queue = Queue::builder(&registry, "demo", "orders").build().unwrap();
    for i in 0..3 {
        queue.enqueue(format!("order {i}")).await.unwrap();
    }
    let scheduler = Scheduler::builder(&registry, "demo", "cron")
        .handler(
            "nightly",
            |_ctx: coordinator_plugins::scheduler::JobContext| async {
                Ok::<(), coordinator_plugins::scheduler::JobError>(())
            },
        )
        .build()
        .unwrap();
    scheduler
        .add(JobSpec::new("nightly", "0 3 * * *"))
        .await
        .unwrap();
    let ttl = coordinator_plugins::ttl::Ttl::builder(&registry, "demo", "sessions")
        .config(coordinator_plugins::ttl::TtlConfig {
            bucket_width: Duration::from_secs(1),
            clock_skew_margin: Duration::from_millis(100),
            ..Default::default()
        })
        .build()
        .unwrap();
    // Expired an hour ago: indexed in the current 1 s bucket, overdue once
    // it has passed (nobody leads to sweep it).
    let hour_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        - 3_600_000;
    ttl.put("s1", "x", coordinator_plugins::ttl::Expiry::At(hour_ago))
        .await
        .unwrap();
    ttl.put(
        "s2",
        "y",
        coordinator_plugins::ttl::Expiry::After(Duration::from_secs(3600)),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let config = dir.path().join("coordinator.toml");
    std::fs::write(
        &config,
        format!(
            "url = \"{url}\"\nnamespace = \"demo\"\n[plugins.queue]\nnames = [\"orders\"]\n[plugins.scheduler]\nnames = [\"cron\"]\n[plugins.ttl]\nnames = [\"sessions\"]\n[plugins.ttl.config]\nbucket_width = \"1s\"\nclock_skew_margin = \"100ms\"\n"
        ),
    )
    .unwrap();
    let before = files(&data);
    let r = tokio::task::spawn_blocking(move || {
        let human = run(coordinator().arg("--config").arg(&config).arg("status"));
        let json = run(coordinator()
            .arg("--config")
            .arg(&config)
            .args(["--json", "status"]));
        (human, json)
    })
    .await
    .unwrap();
    let (human, json) = r;
    assert_eq!(human.code, 3, "no election yet");
    assert!(
        human
            .stdout
            .contains("depth 3 (+0 delayed), in flight 0, dead letters 0"),
        "{}",
        human.stdout
    );
    // The next run through Scheduler::job_states: 03:00 UTC next.
    let next = v_next_run(&json.stdout);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert_eq!(next % 86_400_000, 3 * 3_600_000, "03:00 UTC");
    assert!(next > now_ms && next - now_ms <= 86_400_000);
    assert!(
        human.stdout.contains("nightly `0 3 * * *` next: ")
            && human.stdout.contains("T03:00:00.000Z (in ")
            && human.stdout.contains("last: never run"),
        "{}",
        human.stdout
    );
    assert!(
        human
            .stdout
            .contains("2 index entries, 1 overdue, oldest overdue bucket"),
        "{}",
        human.stdout
    );
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["plugins"][0]["data"]["pending"], 3);
    assert_eq!(v["plugins"][1]["kind"], "ttl");
    assert_eq!(v["plugins"][1]["data"]["index_entries"], 2);
    assert_eq!(v["plugins"][1]["data"]["overdue"], 1);
    assert_eq!(v["plugins"][2]["data"][0]["job"], "nightly");
    assert_eq!(
        v["plugins"][1]["data"]["oldest_overdue_bucket_unix_ms"]
            .as_u64()
            .unwrap()
            % 1000,
        0
    );
    // The documented plugin reads: the queue 3 LISTs and a GET of its
    // counters (no claims), the TTL expirer 1 LIST, the scheduler a LIST of
    // its jobs, a GET of its one job and a LIST of its runs (none to GET).
    assert_eq!(v["requests"]["plugin_reads"], 8);
    assert_eq!(v["requests"]["counts"]["put"], 0);
    assert_eq!(files(&data), before, "status wrote nothing");
    registry.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_plugin_elections_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let url = file_url(dir.path());
    let registry = worker(&url, "w1").await;
    let global = registry.get("demo").await.unwrap();
    global.leadership().wait_for(|v| v.is_leader).await.unwrap();
    // The per-plugin election runs in another worker, stopped below.
    let other = worker(&url, "w2").await;
    let queue = other.get_per_plugin("demo", "queue").await.unwrap();
    queue.leadership().wait_for(|v| v.is_leader).await.unwrap();
    let r = tokio::task::spawn_blocking({
        let url = url.clone();
        move || status(&url, &["--json"])
    })
    .await
    .unwrap();
    assert_eq!(r.code, 0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["verdict"]["status"], "degraded");
    assert!(v["verdict"]["message"]
        .as_str()
        .unwrap()
        .contains("per-plugin elections held (plugin.queue led by w2)"));
    let elections = v["elections"].as_array().unwrap();
    let plugin = elections
        .iter()
        .find(|e| e["election"] == "plugin.queue")
        .unwrap();
    assert_eq!(plugin["leader"], "w2");
    assert_eq!(plugin["epoch"], 1);
    // One more GET for the per-plugin lease, within the bound.
    assert_eq!(v["requests"]["total"], 7);
    assert_eq!(v["requests"]["bound"], 7);
    // The migration finished: the per-plugin lease is released, its marker
    // stays (never deleted), and the namespace is healthy again, read
    // with the same requests.
    drop(queue);
    other.close().await;
    let r = tokio::task::spawn_blocking({
        let url = url.clone();
        move || status(&url, &["--json"])
    })
    .await
    .unwrap();
    assert_eq!(r.code, 0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["verdict"]["status"], "healthy", "{}", v["verdict"]);
    let elections = v["elections"].as_array().unwrap();
    let plugin = elections
        .iter()
        .find(|e| e["election"] == "plugin.queue")
        .unwrap();
    assert_eq!(plugin["released"], true);
    assert_eq!(v["requests"]["total"], 7);
    assert_eq!(v["requests"]["bound"], 7);
    drop(global);
    registry.close().await;
}
