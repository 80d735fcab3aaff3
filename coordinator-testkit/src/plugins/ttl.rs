//! The TTL expirer under fail-overs, store faults and wall-clock skew:
//! every record expires, never before its expiry on the true clock, and
//! within its bucket width plus one sweep interval plus the time no one
//! led (and the skew allowance).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use coordinator_plugins::ttl::{
    CallbackError, ExpiredRecord, Expiry, ExpiryAction, Ttl, TtlConfig,
};
use coordinator_runtime::{Clock, CoordinatorRegistry};
use coordinator_store::LeaseStore;
use serde::Serialize;

use super::{paused_runtime, secs, FailOvers, LeaderWatch, Process, Stage, World};
use crate::store::Requests;
use crate::UNIX_BASE_MS;

const NAMESPACE: &str = "sim";
/// Time the sweep's own requests may take, in the bound.
const SWEEP_WORK: Duration = Duration::from_secs(1);

/// A TTL run.
#[derive(Clone, Debug, Serialize)]
pub struct TtlScenario {
    /// Workers, faults, clocks.
    pub world: World,
    /// Records registered at the start, expiring 1 s to `spread` later.
    pub records: usize,
    /// The latest expiry, from the start.
    pub spread: Duration,
    /// One record in this many is refreshed (30 minutes more) a minute
    /// before it would expire.
    pub refresh_one_in: u64,
    /// The leader is crashed or stopped (alternately) every this many
    /// seconds (uniform in the range).
    pub fail_over_every_secs: (u64, u64),
    /// Lateness allowed beyond the bound: with store faults, each failed
    /// attempt at a record costs one more sweep interval.
    pub late_allowance: Duration,
}

impl TtlScenario {
    /// `records` records over 2 hours on `workers` workers, chaos faults
    /// (lateness allowed: four sweep intervals), wall clocks off by up to
    /// 0.9 s (within the 1 s default margin), a fail-over every 10–40
    /// minutes.
    pub fn new(seed: u64, workers: usize, records: usize) -> Self {
        let mut world = World::new(seed, workers);
        world.wall_skew = Duration::from_millis(900);
        Self {
            world,
            records,
            spread: Duration::from_secs(2 * 3600),
            refresh_one_in: 10,
            fail_over_every_secs: (600, 2400),
            late_allowance: 4 * config(0).sweep_interval,
        }
    }
}

/// What a TTL run found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TtlReport {
    /// The root seed.
    pub seed: u64,
    /// Records registered.
    pub records: usize,
    /// Records refreshed before they expired.
    pub refreshed: usize,
    /// Records whose callback ran at least once.
    pub expired: usize,
    /// Callbacks that ran again for a record (at least once: a term ended
    /// between the callback and the record's removal).
    pub duplicate_callbacks: u64,
    /// The latest first callback after its record's expiry, seconds.
    pub worst_lateness_seconds: f64,
    /// The bound a record may not exceed without leaderless time: the
    /// bucket width plus one sweep interval plus the margin and the skew,
    /// plus a second for the sweep's own requests.
    pub bound_seconds: f64,
    /// What a record may take longer when a term ended while it waited:
    /// one sweep interval (the ended term's sweep is redone).
    pub takeover_allowance_seconds: f64,
    /// Records later than the bound with a change of term in the way.
    pub late_after_a_term_change: u64,
    /// The worst lateness beyond that bound (or the bound plus the
    /// take-over allowance, with a change of term in the way), after subtracting the time no
    /// one led while the record waited (0 without store faults; at most
    /// the scenario's `late_allowance` with them).
    pub worst_excess_seconds: f64,
    /// Fail-overs the scenario caused.
    pub fail_overs: u64,
    /// Changes of the leading epoch seen (fail-overs, and step-downs the
    /// store's faults caused).
    pub term_changes: usize,
    /// Violations: a callback before expiry, a record never expired, one
    /// expired later than the bound allows.
    pub violations: Vec<String>,
    /// Store requests of everything.
    pub requests: Requests,
    /// A hash of every store request in order, as
    /// [`SeededStore::trace_hash`](crate::runtime::SeededStore::trace_hash)
    /// gives it: two runs of one seed give the same.
    pub trace_hash: String,
    /// `requests.total() / records`.
    pub requests_per_expiry: f64,
    /// The longest time no one led.
    pub longest_leaderless_seconds: f64,
}

type Log = Arc<Mutex<HashMap<String, Vec<u64>>>>;

fn config(seed: u64) -> TtlConfig {
    TtlConfig {
        bucket_width: Duration::from_secs(60),
        sweep_interval: Duration::from_secs(10),
        action: ExpiryAction::Callback,
        seed: Some(seed),
        ..TtlConfig::default()
    }
}

