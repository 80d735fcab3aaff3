//! A write whose answer was lost (it landed, then the client library's
//! hidden retry was throttled) is recognised as ours by the caller's next
//! attempt, even though that attempt sends a new body: no claim nobody runs,
//! no slot claimed and never run.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{clock, lead_standalone, registry, standalone, virtual_store, LandsThrottled, A_DAY};
use coordinator_plugins::queue::{Queue, QueueConfig, QueueError, QueueMaintenance};
use coordinator_plugins::scheduler::{JobContext, JobError, JobSpec, RunOutcome, Scheduler};
use coordinator_plugins::{RetryPolicy, SortableId};
use coordinator_runtime::{CoordinatorPlugin, LeaderContext, StepDownReason};
use coordinator_store::{FailingStore, Fault, FaultKind, LeaseStore, RequestKind};

/// Each run's slot, attempt and epoch.
type Runs = Arc<Mutex<Vec<(Option<u64>, u32, u64)>>>;

fn queue_config() -> QueueConfig {
    QueueConfig {
        visibility_timeout: Duration::from_secs(10),
        retry: RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(4),
            multiplier: 2.0,
        },
        sweep_interval: Duration::from_secs(1),
        seed: Some(11),
        ..QueueConfig::default()
    }
}

fn queue_on(store: &Arc<LandsThrottled>) -> (Queue, Arc<coordinator_runtime::TokioClock>) {
    let clock = clock();
    let shared: Arc<dyn LeaseStore> = store.clone();
    let queue = Queue::builder(&registry(shared, "w1", &clock), "ns", "q")
        .config(queue_config())
        .build()
        .unwrap();
    (queue, clock)
}

#[tokio::test(start_paused = true)]
async fn a_claim_that_landed_under_a_throttled_answer_is_ours_on_the_next_poll() {
    let store = Arc::new(LandsThrottled::new(Arc::new(virtual_store())));
    let (queue, _clock) = queue_on(&store);
    let id = queue.enqueue("job").await.unwrap();
    let consumer = queue.consumer();
    store.arm("/claims/", 1);
    let first = consumer.claim(1).await;
    assert!(matches!(first, Err(QueueError::Store { .. })), "{first:?}");
    assert_eq!(store.hits(), 1, "the claim landed");
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Nobody else may take it: the claim in the store is live.
    assert!(queue.consumer().claim(1).await.unwrap().is_empty());
    // Our next poll finds the claim it wrote and holds the message.
    let mut again = consumer.claim(1).await.unwrap();
    assert_eq!(again.len(), 1, "our own claim was stranded");
    let message = again.pop().unwrap();
    assert_eq!(message.message().id, id);
    assert_eq!(message.message().attempt, 1);
    // The lease counts from the attempt that landed, 3 s ago.
    assert!(
        message.handle().remaining() <= Duration::from_secs(7),
        "{:?}",
        message.handle().remaining()
    );
    assert!(message.handle().is_valid());
    message.complete().await.unwrap();
    assert_eq!(consumer.stats().claimed, 1);
    let store_dyn: Arc<dyn LeaseStore> = store.clone();
    let leader = queue.maintenance();
    let ctx = standalone(1, store_dyn, &_clock, Duration::from_secs(60));
    leader.sweep(&ctx).await.unwrap();
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.completed, stats.failed, stats.pending), (1, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn an_extension_that_landed_under_a_throttled_answer_is_not_a_lost_claim() {
    let store = Arc::new(LandsThrottled::new(Arc::new(virtual_store())));
    let (queue, clock) = queue_on(&store);
    queue.enqueue("job").await.unwrap();
    let consumer = queue.consumer();
    let message = consumer.claim(1).await.unwrap().pop().unwrap();
    store.arm("/claims/", 1);
    let first = message.handle().extend(Duration::from_secs(30)).await;
    assert!(matches!(first, Err(QueueError::Store { .. })), "{first:?}");
    assert_eq!(store.hits(), 1, "the extension landed");
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The retry (a new body) meets the extension that landed: ours.
    message
        .handle()
        .extend(Duration::from_secs(30))
        .await
        .expect("our own extension is not a lost claim");
    assert!(message.handle().is_valid());
    assert!(message.handle().remaining() > Duration::from_secs(25));
    message.complete().await.unwrap();
    let shared: Arc<dyn LeaseStore> = store.clone();
    let ctx = standalone(1, shared, &clock, Duration::from_secs(60));
    queue.maintenance().sweep(&ctx).await.unwrap();
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.completed, stats.failed), (1, 0));
    assert_eq!(consumer.stats().rejected, 0);
}

