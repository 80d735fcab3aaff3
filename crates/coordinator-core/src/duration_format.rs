//! Durations in config files as `"5s"`, `"1500ms"`, `"2m"`, `"1h"`, `"0.5s"`.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

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

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

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
