//! Seeds: one root seed, one independent stream per subsystem.
//!
//! Every random choice of a simulation comes from a [`SplitMix64`] stream
//! (`coordinator_core`'s, the generator the election machine draws from)
//! derived from the run's root seed by [`SeedTree`]: store latency, request
//! faults, the swarm's choice of fault kinds, the fault schedule, and each
//! worker's machine seed and clock. A subsystem that draws more or fewer
//! numbers never shifts another subsystem's stream.

use coordinator_core::{mix64, SplitMix64};

/// Derives one independent stream per subsystem from a root seed.
///
/// ```
/// use coordinator_testkit::SeedTree;
/// let tree = SeedTree::new(42);
/// assert_eq!(tree.latency().next_u64(), SeedTree::new(42).latency().next_u64());
/// assert_ne!(tree.latency().next_u64(), tree.faults().next_u64());
/// ```
#[derive(Clone, Copy, Debug)]
pub struct SeedTree {
    root: u64,
}

const LATENCY: u64 = 1;
const FAULTS: u64 = 2;
const SWARM: u64 = 3;
const SCHEDULE: u64 = 4;
const WORKERS: u64 = 5;
const OPERATOR: u64 = 6;

impl SeedTree {
    /// The tree of `root`.
    pub fn new(root: u64) -> Self {
        Self { root }
    }

    /// The root seed.
    pub fn root(&self) -> u64 {
        self.root
    }

    fn derive(&self, label: u64) -> u64 {
        mix64(
            mix64(self.root ^ mix64(label.wrapping_mul(0xD1B5_4A32_D192_ED03))).wrapping_add(label),
        )
    }

    /// Store latency samples.
    pub fn latency(&self) -> SplitMix64 {
        SplitMix64::new(self.derive(LATENCY))
    }

    /// Per-request faults (errors, throttling, ambiguity, late writes).
    pub fn faults(&self) -> SplitMix64 {
        SplitMix64::new(self.derive(FAULTS))
    }

    /// The swarm's choice of fault kinds and their intensities.
    pub fn swarm(&self) -> SplitMix64 {
        SplitMix64::new(self.derive(SWARM))
    }

    /// The schedule of episodic faults (pauses, crashes, partitions…).
    pub fn schedule(&self) -> SplitMix64 {
        SplitMix64::new(self.derive(SCHEDULE))
    }

    /// The schedule of operator-level faults (deletions and corruption,
    /// lifecycle sweeps, canaries, timing roll-outs, store clock steps),
    /// apart from [`SeedTree::schedule`] so that runs without them draw
    /// every other episode exactly as before.
    pub fn operator(&self) -> SplitMix64 {
        SplitMix64::new(self.derive(OPERATOR))
    }

    /// The stream of one life (`incarnation`-th start) of worker slot `slot`:
    /// its machine seeds, incarnation number and clock.
    pub fn worker(&self, slot: u64, life: u64) -> SplitMix64 {
        let base = self.derive(WORKERS);
        SplitMix64::new(mix64(
            base ^ mix64(slot.wrapping_add(1)) ^ mix64(life << 32 | 0x5EED),
        ))
    }
}

/// The seeds a test should run: `COORD_SIM_SEED` (one seed `7`, a list
/// `1,2,3` or a range `0..100`) when set, otherwise `defaults`.
///
/// # Panics
/// When `COORD_SIM_SEED` is set but not a seed, list or range, with a
/// message saying what it should look like.
pub fn seeds_from_env(defaults: &[u64]) -> Vec<u64> {
    match std::env::var("COORD_SIM_SEED") {
        Ok(text) if !text.trim().is_empty() => match parse_seeds(&text) {
            Ok(seeds) => seeds,
            Err(message) => panic!("COORD_SIM_SEED: {message}"),
        },
        _ => defaults.to_vec(),
    }
}

/// Parses `7`, `1,2,3` or `0..100` (end exclusive).
///
/// # Errors
/// A message naming the input and the accepted forms.
///
/// ```
/// use coordinator_testkit::parse_seeds;
/// assert_eq!(parse_seeds("3..6").unwrap(), vec![3, 4, 5]);
/// assert_eq!(parse_seeds("7,9").unwrap(), vec![7, 9]);
/// assert!(parse_seeds("x").is_err());
/// ```
pub fn parse_seeds(text: &str) -> Result<Vec<u64>, String> {
    let text = text.trim();
    let bad = || format!("`{text}` is not a seed; write `7`, `1,2,3` or `0..100`");
    if let Some((a, b)) = text.split_once("..") {
        let start: u64 = a.trim().parse().map_err(|_| bad())?;
        let end: u64 = b.trim().parse().map_err(|_| bad())?;
        if end <= start {
            return Err(format!("`{text}`: the range is empty"));
        }
        return Ok((start..end).collect());
    }
    text.split(',')
        .map(|s| s.trim().parse::<u64>().map_err(|_| bad()))
        .collect()
}

/// A seed drawn from the system clock and the process id, for runs that
/// were given none. Printed by every caller so the run can be replayed.
pub fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    mix64(nanos ^ u64::from(std::process::id()).rotate_left(32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_differ() {
        let tree = SeedTree::new(5);
        assert_ne!(tree.worker(0, 0).next_u64(), tree.worker(1, 0).next_u64());
        assert_ne!(tree.worker(0, 0).next_u64(), tree.worker(0, 1).next_u64());
    }
}
