//! [`QueueMaintenance`]: the leader's part of a queue. Recovers stalled
//! claims, finishes ended ones (retry messages, dead letters, deletes), and
//! keeps the counters.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use coordinator_runtime::{
    CoordinatorPlugin, LeaderContext, PluginError, PluginScope, StepDownReason,
};
use coordinator_store::{LeaseStoreExt, StoreError, Version};
use futures::StreamExt;

use super::claim::truncate;
use super::record::{
    ClaimRecord, ClaimState, Counts, DeadHeader, MessageHeader, Next, StatsRecord, Stem,
};
use super::{Queue, QueueError, QueueInner, TARGET};
use crate::codec::{self, FORMAT};
use crate::delete::delete_write_once;
use crate::observe::{expiry_wait, Observations};
use crate::swap::{self, Attempts, Created, Swapped};

/// The leader's part of a [`Queue`], as a
/// [`CoordinatorPlugin`]: attach it to the queue's namespace (in global or
/// per-plugin mode). Its name is `queue.<queue name>`.
///
/// Every [`sweep_interval`](super::QueueConfig::sweep_interval) while
/// leading it:
///
/// 1. lists the claims and the messages (two listings), and reads each
///    claim whose version it has not read yet;
/// 2. recovers every claim whose version has stood unchanged for its
///    visibility (stretched by the drift tolerance, plus a grace) on the
///    leader's own clock: a compare-and-swap on that version to *failed*,
///    carrying the leader's epoch (the seal: a worker's late completion now
///    fails);
/// 3. finishes every ended claim: writes the retry message or the dead
///    letter (create-if-absent, keys fixed by the claim), deletes the
///    message, deletes the claim;
/// 4. adds what it did to the counters object (compare-and-swap; sealed
///    with its epoch when the term starts).
///
/// Each write is preceded by a synchronous [`LeaderContext::is_valid`]
/// check. A new term forgets every observation and counts afresh, so a
/// claim is never recovered early after a fail-over.
///
/// ```
/// use std::sync::Arc;
/// use coordinator_runtime::CoordinatorPlugin;
/// use coordinator_plugins::queue::Queue;
/// # let registry = coordinator_runtime::CoordinatorRegistry::new(
/// #     Arc::new(coordinator_store::MemoryStore::new()),
/// #     coordinator_runtime::CoordinatorConfig::default().with_worker_id("w1"),
/// # ).unwrap();
/// let queue = Queue::builder(&registry, "ns", "orders").build().unwrap();
/// assert_eq!(queue.maintenance().name(), "queue.orders");
/// ```
pub struct QueueMaintenance {
    queue: Arc<QueueInner>,
    name: String,
    state: tokio::sync::Mutex<LeaderState>,
}

#[derive(Default)]
struct LeaderState {
    epoch: u64,
    /// Claims read, by key: the version read and its record. Ordered: a
    /// sweep's requests go out in key order, so a seed replays a run.
    claims: BTreeMap<String, (Version, ClaimRecord)>,
    seen: Observations,
    /// The counters object as last written or read.
    stats: Option<(Version, StatsRecord)>,
    /// This term's writes of the counters object not known to have landed
    /// or not, each with its record ([`crate::swap`]): the next write may
    /// meet one of them.
    stats_attempts: Attempts<StatsRecord>,
    /// Claims finished this term and not deleted yet: key → its version
    /// and what it adds to the counters. Saving adds each claim's counts
    /// once: a claim already in the record's `counted` set adds nothing,
    /// so a save that landed unseen (ambiguous, retried) is not doubled.
    finished: BTreeMap<String, (Version, Counts)>,
    /// The claim keys of the latest listing.
    listed: BTreeSet<String>,
}

/// What one sweep did, for logs and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct SweepReport {
    recovered: u64,
    finished: u64,
    /// Claims left for the next sweep after a store error.
    errors: u64,
}

impl QueueMaintenance {
    pub(crate) fn new(queue: Queue) -> Self {
        let name = format!("queue.{}", queue.inner.name);
        Self {
            queue: queue.inner,
            name,
            state: tokio::sync::Mutex::new(LeaderState::default()),
        }
    }

