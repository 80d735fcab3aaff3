//! The fenced register: a plugin every chaos worker runs. While its worker
//! leads, it writes epoch-fenced operations to one shared object by
//! compare-and-swap, as DESIGN.md section 7 asks of any plugin that
//! writes shared state, and reports every write ([`RegisterOp`]).
//!
//! * **Seal** (`on_become_coordinator`): read the register; if it holds a
//!   newer epoch, this term is fenced and writes nothing; otherwise
//!   compare-and-swap (or create) `{epoch, seq: 0}` on the version read.
//! * **Write** (`coordinator_work`, every `interval`): compare-and-swap
//!   `{epoch, seq + 1}` on the version of our last write.
//! * Just before each write: read the time, check
//!   [`LeaderContext::is_valid`], read the deadline. An invalid context
//!   writes nothing.
//! * A conflict or an error may hide our own write (a hidden retry, an
//!   answer lost): re-read and compare the nonce. Ours: accepted. A newer
//!   epoch: fenced. Anything else: conflict (and re-seal next time).
//!
//! **The broken register** ([`Safety::IgnoreTerm`], for the test that
//! the checker catches a broken worker only): writes from a task of its
//! own that ignores the term's end (no validity check, not stopped at the
//! deadline), until a write finds a newer epoch.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use coordinator_core::{SplitMix64, StepDownReason, Version};
use coordinator_runtime::{async_trait, CoordinatorPlugin, LeaderContext, PluginError};
use coordinator_store::{LeaseStore, StoreError};
use serde::{Deserialize, Serialize};

use super::events::{Outcome, RegisterKind, RegisterOp, WorkerEvent};
use super::monotonic_ns;

/// Where each event of the plugin goes (the worker prints it).
pub type Emit = Arc<dyn Fn(WorkerEvent) + Send + Sync>;

/// Whether the register keeps its safety check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Safety {
    /// Check the context just before each write; write only within the
    /// term.
    Checked,
    /// Test only: write from a task that ignores the term's end.
    IgnoreTerm,
}

/// The register's body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterBody {
    /// The epoch of the term that wrote it.
    pub epoch: u64,
    /// The write's number within the term (0: the seal).
    pub seq: u64,
    /// Who wrote it.
    pub writer: String,
    /// Unique per attempt: tells our own write from another's.
    pub nonce: u64,
}

#[derive(Clone, Debug)]
struct Held {
    epoch: u64,
    seq: u64,
    version: Version,
}

struct State {
    /// The term's epoch, from `on_become` to `on_stop`.
    term: Option<u64>,
    /// What we last wrote in it (None: not sealed, or fenced).
    held: Option<Held>,
    /// An epoch found fenced: no more writes under it.
    fenced: Option<u64>,
    rng: SplitMix64,
}

/// The fenced register plugin.
pub struct FencedRegister {
    key: String,
    worker: String,
    interval: Duration,
    safety: Safety,
    emit: Emit,
    state: Arc<Mutex<State>>,
}

impl FencedRegister {
    /// A register at `key` for `worker`, writing every `interval`, with
    /// nonces drawn from `seed`.
    pub fn new(
        key: String,
        worker: String,
        interval: Duration,
        safety: Safety,
        seed: u64,
        emit: Emit,
    ) -> Self {
        Self {
            key,
            worker,
            interval,
            safety,
            emit,
            state: Arc::new(Mutex::new(State {
                term: None,
                held: None,
                fenced: None,
                rng: SplitMix64::new(seed),
            })),
        }
    }

