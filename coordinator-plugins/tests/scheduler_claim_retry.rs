//! A slot claim that fails is retried a tick later, not at once: the
//! scheduler's leader loop used to try a failed claim again without
//! waiting, so a claim that fails without awaiting anything slow spun.
//! With a store that refuses fast it hammered the store and kept every
//! refused claim body (thousands a minute, each compared with the next);
//! with a term whose deadline passed before its token fired it stopped
//! paused time, so the watchdog that would end the term never ran (the
//! plugin simulator's `scheduler --storms` stall).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{registry, standalone, virtual_store, T0};
use coordinator_core::{Instant, Namespace, WorkerId};
use coordinator_plugins::scheduler::{JobContext, JobError, JobSpec, Scheduler, SchedulerConfig};
use coordinator_runtime::{Clock, CoordinatorPlugin, LeaderContext, TokioClock};
use coordinator_store::{FailingStore, Fault, FaultKind, LeaseStore, Metered, RequestKind};
use tokio_util::sync::CancellationToken;

const SLOTS: &str = "plg_coordinator_data/ns/scheduler/cron/slots/";

fn config() -> SchedulerConfig {
    SchedulerConfig {
        reload_interval: Duration::from_secs(5),
        seed: Some(7),
        ..SchedulerConfig::default()
    }
}

fn counting_handler(
    runs: &Arc<AtomicU64>,
) -> impl Fn(JobContext) -> std::future::Ready<Result<(), JobError>> + Send + Sync + 'static {
    let runs = runs.clone();
    move |_ctx: JobContext| {
        runs.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok(()))
    }
}

/// A scheduler on `registry` with one job, `tick`, every minute, counting
/// its runs in `runs`.
async fn every_minute(
    registry: &coordinator_runtime::CoordinatorRegistry,
    runs: &Arc<AtomicU64>,
) -> Scheduler {
    let scheduler = Scheduler::builder(registry, "ns", "cron")
        .config(config())
        .handler("tick", counting_handler(runs))
        .build()
        .unwrap();
    scheduler
        .add(JobSpec::new("tick", "* * * * *"))
        .await
        .unwrap();
    scheduler
}

#[tokio::test(start_paused = true)]
async fn a_claim_the_store_refuses_at_once_is_retried_once_a_tick() {
    // Every write under the slots is refused after 10 ms: a store that
    // fails fast (connection refused, access denied, a full disk).
    let failing = Arc::new(FailingStore::with_faults(
        virtual_store(),
        1,
        vec![
            Fault::new(FaultKind::Latency(Duration::from_millis(10)))
                .on(RequestKind::Put)
                .under(SLOTS),
            Fault::new(FaultKind::Unavailable)
                .on(RequestKind::Put)
                .under(SLOTS),
        ],
    ));
    let metered = Arc::new(Metered::new(failing.clone()));
    let store: Arc<dyn LeaseStore> = metered.clone();
    let clock = common::clock();
    let runs = Arc::new(AtomicU64::new(0));
    let scheduler = every_minute(&registry(store.clone(), "w1", &clock), &runs).await;
    let plugin = scheduler.plugin();
    let before = metered.snapshot().of(RequestKind::Put);
    plugin
        .on_become_coordinator(standalone(1, store, &clock, Duration::from_secs(86_400)))
        .await
        .unwrap();
    // T0 is 22:13:20: the first slot falls due after 40 s, and its claim
    // is refused for the 140 s after.
    tokio::time::sleep(Duration::from_secs(180)).await;
    let claims = metered.snapshot().of(RequestKind::Put) - before;
    assert!(
        (100..=150).contains(&claims),
        "{claims} claims in the 140 s the store refused them: one a tick (1 s) expected"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    // Once the store accepts writes again, the slot that stayed due is
    // claimed and run (late), then the next.
    failing.clear_faults();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(
        runs.load(Ordering::SeqCst) >= 1,
        "the refused slot was not run once the store came back"
    );
}

/// Counts its readings; past `budget` it ends the term (cancels `token`),
/// which stops a leader loop spinning on it.
#[derive(Debug)]
struct CountingClock {
    inner: TokioClock,
    readings: AtomicU64,
    budget: u64,
    token: CancellationToken,
}

impl Clock for CountingClock {
    fn now(&self) -> Instant {
        if self.readings.fetch_add(1, Ordering::Relaxed) == self.budget {
            self.token.cancel();
        }
        self.inner.now()
    }

    fn unix_ms(&self) -> u64 {
        self.inner.unix_ms()
    }
}

#[tokio::test(start_paused = true)]
async fn a_term_past_its_deadline_waits_for_its_token_without_spinning() {
    // A context whose deadline passes (is_valid turns false) while its token
    // has not fired: what a leader sees between its clock passing the
    // deadline and the watchdog's timer cancelling the term. A standalone
    // context is never cancelled at its deadline, so the window stays open.
    const BUDGET: u64 = 1_000_000;
    let store: Arc<dyn LeaseStore> = Arc::new(virtual_store());
    let token = CancellationToken::new();
    let clock = Arc::new(CountingClock {
        inner: TokioClock::starting_at(T0),
        readings: AtomicU64::new(0),
        budget: BUDGET,
        token: token.clone(),
    });
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let registry = coordinator_runtime::CoordinatorRegistry::builder(store.clone())
        .config(coordinator_runtime::CoordinatorConfig::default().with_worker_id("w1"))
        .clock(dyn_clock.clone())
        .build()
        .unwrap();
    let runs = Arc::new(AtomicU64::new(0));
    let scheduler = every_minute(&registry, &runs).await;
    // Valid for 30 s: the first slot (after 40 s) falls due after that.
    let deadline = clock.inner.now() + Duration::from_secs(30);
    let ctx = LeaderContext::standalone(
        1,
        Namespace::new("ns").unwrap(),
        WorkerId::new("w1").unwrap(),
        store,
        dyn_clock,
        deadline,
    );
    let term = ctx.cancellation_token().clone();
    // The clock's budget ends this context's term, not a fresh token.
    let ended_by_budget = token.clone();
    tokio::spawn(async move {
        ended_by_budget.cancelled().await;
        term.cancel();
    });
    scheduler.plugin().on_become_coordinator(ctx).await.unwrap();
    tokio::time::sleep(Duration::from_secs(300)).await;
    let readings = clock.readings.load(Ordering::Relaxed);
    assert!(
        readings < BUDGET,
        "the leader loop read the clock {readings} times in 5 minutes past its deadline: it spun"
    );
    assert_eq!(
        runs.load(Ordering::SeqCst),
        0,
        "no slot runs past the deadline"
    );
}
