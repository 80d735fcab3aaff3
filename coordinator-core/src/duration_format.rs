//! Durations in config files as `"5s"`, `"1500ms"`, `"2m"`, `"1h"`, `"0.5s"`.

use std::time::Duration;

use serde::{Deserializer, Serializer};

/// Parses `"<number><unit>"` with unit `ms`, `s`, `m` or `h`.
///
/// # Errors
/// A message naming the input and the accepted forms.
///
/// ```
/// use std::time::Duration;
/// use coordinator_core::parse_duration;
/// assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
/// assert_eq!(parse_duration("0.5s"), Ok(Duration::from_millis(500)));
/// assert!(parse_duration("5").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let millis_per_unit = match unit.trim() {
        "ms" => 1.0,
        "s" => 1_000.0,
        "m" | "min" => 60_000.0,
        "h" => 3_600_000.0,
        _ => {
            return Err(format!(
                "`{text}` is not a duration; write a number and a unit: \"1500ms\", \"5s\", \"2m\", \"1h\""
            ))
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}`: `{number}` is not a number"))?;
    let millis = value * millis_per_unit;
    if !millis.is_finite() || !(0.0..=1e15).contains(&millis) {
        return Err(format!("`{text}` is out of range"));
    }
    Ok(Duration::from_micros((millis * 1000.0).round() as u64))
}

/// Formats a duration the way [`parse_duration`] reads it back.
pub fn format_duration(d: Duration) -> String {
    let micros = d.as_micros();
    if micros.is_multiple_of(1_000_000) {
        format!("{}s", micros / 1_000_000)
    } else if micros.is_multiple_of(1000) {
        format!("{}ms", micros / 1000)
    } else {
        format!("{}ms", micros as f64 / 1000.0)
    }
}

pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

/// Reads `"5s"`-style strings, and bare numbers as milliseconds: the
/// system this library replaces writes its timings as integer milliseconds
/// (`"heartbeat_interval": 5000`), so its config files load unchanged.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_any(DurationVisitor)
}

struct DurationVisitor;

impl serde::de::Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a duration such as \"5s\" or \"1500ms\", or a number of milliseconds")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Duration, E> {
        parse_duration(text).map_err(E::custom)
    }

    fn visit_u64<E: serde::de::Error>(self, millis: u64) -> Result<Duration, E> {
        Ok(Duration::from_millis(millis))
    }

    fn visit_i64<E: serde::de::Error>(self, millis: i64) -> Result<Duration, E> {
        u64::try_from(millis)
            .map(Duration::from_millis)
            .map_err(|_| E::custom(format!("{millis} ms is negative; a duration cannot be")))
    }

    fn visit_f64<E: serde::de::Error>(self, millis: f64) -> Result<Duration, E> {
        if millis.is_finite() && (0.0..=1e15).contains(&millis) {
            Ok(Duration::from_micros((millis * 1000.0).round() as u64))
        } else {
            Err(E::custom(format!("{millis} ms is not a duration")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_files_of_the_replaced_system_load_with_integer_milliseconds() {
        let config: crate::Config =
            serde_json::from_str(r#"{"heartbeat_interval": 5000, "lease_timeout": "15s"}"#)
                .unwrap();
        assert_eq!(config.heartbeat_interval, Duration::from_secs(5));
        assert_eq!(config.lease_timeout, Duration::from_secs(15));
        let err = serde_json::from_str::<crate::Config>(r#"{"lease_timeout": -1}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("negative"), "{err}");
        let err = serde_json::from_str::<crate::Config>(r#"{"lease_timeout": "15"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"5s\""), "{err}");
    }

    #[test]
    fn round_trips_and_rejects_garbage() {
        for (text, ms) in [
            ("5s", 5000),
            ("1500ms", 1500),
            ("2m", 120_000),
            ("1h", 3_600_000),
        ] {
            let d = parse_duration(text).unwrap();
            assert_eq!(d, Duration::from_millis(ms));
            assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }
        for bad in ["", "5", "s", "5 parsecs", "-1s", "1e400s", "x5s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
