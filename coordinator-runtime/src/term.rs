//! One leadership term as the runtime hands it to plugins: its epoch, its
//! (moving) deadline, and the cancellation token that fires when it ends.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use coordinator_core::{Instant, Namespace, StepDownReason, WorkerId};
use coordinator_store::LeaseStore;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::clock::{sleep_target, Clock};
use crate::coordinator::CoordinatorState;

/// The runtime's record of one term. Created on `BecameLeader`, extended on
/// every renewal, ended (token cancelled) on `StoppedLeading` or by the
/// watchdog when the deadline passes, whichever comes first.
pub(crate) struct Term {
    pub(crate) epoch: u64,
    deadline_ms: AtomicU64,
    token: CancellationToken,
    reason: OnceLock<StepDownReason>,
}

impl Term {
    pub(crate) fn new(epoch: u64, deadline: Instant) -> Self {
        Self {
            epoch,
            deadline_ms: AtomicU64::new(deadline.as_millis()),
            token: CancellationToken::new(),
            reason: OnceLock::new(),
        }
    }

    pub(crate) fn deadline(&self) -> Instant {
        Instant::from_millis(self.deadline_ms.load(Ordering::Acquire))
    }

    /// Moves the deadline forward after a renewal (never back).
    pub(crate) fn extend(&self, deadline: Instant) {
        self.deadline_ms
            .fetch_max(deadline.as_millis(), Ordering::AcqRel);
    }

    /// Ends the term: the first reason given wins; the token is cancelled.
    pub(crate) fn end(&self, reason: StepDownReason) {
        let _ = self.reason.set(reason);
        self.token.cancel();
    }

    pub(crate) fn is_ended(&self) -> bool {
        self.token.is_cancelled()
    }

    pub(crate) fn reason(&self) -> StepDownReason {
        self.reason
            .get()
            .copied()
            .unwrap_or(StepDownReason::RenewDeadlineExceeded)
    }

    pub(crate) fn token(&self) -> &CancellationToken {
        &self.token
    }

    pub(crate) fn is_valid(&self, clock: &dyn Clock) -> bool {
        !self.token.is_cancelled() && clock.now() < self.deadline()
    }
}

impl fmt::Debug for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Term")
            .field("epoch", &self.epoch)
            .field("deadline", &self.deadline())
            .field("ended", &self.is_ended())
            .finish()
    }
}

/// Cancels each term's token at its deadline, independently of the election
/// loop (which may be slow, blocked or aborted) and of the plugins' hooks.
/// Ends once the coordinator has ended and no term is live.
pub(crate) async fn watchdog(
    mut terms: watch::Receiver<Option<Arc<Term>>>,
    mut state: watch::Receiver<CoordinatorState>,
    clock: Arc<dyn Clock>,
) {
    let mut terms_open = true;
    let mut state_open = true;
    loop {
        let live = terms.borrow_and_update().clone().filter(|t| !t.is_ended());
        if live.is_none() && (state.borrow().is_terminal() || !terms_open || !state_open) {
            return;
        }
        let target = live
            .as_ref()
            .map(|term| sleep_target(clock.as_ref(), term.deadline()));
        tokio::select! {
            // In order: tokio picks a ready branch at random (seeded per
            // process), and a seed must replay a simulated run.
            biased;
            () = cancelled(live.as_ref().map(|t| t.token())) => {}
            () = sleep_until(target) => {
                if let Some(term) = &live {
                    if clock.now() >= term.deadline() {
                        term.end(StepDownReason::RenewDeadlineExceeded);
                    }
                }
            }
            changed = terms.changed(), if terms_open => terms_open = changed.is_ok(),
            changed = state.changed(), if state_open => state_open = changed.is_ok(),
        }
    }
}

/// Completes when `token` is cancelled; never without one.
pub(crate) async fn cancelled(token: Option<&CancellationToken>) {
    match token {
        Some(token) => token.cancelled().await,
        None => std::future::pending().await,
    }
}

