//! The queue under crashes and store faults: every message is completed or
//! dead-lettered, none is lost, and no two handlers hold one message at the
//! same instant of true time.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use coordinator_plugins::queue::{ClaimHandle, HandlerError, Message, Queue, QueueConfig};
use coordinator_plugins::{RetryPolicy, SortableId};
use coordinator_runtime::CoordinatorRegistry;
use coordinator_store::{LeaseStore, LeaseStoreExt};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::{fnv, paused_runtime, secs, LeaderWatch, Process, Stage, World};
use crate::store::Requests;

const NAMESPACE: &str = "sim";

/// A queue run.
#[derive(Clone, Debug, Serialize)]
pub struct QueueScenario {
    /// Workers, faults, clocks.
    pub world: World,
    /// Messages enqueued at the start.
    pub messages: usize,
    /// A crash every this many seconds (uniform in the range); every third
    /// crash is the leader's. The crashed worker is replaced at once.
    pub crash_every_secs: (u64, u64),
    /// Give up (and report what is left) after this much virtual time.
    pub give_up_after: Duration,
    /// Runs the leader's `finish` as before b91c245 (it deleted the message
    /// of every `Abandoned` claim), for the test that storms find that bug.
    #[cfg(feature = "mutations")]
    #[doc(hidden)]
    pub mutation_abandoned_deletes_message: bool,
}

impl QueueScenario {
    /// `messages` messages through `workers` workers with chaos faults and
    /// a crash every 5–25 s.
    pub fn new(seed: u64, workers: usize, messages: usize) -> Self {
        Self {
            world: World::new(seed, workers),
            messages,
            crash_every_secs: (5, 25),
            give_up_after: Duration::from_secs(6 * 3600),
            #[cfg(feature = "mutations")]
            mutation_abandoned_deletes_message: false,
        }
    }
}

/// What a queue run found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct QueueReport {
    /// The root seed.
    pub seed: u64,
    /// Messages enqueued.
    pub messages: usize,
    /// Messages a handler succeeded on.
    pub completed: usize,
    /// Messages dead-lettered.
    pub dead: usize,
    /// Messages neither completed nor dead-lettered (must be 0).
    pub lost: usize,
    /// Messages a handler succeeded on that were dead-lettered anyway: the
    /// success came after the claim was recovered (its completion was
    /// refused and reported), and the later attempts failed. At least once
    /// allows it; it should be rare.
    pub completed_and_dead: usize,
    /// The leader's completed counter at the end: it must equal the
    /// messages completed (those a handler succeeded on, less those
    /// dead-lettered anyway), leader crashes included.
    pub counted_completed: u64,
    /// The leader's failed-attempts counter at the end (reported).
    pub counted_failed: u64,
    /// Objects still under `messages/` or `claims/` at the end.
    pub left_in_queue: usize,
    /// Handler invocations, retries and re-deliveries included.
    pub handler_runs: u64,
    /// Violations: two live handlers on one message, and losses.
    pub violations: Vec<String>,
    /// Crashes, and how many of them were the leader's.
    pub crashes: u64,
    /// Crashes of the leader.
    pub leader_crashes: u64,
    /// Virtual time until the queue was empty.
    pub drained_after_seconds: f64,
    /// Store requests of everything (election, workers, leader).
    pub requests: Requests,
    /// A hash of every store request in order, as
    /// [`SeededStore::trace_hash`](crate::runtime::SeededStore::trace_hash)
    /// gives it: two runs of one seed give the same.
    pub trace_hash: String,
    /// `requests.total() / messages`.
    pub requests_per_message: f64,
    /// The longest time no one led.
    pub longest_leaderless_seconds: f64,
}

#[derive(Default)]
struct Oracle {
    active: HashMap<SortableId, u32>,
    ok: HashSet<SortableId>,
    violations: Vec<String>,
    runs: u64,
}

type Shared = Arc<Mutex<Oracle>>;

fn lock(oracle: &Shared) -> std::sync::MutexGuard<'_, Oracle> {
    oracle.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Leaves the active set when the handler ends or is dropped (cancelled).
