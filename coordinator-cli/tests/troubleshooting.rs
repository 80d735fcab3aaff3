//! Reproduces every problem of `docs/troubleshooting.md` and checks that the
//! output the guide quotes is what the code prints.
//!
//! The guide marks each quoted block with `<!-- repro: NAME -->`. In a
//! block, a line `$ coordinator ARGS` is run here (with
//! `COORDINATOR_URL`, `COORDINATOR_NAMESPACE` and, where the scenario has
//! one, `COORDINATOR_CONFIG` set to the scenario's, in its directory; a
//! trailing `; echo "exit $?"` appends the exit status as the shell would);
//! the lines after it must appear in that command's output. Lines before
//! the first `$`, and after a `$ coordinator run …` that runs until
//! stopped (the scenario starts those workers, with `--fast`), must appear
//! in the scenario's own output: the `run` workers' lines, the library's
//! log lines, or an error a call returned. In
//! a quoted line, `…` stands for text that changes from run to run
//! (timestamps, ages, random ids); everything else must match exactly.
//! Every `NAME` in the guide must have a test here, and every test a block.
#![cfg(unix)]
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;
// For its `…` wildcard, shared with the doc-command tests.
#[path = "../../coordinator-testkit/tests/common/doc_commands.rs"]
mod doc_commands;
mod guide;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use coordinator_store::LeaseStore;
use doc_commands::wildcard_matches;
use guide::{blocks, collect_logs, local_store, logs, pause, registry, runtime, Scenario, GUIDE};

const TESTED: [&str; 18] = [
    "no_leader",
    "leader_flapping",
    "slow_failover",
    "foreign_lease",
    "newer_format",
    "newer_format_waited",
    "newer_format_recovered",
    "probe_refused",
    "throttling",
    "clock_suspend",
    "duplicate_worker_id",
    "worker_timed_out",
    "lifecycle_deleted",
    "high_bill",
    "queue_stuck",
    "cron_bad_expression",
    "cron_missing_handler",
    "ttl_late",
];

#[test]
fn every_block_has_a_test_and_every_test_a_block() {
    let names: BTreeSet<String> = blocks().into_iter().map(|(n, _)| n).collect();
    let tested: BTreeSet<String> = TESTED.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(names, tested);
    let problems = GUIDE.lines().filter(|l| l.starts_with("## ")).count();
    assert!(problems >= 12, "at least 12 problems: {problems}");
}

#[test]
fn the_wildcard_matches_only_what_it_should() {
    assert!(wildcard_matches("a … c", "a b c"));
    assert!(wildcard_matches("a…", "abc"));
    assert!(wildcard_matches("…c", "abc"));
    assert!(wildcard_matches("abc", "abc"));
    assert!(!wildcard_matches("abc", "abcd"));
    assert!(!wildcard_matches("a … c", "a b d"));
    assert!(!wildcard_matches("a…b…c", "a c b"));
    assert!(!wildcard_matches("ab…ba", "aba"));
}

#[test]
fn no_leader() {
    let s = Scenario::new("demo");
    let w1 = s.worker("w1", &[]);
    w1.wait_for("is_leader=true", Duration::from_secs(10));
    w1.stop();
    s.check("no_leader");
}

#[test]
fn leader_flapping() {
    let s = Scenario::new("demo");
    let w1 = s.worker("w1", &[]);
    w1.wait_for("is_leader=true", Duration::from_secs(10));
    let w2 = s.worker("w2", &[]);
    w2.wait_for("leader=w1 epoch=1 is_leader=false", Duration::from_secs(10));
    // Each leader in turn stalls past its lease (a long GC pause, a
    // starved VM), the way a leader that cannot renew in time does.
    let flapper = std::thread::spawn(move || {
        pause(1000);
        w1.signal("STOP");
        pause(2500);
        w1.signal("CONT");
        pause(1500);
        w2.signal("STOP");
        pause(2500);
        w2.signal("CONT");
        (w1, w2)
    });
    s.check("leader_flapping");
    drop(flapper.join().unwrap());
}

#[test]
fn slow_failover() {
    let s = Scenario::new("demo");
    let w1 = s.worker("w1", &[]);
    w1.wait_for("is_leader=true", Duration::from_secs(10));
    w1.signal("KILL");
    pause(3600);
    s.check("slow_failover");
}

