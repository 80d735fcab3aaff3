//! The producer's side: enqueue, and what anyone may read: stats, dead
//! letters.

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use coordinator_store::{LeaseStoreExt, StoreError};
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;

use super::record::{ClaimRecord, DeadHeader, MessageHeader, StatsRecord, Stem};
use super::{Queue, QueueError, QueueInner, TARGET};
use crate::clock::ms;
use crate::codec::{self, FORMAT};
use crate::id::SortableId;
use crate::swap::{self, Attempts, Created};
use crate::telemetry::Work;

/// How many creates an [`enqueue_batch`](Queue::enqueue_batch) keeps in
/// flight.
const BATCH_CONCURRENCY: usize = 16;

/// A snapshot of a queue, from [`Queue::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    /// Messages no worker holds that may be claimed now.
    pub pending: u64,
    /// Messages waiting out a retry back-off (or an enqueue delay).
    pub delayed: u64,
    /// Messages a worker holds (a live claim).
    pub in_flight: u64,
    /// Claims that ended (completed, failed) and await the leader's clean-up.
    pub finishing: u64,
    /// Messages completed so far (the leader's counter).
    pub completed: u64,
    /// Failed attempts so far, stalled claims included (the leader's counter).
    pub failed: u64,
    /// Dead letters now in the queue.
    pub dead: u64,
}

/// A message whose attempts ran out, with every error kept; from
/// [`Queue::dead_letters`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// The message's id, as [`enqueue`](Queue::enqueue) returned it.
    pub id: SortableId,
    /// Attempts made.
    pub attempts: u32,
    /// The errors of the attempts, oldest first (the newest
    /// [`max_errors_kept`](super::QueueConfig::max_errors_kept)).
    pub errors: Vec<String>,
    /// The payload.
    pub payload: Bytes,
    /// When it was first enqueued (producer's wall clock, ms since the epoch).
    pub enqueued_unix_ms: u64,
    /// When the leader dead-lettered it (leader's wall clock).
    pub dead_unix_ms: u64,
}

impl QueueInner {
    /// Creates message `stem` (with `delay_ms` in its key); a write-once
    /// object, so an ambiguous outcome is settled by reading it back.
    pub(crate) async fn create_message(
        &self,
        stem: &Stem,
        delay_ms: u64,
        header: &MessageHeader,
        payload: &[u8],
    ) -> Result<bool, QueueError> {
        let key = self.keys.message(stem, delay_ms);
        let body = codec::encode(header, Some(payload))
            .map_err(|reason| QueueError::corrupt(&key, self.backend(), reason))?;
        // Our own create applied by a hidden retry is ours; a key that
        // existed is never written again (crate::swap).
        let mut attempts = Attempts::new();
        for _ in 0..3 {
            match swap::create(self.store.as_ref(), &mut attempts, &key, body.clone(), ()).await {
                Ok(Created::Written(_)) => {
                    self.count(if stem.attempt == 1 {
                        Work::Enqueued
                    } else {
                        Work::Retried
                    });
                    return Ok(true);
                }
                Ok(Created::Taken) => return Ok(false),
                Err(StoreError::Ambiguous { .. }) => continue,
                Err(error) => return Err(QueueError::store("enqueue", &key, error)),
            }
        }
        Err(QueueError::store(
            "enqueue",
            &key,
            StoreError::Backend {
                op: "create",
                key: key.clone(),
                backend: self.backend(),
                source: "three ambiguous attempts in a row".into(),
            },
        ))
    }

    async fn enqueue_one(&self, payload: Bytes, delay: Duration) -> Result<SortableId, QueueError> {
        let header = MessageHeader {
            format: FORMAT,
            enqueued_unix_ms: self.clock.unix_ms(),
            errors: Vec::new(),
        };
        // A collision of two generators is caught by create-if-absent:
        // draw a new id.
        for _ in 0..4 {
            let origin = self.ids.next(self.clock.unix_ms());
            let stem = Stem {
                origin: origin.clone(),
                attempt: 1,
            };
            if self
                .create_message(&stem, ms(delay), &header, &payload)
                .await?
            {
                tracing::debug!(target: TARGET, queue = %self.name, id = %origin, "enqueued");
                return Ok(origin);
            }
        }
        Err(QueueError::corrupt(
            &self.keys.messages(),
            self.backend(),
            "four fresh ids in a row already existed; is another program writing under this prefix?"
                .into(),
        ))
    }
}

impl Queue {
    /// Adds one message; returns its id (sortable: FIFO order).
    ///
    /// # Errors
    ///
    /// [`QueueError::Store`] if the store failed (nothing was enqueued, or
    /// the outcome was settled by reading back).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a dropped call may or may not have enqueued.
    pub async fn enqueue(&self, payload: impl Into<Bytes>) -> Result<SortableId, QueueError> {
        self.inner.enqueue_one(payload.into(), Duration::ZERO).await
    }

    /// Adds one message that no worker claims until `delay` has passed on
    /// the worker's own clock since it first saw the message listed (so
    /// at least `delay`, never less).
    ///
    /// # Errors
    ///
    /// As for [`enqueue`](Self::enqueue).
    ///
    /// # Cancel safety
    ///
    /// As for [`enqueue`](Self::enqueue).
    pub async fn enqueue_delayed(
        &self,
        payload: impl Into<Bytes>,
        delay: Duration,
    ) -> Result<SortableId, QueueError> {
        self.inner.enqueue_one(payload.into(), delay).await
    }

