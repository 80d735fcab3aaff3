//! The scheduler under fail-overs and store faults: a per-minute job; every
//! slot runs, a slot runs again only after a run of it was cut short (at
//! least once), and never two runs of one slot are live at once.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use coordinator_plugins::scheduler::{JobContext, JobError, JobSpec, Scheduler, SchedulerConfig};
use coordinator_runtime::CoordinatorRegistry;
use coordinator_store::LeaseStore;
use serde::Serialize;

use super::{fnv, paused_runtime, secs, FailOvers, LeaderWatch, Process, Stage, World};
use crate::store::Requests;
use crate::UNIX_BASE_MS;

const NAMESPACE: &str = "sim";
const JOB: &str = "tick";

/// A scheduler run.
#[derive(Clone, Debug, Serialize)]
pub struct SchedulerScenario {
    /// Workers, faults, clocks.
    pub world: World,
    /// Virtual time.
    pub duration: Duration,
    /// The leader is crashed or stopped (alternately) every this many
    /// seconds (uniform in the range).
    pub fail_over_every_secs: (u64, u64),
    /// How long a run takes.
    pub run_time: Duration,
}

impl SchedulerScenario {
    /// A per-minute job on `workers` workers for `hours`, chaos faults, a
    /// fail-over every 10–40 minutes, runs of 2 s.
    pub fn new(seed: u64, workers: usize, hours: u64) -> Self {
        Self {
            world: World::new(seed, workers),
            duration: Duration::from_secs(hours * 3600),
            fail_over_every_secs: (600, 2400),
            run_time: Duration::from_secs(2),
        }
    }
}

/// What a scheduler run found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SchedulerReport {
    /// The root seed.
    pub seed: u64,
    /// Slots that fell due (one per minute, the last two minutes excluded).
    pub slots: usize,
    /// Slots that ran (completed at least once).
    pub slots_completed: usize,
    /// Handler invocations (retries and take-overs included).
    pub runs: u64,
    /// Slots run more than once because a run was cut short or failed.
    pub slots_rerun: usize,
    /// Runs by a later term of a slot an earlier term completed but whose
    /// outcome was not recorded before that term ended (at least once).
    pub reruns_after_completion: u64,
    /// Fail-overs (crashes and graceful stops of the leader).
    pub fail_overs: u64,
    /// Distinct epochs that ran a slot.
    pub epochs: usize,
    /// Violations: a slot never run, a slot run again after it completed,
    /// two live runs of one slot.
    pub violations: Vec<String>,
    /// Store requests of everything (election, scheduler, history).
    pub requests: Requests,
    /// A hash of every store request in order, as
    /// [`SeededStore::trace_hash`](crate::runtime::SeededStore::trace_hash)
    /// gives it: two runs of one seed give the same.
    pub trace_hash: String,
    /// Leader-only requests per slot are not separable here: all requests
    /// divided by slots.
    pub requests_per_slot: f64,
    /// The longest time no one led.
    pub longest_leaderless_seconds: f64,
}

#[derive(Debug, Default)]
struct SlotLog {
    live: u32,
    invocations: u32,
    /// The epoch whose run completed, if one did.
    completed_by: Option<u64>,
}

#[derive(Default)]
struct Oracle {
    slots: BTreeMap<u64, SlotLog>,
    epochs: std::collections::BTreeSet<u64>,
    violations: Vec<String>,
    runs: u64,
    reruns_after_completion: u64,
}

type Shared = Arc<Mutex<Oracle>>;

fn lock(oracle: &Shared) -> std::sync::MutexGuard<'_, Oracle> {
    oracle.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Live {
    oracle: Shared,
    slot: u64,
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Some(log) = lock(&self.oracle).slots.get_mut(&self.slot) {
            log.live = log.live.saturating_sub(1);
        }
    }
}

fn config(seed: u64) -> SchedulerConfig {
    SchedulerConfig {
        reload_interval: Duration::from_secs(10),
        history_limit: 1_000,
        seed: Some(seed),
        ..SchedulerConfig::default()
    }
}

fn scheduler_on(
    registry: &CoordinatorRegistry,
    seed: u64,
    oracle: &Shared,
    run_time: Duration,
) -> Option<Scheduler> {
    let oracle = oracle.clone();
    let handler = move |ctx: JobContext| {
        let oracle = oracle.clone();
        async move {
            let Some(slot) = ctx.slot_unix_ms() else {
                return Ok(());
            };
            let live = {
                let mut o = lock(&oracle);
                o.runs += 1;
                o.epochs.insert(ctx.epoch());
                let log = o.slots.entry(slot).or_default();
                log.live += 1;
                log.invocations += 1;
                let (again, overlap) = (log.completed_by, log.live > 1);
                match again {
                    // The term that completed it ran it again: never
                    // allowed, the runner knew.
                    Some(epoch) if epoch == ctx.epoch() => o.violations.push(format!(
                        "slot {slot} ran again in epoch {epoch} (attempt {}) after it completed",
                        ctx.attempt()
                    )),
                    // A later term took over a run whose outcome was not
                    // recorded (at least once); counted, bounded by the
                    // test.
                    Some(_) => o.reruns_after_completion += 1,
                    None => {}
                }
                if overlap {
                    o.violations.push(format!(
                        "two live runs of slot {slot} (epoch {})",
                        ctx.epoch()
                    ));
                }
                Live {
                    oracle: oracle.clone(),
                    slot,
                }
            };
            tokio::time::sleep(run_time).await;
            // 1 in 20 attempts fails and is retried.
            if fnv(&format!("{slot}-{}", ctx.attempt())) % 20 == 7 {
                return Err(JobError::from("injected failure"));
            }
            let mut o = lock(&oracle);
            if let Some(log) = o.slots.get_mut(&slot) {
                log.completed_by = Some(ctx.epoch());
            }
            drop(o);
            drop(live);
            Ok(())
        }
    };
    Scheduler::builder(registry, NAMESPACE, "cron")
        .config(config(seed))
        .handler(JOB, handler)
        .build()
        .ok()
}

