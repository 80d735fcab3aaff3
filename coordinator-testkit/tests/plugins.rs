//! The plugins on the real runtime under paused time, seeded store faults,
//! clock drift and crashes of any worker and of the leader, at the sizes
//! issue 6 names. Rerun a seed with `COORD_SIM_SEED=<seed>`.

use coordinator_store::LeaseStoreExt;
use coordinator_testkit::plugins::queue::{run_queue, QueueScenario};
use coordinator_testkit::plugins::scheduler::{run_scheduler, SchedulerScenario};
use coordinator_testkit::plugins::ttl::{run_ttl, TtlScenario};
use coordinator_testkit::seeds_from_env;

fn rerun(seed: u64, test: &str) -> String {
    format!("rerun: COORD_SIM_SEED={seed} cargo test -p coordinator-testkit --features plugins --test plugins {test}")
}

#[test]
fn ten_thousand_messages_through_twenty_workers_with_crashes_and_faults() {
    for seed in seeds_from_env(&[61]) {
        let scenario = QueueScenario::new(seed, 20, 10_000);
        let report = run_queue(&scenario);
        eprintln!("{}", serde_json::to_string(&report).unwrap_or_default());
        let why = rerun(seed, "ten_thousand");
        assert!(
            report.violations.is_empty(),
            "{why}: {:#?}",
            report.violations
        );
        assert_eq!(report.lost, 0, "{why}");
        assert_eq!(report.left_in_queue, 0, "{why}: not drained");
        // A message can be both: a handler succeeded but its completion was
        // refused (its claim had been recovered), and later attempts failed.
        assert!(report.completed + report.dead >= 10_000, "{why}");
        assert!(report.completed_and_dead <= 10, "{why}: {report:?}");
        // The violations include the leader's counters: completed is exact.
        assert!(report.counted_completed > 9_000, "{why}: {report:?}");
        assert!(report.dead > 0 && report.dead < 1_000, "{why}: {report:?}");
        assert!(report.leader_crashes >= 3, "{why}: {report:?}");
    }
}

#[test]
fn a_minute_job_for_six_hours_across_fail_overs_runs_each_slot() {
    for seed in seeds_from_env(&[62]) {
        let scenario = SchedulerScenario::new(seed, 3, 6);
        let report = run_scheduler(&scenario);
        eprintln!("{}", serde_json::to_string(&report).unwrap_or_default());
        let why = rerun(seed, "a_minute_job");
        assert!(
            report.violations.is_empty(),
            "{why}: {:#?}",
            report.violations
        );
        assert!(report.slots >= 355, "{why}: {report:?}");
        assert!(report.fail_overs >= 8, "{why}: {report:?}");
        assert!(
            report.reruns_after_completion <= report.fail_overs,
            "{why}: {report:?}"
        );
    }
}

#[test]
fn five_thousand_records_expire_in_time_and_never_early() {
    for seed in seeds_from_env(&[63]) {
        let scenario = TtlScenario::new(seed, 3, 5_000);
        let report = run_ttl(&scenario);
        eprintln!("{}", serde_json::to_string(&report).unwrap_or_default());
        let why = rerun(seed, "five_thousand");
        assert!(
            report.violations.is_empty(),
            "{why}: {:#?}",
            report.violations
        );
        assert_eq!(report.expired, 5_000, "{why}");
        assert!(report.refreshed > 300, "{why}: {report:?}");
        assert!(report.fail_overs >= 2, "{why}: {report:?}");
    }
}

#[test]
fn without_store_faults_every_record_expires_within_its_bucket_and_a_sweep() {
    for seed in seeds_from_env(&[64]) {
        let mut scenario = TtlScenario::new(seed, 3, 5_000);
        scenario.world.faults = None;
        scenario.late_allowance = std::time::Duration::ZERO;
        let report = run_ttl(&scenario);
        eprintln!("{}", serde_json::to_string(&report).unwrap_or_default());
        let why = rerun(seed, "without_store_faults");
        assert!(
            report.violations.is_empty(),
            "{why}: {:#?}",
            report.violations
        );
        assert_eq!(report.expired, 5_000, "{why}");
        assert_eq!(report.worst_excess_seconds, 0.0, "{why}: {report:?}");
        assert!(report.fail_overs >= 2, "{why}: {report:?}");
    }
}

#[test]
fn without_store_faults_two_thousand_messages_drain_with_exact_counters() {
    for seed in seeds_from_env(&[65]) {
        let mut scenario = QueueScenario::new(seed, 20, 2_000);
        scenario.world.faults = None;
        let report = run_queue(&scenario);
        eprintln!("{}", serde_json::to_string(&report).unwrap_or_default());
        let why = rerun(seed, "without_store_faults_two_thousand");
        assert!(
            report.violations.is_empty(),
            "{why}: {:#?}",
            report.violations
        );
        assert_eq!((report.lost, report.left_in_queue), (0, 0), "{why}");
        assert!(report.leader_crashes >= 1, "{why}: {report:?}");
    }
}

/// Every write applied twice, the caller seeing the second answer (a
/// client library's hidden retry after a lost reply): an enqueue still
/// adds each message once, and a worker still handles what it claimed.
#[test]
fn hidden_retries_neither_duplicate_messages_nor_strand_claims() {
    use std::sync::Arc;
    use std::time::Duration;

    use coordinator_plugins::queue::{Queue, QueueConfig};
    use coordinator_store::LeaseStore;
    use coordinator_testkit::runtime::{virtual_memory_store, SeededStore};
    use coordinator_testkit::{LatencyModel, RequestFaults, SeedTree};

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        let faults = RequestFaults {
            hidden_retry: 1.0,
            ..RequestFaults::default()
        };
        let store = Arc::new(SeededStore::new(
            virtual_memory_store(),
            SeedTree::new(5),
            LatencyModel::s3_like(),
            Some(faults),
            Duration::from_secs(2),
        ));
        let shared: Arc<dyn LeaseStore> = store.clone();
        let registry = coordinator_runtime::CoordinatorRegistry::new(
            shared,
            coordinator_runtime::CoordinatorConfig::default().with_worker_id("w"),
        )
        .unwrap();
        let queue = Queue::builder(&registry, "ns", "q")
            .config(QueueConfig {
                seed: Some(5),
                ..QueueConfig::default()
            })
            .build()
            .unwrap();
        queue.enqueue_batch(["a", "b", "c"]).await.unwrap();
        queue.enqueue("d").await.unwrap();
        let listed = store
            .inner()
            .list(&format!("{}/messages/", queue.prefix()))
            .await
            .unwrap();
        assert_eq!(listed.len(), 4, "{listed:?}");
        let claimed = queue.consumer().claim(4).await.unwrap();
        assert_eq!(claimed.len(), 4, "our own claims, not races lost");
        for message in claimed {
            message.complete().await.unwrap();
        }
    });
}