    /// Runs one sweep now (what `coordinator_work` does), for tests and for
    /// callers that drive the leader's work themselves.
    ///
    /// # Errors
    ///
    /// The first store error; the next sweep starts over.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: every step is idempotent and the next sweep resumes.
    pub async fn sweep(&self, ctx: &LeaderContext) -> Result<(), QueueError> {
        let mut state = self.state.lock().await;
        if state.epoch != ctx.epoch() {
            self.begin_term(&mut state, ctx).await?;
        }
        let report = self.sweep_claims(&mut state, ctx).await?;
        self.save_counts(&mut state, ctx).await?;
        self.delete_counted(&mut state, ctx).await;
        if report != SweepReport::default() {
            tracing::debug!(target: TARGET, queue = %self.queue.name, epoch = ctx.epoch(),
                recovered = report.recovered, finished = report.finished, errors = report.errors, "queue sweep");
        }
        Ok(())
    }

    /// A new term: forget every observation, and seal the counters object.
    async fn begin_term(
        &self,
        state: &mut LeaderState,
        ctx: &LeaderContext,
    ) -> Result<(), QueueError> {
        state.epoch = ctx.epoch();
        state.claims.clear();
        state.seen.clear();
        state.stats = None;
        state.stats_attempts.clear();
        state.finished.clear();
        state.listed.clear();
        self.seal_stats(state, ctx).await
    }

    /// Reads the counters object and compare-and-swaps this term's epoch
    /// into it (or creates it), so a deposed leader's late counter write
    /// fails.
    async fn seal_stats(
        &self,
        state: &mut LeaderState,
        ctx: &LeaderContext,
    ) -> Result<(), QueueError> {
        let q = &self.queue;
        let key = q.keys.stats();
        for _ in 0..5 {
            let current = q
                .store
                .get(&key)
                .await
                .map_err(|e| QueueError::store("seal", &key, e))?;
            let (expected, mut record) = match current {
                Some(found) => {
                    let (record, _): (StatsRecord, Bytes) = codec::decode(&found.body)
                        .map_err(|reason| QueueError::corrupt(&key, q.backend(), reason))?;
                    (Some(found.version), record)
                }
                None => (
                    None,
                    StatsRecord {
                        format: FORMAT,
                        ..StatsRecord::default()
                    },
                ),
            };
            record.epoch = record.epoch.max(ctx.epoch());
            record.nonce = q.rng.token();
            merge_finished(&mut record, state, false);
            let body = codec::encode(&record, None)
                .map_err(|reason| QueueError::corrupt(&key, q.backend(), reason))?;
            if !ctx.is_valid() {
                return Ok(());
            }
            // A write of ours (this term's: each carries its epoch) that
            // landed unseen is the seal (crate::swap).
            let written = swap::write(
                q.store.as_ref(),
                &mut state.stats_attempts,
                &key,
                expected.as_ref(),
                body,
                record,
            )
            .await;
            match written {
                Ok(Swapped::Written(landed)) => {
                    state.stats = Some((landed.version, landed.ours));
                    return Ok(());
                }
                // Someone else's, or not applied yet: read and merge again.
                Ok(Swapped::Changed(_))
                | Err(StoreError::Conflict { .. } | StoreError::Ambiguous { .. }) => continue,
                Err(error) => return Err(QueueError::store("seal", &key, error)),
            }
        }
        // Not sealed: without the record, counted claims would be finished
        // again (extra requests); the sweep fails and the next one retries.
        Err(QueueError::store(
            "seal",
            &key,
            StoreError::Conflict {
                key: key.clone(),
                backend: q.backend(),
            },
        ))
    }

    /// Adds the counts of the claims finished and not yet recorded to the
    /// counters object, and forgets recorded claims that are gone; on a
    /// conflict (another leader during a migration, or our own write that
    /// landed unseen) re-reads and merges again, which adds nothing twice.
    async fn save_counts(
        &self,
        state: &mut LeaderState,
        ctx: &LeaderContext,
    ) -> Result<(), QueueError> {
        let Some((version, record)) = state.stats.clone() else {
            return self.seal_stats(state, ctx).await;
        };
        let mut next = record.clone();
        merge_finished(&mut next, state, true);
        if next.counted == record.counted || !ctx.is_valid() {
            return Ok(());
        }
        let q = &self.queue;
        let key = q.keys.stats();
        next.nonce = q.rng.token();
        let body = codec::encode(&next, None)
            .map_err(|reason| QueueError::corrupt(&key, q.backend(), reason))?;
        let swapped = swap::swap(
            q.store.as_ref(),
            &mut state.stats_attempts,
            &key,
            &version,
            body,
            next,
        )
        .await;
        match swapped {
            // Ours, this save or an earlier one whose answer was lost (what
            // it lacks is merged by the next save).
            Ok(Swapped::Written(landed)) => {
                state.stats = Some((landed.version, landed.ours));
                Ok(())
            }
            Ok(Swapped::Changed(_))
            | Err(StoreError::Conflict { .. } | StoreError::Ambiguous { .. }) => {
                self.seal_stats(state, ctx).await
            }
            Err(error) => Err(QueueError::store("stats", &key, error)),
        }
    }

