//! Running one claimed slot: attempts with timeout and back-off, the slot's
//! lease renewed while the job runs, and the outcome recorded.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use coordinator_core::Instant;
use coordinator_runtime::LeaderContext;
use coordinator_store::{StoreError, Version};

use super::handler::{JobContext, JobHandler};
use super::job::{Delivery, JobSpec};
use super::record::{AttemptRecord, RunOutcome, SlotRecord};
use super::{SchedulerInner, TARGET};
use crate::codec;
use crate::swap::{self, Attempts, Swapped};
use crate::telemetry::Work;

/// A slot this leader holds.
pub(crate) struct Run {
    pub(crate) inner: Arc<SchedulerInner>,
    pub(crate) ctx: LeaderContext,
    pub(crate) spec: JobSpec,
    pub(crate) handler: Arc<dyn JobHandler>,
    pub(crate) key: String,
    pub(crate) version: Version,
    pub(crate) record: SlotRecord,
    /// The runner's own deadline on the slot (ms on the clock): the instant
    /// before its last successful write, plus the lease.
    pub(crate) lease_deadline: Arc<AtomicU64>,
    /// Our writes of the slot not known to have landed or not, each with
    /// the instant taken just before it was sent: a renewal answered
    /// 503/429 or ambiguously, or dropped in flight when the job ended,
    /// may land, and the next write then meets it ([`crate::swap`]).
    attempts: Attempts<Instant>,
}

/// A slot just claimed or taken over: its key, the version written, the
/// record, and the instant taken just before that write.
pub(crate) struct Held {
    pub(crate) key: String,
    pub(crate) version: Version,
    pub(crate) record: SlotRecord,
    pub(crate) written_at: Instant,
}

/// How many times [`Run::write`] writes again after adopting a version.
const ADOPT_ROUNDS: usize = 4;

/// How one compare-and-swap of a run ended.
enum Written {
    Done,
    /// Not applied, or an earlier write of ours was there: write again
    /// from the version now there.
    Adopted,
    Lost,
}

/// A slot whose run ended, as last written.
pub(crate) struct Released {
    /// Given up while the term lasts, still marked running: to be watched.
    pub(crate) given_up: bool,
    pub(crate) key: String,
    pub(crate) version: Version,
    pub(crate) record: SlotRecord,
}

/// Why a run stopped without recording an outcome.
enum Stop {
    Lost(&'static str),
}

impl Run {
    pub(crate) fn new(
        inner: Arc<SchedulerInner>,
        ctx: LeaderContext,
        spec: JobSpec,
        handler: Arc<dyn JobHandler>,
        held: Held,
    ) -> Self {
        let deadline = held.written_at + inner.config.run_lease;
        Self {
            inner,
            ctx,
            spec,
            handler,
            key: held.key,
            version: held.version,
            record: held.record,
            lease_deadline: Arc::new(AtomicU64::new(deadline.as_millis())),
            attempts: Attempts::new(),
        }
    }

    fn lease_valid(&self) -> bool {
        self.inner.clock.now().as_millis() < self.lease_deadline.load(Ordering::Acquire)
    }

    /// Writes the record (compare-and-swap on our version): a renewal.
    /// `Ok(false)` if the slot changed (someone took it over).
    async fn write(&mut self) -> Result<bool, StoreError> {
        // Write again after adopting the version there (ours), a few times:
        // each round is a store error or a late write of ours, and the
        // lease check in `write_once` ends the loop once the lease is gone.
        for _ in 0..ADOPT_ROUNDS {
            match self.write_once().await? {
                Written::Done => return Ok(true),
                Written::Lost => return Ok(false),
                Written::Adopted => {}
            }
        }
        // Not lost, not written: a transient failure for the caller.
        Err(StoreError::Unavailable {
            key: self.key.clone(),
            backend: self.inner.backend(),
            source: format!("{ADOPT_ROUNDS} writes in a row neither applied nor refused").into(),
        })
    }

    async fn write_once(&mut self) -> Result<Written, StoreError> {
        let inner = &self.inner;
        if !self.ctx.is_valid() || !self.lease_valid() {
            return Ok(Written::Lost);
        }
        self.record.nonce = inner.rng.token();
        let body = match codec::encode(&self.record, None) {
            Ok(body) => body,
            Err(reason) => {
                return Err(StoreError::Backend {
                    op: "encode",
                    key: self.key.clone(),
                    backend: inner.backend(),
                    source: reason.into(),
                })
            }
        };
        let started = inner.clock.now();
        // A conflict may be a write of ours: this one, applied by a retry
        // the client library hid (the first reply was lost), or an earlier
        // one that landed late (answered 503/429 or ambiguously, or a
        // renewal dropped in flight when the job ended). Nonces make our
        // bodies ours alone, so a re-read tells (crate::swap).
        let swapped = swap::swap(
            inner.store.as_ref(),
            &mut self.attempts,
            &self.key,
            &self.version,
            body,
            started,
        )
        .await;
        match swapped {
            Ok(Swapped::Written(landed)) => {
                // The lease counts from before the write that landed.
                self.version = landed.version;
                self.lease_deadline.store(
                    (landed.ours + inner.config.run_lease).as_millis(),
                    Ordering::Release,
                );
                // An earlier write of ours, older than what we mean to
                // write now: write again over it.
                Ok(if landed.latest {
                    Written::Done
                } else {
                    Written::Adopted
                })
            }
            Ok(Swapped::Changed(_)) => Ok(Written::Lost),
            // Not applied, perhaps not yet (the version we hold is still
            // there): write again; this attempt stays recognised.
            Err(StoreError::Conflict { .. } | StoreError::Ambiguous { .. }) => Ok(Written::Adopted),
            Err(error) => Err(error),
        }
    }

