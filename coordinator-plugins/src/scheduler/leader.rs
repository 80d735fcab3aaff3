//! [`SchedulerPlugin`]: the leader's loop. Reads job definitions, claims
//! slots as they fall due, serves run-now requests, takes over runs cut
//! short by a fail-over, and trims history.

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;

use coordinator_core::Instant;
use coordinator_runtime::{
    CoordinatorPlugin, LeaderContext, PluginError, PluginScope, StepDownReason,
};
use coordinator_store::{LeaseStoreExt, Version};
use tokio::task::{JoinHandle, JoinSet};

use super::job::{Delivery, JobSpec, MissedRunPolicy, Schedule};
use super::record::{AttemptRecord, JobRecord, RunOutcome, SlotKind, SlotRecord};
use super::run::{Held, Released, Run};
use super::{SchedulerError, SchedulerInner, TARGET};
use crate::codec::{self, FORMAT};
use crate::delete::delete_write_once;
use crate::observe::{expiry_wait, Observations};
use crate::swap::{self, Attempts, Created, Swapped};

/// How often the leader trims old slots.
const GC_INTERVAL: Duration = Duration::from_secs(600);
/// Slots younger than this are never trimmed (no request can land that late).
const GC_MIN_AGE_MS: u64 = 3_600_000;

/// The scheduler's leader loop, as a [`CoordinatorPlugin`] named
/// `scheduler.<name>`. On becoming leader it spawns a task bound to the
/// term: every running job is cancelled when the term ends.
///
/// ```
/// use std::sync::Arc;
/// use coordinator_runtime::CoordinatorPlugin;
/// use coordinator_plugins::scheduler::Scheduler;
/// # let registry = coordinator_runtime::CoordinatorRegistry::new(
/// #     Arc::new(coordinator_store::MemoryStore::new()),
/// #     coordinator_runtime::CoordinatorConfig::default().with_worker_id("w1"),
/// # ).unwrap();
/// let scheduler = Scheduler::builder(&registry, "ns", "cron")
///     .build().unwrap();
/// assert_eq!(scheduler.plugin().name(), "scheduler.cron");
/// ```
pub struct SchedulerPlugin {
    inner: Arc<SchedulerInner>,
    name: String,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl SchedulerPlugin {
    pub(crate) fn new(inner: Arc<SchedulerInner>) -> Self {
        let name = format!("scheduler.{}", inner.name);
        Self {
            inner,
            name,
            task: Mutex::new(None),
        }
    }

    fn replace_task(&self, task: Option<JoinHandle<()>>) {
        let mut slot = self.task.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(old) = std::mem::replace(&mut *slot, task) {
            old.abort();
        }
    }
}

#[async_trait]
impl CoordinatorPlugin for SchedulerPlugin {
    fn name(&self) -> &str {
        &self.name
    }

    async fn on_become_coordinator(&self, ctx: LeaderContext) -> Result<(), PluginError> {
        let leader = Leader::new(self.inner.clone(), ctx.clone());
        let task = tokio::spawn(async move {
            tokio::select! {
                // In order: tokio picks a ready branch at random (seeded per
                // process), and a seed must replay a simulated run.
                biased;
                () = ctx.cancelled() => {}
                () = leader.run() => {}
            }
        });
        self.replace_task(Some(task));
        Ok(())
    }

    async fn on_stop_being_coordinator(&self, _reason: StepDownReason) -> Result<(), PluginError> {
        self.replace_task(None);
        Ok(())
    }

