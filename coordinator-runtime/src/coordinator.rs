//! [`Coordinator`]: the handle on one namespace's election loop, and
//! what applications and plugins read from it.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use coordinator_core::{
    Counters, Event, Identity, Instant, Keys, LeadershipView, Machine, Namespace, RecordError,
    StoreTraits, WorkerId,
};
use coordinator_store::{LeaseStore, Metered, RequestCounter, RequestCounts};
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::config::CoordinatorConfig;
use crate::driver::{Command, Driver};
use crate::error::CoordinatorError;
use crate::events::EventStream;
use crate::health::{Health, HealthInput};
use crate::histogram::{Histogram, RENEWAL_MARGIN_BOUNDS, STORE_REQUEST_BOUNDS};
use crate::plugin::{run_plugin, AttachedNames, CoordinatorPlugin, HookFailures, RunnerEnv};
use crate::term::{watchdog, Term};
use crate::TARGET;

/// Where a coordinator's loop is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CoordinatorState {
    /// Started; its first read of the lease has not answered yet.
    Starting,
    /// Electing, renewing, heartbeating.
    Running,
    /// A graceful stop is under way (release, delete the heartbeat).
    Stopping,
    /// Stopped gracefully.
    Stopped,
    /// The namespace's lease belongs to another implementation; nothing is
    /// written.
    Refused,
    /// The loop was aborted without releasing anything (a simulated crash).
    Aborted,
}

impl CoordinatorState {
    /// True once the loop has ended.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            CoordinatorState::Stopped | CoordinatorState::Refused | CoordinatorState::Aborted
        )
    }
}

/// A snapshot of one coordinator's counters and request costs, from
/// [`Coordinator::metrics`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CoordinatorMetrics {
    /// The namespace.
    pub namespace: String,
    /// This worker.
    pub worker_id: String,
    /// The plugin, for a per-plugin coordinator.
    pub plugin: Option<String>,
    /// The loop's state.
    pub state: CoordinatorState,
    /// Whether this worker leads now (deadline checked).
    pub is_leader: bool,
    /// The leader this worker knows of.
    pub leader: Option<String>,
    /// The highest epoch seen.
    pub epoch: u64,
    /// The election machine's counters: heartbeats, elections, acquisitions,
    /// leader changes, renewals and renewal failures, worker registrations
    /// and timeouts, store errors.
    pub counters: Counters,
    /// How many live workers this worker knows of (the full roster while
    /// leading; the leader and listed successors otherwise).
    pub worker_count: usize,
    /// When the coordinator started, in ms since the Unix epoch.
    pub started_at_unix_ms: u64,
    /// When its last heartbeat cycle (a lease read, or a renewal round) began,
    /// in ms since the Unix epoch.
    pub last_heartbeat_at_unix_ms: Option<u64>,
    /// Store requests the election loop made, by kind. A request cut off by
    /// the runtime's per-request timeout is not counted.
    pub requests: RequestCounts,
    /// What [`requests`](Self::requests) cost at S3 Standard prices, in USD.
    pub requests_usd: f64,
    /// Store requests the plugins made through [`LeaderContext::store`](crate::LeaderContext::store).
    pub plugin_requests: RequestCounts,
    /// What [`plugin_requests`](Self::plugin_requests) cost at S3 Standard
    /// prices, in USD.
    pub plugin_requests_usd: f64,
    /// For each successful renewal, the time that was left before the
    /// leader's deadline when it landed, in seconds: the number that warns
    /// before a leader loses its lease (it shrinks as the store slows
    /// down). Buckets [`RENEWAL_MARGIN_BOUNDS`](crate::RENEWAL_MARGIN_BOUNDS).
    pub renewal_margin_seconds: Histogram,
    /// The latency of each store request of the election loop, in seconds
    /// (a request cut off by the per-request timeout counts at that
    /// timeout). Buckets [`STORE_REQUEST_BOUNDS`](crate::STORE_REQUEST_BOUNDS).
    pub store_request_seconds: Histogram,
    /// Plugin hooks that failed (returned an error, panicked, or were still
    /// running when the term ended), by plugin and hook
    /// (`on_become_coordinator`, `coordinator_work`,
    /// `on_stop_being_coordinator`), sorted.
    pub plugin_hook_failures: Vec<PluginHookFailures>,
}

