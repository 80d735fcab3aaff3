//! Scheduler behaviour on the memory store under paused time: slots,
//! run-now, disable, timeout, retries, history, DST, and 6 simulated hours
//! of a per-minute job across forced fail-overs (exactly one run per slot).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{clock, lead_standalone, registry, virtual_store, TestRng, A_DAY, T0};
use coordinator_plugins::scheduler::{
    Delivery, JobContext, JobError, JobSpec, MissedRunPolicy, RunOutcome, Schedule, Scheduler,
    SchedulerConfig,
};
use coordinator_plugins::RetryPolicy;
use coordinator_runtime::{
    Clock, Coordinator, CoordinatorPlugin, CoordinatorRegistry, StepDownReason,
};
use coordinator_store::{LeaseStore, Metered};

type Runs = Arc<Mutex<Vec<(Option<u64>, u32, u64)>>>;

fn recorder(
    runs: &Runs,
) -> impl Fn(JobContext) -> std::future::Ready<Result<(), JobError>> + Send + Sync + 'static {
    let runs = runs.clone();
    move |ctx: JobContext| {
        runs.lock()
            .unwrap()
            .push((ctx.slot_unix_ms(), ctx.attempt(), ctx.epoch()));
        std::future::ready(Ok(()))
    }
}

fn config() -> SchedulerConfig {
    SchedulerConfig {
        reload_interval: Duration::from_secs(5),
        seed: Some(3),
        ..SchedulerConfig::default()
    }
}

#[test]
fn cron_syntax_zones_and_dst() {
    let at = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_millis() as u64
    };
    // Six fields, names, steps, ranges, lists.
    let s = Schedule::parse("j", "*/20 5 9-17 * JAN,FEB MON-FRI", "UTC").unwrap();
    assert_eq!(
        s.next_after(at("2024-01-01T09:05:00Z")),
        Some(at("2024-01-01T09:05:20Z"))
    );
    for alias in [
        "@hourly",
        "@daily",
        "@weekly",
        "@monthly",
        "@yearly",
        "@annually",
    ] {
        Schedule::parse("j", alias, "UTC").unwrap();
    }
    assert!(Schedule::parse("j", "* * *", "UTC").is_err());
    assert!(Schedule::parse("j", "* * * * *", "Mars/Olympus").is_err());
    // Spring forward in Berlin (2024-03-31 02:00 → 03:00): 02:30 does not
    // exist; the job runs at the first instant after the gap.
    let s = Schedule::parse("j", "30 2 * * *", "Europe/Berlin").unwrap();
    assert_eq!(
        s.next_after(at("2024-03-30T23:00:00Z")),
        Some(at("2024-03-31T01:00:00Z"))
    );
    // Fall back (2024-10-27 03:00 → 02:00): 02:30 happens twice; a
    // fixed-time job runs once, at the first.
    let first = s.next_after(at("2024-10-26T23:00:00Z")).unwrap();
    assert_eq!(first, at("2024-10-27T00:30:00Z"));
    assert_eq!(s.next_after(first), Some(at("2024-10-28T01:30:00Z")));
    // An interval job runs on both.
    let s = Schedule::parse("j", "30 * * * *", "Europe/Berlin").unwrap();
    assert_eq!(
        s.next_after(at("2024-10-27T00:30:00Z")),
        Some(at("2024-10-27T01:30:00Z"))
    );
}

