//! The election loop: one task per coordinator, one `select!` over commands,
//! store completions and one re-armed timer. Every decision is the machine's;
//! this module only executes its actions and publishes what it says.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use coordinator_core::{Event, Failure, Machine, RecordError, Request, RequestId, Response};
use coordinator_store::LeaseStore;
use futures::FutureExt;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::clock::sleep_target;
use crate::coordinator::{lock, CoordinatorState, Shared};
use crate::exec::{execute_with_timeout, op_name};
use crate::term::Term;
use crate::TARGET;

/// What a [`Coordinator`](crate::Coordinator) handle asks of its loop.
#[derive(Debug)]
pub(crate) enum Command {
    /// Stop gracefully: release, delete the heartbeat, end.
    Stop,
}

/// A finished store call.
struct Completion {
    id: RequestId,
    op: &'static str,
    key: String,
    response: Response,
    /// How long the request took (tokio's clock).
    elapsed: Duration,
}

pub(crate) struct Driver {
    machine: Machine,
    shared: Arc<Shared>,
    store: Arc<dyn LeaseStore>,
    request_timeout: Duration,
    commands: mpsc::UnboundedReceiver<Command>,
    commands_open: bool,
    in_flight: JoinSet<Completion>,
    term: Option<Arc<Term>>,
    ready: Option<oneshot::Sender<Result<(), RecordError>>>,
    first_lease_read: Option<RequestId>,
    first_lease_read_done: bool,
    diagnostics: bool,
    heartbeats_seen: u64,
    /// The labels of the `metrics` facade.
    #[cfg(feature = "metrics")]
    labels: crate::facade::Labels,
}

impl Driver {
    pub(crate) fn new(
        machine: Machine,
        shared: Arc<Shared>,
        store: Arc<dyn LeaseStore>,
        request_timeout: Duration,
        commands: mpsc::UnboundedReceiver<Command>,
        ready: oneshot::Sender<Result<(), RecordError>>,
        diagnostics: bool,
    ) -> Self {
        Self {
            machine,
            store,
            request_timeout,
            commands,
            commands_open: true,
            in_flight: JoinSet::new(),
            term: None,
            ready: Some(ready),
            first_lease_read: None,
            first_lease_read_done: false,
            diagnostics,
            heartbeats_seen: 0,
            #[cfg(feature = "metrics")]
            labels: crate::facade::Labels::new(
                shared.namespace.as_str(),
                shared.identity.worker_id.as_str(),
                shared.plugin.as_ref().map(|p| p.as_str()),
            ),
            shared,
        }
    }

    pub(crate) async fn run(self) {
        let span = self.shared.span.clone();
        self.run_inner().instrument(span).await;
    }

    async fn run_inner(mut self) {
        let clock = self.shared.clock.clone();
        let sleep = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(sleep);
        loop {
            self.drain(true);
            if self.machine.is_finished() {
                break;
            }
            let due = self.machine.poll_timeout();
            if let Some(due) = due {
                sleep.as_mut().reset(sleep_target(clock.as_ref(), due));
            }
            tokio::select! {
                // In order: tokio picks a ready branch at random (seeded per
                // process), and a seed must replay a simulated run.
                biased;
                command = self.commands.recv(), if self.commands_open => {
                    if command.is_none() {
                        // Every handle is gone: stop as if asked to.
                        self.commands_open = false;
                    }
                    self.shared.state.send_if_modified(|state| {
                        let changed = matches!(state, CoordinatorState::Starting | CoordinatorState::Running);
                        if changed {
                            *state = CoordinatorState::Stopping;
                        }
                        changed
                    });
                    tracing::info!(target: TARGET, "stopping: releasing the lease and deleting the heartbeat");
                    self.machine.stop(clock.now());
                }
                Some(done) = self.in_flight.join_next(), if !self.in_flight.is_empty() => {
                    match done {
                        Ok(completion) => self.on_completion(completion),
                        // Store calls catch their own panics; a join error
                        // means the task was cancelled, which only happens
                        // when this loop is dropped.
                        Err(error) => tracing::error!(target: TARGET, error = %error, "store call task failed"),
                    }
                }
                () = &mut sleep, if due.is_some() => {
                    let now = clock.now();
                    if due.is_some_and(|due| due <= now) {
                        self.machine.handle_timeout(now);
                    }
                }
                else => {
                    // No timer, no request in flight, no handle: nothing can
                    // ever happen again. The machine always keeps a timer
                    // while running, so this is a bug if it is ever reached.
                    tracing::error!(target: TARGET, "election loop has nothing left to wait for; ending");
                    break;
                }
            }
        }
        self.finish().await;
    }