    async fn sweep_claims(
        &self,
        state: &mut LeaderState,
        ctx: &LeaderContext,
    ) -> Result<SweepReport, QueueError> {
        let q = &self.queue;
        let claims_prefix = q.keys.claims();
        let messages_prefix = q.keys.messages();
        let (claims, messages) =
            futures::join!(q.store.list(&claims_prefix), q.store.list(&messages_prefix));
        let claims = claims.map_err(|e| QueueError::store("sweep", &claims_prefix, e))?;
        let messages = messages.map_err(|e| QueueError::store("sweep", &messages_prefix, e))?;
        let message_versions: HashMap<&str, &Version> = messages
            .iter()
            .map(|m| (m.key.as_str(), &m.version))
            .collect();

        let mut report = SweepReport::default();
        // Read the claims whose version is new to us.
        let listed: HashSet<&str> = claims.iter().map(|m| m.key.as_str()).collect();
        state.claims.retain(|key, _| listed.contains(key.as_str()));
        state.seen.retain(|key| listed.contains(key));
        state
            .finished
            .retain(|key, _| listed.contains(key.as_str()));
        state.listed = listed.iter().map(|k| (*k).to_owned()).collect();
        // Claims whose counts are saved (or about to be) are only deleted
        // (`delete_counted`), never finished and counted again.
        let counted: HashSet<String> = state
            .stats
            .as_ref()
            .map(|(_, record)| record.counted.iter().cloned().collect())
            .unwrap_or_default();
        let to_read: Vec<String> = claims
            .iter()
            .filter(|meta| q.keys.parse_claim(&meta.key).is_some())
            .filter(|meta| !counted.contains(&meta.key) && !state.finished.contains_key(&meta.key))
            .filter(|meta| {
                state
                    .claims
                    .get(&meta.key)
                    .is_none_or(|(v, _)| v != &meta.version)
            })
            .map(|meta| meta.key.clone())
            .collect();
        let store = q.store.clone();
        let reads: Vec<(
            String,
            Result<Option<coordinator_store::StoredObject>, StoreError>,
        )> = futures::stream::iter(to_read)
            .map(move |key: String| {
                let store = store.clone();
                async move {
                    let read = store.get(&key).await;
                    (key, read)
                }
            })
            .buffer_unordered(q.config.leader_concurrency)
            .collect()
            .await;
        for (key, read) in reads {
            match read {
                Ok(Some(found)) => match codec::decode::<ClaimRecord>(&found.body) {
                    Ok((record, _)) => {
                        state.claims.insert(key, (found.version, record));
                    }
                    Err(reason) => {
                        tracing::warn!(target: TARGET, queue = %q.name, key = %key, reason = %reason,
                            "unreadable claim left alone; is another program writing under this prefix?");
                    }
                },
                Ok(None) => {
                    state.claims.remove(&key);
                }
                // One failed read must not hold back every other claim
                // (with many claims, some read fails on most sweeps): this
                // one is read again next sweep.
                Err(error) => {
                    report.errors += 1;
                    tracing::debug!(target: TARGET, queue = %q.name, key = %key, error = %error,
                        "reading a claim failed; reading it again next sweep");
                }
            }
        }

        // Decide, on this leader's clock, after the responses arrived.
        let now = q.clock.now();
        let mut work = Vec::new();
        for (key, (version, record)) in &state.claims {
            if counted.contains(key) || state.finished.contains_key(key) {
                continue;
            }
            let unchanged = state.seen.observe(key, version, now);
            match &record.state {
                ClaimState::Claimed { visibility_ms, .. } => {
                    let wait = expiry_wait(
                        Duration::from_millis(*visibility_ms),
                        q.config.drift_tolerance,
                        q.config.recovery_grace,
                    );
                    if unchanged >= wait {
                        work.push((key.clone(), version.clone(), record.clone()));
                    }
                }
                _ => work.push((key.clone(), version.clone(), record.clone())),
            }
        }
        let epoch = ctx.epoch();
        let results: Vec<Result<Outcome, QueueError>> = futures::stream::iter(work)
            .map(|(key, version, record)| {
                let msg_version = message_versions
                    .get(record.message.as_str())
                    .map(|v| (*v).clone());
                async move {
                    self.handle_claim(ctx, epoch, key, version, record, msg_version)
                        .await
                }
            })
            .buffer_unordered(q.config.leader_concurrency)
            .collect()
            .await;
        for result in results {
            match result {
                Ok(Outcome::Finished {
                    key,
                    version,
                    counts,
                }) => {
                    state.claims.remove(&key);
                    state.seen.forget(&key);
                    state.finished.insert(key, (version, counts));
                    report.finished += 1;
                    report.recovered += counts.recovered;
                }
                Ok(Outcome::Released { key }) => {
                    state.claims.remove(&key);
                    state.seen.forget(&key);
                    report.finished += 1;
                }
                Ok(Outcome::Skipped) => {}
                // Left for the next sweep; the others' progress (and
                // counts) are kept.
                Err(error) => {
                    report.errors += 1;
                    tracing::debug!(target: TARGET, queue = %q.name, error = %error,
                        "finishing a claim failed; trying again next sweep");
                }
            }
        }
        Ok(report)
    }