    fn writer(&self) -> Writer {
        Writer {
            key: self.key.clone(),
            worker: self.worker.clone(),
            safety: self.safety,
            emit: Arc::clone(&self.emit),
            state: Arc::clone(&self.state),
        }
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What one write needs, cloneable into the broken register's task.
#[derive(Clone)]
struct Writer {
    key: String,
    worker: String,
    safety: Safety,
    emit: Emit,
    state: Arc<Mutex<State>>,
}

impl Writer {
    /// One write (a seal if nothing is held for this epoch); false once
    /// fenced.
    async fn step(&self, ctx: &LeaderContext) -> bool {
        let epoch = ctx.epoch();
        let (held, nonce) = {
            let mut state = lock(&self.state);
            if state.fenced == Some(epoch) {
                return false;
            }
            let held = state.held.clone().filter(|h| h.epoch == epoch);
            (held, state.rng.next_u64())
        };
        let store = ctx.store();
        let (kind, seq, expected, seen_epoch) = match held {
            Some(h) => (RegisterKind::Write, h.seq + 1, Some(h.version), Some(epoch)),
            None => {
                let current = match store.get(&self.key).await {
                    Ok(current) => current,
                    Err(_) => return true,
                };
                let seen = current.as_ref().and_then(|o| parse(&o.body));
                (
                    RegisterKind::Seal,
                    0,
                    current.map(|o| o.version),
                    seen.map(|b| b.epoch),
                )
            }
        };
        let start_ns = monotonic_ns();
        let valid = ctx.is_valid();
        let deadline_ns = super::boottime_ms_to_monotonic_ns(ctx.deadline().as_millis());
        if !valid && self.safety == Safety::Checked {
            return false;
        }
        let mut op = RegisterOp {
            op: kind,
            epoch,
            seq,
            start_ns,
            end_ns: start_ns,
            deadline_ns,
            seen_epoch,
            outcome: Outcome::Fenced,
        };
        if seen_epoch.is_some_and(|seen| seen > epoch) {
            lock(&self.state).fenced = Some(epoch);
            (self.emit)(WorkerEvent::Register(op));
            return false;
        }
        let body = RegisterBody {
            epoch,
            seq,
            writer: self.worker.clone(),
            nonce,
        };
        let bytes = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
        let result = match &expected {
            Some(version) => store.compare_and_swap(&self.key, version, bytes).await,
            None => store.create(&self.key, bytes).await,
        };
        let (outcome, version) = match result {
            Ok(written) => (Outcome::Ok, Some(written.version)),
            Err(error) => self.reconcile(store.as_ref(), epoch, nonce, &error).await,
        };
        op.end_ns = monotonic_ns();
        op.outcome = outcome;
        {
            let mut state = lock(&self.state);
            match (outcome, version) {
                (Outcome::Ok, Some(version)) => {
                    state.held = Some(Held {
                        epoch,
                        seq,
                        version,
                    })
                }
                (Outcome::Fenced, _) => {
                    state.held = None;
                    state.fenced = Some(epoch);
                }
                // Unknown state: seal again next time.
                _ => state.held = None,
            }
        }
        (self.emit)(WorkerEvent::Register(op));
        outcome != Outcome::Fenced
    }

    /// After a failed write: was it ours after all (a hidden retry, a lost
    /// answer), or is a newer epoch there?
    async fn reconcile(
        &self,
        store: &dyn LeaseStore,
        epoch: u64,
        nonce: u64,
        error: &StoreError,
    ) -> (Outcome, Option<Version>) {
        let failed = match error {
            StoreError::Conflict { .. } | StoreError::AlreadyExists { .. } => Outcome::Conflict,
            _ => Outcome::Error,
        };
        match store.get(&self.key).await {
            Ok(Some(object)) => match parse(&object.body) {
                Some(body) if body.nonce == nonce => (Outcome::Ok, Some(object.version)),
                Some(body) if body.epoch > epoch => (Outcome::Fenced, None),
                _ => (failed, None),
            },
            _ => (failed, None),
        }
    }
}

fn parse(body: &[u8]) -> Option<RegisterBody> {
    serde_json::from_slice(body).ok()
}

#[async_trait]
impl CoordinatorPlugin for FencedRegister {
    fn name(&self) -> &str {
        "chaos-register"
    }

    async fn on_become_coordinator(&self, ctx: LeaderContext) -> Result<(), PluginError> {
        lock(&self.state).term = Some(ctx.epoch());
        let writer = self.writer();
        match self.safety {
            Safety::Checked => {
                writer.step(&ctx).await;
            }
            Safety::IgnoreTerm => {
                let interval = self.interval;
                // Detached on purpose: the broken register outlives its term.
                tokio::spawn(async move {
                    while writer.step(&ctx).await {
                        tokio::time::sleep(interval).await;
                    }
                });
            }
        }
        Ok(())
    }

    async fn on_stop_being_coordinator(&self, _reason: StepDownReason) -> Result<(), PluginError> {
        let term = lock(&self.state).term.take();
        if let Some(epoch) = term {
            (self.emit)(WorkerEvent::TermEnded { epoch });
        }
        Ok(())
    }

    async fn coordinator_work(&self, ctx: &LeaderContext) -> Result<(), PluginError> {
        if self.safety == Safety::Checked {
            self.writer().step(ctx).await;
        }
        Ok(())
    }

    fn work_interval(&self) -> Option<Duration> {
        Some(self.interval)
    }
}
