//! The worker's side: claim messages ([`Consumer`]), hold them
//! ([`ClaimHandle`]), end them ([`ClaimedMessage`]).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use coordinator_core::Instant;
use coordinator_store::{LeaseStoreExt, ObjectMeta, StoreError, Version};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::record::{ClaimRecord, ClaimState, MessageHeader, Next, Stem};
use super::{Queue, QueueError, QueueInner, TARGET};
use crate::clock::ms;
use crate::codec::{self, FORMAT};
use crate::delete::delete_write_once;
use crate::id::SortableId;
use crate::observe::Observations;
use crate::swap::{self, Attempts, Created, Swapped};

/// The longest error text kept per attempt.
const MAX_ERROR_BYTES: usize = 2048;

/// One delivery of a message, as a handler sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The message's id, the same on every attempt (what
    /// [`enqueue`](Queue::enqueue) returned).
    pub id: SortableId,
    /// Which attempt this is, from 1.
    pub attempt: u32,
    /// The payload as enqueued.
    pub payload: Bytes,
    /// The errors of earlier attempts, oldest first.
    pub errors: Vec<String>,
    /// When it was enqueued (producer's wall clock, ms since the epoch).
    pub enqueued_unix_ms: u64,
}

/// What [`ClaimedMessage::fail`] led to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailOutcome {
    /// Another attempt follows after `delay`.
    Retry {
        /// The number of the next attempt.
        attempt: u32,
        /// The back-off before it.
        delay: Duration,
    },
    /// That was the last attempt: the leader moves the message to the dead
    /// letters, with its errors.
    DeadLettered,
}

/// Counters of one [`Consumer`] (and of the [`QueueWorker`](super::QueueWorker)
/// that drives it), since it was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WorkerStats {
    /// Claims taken.
    pub claimed: u64,
    /// Claims completed.
    pub completed: u64,
    /// Attempts failed by the handler (retried or dead-lettered).
    pub failed: u64,
    /// Claim races lost to another worker (each cost one write).
    pub races_lost: u64,
    /// Handlers cancelled because the visibility ran out on this worker.
    pub expired: u64,
    /// Completions, failures or extensions the store rejected because the
    /// claim had been recovered (late completions).
    pub rejected: u64,
    /// Listings made to find messages.
    pub polls: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) claimed: AtomicU64,
    pub(crate) completed: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) races_lost: AtomicU64,
    pub(crate) expired: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) polls: AtomicU64,
}

impl Counters {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> WorkerStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        WorkerStats {
            claimed: get(&self.claimed),
            completed: get(&self.completed),
            failed: get(&self.failed),
            races_lost: get(&self.races_lost),
            expired: get(&self.expired),
            rejected: get(&self.rejected),
            polls: get(&self.polls),
        }
    }
}

/// Claims messages for one worker. Keeps the worker's observations of
/// delayed messages (a delay counts from when *this* worker first saw the
/// message listed, on its own clock).
///
/// # Examples
///
/// ```
/// # use std::sync::Arc;
/// # use coordinator_plugins::queue::{Queue, FailOutcome};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), coordinator_plugins::queue::QueueError> {
/// # let registry = coordinator_runtime::CoordinatorRegistry::new(
/// #     Arc::new(coordinator_store::MemoryStore::new()),
/// #     coordinator_runtime::CoordinatorConfig::default().with_worker_id("w1"),
/// # ).unwrap();
/// # let queue = Queue::builder(&registry, "ns", "q").build()?;
/// queue.enqueue("job").await?;
/// let consumer = queue.consumer();
/// assert_eq!(consumer.worker_id(), "w1");
/// let mut claimed = consumer.claim(10).await?;
/// let message = claimed.pop().unwrap();
/// assert_eq!(message.message().attempt, 1);
/// let outcome = message.fail("database down").await?;
/// assert!(matches!(outcome, FailOutcome::Retry { attempt: 2, .. }));
/// assert_eq!(consumer.stats().failed, 1);
/// # Ok(())
/// # }
/// ```
pub struct Consumer {
    queue: Arc<QueueInner>,
    worker: String,
    seen: Mutex<Observations>,
    counters: Arc<Counters>,
    /// Claims whose answer was lost (throttled, unavailable, ambiguous):
    /// claim key → every claim sent for it. The next poll claims that
    /// message again even though a claim is listed, and recognises its own
    /// ([`crate::swap`]) instead of leaving it to expire unrun.
    pending: Mutex<HashMap<String, Attempts<Claiming>>>,
}