fn true_unix_ms(stage: &Stage) -> u64 {
    UNIX_BASE_MS + u64::try_from(stage.elapsed().as_millis()).unwrap_or(0)
}

fn ttl_on(
    registry: &CoordinatorRegistry,
    seed: u64,
    log: &Log,
    origin: tokio::time::Instant,
) -> Option<Ttl> {
    let log = log.clone();
    let callback = move |record: ExpiredRecord| {
        let at = UNIX_BASE_MS + u64::try_from(origin.elapsed().as_millis()).unwrap_or(0);
        log.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(record.key)
            .or_default()
            .push(at);
        std::future::ready(Ok::<(), CallbackError>(()))
    };
    Ttl::builder(registry, NAMESPACE, "sessions")
        .config(config(seed))
        .callback(callback)
        .build()
        .ok()
}

async fn start(
    stage: &Stage,
    slot: usize,
    life: u64,
    log: &Log,
    origin: tokio::time::Instant,
) -> Option<Process> {
    stage
        .start_plugin(slot, life, NAMESPACE, |registry, seed| {
            ttl_on(registry, seed, log, origin).map(|ttl| ttl.sweeper())
        })
        .await
}

/// Runs `scenario` on a fresh paused runtime.
pub fn run_ttl(scenario: &TtlScenario) -> TtlReport {
    paused_runtime().block_on(run(scenario.clone()))
}