#[tokio::test(start_paused = true)]
async fn a_slot_claimed_under_a_throttled_answer_still_runs_once() {
    let store = Arc::new(LandsThrottled::new(Arc::new(virtual_store())));
    let shared: Arc<dyn LeaseStore> = store.clone();
    let clock = clock();
    let runs: Arc<Mutex<Vec<Option<u64>>>> = Arc::default();
    let recorded = runs.clone();
    let scheduler = Scheduler::builder(&registry(shared.clone(), "w1", &clock), "ns", "cron")
        .config(coordinator_plugins::scheduler::SchedulerConfig {
            reload_interval: Duration::from_secs(5),
            seed: Some(5),
            ..Default::default()
        })
        .handler("tick", move |ctx: JobContext| {
            recorded.lock().unwrap().push(ctx.slot_unix_ms());
            std::future::ready(Ok::<(), JobError>(()))
        })
        .build()
        .unwrap();
    scheduler
        .add(JobSpec::new("tick", "* * * * *"))
        .await
        .unwrap();
    // The first slot's claim lands, and is answered `Throttled`.
    store.arm("/slots/", 1);
    let plugin = lead_standalone(&scheduler, 1, shared, &clock, A_DAY).await;
    tokio::time::sleep(Duration::from_secs(3 * 60 + 30)).await;
    assert_eq!(store.hits(), 1);
    let slots = runs.lock().unwrap().clone();
    assert_eq!(slots.len(), 3, "every slot runs, once: {slots:?}");
    let history = scheduler.history("tick", 10).await.unwrap();
    assert_eq!(history.len(), 3);
    assert!(
        history
            .iter()
            .all(|h| !h.running && h.outcome == Some(RunOutcome::Succeeded)),
        "{history:?}"
    );
    plugin
        .on_stop_being_coordinator(StepDownReason::Stopping)
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_completion_after_an_extension_that_landed_unseen_is_recorded() {
    let store = Arc::new(LandsThrottled::new(Arc::new(virtual_store())));
    let (queue, clock) = queue_on(&store);
    queue.enqueue("job").await.unwrap();
    let consumer = queue.consumer();
    let message = consumer.claim(1).await.unwrap().pop().unwrap();
    store.arm("/claims/", 1);
    assert!(message
        .handle()
        .extend(Duration::from_secs(30))
        .await
        .is_err());
    assert_eq!(store.hits(), 1);
    // The completion meets the extension that landed: ours, so the
    // completion is written over it rather than rejected.
    message
        .complete()
        .await
        .expect("our own extension is not a recovery by the leader");
    assert_eq!(consumer.stats().rejected, 0);
    let shared: Arc<dyn LeaseStore> = store.clone();
    let ctx = standalone(1, shared, &clock, Duration::from_secs(60));
    queue.maintenance().sweep(&ctx).await.unwrap();
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.completed, stats.failed, stats.pending), (1, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_take_over_that_landed_under_a_throttled_answer_runs_its_attempt() {
    let store = Arc::new(LandsThrottled::new(Arc::new(virtual_store())));
    let shared: Arc<dyn LeaseStore> = store.clone();
    let clock = clock();
    let runs: Runs = Arc::default();
    let recorded = runs.clone();
    let scheduler = Scheduler::builder(&registry(shared.clone(), "w1", &clock), "ns", "cron")
        .config(coordinator_plugins::scheduler::SchedulerConfig {
            reload_interval: Duration::from_secs(5),
            seed: Some(9),
            ..Default::default()
        })
        .handler("tick", move |ctx: JobContext| {
            recorded
                .lock()
                .unwrap()
                .push((ctx.slot_unix_ms(), ctx.attempt(), ctx.epoch()));
            let epoch = ctx.epoch();
            async move {
                if epoch == 1 {
                    // The first term's run is cut short by its end.
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                Ok::<(), JobError>(())
            }
        })
        .build()
        .unwrap();
    let retry = RetryPolicy {
        max_attempts: 2,
        ..RetryPolicy::default()
    };
    scheduler
        .add(JobSpec::new("tick", "* * * * *").retry(retry))
        .await
        .unwrap();
    let first = (common::T0 / 60_000 + 1) * 60_000;
    let term1 = lead_standalone(
        &scheduler,
        1,
        shared.clone(),
        &clock,
        Duration::from_secs(50),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(50)).await;
    term1
        .on_stop_being_coordinator(StepDownReason::Stopping)
        .await
        .unwrap();
    assert_eq!(runs.lock().unwrap().clone(), vec![(Some(first), 1, 1)]);
    // The next term takes the slot over once its lease lapsed; that write
    // lands and is answered `Throttled`.
    store.arm(&format!("/s{first:015}.json"), 1);
    let term2 = lead_standalone(&scheduler, 2, shared, &clock, A_DAY).await;
    tokio::time::sleep(Duration::from_secs(150)).await;
    assert_eq!(store.hits(), 1, "the take-over landed");
    let first_runs: Vec<_> = runs
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.0 == Some(first))
        .copied()
        .collect();
    assert_eq!(
        first_runs,
        vec![(Some(first), 1, 1), (Some(first), 2, 2)],
        "the attempt our take-over wrote runs, once"
    );
    let history = scheduler.history("tick", 10).await.unwrap();
    let slot = history
        .iter()
        .find(|h| h.slot_unix_ms == Some(first))
        .unwrap();
    assert!(!slot.running, "{slot:?}");
    assert_eq!(slot.outcome, Some(RunOutcome::Succeeded), "{slot:?}");
    assert_eq!(slot.attempts.len(), 2, "{slot:?}");
    term2
        .on_stop_being_coordinator(StepDownReason::Stopping)
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_renewal_that_landed_under_a_throttled_answer_keeps_the_run() {
    let store = Arc::new(LandsThrottled::new(Arc::new(virtual_store())));
    let shared: Arc<dyn LeaseStore> = store.clone();
    let clock = clock();
    let runs: Runs = Arc::default();
    let (recorded, arming) = (runs.clone(), store.clone());
    let scheduler = Scheduler::builder(&registry(shared.clone(), "w1", &clock), "ns", "cron")
        .config(coordinator_plugins::scheduler::SchedulerConfig {
            reload_interval: Duration::from_secs(5),
            seed: Some(13),
            ..Default::default()
        })
        .handler("slow", move |ctx: JobContext| {
            recorded
                .lock()
                .unwrap()
                .push((ctx.slot_unix_ms(), ctx.attempt(), ctx.epoch()));
            // The run's first renewal (a third of the 30 s lease in) lands
            // and is answered `Throttled`; the next one meets it.
            arming.arm("/slots/", 1);
            async move {
                tokio::time::sleep(Duration::from_secs(25)).await;
                Ok::<(), JobError>(())
            }
        })
        .build()
        .unwrap();
    scheduler
        .add(JobSpec::new("slow", "0 * * * *"))
        .await
        .unwrap();
    let plugin = lead_standalone(&scheduler, 1, shared, &clock, A_DAY).await;
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(store.hits(), 1, "a renewal landed under a throttled answer");
    assert_eq!(runs.lock().unwrap().len(), 1, "one run, one attempt");
    let history = scheduler.history("slow", 10).await.unwrap();
    assert_eq!(history.len(), 1);
    assert!(!history[0].running, "{history:?}");
    assert_eq!(history[0].outcome, Some(RunOutcome::Succeeded));
    assert_eq!(history[0].attempts.len(), 1);
    plugin
        .on_stop_being_coordinator(StepDownReason::Stopping)
        .await
        .unwrap();
}

/// Found by the real-stack chaos test (docs/chaos.md, seed 12): a claim
/// whose answer was lost, recognised as ours only after its visibility ran
/// out, is ended `Abandoned`; if deleting it then fails, the leader meets
/// the abandoned claim. The message is still there and must be given back,
/// not deleted as if it had been handled.
/// A message whose claim was written under a lost answer, recognised by
/// its claimer only after the claim's visibility ran out (so ended
/// `Abandoned`), and whose claimer's delete of it failed: the leader's to
/// finish. Returns the queue, the message id and the leader with its
/// context.
async fn abandoned_claim_left_for_the_leader(
) -> (Queue, SortableId, QueueMaintenance, LeaderContext) {
    let store = Arc::new(LandsThrottled::new(Arc::new(virtual_store())));
    let (queue, clock) = queue_on(&store);
    let id = queue.enqueue("job").await.unwrap();
    let consumer = queue.consumer();
    store.arm("/claims/", 1);
    let first = consumer.claim(1).await;
    assert!(matches!(first, Err(QueueError::Store { .. })), "{first:?}");
    assert_eq!(store.hits(), 1, "the claim landed");
    // Past the claim's visibility (10 s) before the claimer sees it again.
    tokio::time::sleep(Duration::from_secs(11)).await;
    store.fail_deletes("/claims/", 1);
    let late = consumer.claim(1).await.unwrap();
    assert!(late.is_empty(), "an expired claim is not run");
    assert_eq!(store.deletes_left(), 0, "the claimer tried to delete it");
    let shared: Arc<dyn LeaseStore> = store.clone();
    let ctx = standalone(1, shared, &clock, Duration::from_secs(60));
    (queue.clone(), id, queue.maintenance(), ctx)
}

#[tokio::test(start_paused = true)]
async fn an_abandoned_claim_left_for_the_leader_gives_its_message_back() {
    let (queue, id, leader, ctx) = abandoned_claim_left_for_the_leader().await;
    leader.sweep(&ctx).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    leader.sweep(&ctx).await.unwrap();
    let mut again = queue.consumer().claim(1).await.unwrap();
    assert_eq!(again.len(), 1, "the message was lost");
    let message = again.pop().unwrap();
    assert_eq!(message.message().id, id);
    message.complete().await.unwrap();
    leader.sweep(&ctx).await.unwrap();
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.completed, stats.failed, stats.pending), (1, 0, 0));
}

/// The chaos test's seed 23: a message whose abandoned claim the leader
/// finished is claimed again at once, under the same claim key (the same
/// attempt), before the leader lists the claims again. The leader had
/// recorded the abandoned claim's key as counted and deleted the new, live
/// claim as if it were the old one: the message went to two consumers at
/// once, and round again for the rest of the run (completed 245 times).
#[tokio::test(start_paused = true)]
async fn a_claim_that_reuses_an_abandoned_claims_key_is_left_alone() {
    let (queue, id, leader, ctx) = abandoned_claim_left_for_the_leader().await;
    leader.sweep(&ctx).await.unwrap();
    // At once, before the leader lists the claims again.
    let mut again = queue.consumer().claim(1).await.unwrap();
    assert_eq!(again.len(), 1, "the message was lost");
    let message = again.pop().unwrap();
    assert_eq!(message.message().id, id);
    leader.sweep(&ctx).await.unwrap();
    assert!(
        queue.consumer().claim(1).await.unwrap().is_empty(),
        "the leader deleted a live claim: the message went to a second consumer"
    );
    message.complete().await.unwrap();
    leader.sweep(&ctx).await.unwrap();
    leader.sweep(&ctx).await.unwrap();
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.completed, stats.failed, stats.pending), (1, 0, 0));
    assert!(
        queue.consumer().claim(1).await.unwrap().is_empty(),
        "a completed message came back"
    );
}