/// A claim as sent: what its claimer holds should it be the one that
/// landed.
struct Claiming {
    /// The instant just before it was sent: its visibility counts from here.
    started: Instant,
    token: String,
    visibility_ms: u64,
}

impl Queue {
    /// A consumer claiming as the worker of the registry the queue was
    /// built from (the id written into claims and logs).
    pub fn consumer(&self) -> Consumer {
        Consumer {
            queue: self.inner.clone(),
            worker: self.inner.scope.worker_id().to_string(),
            seen: Mutex::new(Observations::default()),
            counters: Arc::new(Counters::default()),
            pending: Mutex::new(HashMap::new()),
        }
    }
}

impl Consumer {
    /// The worker id claims are made as.
    pub fn worker_id(&self) -> &str {
        &self.worker
    }

    /// This consumer's counters.
    pub fn stats(&self) -> WorkerStats {
        self.counters.snapshot()
    }

    pub(crate) fn queue(&self) -> &Arc<QueueInner> {
        &self.queue
    }

    /// Lists the head of the queue and claims up to `max` messages that no
    /// one holds, in id order (see
    /// [`claim_window`](super::QueueConfig::claim_window)). Costs a listing
    /// of the claims and one page of messages (more only while the head is
    /// all claimed or delayed), then one create per message claimed, and
    /// one create and one read per race lost.
    ///
    /// # Errors
    ///
    /// [`QueueError::Store`] if listing failed, or if claiming failed before
    /// anything was claimed (claims taken before a later error are returned,
    /// and the error is logged by the caller's next attempt). A claim whose
    /// answer was lost (throttled, say) may have landed: this consumer's
    /// next call recognises it as its own and returns it, first.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a dropped call may hold claims that then expire and
    /// are recovered by the leader (counted as a failed attempt).
    pub async fn claim(&self, max: usize) -> Result<Vec<ClaimedMessage>, QueueError> {
        let q = &self.queue;
        Counters::bump(&self.counters.polls);
        let messages_prefix = q.keys.messages();
        let claims_prefix = q.keys.claims();
        // Only the head of the queue matters: read pages of messages until
        // enough are claimable (one LIST on a deep queue, not one per
        // 1,000 messages). Claims are few (in flight or finishing), so
        // they are listed whole.
        let wanted = max.max(q.config.claim_window).max(1);
        let page_size = (wanted * 4).clamp(64, 1_000);
        let (first_page, claims) = futures::join!(
            q.store.list_page(&messages_prefix, None, page_size),
            q.store.list(&claims_prefix)
        );
        let claims = claims.map_err(|e| QueueError::store("claim", &claims_prefix, e))?;
        let claimed: HashSet<Stem> = claims
            .iter()
            .filter_map(|meta| q.keys.parse_claim(&meta.key))
            .collect();
        // Our claims whose answer was lost: claimed again (a listed one may
        // be ours), and first, while their visibility lasts.
        let pending: HashSet<Stem> = self
            .pending()
            .keys()
            .filter_map(|key| q.keys.parse_claim(key))
            .collect();
        let mut listed_stems: HashSet<Stem> = HashSet::new();
        let mut page = first_page.map_err(|e| QueueError::store("claim", &messages_prefix, e))?;
        let mut candidates = Vec::new();
        // A retry is claimable only once its earlier attempt's message is
        // gone: until then the leader may still be writing it (see the
        // leader's `finish`), and taking it could run the message twice at
        // once. Attempts of one message are adjacent keys; the map spans
        // pages.
        let mut first_attempt: HashMap<SortableId, u32> = HashMap::new();
        let mut listed: HashSet<String> = HashSet::new();
        loop {
            let short = page.len() < page_size;
            let now = q.clock.now();
            let parsed: Vec<(Stem, u64, &ObjectMeta)> = page
                .iter()
                .filter_map(|meta| {
                    q.keys
                        .parse_message(&meta.key)
                        .map(|(stem, delay_ms)| (stem, delay_ms, meta))
                })
                .collect();
            for (stem, _, _) in &parsed {
                let first = first_attempt
                    .entry(stem.origin.clone())
                    .or_insert(stem.attempt);
                *first = (*first).min(stem.attempt);
            }
            {
                let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
                for (stem, delay_ms, meta) in parsed {
                    listed.insert(meta.key.clone());
                    listed_stems.insert(stem.clone());
                    if (claimed.contains(&stem) && !pending.contains(&stem))
                        || first_attempt
                            .get(&stem.origin)
                            .is_some_and(|first| *first < stem.attempt)
                    {
                        continue;
                    }
                    if delay_ms > 0
                        && seen.observe(&meta.key, &meta.version, now)
                            < Duration::from_millis(delay_ms)
                    {
                        continue;
                    }
                    candidates.push((stem, meta.key.clone()));
                }
                // Forget observations only when the whole queue was read.
                if short {
                    seen.retain(|key| listed.contains(key));
                }
            }
            if short || candidates.len() >= wanted {
                break;
            }
            let after = page.last().map(|m| m.key.clone());
            page = q
                .store
                .list_page(&messages_prefix, after.as_deref(), page_size)
                .await
                .map_err(|e| QueueError::store("claim", &messages_prefix, e))?;
        }
        let window = q.config.claim_window.min(candidates.len());
        if window > 1 {
            let start = q.rng.below(window as u64) as usize;
            candidates[..window].rotate_left(start);
        }
        candidates.sort_by_key(|(stem, _)| !pending.contains(stem));
        if page.len() < page_size {
            // The whole queue was read: a lost claim whose message is gone
            // and which is not listed is settled; should it land yet, the
            // leader abandons it (its message is gone).
            self.pending().retain(|key, _| {
                q.keys
                    .parse_claim(key)
                    .is_none_or(|stem| claimed.contains(&stem) || listed_stems.contains(&stem))
            });
        }
        let mut out = Vec::new();
        let mut last_error = None;
        for (stem, message_key) in candidates {
            if out.len() >= max {
                break;
            }
            match self.try_claim(stem, message_key).await {
                Ok(Some(claimed)) => out.push(claimed),
                Ok(None) => {}
                Err(error) => {
                    last_error = Some(error);
                    break;
                }
            }
        }
        match last_error {
            Some(error) if out.is_empty() => Err(error),
            _ => Ok(out),
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, Attempts<Claiming>>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn claim_record(&self, message_key: &str, state: ClaimState) -> ClaimRecord {
        ClaimRecord {
            format: FORMAT,
            message: message_key.to_owned(),
            nonce: self.queue.rng.token(),
            updated_unix_ms: self.queue.clock.unix_ms(),
            state,
        }
    }

    async fn try_claim(
        &self,
        stem: Stem,
        message_key: String,
    ) -> Result<Option<ClaimedMessage>, QueueError> {
        let q = &self.queue;
        let claim_key = q.keys.claim(&stem);
        let token = q.rng.token();
        let visibility_ms = ms(q.config.visibility_timeout);
        let record = self.claim_record(
            &message_key,
            ClaimState::Claimed {
                worker: self.worker.clone(),
                token: token.clone(),
                visibility_ms,
                renewals: 0,
            },
        );
        let body = codec::encode(&record, None)
            .map_err(|reason| QueueError::corrupt(&claim_key, q.backend(), reason))?;
        // The claimer's lease counts from before its request.
        let started = q.clock.now();
        // Our own create that landed is ours (crate::swap): applied by a
        // hidden retry, or an earlier poll's whose answer was lost. One GET
        // per race lost.
        let mut attempts = self.pending().remove(&claim_key).unwrap_or_default();
        let sent = Claiming {
            started,
            token,
            visibility_ms,
        };
        let created = swap::create(q.store.as_ref(), &mut attempts, &claim_key, body, sent).await;
        let (version, claiming) = match created {
            Ok(Created::Written(landed)) => (landed.version, landed.ours),
            Ok(Created::Taken) => {
                Counters::bump(&self.counters.races_lost);
                return Ok(None);
            }
            Err(error) => {
                self.pending().insert(claim_key.clone(), attempts);
                return match error {
                    // Not there yet: the next poll tries again.
                    StoreError::Ambiguous { .. } => Ok(None),
                    error => Err(QueueError::store("claim", &claim_key, error)),
                };
            }
        };
        Counters::bump(&self.counters.claimed);
        let deadline = claiming.started + Duration::from_millis(claiming.visibility_ms);
        let handle = ClaimHandle {
            inner: Arc::new(ClaimInner {
                queue: q.clone(),
                claim_key: claim_key.clone(),
                message_key: message_key.clone(),
                worker: self.worker.clone(),
                token: claiming.token,
                deadline_ms: AtomicU64::new(deadline.as_millis()),
                cancel: CancellationToken::new(),
                live: tokio::sync::Mutex::new(Live {
                    version,
                    renewals: 0,
                    visibility_ms: claiming.visibility_ms,
                    ended: false,
                    attempts: Attempts::new(),
                }),
                counters: self.counters.clone(),
            }),
        };
        if !handle.is_valid() {
            // Ours, but recognised only after its visibility ran out: give
            // it back at once rather than leave it to expire unrun.
            let _ = handle
                .end(
                    "abandon",
                    ClaimState::Abandoned {
                        reason: "claimed by a write whose answer was lost; its visibility ran out before the claimer saw it".into(),
                    },
                )
                .await;
            return Ok(None);
        }
        let found = match q.store.get(&message_key).await {
            Ok(found) => found,
            Err(error) => {
                // Keep the claim: it expires and the leader recovers it.
                return Err(QueueError::store("claim", &message_key, error));
            }
        };
        let Some(found) = found else {
            // A stale listing: the message was finished and deleted after we
            // listed it. End our claim; the leader deletes it.
            let _ = handle
                .end(
                    "abandon",
                    ClaimState::Abandoned {
                        reason: "the message was already gone".into(),
                    },
                )
                .await;
            return Ok(None);
        };
        let decoded: Result<(MessageHeader, Bytes), String> = codec::decode(&found.body);
        let (header, payload) = match decoded {
            Ok(parts) => parts,
            Err(reason) => {
                let _ = handle
                    .end(
                        "fail",
                        ClaimState::Failed {
                            worker: self.worker.clone(),
                            error: format!("unreadable message: {reason}"),
                            next: Next::Dead,
                            by_epoch: None,
                            followed_up: false,
                        },
                    )
                    .await;
                return Err(QueueError::corrupt(&message_key, q.backend(), reason));
            }
        };
        tracing::debug!(target: TARGET, queue = %q.name, worker_id = %self.worker, key = %claim_key, "claimed");
        Ok(Some(ClaimedMessage {
            message: Message {
                id: stem.origin.clone(),
                attempt: stem.attempt,
                payload,
                errors: header.errors,
                enqueued_unix_ms: header.enqueued_unix_ms,
            },
            handle,
            stem,
        }))
    }
}

impl fmt::Debug for Consumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("queue", &self.queue.name)
            .field("worker", &self.worker)
            .field("stats", &self.stats())
            .finish()
    }
}

