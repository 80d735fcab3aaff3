//! Registering, refreshing, reading and removing records.

use bytes::Bytes;
use coordinator_store::{LeaseStoreExt, StoreError, Version};
use serde::Serialize;

use super::record::{RecordHeader, RecordState, ENTRY_BODY};
use super::{Expiry, Ttl, TtlError, TtlInner};
use crate::clock::ms;
use crate::codec::{self, FORMAT};
use crate::delete::{retire, Deleted};
use crate::swap::{self, Attempts, Created, Swapped};

/// The longest record key.
const MAX_KEY_BYTES: usize = 512;

/// What [`Ttl::put`] and [`Ttl::refresh`] registered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    /// The registration's generation.
    pub generation: String,
    /// The expiry instant (ms since the epoch).
    pub expires_at_unix_ms: u64,
}

/// The expirer's backlog, from [`Ttl::backlog`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TtlBacklog {
    /// Index entries (one per registration not swept yet, stale ones of
    /// refreshed or removed records included until the sweeper deletes
    /// them).
    pub index_entries: u64,
    /// Those in overdue buckets: buckets that ended at or before now minus
    /// the clock-skew margin, as the sweeper judges them.
    pub overdue: u64,
    /// The start of the oldest overdue bucket (ms since the epoch).
    pub oldest_overdue_bucket_unix_ms: Option<u64>,
}

/// A record as [`Ttl::get`] returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TtlRecord {
    /// The key.
    pub key: String,
    /// The payload.
    pub payload: Bytes,
    /// When it expires (or expired), ms since the epoch.
    pub expires_at_unix_ms: u64,
    /// True if it expired and was soft-deleted.
    pub soft_deleted: bool,
}

fn check_key(key: &str) -> Result<(), TtlError> {
    let reason = if key.is_empty() {
        Some("must not be empty")
    } else if key.len() > MAX_KEY_BYTES {
        Some("is longer than 512 bytes")
    } else if key.chars().any(char::is_control) {
        Some("has control characters")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(TtlError::InvalidName {
            what: "record key",
            name: key.to_owned(),
            reason: reason.into(),
        }),
        None => Ok(()),
    }
}

impl TtlInner {
    pub(crate) async fn read(
        &self,
        key: &str,
    ) -> Result<Option<(Version, RecordHeader, Bytes)>, TtlError> {
        let object = self.keys.record(key);
        let Some(found) = self
            .store
            .get(&object)
            .await
            .map_err(|e| TtlError::store("read", &object, e))?
        else {
            return Ok(None);
        };
        let (header, payload): (RecordHeader, Bytes) = codec::decode(&found.body)
            .map_err(|reason| TtlError::corrupt(&object, self.backend(), reason))?;
        Ok(Some((found.version, header, payload)))
    }

    fn expiry_instant(&self, expiry: Expiry) -> u64 {
        match expiry {
            Expiry::After(d) => self.clock.unix_ms().saturating_add(ms(d)),
            Expiry::At(at) => at,
        }
    }

    /// Writes the index entry of a registration (before the record).
    pub(crate) async fn write_entry(
        &self,
        key: &str,
        generation: &str,
        expires_at: u64,
    ) -> Result<(), TtlError> {
        let bucket = self.bucket_of(expires_at.max(self.clock.unix_ms()));
        let entry = self.keys.entry(bucket, key, generation);
        // The generation in its key is fresh: whatever entry is there is
        // this registration's (crate::swap settles an ambiguous answer).
        let body = Bytes::from_static(ENTRY_BODY);
        match swap::create(self.store.as_ref(), &mut Attempts::new(), &entry, body, ()).await {
            Ok(Created::Written(_) | Created::Taken) => Ok(()),
            Err(error) => Err(TtlError::store("index", &entry, error)),
        }
    }