    fn scope(&self) -> Option<&PluginScope> {
        Some(&self.inner.scope)
    }
}

impl fmt::Debug for SchedulerPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchedulerPlugin")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// One job as the leader tracks it.
struct Tracked {
    version: Version,
    record: JobRecord,
    schedule: Option<Schedule>,
    /// The next slot to claim; `None` until the job is set up this term.
    next_due: Option<u64>,
    /// The last claim of `next_due` failed: it is not tried again before
    /// this instant (one tick later). Without the pause a claim that fails
    /// at once (a store refusing fast, or this term's deadline passed
    /// before its token fired) is retried in a busy loop that hammers the
    /// store, piles up claim attempts, and, under paused time, stops the
    /// clock that would end the term.
    retry_at: Option<Instant>,
}

/// A slot someone else was running when we looked.
struct Watched {
    job: String,
    version: Version,
    record: SlotRecord,
    /// Our take-over writes of it not known to have landed or not
    /// ([`crate::swap`]): one may be what the next look finds.
    attempts: Attempts<Slot>,
}

/// A slot record as we sent it, and the instant taken just before: what a
/// run needs should that write be the one that landed.
type Slot = (SlotRecord, Instant);

enum Claim {
    Claimed,
    Taken,
    Retry,
}

struct Leader {
    inner: Arc<SchedulerInner>,
    ctx: LeaderContext,
    /// Ordered, as every map here that is walked: the store requests go out
    /// in key order, so a seed replays a run.
    jobs: BTreeMap<String, Tracked>,
    watched: BTreeMap<String, Watched>,
    seen: Observations,
    runs: JoinSet<Released>,
    /// Slots a run of this term holds now.
    live: BTreeSet<String>,
    /// Slots to read, to watch those still marked running: key → job.
    unread: BTreeMap<String, String>,
    /// Slot claims whose answer was lost (throttled, unavailable,
    /// ambiguous): key → every claim sent for it. Claiming the slot again
    /// recognises one that landed as ours ([`crate::swap`]), instead of
    /// taking the slot for someone else's and leaving it unrun.
    pending: BTreeMap<String, Attempts<Slot>>,
}

impl Leader {
    fn new(inner: Arc<SchedulerInner>, ctx: LeaderContext) -> Self {
        Self {
            inner,
            ctx,
            jobs: BTreeMap::new(),
            watched: BTreeMap::new(),
            seen: Observations::default(),
            runs: JoinSet::new(),
            live: BTreeSet::new(),
            unread: BTreeMap::new(),
            pending: BTreeMap::new(),
        }
    }

