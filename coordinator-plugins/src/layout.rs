//! Where the plugins keep their objects.
//!
//! ```text
//! <root>/plg_coordinator_data/<namespace>/queue/<queue>/…
//! <root>/plg_coordinator_data/<namespace>/scheduler/<scheduler>/…
//! <root>/plg_coordinator_data/<namespace>/ttl/<ttl>/…
//! ```
//!
//! The data prefix is the same in global and per-plugin mode (the election
//! prefixes differ, `plg_coordinator_global/…` and
//! `plg_coordinator_plugin/<plugin>/…`): so during a migration that runs a
//! plugin under both elections, both leaders contend for the *same* claim
//! keys, and each message and each cron slot is still claimed once.

use coordinator_core::Namespace;

/// The root of every plugin's objects, beside the election prefixes.
pub const DATA_PREFIX: &str = "plg_coordinator_data";

/// Validates a plugin instance or job name like a namespace: letters,
/// digits, `-`, `_`, `.`, `:`; no `/`, no `..`, bounded length.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    Namespace::new(name).map(|_| ()).map_err(|e| e.to_string())
}

/// `plg_coordinator_data/<namespace>/<kind>/<name>`.
pub(crate) fn base(namespace: &str, kind: &str, name: &str) -> String {
    format!("{DATA_PREFIX}/{namespace}/{kind}/{name}")
}

/// Percent-encodes a user key into one key segment: keeps `A–Z a–z 0–9 - _ .
/// ~`, writes every other byte as `%XX`.
pub(crate) fn encode_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The inverse of [`encode_segment`]; `None` for a malformed segment.
pub(crate) fn decode_segment(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = segment.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_segments() {
        assert!(check_name("orders").is_ok());
        assert!(check_name("a/b").is_err());
        assert_eq!(base("ns", "queue", "q"), "plg_coordinator_data/ns/queue/q");
        let key = "user/42 ä%";
        let enc = encode_segment(key);
        assert!(!enc.contains('/'));
        assert_eq!(decode_segment(&enc).as_deref(), Some(key));
        assert_eq!(decode_segment("%4"), None);
    }
}