/// One plugin hook's failures, in [`CoordinatorMetrics::plugin_hook_failures`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PluginHookFailures {
    /// The plugin's name.
    pub plugin: String,
    /// The hook.
    pub hook: &'static str,
    /// How many times it failed.
    pub failures: u64,
}

/// What the loop publishes after every input, for the getters.
#[derive(Clone, Debug, Default)]
pub(crate) struct Status {
    pub(crate) counters: Counters,
    pub(crate) roster: Vec<WorkerId>,
    pub(crate) last_heartbeat_at_unix_ms: Option<u64>,
    /// Store requests of the election loop that failed in a row (0 after
    /// any answer), for [`Coordinator::health`].
    pub(crate) consecutive_store_failures: u64,
    pub(crate) renewal_margin: Histogram,
    pub(crate) store_latency: Histogram,
}

/// Everything the loop, the handle, the watchdog and the plugin runners
/// share.
pub(crate) struct Shared {
    pub(crate) namespace: Namespace,
    pub(crate) identity: Identity,
    pub(crate) keys: Keys,
    pub(crate) plugin: Option<Namespace>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) view: watch::Sender<LeadershipView>,
    pub(crate) terms: watch::Sender<Option<Arc<Term>>>,
    pub(crate) state: watch::Sender<CoordinatorState>,
    /// Taken (closing every event stream) when the loop ends.
    pub(crate) events: Mutex<Option<broadcast::Sender<Event>>>,
    pub(crate) status: Mutex<Status>,
    pub(crate) refusal: Mutex<Option<RecordError>>,
    pub(crate) requests: Arc<RequestCounter>,
    pub(crate) plugin_requests: Arc<RequestCounter>,
    pub(crate) started_at_unix_ms: u64,
    /// How [`Coordinator::health`] judges this worker's renewals: late
    /// past interval + jitter, stuck past the deadline, each with
    /// `request_timeout` of margin.
    pub(crate) renewal_rule: coordinator_core::RenewalRule,
    /// Failed plugin hooks, by plugin and hook.
    pub(crate) hook_failures: Arc<HookFailures>,
    pub(crate) span: tracing::Span,
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the registry hands [`Coordinator::spawn`].
pub(crate) struct SpawnParams {
    /// The id of the registry that starts it (see [`PluginScope`](crate::PluginScope)).
    pub(crate) registry: u64,
    /// The registry's attached plugin names (see [`AttachedNames`]).
    pub(crate) attached: Arc<AttachedNames>,
    pub(crate) store: Arc<dyn LeaseStore>,
    pub(crate) config: CoordinatorConfig,
    pub(crate) namespace: Namespace,
    pub(crate) plugin: Option<Namespace>,
    pub(crate) identity: Identity,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) seed: u64,
}