#[test]
fn foreign_lease() {
    let s = Scenario::new("legacy");
    let lease = s.path().join("plg_coordinator_global/legacy/state.json");
    std::fs::create_dir_all(lease.parent().unwrap()).unwrap();
    let foreign = br#"{"leader":"old-system-7","expiresAt":1700000000000}"#;
    std::fs::write(&lease, foreign).unwrap();
    // A worker of the library meets it too.
    logs();
    let rt = runtime();
    let app = registry(local_store(s.path()), "w2");
    rt.block_on(async {
        let _refused = app.get("legacy").await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    });
    collect_logs(&s, "namespace=legacy");
    rt.block_on(app.close());
    s.check("foreign_lease");
    assert_eq!(std::fs::read(&lease).unwrap(), foreign, "left alone");
}

#[test]
fn newer_format() {
    let s = Scenario::new("demo");
    let w1 = s.worker("w1", &[]);
    w1.wait_for("is_leader=true", Duration::from_secs(10));
    w1.stop();
    // What a canary of a newer release leaves behind after its roll-back.
    let lease = s.path().join("plg_coordinator_global/demo/state.json");
    let text = std::fs::read_to_string(&lease).unwrap();
    assert!(text.contains("\"format\":1"), "{text}");
    std::fs::write(&lease, text.replace("\"format\":1", "\"format\":2")).unwrap();
    s.check("newer_format");
    // A worker of this version follows the newer lease, then replaces it
    // once it stood unchanged for recovery_wait (6 s with --fast).
    let started = std::time::Instant::now();
    let w1 = s.worker("w1", &[]);
    w1.wait_for("is_leader=true", Duration::from_secs(20));
    assert!(
        started.elapsed() >= Duration::from_secs(6),
        "not before recovery_wait"
    );
    s.check("newer_format_waited");
    w1.stop();
    // The same roll-back, skipping the wait: no worker of the newer
    // release runs any more, so its lease is deleted.
    std::fs::write(&lease, text.replace("\"format\":1", "\"format\":2")).unwrap();
    std::fs::remove_file(&lease).unwrap();
    let w2 = s.worker("w2", &[]);
    w2.wait_for("is_leader=true", Duration::from_secs(10));
    s.check("newer_format_recovered");
}

/// A store that accepts conditional headers and ignores them, as some
/// S3-compatible servers do: every create and compare-and-swap overwrites.
#[derive(Debug)]
struct IgnoresConditions(coordinator_store::MemoryStore);

#[async_trait::async_trait]
impl LeaseStore for IgnoresConditions {
    fn backend(&self) -> &'static str {
        "s3"
    }
    fn capabilities(&self) -> coordinator_store::Capabilities {
        self.0.capabilities()
    }
    async fn get(
        &self,
        key: &str,
    ) -> Result<Option<coordinator_store::StoredObject>, coordinator_store::StoreError> {
        self.0.get(key).await
    }
    async fn create(
        &self,
        key: &str,
        body: bytes::Bytes,
    ) -> Result<coordinator_store::Written, coordinator_store::StoreError> {
        self.0.put(key, body).await
    }
    async fn compare_and_swap(
        &self,
        key: &str,
        _expected: &coordinator_store::Version,
        body: bytes::Bytes,
    ) -> Result<coordinator_store::Written, coordinator_store::StoreError> {
        self.0.put(key, body).await
    }
    async fn put(
        &self,
        key: &str,
        body: bytes::Bytes,
    ) -> Result<coordinator_store::Written, coordinator_store::StoreError> {
        self.0.put(key, body).await
    }
    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<coordinator_store::ObjectMeta>, coordinator_store::StoreError> {
        self.0.list_page(prefix, start_after, limit).await
    }
    async fn delete(&self, key: &str) -> Result<(), coordinator_store::StoreError> {
        self.0.delete(key).await
    }
    async fn delete_if_version(
        &self,
        key: &str,
        _expected: &coordinator_store::Version,
    ) -> Result<(), coordinator_store::StoreError> {
        self.0.delete(key).await
    }
}

#[test]
fn probe_refused() {
    let s = Scenario::new("demo");
    let store = IgnoresConditions(coordinator_store::MemoryStore::new());
    let error = runtime()
        .block_on(coordinator_store::probe_cas(&store, ".coordinator-probe"))
        .unwrap_err();
    s.note(&error.to_string());
    s.check("probe_refused");
}

