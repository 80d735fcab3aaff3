//! [`TtlSweeper`]: the leader's sweep over overdue index buckets.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use coordinator_core::Instant;
use coordinator_runtime::{
    CoordinatorPlugin, LeaderContext, PluginError, PluginScope, StepDownReason,
};
use coordinator_store::{LeaseStoreExt, ObjectMeta, StoreError, Version};
use futures::StreamExt;

use super::record::{RecordHeader, RecordState, SweepRecord};
use super::{ExpiredRecord, ExpiryAction, TtlError, TtlInner, TARGET};
use crate::clock::ms;
use crate::codec::{self, FORMAT};
use crate::delete::{delete_write_once, retire, Deleted};
use crate::observe::{expiry_wait, Observations};
use crate::swap::{self, swap, Attempts, Created, Swapped};

/// The leader's part of a [`Ttl`](super::Ttl), as a [`CoordinatorPlugin`]
/// named `ttl.<name>`; sweeps every
/// [`sweep_interval`](super::TtlConfig::sweep_interval).
///
/// A sweep lists each overdue bucket since the last persisted position
/// (or, after a long outage, the whole index once), checks each entry's
/// record (same generation, live, expired on this leader's clock by the
/// margin), acts with a write conditional on the version read, deletes the
/// entry, and finally moves the position forward (compare-and-swap on
/// `sweep.json`, which the term sealed with its epoch when it began).
///
/// ```
/// use std::sync::Arc;
/// use coordinator_runtime::CoordinatorPlugin;
/// use coordinator_plugins::ttl::Ttl;
/// # let registry = coordinator_runtime::CoordinatorRegistry::new(
/// #     Arc::new(coordinator_store::MemoryStore::new()),
/// #     coordinator_runtime::CoordinatorConfig::default().with_worker_id("w1"),
/// # ).unwrap();
/// let ttl = Ttl::builder(&registry, "ns", "sessions").build().unwrap();
/// assert_eq!(ttl.sweeper().name(), "ttl.sessions");
/// ```
pub struct TtlSweeper {
    inner: Arc<TtlInner>,
    name: String,
    state: tokio::sync::Mutex<SweepState>,
    seen: Mutex<Observations>,
    /// Records whose callback ran here but whose removal failed: object
    /// key → (the claim's version, the tombstone to write).
    called_back: Mutex<HashMap<String, (Version, Bytes)>>,
}

#[derive(Default)]
struct SweepState {
    epoch: u64,
    position: Option<(Version, SweepRecord)>,
    last_full_scan: Option<Instant>,
    /// This term's writes of `sweep.json` not known to have landed or not,
    /// each with its record ([`crate::swap`]): the next write may meet one.
    attempts: Attempts<SweepRecord>,
}

/// What became of one index entry.
enum Entry {
    /// Acted on, or stale: the entry is gone.
    Done { acted: bool },
    /// Left for later (moved to a later bucket).
    Deferred,
}

/// A sweep's tally (for logs and tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) expired: u64,
    pub(crate) stale: u64,
    pub(crate) deferred: u64,
}

impl TtlSweeper {
    pub(crate) fn new(inner: Arc<TtlInner>) -> Self {
        let name = format!("ttl.{}", inner.name);
        Self {
            inner,
            name,
            state: tokio::sync::Mutex::new(SweepState::default()),
            seen: Mutex::new(Observations::default()),
            called_back: Mutex::new(HashMap::new()),
        }
    }