/// The election loop of one namespace (in per-plugin mode: of one plugin in
/// one namespace), shared by every plugin and subscriber of this worker.
///
/// Get one from [`CoordinatorRegistry::get`](crate::CoordinatorRegistry::get). The loop
/// is one task: a `select!` over commands, store completions and one timer,
/// feeding the [`coordinator_core::Machine`] that makes every decision.
/// Dropping the last handle stops the loop gracefully (in the background).
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use coordinator_runtime::{CoordinatorRegistry, CoordinatorConfig};
/// use coordinator_store::MemoryStore;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), coordinator_runtime::CoordinatorError> {
/// let registry = CoordinatorRegistry::new(
///     Arc::new(MemoryStore::new()),
///     CoordinatorConfig::default().with_worker_id("w1"),
/// )?;
/// let orders = registry.get("orders").await?;
/// let mut leadership = orders.leadership();
/// leadership.wait_for(|view| view.is_leader).await.unwrap();
/// assert!(orders.is_leader());
/// assert_eq!(orders.leader().unwrap().as_str(), "w1");
/// assert_eq!(orders.epoch(), 1);
/// registry.close().await;
/// # Ok(())
/// # }
/// ```
pub struct Coordinator {
    registry: u64,
    attached: Arc<AttachedNames>,
    shared: Arc<Shared>,
    commands: mpsc::UnboundedSender<Command>,
    driver: Mutex<Option<JoinHandle<()>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Held while joining `tasks`, so concurrent waiters all wait for them.
    joining: tokio::sync::Mutex<()>,
    plugin_store: Arc<dyn LeaseStore>,
    plugins: Mutex<BTreeSet<String>>,
}

impl Coordinator {
    /// Starts the loop (and the deadline watchdog). The receiver answers once
    /// the first lease read has answered: `Err` if the namespace was refused.
    pub(crate) fn spawn(
        params: SpawnParams,
    ) -> (Arc<Self>, oneshot::Receiver<Result<(), RecordError>>) {
        let SpawnParams {
            registry,
            attached,
            store,
            config,
            namespace,
            plugin,
            identity,
            clock,
            seed,
        } = params;
        let keys = match &plugin {
            Some(plugin) => Keys::per_plugin(plugin, &namespace),
            None => Keys::global(&namespace),
        };
        let requests = Arc::new(RequestCounter::new());
        let plugin_requests = Arc::new(RequestCounter::new());
        let election_store: Arc<dyn LeaseStore> =
            Arc::new(Metered::with_counter(store.clone(), requests.clone()));
        let plugin_store: Arc<dyn LeaseStore> = Arc::new(Metered::with_counter(
            store.clone(),
            plugin_requests.clone(),
        ));
        let capabilities = store.capabilities();
        let traits = StoreTraits {
            conditional_get: capabilities.conditional_get,
            conditional_delete: capabilities.conditional_delete,
            trusted_clock: capabilities.trusted_clock,
        };
        let now = clock.now();
        let unix_ms = clock.unix_ms();
        let machine = Machine::with_keys(
            config.election.clone(),
            namespace.clone(),
            keys.clone(),
            identity.clone(),
            traits,
            seed,
            now,
            unix_ms,
        );
        let span = tracing::info_span!(
            target: TARGET,
            "coordinator",
            namespace = %namespace,
            worker_id = %identity.worker_id,
            plugin = plugin.as_ref().map(|p| p.as_str()),
            epoch = tracing::field::Empty,
        );
        let (events, _) = broadcast::channel(config.event_capacity.max(1));
        let shared = Arc::new(Shared {
            namespace,
            identity,
            keys,
            plugin,
            clock: clock.clone(),
            view: watch::Sender::new(machine.view()),
            terms: watch::Sender::new(None),
            state: watch::Sender::new(CoordinatorState::Starting),
            events: Mutex::new(Some(events)),
            status: Mutex::new(Status {
                renewal_margin: Histogram::new(RENEWAL_MARGIN_BOUNDS),
                store_latency: Histogram::new(STORE_REQUEST_BOUNDS),
                ..Status::default()
            }),
            refusal: Mutex::new(None),
            requests,
            plugin_requests,
            started_at_unix_ms: unix_ms,
            renewal_rule: coordinator_core::RenewalRule::new(
                &config.election,
                config.election.renew_deadline,
                config.election.request_timeout,
            ),
            hook_failures: Arc::new(HookFailures::default()),
            span,
        });
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = oneshot::channel();
        tracing::info!(target: TARGET, parent: &shared.span, backend = store.backend(),
            base = shared.keys.base(), "coordinator starting");
        let driver = Driver::new(
            machine,
            shared.clone(),
            election_store,
            config.election.request_timeout,
            command_rx,
            ready_tx,
            config.diagnostics,
        );
        let driver_task = tokio::spawn(driver.run());
        let watchdog_task = tokio::spawn(watchdog(
            shared.terms.subscribe(),
            shared.state.subscribe(),
            clock,
        ));
        let coordinator = Arc::new(Self {
            registry,
            attached,
            shared,
            commands,
            driver: Mutex::new(Some(driver_task)),
            tasks: Mutex::new(vec![watchdog_task]),
            joining: tokio::sync::Mutex::new(()),
            plugin_store,
            plugins: Mutex::new(BTreeSet::new()),
        });
        (coordinator, ready_rx)
    }