    /// Adds many messages, up to 16 writes in flight; ids are drawn in
    /// input order, so FIFO order follows the input.
    ///
    /// # Errors
    ///
    /// The first error; messages written before it stay enqueued.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use coordinator_plugins::queue::Queue;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), coordinator_plugins::queue::QueueError> {
    /// # let registry = coordinator_runtime::CoordinatorRegistry::new(
    /// #     Arc::new(coordinator_store::MemoryStore::new()),
    /// #     coordinator_runtime::CoordinatorConfig::default().with_worker_id("w1"),
    /// # ).unwrap();
    /// # let queue = Queue::builder(&registry, "ns", "q").build()?;
    /// let ids = queue.enqueue_batch(["a", "b", "c"]).await?;
    /// assert!(ids.windows(2).all(|w| w[0] < w[1]));
    /// assert_eq!(queue.stats().await?.pending, 3);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn enqueue_batch<I, P>(&self, payloads: I) -> Result<Vec<SortableId>, QueueError>
    where
        I: IntoIterator<Item = P>,
        P: Into<Bytes>,
    {
        let inner = &self.inner;
        let now = inner.clock.unix_ms();
        let header = MessageHeader {
            format: FORMAT,
            enqueued_unix_ms: now,
            errors: Vec::new(),
        };
        let items: Vec<(SortableId, Bytes)> = payloads
            .into_iter()
            .map(|p| (inner.ids.next(now), p.into()))
            .collect();
        futures::stream::iter(items)
            .map(|(origin, payload)| {
                let header = &header;
                async move {
                    let stem = Stem {
                        origin: origin.clone(),
                        attempt: 1,
                    };
                    if inner.create_message(&stem, 0, header, &payload).await? {
                        Ok(origin)
                    } else {
                        inner.enqueue_one(payload, Duration::ZERO).await
                    }
                }
            })
            .buffered(BATCH_CONCURRENCY)
            .try_collect()
            .await
    }

    /// Counts the queue: two listings, one read per claim and one of the
    /// leader's counters.
    ///
    /// # Errors
    ///
    /// [`QueueError::Store`] or [`QueueError::Corrupt`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe (reads only).
    pub async fn stats(&self) -> Result<QueueStats, QueueError> {
        let inner = &self.inner;
        let store = &inner.store;
        let messages = store
            .list(&inner.keys.messages())
            .await
            .map_err(|e| QueueError::store("stats", &inner.keys.messages(), e))?;
        let claims = store
            .list(&inner.keys.claims())
            .await
            .map_err(|e| QueueError::store("stats", &inner.keys.claims(), e))?;
        let dead = store
            .list(&inner.keys.dead_prefix())
            .await
            .map_err(|e| QueueError::store("stats", &inner.keys.dead_prefix(), e))?;
        let claimed: HashSet<Stem> = claims
            .iter()
            .filter_map(|meta| inner.keys.parse_claim(&meta.key))
            .collect();
        let mut stats = QueueStats {
            dead: dead.len() as u64,
            ..QueueStats::default()
        };
        for meta in &messages {
            if let Some((stem, delay)) = inner.keys.parse_message(&meta.key) {
                if claimed.contains(&stem) {
                    continue;
                }
                if delay == 0 {
                    stats.pending += 1;
                } else {
                    stats.delayed += 1;
                }
            }
        }
        for meta in &claims {
            let Some(found) = store
                .get(&meta.key)
                .await
                .map_err(|e| QueueError::store("stats", &meta.key, e))?
            else {
                continue;
            };
            let (record, _): (ClaimRecord, Bytes) = codec::decode(&found.body)
                .map_err(|reason| QueueError::corrupt(&meta.key, inner.backend(), reason))?;
            if record.state.is_live() {
                stats.in_flight += 1;
            } else {
                stats.finishing += 1;
            }
        }
        let stats_key = inner.keys.stats();
        if let Some(found) = store
            .get(&stats_key)
            .await
            .map_err(|e| QueueError::store("stats", &stats_key, e))?
        {
            let (record, _): (StatsRecord, Bytes) = codec::decode(&found.body)
                .map_err(|reason| QueueError::corrupt(&stats_key, inner.backend(), reason))?;
            stats.completed = record.counts.completed;
            stats.failed = record.counts.failed;
        }
        Ok(stats)
    }

    /// Every dead letter, oldest id first (one listing, one read each).
    ///
    /// # Errors
    ///
    /// [`QueueError::Store`] or [`QueueError::Corrupt`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe (reads only).
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, QueueError> {
        let inner = &self.inner;
        let prefix = inner.keys.dead_prefix();
        let listed = inner
            .store
            .list(&prefix)
            .await
            .map_err(|e| QueueError::store("dead_letters", &prefix, e))?;
        let mut out = Vec::with_capacity(listed.len());
        for meta in listed {
            let Some(id) = meta
                .key
                .strip_prefix(&prefix)
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(SortableId::parse)
            else {
                continue;
            };
            let Some(found) = inner
                .store
                .get(&meta.key)
                .await
                .map_err(|e| QueueError::store("dead_letters", &meta.key, e))?
            else {
                continue;
            };
            let (header, payload): (DeadHeader, Bytes) = codec::decode(&found.body)
                .map_err(|reason| QueueError::corrupt(&meta.key, inner.backend(), reason))?;
            out.push(DeadLetter {
                id,
                attempts: header.attempts,
                errors: header.errors,
                payload,
                enqueued_unix_ms: header.enqueued_unix_ms,
                dead_unix_ms: header.dead_unix_ms,
            });
        }
        Ok(out)
    }
}