struct Live {
    version: Version,
    renewals: u32,
    visibility_ms: u64,
    ended: bool,
    /// Our changes of the claim not known to have landed or not
    /// ([`crate::swap`]): the next change may meet one of them.
    attempts: Attempts<Sent>,
}

/// A change of a claim, as sent.
#[derive(Clone, Copy)]
enum Sent {
    /// An extension, sent at `started`.
    Extend {
        started: Instant,
        visibility_ms: u64,
        renewals: u32,
    },
    /// A terminal state.
    End { abandon: bool },
}

struct ClaimInner {
    queue: Arc<QueueInner>,
    claim_key: String,
    message_key: String,
    worker: String,
    token: String,
    deadline_ms: AtomicU64,
    cancel: CancellationToken,
    live: tokio::sync::Mutex<Live>,
    counters: Arc<Counters>,
}

/// A worker's hold on one claimed message: whether it still holds it, when
/// it stops, and a way to extend it. Cheap to clone.
///
/// The claim is a lease judged on this worker's own clock, counted from
/// just before the claim (or the last extension) was sent; the token fires
/// when the [`QueueWorker`](super::QueueWorker) gives the claim up.
#[derive(Clone)]
pub struct ClaimHandle {
    inner: Arc<ClaimInner>,
}

impl ClaimHandle {
    /// The instant (on the queue's clock) at which this worker stops
    /// holding the message unless it extends.
    pub fn deadline(&self) -> Instant {
        Instant::from_millis(self.inner.deadline_ms.load(Ordering::Acquire))
    }