    async fn run(mut self) {
        let inner = self.inner.clone();
        tracing::info!(target: TARGET, scheduler = %inner.name, epoch = self.ctx.epoch(), "scheduler leading");
        let mut next_reload = inner.clock.now();
        let mut next_gc = inner.clock.now() + GC_INTERVAL;
        loop {
            while let Some(ended) = self.runs.try_join_next() {
                self.watch_released(ended);
            }
            let now = inner.clock.now();
            if now >= next_reload {
                if let Err(error) = self.reload().await {
                    tracing::warn!(target: TARGET, scheduler = %inner.name, error = %error, "reloading jobs failed; retrying");
                }
                if let Err(error) = self.serve_requests().await {
                    tracing::warn!(target: TARGET, scheduler = %inner.name, error = %error, "serving run-now requests failed; retrying");
                }
                self.check_unread().await;
                self.check_watched().await;
                next_reload = inner.clock.now() + inner.config.reload_interval;
            }
            if now >= next_gc {
                self.trim_history().await;
                next_gc = inner.clock.now() + GC_INTERVAL;
            }
            self.claim_due().await;
            // Sleep until the next slot, the next reload, or one tick.
            let now_unix = inner.clock.unix_ms();
            let now = inner.clock.now();
            let mut wait = inner.config.tick;
            for tracked in self.jobs.values() {
                if let (true, Some(due)) = (tracked.record.enabled, tracked.next_due) {
                    let mut until = Duration::from_millis(due.saturating_sub(now_unix));
                    if let Some(at) = tracked.retry_at {
                        until = until.max(at.saturating_since(now));
                    }
                    wait = wait.min(until);
                }
            }
            wait = wait.min(next_reload.saturating_since(inner.clock.now()));
            tokio::select! {
                // In order: tokio picks a ready branch at random (seeded per
                // process), and a seed must replay a simulated run.
                biased;
                Some(ended) = self.runs.join_next(), if !self.runs.is_empty() => {
                    self.watch_released(ended);
                }
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Lists the job definitions; reads and (re)sets up changed ones.
    async fn reload(&mut self) -> Result<(), SchedulerError> {
        let inner = self.inner.clone();
        let prefix = inner.keys.jobs();
        let listed = inner
            .store
            .list(&prefix)
            .await
            .map_err(|e| SchedulerError::store("list jobs", &prefix, e))?;
        let mut present = Vec::new();
        for meta in listed {
            let Some(job) = inner.keys.job_of_key(&meta.key) else {
                continue;
            };
            present.push(job.clone());
            if self
                .jobs
                .get(&job)
                .is_some_and(|t| t.version == meta.version)
            {
                continue;
            }
            let Some((version, record)) = inner.read_job(&job).await? else {
                continue;
            };
            let schedule = match record.spec.parse_schedule() {
                Ok(schedule) => Some(schedule),
                Err(error) => {
                    tracing::error!(target: TARGET, scheduler = %inner.name, job = %job, error = %error, "job left unscheduled");
                    None
                }
            };
            let mut tracked = Tracked {
                version,
                record,
                schedule,
                next_due: None,
                retry_at: None,
            };
            if tracked.record.enabled && !tracked.record.removed {
                self.set_up(&job, &mut tracked).await?;
            }
            self.jobs.insert(job, tracked);
        }
        self.jobs.retain(|job, _| present.contains(job));
        Ok(())
    }

    /// Finds where a job's schedule stands (its newest slot) and claims what
    /// fell due since: on-time slots, and one missed slot under
    /// [`MissedRunPolicy::RunOnce`].
    async fn set_up(&mut self, job: &str, tracked: &mut Tracked) -> Result<(), SchedulerError> {
        let inner = self.inner.clone();
        let Some(schedule) = tracked.schedule.clone() else {
            return Ok(());
        };
        if !inner
            .handlers
            .contains_key(tracked.record.spec.handler_name())
        {
            tracing::error!(target: TARGET, scheduler = %inner.name, job, handler = tracked.record.spec.handler_name(),
                "no handler registered under this name on this worker; the job's slots are left for a leader that has it");
            return Ok(());
        }
        let prefix = inner.keys.slots(job);
        let slots = inner
            .store
            .list(&prefix)
            .await
            .map_err(|e| SchedulerError::store("list slots", &prefix, e))?;
        let newest = slots
            .iter()
            .filter_map(|m| inner.keys.slot_instant(job, &m.key))
            .max();
        // Runs cut short by an earlier term: watch every one still marked
        // running among the newest (history is trimmed to about this many,
        // and older slots were watched by the terms before).
        // They are read in the background (`check_unread`), so a failed read
        // neither delays this job's slots nor is forgotten.
        for meta in slots.iter().rev().take(inner.config.history_limit.max(3)) {
            self.unread.insert(meta.key.clone(), job.to_owned());
        }
        let spec = tracked.record.spec.clone();
        let now = inner.clock.unix_ms();
        let lower = newest.unwrap_or(0).max(tracked.record.active_since_unix_ms);
        let on_time_from = now.saturating_sub(crate::clock::ms(spec.late_tolerance));
        // The newest missed slot: the last one before the on-time window.
        let mut missed = None;
        let mut cursor = lower;
        if on_time_from > lower + 1 {
            if let Some(previous) = schedule.previous_before(on_time_from) {
                if previous > lower {
                    missed = Some(previous);
                    cursor = previous;
                }
            }
        }
        cursor = cursor.max(on_time_from.saturating_sub(1));
        tracked.next_due = schedule.next_after(cursor);
        if let (Some(slot), MissedRunPolicy::RunOnce) = (missed, spec.missed) {
            // A transient failure must not lose the catch-up run: the slot
            // stays due and the normal claiming takes it.
            if let Claim::Retry = self.claim_slot(job, &spec, slot, SlotKind::CatchUp).await {
                tracked.next_due = Some(slot);
                tracked.retry_at = Some(inner.clock.now() + inner.config.tick);
            }
        } else if let Some(slot) = missed {
            tracing::info!(target: TARGET, scheduler = %inner.name, job, slot_unix_ms = slot, "missed slots skipped");
            inner.count(crate::telemetry::Work::MissedSkipped);
        }
        Ok(())
    }

    /// Reads the slots [`set_up`](Self::set_up) left to check, several
    /// at a time; a slot whose read failed stays for the next round.
    async fn check_unread(&mut self) {
        const PARALLEL_READS: usize = 16;
        if self.unread.is_empty() {
            return;
        }
        let store = self.inner.store.clone();
        let keys: Vec<(String, String)> = self
            .unread
            .iter()
            .map(|(k, j)| (k.clone(), j.clone()))
            .collect();
        let mut reads = futures::stream::iter(keys)
            .map(|(key, job)| {
                let store = store.clone();
                async move {
                    let found = store.get(&key).await;
                    (key, job, found)
                }
            })
            .buffer_unordered(PARALLEL_READS);
        let mut results = Vec::new();
        while let Some(result) = reads.next().await {
            results.push(result);
        }
        for (key, job, found) in results {
            match found {
                Ok(found) => {
                    self.unread.remove(&key);
                    if let Some(found) = found {
                        self.watch_found(&job, &key, found);
                    }
                }
                Err(error) => {
                    tracing::debug!(target: TARGET, scheduler = %self.inner.name, key = %key, error = %error, "reading a slot failed; retrying");
                }
            }
        }
    }

    async fn watch_if_running(&mut self, job: &str, key: &str) -> Result<(), SchedulerError> {
        let inner = &self.inner;
        let Some(found) = inner
            .store
            .get(key)
            .await
            .map_err(|e| SchedulerError::store("read slot", key, e))?
        else {
            return Ok(());
        };
        self.watch_found(job, key, found);
        Ok(())
    }

    /// Watches `found` if it is marked running and no run of ours holds it.
    fn watch_found(&mut self, job: &str, key: &str, found: coordinator_store::StoredObject) {
        let inner = &self.inner;
        let Ok((record, _)) = codec::decode::<SlotRecord>(&found.body) else {
            return;
        };
        if record.running && !self.live.contains(key) {
            let now = inner.clock.now();
            self.seen.observe(key, &found.version, now);
            self.watched.insert(
                key.to_owned(),
                Watched {
                    job: job.to_owned(),
                    version: found.version,
                    record,
                    attempts: Attempts::new(),
                },
            );
        }
    }

    /// Watches a slot its runner gave up while this term lasts (a renewal
    /// or the outcome could not be written), to take it over once its
    /// lease lapses.
    fn watch_released(&mut self, ended: Result<Released, tokio::task::JoinError>) {
        let Ok(released) = ended else {
            return;
        };
        self.live.remove(&released.key);
        if !released.given_up {
            return;
        }
        let job = released.record.job.clone();
        self.seen
            .observe(&released.key, &released.version, self.inner.clock.now());
        tracing::info!(target: TARGET, scheduler = %self.inner.name, key = %released.key, "a run was given up; watching its slot to take it over");
        self.watched.insert(
            released.key,
            Watched {
                job,
                version: released.version,
                record: released.record,
                attempts: Attempts::new(),
            },
        );
    }

    /// Claims every enabled job's slots that are due now, except those
    /// whose last claim failed less than a tick ago.
    async fn claim_due(&mut self) {
        let now = self.inner.clock.unix_ms();
        let now_clock = self.inner.clock.now();
        let due: Vec<(String, JobSpec, u64)> = self
            .jobs
            .iter()
            .filter(|(_, t)| t.record.enabled && !t.record.removed)
            .filter(|(_, t)| t.retry_at.is_none_or(|at| at <= now_clock))
            .filter_map(|(job, t)| {
                t.next_due
                    .filter(|&d| d <= now)
                    .map(|d| (job.clone(), t.record.spec.clone(), d))
            })
            .collect();
        for (job, spec, slot) in due {
            match self
                .claim_slot(&job, &spec, slot, SlotKind::Scheduled)
                .await
            {
                Claim::Retry => {
                    if let Some(tracked) = self.jobs.get_mut(&job) {
                        tracked.retry_at = Some(self.inner.clock.now() + self.inner.config.tick);
                    }
                }
                Claim::Claimed | Claim::Taken => {
                    if let Some(tracked) = self.jobs.get_mut(&job) {
                        tracked.next_due =
                            tracked.schedule.as_ref().and_then(|s| s.next_after(slot));
                        tracked.retry_at = None;
                    }
                }
            }
        }
    }

    fn slot_record(&self, spec: &JobSpec, kind: SlotKind, slot_unix_ms: Option<u64>) -> SlotRecord {
        SlotRecord {
            format: FORMAT,
            job: spec.name.clone(),
            kind,
            slot_unix_ms,
            nonce: self.inner.rng.token(),
            lease_ms: crate::clock::ms(self.inner.config.run_lease),
            running: true,
            outcome: None,
            attempts: vec![AttemptRecord {
                attempt: 1,
                worker: self.ctx.worker_id().to_string(),
                epoch: self.ctx.epoch(),
                start_unix_ms: self.inner.clock.unix_ms(),
                end_unix_ms: None,
                outcome: None,
            }],
        }
    }

    /// Creates a scheduled slot's object (the claim) and starts its run.
    async fn claim_slot(&mut self, job: &str, spec: &JobSpec, slot: u64, kind: SlotKind) -> Claim {
        let key = self.inner.keys.scheduled_slot(job, slot);
        let record = self.slot_record(spec, kind, Some(slot));
        self.create_and_run(spec, key, record).await
    }

    async fn create_and_run(&mut self, spec: &JobSpec, key: String, record: SlotRecord) -> Claim {
        let inner = self.inner.clone();
        let Some(handler) = inner.handlers.get(spec.handler_name()).cloned() else {
            return Claim::Retry;
        };
        let body = match codec::encode(&record, None) {
            Ok(body) => body,
            Err(_) => return Claim::Retry,
        };
        if !self.ctx.is_valid() {
            return Claim::Retry;
        }
        let started: Instant = inner.clock.now();
        // Our own create that landed (applied by a hidden retry, or under
        // an answer that was lost) is ours, whichever attempt it was
        // (crate::swap).
        let mut attempts = self.pending.remove(&key).unwrap_or_default();
        let created = swap::create(
            inner.store.as_ref(),
            &mut attempts,
            &key,
            body,
            (record, started),
        )
        .await;
        let (version, (record, written_at)) = match created {
            Ok(Created::Written(landed)) => (landed.version, landed.ours),
            Ok(Created::Taken) => {
                tracing::debug!(target: TARGET, scheduler = %inner.name, key = %key, "slot already claimed");
                return Claim::Taken;
            }
            Err(error) => {
                tracing::warn!(target: TARGET, scheduler = %inner.name, key = %key, error = %error, "claiming a slot failed; retrying");
                self.pending.insert(key, attempts);
                return Claim::Retry;
            }
        };
        tracing::info!(target: TARGET, scheduler = %inner.name, job = %spec.name, key = %key, epoch = self.ctx.epoch(), "slot claimed");
        self.start_run(spec.clone(), handler, key, version, record, written_at);
        Claim::Claimed
    }

    /// Starts the run of a slot this term holds.
    fn start_run(
        &mut self,
        spec: JobSpec,
        handler: Arc<dyn super::handler::JobHandler>,
        key: String,
        version: Version,
        record: SlotRecord,
        written_at: Instant,
    ) {
        let run = Run::new(
            self.inner.clone(),
            self.ctx.clone(),
            spec,
            handler,
            Held {
                key,
                version,
                record,
                written_at,
            },
        );
        self.live.insert(run.key.clone());
        self.runs.spawn(run.execute());
    }

    /// Serves run-now requests: one manual slot per request id.
    async fn serve_requests(&mut self) -> Result<(), SchedulerError> {
        let inner = self.inner.clone();
        let prefix = inner.keys.requests();
        let listed = inner
            .store
            .list(&prefix)
            .await
            .map_err(|e| SchedulerError::store("list requests", &prefix, e))?;
        for meta in listed {
            let Some((job, id)) = inner.keys.parse_request(&meta.key) else {
                continue;
            };
            let Some(spec) = self
                .jobs
                .get(&job)
                .filter(|t| !t.record.removed)
                .map(|t| t.record.spec.clone())
            else {
                continue;
            };
            let key = inner.keys.manual_slot(&job, &id);
            let record = self.slot_record(&spec, SlotKind::Manual, None);
            match self.create_and_run(&spec, key, record).await {
                Claim::Retry => continue,
                Claim::Claimed | Claim::Taken => {
                    if self.ctx.is_valid() {
                        let _ =
                            delete_write_once(inner.store.as_ref(), &meta.key, &meta.version).await;
                    }
                }
            }
        }
        Ok(())
    }

    /// Takes over (at least once) or closes (at most once) runs whose lease
    /// lapsed on this leader's clock.
    async fn check_watched(&mut self) {
        let inner = self.inner.clone();
        let keys: Vec<String> = self.watched.keys().cloned().collect();
        for key in keys {
            let Some(watched) = self.watched.get(&key) else {
                continue;
            };
            let found = match inner.store.get_if_changed(&key, &watched.version).await {
                Ok(coordinator_store::Conditional::Unchanged) => None,
                Ok(coordinator_store::Conditional::Changed(found)) => Some(Some(found)),
                Ok(coordinator_store::Conditional::Absent) => Some(None),
                Err(_) => continue,
            };
            match found {
                Some(None) => {
                    self.watched.remove(&key);
                    self.seen.forget(&key);
                    continue;
                }
                Some(Some(found)) => {
                    // Our take-over, answered 503/429 or ambiguously, that
                    // landed: the slot is ours (crate::swap).
                    let ours = self
                        .watched
                        .get_mut(&key)
                        .and_then(|w| w.attempts.recognise(&found.body));
                    if let Some((record, written_at)) = ours {
                        if let Some(watched) = self.watched.remove(&key) {
                            self.seen.forget(&key);
                            self.took_over(&watched.job, key, found.version, record, written_at);
                        }
                        continue;
                    }
                    match codec::decode::<SlotRecord>(&found.body) {
                        Ok((record, _)) if record.running => {
                            self.seen.observe(&key, &found.version, inner.clock.now());
                            if let Some(w) = self.watched.get_mut(&key) {
                                w.version = found.version;
                                w.record = record;
                                // Someone else's version: none of ours can
                                // land over it.
                                w.attempts.clear();
                            }
                            continue;
                        }
                        _ => {
                            self.watched.remove(&key);
                            self.seen.forget(&key);
                            continue;
                        }
                    }
                }
                None => {}
            }
            let Some(watched) = self.watched.get(&key) else {
                continue;
            };
            let lease = Duration::from_millis(watched.record.lease_ms);
            let unchanged = self.seen.observe(&key, &watched.version, inner.clock.now());
            if unchanged
                < expiry_wait(
                    lease,
                    inner.config.drift_tolerance,
                    inner.config.recovery_grace,
                )
            {
                continue;
            }
            let Some(watched) = self.watched.remove(&key) else {
                continue;
            };
            self.take_over(key, watched).await;
        }
    }

    /// Writes the take-over of a slot whose lease lapsed: the next attempt
    /// (at least once) or the slot closed as abandoned (at most once, or no
    /// attempt left).
    async fn take_over(&mut self, key: String, mut watched: Watched) {
        let inner = self.inner.clone();
        let Some(spec) = self.jobs.get(&watched.job).map(|t| t.record.spec.clone()) else {
            self.seen.forget(&key);
            return;
        };
        let mut record = watched.record.clone();
        let attempts = record.last_attempt();
        let now = inner.clock.unix_ms();
        if let Some(last) = record.attempts.last_mut() {
            last.end_unix_ms.get_or_insert(now);
            last.outcome.get_or_insert(RunOutcome::Abandoned {
                reason: "cut short by a fail-over".into(),
            });
        }
        let rerun =
            spec.delivery == Delivery::AtLeastOnce && spec.retry.has_attempt_after(attempts);
        if rerun {
            record.push_attempt(AttemptRecord {
                attempt: attempts + 1,
                worker: self.ctx.worker_id().to_string(),
                epoch: self.ctx.epoch(),
                start_unix_ms: now,
                end_unix_ms: None,
                outcome: None,
            });
        } else {
            record.running = false;
            record.outcome = Some(RunOutcome::Abandoned {
                reason: if spec.delivery == Delivery::AtMostOnce {
                    "cut short by a fail-over; at most once, so not run again".into()
                } else {
                    "cut short by a fail-over after its last attempt".into()
                },
            });
        }
        record.nonce = inner.rng.token();
        let Ok(body) = codec::encode(&record, None) else {
            self.seen.forget(&key);
            return;
        };
        if !self.ctx.is_valid() {
            return;
        }
        let started = inner.clock.now();
        // Our own write that landed unseen counts as written, this one or
        // an earlier take-over of this slot (crate::swap).
        let swapped = swap::swap(
            inner.store.as_ref(),
            &mut watched.attempts,
            &key,
            &watched.version,
            body,
            (record, started),
        )
        .await;
        match swapped {
            Ok(Swapped::Written(landed)) => {
                self.seen.forget(&key);
                let (record, written_at) = landed.ours;
                self.took_over(&watched.job, key, landed.version, record, written_at);
            }
            // Someone else's version: read it again and keep watching while
            // it is marked running and no run of ours holds it.
            Ok(Swapped::Changed(_)) => {
                self.seen.forget(&key);
                tracing::debug!(target: TARGET, scheduler = %inner.name, key = %key, "the slot changed before the take-over; watching it again");
                let _ = self.watch_if_running(&watched.job, &key).await;
            }
            // Unknown, and it may land: keep watching the version we hold,
            // with the attempt, so the next look (now, the lease having
            // lapsed) writes again or finds our write.
            Err(error) => {
                tracing::debug!(target: TARGET, scheduler = %inner.name, key = %key, error = %error, "taking over a run failed; trying again");
                self.watched.insert(key, watched);
            }
        }
    }

    /// A take-over of ours is in the store at `version`: start the run it
    /// records, or, if it closed the slot, say so.
    fn took_over(
        &mut self,
        job: &str,
        key: String,
        version: Version,
        record: SlotRecord,
        written_at: Instant,
    ) {
        let inner = self.inner.clone();
        if !record.running {
            tracing::info!(target: TARGET, scheduler = %inner.name, key = %key, "run cut short by a fail-over closed as abandoned");
            return;
        }
        let Some(spec) = self.jobs.get(job).map(|t| t.record.spec.clone()) else {
            return;
        };
        let Some(handler) = inner.handlers.get(spec.handler_name()).cloned() else {
            return;
        };
        tracing::info!(target: TARGET, scheduler = %inner.name, key = %key, epoch = self.ctx.epoch(), "run cut short by a fail-over taken over");
        self.start_run(spec, handler, key, version, record, written_at);
    }

    /// Deletes finished slots beyond the history limit once they are an
    /// hour old; the newest scheduled slot is always kept (it marks where
    /// the schedule stands).
    async fn trim_history(&mut self) {
        let inner = self.inner.clone();
        let now = inner.clock.unix_ms();
        let jobs: Vec<String> = self.jobs.keys().cloned().collect();
        for job in jobs {
            let prefix = inner.keys.slots(&job);
            let Ok(slots) = inner.store.list(&prefix).await else {
                continue;
            };
            let excess = slots.len().saturating_sub(inner.config.history_limit);
            let newest = slots
                .iter()
                .filter_map(|m| inner.keys.slot_instant(&job, &m.key))
                .max();
            for meta in slots.iter().take(excess) {
                let instant = inner.keys.slot_instant(&job, &meta.key);
                let old = instant.is_some_and(|at| at + GC_MIN_AGE_MS < now);
                // A slot still running (ours, or watched for a take-over)
                // is rewritten by its renewals: never trimmed.
                let busy = self.live.contains(&meta.key) || self.watched.contains_key(&meta.key);
                if !old || busy || instant == newest || !self.ctx.is_valid() {
                    continue;
                }
                let _ = delete_write_once(inner.store.as_ref(), &meta.key, &meta.version).await;
            }
        }
    }
}

impl Schedule {
    /// The last slot strictly before `unix_ms`.
    pub(crate) fn previous_before(&self, unix_ms: u64) -> Option<u64> {
        self.previous_before_impl(unix_ms)
    }
}