    // ----- identity -----

    /// The namespace.
    pub fn namespace(&self) -> &Namespace {
        &self.shared.namespace
    }

    /// This worker's id.
    pub fn worker_id(&self) -> &WorkerId {
        &self.shared.identity.worker_id
    }

    /// This worker's id and incarnation.
    pub fn identity(&self) -> &Identity {
        &self.shared.identity
    }

    /// The plugin of a per-plugin coordinator; `None` in global mode.
    pub fn plugin(&self) -> Option<&Namespace> {
        self.shared.plugin.as_ref()
    }

    /// The key layout this loop uses (global or per-plugin prefix).
    pub fn keys(&self) -> &Keys {
        &self.shared.keys
    }

    // ----- what applications and plugins see -----

    /// The current leadership {leader, epoch, am I leader, my deadline}, as
    /// a watch channel: a subscriber that arrives late sees the current
    /// value at once, and every later change.
    ///
    /// `is_leader` in the view is as of the loop's last input; for a check
    /// against the clock use [`is_leader`](Self::is_leader).
    pub fn leadership(&self) -> watch::Receiver<LeadershipView> {
        self.shared.view.subscribe()
    }

    /// A stream of this coordinator's events from now on: leader changed,
    /// became leader, stopped leading, worker joined, timed out or left.
    ///
    /// The stream ends once the loop has ended (at once if it already has).
    pub fn events(&self) -> EventStream {
        let receiver = match lock(&self.shared.events).as_ref() {
            Some(sender) => sender.subscribe(),
            None => broadcast::channel(1).1,
        };
        EventStream::new(receiver)
    }

    /// True while this worker leads: it holds the lease and its deadline
    /// has not passed on the clock, checked now.
    pub fn is_leader(&self) -> bool {
        let now = self.shared.clock.now();
        let view = self.shared.view.borrow();
        view.is_leader && view.deadline.is_some_and(|deadline| now < deadline)
    }

    /// The leader this worker knows of.
    pub fn leader(&self) -> Option<WorkerId> {
        self.shared.view.borrow().leader.clone()
    }

    /// The highest epoch this worker has seen; never goes back.
    pub fn epoch(&self) -> u64 {
        self.shared.view.borrow().epoch
    }

    /// This worker's deadline as leader, on the runtime's clock.
    pub fn deadline(&self) -> Option<Instant> {
        self.shared.view.borrow().deadline
    }

    /// The live workers this worker knows of, sorted: the full roster while
    /// leading, otherwise the leader and the successors the lease lists,
    /// plus itself.
    pub fn workers(&self) -> Vec<WorkerId> {
        lock(&self.shared.status).roster.clone()
    }

    /// Where the loop is in its life.
    pub fn state(&self) -> CoordinatorState {
        *self.shared.state.borrow()
    }

    /// Why the namespace was refused, if it was.
    pub fn refusal(&self) -> Option<RecordError> {
        lock(&self.shared.refusal).clone()
    }

