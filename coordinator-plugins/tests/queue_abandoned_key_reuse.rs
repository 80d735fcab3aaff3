//! An abandoned claim's key is used again by its message's next claim (the
//! message stays, since b91c245), so the leader must not record it among
//! the claims its counters counted. It did: the abandoned claim was
//! finished like a completed one, its key went into `stats.json`'s
//! `counted` set, and when the message was claimed again before the
//! leader's next listing, the leader took the new, live claim for the
//! counted one and deleted it. Another consumer could then claim the
//! message while the first still ran it (two live handlers), the first's
//! completion was refused, and the completion that finally went through
//! was deleted uncounted ("the leader counted 979 messages completed; 980
//! were", the plugin simulator under storms).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{clock, registry, standalone, virtual_store, LandsThrottled};
use coordinator_plugins::queue::{Queue, QueueConfig, QueueError};
use coordinator_plugins::RetryPolicy;
use coordinator_store::LeaseStore;

fn queue_on(store: &Arc<LandsThrottled>) -> (Queue, Arc<coordinator_runtime::TokioClock>) {
    let clock = clock();
    let shared: Arc<dyn LeaseStore> = store.clone();
    let config = QueueConfig {
        visibility_timeout: Duration::from_secs(10),
        retry: RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(4),
            multiplier: 2.0,
        },
        sweep_interval: Duration::from_secs(1),
        seed: Some(13),
        ..QueueConfig::default()
    };
    let queue = Queue::builder(&registry(shared, "w1", &clock), "ns", "q")
        .config(config)
        .build()
        .unwrap();
    (queue, clock)
}

#[tokio::test(start_paused = true)]
async fn the_next_claim_of_an_abandoned_message_is_not_taken_for_a_counted_one() {
    let store = Arc::new(LandsThrottled::new(Arc::new(virtual_store())));
    let (queue, clock) = queue_on(&store);
    let id = queue.enqueue("job").await.unwrap();
    // A claim that lands under a lost answer, recognised only after its
    // visibility ran out: ended `Abandoned`, and its claimer's delete of it
    // fails, so the leader meets it.
    let consumer = queue.consumer();
    store.arm("/claims/", 1);
    assert!(matches!(
        consumer.claim(1).await,
        Err(QueueError::Store { .. })
    ));
    tokio::time::sleep(Duration::from_secs(11)).await;
    store.fail_deletes("/claims/", 1);
    assert!(consumer.claim(1).await.unwrap().is_empty());
    assert_eq!(store.deletes_left(), 0, "the claimer tried to delete it");
    let shared: Arc<dyn LeaseStore> = store.clone();
    let ctx = standalone(1, shared, &clock, Duration::from_secs(600));
    let leader = queue.maintenance();
    // The leader removes the abandoned claim; the message is claimable
    // again, under the same claim key, and is claimed before the leader
    // lists the claims again.
    leader.sweep(&ctx).await.unwrap();
    let mut again = queue.consumer().claim(1).await.unwrap();
    assert_eq!(again.len(), 1, "the message was not given back");
    let held = again.pop().unwrap();
    assert_eq!(held.message().id, id);
    // The leader's next sweeps leave the live claim alone: nobody else can
    // claim the message while it runs, and its completion is accepted.
    leader.sweep(&ctx).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    leader.sweep(&ctx).await.unwrap();
    assert!(
        queue.consumer().claim(1).await.unwrap().is_empty(),
        "a second consumer claimed the message while the first held it"
    );
    held.complete().await.unwrap();
    leader.sweep(&ctx).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    leader.sweep(&ctx).await.unwrap();
    let stats = queue.stats().await.unwrap();
    assert_eq!(
        (stats.completed, stats.failed, stats.pending),
        (1, 0, 0),
        "{stats:?}"
    );
}
