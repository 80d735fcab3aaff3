//! Observer time: when *this* process first saw each object's current
//! version, on its own monotonic clock.
//!
//! Every expiry of a claim (a queue message's visibility, a scheduler slot's
//! run lease, a TTL callback in progress) is judged this way: the claim is
//! expired for an observer once its version has not changed for the claim's
//! lease on the observer's clock. Nothing compares two machines' clocks.
//! The first sighting is stamped *after* the response that showed the
//! version arrived, so the observer never starts counting before the write.

use std::collections::HashMap;
use std::time::Duration;

use coordinator_core::Instant;
use coordinator_store::Version;

/// First sightings of versions, by key.
#[derive(Debug, Default)]
pub(crate) struct Observations {
    seen: HashMap<String, (Version, Instant)>,
}

impl Observations {
    /// Records that `key` has `version` at `now` (read after the response);
    /// returns how long that version has been unchanged for this observer.
    pub(crate) fn observe(&mut self, key: &str, version: &Version, now: Instant) -> Duration {
        match self.seen.get(key) {
            Some((known, since)) if known == version => now.saturating_since(*since),
            _ => {
                self.seen.insert(key.to_owned(), (version.clone(), now));
                Duration::ZERO
            }
        }
    }

    /// Forgets `key` (it was deleted or acted on).
    pub(crate) fn forget(&mut self, key: &str) {
        self.seen.remove(key);
    }

    /// Keeps only the keys for which `keep` is true (e.g. those still listed).
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&str) -> bool) {
        self.seen.retain(|key, _| keep(key));
    }

    /// Forgets everything (a new term starts counting afresh).
    pub(crate) fn clear(&mut self) {
        self.seen.clear();
    }
}

/// How long an observer waits, on its own clock, before it treats a claim
/// with lease `lease` as expired: the lease stretched by the worst rate
/// error of two clocks, `(1+ρ)/(1−ρ)`, plus `grace`.
pub(crate) fn expiry_wait(lease: Duration, drift_tolerance: f64, grace: Duration) -> Duration {
    let rho = drift_tolerance.clamp(0.0, 0.5);
    lease.mul_f64((1.0 + rho) / (1.0 - rho)) + grace
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_the_first_sighting_of_each_version() {
        let mut seen = Observations::default();
        let v1 = Version::new("1");
        let v2 = Version::new("2");
        assert_eq!(
            seen.observe("k", &v1, Instant::from_millis(100)),
            Duration::ZERO
        );
        assert_eq!(
            seen.observe("k", &v1, Instant::from_millis(600)),
            Duration::from_millis(500)
        );
        assert_eq!(
            seen.observe("k", &v2, Instant::from_millis(700)),
            Duration::ZERO
        );
        seen.retain(|k| k != "k");
        assert_eq!(
            seen.observe("k", &v2, Instant::from_millis(900)),
            Duration::ZERO
        );
        seen.forget("k");
        seen.clear();
        let wait = expiry_wait(Duration::from_secs(10), 0.05, Duration::from_secs(1));
        assert!(wait > Duration::from_secs(12) && wait < Duration::from_secs(13));
    }
}