    /// Recovers (if live) and finishes one claim.
    async fn handle_claim(
        &self,
        ctx: &LeaderContext,
        epoch: u64,
        key: String,
        version: Version,
        record: ClaimRecord,
        message_version: Option<Version>,
    ) -> Result<Outcome, QueueError> {
        let q = &self.queue;
        let Some(stem) = q.keys.parse_claim(&key) else {
            return Ok(Outcome::Skipped);
        };
        let mut counts = Counts::default();
        let mut message: Option<(Version, MessageHeader, Bytes)> = None;
        let (version, record) = if let ClaimState::Claimed {
            worker,
            visibility_ms,
            ..
        } = &record.state
        {
            // Stalled: read the message to learn what comes next, then seal
            // the claim with a compare-and-swap on the version we watched.
            message = self.read_message(&record.message).await?;
            let state = match &message {
                None => ClaimState::Abandoned { reason: "the message was already gone".into() },
                Some(_) => ClaimState::Failed {
                    worker: worker.clone(),
                    error: format!(
                        "visibility timeout: worker `{worker}` neither completed nor extended its claim within {visibility_ms} ms (recovered by the leader, epoch {epoch})"
                    ),
                    next: self.next_after(stem.attempt),
                    by_epoch: Some(epoch),
                    followed_up: false,
                },
            };
            let sealed = ClaimRecord {
                format: FORMAT,
                message: record.message.clone(),
                nonce: q.rng.token(),
                updated_unix_ms: q.clock.unix_ms(),
                state,
            };
            let body = codec::encode(&sealed, None)
                .map_err(|reason| QueueError::corrupt(&key, q.backend(), reason))?;
            if !ctx.is_valid() {
                return Ok(Outcome::Skipped);
            }
            // Our own write that landed unseen counts (crate::swap). One
            // attempt per sweep: should it land under a lost answer, the
            // next sweep reads the sealed claim and finishes it like any
            // ended claim, so no history is kept across sweeps.
            let swapped = swap::swap(
                q.store.as_ref(),
                &mut Attempts::new(),
                &key,
                &version,
                body,
                (),
            )
            .await;
            match swapped {
                Ok(Swapped::Written(landed)) => {
                    tracing::info!(target: TARGET, queue = %q.name, key = %key, worker_id = %worker, epoch,
                        "stalled claim recovered");
                    q.count(crate::telemetry::Work::RecoveredClaim);
                    (landed.version, sealed)
                }
                // The worker extended or ended it meanwhile: look again next sweep.
                Ok(Swapped::Changed(_)) => return Ok(Outcome::Skipped),
                Err(error) => return Err(QueueError::store("recover", &key, error)),
            }
        } else {
            (version, record)
        };
        #[cfg(feature = "mutations")]
        let mutant = q.config.mutation_abandoned_deletes_message;
        #[cfg(not(feature = "mutations"))]
        let mutant = false;
        if matches!(record.state, ClaimState::Abandoned { .. }) && !mutant {
            return self.release_abandoned(ctx, key, &version).await;
        }
        match self
            .finish(
                ctx,
                &key,
                &stem,
                &version,
                &record,
                message,
                message_version,
                &mut counts,
            )
            .await?
        {
            Some(version) => Ok(Outcome::Finished {
                key,
                version,
                counts,
            }),
            None => Ok(Outcome::Skipped),
        }
    }