    /// Counters, roster size, times and store request counts.
    pub fn metrics(&self) -> CoordinatorMetrics {
        let status = lock(&self.shared.status).clone();
        let view = self.shared.view.borrow().clone();
        let requests = self.shared.requests.snapshot();
        let plugin_requests = self.shared.plugin_requests.snapshot();
        CoordinatorMetrics {
            namespace: self.shared.namespace.to_string(),
            worker_id: self.shared.identity.worker_id.to_string(),
            plugin: self.shared.plugin.as_ref().map(ToString::to_string),
            state: self.state(),
            is_leader: self.is_leader(),
            leader: view.leader.as_ref().map(ToString::to_string),
            epoch: view.epoch,
            counters: status.counters,
            worker_count: status.roster.len(),
            started_at_unix_ms: self.shared.started_at_unix_ms,
            last_heartbeat_at_unix_ms: status.last_heartbeat_at_unix_ms,
            requests_usd: requests.usd_s3_standard(),
            requests,
            plugin_requests_usd: plugin_requests.usd_s3_standard(),
            plugin_requests,
            renewal_margin_seconds: status.renewal_margin,
            store_request_seconds: status.store_latency,
            plugin_hook_failures: self
                .shared
                .hook_failures
                .snapshot()
                .into_iter()
                .map(|(plugin, hook, failures)| PluginHookFailures {
                    plugin,
                    hook,
                    failures,
                })
                .collect(),
        }
    }