/// Completes at `at`; never without one.
pub(crate) async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What a plugin holds while it leads: the term's epoch (its fencing token),
/// where it leads, the store, and a cancellation token that fires at this
/// worker's deadline, before any other worker can lead.
///
/// Cloning is cheap; every clone shares the token.
///
/// # Using it
///
/// * Check [`is_valid`](Self::is_valid) synchronously just before every
///   leader-only effect (a write, a message, a job start): the token is
///   cancelled promptly, but a check against the clock is exact.
/// * Write shared state fenced: put [`epoch`](Self::epoch) in the object and
///   replace it by compare-and-swap, so a deposed leader's late write is
///   refused by the store.
/// * Stop background work when [`cancelled`](Self::cancelled) completes.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use coordinator_runtime::{Clock, LeaderContext, TokioClock};
/// use coordinator_core::{Namespace, WorkerId};
/// use coordinator_store::MemoryStore;
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// // A context of your own, to unit-test a plugin.
/// let clock = Arc::new(TokioClock::new());
/// let deadline = clock.now() + Duration::from_secs(10);
/// let ctx = LeaderContext::standalone(
///     3, Namespace::new("orders").unwrap(), WorkerId::new("w1").unwrap(),
///     Arc::new(MemoryStore::new()), clock.clone(), deadline,
/// );
/// assert!(ctx.is_valid());
/// tokio::time::sleep(Duration::from_secs(10)).await;
/// assert!(!ctx.is_valid(), "the deadline passed");
/// # }
/// ```
#[derive(Clone)]
pub struct LeaderContext {
    term: Arc<Term>,
    token: CancellationToken,
    namespace: Namespace,
    worker_id: WorkerId,
    plugin: Option<Arc<str>>,
    election: Arc<str>,
    store: Arc<dyn LeaseStore>,
    clock: Arc<dyn Clock>,
}

/// The [`LeaderContext::election`] of a standalone context.
const STANDALONE: &str = "standalone";

impl LeaderContext {
    pub(crate) fn new(
        term: Arc<Term>,
        namespace: Namespace,
        worker_id: WorkerId,
        plugin: Option<Arc<str>>,
        store: Arc<dyn LeaseStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let token = term.token().child_token();
        Self {
            term,
            token,
            namespace,
            worker_id,
            plugin,
            election: Arc::from(STANDALONE),
            store,
            clock,
        }
    }

    /// The same context, granted by the election whose lease is at
    /// `election` (the lease key).
    pub(crate) fn with_election(mut self, election: Arc<str>) -> Self {
        self.election = election;
        self
    }

    /// A context not tied to any election, valid until `deadline` on `clock`
    /// or until its [`cancellation_token`](Self::cancellation_token) is
    /// cancelled, for testing plugins. Nothing cancels it at the deadline:
    /// [`is_valid`](Self::is_valid) turns false then, and the token fires
    /// only when you cancel it.
    pub fn standalone(
        epoch: u64,
        namespace: Namespace,
        worker_id: WorkerId,
        store: Arc<dyn LeaseStore>,
        clock: Arc<dyn Clock>,
        deadline: Instant,
    ) -> Self {
        let term = Arc::new(Term::new(epoch, deadline));
        Self::new(term, namespace, worker_id, None, store, clock)
    }

    /// The term's epoch: the fencing token to write into shared state.
    pub fn epoch(&self) -> u64 {
        self.term.epoch
    }

    /// Which election granted this term: the key of its lease (the
    /// global election's or a plugin's own), or `"standalone"`.
    ///
    /// Epochs are ordered within one election only. A plugin that finds
    /// work claimed by an *earlier epoch of the same election* knows that
    /// term has ended: its contexts were cancelled at its deadline, before
    /// this term could begin. During a migration two elections grant terms
    /// at once, so a claim from another election proves nothing.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use coordinator_runtime::{Clock, LeaderContext, TokioClock};
    /// use coordinator_core::{Namespace, WorkerId};
    /// use coordinator_store::MemoryStore;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let clock: Arc<dyn Clock> = Arc::new(TokioClock::new());
    /// let deadline = clock.now() + Duration::from_secs(10);
    /// let ctx = LeaderContext::standalone(
    ///     3, Namespace::new("orders").unwrap(), WorkerId::new("w1").unwrap(),
    ///     Arc::new(MemoryStore::new()), clock, deadline,
    /// );
    /// assert_eq!(ctx.election(), "standalone");
    /// # }
    /// ```
    pub fn election(&self) -> &str {
        &self.election
    }