    fn encode(
        &self,
        object: &str,
        header: &RecordHeader,
        payload: &[u8],
    ) -> Result<Bytes, TtlError> {
        codec::encode(header, Some(payload))
            .map_err(|reason| TtlError::corrupt(object, self.backend(), reason))
    }
}

impl Ttl {
    /// How far behind the sweeper is, for a reader that shows it
    /// (`coordinator status`) without knowing the index layout: one LIST
    /// of the index (one request per 1,000 entries), nothing written.
    /// Overdue is judged as the sweeper judges it, on this handle's clock.
    ///
    /// # Errors
    ///
    /// [`TtlError::Store`] if the listing failed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn backlog(&self) -> Result<TtlBacklog, TtlError> {
        let inner = &self.inner;
        let index = inner.keys.index();
        let listed = inner
            .store
            .list(&index)
            .await
            .map_err(|e| TtlError::store("backlog", &index, e))?;
        let now = inner.clock.unix_ms();
        let due_until = inner.bucket_of(now.saturating_sub(ms(inner.config.clock_skew_margin)));
        let mut backlog = TtlBacklog {
            index_entries: 0,
            overdue: 0,
            oldest_overdue_bucket_unix_ms: None,
        };
        for meta in &listed {
            let Some((bucket, _, _)) = inner.keys.parse_entry(&meta.key) else {
                continue;
            };
            backlog.index_entries += 1;
            if bucket < due_until {
                backlog.overdue += 1;
                let oldest = backlog.oldest_overdue_bucket_unix_ms.get_or_insert(bucket);
                *oldest = (*oldest).min(bucket);
            }
        }
        Ok(backlog)
    }

    /// Writes (or replaces) the record at `key` with `payload`, expiring as
    /// `expiry` says. Two writes: the index entry, then the record (create,
    /// or compare-and-swap over what is there).
    ///
    /// # Errors
    ///
    /// [`TtlError::InvalidName`] for a bad key; [`TtlError::Store`];
    /// [`TtlError::Contended`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe (an entry may be left; it is stale and cleaned up).
    pub async fn put(
        &self,
        key: &str,
        payload: impl Into<Bytes>,
        expiry: Expiry,
    ) -> Result<Registration, TtlError> {
        check_key(key)?;
        let inner = &self.inner;
        let payload = payload.into();
        let object = inner.keys.record(key);
        let expires_at = inner.expiry_instant(expiry);
        let generation = inner.ids.next(inner.clock.unix_ms()).to_string();
        inner.write_entry(key, &generation, expires_at).await?;
        let header = RecordHeader {
            format: FORMAT,
            key: key.to_owned(),
            generation: generation.clone(),
            expires_at_unix_ms: expires_at,
            nonce: inner.rng.token(),
            state: RecordState::Live,
        };
        let body = inner.encode(&object, &header, &payload)?;
        let registration = Registration {
            generation,
            expires_at_unix_ms: expires_at,
        };
        // Create, or compare-and-swap over what is there; our own write
        // applied by a hidden retry is ours (crate::swap).
        let mut attempts = Attempts::new();
        let mut expected: Option<Version> = None;
        for _ in 0..5 {
            let written = swap::write(
                inner.store.as_ref(),
                &mut attempts,
                &object,
                expected.as_ref(),
                body.clone(),
                (),
            )
            .await;
            match written {
                Ok(Swapped::Written(_)) => return Ok(registration),
                Ok(Swapped::Changed(found)) => expected = found.map(|found| found.version),
                // Not applied, perhaps not yet: try again.
                Err(StoreError::Conflict { .. } | StoreError::Ambiguous { .. }) => {}
                Err(error) => return Err(TtlError::store("put", &object, error)),
            }
        }
        Err(TtlError::Contended {
            key: key.to_owned(),
        })
    }

    /// Moves a live record's expiry (a new generation; the old index entry
    /// goes stale). A sweep that read the old version can no longer act on
    /// it.
    ///
    /// # Errors
    ///
    /// [`TtlError::NoSuchRecord`] if there is no live record;
    /// [`TtlError::Store`]; [`TtlError::Contended`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe.
    pub async fn refresh(&self, key: &str, expiry: Expiry) -> Result<Registration, TtlError> {
        check_key(key)?;
        let inner = &self.inner;
        let object = inner.keys.record(key);
        // Our refreshes not known to have landed or not, each with its
        // registration: the one found is the one returned (crate::swap).
        let mut attempts = Attempts::new();
        for _ in 0..5 {
            let Some((version, mut header, payload)) = inner
                .read(key)
                .await?
                .filter(|(_, h, _)| h.state == RecordState::Live)
            else {
                return Err(TtlError::NoSuchRecord {
                    key: key.to_owned(),
                    object,
                });
            };
            let expires_at = inner.expiry_instant(expiry);
            let generation = inner.ids.next(inner.clock.unix_ms()).to_string();
            inner.write_entry(key, &generation, expires_at).await?;
            header.generation = generation.clone();
            header.expires_at_unix_ms = expires_at;
            header.nonce = inner.rng.token();
            let body = inner.encode(&object, &header, &payload)?;
            let registration = Registration {
                generation,
                expires_at_unix_ms: expires_at,
            };
            let swapped = swap::swap(
                inner.store.as_ref(),
                &mut attempts,
                &object,
                &version,
                body,
                registration,
            )
            .await;
            match swapped {
                Ok(Swapped::Written(landed)) => return Ok(landed.ours),
                Ok(Swapped::Changed(_))
                | Err(StoreError::Conflict { .. } | StoreError::Ambiguous { .. }) => continue,
                Err(error) => return Err(TtlError::store("refresh", &object, error)),
            }
        }
        Err(TtlError::Contended {
            key: key.to_owned(),
        })
    }

    /// Reads a record: live or soft-deleted; `None` if absent or deleted.
    /// A live record past its expiry is returned until the leader acts.
    ///
    /// # Errors
    ///
    /// [`TtlError::Store`], [`TtlError::Corrupt`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn get(&self, key: &str) -> Result<Option<TtlRecord>, TtlError> {
        check_key(key)?;
        Ok(self
            .inner
            .read(key)
            .await?
            .and_then(|(_, header, payload)| {
                let soft_deleted = match header.state {
                    RecordState::Live | RecordState::Expiring { .. } => false,
                    RecordState::SoftDeleted { .. } => true,
                    RecordState::Deleted { .. } => return None,
                };
                Some(TtlRecord {
                    key: header.key,
                    payload,
                    expires_at_unix_ms: header.expires_at_unix_ms,
                    soft_deleted,
                })
            }))
    }

    /// Removes a record now (conditional delete, or a tombstone); true if
    /// there was one.
    ///
    /// # Errors
    ///
    /// [`TtlError::Store`], [`TtlError::Contended`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe.
    pub async fn remove(&self, key: &str) -> Result<bool, TtlError> {
        check_key(key)?;
        let inner = &self.inner;
        let object = inner.keys.record(key);
        let mut attempts = Attempts::new();
        for _ in 0..5 {
            let Some((version, mut header, _)) = inner.read(key).await? else {
                return Ok(false);
            };
            if matches!(header.state, RecordState::Deleted { .. }) {
                return Ok(false);
            }
            header.state = RecordState::Deleted { epoch: 0 };
            header.nonce = inner.rng.token();
            let tombstone = inner.encode(&object, &header, &[])?;
            match retire(
                inner.store.as_ref(),
                &mut attempts,
                &object,
                &version,
                tombstone,
            )
            .await
            {
                Ok(Deleted::Done) => return Ok(true),
                Ok(Deleted::Changed) => continue,
                Err(error) => return Err(TtlError::store("remove", &object, error)),
            }
        }
        Err(TtlError::Contended {
            key: key.to_owned(),
        })
    }
}
