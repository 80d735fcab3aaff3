//! The queue under the same faults: every chaos worker (with `--queue`)
//! produces messages, consumes them and runs the queue's leader-side
//! maintenance on its coordinator; after the run an auditor leads alone,
//! recovers every claim the killed workers left and drains the queue, so
//! the checker can account for every message.
//!
//! Each message's payload is unique (`worker-tag-n`). Each consumer holds
//! a claim from its answer to the earlier of its deadline and the answer
//! to its completion; it fails a share of its messages on purpose (two
//! attempts each: some become dead letters).

use std::sync::Arc;
use std::time::Duration;

use coordinator_core::{Config, SplitMix64};
use coordinator_plugins::queue::{ClaimedMessage, Queue, QueueConfig, QueueError};
use coordinator_plugins::RetryPolicy;
use coordinator_runtime::{CoordinatorConfig, CoordinatorRegistry};
use coordinator_store::LeaseStore;

use super::events::{Claim, Finish, Outcome, QueueAudit, WorkerEvent};
use super::register::Emit;
use super::{boottime_ms_to_monotonic_ns, monotonic_ns};

/// The queue's name.
pub const QUEUE: &str = "chaos-queue";

/// Short timings to match the workers': visibility 3 s, two attempts with
/// a 200 ms back-off, a sweep every second.
pub fn queue_config(seed: u64) -> QueueConfig {
    QueueConfig {
        visibility_timeout: Duration::from_secs(3),
        retry: RetryPolicy {
            max_attempts: 2,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(1),
            multiplier: 2.0,
        },
        concurrency: 1,
        poll_interval: Duration::from_millis(200),
        max_poll_interval: Duration::from_secs(1),
        sweep_interval: Duration::from_secs(1),
        recovery_grace: Duration::from_millis(500),
        seed: Some(seed),
        ..QueueConfig::default()
    }
}

/// Enqueues one message every `every`, forever.
pub async fn produce(queue: Queue, worker: String, tag: u64, every: Duration, emit: Emit) {
    for n in 0u64.. {
        let payload = format!("{worker}-{tag:x}-{n}");
        let outcome = match queue.enqueue(payload.clone()).await {
            Ok(_) => Outcome::Ok,
            Err(_) => Outcome::Error,
        };
        emit(WorkerEvent::Enqueued { payload, outcome });
        tokio::time::sleep(every).await;
    }
}

/// Claims one message at a time and handles it, forever.
pub async fn consume(queue: Queue, seed: u64, emit: Emit) {
    let consumer = queue.consumer();
    let mut rng = SplitMix64::new(seed);
    loop {
        if let Ok(claimed) = consumer.claim(1).await {
            for message in claimed {
                handle(message, &mut rng, &emit).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn handle(message: ClaimedMessage, rng: &mut SplitMix64, emit: &Emit) {
    let got_ns = monotonic_ns();
    let deadline_ns = boottime_ms_to_monotonic_ns(message.handle().deadline().as_millis());
    let m = message.message();
    let (id, attempt) = (m.id.to_string(), m.attempt);
    let payload = String::from_utf8_lossy(&m.payload).into_owned();
    emit(WorkerEvent::Taken {
        id: id.clone(),
        payload: payload.clone(),
        attempt,
    });
    tokio::time::sleep(Duration::from_millis(rng.in_range(20..400))).await;
    let finish = if !message.handle().is_valid() {
        Finish::Expired
    } else if rng.chance(0.2) {
        match message.fail("failed on purpose").await {
            Err(QueueError::ClaimLost { .. }) => Finish::Lost,
            // Landed or not, the attempt failed: recovered if not.
            _ => Finish::Failed,
        }
    } else {
        match message.complete().await {
            Ok(()) => Finish::Completed,
            Err(QueueError::ClaimLost { .. }) => Finish::Lost,
            Err(_) => Finish::Error,
        }
    };
    emit(WorkerEvent::Claimed(Claim {
        id,
        payload,
        attempt,
        got_ns,
        deadline_ns,
        end_ns: monotonic_ns(),
        finish,
    }));
}

/// After the run: leads the namespace alone (once the last lease runs
/// out), lets the maintenance recover and finish every claim, and drains
/// the queue, for at most `patience`.
///
/// # Errors
/// The registry or the queue could not be built, or the maintenance not
/// attached.
pub async fn audit(
    store: Arc<dyn LeaseStore>,
    namespace: &str,
    timings: Config,
    patience: Duration,
) -> Result<QueueAudit, String> {
    let config = CoordinatorConfig::default()
        .with_election(timings)
        .with_worker_id("auditor");
    let registry = CoordinatorRegistry::new(store, config).map_err(|e| e.to_string())?;
    let queue = Queue::builder(&registry, namespace, QUEUE)
        .config(queue_config(0xA0D1))
        .build()
        .map_err(|e| e.to_string())?;
    registry
        .attach(namespace, Arc::new(queue.maintenance()))
        .await
        .map_err(|e| e.to_string())?;
    let consumer = queue.consumer();
    let mut audit = QueueAudit::default();
    let give_up = tokio::time::Instant::now() + patience;
    loop {
        if let Ok(claimed) = consumer.claim(32).await {
            for message in claimed {
                let payload = String::from_utf8_lossy(&message.message().payload).into_owned();
                match message.complete().await {
                    Ok(()) => audit.drained.push(payload),
                    Err(error) => audit.unsure.push((payload, error.to_string())),
                }
            }
        }
        if let Ok(stats) = queue.stats().await {
            audit.left = stats.pending + stats.delayed + stats.in_flight + stats.finishing;
            if audit.left == 0 || tokio::time::Instant::now() > give_up {
                break;
            }
        } else if tokio::time::Instant::now() > give_up {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    if let Ok(dead) = queue.dead_letters().await {
        audit.dead = dead
            .into_iter()
            .map(|d| {
                (
                    d.id.to_string(),
                    String::from_utf8_lossy(&d.payload).into_owned(),
                )
            })
            .collect();
    }
    registry.close().await;
    Ok(audit)
}
