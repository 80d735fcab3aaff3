//! The JSON records the coordinator keeps in the store.
//!
//! Every record carries `format`. Unknown fields are tolerated (a newer
//! minor version may add some); a larger `format` means a newer, incompatible
//! writer; a missing `format` means a foreign writer (the system this library
//! replaces writes the same keys unconditionally).
//!
//! Every write changes the bytes: the lease carries a random `nonce` and a
//! `renewals` counter, heartbeats a `sequence`. Store versions (ETags) are
//! content digests on several backends, so identical bytes would bring an old
//! version back and let a stale compare-and-swap win (ABA).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::ids::{Identity, Incarnation, WorkerId};

/// The record format this version of the library writes and understands.
pub const FORMAT: u32 = 1;

/// Why a stored record could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// Not JSON, truncated, or missing a field this format requires.
    #[error("`{key}` is corrupt ({reason}); it will be replaced by compare-and-swap once it has been unchanged for the lease timeout")]
    Corrupt {
        /// The key.
        key: String,
        /// What the parser said.
        reason: String,
    },
    /// JSON without a `format` field: another implementation writes here.
    #[error("`{key}` was written by another implementation (no `format` field): it writes unconditionally, so sharing the namespace with it is unsafe; stop the other system or use another namespace")]
    Foreign {
        /// The key.
        key: String,
    },
    /// A newer, incompatible version of this library wrote the record.
    #[error("`{key}` has format {found}, newer than {FORMAT} which this version understands; upgrade this worker (it will follow but never write until then)")]
    NewerFormat {
        /// The key.
        key: String,
        /// The format found.
        found: u64,
    },
}

/// The lease, `state.json`: who leads, under which epoch, and for how long
/// followers must wait.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// Always [`FORMAT`] when written by this version.
    pub format: u32,
    /// The holder; `None` once released.
    pub leader: Option<Identity>,
    /// The fencing token: raised by one on every acquisition, kept on
    /// renewal and release.
    pub epoch: u64,
    /// Random per write, so every write's bytes differ and an ambiguous
    /// write can be recognised on re-read.
    pub nonce: u64,
    /// Renewals under this epoch.
    pub renewals: u64,
    /// Set by a graceful stop: successors may take over at once.
    pub released: bool,
    /// The holder's lease timeout, in milliseconds.
    pub lease_timeout_ms: u64,
    /// The holder's renew deadline, in milliseconds.
    pub renew_deadline_ms: u64,
    /// The holder's clock drift tolerance ρ.
    pub drift_tolerance: f64,
    /// The first live workers in succession order (lexicographic), leader
    /// excluded.
    #[serde(default)]
    pub successors: Vec<WorkerId>,
    /// How many live workers the leader last saw, itself included.
    #[serde(default)]
    pub roster_size: usize,
    /// An epoch above `epoch` that the holder has already reserved in
    /// `metadata.json` for whoever takes over this exact version, so the
    /// successor need not reserve one on its critical path; equal to
    /// `epoch` when none is reserved yet.
    #[serde(default)]
    pub reserved_epoch: u64,
    /// Informational: the writer's wall clock at acquisition (never used to
    /// decide anything).
    #[serde(default)]
    pub acquired_at_unix_ms: u64,
    /// Informational: the writer's wall clock at this write.
    #[serde(default)]
    pub written_at_unix_ms: u64,
}

/// A worker's heartbeat object, `workers/<id>.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatRecord {
    /// Always [`FORMAT`] when written by this version.
    pub format: u32,
    /// The writer.
    pub worker_id: WorkerId,
    /// The writer's incarnation.
    pub incarnation: Incarnation,
    /// Raised on every write, so the bytes (and version) change.
    pub sequence: u64,
    /// Informational: when this process started.
    #[serde(default)]
    pub started_at_unix_ms: u64,
    /// Informational: the writer's wall clock at this write.
    #[serde(default)]
    pub written_at_unix_ms: u64,
    /// The highest epoch the writer has seen in a lease: after a wipe of
    /// `state.json` and `metadata.json`, the new epoch starts above it.
    #[serde(default)]
    pub epoch_seen: u64,
    /// The writer's own [`Config::takeover_wait`](crate::Config::takeover_wait),
    /// in milliseconds: what followers would owe it if it led.
    #[serde(default)]
    pub takeover_wait_ms: u64,
}

/// The full roster, `roster.json`, rewritten by the leader when it changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterRecord {
    /// Always [`FORMAT`] when written by this version.
    pub format: u32,
    /// The epoch of the leader that wrote it.
    pub epoch: u64,
    /// That leader.
    pub leader: WorkerId,
    /// Raised on every write.
    pub revision: u64,
    /// Every live worker, sorted, leader included.
    pub workers: Vec<WorkerId>,
    /// The writing leader's [`Config::takeover_wait`](crate::Config::takeover_wait),
    /// in milliseconds.
    #[serde(default)]
    pub takeover_wait_ms: u64,
}