    fn on_completion(&mut self, completion: Completion) {
        let Completion {
            id,
            op,
            key,
            response,
            elapsed,
        } = completion;
        match &response {
            Response::Failed(Failure::Throttled { retry_after_ms }) => {
                tracing::warn!(target: TARGET, op, key, retry_after_ms, "store throttled the request; backing off");
            }
            Response::Failed(Failure::Ambiguous { message }) => {
                tracing::warn!(target: TARGET, op, key, error = %message, "store write outcome unknown; re-reading");
            }
            Response::Failed(Failure::Transient { message }) => {
                tracing::warn!(target: TARGET, op, key, error = %message, "store request failed; backing off");
            }
            _ => tracing::trace!(target: TARGET, op, key, response = ?response, "store response"),
        }
        {
            let mut status = lock(&self.shared.status);
            if matches!(response, Response::Failed(_)) {
                status.consecutive_store_failures += 1;
            } else {
                status.consecutive_store_failures = 0;
            }
            status.store_latency.observe(elapsed.as_secs_f64());
            #[cfg(feature = "metrics")]
            crate::facade::store_latency(&self.labels, elapsed.as_secs_f64());
        }
        if self.first_lease_read == Some(id) {
            self.first_lease_read_done = true;
        }
        self.machine
            .handle_response(id, response, self.shared.clock.now());
    }

    /// Drains the machine after an input: events and the view are published
    /// first (so a step-down is visible before the release goes out), then
    /// the actions are started (or dropped, once the loop is ending).
    fn drain(&mut self, start_actions: bool) {
        let mut actions = Vec::new();
        while let Some(action) = self.machine.poll_action() {
            actions.push(action);
        }
        while let Some(event) = self.machine.poll_event() {
            self.on_event(event);
        }
        self.publish();
        if start_actions {
            for action in actions {
                self.start(action.id, action.request);
            }
        }
    }