#[test]
fn throttling() {
    use coordinator_store::{FailingStore, Fault, FaultKind};
    let s = Scenario::new("throttled");
    logs();
    let rt = runtime();
    let failing = Arc::new(FailingStore::new(
        coordinator_store::LocalDirStore::new(s.path().to_path_buf()),
        1,
    ));
    let w1 = registry(failing.clone(), "w1");
    let w2 = registry(local_store(s.path()), "w2");
    rt.block_on(async {
        let c1 = w1.get("throttled").await.unwrap();
        c1.leadership().wait_for(|v| v.is_leader).await.unwrap();
        let c2 = w2.get("throttled").await.unwrap();
        tokio::time::sleep(Duration::from_millis(1000)).await;
        // Every request of w1's answers 503 SlowDown from now on.
        failing.set_faults(vec![Fault::new(FaultKind::Throttled)]);
        c2.leadership().wait_for(|v| v.is_leader).await.unwrap();
    });
    collect_logs(&s, "throttled");
    s.check("throttling");
    rt.block_on(async {
        failing.clear_faults();
        w1.close().await;
        w2.close().await;
    });
}

#[test]
fn clock_suspend() {
    let s = Scenario::new("demo");
    let w1 = s.worker("w1", &[]);
    w1.wait_for("is_leader=true", Duration::from_secs(10));
    let w2 = s.worker("w2", &[]);
    w2.wait_for("leader=w1 epoch=1 is_leader=false", Duration::from_secs(10));
    // A laptop lid closed, a VM frozen for migration: the process does not
    // run, and its clock (CLOCK_BOOTTIME) keeps counting.
    w1.signal("STOP");
    w2.wait_for("is_leader=true", Duration::from_secs(10));
    w1.signal("CONT");
    w1.wait_for("leader=w2 epoch=2 is_leader=false", Duration::from_secs(10));
    s.check("clock_suspend");
    drop((w1, w2));
}

#[test]
fn duplicate_worker_id() {
    let s = Scenario::new("dup");
    logs();
    let rt = runtime();
    let a = registry(local_store(s.path()), "w1");
    let b = registry(local_store(s.path()), "w1");
    rt.block_on(async {
        let ca = a.get("dup").await.unwrap();
        ca.leadership().wait_for(|v| v.is_leader).await.unwrap();
        let _cb = b.get("dup").await.unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
    });
    collect_logs(&s, "dup");
    s.check("duplicate_worker_id");
    rt.block_on(async {
        a.close().await;
        b.close().await;
    });
}

#[test]
fn worker_timed_out() {
    // `watch` judges heartbeats by the fleet's timings: the config file
    // gives it those of `run --fast`.
    let s = Scenario::new("demo").with_config(
        "[coordinator.election]\nheartbeat_interval = \"200ms\"\nheartbeat_jitter = \"50ms\"\n\
         lease_timeout = \"1500ms\"\nrenew_deadline = \"1s\"\nworker_timeout = \"1500ms\"\n\
         membership_interval = \"500ms\"\nworker_list_interval = \"500ms\"\n\
         request_timeout = \"300ms\"\n",
    );
    let w1 = s.worker("w1", &[]);
    w1.wait_for("is_leader=true", Duration::from_secs(10));
    let w2 = s.worker("w2", &[]);
    w2.wait_for("leader=w1 epoch=1 is_leader=false", Duration::from_secs(10));
    let staller = std::thread::spawn(move || {
        pause(1000);
        w2.signal("STOP");
        pause(3000);
        w2.signal("CONT");
        w2
    });
    s.check("worker_timed_out");
    drop((w1, staller.join().unwrap()));
}

#[test]
fn lifecycle_deleted() {
    let s = Scenario::new("demo");
    let w1 = s.worker("w1", &[]);
    w1.wait_for("is_leader=true", Duration::from_secs(10));
    let w2 = s.worker("w2", &[]);
    w2.wait_for("leader=w1 epoch=1 is_leader=false", Duration::from_secs(10));
    let lease = s.path().join("plg_coordinator_global/demo/state.json");
    let deleter = std::thread::spawn(move || {
        pause(1000);
        // What an expiry rule on the prefix does.
        std::fs::remove_file(&lease).unwrap();
    });
    s.check("lifecycle_deleted");
    deleter.join().unwrap();
    drop((w1, w2));
}

#[test]
fn high_bill() {
    let s = Scenario::new("demo");
    let w1 = s.worker("w1", &[]);
    w1.wait_for("is_leader=true", Duration::from_secs(10));
    let w2 = s.worker("w2", &[]);
    w2.wait_for("leader=w1 epoch=1 is_leader=false", Duration::from_secs(10));
    pause(1200);
    s.check("high_bill");
}