async fn start(
    stage: &Stage,
    slot: usize,
    life: u64,
    oracle: &Shared,
    run_time: Duration,
) -> Option<Process> {
    stage
        .start_plugin(slot, life, NAMESPACE, |registry, seed| {
            scheduler_on(registry, seed, oracle, run_time).map(|s| s.plugin())
        })
        .await
}

/// Runs `scenario` on a fresh paused runtime.
pub fn run_scheduler(scenario: &SchedulerScenario) -> SchedulerReport {
    paused_runtime().block_on(run(scenario.clone()))
}

async fn run(sc: SchedulerScenario) -> SchedulerReport {
    let stage = Stage::new(&sc.world, config(0).drift_tolerance);
    let mut report = SchedulerReport {
        seed: sc.world.seed,
        ..SchedulerReport::default()
    };
    let oracle: Shared = Arc::default();
    let memory: Arc<dyn LeaseStore> = Arc::new(stage.store.inner().clone());
    let (clock, _) = stage.worker_clock(usize::MAX, 0);
    let admin_registry = stage.oracle_registry(memory, clock);
    let admin = admin_registry
        .as_ref()
        .and_then(|r| scheduler_on(r, 0, &oracle, sc.run_time));
    let added = match &admin {
        Some(admin) => admin
            .add(JobSpec::new(JOB, "* * * * *"))
            .await
            .map_err(|e| e.to_string()),
        None => Err("the scheduler's configuration was refused".to_owned()),
    };
    if let Err(error) = added {
        report
            .violations
            .push(format!("cannot add the job: {error}"));
        return report;
    }
    let mut rng = stage.schedule();
    let mut processes: Vec<(usize, Process)> = Vec::new();
    let mut lives: Vec<u64> = vec![1; sc.world.workers];
    for slot in 0..sc.world.workers {
        if let Some(p) = start(&stage, slot, 0, &oracle, sc.run_time).await {
            processes.push((slot, p));
        }
    }
    let mut fail_overs = FailOvers::new(sc.fail_over_every_secs, stage.elapsed(), &mut rng);
    let mut watch = LeaderWatch::default();
    while stage.elapsed() < sc.duration {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = stage.elapsed();
        let leader = processes
            .iter()
            .position(|(_, p)| p.coordinator.is_leader());
        watch.observe(now, leader.is_some());
        let Some(slot) = fail_overs.due(now, leader, &mut processes, &mut rng).await else {
            continue;
        };
        let life = lives[slot];
        lives[slot] += 1;
        if let Some(p) = start(&stage, slot, life, &oracle, sc.run_time).await {
            processes.push((slot, p));
        }
    }
    report.fail_overs = fail_overs.count;
    let end_ms = UNIX_BASE_MS + u64::try_from(stage.elapsed().as_millis()).unwrap_or(0);
    watch.finish(stage.elapsed());
    for (_, p) in processes {
        p.stop().await;
    }
    // Every run has ended: take the oracle's findings out of the lock.
    let o = std::mem::take(&mut *lock(&oracle));
    let first = (UNIX_BASE_MS / 60_000 + 1) * 60_000;
    let expected: Vec<u64> = (0..)
        .map(|i| first + i * 60_000)
        .take_while(|&s| s + 120_000 < end_ms)
        .collect();
    report.slots = expected.len();
    let missing: Vec<u64> = expected
        .iter()
        .copied()
        .filter(|s| o.slots.get(s).is_none_or(|log| log.completed_by.is_none()))
        .collect();
    if let Some(first) = missing.first() {
        report.violations.push(format!(
            "{} slots never completed, the first at +{} s",
            missing.len(),
            (first - UNIX_BASE_MS) / 1000
        ));
        if let Some(admin) = &admin {
            let history = admin.history(JOB, 10_000).await.unwrap_or_default();
            for slot in missing.iter().take(5) {
                let record = history.iter().find(|r| r.slot_unix_ms == Some(*slot));
                report.violations.push(format!(
                    "slot +{} s: {} invocations; its record: {record:?}",
                    (slot - UNIX_BASE_MS) / 1000,
                    o.slots.get(slot).map_or(0, |l| l.invocations)
                ));
            }
        }
    }
    report
        .violations
        .extend(o.violations.iter().take(10).cloned());
    report.slots_completed = o
        .slots
        .values()
        .filter(|l| l.completed_by.is_some())
        .count();
    report.reruns_after_completion = o.reruns_after_completion;
    report.slots_rerun = o.slots.values().filter(|l| l.invocations > 1).count();
    report.runs = o.runs;
    report.epochs = o.epochs.len();
    report.requests = stage.store.requests();
    report.trace_hash = stage.store.trace_hash();
    report.requests_per_slot =
        crate::report::round3(report.requests.total() as f64 / report.slots.max(1) as f64);
    report.longest_leaderless_seconds = secs(watch.longest());
    report
}
