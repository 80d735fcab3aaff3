//! The read APIs an operator's tool uses instead of the plugins' layouts:
//! `Scheduler::job_states` (next run, last outcome) and `Ttl::backlog`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{clock, lead_standalone, registry, standalone, virtual_store, A_DAY};
use coordinator_plugins::scheduler::{JobContext, JobError, JobSpec, RunOutcome, Scheduler};
use coordinator_plugins::ttl::{Expiry, Ttl, TtlBacklog, TtlConfig};
use coordinator_runtime::{Clock, CoordinatorPlugin, StepDownReason};
use coordinator_store::LeaseStore;

#[tokio::test(start_paused = true)]
async fn job_states_show_the_next_run_and_the_last_outcome() {
    let store: Arc<dyn LeaseStore> = Arc::new(virtual_store());
    let clock = clock();
    let scheduler = Scheduler::builder(&registry(store.clone(), "w1", &clock), "ns", "cron")
        .handler("tick", |_: JobContext| async { Ok::<(), JobError>(()) })
        .handler("off", |_: JobContext| async { Ok::<(), JobError>(()) })
        .build()
        .unwrap();
    scheduler
        .add(JobSpec::new("tick", "*/5 * * * *"))
        .await
        .unwrap();
    scheduler
        .add(JobSpec::new("off", "* * * * *"))
        .await
        .unwrap();
    scheduler.disable("off").await.unwrap();
    let five_min = 300_000;
    let next_slot = |now: u64| (now / five_min + 1) * five_min;

    let states = scheduler.job_states().await.unwrap();
    let names: Vec<&str> = states.iter().map(|s| s.spec.name.as_str()).collect();
    assert_eq!(names, ["off", "tick"]);
    let (off, tick) = (&states[0], &states[1]);
    assert!(!off.enabled);
    assert_eq!(off.next_run_unix_ms, None, "disabled: no next run");
    assert_eq!(tick.next_run_unix_ms, Some(next_slot(clock.unix_ms())));
    assert_eq!(tick.last_run, None, "never ran");

    let plugin = lead_standalone(&scheduler, 1, store.clone(), &clock, A_DAY).await;
    tokio::time::sleep(Duration::from_secs(11 * 60)).await;
    let states = scheduler.job_states().await.unwrap();
    let tick = &states[1];
    let last = tick.last_run.as_ref().expect("tick ran");
    assert_eq!(last.outcome, Some(RunOutcome::Succeeded));
    let slot = last.slot_unix_ms.unwrap();
    assert_eq!(slot % five_min, 0);
    assert!(slot <= clock.unix_ms() && clock.unix_ms() - slot < five_min + 60_000);
    assert_eq!(tick.next_run_unix_ms, Some(next_slot(clock.unix_ms())));
    assert_eq!(states[0].last_run, None, "a disabled job does not run");
    plugin
        .on_stop_being_coordinator(StepDownReason::Stopping)
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_backlog_is_what_the_sweeper_has_yet_to_expire() {
    let store: Arc<dyn LeaseStore> = Arc::new(virtual_store());
    let clock = clock();
    let ttl = Ttl::builder(&registry(store.clone(), "w1", &clock), "ns", "sessions")
        .config(TtlConfig {
            bucket_width: Duration::from_secs(60),
            sweep_interval: Duration::from_secs(10),
            clock_skew_margin: Duration::ZERO,
            seed: Some(9),
            ..TtlConfig::default()
        })
        .build()
        .unwrap();
    let soon = ttl
        .put("a", "v", Expiry::After(Duration::from_secs(30)))
        .await
        .unwrap();
    ttl.put("b", "v", Expiry::After(Duration::from_secs(30)))
        .await
        .unwrap();
    ttl.put("later", "v", Expiry::After(Duration::from_secs(3600)))
        .await
        .unwrap();
    let empty = TtlBacklog {
        index_entries: 3,
        overdue: 0,
        oldest_overdue_bucket_unix_ms: None,
    };
    assert_eq!(ttl.backlog().await.unwrap(), empty, "nothing overdue yet");
    tokio::time::sleep(Duration::from_secs(100)).await;
    let bucket = soon.expires_at_unix_ms / 60_000 * 60_000;
    assert_eq!(
        ttl.backlog().await.unwrap(),
        TtlBacklog {
            index_entries: 3,
            overdue: 2,
            oldest_overdue_bucket_unix_ms: Some(bucket),
        }
    );
    let ctx = standalone(1, store.clone(), &clock, Duration::from_secs(86_400));
    ttl.sweeper().sweep(&ctx).await.unwrap();
    let swept = ttl.backlog().await.unwrap();
    assert_eq!((swept.index_entries, swept.overdue), (1, 0), "{swept:?}");
}
