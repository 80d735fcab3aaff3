//! Who this process is (worker id and incarnation) and where its randomness
//! comes from.
//!
//! * [`os_seed`]: a fresh seed from the OS for every call.
//! * [`resolve_worker_id`]: the configured worker id, or one made from
//!   `POD_NAME` / `HOSTNAME` plus a random suffix, validated.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use coordinator_core::{splitmix64, IdError, WorkerId, MAX_ID_BYTES};

/// A seed drawn from the operating system's randomness, fresh for every
/// call: 64 bits from the `getrandom` crate (the `getrandom(2)` system call
/// on Linux, the platform's equivalent elsewhere).
///
/// Good for jitter, nonces, lock tokens and incarnations; not for
/// cryptography. If the OS has no randomness to give (`getrandom` fails: no
/// `/dev/urandom` in a chroot, an unsupported target), the seed is a hash of
/// the time, the process id and a per-process counter instead: still
/// distinct per call, but guessable.
///
/// # Examples
///
/// ```
/// assert_ne!(coordinator_runtime::os_seed(), coordinator_runtime::os_seed());
/// ```
pub fn os_seed() -> u64 {
    getrandom::u64().unwrap_or_else(|_| fallback_seed())
}

fn fallback_seed() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    splitmix64(nanos ^ u64::from(std::process::id()).rotate_left(32) ^ splitmix64(count))
}

/// Derives a seed from a root seed and some labels, deterministically
/// (FNV-1a over the labels, then [`splitmix64`]), so a test that fixes the
/// root seed gets the same per-coordinator seeds every run.
pub(crate) fn derive_seed(root: u64, labels: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ root;
    for label in labels {
        for byte in label.bytes().chain(std::iter::once(0xff)) {
            h ^= u64::from(byte);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    splitmix64(h)
}

/// The worker id to use: `configured` if given (validated as is), otherwise
/// the first of `POD_NAME`, `HOSTNAME` and `/etc/hostname` that is set
/// (`worker` if none is), with characters a worker id cannot hold replaced
/// by `-`, plus `-` and six hex digits drawn from `suffix_seed`.
///
/// The suffix keeps two processes on one host (or a pod and its restarted
/// self) apart. A configured id gets no suffix: configure one when the id
/// must be stable.
///
/// # Errors
///
/// [`IdError`] if the configured id is empty, too long, or contains `/`,
/// `..`, whitespace or control characters.
///
/// # Examples
///
/// ```
/// let id = coordinator_runtime::resolve_worker_id(Some("worker-1"), 7).unwrap();
/// assert_eq!(id.as_str(), "worker-1");
/// assert!(coordinator_runtime::resolve_worker_id(Some("a/b"), 7).is_err());
/// let derived = coordinator_runtime::resolve_worker_id(None, 7).unwrap();
/// assert!(derived.as_str().len() > 7);
/// ```
pub fn resolve_worker_id(configured: Option<&str>, suffix_seed: u64) -> Result<WorkerId, IdError> {
    resolve_with(
        configured,
        suffix_seed,
        |name| std::env::var(name).ok(),
        || std::fs::read_to_string("/etc/hostname").ok(),
    )
}

fn resolve_with(
    configured: Option<&str>,
    suffix_seed: u64,
    env: impl Fn(&str) -> Option<String>,
    hostname_file: impl Fn() -> Option<String>,
) -> Result<WorkerId, IdError> {
    if let Some(id) = configured {
        return WorkerId::new(id);
    }
    let base = ["POD_NAME", "HOSTNAME"]
        .iter()
        .filter_map(|name| env(name))
        .chain(hostname_file())
        .map(|raw| raw.trim().to_owned())
        .find(|raw| !raw.is_empty())
        .unwrap_or_else(|| "worker".to_owned());
    let mut cleaned: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':') {
                c
            } else {
                '-'
            }
        })
        .collect();
    // Leave room for the suffix.
    cleaned.truncate(MAX_ID_BYTES - 7);
    let suffix = splitmix64(suffix_seed) & 0xff_ffff;
    WorkerId::new(format!("{cleaned}-{suffix:06x}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_ids_are_validated_and_kept() {
        let none = |_: &str| None;
        let no_file = || None;
        assert_eq!(
            resolve_with(Some("w-1"), 1, none, no_file)
                .unwrap()
                .as_str(),
            "w-1"
        );
        assert!(resolve_with(Some(""), 1, none, no_file).is_err());
        assert!(resolve_with(Some("../x"), 1, none, no_file).is_err());
    }

    #[test]
    fn derived_ids_prefer_pod_name_then_hostname_and_get_a_suffix() {
        let env = |name: &str| match name {
            "POD_NAME" => Some("orders-7f9c/x y".to_owned()),
            "HOSTNAME" => Some("host".to_owned()),
            _ => None,
        };
        let id = resolve_with(None, 1, env, || None).unwrap();
        assert!(id.as_str().starts_with("orders-7f9c-x-y-"), "{id}");
        assert_eq!(id.as_str().len(), "orders-7f9c-x-y-".len() + 6);

        let host = |name: &str| (name == "HOSTNAME").then(|| "box.local".to_owned());
        let id = resolve_with(None, 1, host, || None).unwrap();
        assert!(id.as_str().starts_with("box-local-"), "{id}");

        let id = resolve_with(None, 1, |_| None, || Some("filehost\n".into())).unwrap();
        assert!(id.as_str().starts_with("filehost-"), "{id}");

        let id = resolve_with(None, 1, |_| None, || None).unwrap();
        assert!(id.as_str().starts_with("worker-"), "{id}");

        let long = "x".repeat(500);
        let id = resolve_with(None, 1, |_| Some(long.clone()), || None).unwrap();
        assert!(id.as_str().len() <= MAX_ID_BYTES);

        // Different seeds, different suffixes.
        let a = resolve_with(None, 1, |_| None, || None).unwrap();
        let b = resolve_with(None, 2, |_| None, || None).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn seeds_differ_and_derivation_is_stable() {
        assert_ne!(os_seed(), os_seed());
        assert_ne!(fallback_seed(), fallback_seed());
        assert_eq!(derive_seed(5, &["a", "b"]), derive_seed(5, &["a", "b"]));
        assert_ne!(derive_seed(5, &["a", "b"]), derive_seed(5, &["ab"]));
        assert_ne!(derive_seed(5, &["a"]), derive_seed(6, &["a"]));
    }
}
