//! A slot object keeps its newest 16 attempts, not all of them: every
//! renewal rewrites the whole object, and `retry.max_attempts` has no upper
//! bound, so a job retried many times wrote ever larger objects. The count
//! stays exact: the newest attempt's number is how many there were, and
//! the retry policy still stops at `max_attempts`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{clock, registry, standalone, virtual_store};
use coordinator_plugins::scheduler::{
    JobContext, JobError, JobSpec, RunOutcome, Scheduler, SchedulerConfig,
};
use coordinator_plugins::RetryPolicy;
use coordinator_runtime::CoordinatorPlugin;
use coordinator_store::LeaseStore;

#[tokio::test(start_paused = true)]
async fn a_slot_keeps_its_newest_attempts_and_counts_them_all() {
    let store: Arc<dyn LeaseStore> = Arc::new(virtual_store());
    let clock = clock();
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    let handler = move |ctx: JobContext| {
        counted.fetch_add(1, Ordering::SeqCst);
        let attempt = ctx.attempt();
        std::future::ready(Err::<(), JobError>(
            format!("attempt {attempt} fails").into(),
        ))
    };
    let scheduler = Scheduler::builder(&registry(store.clone(), "w1", &clock), "ns", "cron")
        .config(SchedulerConfig {
            reload_interval: Duration::from_secs(5),
            seed: Some(5),
            ..SchedulerConfig::default()
        })
        .handler("flaky", handler)
        .build()
        .unwrap();
    let retry = RetryPolicy {
        max_attempts: 40,
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(100),
        multiplier: 1.0,
    };
    scheduler
        .add(JobSpec::new("flaky", "0 * * * *").retry(retry))
        .await
        .unwrap();
    scheduler
        .plugin()
        .on_become_coordinator(standalone(1, store, &clock, Duration::from_secs(86_400)))
        .await
        .unwrap();
    // T0 is 22:13:20: the 23:00 slot, then its 40 attempts.
    tokio::time::sleep(Duration::from_secs(50 * 60)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 40, "max_attempts still holds");
    let history = scheduler.history("flaky", 10).await.unwrap();
    assert_eq!(history.len(), 1, "{history:?}");
    let run = &history[0];
    assert!(!run.running);
    assert_eq!(
        run.outcome,
        Some(RunOutcome::Failed {
            error: "attempt 40 fails".into()
        })
    );
    let numbers: Vec<u32> = run.attempts.iter().map(|a| a.attempt).collect();
    assert_eq!(numbers, (25..=40).collect::<Vec<u32>>(), "the newest 16");
}