    /// Time left before the [`deadline`](Self::deadline).
    pub fn remaining(&self) -> Duration {
        self.deadline()
            .saturating_since(self.inner.queue.clock.now())
    }

    /// True while this worker still holds the claim: not given up and the
    /// deadline not passed, checked now. Check it just before an effect
    /// that must not happen twice.
    pub fn is_valid(&self) -> bool {
        !self.inner.cancel.is_cancelled() && self.inner.queue.clock.now() < self.deadline()
    }

    /// Fires when the claim is given up (deadline passed, claim lost, or
    /// ended).
    pub fn cancellation_token(&self) -> &CancellationToken {
        &self.inner.cancel
    }

    /// The claim key (for logs).
    pub fn key(&self) -> &str {
        &self.inner.claim_key
    }

    /// Extends the claim: this worker holds the message for `visibility`
    /// from now (a compare-and-swap on the claim's version; observers
    /// restart their count when they see the new version).
    ///
    /// # Errors
    ///
    /// [`QueueError::ClaimLost`] if the claim had already been given up or
    /// recovered (the handler should stop); [`QueueError::Store`] if the
    /// store failed (the claim still holds until its current deadline).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a dropped call may have extended the claim.
    pub async fn extend(&self, visibility: Duration) -> Result<(), QueueError> {
        let inner = &self.inner;
        let q = &inner.queue;
        let mut live = inner.live.lock().await;
        loop {
            if live.ended || !self.is_valid() {
                return Err(self.lost(
                    "extend",
                    "its visibility deadline had passed on this worker",
                ));
            }
            let renewals = live.renewals + 1;
            let record = ClaimRecord {
                format: FORMAT,
                message: inner.message_key.clone(),
                nonce: q.rng.token(),
                updated_unix_ms: q.clock.unix_ms(),
                state: ClaimState::Claimed {
                    worker: inner.worker.clone(),
                    token: inner.token.clone(),
                    visibility_ms: ms(visibility),
                    renewals,
                },
            };
            let sent = Sent::Extend {
                started: q.clock.now(),
                visibility_ms: ms(visibility),
                renewals,
            };
            match self.swap(&mut live, &record, sent).await? {
                Swapped::Written(landed) => match landed.ours {
                    Sent::Extend { .. } => {
                        self.landed(&mut live, landed.version, landed.ours);
                        if landed.latest {
                            return Ok(());
                        }
                        // An earlier extension of ours (its answer was
                        // lost): write this one over it.
                    }
                    Sent::End { .. } => {
                        live.ended = true;
                        inner.cancel.cancel();
                        return Err(self.lost("extend", "the claim had already ended"));
                    }
                },
                Swapped::Changed(_) => {
                    live.ended = true;
                    inner.cancel.cancel();
                    return Err(self.lost("extend", "the claim changed: the leader recovered it"));
                }
            }
        }
    }