    /// Runs one sweep now (what `coordinator_work` does).
    ///
    /// # Errors
    ///
    /// The first store error; the position is not moved past a bucket that
    /// was not fully swept.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: every step is idempotent.
    pub async fn sweep(&self, ctx: &LeaderContext) -> Result<(), TtlError> {
        let mut state = self.state.lock().await;
        if state.epoch != ctx.epoch() {
            state.epoch = ctx.epoch();
            state.position = None;
            state.last_full_scan = None;
            state.attempts.clear();
            self.seen
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
        }
        if state.position.is_none() {
            let sealed = self.seal(ctx, &mut state.attempts).await?;
            state.position = Some(sealed);
        }
        let inner = &self.inner;
        let now = inner.clock.unix_ms();
        let width = ms(inner.config.bucket_width).max(1);
        // Buckets that end at or before now − margin are overdue.
        let due_until = inner.bucket_of(now.saturating_sub(ms(inner.config.clock_skew_margin)));
        let swept_until = state.position.as_ref().map_or(0, |(_, r)| r.swept_until_ms);
        let full_due = state.last_full_scan.is_none_or(|at| {
            inner.clock.now().saturating_since(at) >= inner.config.full_scan_interval
        });
        let buckets = due_until.saturating_sub(swept_until) / width;
        let mut tally = Tally::default();
        if full_due || buckets > inner.config.max_bucket_listings as u64 {
            let index = inner.keys.index();
            let listed = inner
                .store
                .list(&index)
                .await
                .map_err(|e| TtlError::store("sweep", &index, e))?;
            let overdue: Vec<ObjectMeta> = listed
                .into_iter()
                .filter(|m| {
                    inner
                        .keys
                        .parse_entry(&m.key)
                        .is_some_and(|(bucket, _, _)| bucket < due_until)
                })
                .collect();
            self.process(ctx, overdue, &mut tally).await?;
            state.last_full_scan = Some(inner.clock.now());
        } else {
            // Every due bucket is swept even after one fails (a store
            // error must not hold back the buckets after it); the position
            // moves only up to the first bucket not fully swept.
            let mut bucket = swept_until;
            let mut failed: Option<(u64, TtlError)> = None;
            while bucket < due_until {
                let prefix = inner.keys.bucket(bucket);
                let swept = match inner.store.list(&prefix).await {
                    Ok(listed) => self.process(ctx, listed, &mut tally).await,
                    Err(e) => Err(TtlError::store("sweep", &prefix, e)),
                };
                if let (Err(error), None) = (swept, &failed) {
                    failed = Some((bucket, error));
                }
                bucket += width;
            }
            if let Some((bucket, error)) = failed {
                if bucket > swept_until {
                    self.advance(ctx, &mut state, bucket).await?;
                }
                return Err(error);
            }
        }
        if due_until > swept_until {
            self.advance(ctx, &mut state, due_until).await?;
        }
        if tally != Tally::default() {
            tracing::debug!(target: TARGET, ttl = %inner.name, epoch = ctx.epoch(), expired = tally.expired,
                stale = tally.stale, deferred = tally.deferred, "ttl sweep");
        }
        Ok(())
    }

    /// Reads `sweep.json` and compare-and-swaps this term's epoch into it
    /// (or creates it), before trusting its position.
    async fn seal(
        &self,
        ctx: &LeaderContext,
        attempts: &mut Attempts<SweepRecord>,
    ) -> Result<(Version, SweepRecord), TtlError> {
        let inner = &self.inner;
        let key = inner.keys.sweep();
        for _ in 0..5 {
            let found = inner
                .store
                .get(&key)
                .await
                .map_err(|e| TtlError::store("seal", &key, e))?;
            let (expected, mut record) = match found {
                Some(found) => {
                    let (record, _): (SweepRecord, Bytes) = codec::decode(&found.body)
                        .map_err(|reason| TtlError::corrupt(&key, inner.backend(), reason))?;
                    (Some(found.version), record)
                }
                None => (
                    None,
                    SweepRecord {
                        format: FORMAT,
                        ..SweepRecord::default()
                    },
                ),
            };
            record.epoch = record.epoch.max(ctx.epoch());
            record.nonce = inner.rng.token();
            let body = codec::encode(&record, None)
                .map_err(|reason| TtlError::corrupt(&key, inner.backend(), reason))?;
            if !ctx.is_valid() {
                return Err(TtlError::store(
                    "seal",
                    &key,
                    StoreError::Conflict {
                        key: key.clone(),
                        backend: inner.backend(),
                    },
                ));
            }
            // A write of ours (this term's: each carries its epoch) that
            // landed unseen is the seal (crate::swap).
            let written = swap::write(
                inner.store.as_ref(),
                attempts,
                &key,
                expected.as_ref(),
                body,
                record,
            )
            .await;
            match written {
                Ok(Swapped::Written(landed)) => return Ok((landed.version, landed.ours)),
                // Someone else's, or not applied yet: read again.
                Ok(Swapped::Changed(_))
                | Err(StoreError::Conflict { .. } | StoreError::Ambiguous { .. }) => continue,
                Err(error) => return Err(TtlError::store("seal", &key, error)),
            }
        }
        Err(TtlError::Contended { key })
    }

