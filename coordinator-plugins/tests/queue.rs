//! Queue behaviour, one property per test, on the memory store under paused
//! time.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{clock, registry, standalone, virtual_store};
use coordinator_plugins::queue::{FailOutcome, Queue, QueueConfig, QueueError};
use coordinator_plugins::scheduler::Scheduler;
use coordinator_plugins::ttl::Ttl;
use coordinator_plugins::RetryPolicy;
use coordinator_runtime::{CoordinatorError, CoordinatorPlugin};
use coordinator_store::{LeaseStore, LeaseStoreExt, Metered};

fn config() -> QueueConfig {
    QueueConfig {
        visibility_timeout: Duration::from_secs(10),
        retry: RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(4),
            multiplier: 2.0,
        },
        sweep_interval: Duration::from_secs(1),
        seed: Some(7),
        ..QueueConfig::default()
    }
}

#[tokio::test(start_paused = true)]
async fn fifo_claim_complete_and_cleanup() {
    let store: Arc<dyn LeaseStore> = Arc::new(virtual_store());
    let clock = clock();
    let queue = Queue::builder(&registry(store.clone(), "w1", &clock), "ns", "q")
        .config(config())
        .build()
        .unwrap();
    let ids = queue.enqueue_batch(["a", "b", "c"]).await.unwrap();
    let consumer = queue.consumer();
    let claimed = consumer.claim(2).await.unwrap();
    let got: Vec<_> = claimed.iter().map(|c| c.message().id.clone()).collect();
    assert_eq!(got, ids[..2].to_vec(), "FIFO");
    // A second consumer cannot take what the first holds.
    let other = queue.consumer().claim(5).await.unwrap();
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].message().id, ids[2]);
    for c in claimed.into_iter().chain(other) {
        c.complete().await.unwrap();
    }
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.pending, stats.in_flight, stats.finishing), (0, 0, 3));
    let leader = queue.maintenance();
    let ctx = standalone(1, store.clone(), &clock, Duration::from_secs(60));
    leader.sweep(&ctx).await.unwrap();
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.finishing, stats.completed), (0, 3));
    assert_eq!(
        store.list(queue.prefix()).await.unwrap().len(),
        1,
        "only stats.json is left"
    );
}

#[tokio::test(start_paused = true)]
async fn failures_retry_with_backoff_then_dead_letter_keeping_errors() {
    let store: Arc<dyn LeaseStore> = Arc::new(virtual_store());
    let clock = clock();
    let queue = Queue::builder(&registry(store.clone(), "w1", &clock), "ns", "q")
        .config(config())
        .build()
        .unwrap();
    let leader = queue.maintenance();
    let ctx = standalone(1, store.clone(), &clock, Duration::from_secs(3600));
    let id = queue.enqueue("payload").await.unwrap();
    let consumer = queue.consumer();
    for attempt in 1..=3u32 {
        let mut claimed = Vec::new();
        for _ in 0..20 {
            leader.sweep(&ctx).await.unwrap();
            claimed = consumer.claim(1).await.unwrap();
            if !claimed.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let message = claimed.pop().expect("the retry becomes claimable");
        assert_eq!(message.message().id, id);
        assert_eq!(message.message().attempt, attempt);
        assert_eq!(message.message().errors.len() as u32, attempt - 1);
        let outcome = message.fail(format!("boom {attempt}")).await.unwrap();
        if attempt < 3 {
            assert_eq!(
                outcome,
                FailOutcome::Retry {
                    attempt: attempt + 1,
                    delay: Duration::from_secs(1 << (attempt - 1))
                }
            );
            // Not claimable before its back-off has passed on our clock.
            leader.sweep(&ctx).await.unwrap();
            assert!(consumer.claim(1).await.unwrap().is_empty());
        } else {
            assert_eq!(outcome, FailOutcome::DeadLettered);
        }
    }
    leader.sweep(&ctx).await.unwrap();
    let dead = queue.dead_letters().await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, id);
    assert_eq!(dead[0].errors, vec!["boom 1", "boom 2", "boom 3"]);
    assert_eq!(&dead[0].payload[..], b"payload");
    let stats = queue.stats().await.unwrap();
    assert_eq!((stats.pending, stats.dead, stats.failed), (0, 1, 3));
}