    /// The namespace led.
    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    /// This worker's id.
    pub fn worker_id(&self) -> &WorkerId {
        &self.worker_id
    }

    /// The plugin this context was handed to, if it came from a runtime.
    pub fn plugin(&self) -> Option<&str> {
        self.plugin.as_deref()
    }

    /// The store, for the plugin's own (fenced) objects. Its requests are
    /// counted in [`CoordinatorMetrics::plugin_requests`](crate::CoordinatorMetrics::plugin_requests).
    pub fn store(&self) -> &Arc<dyn LeaseStore> {
        &self.store
    }

    /// The token cancelled when this term ends: at the deadline at the
    /// latest, earlier on a step-down or a graceful stop.
    pub fn cancellation_token(&self) -> &CancellationToken {
        &self.token
    }

    /// Completes when the term ends.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn cancelled(&self) {
        self.token.cancelled().await;
    }

    /// The current deadline: the instant (on the runtime's [`Clock`]) at
    /// which this worker stops leading unless it renews. Moves forward with
    /// every renewal.
    pub fn deadline(&self) -> Instant {
        self.term.deadline()
    }

    /// Time left before the deadline (zero once it passed).
    pub fn remaining(&self) -> Duration {
        self.deadline().saturating_since(self.clock.now())
    }

    /// Why the term ended (`RenewDeadlineExceeded` if it has not ended yet
    /// but its deadline passed).
    pub(crate) fn term_reason(&self) -> StepDownReason {
        self.term.reason()
    }

    /// True while this worker still leads in this term: the token has not
    /// fired and the deadline has not passed on the clock, checked now,
    /// synchronously. Call it just before every leader-only effect.
    pub fn is_valid(&self) -> bool {
        !self.token.is_cancelled() && self.term.is_valid(self.clock.as_ref())
    }
}

impl fmt::Debug for LeaderContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaderContext")
            .field("namespace", &self.namespace)
            .field("worker_id", &self.worker_id)
            .field("plugin", &self.plugin)
            .field("epoch", &self.term.epoch)
            .field("deadline", &self.term.deadline())
            .field("cancelled", &self.token.is_cancelled())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::TokioClock;
    use coordinator_store::MemoryStore;

    #[tokio::test(start_paused = true)]
    async fn watchdog_cancels_at_the_deadline_and_follows_extensions() {
        let clock: Arc<dyn Clock> = Arc::new(TokioClock::new());
        let (tx, rx) = watch::channel(None);
        let (state_tx, state_rx) = watch::channel(CoordinatorState::Running);
        let task = tokio::spawn(watchdog(rx, state_rx, clock.clone()));
        let term = Arc::new(Term::new(1, Instant::from_millis(5_000)));
        tx.send_replace(Some(term.clone()));
        tokio::time::sleep(Duration::from_millis(4_000)).await;
        term.extend(Instant::from_millis(9_000));
        term.extend(Instant::from_millis(8_000)); // never back
        tokio::time::sleep(Duration::from_millis(4_999)).await;
        assert!(!term.is_ended());
        term.token().cancelled().await;
        assert_eq!(clock.now().as_millis(), 9_000);
        assert_eq!(term.reason(), StepDownReason::RenewDeadlineExceeded);
        state_tx.send_replace(CoordinatorState::Stopped);
        task.await.unwrap();
        drop(tx);
    }

    #[tokio::test(start_paused = true)]
    async fn first_reason_wins_and_contexts_follow_the_term() {
        let clock: Arc<dyn Clock> = Arc::new(TokioClock::new());
        let term = Arc::new(Term::new(4, Instant::from_millis(1_000)));
        let ctx = LeaderContext::new(
            term.clone(),
            Namespace::new("ns").unwrap(),
            WorkerId::new("w").unwrap(),
            Some("p".into()),
            Arc::new(MemoryStore::new()),
            clock,
        );
        assert!(ctx.is_valid());
        assert_eq!(ctx.remaining(), Duration::from_secs(1));
        term.end(StepDownReason::Stopping);
        term.end(StepDownReason::LeaseLost);
        assert_eq!(term.reason(), StepDownReason::Stopping);
        assert!(!ctx.is_valid());
        ctx.cancelled().await;
    }
}
