//! Helpers shared by the runtime's integration tests.
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use coordinator_runtime::{
    async_trait, Clock, Coordinator, CoordinatorConfig, CoordinatorPlugin, CoordinatorRegistry,
    LeaderContext, PluginError, StepDownReason, TokioClock,
};
use coordinator_store::{LeaseStore, MemoryStore};

/// A memory store whose timestamps follow tokio's (paused) clock.
pub fn virtual_memory_store() -> MemoryStore {
    let origin = tokio::time::Instant::now();
    MemoryStore::with_clock(Arc::new(move || {
        1_700_000_000_000 + i64::try_from(origin.elapsed().as_millis()).unwrap_or(0)
    }))
}

pub fn config(id: &str) -> CoordinatorConfig {
    let seed = id
        .bytes()
        .fold(17u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    CoordinatorConfig::default()
        .with_worker_id(id)
        .with_seed(seed)
}

pub fn worker(
    store: Arc<dyn LeaseStore>,
    id: &str,
    clock: &Arc<TokioClock>,
) -> CoordinatorRegistry {
    worker_with(store, config(id), clock)
}

pub fn worker_with(
    store: Arc<dyn LeaseStore>,
    config: CoordinatorConfig,
    clock: &Arc<TokioClock>,
) -> CoordinatorRegistry {
    let clock: Arc<dyn Clock> = clock.clone();
    CoordinatorRegistry::builder(store)
        .config(config)
        .clock(clock)
        .build()
        .expect("valid config")
}

/// Polls `condition` every 50 ms of (virtual) time until it holds; returns
/// the time it took, or panics after `max`.
pub async fn wait_until(
    what: &str,
    max: Duration,
    mut condition: impl FnMut() -> bool,
) -> Duration {
    let start = tokio::time::Instant::now();
    loop {
        if condition() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() <= max,
            "timed out after {max:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn leaders(coordinators: &[Arc<Coordinator>]) -> Vec<usize> {
    coordinators
        .iter()
        .enumerate()
        .filter(|(_, c)| c.is_leader())
        .map(|(i, _)| i)
        .collect()
}

/// One hook call as a plugin saw it.
#[derive(Clone, Debug, PartialEq)]
pub enum Hook {
    Become {
        epoch: u64,
        at_ms: u64,
    },
    /// The term's token fired (recorded by a task spawned in on_become).
    Cancelled {
        epoch: u64,
        at_ms: u64,
    },
    Stop {
        reason: StepDownReason,
        at_ms: u64,
    },
    Work {
        epoch: u64,
        at_ms: u64,
    },
}

/// A plugin that records every hook call with the worker's id.
pub struct Recorder {
    pub name: String,
    pub worker: String,
    pub clock: Arc<TokioClock>,
    pub log: Arc<Mutex<Vec<(String, Hook)>>>,
    pub busy: Arc<std::sync::atomic::AtomicBool>,
    pub become_delay: Duration,
    pub work_interval: Option<Duration>,
}

impl Recorder {
    pub fn new(
        name: &str,
        worker: &str,
        clock: &Arc<TokioClock>,
        log: &Arc<Mutex<Vec<(String, Hook)>>>,
    ) -> Self {
        Self {
            name: name.into(),
            worker: worker.into(),
            clock: clock.clone(),
            log: log.clone(),
            busy: Arc::default(),
            become_delay: Duration::ZERO,
            work_interval: None,
        }
    }

    fn record(&self, hook: Hook) {
        self.log.lock().unwrap().push((self.worker.clone(), hook));
    }

    fn enter(&self) {
        let was = self.busy.swap(true, std::sync::atomic::Ordering::SeqCst);
        assert!(!was, "hooks of one plugin overlapped on {}", self.worker);
    }

    fn leave(&self) {
        self.busy.store(false, std::sync::atomic::Ordering::SeqCst);
    }

    fn now(&self) -> u64 {
        self.clock.now().as_millis()
    }
}

#[async_trait]
impl CoordinatorPlugin for Recorder {
    fn name(&self) -> &str {
        &self.name
    }

    async fn on_become_coordinator(&self, ctx: LeaderContext) -> Result<(), PluginError> {
        self.enter();
        assert!(ctx.is_valid());
        self.record(Hook::Become {
            epoch: ctx.epoch(),
            at_ms: self.now(),
        });
        let log = self.log.clone();
        let worker = self.worker.clone();
        let clock = self.clock.clone();
        let watched = ctx.clone();
        tokio::spawn(async move {
            watched.cancelled().await;
            assert!(!watched.is_valid());
            log.lock().unwrap().push((
                worker,
                Hook::Cancelled {
                    epoch: watched.epoch(),
                    at_ms: clock.now().as_millis(),
                },
            ));
        });
        if !self.become_delay.is_zero() {
            // Leave `busy` set: a cancelled hook never reaches `leave`, so
            // clear it in a guard.
            struct Guard<'a>(&'a Recorder);
            impl Drop for Guard<'_> {
                fn drop(&mut self) {
                    self.0.leave();
                }
            }
            let _guard = Guard(self);
            tokio::time::sleep(self.become_delay).await;
            return Ok(());
        }
        self.leave();
        Ok(())
    }

    async fn on_stop_being_coordinator(&self, reason: StepDownReason) -> Result<(), PluginError> {
        self.enter();
        self.record(Hook::Stop {
            reason,
            at_ms: self.now(),
        });
        self.leave();
        Ok(())
    }

    async fn coordinator_work(&self, ctx: &LeaderContext) -> Result<(), PluginError> {
        self.enter();
        assert!(ctx.is_valid());
        self.record(Hook::Work {
            epoch: ctx.epoch(),
            at_ms: self.now(),
        });
        self.leave();
        Ok(())
    }

    fn work_interval(&self) -> Option<Duration> {
        self.work_interval
    }
}