    /// Deletes an abandoned claim (the claimer gave the message back unrun)
    /// at the version read, and nothing else.
    ///
    /// Its message may still be there: the claimer recognised its own claim,
    /// written under a lost answer, only after the claim's visibility had
    /// run out (deleting that message would lose it: the chaos test's seed
    /// 12). The next claim of that message then takes the same key (the
    /// same attempt), so this key must not go into the counters object's
    /// `counted` set like a finished claim's: until a listing lacked it, the
    /// leader would take the new, live claim for the old one and delete it,
    /// and the message would go to a second consumer, and round again (seed
    /// 23). An abandoned claim adds nothing to the counts, so nothing needs
    /// recording; the conditional delete leaves a newer claim under the
    /// same key alone.
    async fn release_abandoned(
        &self,
        ctx: &LeaderContext,
        key: String,
        version: &Version,
    ) -> Result<Outcome, QueueError> {
        if !ctx.is_valid() {
            return Ok(Outcome::Skipped);
        }
        delete_write_once(self.queue.store.as_ref(), &key, version)
            .await
            .map_err(|e| QueueError::store("delete", &key, e))?;
        Ok(Outcome::Released { key })
    }

    fn next_after(&self, attempt: u32) -> Next {
        let policy = self.queue.config.retry;
        if policy.has_attempt_after(attempt) {
            Next::Retry {
                delay_ms: crate::clock::ms(policy.backoff(attempt)),
            }
        } else {
            Next::Dead
        }
    }

    async fn read_message(
        &self,
        key: &str,
    ) -> Result<Option<(Version, MessageHeader, Bytes)>, QueueError> {
        let q = &self.queue;
        let Some(found) = q
            .store
            .get(key)
            .await
            .map_err(|e| QueueError::store("read", key, e))?
        else {
            return Ok(None);
        };
        match codec::decode::<MessageHeader>(&found.body) {
            Ok((header, payload)) => Ok(Some((found.version, header, payload))),
            // Keep an unreadable message's bytes whole in the dead letter.
            Err(_) => Ok(Some((
                found.version,
                MessageHeader {
                    format: FORMAT,
                    enqueued_unix_ms: 0,
                    errors: Vec::new(),
                },
                found.body,
            ))),
        }
    }