struct Live {
    oracle: Shared,
    id: SortableId,
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Some(n) = lock(&self.oracle).active.get_mut(&self.id) {
            *n = n.saturating_sub(1);
        }
    }
}

fn config(seed: u64, sc: &QueueScenario) -> QueueConfig {
    let _ = sc;
    QueueConfig {
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
        #[cfg(feature = "mutations")]
        mutation_abandoned_deletes_message: sc.mutation_abandoned_deletes_message,
        ..QueueConfig::default()
    }
}

async fn start(
    stage: &Stage,
    slot: usize,
    life: u64,
    oracle: &Shared,
    sc: &QueueScenario,
) -> Option<Process> {
    let (registry, seed) = stage.registry(slot, life)?;
    let queue = queue_on(&registry, seed, sc)?;
    let coordinator = registry
        .attach(NAMESPACE, Arc::new(queue.maintenance()))
        .await
        .ok()?;
    let oracle = oracle.clone();
    let handler = move |message: Message, _claim: ClaimHandle| {
        let oracle = oracle.clone();
        async move {
            let live = {
                let mut o = lock(&oracle);
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
                Live {
                    oracle: oracle.clone(),
                    id: message.id.clone(),
                }
            };
            let h = fnv(&format!("{}-{}", message.id, message.attempt));
            // 1 in 100 overruns its 10 s visibility; the others take 0–3 s.
            let work = if h.is_multiple_of(100) {
                15_000
            } else {
                h % 3_000
            };
            tokio::time::sleep(Duration::from_millis(work)).await;
            drop(live);
            // 1 in 40 messages always fails (a dead letter); 1 in 10
            // attempts fails.
            if fnv(message.id.as_str()).is_multiple_of(40) || h % 10 == 1 {
                let error = format!("failure on attempt {}", message.attempt);
                return Err::<(), HandlerError>(error.into());
            }
            lock(&oracle).ok.insert(message.id.clone());
            Ok(())
        }
    };
    let worker = queue.worker(handler);
    let task = tokio::spawn(async move {
        worker.run(CancellationToken::new()).await;
    });
    Some(Process {
        registry,
        coordinator,
        tasks: vec![task],
    })
}

fn queue_on(registry: &CoordinatorRegistry, seed: u64, sc: &QueueScenario) -> Option<Queue> {
    Queue::builder(registry, NAMESPACE, "jobs")
        .config(config(seed, sc))
        .build()
        .ok()
}

/// Runs `scenario` on a fresh paused runtime.
pub fn run_queue(scenario: &QueueScenario) -> QueueReport {
    paused_runtime().block_on(run(scenario.clone()))
}