    /// Takes in a change of ours found at `version`: an extension counts
    /// from before it was sent.
    fn landed(&self, live: &mut Live, version: Version, sent: Sent) {
        live.version = version;
        if let Sent::Extend {
            started,
            visibility_ms,
            renewals,
        } = sent
        {
            live.renewals = renewals;
            live.visibility_ms = visibility_ms;
            self.inner.deadline_ms.store(
                (started + Duration::from_millis(visibility_ms)).as_millis(),
                Ordering::Release,
            );
        }
    }

    /// The compare-and-swap every claim change uses, on the version this
    /// worker wrote last, as one more attempt of the changes `live` holds
    /// unresolved. A refusal or an ambiguous outcome is settled by reading
    /// the claim back ([`crate::swap`]): our own write, applied by a hidden
    /// client retry or by an earlier call whose answer was lost, is not a
    /// lost claim.
    async fn swap(
        &self,
        live: &mut Live,
        record: &ClaimRecord,
        sent: Sent,
    ) -> Result<Swapped<Sent>, QueueError> {
        Ok(self.swap_seeing_gone(live, record, sent).await?.0)
    }

    /// As [`swap`](Self::swap), also saying whether a claim found gone may
    /// have been ended by one of our writes ([`swap::swap_seeing_gone`]).
    async fn swap_seeing_gone(
        &self,
        live: &mut Live,
        record: &ClaimRecord,
        sent: Sent,
    ) -> Result<(Swapped<Sent>, bool), QueueError> {
        let inner = &self.inner;
        let q = &inner.queue;
        let body = codec::encode(record, None)
            .map_err(|reason| QueueError::corrupt(&inner.claim_key, q.backend(), reason))?;
        let expected = live.version.clone();
        swap::swap_seeing_gone(
            q.store.as_ref(),
            &mut live.attempts,
            &inner.claim_key,
            &expected,
            body,
            sent,
        )
        .await
        .map_err(|error| QueueError::store("claim", &inner.claim_key, error))
    }