    /// Does what an ended claim asks, idempotently; true once the claim is
    /// deleted. Every step may have been done by an earlier leader.
    #[allow(clippy::too_many_arguments)]
    async fn finish(
        &self,
        ctx: &LeaderContext,
        key: &str,
        stem: &Stem,
        version: &Version,
        record: &ClaimRecord,
        message: Option<(Version, MessageHeader, Bytes)>,
        message_version: Option<Version>,
        counts: &mut Counts,
    ) -> Result<Option<Version>, QueueError> {
        let q = &self.queue;
        let store = q.store.as_ref();
        let mut message_version = message_version;
        let mut version = version.clone();
        match &record.state {
            ClaimState::Claimed { .. } => return Ok(None),
            ClaimState::Completed { .. } => counts.completed += 1,
            // Released in `handle_claim` (`release_abandoned`), except by the
            // test-only mutant, which deletes the message as before the fix
            // of the chaos test's seed 12.
            #[cfg(feature = "mutations")]
            ClaimState::Abandoned { .. } if q.config.mutation_abandoned_deletes_message => {}
            ClaimState::Abandoned { .. } => return Ok(None),
            ClaimState::Failed {
                followed_up: true,
                next,
                by_epoch,
                ..
            } => counts.add_failure(next, *by_epoch),
            ClaimState::Failed {
                error,
                next,
                by_epoch,
                ..
            } => {
                counts.add_failure(next, *by_epoch);
                let message = match message {
                    Some(m) => Some(m),
                    None => self.read_message(&record.message).await?,
                };
                if let Some((read, _, _)) = &message {
                    message_version.get_or_insert_with(|| read.clone());
                }
                // Absent: an earlier leader wrote what follows and deleted it.
                if let Some((_, header, payload)) = &message {
                    let mut errors = header.errors.clone();
                    let mut error = error.clone();
                    truncate(&mut error);
                    errors.push(error);
                    let keep = q.config.max_errors_kept.max(1);
                    if errors.len() > keep {
                        errors.drain(..errors.len() - keep);
                    }
                    if !ctx.is_valid() {
                        return Ok(None);
                    }
                    match next {
                        Next::Retry { delay_ms } => {
                            let next_header = MessageHeader {
                                format: FORMAT,
                                enqueued_unix_ms: header.enqueued_unix_ms,
                                errors,
                            };
                            q.create_message(&stem.next(), *delay_ms, &next_header, payload)
                                .await?;
                        }
                        Next::Dead => {
                            self.dead_letter(stem, header, errors, payload).await?;
                        }
                    }
                }
                // Record that `next` exists before the message goes. A
                // retry message is claimable only once no earlier attempt
                // of it is listed (the workers check), so until this flag
                // is in, it cannot have been consumed and writing it again
                // is harmless; after, no finish writes it again.
                match self.mark_followed_up(ctx, key, &version, record).await? {
                    Some(marked) => version = marked,
                    None => return Ok(None),
                }
            }
        }
        if !ctx.is_valid() {
            return Ok(None);
        }
        if let Some(message_version) = message_version {
            delete_write_once(store, &record.message, &message_version)
                .await
                .map_err(|e| QueueError::store("delete", &record.message, e))?;
        } else if store.capabilities().conditional_delete {
            // Not in our listing: already deleted, or listed after; read it.
            if let Some(found) = store
                .get(&record.message)
                .await
                .map_err(|e| QueueError::store("delete", &record.message, e))?
            {
                delete_write_once(store, &record.message, &found.version)
                    .await
                    .map_err(|e| QueueError::store("delete", &record.message, e))?;
            }
        } else {
            store
                .delete(&record.message)
                .await
                .map_err(|e| QueueError::store("delete", &record.message, e))?;
        }
        if !ctx.is_valid() {
            return Ok(None);
        }
        Ok(Some(version))
    }

    /// Deletes the claims whose counts the counters object holds: those
    /// finished this sweep (once saved) and those an earlier term counted
    /// but did not delete. A claim is counted once: before its counts are
    /// saved it is finished (and counted) again by whoever leads next;
    /// after, it is only deleted.
    async fn delete_counted(&self, state: &mut LeaderState, ctx: &LeaderContext) {
        let q = &self.queue;
        let Some((_, record)) = state.stats.as_ref() else {
            return;
        };
        let saved: Vec<(String, Option<Version>)> = record
            .counted
            .iter()
            .filter(|key| state.listed.contains(*key))
            .map(|key| (key.clone(), state.finished.get(key).map(|(v, _)| v.clone())))
            .collect();
        if !ctx.is_valid() {
            return;
        }
        let store = q.store.clone();
        let results: Vec<(String, Result<(), StoreError>)> = futures::stream::iter(saved)
            .map(|(key, version)| {
                let store = store.clone();
                async move {
                    // A counted claim is terminal and never rewritten, so a
                    // plain delete removes only it (see `delete_write_once`).
                    let deleted = match &version {
                        Some(version) => delete_write_once(store.as_ref(), &key, version)
                            .await
                            .map(|_| ()),
                        None => store.delete(&key).await,
                    };
                    (key, deleted)
                }
            })
            .buffer_unordered(q.config.leader_concurrency)
            .collect()
            .await;
        for (key, deleted) in results {
            match deleted {
                Ok(()) => {
                    state.finished.remove(&key);
                }
                Err(error) => {
                    tracing::debug!(target: TARGET, queue = %q.name, key = %key, error = %error,
                        "deleting a counted claim failed; trying again next sweep");
                }
            }
        }
    }