#[test]
fn queue_stuck() {
    use coordinator_plugins::queue::{FailOutcome, Queue, QueueConfig};
    let s = Scenario::new("shop").with_config(
        "\n[plugins.queue]\nnames = [\"orders\"]\n\n[plugins.queue.config]\nsweep_interval = \"200ms\"\nretry = { max_attempts = 1 }\n",
    );
    let rt = runtime();
    let client = registry(local_store(s.path()), "api-1");
    let queue = Queue::builder(&client, "shop", "orders")
        .config(QueueConfig {
            retry: coordinator_plugins::RetryPolicy::none(),
            ..QueueConfig::default()
        })
        .build()
        .unwrap();
    let held = rt.block_on(async {
        for i in 0..3 {
            queue.enqueue(format!("order {i}")).await.unwrap();
        }
        let consumer = queue.consumer();
        let mut claimed = consumer.claim(2).await.unwrap();
        assert_eq!(claimed.len(), 2);
        let failed = claimed.pop().unwrap();
        assert_eq!(
            failed.fail("card declined").await.unwrap(),
            FailOutcome::DeadLettered
        );
        // The other claim's consumer hangs: it neither completes nor fails.
        claimed.pop().unwrap()
    });
    let w1 = s.worker("w1", &["--plugins"]);
    w1.wait_for("is_leader=true", Duration::from_secs(10));
    pause(1500);
    s.check("queue_stuck");
    drop((held, w1));
}

#[test]
fn cron_bad_expression() {
    use coordinator_plugins::scheduler::{JobContext, JobError, JobSpec, Scheduler};
    let s = Scenario::new("shop");
    let rt = runtime();
    let client = registry(local_store(s.path()), "api-1");
    let scheduler = Scheduler::builder(&client, "shop", "cron")
        .handler("report", |_ctx: JobContext| async {
            Ok::<(), JobError>(())
        })
        .build()
        .unwrap();
    rt.block_on(async {
        for spec in [
            JobSpec::new("report", "0 3 32 * *"),
            JobSpec::new("report", "0 0 30 2 *"),
            JobSpec::new("report", "0 9 * * MON-FRI 2027"),
            JobSpec::new("nightly", "0 3 * * *"),
        ] {
            s.note(&scheduler.add(spec).await.unwrap_err().to_string());
        }
    });
    s.check("cron_bad_expression");
}

#[test]
fn cron_missing_handler() {
    use coordinator_plugins::scheduler::{JobContext, JobError, JobSpec, Scheduler};
    let s = Scenario::new("cronjobs").with_config("\n[plugins.scheduler]\nnames = [\"cron\"]\n");
    logs();
    let rt = runtime();
    // The application that adds the job registers its handler…
    let app = registry(local_store(s.path()), "api-1");
    let with_handler = Scheduler::builder(&app, "cronjobs", "cron")
        .handler("report", |_ctx: JobContext| async {
            Ok::<(), JobError>(())
        })
        .build()
        .unwrap();
    // …the worker that leads was built without it.
    let leader = registry(local_store(s.path()), "w1");
    let without = Scheduler::builder(&leader, "cronjobs", "cron")
        .build()
        .unwrap();
    rt.block_on(async {
        with_handler
            .add(JobSpec::new("report", "* * * * * *"))
            .await
            .unwrap();
        leader
            .attach("cronjobs", Arc::new(without.plugin()))
            .await
            .unwrap();
        let c = leader.get("cronjobs").await.unwrap();
        c.leadership().wait_for(|v| v.is_leader).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2500)).await;
    });
    collect_logs(&s, "cron");
    s.check("cron_missing_handler");
    rt.block_on(leader.close());
}

#[test]
fn ttl_late() {
    use coordinator_plugins::ttl::{Expiry, Ttl, TtlConfig};
    let s = Scenario::new("shop").with_config(
        "\n[plugins.ttl]\nnames = [\"sessions\"]\n\n[plugins.ttl.config]\nbucket_width = \"1s\"\nclock_skew_margin = \"100ms\"\n",
    );
    let rt = runtime();
    let client = registry(local_store(s.path()), "api-1");
    let ttl = Ttl::builder(&client, "shop", "sessions")
        .config(TtlConfig {
            bucket_width: Duration::from_secs(1),
            clock_skew_margin: Duration::from_millis(100),
            ..TtlConfig::default()
        })
        .build()
        .unwrap();
    rt.block_on(async {
        ttl.put("s1", "x", Expiry::After(Duration::from_millis(200)))
            .await
            .unwrap();
    });
    // The leader runs without --plugins: nobody sweeps.
    let w1 = s.worker("w1", &[]);
    w1.wait_for("is_leader=true", Duration::from_secs(10));
    pause(2000);
    s.check("ttl_late");
}
