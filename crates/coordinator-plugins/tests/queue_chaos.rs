//! Messages through 20 workers on the real runtime (paused time, memory
//! store) with random crashes, the leader's included: every message is
//! completed or dead-lettered, none is lost, and no two handlers ever hold
//! one message at the same instant.
//!
//! 2,000 messages here, on the plain memory store; the 10,000-message run
//! with store faults and clock drift is the testkit's
//! (`cargo test -p coordinator-testkit --features plugins --test plugins`).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{clock, hash, registry, virtual_store, TestRng};
use coordinator::{Coordinators, GlobalCoordinator};
use coordinator_plugins::queue::{ClaimHandle, HandlerError, Message, Queue, QueueConfig};
use coordinator_plugins::{RetryPolicy, SortableId, VirtualClock};
use coordinator_store::LeaseStore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const NS: &str = "chaos";

#[derive(Default)]
struct Oracle {
    /// Handlers running now, per message.
    active: HashMap<SortableId, u32>,
    /// Messages a handler succeeded on.
    ok: HashSet<SortableId>,
    violations: Vec<String>,
    runs: u64,
}

struct Guard {
    oracle: Arc<Mutex<Oracle>>,
    id: SortableId,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let mut o = self.oracle.lock().unwrap();
        if let Some(n) = o.active.get_mut(&self.id) {
            *n -= 1;
        }
    }
}

struct Worker {
    registry: Coordinators,
    coordinator: Arc<GlobalCoordinator>,
    task: JoinHandle<coordinator_plugins::queue::WorkerStats>,
}

async fn start_worker(
    id: String,
    store: &Arc<dyn LeaseStore>,
    clock: &Arc<VirtualClock>,
    queue: &Queue,
    oracle: &Arc<Mutex<Oracle>>,
) -> Worker {
    let registry = registry(store.clone(), &id, clock);
    let coordinator = registry
        .attach(NS, Arc::new(queue.maintenance()))
        .await
        .unwrap();
    let oracle = oracle.clone();
    let handler = move |message: Message, _claim: ClaimHandle| {
        let oracle = oracle.clone();
        async move {
            let guard = {
                let mut o = oracle.lock().unwrap();
                o.runs += 1;
                let n = o.active.entry(message.id.clone()).or_insert(0);
                *n += 1;
                if *n > 1 {
                    let v = format!(
                        "two live handlers on {} (attempt {})",
                        message.id, message.attempt
                    );
                    o.violations.push(v);
                }
                Guard {
                    oracle: oracle.clone(),
                    id: message.id.clone(),
                }
            };
            let h = hash(&format!("{}-{}", message.id, message.attempt));
            // 1 in 100 overruns its 10 s visibility; others take 0–3 s.
            let work = if h.is_multiple_of(100) {
                15_000
            } else {
                h % 3_000
            };
            tokio::time::sleep(Duration::from_millis(work)).await;
            drop(guard);
            // 1 in 40 messages always fails (dead letter), 1 in 10 attempts fails.
            if hash(message.id.as_str()).is_multiple_of(40) || h % 10 == 1 {
                return Err::<(), HandlerError>(
                    format!("failure on attempt {}", message.attempt).into(),
                );
            }
            oracle.lock().unwrap().ok.insert(message.id.clone());
            Ok(())
        }
    };
    let task = tokio::spawn(queue.worker(id, handler).run(CancellationToken::new()));
    Worker {
        registry,
        coordinator,
        task,
    }
}

fn crash(worker: Worker) {
    worker.coordinator.abort();
    worker.task.abort();
    drop(worker.registry);
}

async fn run(messages: usize, seed: u64) {
    let store: Arc<dyn LeaseStore> = Arc::new(virtual_store());
    let clock = clock();
    let config = QueueConfig {
        visibility_timeout: Duration::from_secs(10),
        retry: RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(8),
            multiplier: 2.0,
        },
        concurrency: 4,
        poll_interval: Duration::from_millis(500),
        max_poll_interval: Duration::from_secs(2),
        claim_window: 32,
        sweep_interval: Duration::from_secs(2),
        seed: Some(seed),
        ..QueueConfig::default()
    };
    let queue = Queue::builder(store.clone(), NS, "jobs")
        .config(config)
        .clock(clock.clone())
        .build()
        .unwrap();
    let oracle = Arc::new(Mutex::new(Oracle::default()));
    let mut rng = TestRng(seed);
    let ids = queue
        .enqueue_batch((0..messages).map(|i| format!("message {i}")))
        .await
        .unwrap();
    let mut workers = Vec::new();
    let mut next_id = 0;
    for _ in 0..20 {
        workers.push(start_worker(format!("w{next_id:03}"), &store, &clock, &queue, &oracle).await);
        next_id += 1;
    }
    let mut crashes = 0;
    let mut leader_crashes = 0;
    let start = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_secs(5 + rng.below(20))).await;
        // Crash someone: every third time the leader.
        let leader = workers.iter().position(|w| w.coordinator.is_leader());
        let victim = match leader {
            Some(i) if crashes % 3 == 0 => {
                leader_crashes += 1;
                i
            }
            _ => rng.below(workers.len() as u64) as usize,
        };
        crash(workers.swap_remove(victim));
        crashes += 1;
        workers.push(start_worker(format!("w{next_id:03}"), &store, &clock, &queue, &oracle).await);
        next_id += 1;
        let left = store
            .list(&format!("{}/messages/", queue.prefix()))
            .await
            .unwrap()
            .len()
            + store
                .list(&format!("{}/claims/", queue.prefix()))
                .await
                .unwrap()
                .len();
        if left == 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(6 * 3600),
            "not drained after 6 simulated hours ({left} objects left)"
        );
    }
    let elapsed = start.elapsed();
    for w in workers {
        w.registry.close().await;
        w.task.abort();
    }
    let dead: HashSet<SortableId> = queue
        .dead_letters()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    let oracle = oracle.lock().unwrap();
    assert!(
        oracle.violations.is_empty(),
        "{:?}",
        &oracle.violations[..oracle.violations.len().min(5)]
    );
    let lost: Vec<&SortableId> = ids
        .iter()
        .filter(|id| !oracle.ok.contains(*id) && !dead.contains(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} messages lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(3)]
    );
    assert!(
        !dead.is_empty() && dead.len() < messages / 10,
        "dead letters: {}",
        dead.len()
    );
    assert!(
        leader_crashes >= 2,
        "the leader crashed {leader_crashes} times"
    );
    eprintln!(
        "queue chaos: {messages} messages, {} handler runs, {} completed, {} dead, {crashes} crashes ({leader_crashes} leaders), drained in {:?} simulated",
        oracle.runs,
        oracle.ok.len(),
        dead.len(),
        elapsed
    );
}

#[tokio::test(start_paused = true)]
async fn queue_chaos_ci() {
    run(2_000, 11).await;
}