#[tokio::test(start_paused = true)]
async fn runs_each_slot_serves_run_now_and_honours_disable() {
    let store: Arc<dyn LeaseStore> = Arc::new(virtual_store());
    let clock = clock();
    let runs: Runs = Arc::default();
    let scheduler = Scheduler::builder(&registry(store.clone(), "w1", &clock), "ns", "cron")
        .config(config())
        .handler("tick", recorder(&runs))
        .build()
        .unwrap();
    scheduler
        .add(JobSpec::new("tick", "* * * * *"))
        .await
        .unwrap();
    assert!(
        scheduler
            .add(JobSpec::new("tick", "* * * * *"))
            .await
            .is_err(),
        "exists"
    );
    let plugin = lead_standalone(&scheduler, 1, store.clone(), &clock, A_DAY).await;
    tokio::time::sleep(Duration::from_secs(5 * 60)).await;
    let slots: Vec<u64> = runs.lock().unwrap().iter().filter_map(|r| r.0).collect();
    assert_eq!(slots.len(), 5, "{slots:?}");
    assert!(slots.windows(2).all(|w| w[1] - w[0] == 60_000));
    scheduler.disable("tick").await.unwrap();
    scheduler.run_now("tick").await.unwrap();
    tokio::time::sleep(Duration::from_secs(3 * 60)).await;
    let after: Vec<_> = runs.lock().unwrap().clone();
    assert_eq!(after.len(), 6, "disabled: only the run-now ran: {after:?}");
    assert_eq!(after[5].0, None, "a run-now has no slot");
    scheduler.enable("tick").await.unwrap();
    tokio::time::sleep(Duration::from_secs(2 * 60)).await;
    assert_eq!(
        runs.lock().unwrap().len(),
        8,
        "slots missed while disabled are not caught up"
    );
    let history = scheduler.history("tick", 100).await.unwrap();
    assert_eq!(history.len(), 8);
    assert!(history
        .iter()
        .all(|h| !h.running && h.outcome == Some(RunOutcome::Succeeded)));
    assert!(history
        .iter()
        .all(|h| h.attempts[0].end_unix_ms >= Some(h.attempts[0].start_unix_ms)));
    scheduler.remove("tick").await.unwrap();
    tokio::time::sleep(Duration::from_secs(2 * 60)).await;
    assert_eq!(runs.lock().unwrap().len(), 8, "removed");
    plugin
        .on_stop_being_coordinator(StepDownReason::Stopping)
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn timeout_really_cancels_and_retries_back_off() {
    let store: Arc<dyn LeaseStore> = Arc::new(virtual_store());
    let clock = clock();
    let finished = Arc::new(Mutex::new(0u32));
    let started = Arc::new(Mutex::new(Vec::new()));
    let (f, s, c) = (finished.clone(), started.clone(), clock.clone());
    let scheduler = Scheduler::builder(&registry(store.clone(), "w1", &clock), "ns", "cron")
        .config(config())
        .handler("slow", move |ctx: JobContext| {
            let (f, s, c) = (f.clone(), s.clone(), c.clone());
            async move {
                s.lock().unwrap().push((ctx.attempt(), c.unix_ms()));
                tokio::time::sleep(Duration::from_secs(60)).await;
                *f.lock().unwrap() += 1;
                Ok::<(), JobError>(())
            }
        })
        .build()
        .unwrap();
    let retry = RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_secs(2),
        max_backoff: Duration::from_secs(60),
        multiplier: 2.0,
    };
    scheduler
        .add(
            JobSpec::new("slow", "0 * * * *")
                .timeout(Duration::from_secs(5))
                .retry(retry),
        )
        .await
        .unwrap();
    let plugin = lead_standalone(&scheduler, 1, store.clone(), &clock, A_DAY).await;
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(
        *finished.lock().unwrap(),
        0,
        "every attempt was cancelled at its timeout"
    );
    let started = started.lock().unwrap().clone();
    assert_eq!(
        started.iter().map(|s| s.0).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    // 5 s timeout, then 2 s, then 4 s of back-off.
    assert_eq!(started[1].1 - started[0].1, 7_000);
    assert_eq!(started[2].1 - started[1].1, 9_000);
    let history = scheduler.history("slow", 10).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].outcome, Some(RunOutcome::TimedOut));
    assert_eq!(history[0].attempts.len(), 3);
    assert!(history[0]
        .attempts
        .iter()
        .all(|a| a.outcome == Some(RunOutcome::TimedOut) && a.epoch == 1 && a.worker == "leader"));
    plugin
        .on_stop_being_coordinator(StepDownReason::Stopping)
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn missed_runs_run_once_or_skip_and_cut_short_runs_follow_delivery() {
    for (policy, delivery, expect) in [
        (MissedRunPolicy::RunOnce, Delivery::AtLeastOnce, 2usize),
        (MissedRunPolicy::Skip, Delivery::AtMostOnce, 0),
    ] {
        let store: Arc<dyn LeaseStore> = Arc::new(virtual_store());
        let clock = clock();
        let runs: Runs = Arc::default();
        let r = runs.clone();
        let hang = move |ctx: JobContext| {
            r.lock()
                .unwrap()
                .push((ctx.slot_unix_ms(), ctx.attempt(), ctx.epoch()));
            async move {
                // The first leader's run hangs until its term ends.
                if ctx.epoch() == 1 {
                    ctx.cancellation_token().cancelled().await;
                }
                Ok::<(), JobError>(())
            }
        };
        let scheduler = Scheduler::builder(&registry(store.clone(), "w1", &clock), "ns", "cron")
            .config(config())
            .handler("h", hang)
            .build()
            .unwrap();
        scheduler
            .add(
                JobSpec::new("h", "0 * * * *")
                    .missed(policy)
                    .delivery(delivery)
                    .timeout(Duration::from_secs(7200)),
            )
            .await
            .unwrap();
        // Leader 1 runs the 01:00-ish slot and dies 10 minutes later.
        let until_first_slot = 3_600_000 - (T0 % 3_600_000);
        let first = lead_standalone(
            &scheduler,
            1,
            store.clone(),
            &clock,
            Duration::from_millis(until_first_slot + 600_000),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(until_first_slot + 600_000)).await;
        first
            .on_stop_being_coordinator(StepDownReason::RenewDeadlineExceeded)
            .await
            .unwrap();
        assert_eq!(runs.lock().unwrap().len(), 1);
        // Nobody leads for 3 hours; then leader 2.
        tokio::time::sleep(Duration::from_secs(3 * 3600)).await;
        let second = lead_standalone(&scheduler, 2, store.clone(), &clock, A_DAY).await;
        tokio::time::sleep(Duration::from_secs(120)).await;
        let later: Vec<_> = runs.lock().unwrap()[1..].to_vec();
        let history = scheduler.history("h", 100).await.unwrap();
        match delivery {
            Delivery::AtLeastOnce => {
                // The cut-short run is taken over (attempt 2), and the newest
                // missed slot runs once.
                assert_eq!(later.len(), expect, "{later:?}");
                assert!(later
                    .iter()
                    .any(|r| r.1 == 2 && r.0 == runs.lock().unwrap()[0].0));
                assert!(history
                    .iter()
                    .any(|h| h.kind == coordinator_plugins::scheduler::SlotKind::CatchUp));
            }
            Delivery::AtMostOnce => {
                assert_eq!(later.len(), expect, "{later:?}");
                assert!(
                    matches!(history[0].outcome, Some(RunOutcome::Abandoned { .. })),
                    "{:?}",
                    history[0]
                );
            }
        }
        second
            .on_stop_being_coordinator(StepDownReason::Stopping)
            .await
            .unwrap();
    }
}