async fn run(sc: QueueScenario) -> QueueReport {
    let stage = Stage::new(&sc.world, config(0, &sc).drift_tolerance);
    let mut report = QueueReport {
        seed: sc.world.seed,
        messages: sc.messages,
        ..QueueReport::default()
    };
    // The oracle's own handle reads and enqueues without faults or counts.
    let memory: Arc<dyn LeaseStore> = Arc::new(stage.store.inner().clone());
    let (clock, _) = stage.worker_clock(usize::MAX, 0);
    let oracle = stage.oracle_registry(memory.clone(), clock);
    let Some(oracle_queue) = oracle.as_ref().and_then(|r| queue_on(r, 0, &sc)) else {
        report
            .violations
            .push("the queue's configuration was refused".to_owned());
        return report;
    };
    let ids = match oracle_queue
        .enqueue_batch((0..sc.messages).map(|i| format!("message {i}")))
        .await
    {
        Ok(ids) => ids,
        Err(error) => {
            report.violations.push(format!("enqueue failed: {error}"));
            return report;
        }
    };
    let oracle: Shared = Arc::default();
    let mut rng = stage.schedule();
    let mut processes: Vec<(usize, Process)> = Vec::new();
    let mut lives: Vec<u64> = vec![1; sc.world.workers];
    for slot in 0..sc.world.workers {
        if let Some(p) = start(&stage, slot, 0, &oracle, &sc).await {
            processes.push((slot, p));
        }
    }
    let mut watch = LeaderWatch::default();
    let (lo, hi) = sc.crash_every_secs;
    let mut next_crash =
        stage.elapsed() + Duration::from_secs(lo + rng.below(hi.saturating_sub(lo) + 1));
    let prefix = oracle_queue.prefix().to_owned();
    let mut next_drain_check = Duration::ZERO;
    let left = |memory: Arc<dyn LeaseStore>, prefix: String| async move {
        let messages = memory
            .list(&format!("{prefix}/messages/"))
            .await
            .map_or(usize::MAX, |l| l.len());
        let claims = memory
            .list(&format!("{prefix}/claims/"))
            .await
            .map_or(usize::MAX, |l| l.len());
        messages.saturating_add(claims)
    };
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = stage.elapsed();
        let leader = processes
            .iter()
            .position(|(_, p)| p.coordinator.is_leader());
        watch.observe(now, leader.is_some());
        if now >= next_crash {
            next_crash = now + Duration::from_secs(lo + rng.below(hi.saturating_sub(lo) + 1));
            let victim = match leader {
                Some(i) if report.crashes.is_multiple_of(3) => {
                    report.leader_crashes += 1;
                    i
                }
                _ => rng.below(processes.len() as u64) as usize,
            };
            if victim < processes.len() {
                let (slot, process) = processes.swap_remove(victim);
                process.crash();
                report.crashes += 1;
                let life = lives[slot];
                lives[slot] += 1;
                if let Some(p) = start(&stage, slot, life, &oracle, &sc).await {
                    processes.push((slot, p));
                }
            }
        }
        if now >= next_drain_check {
            next_drain_check = now + Duration::from_secs(5);
            if left(memory.clone(), prefix.clone()).await == 0 {
                break;
            }
        }
        if now >= sc.give_up_after {
            break;
        }
    }
    report.drained_after_seconds = secs(stage.elapsed());
    watch.finish(stage.elapsed());
    report.left_in_queue = left(memory.clone(), prefix.clone()).await;
    if report.left_in_queue > 0 {
        if let Ok(stats) = oracle_queue.stats().await {
            report.violations.push(format!("not drained: {stats:?}"));
        }
    }
    for (_, p) in processes {
        p.stop().await;
    }
    let dead: HashSet<SortableId> = match oracle_queue.dead_letters().await {
        Ok(dead) => dead.into_iter().map(|d| d.id).collect(),
        Err(error) => {
            report
                .violations
                .push(format!("cannot list dead letters: {error}"));
            HashSet::new()
        }
    };
    // Every handler has ended: take the oracle's findings out of the lock.
    let o = std::mem::take(&mut *lock(&oracle));
    report
        .violations
        .extend(o.violations.iter().take(10).cloned());
    let lost: Vec<&SortableId> = ids
        .iter()
        .filter(|id| !o.ok.contains(*id) && !dead.contains(*id))
        .collect();
    if let Some(first) = lost.first() {
        report
            .violations
            .push(format!("{} messages lost, e.g. {first}", lost.len()));
    }
    report.lost = lost.len();
    report.completed_and_dead = dead.iter().filter(|id| o.ok.contains(*id)).count();
    report.completed = o.ok.len();
    report.dead = dead.len();
    report.handler_runs = o.runs;
    match oracle_queue.stats().await {
        Ok(stats) => {
            report.counted_completed = stats.completed;
            report.counted_failed = stats.failed;
            let completed = (report.completed - report.completed_and_dead) as u64;
            if stats.completed != completed {
                report.violations.push(format!(
                    "the leader counted {} messages completed; {completed} were",
                    stats.completed
                ));
            }
        }
        Err(error) => report
            .violations
            .push(format!("cannot read the stats: {error}")),
    }
    report.requests = stage.store.requests();
    report.trace_hash = stage.store.trace_hash();
    report.requests_per_message =
        crate::report::round3(report.requests.total() as f64 / (sc.messages.max(1)) as f64);
    report.longest_leaderless_seconds = secs(watch.longest());
    report
}