/// The chaos test's seed 26: a completion lands but its answer is lost,
/// and before the claimer reads the claim back the leader has finished it
/// (the message and the claim deleted, the completion counted). The
/// claimer cannot tell that from a claim the leader recovered and
/// finished: it must say the outcome is unknown, not that its completion
/// was rejected and the message will come again (it will not).
#[tokio::test(start_paused = true)]
async fn a_completion_whose_claim_is_gone_before_the_read_back_is_of_unknown_outcome() {
    let failing = Arc::new(FailingStore::new(virtual_store(), 26));
    let store: Arc<dyn LeaseStore> = failing.clone();
    let clock = clock();
    let queue = Queue::builder(&registry(store.clone(), "w1", &clock), "ns", "q")
        .config(queue_config())
        .build()
        .unwrap();
    queue.enqueue("job").await.unwrap();
    let held = queue.consumer().claim(1).await.unwrap().pop().unwrap();
    let claims = "plg_coordinator_data/ns/queue/q/claims/";
    // The completion lands unseen; the claimer's read-back is slow.
    failing.set_faults(vec![
        Fault::new(FaultKind::AmbiguousApplied)
            .on(RequestKind::Put)
            .under(claims),
        Fault::new(FaultKind::Latency(Duration::from_secs(5)))
            .on(RequestKind::Get)
            .under(claims),
    ]);
    let completing = tokio::spawn(held.complete());
    tokio::time::sleep(Duration::from_millis(100)).await;
    failing.clear_faults();
    // Meanwhile the leader finishes the completed claim.
    let ctx = standalone(1, store.clone(), &clock, Duration::from_secs(60));
    let leader = queue.maintenance();
    leader.sweep(&ctx).await.unwrap();
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.completed, stats.pending), (1, 0), "{stats:?}");
    let answer = completing.await.unwrap();
    assert!(
        matches!(
            answer,
            Err(QueueError::OutcomeUnknown { op: "complete", .. })
        ),
        "{answer:?}"
    );
    // And indeed nothing comes again.
    tokio::time::sleep(Duration::from_secs(30)).await;
    leader.sweep(&ctx).await.unwrap();
    assert!(queue.consumer().claim(1).await.unwrap().is_empty());
}