    /// Whether this coordinator is doing its job: healthy, degraded or
    /// unhealthy, with the reason. The rules (client-go's leader-election
    /// health check is the anchor) and a Kubernetes probe recipe are in
    /// [`Health`]'s module docs: a worker that believes it leads past its
    /// renew deadline plus `request_timeout` is unhealthy (stuck), one whose
    /// last 3 store requests failed is degraded.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use coordinator_runtime::{CoordinatorRegistry, CoordinatorConfig, HealthStatus};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), coordinator_runtime::CoordinatorError> {
    /// let registry = CoordinatorRegistry::new(
    ///     Arc::new(coordinator_store::MemoryStore::new()),
    ///     CoordinatorConfig::default().with_worker_id("w1"),
    /// )?;
    /// let orders = registry.get("orders").await?;
    /// orders.leadership().wait_for(|view| view.is_leader).await.unwrap();
    /// let health = orders.health();
    /// assert_eq!(health.status, HealthStatus::Healthy);
    /// assert_eq!(health.reason, "leads at epoch 1");
    /// # registry.close().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn health(&self) -> Health {
        let view = self.shared.view.borrow().clone();
        let failures = lock(&self.shared.status).consecutive_store_failures;
        crate::health::assess(&HealthInput {
            state: self.state(),
            view: &view,
            now: self.shared.clock.now(),
            rule: self.shared.renewal_rule,
            consecutive_store_failures: failures,
            refusal: self.refusal().map(|r| r.to_string()),
        })
    }

    // ----- plugins -----

    /// Attaches a plugin: its hooks are called from now on (at once if this
    /// worker leads already). Usually called through
    /// [`CoordinatorRegistry::attach`](crate::CoordinatorRegistry::attach).
    ///
    /// # Errors
    ///
    /// [`CoordinatorError::InvalidId`] for a name that cannot be used in keys;
    /// [`CoordinatorError::PluginAlreadyAttached`] if a plugin of that name
    /// is already attached to this namespace through this coordinator's
    /// registry, under this election or another (a name runs under one
    /// election per namespace and registry);
    /// [`CoordinatorError::PluginScopeMismatch`] for a plugin built for
    /// another namespace or from another registry (see
    /// [`CoordinatorPlugin::scope`]).
    pub fn add_plugin(&self, plugin: Arc<dyn CoordinatorPlugin>) -> Result<(), CoordinatorError> {
        let name = Namespace::new(plugin.name())?;
        let claim = self.attached.claim(&self.shared.namespace, name.as_str())?;
        self.add_claimed_plugin(plugin)?;
        claim.keep();
        Ok(())
    }

    /// [`add_plugin`](Self::add_plugin) for a name the caller already
    /// claimed in the registry's [`AttachedNames`].
    pub(crate) fn add_claimed_plugin(
        &self,
        plugin: Arc<dyn CoordinatorPlugin>,
    ) -> Result<(), CoordinatorError> {
        let name = Namespace::new(plugin.name())?;
        if let Some(scope) = plugin.scope() {
            scope.check(
                name.as_str(),
                self.registry,
                &self.shared.namespace,
                &self.shared.identity.worker_id,
            )?;
        }
        if !lock(&self.plugins).insert(name.to_string()) {
            return Err(CoordinatorError::PluginAlreadyAttached {
                plugin: name.to_string(),
                namespace: self.shared.namespace.to_string(),
            });
        }
        let env = RunnerEnv {
            namespace: self.shared.namespace.clone(),
            worker_id: self.shared.identity.worker_id.clone(),
            store: self.plugin_store.clone(),
            clock: self.shared.clock.clone(),
            election: Arc::from(self.keys().lease()),
            terms: self.shared.terms.subscribe(),
            state: self.shared.state.subscribe(),
            span: self.shared.span.clone(),
            failures: self.shared.hook_failures.clone(),
        };
        let task = tokio::spawn(run_plugin(plugin, env));
        lock(&self.tasks).push(task);
        Ok(())
    }

    /// The names of the attached plugins.
    pub fn plugins(&self) -> Vec<String> {
        lock(&self.plugins).iter().cloned().collect()
    }

    // ----- stopping -----

    /// Asks the loop to stop gracefully without waiting: it steps down,
    /// releases the lease (a successor takes over within about one poll),
    /// deletes this worker's heartbeat object and ends.
    pub fn request_stop(&self) {
        let _ = self.commands.send(Command::Stop);
    }

    /// Stops gracefully and waits until the loop has ended and every
    /// plugin's last `on_stop_being_coordinator` has returned. Idempotent.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not undo the stop, which goes on in the
    /// background.
    pub async fn stop(&self) {
        self.request_stop();
        self.wait_stopped().await;
    }

    /// Waits until the loop has ended (stopped, refused or aborted) and
    /// every plugin runner has finished. After an abort, runners finish when
    /// the term's deadline passes.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn wait_stopped(&self) {
        let mut state = self.shared.state.subscribe();
        let _ = state.wait_for(|s| s.is_terminal()).await;
        let _joining = self.joining.lock().await;
        loop {
            let tasks: Vec<JoinHandle<()>> = std::mem::take(&mut *lock(&self.tasks));
            if tasks.is_empty() {
                return;
            }
            for task in tasks {
                let _ = task.await;
            }
        }
    }

    /// Kills the loop at once, without releasing the lease or deleting the
    /// heartbeat: what a crash looks like to the other workers. The plugins'
    /// contexts stay valid until this worker's deadline (the watchdog then
    /// cancels them), as they would in a process whose loop died. For tests
    /// and demos; use [`stop`](Self::stop) otherwise.
    pub fn abort(&self) {
        if let Some(driver) = lock(&self.driver).take() {
            driver.abort();
        }
        lock(&self.shared.events).take();
        self.shared.state.send_if_modified(|state| {
            if state.is_terminal() {
                false
            } else {
                *state = CoordinatorState::Aborted;
                true
            }
        });
        tracing::warn!(target: TARGET, parent: &self.shared.span,
            "coordinator aborted without releasing the lease");
    }
}

impl fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coordinator")
            .field("namespace", &self.shared.namespace)
            .field("worker_id", &self.shared.identity.worker_id)
            .field("plugin", &self.shared.plugin)
            .field("state", &self.state())
            .field("view", &*self.shared.view.borrow())
            .finish_non_exhaustive()
    }
}
