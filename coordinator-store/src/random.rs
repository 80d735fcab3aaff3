//! The store's randomness: jitter for its own retries and unique probe
//! keys, seeded from the OS through `getrandom` and drawn from
//! [`SplitMix64`](coordinator_core::SplitMix64). None of it is a secret.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use coordinator_core::{jittered_backoff, splitmix64, SplitMix64};

/// 64 random bits from the OS. If the OS has none to give (`getrandom`
/// fails: no `/dev/urandom` in a chroot, an unsupported target), a hash of
/// the time, the process id and a counter: still distinct per call, only
/// guessable.
pub(crate) fn os_seed() -> u64 {
    getrandom::u64().unwrap_or_else(|_| {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let count = COUNTER.fetch_add(1, Ordering::Relaxed);
        splitmix64(nanos ^ u64::from(std::process::id()).rotate_left(32) ^ splitmix64(count))
    })
}

/// The pause before retry `attempt` (1, 2, …): `first` doubling up to
/// `cap`, plus up to half again of jitter (see
/// [`jittered_backoff`](coordinator_core::jittered_backoff)).
pub(crate) fn backoff(first: Duration, cap: Duration, attempt: usize) -> Duration {
    let attempt = u32::try_from(attempt).unwrap_or(u32::MAX);
    jittered_backoff(first, cap, attempt, &mut SplitMix64::new(os_seed()))
}

/// 128 random bits as 32 hex digits.
pub(crate) fn hex128() -> String {
    let mut rng = SplitMix64::new(os_seed());
    format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_and_keys_differ_and_pauses_stay_in_bounds() {
        assert_ne!(os_seed(), os_seed());
        assert_ne!(hex128(), hex128());
        assert_eq!(hex128().len(), 32);
        let ms = Duration::from_millis;
        for attempt in 0..64 {
            let wait = backoff(ms(50), ms(400), attempt);
            assert!(wait >= ms(50) && wait <= ms(600), "{attempt}: {wait:?}");
        }
    }
}