/// A per-minute job for 6 simulated hours on 3 workers, with the leader
/// crashed (not released) or stopped every 10–40 minutes: exactly one run
/// per slot.
#[tokio::test(start_paused = true)]
async fn six_hours_of_a_minute_job_across_fail_overs_run_each_slot_once() {
    let metered = Arc::new(Metered::new(virtual_store()));
    let store: Arc<dyn LeaseStore> = metered.clone();
    let clock = clock();
    let runs: Runs = Arc::default();
    let make = |registry: &CoordinatorRegistry| {
        Scheduler::builder(registry, "ns", "cron")
            .config(config())
            .handler("tick", recorder(&runs))
            .build()
            .unwrap()
    };
    make(&registry(store.clone(), "admin", &clock))
        .add(JobSpec::new("tick", "* * * * *"))
        .await
        .unwrap();
    let mut workers: Vec<(CoordinatorRegistry, Arc<Coordinator>)> = Vec::new();
    let mut next = 0;
    for _ in 0..3 {
        let id = format!("s{next}");
        let r = registry(store.clone(), &id, &clock);
        let c = r.attach("ns", Arc::new(make(&r).plugin())).await.unwrap();
        workers.push((r, c));
        next += 1;
    }
    let mut rng = TestRng::new(5);
    let start = tokio::time::Instant::now();
    let mut fail_overs = 0;
    while start.elapsed() < Duration::from_secs(6 * 3600) {
        tokio::time::sleep(Duration::from_secs(600 + rng.below(1800))).await;
        let Some(i) = workers.iter().position(|(_, c)| c.is_leader()) else {
            continue;
        };
        let (r, c) = workers.swap_remove(i);
        if fail_overs % 2 == 0 {
            c.abort(); // a crash: the lease is not released
        } else {
            r.close().await;
        }
        drop(r);
        fail_overs += 1;
        let id = format!("s{next}");
        let r = registry(store.clone(), &id, &clock);
        let c = r.attach("ns", Arc::new(make(&r).plugin())).await.unwrap();
        workers.push((r, c));
        next += 1;
    }
    let end = clock.unix_ms();
    for (r, _) in workers {
        r.close().await;
    }
    let runs = runs.lock().unwrap().clone();
    let mut per_slot: BTreeMap<u64, usize> = BTreeMap::new();
    for (slot, _, _) in &runs {
        *per_slot.entry(slot.unwrap()).or_default() += 1;
    }
    let first = (T0 / 60_000 + 1) * 60_000;
    let expected: Vec<u64> = (0..)
        .map(|i| first + i * 60_000)
        .take_while(|&s| s + 60_000 < end)
        .collect();
    let twice: Vec<_> = per_slot.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "slots run twice: {twice:?}");
    let missing: Vec<_> = expected
        .iter()
        .filter(|s| !per_slot.contains_key(s))
        .collect();
    assert!(missing.is_empty(), "slots never run: {missing:?}");
    let epochs: std::collections::BTreeSet<u64> = runs.iter().map(|r| r.2).collect();
    assert!(
        fail_overs >= 8 && epochs.len() > fail_overs / 2,
        "{fail_overs} fail-overs, epochs {epochs:?}"
    );
    let counts = metered.snapshot();
    eprintln!(
        "scheduler: {} runs over {} slots, {fail_overs} fail-overs, {} epochs; all store requests (election + scheduler + history reads): {counts:?}",
        runs.len(), expected.len(), epochs.len()
    );
}