    /// Completes when the claim is given up: at once if it was, or when
    /// the deadline (which extensions move) passes on the queue's clock, in
    /// which case the token is cancelled and the expiry counted.
    pub(crate) async fn expired(&self) {
        let inner = &self.inner;
        loop {
            if inner.cancel.is_cancelled() {
                return;
            }
            let deadline = self.deadline();
            if inner.queue.clock.now() >= deadline {
                inner.cancel.cancel();
                Counters::bump(&inner.counters.expired);
                tracing::warn!(target: TARGET, queue = %inner.queue.name, worker_id = %inner.worker,
                    key = %inner.claim_key, "visibility ran out before the handler finished; handler cancelled");
                return;
            }
            tokio::select! {
                // In order: tokio picks a ready branch at random (seeded per
                // process), and a seed must replay a simulated run.
                biased;
                () = inner.cancel.cancelled() => return,
                () = crate::clock::sleep_until(inner.queue.clock.as_ref(), deadline) => {}
            }
        }
    }

    fn lost(&self, op: &'static str, why: &'static str) -> QueueError {
        QueueError::ClaimLost {
            op,
            key: self.inner.claim_key.clone(),
            worker: self.inner.worker.clone(),
            why,
        }
    }

    /// Ends the claim with a terminal state, by compare-and-swap on the
    /// version this worker wrote last. Tried even after the local deadline:
    /// the store is the judge, and it accepts only if no one recovered it.
    async fn end(&self, op: &'static str, state: ClaimState) -> Result<(), QueueError> {
        let inner = &self.inner;
        let q = &inner.queue;
        let mut live = inner.live.lock().await;
        if live.ended {
            return Err(self.lost(op, "the claim had already ended"));
        }
        let abandon = matches!(state, ClaimState::Abandoned { .. });
        loop {
            let record = ClaimRecord {
                format: FORMAT,
                message: inner.message_key.clone(),
                nonce: q.rng.token(),
                updated_unix_ms: q.clock.unix_ms(),
                state: state.clone(),
            };
            let (swapped, maybe_ours) = self
                .swap_seeing_gone(&mut live, &record, Sent::End { abandon })
                .await?;
            match swapped {
                Swapped::Written(landed) => match landed.ours {
                    // An extension of ours whose answer was lost is there:
                    // write the end over it.
                    Sent::Extend { .. } => self.landed(&mut live, landed.version, landed.ours),
                    Sent::End { abandon } => {
                        live.ended = true;
                        inner.cancel.cancel();
                        live.version = landed.version.clone();
                        if abandon {
                            // Nothing for the leader to finish: delete it now.
                            let _ = delete_write_once(
                                q.store.as_ref(),
                                &inner.claim_key,
                                &landed.version,
                            )
                            .await;
                        }
                        return Ok(());
                    }
                },
                // Gone after an answer that left our write in doubt: the
                // leader deletes a claim only once it has finished it, and
                // it may have been this write, landed unseen, that ended
                // it. Not a rejection (the chaos test's seed 26: a
                // completed message reported as "will be delivered
                // again").
                Swapped::Changed(None) if maybe_ours => {
                    live.ended = true;
                    inner.cancel.cancel();
                    tracing::warn!(target: TARGET, queue = %q.name, worker_id = %inner.worker,
                        key = %inner.claim_key, op,
                        "{op} outcome unknown: the claim was gone when read back; the message is either done or will be delivered again");
                    return Err(QueueError::OutcomeUnknown {
                        op,
                        key: inner.claim_key.clone(),
                        worker: inner.worker.clone(),
                    });
                }
                Swapped::Changed(_) => {
                    live.ended = true;
                    inner.cancel.cancel();
                    Counters::bump(&inner.counters.rejected);
                    tracing::warn!(target: TARGET, queue = %q.name, worker_id = %inner.worker,
                        key = %inner.claim_key, op, renewals = live.renewals,
                        visibility_ms = live.visibility_ms,
                        "late {op} rejected: the claim was recovered by the leader; the message will be delivered again");
                    return Err(self.lost(op, "the claim changed: the leader recovered it"));
                }
            }
        }
    }
}

