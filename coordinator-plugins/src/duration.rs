//! Durations in serde config as `"5s"`, `"1500ms"`, `"2m"`, `"1h"`, like the
//! runtime's configuration.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// Serializes a duration as `"5s"` / `"1500ms"`.
pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&coordinator_core::format_duration(*d))
}

/// Reads `"5s"`, `"1500ms"`, `"2m"`, `"1h"`.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    coordinator_core::parse_duration(&text).map_err(serde::de::Error::custom)
}