#[tokio::test(start_paused = true)]
async fn stalled_claim_is_recovered_by_observer_time_and_late_completion_rejected() {
    let store: Arc<dyn LeaseStore> = Arc::new(virtual_store());
    let clock = clock();
    let queue = Queue::builder(&registry(store.clone(), "w1", &clock), "ns", "q")
        .config(config())
        .build()
        .unwrap();
    let leader = queue.maintenance();
    queue.enqueue("x").await.unwrap();
    let slow = queue.consumer();
    let held = slow.claim(1).await.unwrap().pop().unwrap();
    let handle = held.handle().clone();
    // A new leader starts counting only when it first sees the version.
    tokio::time::sleep(Duration::from_secs(30)).await;
    let ctx = standalone(2, store.clone(), &clock, Duration::from_secs(3600));
    leader.sweep(&ctx).await.unwrap();
    assert_eq!(
        queue.stats().await.unwrap().in_flight,
        1,
        "not recovered on first sight"
    );
    assert!(
        !handle.is_valid(),
        "the claimer gave up at its own deadline"
    );
    // visibility 10 s × 1.1/0.9 + 2 s grace ≈ 14.22 s.
    tokio::time::sleep(Duration::from_secs(14)).await;
    leader.sweep(&ctx).await.unwrap();
    assert_eq!(queue.stats().await.unwrap().in_flight, 1, "still not early");
    tokio::time::sleep(Duration::from_millis(300)).await;
    leader.sweep(&ctx).await.unwrap();
    // Recovered: the retry exists (attempt 2, delayed 1 s).
    let err = held.complete().await.unwrap_err();
    assert!(
        matches!(err, QueueError::ClaimLost { op: "complete", .. }),
        "{err}"
    );
    assert_eq!(slow.stats().rejected, 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let fresh = queue.consumer();
    assert!(
        fresh.claim(1).await.unwrap().is_empty(),
        "the delay counts from first sight"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let retry = fresh
        .claim(1)
        .await
        .unwrap()
        .pop()
        .expect("retry claimable");
    assert_eq!(retry.message().attempt, 2);
    assert!(retry.message().errors[0].contains("visibility timeout"));
    retry.complete().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn extend_keeps_the_claim_and_moves_the_deadline() {
    let store: Arc<dyn LeaseStore> = Arc::new(virtual_store());
    let clock = clock();
    let queue = Queue::builder(&registry(store.clone(), "w1", &clock), "ns", "q")
        .config(config())
        .build()
        .unwrap();
    let leader = queue.maintenance();
    let ctx = standalone(1, store.clone(), &clock, Duration::from_secs(3600));
    queue.enqueue("x").await.unwrap();
    let consumer = queue.consumer();
    let held = consumer.claim(1).await.unwrap().pop().unwrap();
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_secs(8)).await;
        leader.sweep(&ctx).await.unwrap();
        held.handle().extend(Duration::from_secs(10)).await.unwrap();
        assert!(held.handle().remaining() > Duration::from_secs(9));
    }
    held.complete().await.unwrap();
    leader.sweep(&ctx).await.unwrap();
    assert_eq!(queue.stats().await.unwrap().completed, 1);
}

#[tokio::test(start_paused = true)]
async fn requests_per_message_on_the_happy_path() {
    let metered = Arc::new(Metered::new(virtual_store()));
    let store: Arc<dyn LeaseStore> = metered.clone();
    let clock = clock();
    let queue = Queue::builder(&registry(store.clone(), "w1", &clock), "ns", "q")
        .config(config())
        .build()
        .unwrap();
    let leader = queue.maintenance();
    let ctx = standalone(1, store.clone(), &clock, Duration::from_secs(3600));
    leader.sweep(&ctx).await.unwrap();
    let before = metered.snapshot();
    queue
        .enqueue_batch((0..100).map(|i| format!("m{i}")))
        .await
        .unwrap();
    let consumer = queue.consumer();
    for message in consumer.claim(100).await.unwrap() {
        message.complete().await.unwrap();
    }
    leader.sweep(&ctx).await.unwrap();
    let after = metered.snapshot();
    let per = |kind| (after.of(kind) - before.of(kind)) as f64 / 100.0;
    use coordinator_store::RequestKind::*;
    // enqueue 1 PUT; claim 1 PUT + 1 GET; complete 1 PUT; leader 1 GET, 2 DELETE.
    assert_eq!(per(Put), 3.0 + 0.01, "one counters write per sweep");
    assert_eq!(per(Get), 2.0);
    assert_eq!(per(Delete), 2.0);
}

/// Two leaders at once (a migration running the maintenance under both
/// elections, with unrelated epochs): a stalled claim is recovered once and
/// its retry written once.
#[tokio::test(start_paused = true)]
async fn two_leaders_recover_a_stalled_claim_once() {
    let store: Arc<dyn LeaseStore> = Arc::new(virtual_store());
    let clock = clock();
    let queue = Queue::builder(&registry(store.clone(), "w1", &clock), "ns", "q")
        .config(config())
        .build()
        .unwrap();
    let (a, b) = (queue.maintenance(), queue.maintenance());
    let ctx_a = standalone(7, store.clone(), &clock, Duration::from_secs(3600));
    let ctx_b = standalone(2, store.clone(), &clock, Duration::from_secs(3600));
    queue.enqueue("x").await.unwrap();
    let stalled = queue.consumer().claim(1).await.unwrap();
    assert_eq!(stalled.len(), 1);
    for _ in 0..40 {
        let (ra, rb) = tokio::join!(a.sweep(&ctx_a), b.sweep(&ctx_b));
        ra.unwrap();
        rb.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let messages = store
        .list(&format!("{}/messages/", queue.prefix()))
        .await
        .unwrap();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(
        messages[0].key.contains("-002."),
        "the retry: {}",
        messages[0].key
    );
    assert!(store
        .list(&format!("{}/claims/", queue.prefix()))
        .await
        .unwrap()
        .is_empty());
    let stats = queue.stats().await.unwrap();
    assert_eq!(
        (stats.delayed + stats.pending, stats.failed),
        (1, 1),
        "{stats:?}"
    );
}

/// Every handle's leader part is bound to the registry and namespace its
/// handle was built from: attached under another namespace, or through the
/// registry of another worker (another store), it is refused with an error
/// that names both sides, instead of running under an election that does
/// not guard its data.
#[tokio::test(start_paused = true)]
async fn leader_parts_attach_only_where_their_handles_were_built() {
    let clock = clock();
    let bucket: Arc<dyn LeaseStore> = Arc::new(virtual_store());
    let other_bucket: Arc<dyn LeaseStore> = Arc::new(virtual_store());
    let w1 = registry(bucket.clone(), "w1", &clock);
    let w2 = registry(other_bucket, "w2", &clock);
    let queue = Queue::builder(&w1, "shop", "orders").build().unwrap();
    let scheduler = Scheduler::builder(&w1, "shop", "cron").build().unwrap();
    let ttl = Ttl::builder(&w1, "shop", "sessions").build().unwrap();
    let plugins: [Arc<dyn CoordinatorPlugin>; 3] = [
        Arc::new(queue.maintenance()),
        Arc::new(scheduler.plugin()),
        Arc::new(ttl.sweeper()),
    ];
    for plugin in &plugins {
        let err = w1.attach("web", plugin.clone()).await.unwrap_err();
        assert!(
            matches!(
                &err,
                CoordinatorError::PluginScopeMismatch { built_namespace, namespace, same_registry: true, .. }
                    if built_namespace == "shop" && namespace == "web"
            ),
            "{err}"
        );
        assert!(err.to_string().contains("attach it to `shop`"), "{err}");
        let err = w2.attach("shop", plugin.clone()).await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("registry of worker `w1`") && text.contains("(worker `w2`"),
            "{text}"
        );
    }
    assert!(w2.coordinators().iter().all(|c| c.plugins().is_empty()));
    // Where they were built for, all three run on one coordinator, and the
    // queue's consumers claim as the registry's worker.
    for plugin in plugins {
        w1.attach("shop", plugin).await.unwrap();
    }
    assert_eq!(w1.get("shop").await.unwrap().plugins().len(), 3);
    assert_eq!(queue.consumer().worker_id(), "w1");
    assert_eq!((scheduler.namespace(), ttl.namespace()), ("shop", "shop"));
    w1.close().await;
    w2.close().await;
}