    /// Compare-and-swaps `followed_up` into a failed claim; the new
    /// version, or `None` if the claim changed (or the term ended).
    async fn mark_followed_up(
        &self,
        ctx: &LeaderContext,
        key: &str,
        version: &Version,
        record: &ClaimRecord,
    ) -> Result<Option<Version>, QueueError> {
        let q = &self.queue;
        let mut marked = record.clone();
        if let ClaimState::Failed { followed_up, .. } = &mut marked.state {
            *followed_up = true;
        }
        marked.nonce = q.rng.token();
        let body = codec::encode(&marked, None)
            .map_err(|reason| QueueError::corrupt(key, q.backend(), reason))?;
        if !ctx.is_valid() {
            return Ok(None);
        }
        // As for a recovery: a mark that lands under a lost answer is read
        // by the next sweep, which then only deletes what is left.
        match swap::swap(
            q.store.as_ref(),
            &mut Attempts::new(),
            key,
            version,
            body,
            (),
        )
        .await
        {
            Ok(Swapped::Written(landed)) => Ok(Some(landed.version)),
            Ok(Swapped::Changed(_)) => Ok(None),
            Err(error) => Err(QueueError::store("finish", key, error)),
        }
    }

    async fn dead_letter(
        &self,
        stem: &Stem,
        header: &MessageHeader,
        errors: Vec<String>,
        payload: &Bytes,
    ) -> Result<(), QueueError> {
        let q = &self.queue;
        let key = q.keys.dead(&stem.origin);
        let dead = DeadHeader {
            format: FORMAT,
            attempts: stem.attempt,
            errors,
            enqueued_unix_ms: header.enqueued_unix_ms,
            dead_unix_ms: q.clock.unix_ms(),
        };
        let body = codec::encode(&dead, Some(payload))
            .map_err(|reason| QueueError::corrupt(&key, q.backend(), reason))?;
        // One dead letter per message: an earlier leader's (its key is
        // fixed by the message) is as good as ours.
        match swap::create(q.store.as_ref(), &mut Attempts::new(), &key, body, ()).await {
            Ok(created @ (Created::Written(_) | Created::Taken)) => {
                // Counted once: an earlier leader's dead letter was its own.
                if matches!(created, Created::Written(_)) {
                    q.count(crate::telemetry::Work::DeadLettered);
                }
                tracing::info!(target: TARGET, queue = %q.name, id = %stem.origin, attempts = stem.attempt, "message dead-lettered");
                Ok(())
            }
            Err(error) => Err(QueueError::store("dead_letter", &key, error)),
        }
    }
}

enum Outcome {
    /// Everything but the claim's deletion is done; `counts` are what the
    /// claim adds, `version` is the claim's now.
    Finished {
        key: String,
        version: Version,
        counts: Counts,
    },
    /// An abandoned claim, deleted: it adds nothing to the counters and is
    /// never recorded as counted (see `release_abandoned`).
    Released {
        key: String,
    },
    Skipped,
}

#[async_trait]
impl CoordinatorPlugin for QueueMaintenance {
    fn name(&self) -> &str {
        &self.name
    }

    async fn on_become_coordinator(&self, ctx: LeaderContext) -> Result<(), PluginError> {
        let mut state = self.state.lock().await;
        self.begin_term(&mut state, &ctx).await?;
        Ok(())
    }

    async fn on_stop_being_coordinator(&self, _reason: StepDownReason) -> Result<(), PluginError> {
        let mut state = self.state.lock().await;
        state.epoch = 0;
        state.claims.clear();
        state.seen.clear();
        Ok(())
    }

    async fn coordinator_work(&self, ctx: &LeaderContext) -> Result<(), PluginError> {
        self.sweep(ctx).await?;
        Ok(())
    }

    fn work_interval(&self) -> Option<Duration> {
        Some(self.queue.config.sweep_interval)
    }

    fn scope(&self) -> Option<&PluginScope> {
        Some(&self.queue.scope)
    }
}

impl fmt::Debug for QueueMaintenance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueueMaintenance")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Adds to `record` the counts of every finished claim it has not counted,
/// and (with `prune`, once this term has listed the claims) forgets the
/// counted claims that are gone.
fn merge_finished(record: &mut StatsRecord, state: &LeaderState, prune: bool) {
    for (key, (_, counts)) in &state.finished {
        if record.counted.insert(key.clone()) {
            record.counts.add(counts);
        }
    }
    if prune {
        record
            .counted
            .retain(|key| state.listed.contains(key) || state.finished.contains_key(key));
    }
}