    /// Renews the slot every third of the lease until it is lost.
    async fn keep_alive(&mut self) -> Stop {
        let every = self.inner.config.run_lease / 3;
        loop {
            tokio::time::sleep(every).await;
            match self.write().await {
                Ok(true) => {}
                Ok(false) => return Stop::Lost("the slot was taken over or the term ended"),
                Err(error) => {
                    tracing::warn!(target: TARGET, key = %self.key, error = %error, "could not renew a running slot");
                }
            }
            if !self.lease_valid() {
                return Stop::Lost("the slot's lease ran out on this worker");
            }
        }
    }

    fn now_unix(&self) -> u64 {
        self.inner.clock.unix_ms()
    }

    fn end_attempt(&mut self, outcome: RunOutcome) {
        let now = self.now_unix();
        if let Some(last) = self.record.attempts.last_mut() {
            last.end_unix_ms = Some(now);
            last.outcome = Some(outcome);
        }
    }

    /// Runs the slot's attempts to an outcome (or until the slot or the
    /// term is lost). Says whether the slot was given up while the term
    /// lasts, so the leader watches it and takes it over once its lease
    /// lapses (nothing is left running with no runner).
    pub(crate) async fn execute(mut self) -> Released {
        self.attempts().await;
        Released {
            given_up: self.record.running && self.ctx.is_valid(),
            key: self.key,
            version: self.version,
            record: self.record,
        }
    }

    async fn attempts(&mut self) {
        loop {
            let attempt = self.record.last_attempt().max(1);
            let token = self.ctx.cancellation_token().child_token();
            let job_ctx = JobContext {
                job: self.spec.name.clone(),
                slot_unix_ms: self.record.slot_unix_ms,
                attempt,
                leader: self.ctx.clone(),
                token: token.clone(),
                lease_deadline: self.lease_deadline.clone(),
                clock: self.inner.clock.clone(),
            };
            let handler = self.handler.clone();
            let timeout = self.spec.timeout;
            let ctx = self.ctx.clone();
            tracing::info!(target: TARGET, job = %self.spec.name, key = %self.key, attempt, epoch = ctx.epoch(), "job started");
            self.inner.count(Work::RunStarted);
            let outcome = tokio::select! {
                biased;
                () = ctx.cancelled() => Err(Stop::Lost("the leader's term ended")),
                stop = self.keep_alive() => Err(stop),
                result = tokio::time::timeout(timeout, handler.run(job_ctx)) => Ok(match result {
                    Ok(Ok(())) => RunOutcome::Succeeded,
                    Ok(Err(error)) => {
                        let mut text = error.to_string();
                        crate::queue::truncate_error(&mut text);
                        RunOutcome::Failed { error: text }
                    }
                    Err(_) => RunOutcome::TimedOut,
                }),
            };
            token.cancel();
            let outcome = match outcome {
                Ok(outcome) => outcome,
                Err(Stop::Lost(why)) => {
                    tracing::warn!(target: TARGET, job = %self.spec.name, key = %self.key, attempt, why, "job run given up");
                    return;
                }
            };
            tracing::info!(target: TARGET, job = %self.spec.name, key = %self.key, attempt, outcome = ?outcome, "job attempt ended");
            self.inner.count(if outcome == RunOutcome::Succeeded {
                Work::RunSucceeded
            } else {
                Work::RunFailed
            });
            let retry = outcome != RunOutcome::Succeeded
                && self.spec.delivery == Delivery::AtLeastOnce
                && self.spec.retry.has_attempt_after(attempt);
            self.end_attempt(outcome.clone());
            if !retry {
                self.record.running = false;
                self.record.outcome = Some(outcome);
                self.record_outcome().await;
                return;
            }
            // Record the failed attempt, wait out the back-off (renewing),
            // then start the next attempt.
            let backoff = self.spec.retry.backoff(attempt);
            if !self.renew_or_stop().await {
                return;
            }
            let waited = tokio::select! {
                biased;
                () = ctx.cancelled() => false,
                _ = self.keep_alive() => false,
                () = tokio::time::sleep(backoff) => true,
            };
            if !waited {
                return;
            }
            let worker = self.ctx.worker_id().to_string();
            let start = self.now_unix();
            self.record.push_attempt(AttemptRecord {
                attempt: attempt + 1,
                worker,
                epoch: self.ctx.epoch(),
                start_unix_ms: start,
                end_unix_ms: None,
                outcome: None,
            });
            if !self.renew_or_stop().await {
                return;
            }
        }
    }

    /// Writes the outcome, retrying transient errors while the slot's
    /// lease lasts: an outcome that is not recorded makes a later take-over
    /// run the job again.
    async fn record_outcome(&mut self) {
        let outcome = self.record.outcome.clone();
        loop {
            match self.write().await {
                Ok(true) => return,
                Ok(false) => break,
                Err(error) if self.lease_valid() && self.ctx.is_valid() => {
                    tracing::debug!(target: TARGET, key = %self.key, error = %error, "recording a run's outcome failed; retrying");
                    tokio::time::sleep(self.inner.config.tick).await;
                }
                Err(error) => {
                    tracing::warn!(target: TARGET, key = %self.key, error = %error, "could not record a run's outcome");
                    break;
                }
            }
        }
        tracing::warn!(target: TARGET, key = %self.key, outcome = ?outcome, "a run's outcome was not recorded; a take-over may run the job again (at least once)");
        // Not recorded: the slot is still running as far as the store says.
        self.record.running = true;
        self.record.outcome = None;
    }

    async fn renew_or_stop(&mut self) -> bool {
        match self.write().await {
            Ok(true) => true,
            Ok(false) => false,
            // Keep going on a transient error: the lease (and keep_alive)
            // bound how long we act without a successful write.
            Err(_) => self.lease_valid(),
        }
    }
}