impl fmt::Debug for ClaimHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClaimHandle")
            .field("key", &self.inner.claim_key)
            .field("worker", &self.inner.worker)
            .field("deadline", &self.deadline())
            .field("valid", &self.is_valid())
            .finish()
    }
}

/// A message this worker holds. End it with [`complete`](Self::complete) or
/// [`fail`](Self::fail); dropping it leaves the claim to expire, after which
/// the leader recovers it as a failed attempt.
#[derive(Debug)]
pub struct ClaimedMessage {
    message: Message,
    handle: ClaimHandle,
    stem: Stem,
}

impl ClaimedMessage {
    /// The message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The hold on it (to extend it, or check it).
    pub fn handle(&self) -> &ClaimHandle {
        &self.handle
    }

    /// Marks the message done: one compare-and-swap on the claim; the
    /// leader deletes the message later.
    ///
    /// # Errors
    ///
    /// [`QueueError::ClaimLost`] if the claim was recovered meanwhile (the
    /// completion is rejected, logged as a warning and counted in
    /// [`WorkerStats::rejected`]; the message will be delivered again);
    /// [`QueueError::OutcomeUnknown`] if the write may have landed unseen
    /// and the claim was gone when read back (done, or delivered again);
    /// [`QueueError::Store`] if the store failed (the claim then expires
    /// and the message is retried).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe.
    pub async fn complete(self) -> Result<(), QueueError> {
        let worker = self.handle.inner.worker.clone();
        self.handle
            .end("complete", ClaimState::Completed { worker })
            .await?;
        Counters::bump(&self.handle.inner.counters.completed);
        self.handle
            .inner
            .queue
            .count(crate::telemetry::Work::Handled);
        Ok(())
    }

    /// Records a failed attempt with its error: another attempt follows
    /// after the back-off of the queue's [`RetryPolicy`](crate::RetryPolicy),
    /// or, after the last attempt, a dead letter.
    ///
    /// # Errors
    ///
    /// As for [`complete`](Self::complete).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe.
    pub async fn fail(self, error: impl fmt::Display) -> Result<FailOutcome, QueueError> {
        let inner = &self.handle.inner;
        let policy = inner.queue.config.retry;
        let attempt = self.stem.attempt;
        let (next, outcome) = if policy.has_attempt_after(attempt) {
            let delay = policy.backoff(attempt);
            (
                Next::Retry {
                    delay_ms: ms(delay),
                },
                FailOutcome::Retry {
                    attempt: attempt + 1,
                    delay,
                },
            )
        } else {
            (Next::Dead, FailOutcome::DeadLettered)
        };
        let mut text = error.to_string();
        truncate(&mut text);
        self.handle
            .end(
                "fail",
                ClaimState::Failed {
                    worker: inner.worker.clone(),
                    error: text,
                    next,
                    by_epoch: None,
                    followed_up: false,
                },
            )
            .await?;
        Counters::bump(&inner.counters.failed);
        Ok(outcome)
    }
}

/// Cuts `text` to at most [`MAX_ERROR_BYTES`] on a character boundary.
pub(crate) fn truncate(text: &mut String) {
    if text.len() > MAX_ERROR_BYTES {
        let mut cut = MAX_ERROR_BYTES;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
}