    async fn advance(
        &self,
        ctx: &LeaderContext,
        state: &mut SweepState,
        until: u64,
    ) -> Result<(), TtlError> {
        let inner = &self.inner;
        let key = inner.keys.sweep();
        let Some((version, record)) = state.position.clone() else {
            return Ok(());
        };
        let mut next = record;
        next.swept_until_ms = next.swept_until_ms.max(until);
        next.nonce = inner.rng.token();
        let body = codec::encode(&next, None)
            .map_err(|reason| TtlError::corrupt(&key, inner.backend(), reason))?;
        if !ctx.is_valid() {
            return Ok(());
        }
        let swapped = swap(
            inner.store.as_ref(),
            &mut state.attempts,
            &key,
            &version,
            body,
            next,
        )
        .await;
        match swapped {
            // Ours: this advance, or an earlier one whose answer was lost
            // (the next sweep moves on from where that one left it).
            Ok(Swapped::Written(landed)) => {
                state.position = Some((landed.version, landed.ours));
                Ok(())
            }
            // Another leader (a migration) moved it: re-seal next sweep.
            Ok(Swapped::Changed(_)) => {
                state.position = None;
                Ok(())
            }
            // Not applied, perhaps not yet: the next advance writes again,
            // or meets this one.
            Err(StoreError::Conflict { .. } | StoreError::Ambiguous { .. }) => Ok(()),
            Err(error) => Err(TtlError::store("advance", &key, error)),
        }
    }