    fn start(&mut self, id: RequestId, request: Request) {
        if self.ready.is_some() && self.first_lease_read.is_none() {
            if let Request::Get { key, .. } = &request {
                if *key == self.shared.keys.lease() {
                    self.first_lease_read = Some(id);
                }
            }
        }
        let op = op_name(&request);
        let key = request.key().to_owned();
        tracing::trace!(target: TARGET, op, key, "store request");
        let store = self.store.clone();
        let timeout = self.request_timeout;
        self.in_flight.spawn(async move {
            let started = tokio::time::Instant::now();
            let response = AssertUnwindSafe(execute_with_timeout(store.as_ref(), request, timeout))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| {
                    Response::Failed(Failure::Transient {
                        message: format!("{op} on `{key}` panicked in the store"),
                    })
                });
            Completion {
                id,
                op,
                key,
                response,
                elapsed: started.elapsed(),
            }
        });
    }

    fn on_event(&mut self, event: Event) {
        match &event {
            Event::BecameLeader { epoch, deadline } => {
                let term = Arc::new(Term::new(*epoch, *deadline));
                if let Some(previous) = self.term.replace(term.clone()) {
                    previous.end(coordinator_core::StepDownReason::LeaseLost);
                }
                self.shared.terms.send_replace(Some(term));
                self.shared.span.record("epoch", epoch);
                tracing::info!(target: TARGET, epoch, deadline_ms = deadline.as_millis(), "lease acquired");
            }
            Event::StoppedLeading { epoch, reason } => {
                if let Some(term) = self.term.take() {
                    term.end(*reason);
                }
                self.shared.terms.send_replace(None);
                tracing::info!(target: TARGET, epoch, reason = ?reason, "stopped leading");
            }
            Event::LeaderChanged {
                previous,
                current,
                epoch,
                ..
            } => {
                tracing::info!(target: TARGET, leader = current.as_ref().map(|l| l.as_str()),
                    previous = previous.as_ref().map(|l| l.as_str()), epoch, "leader changed");
            }
            Event::WorkerJoined { worker_id } => {
                tracing::info!(target: TARGET, worker = worker_id.as_str(), "worker joined");
            }
            Event::WorkerTimedOut { worker_id } => {
                tracing::warn!(target: TARGET, worker = worker_id.as_str(), "worker timed out");
            }
            Event::WorkerLeft { worker_id } => {
                tracing::info!(target: TARGET, worker = worker_id.as_str(), "worker left");
            }
            Event::DuplicateWorkerId { worker_id, other } => {
                tracing::error!(target: TARGET, worker = worker_id.as_str(), other_incarnation = %other,
                    "another process uses this worker id; give every process its own");
            }
            Event::RecordProblem { error } => {
                tracing::warn!(target: TARGET, error = %error, "unusable record");
            }
            Event::Refused { error } => {
                tracing::error!(target: TARGET, error = %error, "namespace refused; writing nothing");
                *lock(&self.shared.refusal) = Some(error.clone());
                self.shared.state.send_replace(CoordinatorState::Refused);
                if let Some(ready) = self.ready.take() {
                    let _ = ready.send(Err(error.clone()));
                }
            }
            Event::Stopped => tracing::info!(target: TARGET, "stopped"),
            other => tracing::debug!(target: TARGET, event = ?other, "event"),
        }
        if let Some(sender) = lock(&self.shared.events).as_ref() {
            // No subscriber is fine.
            let _ = sender.send(event);
        }
    }

    /// Publishes the view, the term's deadline and the status.
    fn publish(&mut self) {
        let view = self.machine.view();
        self.shared.view.send_if_modified(|current| {
            if *current == view {
                false
            } else {
                *current = view.clone();
                true
            }
        });
        if let (Some(term), Some((epoch, deadline))) = (&self.term, self.machine.term()) {
            if term.epoch == epoch {
                let before = term.deadline();
                if deadline > before {
                    // A renewal landed: what was left of the old deadline.
                    let margin = before.saturating_since(self.shared.clock.now());
                    lock(&self.shared.status)
                        .renewal_margin
                        .observe(margin.as_secs_f64());
                    #[cfg(feature = "metrics")]
                    crate::facade::renewal_margin(&self.labels, margin.as_secs_f64());
                }
                term.extend(deadline);
            }
        }
        let counters = self.machine.counters();
        let new_cycle = counters.heartbeats != self.heartbeats_seen;
        self.heartbeats_seen = counters.heartbeats;
        let roster = self.machine.roster();
        {
            let mut status = lock(&self.shared.status);
            status.counters = counters;
            if new_cycle {
                status.last_heartbeat_at_unix_ms = Some(self.shared.clock.unix_ms());
            }
            if status.roster != roster {
                status.roster = roster;
            }
            #[cfg(feature = "metrics")]
            {
                let now = self.shared.clock.now();
                let view = self.shared.view.borrow();
                crate::facade::publish(
                    &self.labels,
                    &crate::facade::Snapshot {
                        counters: &status.counters,
                        requests: &self.shared.requests.snapshot(),
                        plugin_requests: &self.shared.plugin_requests.snapshot(),
                        is_leader: view.is_leader && view.deadline.is_some_and(|d| now < d),
                        epoch: view.epoch,
                        workers: status.roster.len(),
                        hook_failures: &self.shared.hook_failures.snapshot(),
                    },
                );
            }
        }
        if self.first_lease_read_done {
            if let Some(ready) = self.ready.take() {
                let _ = ready.send(Ok(()));
                self.shared.state.send_if_modified(|state| {
                    let changed = *state == CoordinatorState::Starting;
                    if changed {
                        *state = CoordinatorState::Running;
                    }
                    changed
                });
            }
        }
        if self.diagnostics && new_cycle {
            let next_ms = self
                .machine
                .poll_timeout()
                .map(|t| t.saturating_since(self.shared.clock.now()).as_millis());
            let requests = self.shared.requests.snapshot();
            tracing::info!(
                target: TARGET,
                cycle = counters.heartbeats,
                leader = view.leader.as_ref().map(|l| l.as_str()),
                epoch = view.epoch,
                is_leader = view.is_leader,
                workers = self.machine.roster().len(),
                in_flight = self.in_flight.len(),
                next_wakeup_ms = next_ms,
                requests = requests.total(),
                store_errors = counters.store_errors,
                "cycle"
            );
        }
    }

    /// After the machine finished: let requests still in flight end (each is
    /// bounded by the request timeout), then mark the loop as ended.
    async fn finish(&mut self) {
        while let Some(done) = self.in_flight.join_next().await {
            if let Ok(completion) = done {
                self.on_completion(completion);
            }
        }
        self.drain(false);
        if let Some(term) = self.term.take() {
            term.end(coordinator_core::StepDownReason::Stopping);
        }
        self.shared.terms.send_replace(None);
        self.shared.state.send_if_modified(|state| {
            if state.is_terminal() {
                false
            } else {
                *state = CoordinatorState::Stopped;
                true
            }
        });
        // Ends every event stream once its buffered events are read.
        lock(&self.shared.events).take();
    }
}
