//! Helpers shared by the plugin tests.
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::sync::Arc;
use std::time::Duration;

use coordinator::{Clock, CoordinatorConfig, Coordinators, LeaderContext};
use coordinator_core::{Namespace, WorkerId};
use coordinator_plugins::VirtualClock;
use coordinator_store::{LeaseStore, MemoryStore};

/// 2023-11-14T22:13:20Z.
pub const T0: u64 = 1_700_000_000_000;

/// A memory store whose timestamps follow tokio's (paused) clock.
pub fn virtual_store() -> MemoryStore {
    let origin = tokio::time::Instant::now();
    MemoryStore::with_clock(Arc::new(move || {
        i64::try_from(T0).unwrap() + i64::try_from(origin.elapsed().as_millis()).unwrap()
    }))
}

pub fn clock() -> Arc<VirtualClock> {
    Arc::new(VirtualClock::starting_at(T0))
}

/// A context valid for `for_` from now, outside any election.
pub fn standalone(
    epoch: u64,
    store: Arc<dyn LeaseStore>,
    clock: &Arc<VirtualClock>,
    for_: Duration,
) -> LeaderContext {
    let deadline = clock.now() + for_;
    LeaderContext::standalone(
        epoch,
        Namespace::new("ns").unwrap(),
        WorkerId::new("leader").unwrap(),
        store,
        clock.clone(),
        deadline,
    )
}

pub fn seed_of(id: &str) -> u64 {
    id.bytes()
        .fold(17u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
}

pub fn registry(store: Arc<dyn LeaseStore>, id: &str, clock: &Arc<VirtualClock>) -> Coordinators {
    let clock: Arc<dyn Clock> = clock.clone();
    Coordinators::builder(store)
        .config(
            CoordinatorConfig::default()
                .with_worker_id(id)
                .with_seed(seed_of(id)),
        )
        .clock(clock)
        .build()
        .expect("valid config")
}

/// A tiny deterministic generator for the tests' own choices.
pub struct TestRng(pub u64);

impl TestRng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}