/// Service metadata, `metadata.json`: the epoch high-water mark, so epochs
/// never go back even if the lease object is deleted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataRecord {
    /// Always [`FORMAT`] when written by this version.
    pub format: u32,
    /// The highest epoch ever acquired in this namespace.
    pub epoch_high_water: u64,
    /// Random per write.
    pub nonce: u64,
    /// The longest [`Config::takeover_wait`](crate::Config::takeover_wait)
    /// any leader of this namespace has been promised, in milliseconds;
    /// raised, never lowered, at every reservation. A worker that finds the
    /// lease missing or unreadable waits this long (0: not on record, as
    /// written by releases before it existed; the worker then waits
    /// `recovery_wait`).
    #[serde(default)]
    pub longest_takeover_wait_ms: u64,
}

impl MetadataRecord {
    /// The high-water mark of a metadata record of any format that keeps
    /// the field under its name, for a record this release cannot decode
    /// (a newer format, left behind by a canary that was rolled back):
    /// epochs must stay above it all the same.
    pub fn high_water_of_any_format(bytes: &[u8]) -> Option<u64> {
        let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
        value.get("epoch_high_water")?.as_u64()
    }
}

/// Decodes a record, telling corrupt, foreign and newer records apart.
///
/// # Errors
/// [`RecordError`] naming `key`.
///
/// ```
/// use coordinator_core::{decode, LeaseRecord, RecordError};
/// let err = decode::<LeaseRecord>("ns/state.json", br#"{"leader":"x"}"#).unwrap_err();
/// assert!(matches!(err, RecordError::Foreign { .. }));
/// ```
pub fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, RecordError> {
    let corrupt = |reason: String| RecordError::Corrupt {
        key: key.to_owned(),
        reason,
    };
    // A first pass reads only `format` (every other field is skipped
    // without building a tree); the second reads the record itself. This is
    // the hot path of every follower's poll.
    let probe: FormatProbe = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    let format = match probe.format {
        None => {
            return Err(RecordError::Foreign {
                key: key.to_owned(),
            })
        }
        Some(format) => format
            .as_u64()
            .ok_or_else(|| corrupt(format!("`format` is {format}, not a number")))?,
    };
    if format > u64::from(FORMAT) {
        return Err(RecordError::NewerFormat {
            key: key.to_owned(),
            found: format,
        });
    }
    serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))
}

/// Only the `format` field of any record; a non-object fails to parse.
#[derive(Deserialize)]
struct FormatProbe {
    /// `None` when absent; `Some(Null)` when present as `null`.
    #[serde(default, deserialize_with = "present")]
    format: Option<serde_json::Value>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

/// Encodes a record as compact JSON.
pub fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    // Serializing these plain structs cannot fail: no maps with non-string
    // keys, no custom serializers that error.
    serde_json::to_vec(record).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease() -> LeaseRecord {
        LeaseRecord {
            format: FORMAT,
            leader: Some(Identity {
                worker_id: WorkerId::new("a").unwrap(),
                incarnation: Incarnation(7),
            }),
            epoch: 3,
            nonce: 99,
            renewals: 1,
            released: false,
            lease_timeout_ms: 15_000,
            renew_deadline_ms: 10_000,
            drift_tolerance: 0.1,
            successors: vec![WorkerId::new("b").unwrap()],
            roster_size: 2,
            reserved_epoch: 4,
            acquired_at_unix_ms: 0,
            written_at_unix_ms: 0,
        }
    }

    #[test]
    fn round_trip_and_unknown_fields_tolerated() {
        let bytes = encode(&lease());
        assert_eq!(decode::<LeaseRecord>("k", &bytes).unwrap(), lease());
        let mut value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        value["added_in_a_later_minor"] = serde_json::json!(true);
        let bytes = serde_json::to_vec(&value).unwrap();
        assert_eq!(decode::<LeaseRecord>("k", &bytes).unwrap(), lease());
    }

    #[test]
    fn corrupt_truncated_foreign_and_newer_are_told_apart() {
        let bytes = encode(&lease());
        let truncated = &bytes[..bytes.len() / 2];
        let err = decode::<LeaseRecord>("ns/state.json", truncated).unwrap_err();
        assert!(matches!(&err, RecordError::Corrupt { key, .. } if key == "ns/state.json"));
        assert!(matches!(
            decode::<LeaseRecord>("k", b"[1,2]"),
            Err(RecordError::Corrupt { .. })
        ));
        assert!(matches!(
            decode::<LeaseRecord>("k", br#"{"format":1,"epoch":"x"}"#),
            Err(RecordError::Corrupt { .. })
        ));
        assert!(matches!(
            decode::<LeaseRecord>("k", br#"{"leader":"x","expiresAt":1}"#),
            Err(RecordError::Foreign { .. })
        ));
        assert!(matches!(
            decode::<LeaseRecord>("k", br#"{"format":null}"#),
            Err(RecordError::Corrupt { .. })
        ));
        assert!(matches!(
            decode::<LeaseRecord>("k", b"42"),
            Err(RecordError::Corrupt { .. })
        ));
        assert!(matches!(
            decode::<LeaseRecord>("k", br#"{"format":2}"#),
            Err(RecordError::NewerFormat { found: 2, .. })
        ));
        let msg = decode::<LeaseRecord>("ns/state.json", b"{")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("ns/state.json"), "{msg}");
    }
}