    async fn process(
        &self,
        ctx: &LeaderContext,
        entries: Vec<ObjectMeta>,
        tally: &mut Tally,
    ) -> Result<(), TtlError> {
        let results: Vec<Result<Entry, TtlError>> = futures::stream::iter(entries)
            .map(|meta| async move { self.entry(ctx, meta).await })
            .buffer_unordered(self.inner.config.concurrency)
            .collect()
            .await;
        let mut first_error = None;
        for result in results {
            match result {
                Ok(Entry::Done { acted: true }) => {
                    tally.expired += 1;
                    self.inner.count(crate::telemetry::Work::Expired);
                }
                Ok(Entry::Done { acted: false }) => tally.stale += 1,
                Ok(Entry::Deferred) => tally.deferred += 1,
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn drop_entry(&self, ctx: &LeaderContext, meta: &ObjectMeta) -> Result<(), TtlError> {
        if ctx.is_valid() {
            delete_write_once(self.inner.store.as_ref(), &meta.key, &meta.version)
                .await
                .map_err(|e| TtlError::store("delete entry", &meta.key, e))?;
        }
        Ok(())
    }

    /// Moves an entry to the bucket of `at` (a later sweep looks again).
    async fn defer(
        &self,
        ctx: &LeaderContext,
        meta: &ObjectMeta,
        key: &str,
        generation: &str,
        at: u64,
    ) -> Result<Entry, TtlError> {
        if !ctx.is_valid() {
            return Ok(Entry::Deferred);
        }
        let inner = &self.inner;
        let entry = inner.keys.entry(inner.bucket_of(at), key, generation);
        if entry != meta.key {
            // Any entry at that key is this registration's.
            let body = Bytes::from_static(super::record::ENTRY_BODY);
            match swap::create(inner.store.as_ref(), &mut Attempts::new(), &entry, body, ()).await {
                Ok(Created::Written(_) | Created::Taken) => self.drop_entry(ctx, meta).await?,
                Err(error) => return Err(TtlError::store("defer", &entry, error)),
            }
        }
        Ok(Entry::Deferred)
    }

    async fn entry(&self, ctx: &LeaderContext, meta: ObjectMeta) -> Result<Entry, TtlError> {
        let inner = &self.inner;
        let Some((_, key, generation)) = inner.keys.parse_entry(&meta.key) else {
            return Ok(Entry::Done { acted: false });
        };
        let object = inner.keys.record(&key);
        let Some((version, header, payload)) = inner.read(&key).await? else {
            self.drop_entry(ctx, &meta).await?;
            return Ok(Entry::Done { acted: false });
        };
        if header.generation != generation {
            self.drop_entry(ctx, &meta).await?;
            return Ok(Entry::Done { acted: false });
        }
        let now = inner.clock.unix_ms();
        let margin = ms(inner.config.clock_skew_margin);
        match &header.state {
            RecordState::SoftDeleted { .. } | RecordState::Deleted { .. } => {
                self.drop_entry(ctx, &meta).await?;
                return Ok(Entry::Done { acted: false });
            }
            RecordState::Expiring { .. } if self.finished_here(&object, &version) => {
                let Some((claimed, tombstone)) = self.called_back().get(&object).cloned() else {
                    return Ok(Entry::Deferred);
                };
                return match self.finish(ctx, &object, claimed, tombstone).await? {
                    Acted::Retry => Ok(Entry::Deferred),
                    _ => {
                        self.drop_entry(ctx, &meta).await?;
                        Ok(Entry::Done { acted: true })
                    }
                };
            }
            // Our own term's claim, whose callback did not run (the claim
            // timed out and landed late): no callback of ours holds it
            // (sweeps run one at a time), so act now.
            RecordState::Expiring { worker, epoch, .. }
                if *epoch == ctx.epoch() && worker.as_str() == ctx.worker_id().as_str() => {}
            // A claim by an earlier term of our own election: that term
            // ended before ours began, and its callbacks were cancelled at
            // its deadline (LeaderContext::election), so act now rather
            // than wait out the claim's lease.
            RecordState::Expiring {
                epoch,
                election: Some(election),
                ..
            } if *epoch < ctx.epoch() && election.as_str() == ctx.election() => {}
            RecordState::Expiring { lease_ms, .. } => {
                // Another leader's callback claim: take it over only once it
                // stood unchanged for its lease on our clock.
                let unchanged = self
                    .seen
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .observe(&object, &version, inner.clock.now());
                let wait = expiry_wait(
                    Duration::from_millis(*lease_ms),
                    inner.config.drift_tolerance,
                    Duration::from_secs(1),
                );
                if unchanged < wait {
                    let later = now
                        .saturating_add(ms(wait - unchanged))
                        .max(now + ms(inner.config.bucket_width));
                    return self.defer(ctx, &meta, &key, &generation, later).await;
                }
            }
            RecordState::Live => {
                if header.expires_at_unix_ms.saturating_add(margin) > now {
                    return self
                        .defer(
                            ctx,
                            &meta,
                            &key,
                            &generation,
                            header.expires_at_unix_ms.saturating_add(margin),
                        )
                        .await;
                }
            }
        }
        if !ctx.is_valid() {
            return Ok(Entry::Deferred);
        }
        let acted = self.act(ctx, &object, version, header, payload).await?;
        match acted {
            Acted::Done | Acted::Changed => {
                self.drop_entry(ctx, &meta).await?;
                Ok(Entry::Done {
                    acted: matches!(acted, Acted::Done),
                })
            }
            Acted::Retry => {
                let later = now.saturating_add(ms(inner.config.bucket_width));
                self.defer(ctx, &meta, &key, &generation, later).await
            }
        }
    }

    /// The expiry action, conditional on `version`.
    async fn act(
        &self,
        ctx: &LeaderContext,
        object: &str,
        version: Version,
        header: RecordHeader,
        payload: Bytes,
    ) -> Result<Acted, TtlError> {
        let inner = &self.inner;
        let store = inner.store.as_ref();
        let epoch = ctx.epoch();
        let encode = |header: &RecordHeader, payload: &[u8]| {
            codec::encode(header, Some(payload))
                .map_err(|reason| TtlError::corrupt(object, inner.backend(), reason))
        };
        let with_state = |state: RecordState| RecordHeader {
            state,
            nonce: inner.rng.token(),
            ..header.clone()
        };
        let tombstone = encode(&with_state(RecordState::Deleted { epoch }), &[])?;
        // One attempt per sweep: a write that lands under a lost answer is
        // read by the next sweep (a tombstone, a soft-deleted record), which
        // drops the entry; no history is kept across sweeps.
        let mut attempts = Attempts::new();
        let result = match inner.config.action {
            ExpiryAction::HardDelete => {
                retire(store, &mut attempts, object, &version, tombstone).await
            }
            ExpiryAction::SoftDelete => {
                let body = encode(&with_state(RecordState::SoftDeleted { epoch }), &payload)?;
                match swap(store, &mut attempts, object, &version, body, ()).await {
                    Ok(Swapped::Written(_)) => Ok(Deleted::Done),
                    Ok(Swapped::Changed(_)) => Ok(Deleted::Changed),
                    Err(error) => Err(error),
                }
            }
            ExpiryAction::Archive => {
                let archive = inner.keys.archive(&header.key, &header.generation);
                let copy = encode(&header, &payload)?;
                // The archive of one generation: an earlier sweep's is as
                // good as ours.
                match swap::create(store, &mut Attempts::new(), &archive, copy, ()).await {
                    Ok(Created::Written(_) | Created::Taken) => {}
                    Err(error) => return Err(TtlError::store("archive", &archive, error)),
                }
                if !ctx.is_valid() {
                    return Ok(Acted::Retry);
                }
                retire(store, &mut attempts, object, &version, tombstone).await
            }
            ExpiryAction::Callback => {
                return self.callback(ctx, object, version, header, payload).await
            }
        };
        match result {
            Ok(Deleted::Done) => {
                tracing::debug!(target: TARGET, ttl = %inner.name, key = %header.key, epoch, "record expired");
                Ok(Acted::Done)
            }
            Ok(Deleted::Changed) => Ok(Acted::Changed),
            Err(error) => Err(TtlError::store("expire", object, error)),
        }
    }

    /// Removes a record whose callback ran, retrying store errors a few
    /// times while the term lasts; if that fails, remembers it so the next
    /// sweep removes it without running the callback again.
    async fn finish(
        &self,
        ctx: &LeaderContext,
        object: &str,
        claimed: Version,
        tombstone: Bytes,
    ) -> Result<Acted, TtlError> {
        const ATTEMPTS: usize = 3;
        let store = self.inner.store.as_ref();
        let mut last_error = None;
        // The same tombstone each time (and at later sweeps): one that
        // landed under a lost answer is recognised.
        let mut attempts = Attempts::new();
        for _ in 0..ATTEMPTS {
            if !ctx.is_valid() {
                break;
            }
            match retire(store, &mut attempts, object, &claimed, tombstone.clone()).await {
                Ok(_) => {
                    self.called_back().remove(object);
                    return Ok(Acted::Done);
                }
                Err(error) => last_error = Some(error),
            }
        }
        self.called_back()
            .insert(object.to_owned(), (claimed, tombstone));
        match last_error {
            Some(error) => Err(TtlError::store("expire", object, error)),
            None => Ok(Acted::Retry),
        }
    }

    /// Whether this sweeper ran the callback of `object` at `version`
    /// and only its removal is left.
    fn finished_here(&self, object: &str, version: &Version) -> bool {
        self.called_back()
            .get(object)
            .is_some_and(|(claimed, _)| claimed == version)
    }

    fn called_back(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Version, Bytes)>> {
        self.called_back
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Claims the record (compare-and-swap to expiring), runs the callback
    /// with a timeout, then deletes the record conditionally on the claim.
    async fn callback(
        &self,
        ctx: &LeaderContext,
        object: &str,
        version: Version,
        header: RecordHeader,
        payload: Bytes,
    ) -> Result<Acted, TtlError> {
        let inner = &self.inner;
        let store = inner.store.as_ref();
        let Some(callback) = inner.callback.clone() else {
            return Ok(Acted::Retry);
        };
        let claim = RecordHeader {
            state: RecordState::Expiring {
                worker: ctx.worker_id().to_string(),
                epoch: ctx.epoch(),
                lease_ms: ms(inner.config.callback_timeout),
                election: Some(ctx.election().to_owned()),
            },
            nonce: inner.rng.token(),
            ..header.clone()
        };
        let body = codec::encode(&claim, Some(&payload))
            .map_err(|reason| TtlError::corrupt(object, inner.backend(), reason))?;
        if !ctx.is_valid() {
            return Ok(Acted::Retry);
        }
        // A claim that lands under a lost answer is read by the next sweep
        // as this term's own, and acted on then.
        let claimed = match swap(store, &mut Attempts::new(), object, &version, body, ()).await {
            Ok(Swapped::Written(landed)) => landed.version,
            Ok(Swapped::Changed(_)) => return Ok(Acted::Changed),
            Err(error) => return Err(TtlError::store("claim", object, error)),
        };
        let record = ExpiredRecord {
            key: header.key.clone(),
            payload: payload.clone(),
            expires_at_unix_ms: header.expires_at_unix_ms,
            epoch: ctx.epoch(),
        };
        let outcome = tokio::select! {
            // In order: tokio picks a ready branch at random (seeded per
            // process), and a seed must replay a simulated run.
            biased;
            () = ctx.cancelled() => return Ok(Acted::Retry),
            outcome = tokio::time::timeout(inner.config.callback_timeout, callback.expired(record)) => outcome,
        };
        if !ctx.is_valid() {
            return Ok(Acted::Retry);
        }
        match outcome {
            Ok(Ok(())) => {
                let tombstone = RecordHeader {
                    state: RecordState::Deleted { epoch: ctx.epoch() },
                    nonce: inner.rng.token(),
                    ..header
                };
                let tombstone = codec::encode(&tombstone, None)
                    .map_err(|reason| TtlError::corrupt(object, inner.backend(), reason))?;
                self.finish(ctx, object, claimed, tombstone).await
            }
            failed => {
                let error = match failed {
                    Ok(Err(error)) => error.to_string(),
                    _ => "timed out".to_owned(),
                };
                tracing::warn!(target: TARGET, ttl = %inner.name, key = %header.key, error = %error, "expiry callback failed; retrying at a later sweep");
                // Give the claim back so the next sweep can act at once.
                // Landed or not, the next sweep reads the record and acts
                // (a live record, or this term's own claim), so its answer
                // does not matter.
                let back = RecordHeader {
                    nonce: inner.rng.token(),
                    ..header
                };
                if let Ok(body) = codec::encode(&back, Some(&payload)) {
                    let _ = store.compare_and_swap(object, &claimed, body).await;
                }
                Ok(Acted::Retry)
            }
        }
    }
}

enum Acted {
    Done,
    Changed,
    Retry,
}

#[async_trait]
impl CoordinatorPlugin for TtlSweeper {
    fn name(&self) -> &str {
        &self.name
    }

    async fn on_become_coordinator(&self, ctx: LeaderContext) -> Result<(), PluginError> {
        let mut state = self.state.lock().await;
        state.epoch = ctx.epoch();
        state.last_full_scan = None;
        state.attempts.clear();
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        let sealed = self.seal(&ctx, &mut state.attempts).await?;
        state.position = Some(sealed);
        Ok(())
    }

    async fn on_stop_being_coordinator(&self, _reason: StepDownReason) -> Result<(), PluginError> {
        let mut state = self.state.lock().await;
        state.epoch = 0;
        state.position = None;
        state.attempts.clear();
        Ok(())
    }

    async fn coordinator_work(&self, ctx: &LeaderContext) -> Result<(), PluginError> {
        self.sweep(ctx).await?;
        Ok(())
    }

    fn work_interval(&self) -> Option<Duration> {
        Some(self.inner.config.sweep_interval)
    }

    fn scope(&self) -> Option<&PluginScope> {
        Some(&self.inner.scope)
    }
}

impl fmt::Debug for TtlSweeper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TtlSweeper")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