async fn run(sc: TtlScenario) -> TtlReport {
    let origin = tokio::time::Instant::now();
    let stage = Stage::new(&sc.world, config(0).drift_tolerance);
    let cfg = config(0);
    let mut report = TtlReport {
        seed: sc.world.seed,
        records: sc.records,
        ..TtlReport::default()
    };
    let log: Log = Arc::default();
    // Registrations and refreshes go through a handle on the true clock,
    // without faults: what is checked is the expirer.
    let memory: Arc<dyn LeaseStore> = Arc::new(stage.store.inner().clone());
    let clock: Arc<dyn Clock> =
        Arc::new(crate::runtime::DriftClock::new(crate::PPM, 0).with_run_start(origin));
    let client_registry = stage.oracle_registry(memory, clock);
    let Some(client) = client_registry
        .as_ref()
        .and_then(|r| ttl_on(r, 0, &log, origin))
    else {
        report
            .violations
            .push("the TTL configuration was refused".to_owned());
        return report;
    };
    let mut rng = stage.schedule();
    let spread_ms = u64::try_from(sc.spread.as_millis())
        .unwrap_or(u64::MAX)
        .max(1_000);
    let mut expiry: HashMap<String, u64> = HashMap::new();
    let mut refreshes: Vec<(u64, String)> = Vec::new();
    for i in 0..sc.records {
        let key = format!("session/{i}");
        let after = Duration::from_millis(1_000 + rng.below(spread_ms - 1_000));
        match client.put(&key, "payload", Expiry::After(after)).await {
            Ok(reg) => {
                if sc.refresh_one_in > 0
                    && rng.below(sc.refresh_one_in) == 0
                    && reg.expires_at_unix_ms > true_unix_ms(&stage) + 120_000
                {
                    refreshes.push((reg.expires_at_unix_ms - 60_000, key.clone()));
                }
                expiry.insert(key, reg.expires_at_unix_ms);
            }
            Err(error) => {
                report
                    .violations
                    .push(format!("cannot register {key}: {error}"));
                return report;
            }
        }
    }
    refreshes.sort();
    refreshes.reverse();
    let mut processes: Vec<(usize, Process)> = Vec::new();
    let mut lives: Vec<u64> = vec![1; sc.world.workers];
    for slot in 0..sc.world.workers {
        if let Some(p) = start(&stage, slot, 0, &log, origin).await {
            processes.push((slot, p));
        }
    }
    let mut fail_overs = FailOvers::new(sc.fail_over_every_secs, stage.elapsed(), &mut rng);
    let mut watch = LeaderWatch::default();
    // When the leading epoch changed (fail-overs, and step-downs the
    // store's faults caused).
    let mut term_changes: Vec<Duration> = Vec::new();
    let mut last_epoch = 0;
    let last_expiry = || expiry.values().copied().max().unwrap_or(0);
    let mut end = last_expiry() + 300_000;
    while true_unix_ms(&stage) < end {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = stage.elapsed();
        let leader = processes
            .iter()
            .position(|(_, p)| p.coordinator.is_leader());
        watch.observe(now, leader.is_some());
        if let Some(i) = leader {
            let epoch = processes[i].1.coordinator.epoch();
            if epoch != last_epoch {
                if last_epoch != 0 {
                    term_changes.push(now);
                }
                last_epoch = epoch;
            }
        }
        while refreshes
            .last()
            .is_some_and(|(at, _)| *at <= true_unix_ms(&stage))
        {
            let Some((_, key)) = refreshes.pop() else {
                break;
            };
            match client
                .refresh(&key, Expiry::After(Duration::from_secs(1800)))
                .await
            {
                Ok(reg) => {
                    expiry.insert(key, reg.expires_at_unix_ms);
                    report.refreshed += 1;
                    end = end.max(reg.expires_at_unix_ms + 300_000);
                }
                Err(error) => report
                    .violations
                    .push(format!("cannot refresh {key}: {error}")),
            }
        }
        let Some(slot) = fail_overs.due(now, leader, &mut processes, &mut rng).await else {
            continue;
        };
        let life = lives[slot];
        lives[slot] += 1;
        if let Some(p) = start(&stage, slot, life, &log, origin).await {
            processes.push((slot, p));
        }
    }
    report.fail_overs = fail_overs.count;
    watch.finish(stage.elapsed());
    report.term_changes = term_changes.len();
    for (_, p) in processes {
        p.stop().await;
    }
    // The sweep's own requests (listing a bucket, re-reading and acting on
    // each record, S3-like latency) take time too.
    let bound = cfg.bucket_width
        + cfg.sweep_interval
        + cfg.clock_skew_margin
        + sc.world.wall_skew
        + SWEEP_WORK;
    report.bound_seconds = secs(bound);
    let bound_ms = u64::try_from(bound.as_millis()).unwrap_or(u64::MAX);
    // A term that ends mid-sweep leaves the rest of that sweep to the next
    // leader, which takes over its callback claims at once (same
    // election) and sweeps when its term begins.
    let takeover = cfg.sweep_interval;
    report.takeover_allowance_seconds = secs(takeover);
    let takeover_ms = u64::try_from(takeover.as_millis()).unwrap_or(u64::MAX);
    let log = log.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let mut early = Vec::new();
    let mut never = Vec::new();
    let mut late = Vec::new();
    let mut keys: Vec<&String> = expiry.keys().collect();
    keys.sort();
    for key in keys {
        let at = expiry[key];
        let Some(acted) = log.get(key) else {
            never.push(key.clone());
            continue;
        };
        report.expired += 1;
        report.duplicate_callbacks += acted.len().saturating_sub(1) as u64;
        if let Some(&first_early) = acted.iter().find(|&&t| t < at) {
            early.push(format!("{key} {} ms early", at - first_early));
        }
        let first = acted.iter().copied().min().unwrap_or(at);
        let lateness = first.saturating_sub(at);
        let to_run = |ms: u64| Duration::from_millis(ms - UNIX_BASE_MS);
        let leaderless = watch.leaderless_within(to_run(at), to_run(first.max(at)));
        // A term that ended while the record waited: the next leader
        // redoes the sweep (and takes over the claim at once).
        let term_ended_in_the_way = term_changes
            .iter()
            .any(|&c| c + bound >= to_run(at) && c <= to_run(first.max(at)));
        let allowed = if term_ended_in_the_way {
            bound_ms + takeover_ms
        } else {
            bound_ms
        };
        let excess = lateness
            .saturating_sub(u64::try_from(leaderless.as_millis()).unwrap_or(0))
            .saturating_sub(allowed);
        report.worst_lateness_seconds = report.worst_lateness_seconds.max(lateness as f64 / 1000.0);
        report.worst_excess_seconds = report.worst_excess_seconds.max(excess as f64 / 1000.0);
        if term_ended_in_the_way && lateness > bound_ms {
            report.late_after_a_term_change += 1;
        }
        if excess > u64::try_from(sc.late_allowance.as_millis()).unwrap_or(u64::MAX) {
            late.push(format!("{key} {excess} ms later than allowed"));
        }
    }
    for (what, list) in [
        ("expired early", &early),
        ("never expired", &never),
        ("late", &late),
    ] {
        if let Some(first) = list.first() {
            report
                .violations
                .push(format!("{} records {what}, e.g. {first}", list.len()));
        }
    }
    report.requests = stage.store.requests();
    report.trace_hash = stage.store.trace_hash();
    report.requests_per_expiry =
        crate::report::round3(report.requests.total() as f64 / sc.records.max(1) as f64);
    report.longest_leaderless_seconds = secs(watch.longest());
    report
}