/// A migration: one worker runs the scheduler under the global election,
/// another under its per-plugin election, so both lead at once. The slot
/// keys are the same in both modes, so each slot still runs once.
#[tokio::test(start_paused = true)]
async fn a_migration_running_both_modes_still_runs_each_slot_once() {
    let store: Arc<dyn LeaseStore> = Arc::new(virtual_store());
    let clock = clock();
    let runs: Runs = Arc::default();
    let make = |registry: &CoordinatorRegistry| {
        Scheduler::builder(registry, "ns", "cron")
            .config(config())
            .handler("tick", recorder(&runs))
            .build()
            .unwrap()
    };
    let global = registry(store.clone(), "g1", &clock);
    make(&global)
        .add(JobSpec::new("tick", "* * * * *"))
        .await
        .unwrap();
    let g = global
        .attach("ns", Arc::new(make(&global).plugin()))
        .await
        .unwrap();
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let per_plugin = coordinator_runtime::CoordinatorRegistry::builder(store.clone())
        .config(
            coordinator_runtime::CoordinatorConfig::default()
                .with_worker_id("p1")
                .with_seed(99)
                .with_mode(coordinator_runtime::CoordinationMode::PerPlugin),
        )
        .clock(dyn_clock)
        .build()
        .unwrap();
    let p = per_plugin
        .attach("ns", Arc::new(make(&per_plugin).plugin()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(
        g.is_leader() && p.is_leader(),
        "both elections have a leader"
    );
    assert!(p.plugin().is_some() && g.plugin().is_none());
    tokio::time::sleep(Duration::from_secs(2 * 3600)).await;
    global.close().await;
    per_plugin.close().await;
    let runs = runs.lock().unwrap().clone();
    let mut per_slot: BTreeMap<u64, usize> = BTreeMap::new();
    for (slot, _, _) in &runs {
        *per_slot.entry(slot.unwrap()).or_default() += 1;
    }
    assert!(per_slot.len() >= 120, "{}", per_slot.len());
    assert!(
        per_slot.values().all(|n| *n == 1),
        "a slot ran twice: {per_slot:?}"
    );
    let epochs: std::collections::BTreeSet<u64> = runs.iter().map(|r| r.2).collect();
    eprintln!(
        "migration: {} slots, run under epochs {epochs:?} of two elections",
        per_slot.len()
    );
}
