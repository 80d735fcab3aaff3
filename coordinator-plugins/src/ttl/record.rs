//! The TTL objects and keys.
//!
//! ```text
//! <base>/records/<key>.json                   the record: header line + payload
//! <base>/index/<bucket start ms>/<key>.<gen>  one empty entry per registration, written once
//! <base>/archive/<key>/<gen>.json             archived copies
//! <base>/sweep.json                           how far the leader has swept (epoch-fenced)
//! ```
//!
//! `<key>` is the user's key, percent-encoded into one segment; `<gen>` is
//! the registration's [`SortableId`](crate::SortableId). An index entry is
//! stale once the record's generation differs (it was refreshed) or the
//! record is gone; the sweeper then just deletes the entry.

use serde::{Deserialize, Serialize};

use crate::layout::{decode_segment, encode_segment};

/// The keys of one TTL instance.
#[derive(Clone, Debug)]
pub(crate) struct TtlKeys {
    base: String,
}

impl TtlKeys {
    pub(crate) fn new(base: String) -> Self {
        Self { base }
    }

    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    pub(crate) fn record(&self, key: &str) -> String {
        format!("{}/records/{}.json", self.base, encode_segment(key))
    }

    pub(crate) fn index(&self) -> String {
        format!("{}/index/", self.base)
    }

    pub(crate) fn bucket(&self, start_ms: u64) -> String {
        format!("{}/index/{start_ms:015}/", self.base)
    }

    pub(crate) fn entry(&self, start_ms: u64, key: &str, generation: &str) -> String {
        format!(
            "{}{}.{generation}",
            self.bucket(start_ms),
            encode_segment(key)
        )
    }

    /// `(bucket start, user key, generation)` of an index entry key.
    pub(crate) fn parse_entry(&self, entry: &str) -> Option<(u64, String, String)> {
        let rest = entry.strip_prefix(&self.index())?;
        let (bucket, name) = rest.split_once('/')?;
        let (key, generation) = name.rsplit_once('.')?;
        Some((
            bucket.parse().ok()?,
            decode_segment(key)?,
            generation.to_owned(),
        ))
    }

    pub(crate) fn archive(&self, key: &str, generation: &str) -> String {
        format!(
            "{}/archive/{}/{generation}.json",
            self.base,
            encode_segment(key)
        )
    }

    pub(crate) fn sweep(&self) -> String {
        format!("{}/sweep.json", self.base)
    }
}

/// The header of a record object; the payload follows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct RecordHeader {
    pub(crate) format: u32,
    pub(crate) key: String,
    /// The registration (changes on every put and refresh).
    pub(crate) generation: String,
    pub(crate) expires_at_unix_ms: u64,
    pub(crate) nonce: String,
    pub(crate) state: RecordState,
}

/// Where a record is in its life.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub(crate) enum RecordState {
    Live,
    /// Expired and marked (soft delete).
    SoftDeleted {
        epoch: u64,
    },
    /// Claimed by a leader running the expiry callback.
    Expiring {
        worker: String,
        epoch: u64,
        lease_ms: u64,
        /// The election that granted `epoch` (its lease key); absent in
        /// records written before it was kept.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        election: Option<String>,
    },
    /// A tombstone (hard delete on a backend without conditional delete).
    Deleted {
        epoch: u64,
    },
}

/// How far the leader has swept.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct SweepRecord {
    pub(crate) format: u32,
    pub(crate) epoch: u64,
    pub(crate) nonce: String,
    /// Every bucket starting before this has been swept.
    pub(crate) swept_until_ms: u64,
}

/// Index entries' body.
pub(crate) const ENTRY_BODY: &[u8] = b"{\"format\":1}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_keys_round_trip() {
        let keys = TtlKeys::new("b".into());
        let entry = keys.entry(60_000, "user/1.json", "abc");
        assert_eq!(
            keys.parse_entry(&entry),
            Some((60_000, "user/1.json".into(), "abc".into()))
        );
        assert!(keys.bucket(1) < keys.bucket(20));
    }
}
