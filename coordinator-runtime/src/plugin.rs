//! The plugin interface, and the task that calls one plugin's hooks.

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use coordinator_core::{Namespace, StepDownReason, WorkerId};
use coordinator_store::LeaseStore;
use futures::FutureExt;
use tokio::sync::watch;
use tracing::Instrument;

use crate::clock::Clock;
use crate::coordinator::CoordinatorState;
use crate::error::CoordinatorError;
use crate::term::{cancelled, sleep_until, LeaderContext, Term};
use crate::TARGET;

/// The error a plugin hook may return. The runtime logs it (with the plugin
/// name) and carries on: a failing hook never stops the election.
pub type PluginError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Leader-only background work (queue maintenance, cron, TTL sweeps) that
/// runs on whichever worker leads a namespace.
///
/// The same plugin code runs in [`Global`](crate::CoordinationMode::Global)
/// and [`PerPlugin`](crate::CoordinationMode::PerPlugin) mode.
///
/// # What the runtime guarantees
///
/// * A hook that returns an error or panics is logged (target
///   `coordinator_runtime::election`, with the plugin name) and does not stop the
///   election or the plugin's later hooks.
/// * The hooks of one plugin (on one worker) never overlap: they run one
///   after the other on one task.
/// * Every [`on_stop_being_coordinator`](Self::on_stop_being_coordinator)
///   follows the [`on_become_coordinator`](Self::on_become_coordinator) of
///   the same term, and each is called at most once per term. A term that
///   ends before its `on_become` could start is skipped entirely.
/// * The [`LeaderContext`]'s token is cancelled at this worker's deadline,
///   before any other worker can take over, even if a hook is slow or the
///   election loop is stuck; a running `on_become_coordinator` or
///   `coordinator_work` future is dropped at that moment.
/// * [`coordinator_work`](Self::coordinator_work) runs only while the term
///   is valid: first right after `on_become_coordinator` returns, then every
///   [`work_interval`](Self::work_interval).
///
/// # Not guaranteed
///
/// An effect sent before the deadline can land after it (a slow request).
/// Write shared state fenced by [`LeaderContext::epoch`] with
/// compare-and-swap, and check [`LeaderContext::is_valid`] just before each
/// effect.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use coordinator_runtime::{async_trait, CoordinatorPlugin, LeaderContext, PluginError};
/// use coordinator_core::StepDownReason;
///
/// struct Janitor;
///
/// #[async_trait]
/// impl CoordinatorPlugin for Janitor {
///     fn name(&self) -> &str { "janitor" }
///     async fn on_become_coordinator(&self, ctx: LeaderContext) -> Result<(), PluginError> {
///         println!("leading {} under epoch {}", ctx.namespace(), ctx.epoch());
///         Ok(())
///     }
///     async fn on_stop_being_coordinator(&self, reason: StepDownReason) -> Result<(), PluginError> {
///         println!("no longer leading: {reason:?}");
///         Ok(())
///     }
///     async fn coordinator_work(&self, ctx: &LeaderContext) -> Result<(), PluginError> {
///         if ctx.is_valid() { /* sweep */ }
///         Ok(())
///     }
///     fn work_interval(&self) -> Option<Duration> { Some(Duration::from_secs(30)) }
/// }
/// ```
#[async_trait]
pub trait CoordinatorPlugin: Send + Sync + 'static {
    /// A short, stable name: letters, digits, `-`, `_`, `.` or `:`. It names
    /// the plugin in logs and, in per-plugin mode, its key prefix.
    fn name(&self) -> &str;

    /// This worker now leads the namespace. `ctx` stays valid until its
    /// token fires; keep it to spawn work bound to the term.
    ///
    /// # Errors
    ///
    /// Any error is logged; the plugin is still considered leading (its
    /// `on_stop_being_coordinator` will be called).
    async fn on_become_coordinator(&self, ctx: LeaderContext) -> Result<(), PluginError>;

    /// This worker no longer leads (or is stopping). The token of the
    /// term's context has already fired.
    ///
    /// # Errors
    ///
    /// Any error is logged.
    async fn on_stop_being_coordinator(&self, reason: StepDownReason) -> Result<(), PluginError>;

    /// Periodic leader-only work, called every
    /// [`work_interval`](Self::work_interval) while leading. Does nothing by
    /// default.
    ///
    /// # Errors
    ///
    /// Any error is logged; the next call still happens.
    async fn coordinator_work(&self, ctx: &LeaderContext) -> Result<(), PluginError> {
        let _ = ctx;
        Ok(())
    }

    /// How often to call [`coordinator_work`](Self::coordinator_work);
    /// `None` (the default) never calls it.
    fn work_interval(&self) -> Option<Duration> {
        None
    }

    /// The registry and namespace this plugin was built for, if it was
    /// built from a [`PluginScope`]: attaching it under another namespace,
    /// or through another registry, fails with
    /// [`CoordinatorError::PluginScopeMismatch`] instead of running its
    /// leader-only work under an election that does not guard its data.
    /// `None` (the default): the plugin may be attached anywhere.
    fn scope(&self) -> Option<&PluginScope> {
        None
    }
}

/// One namespace of one [`CoordinatorRegistry`](crate::CoordinatorRegistry),
/// as a plugin's handle is built for it: the registry's store, clock and
/// worker id, and the namespace whose election must guard the plugin's
/// data. Get one from
/// [`CoordinatorRegistry::scope`](crate::CoordinatorRegistry::scope).
///
/// A plugin built from a scope returns it from
/// [`CoordinatorPlugin::scope`]; the registry then refuses to attach it
/// under another namespace or through another registry (another store,
/// clock or worker), with [`CoordinatorError::PluginScopeMismatch`]. The
/// plugins of `coordinator-plugins` are all built this way.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use coordinator_runtime::{CoordinatorConfig, CoordinatorRegistry};
/// use coordinator_store::MemoryStore;
/// let registry = CoordinatorRegistry::new(
///     Arc::new(MemoryStore::new()),
///     CoordinatorConfig::default().with_worker_id("w1"),
/// )
/// .unwrap();
/// let scope = registry.scope("shop").unwrap();
/// assert_eq!(scope.namespace().as_str(), "shop");
/// assert_eq!(scope.worker_id().as_str(), "w1");
/// assert_eq!(scope.store().backend(), "memory");
/// assert!(registry.scope("a/b").is_err());
/// ```
#[derive(Clone)]
pub struct PluginScope {
    pub(crate) registry: u64,
    pub(crate) namespace: Namespace,
    pub(crate) worker_id: WorkerId,
    pub(crate) store: Arc<dyn LeaseStore>,
    pub(crate) clock: Arc<dyn Clock>,
}

impl PluginScope {
    /// The namespace whose election guards the plugin's data.
    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    /// The registry's worker id: the id to write into claims and records.
    pub fn worker_id(&self) -> &WorkerId {
        &self.worker_id
    }

    /// The registry's store, for the plugin's own requests.
    pub fn store(&self) -> &Arc<dyn LeaseStore> {
        &self.store
    }

    /// The registry's clock: the one its coordinators measure deadlines on.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// `Ok` if a plugin built for this scope may be attached to
    /// `namespace` through the registry `registry` of `worker_id`.
    pub(crate) fn check(
        &self,
        plugin: &str,
        registry: u64,
        namespace: &Namespace,
        worker_id: &WorkerId,
    ) -> Result<(), CoordinatorError> {
        if self.registry == registry && self.namespace == *namespace {
            return Ok(());
        }
        Err(CoordinatorError::PluginScopeMismatch {
            plugin: plugin.to_owned(),
            built_namespace: self.namespace.to_string(),
            built_worker: self.worker_id.to_string(),
            namespace: namespace.to_string(),
            worker: worker_id.to_string(),
            same_registry: self.registry == registry,
        })
    }
}

impl fmt::Debug for PluginScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginScope")
            .field("namespace", &self.namespace)
            .field("worker_id", &self.worker_id)
            .field("backend", &self.store.backend())
            .finish_non_exhaustive()
    }
}

/// The plugin names attached through one registry, by namespace, whatever
/// their mode: a name runs under one election per namespace and registry.
/// Shared by the registry and its coordinators, so that
/// [`Coordinator::add_plugin`](crate::Coordinator::add_plugin) called
/// directly is held to it too.
#[derive(Debug, Default)]
pub(crate) struct AttachedNames(std::sync::Mutex<std::collections::HashSet<(Namespace, String)>>);

impl AttachedNames {
    fn names(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<(Namespace, String)>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reserves `plugin` in `namespace` until the claim is dropped, or for
    /// good once it is [kept](AttachClaim::keep).
    pub(crate) fn claim(
        self: &Arc<Self>,
        namespace: &Namespace,
        plugin: &str,
    ) -> Result<AttachClaim, CoordinatorError> {
        let key = (namespace.clone(), plugin.to_owned());
        if !self.names().insert(key.clone()) {
            return Err(CoordinatorError::PluginAlreadyAttached {
                plugin: key.1,
                namespace: key.0.to_string(),
            });
        }
        Ok(AttachClaim {
            names: self.clone(),
            key: Some(key),
        })
    }
}

/// A plugin name reserved in [`AttachedNames`] while it is being attached;
/// released again unless [`keep`](Self::keep) is called, so a failed or
/// cancelled attach leaves the name free.
pub(crate) struct AttachClaim {
    names: Arc<AttachedNames>,
    key: Option<(Namespace, String)>,
}

impl AttachClaim {
    /// The plugin is attached: the name stays taken.
    pub(crate) fn keep(mut self) {
        self.key = None;
    }
}

impl Drop for AttachClaim {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.names.names().remove(&key);
        }
    }
}

/// What a plugin runner needs from its coordinator.
pub(crate) struct RunnerEnv {
    pub(crate) namespace: Namespace,
    pub(crate) worker_id: WorkerId,
    pub(crate) store: Arc<dyn LeaseStore>,
    pub(crate) clock: Arc<dyn Clock>,
    /// The election's lease key (see [`LeaderContext::election`]).
    pub(crate) election: Arc<str>,
    pub(crate) terms: watch::Receiver<Option<Arc<Term>>>,
    pub(crate) state: watch::Receiver<CoordinatorState>,
    pub(crate) span: tracing::Span,
    /// Where failed hooks are counted (see [`HookFailures`]).
    pub(crate) failures: Arc<HookFailures>,
}

/// Failed plugin hooks (an error, a panic, or still running when the term
/// ended), by plugin and hook, for
/// [`CoordinatorMetrics::plugin_hook_failures`](crate::CoordinatorMetrics::plugin_hook_failures).
#[derive(Debug, Default)]
pub(crate) struct HookFailures(
    std::sync::Mutex<std::collections::BTreeMap<(String, &'static str), u64>>,
);

impl HookFailures {
    fn count(&self, plugin: &str, hook: &'static str) {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *map.entry((plugin.to_owned(), hook)).or_default() += 1;
    }

    /// `(plugin, hook, failures)`, sorted.
    pub(crate) fn snapshot(&self) -> Vec<(String, &'static str, u64)> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|((plugin, hook), n)| (plugin.clone(), *hook, *n))
            .collect()
    }
}

fn log_result(
    failures: &HookFailures,
    plugin: &str,
    hook: &'static str,
    result: Result<(), PluginError>,
) {
    if let Err(error) = result {
        failures.count(plugin, hook);
        tracing::warn!(target: TARGET, plugin, hook, error = %error, "plugin hook failed");
    }
}

/// A hook's panic as an error, so the runner (and the plugin's next terms)
/// survive it.
fn panicked(panic: &(dyn std::any::Any + Send)) -> PluginError {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic".to_owned());
    format!("hook panicked: {message}").into()
}

/// Runs `future` unless `ctx`'s term ends first; says whether it finished.
async fn until_cancelled<F: std::future::Future<Output = Result<(), PluginError>>>(
    failures: &HookFailures,
    ctx: &LeaderContext,
    plugin: &str,
    hook: &'static str,
    future: F,
) -> bool {
    tokio::select! {
        // In order: tokio picks a ready branch at random (seeded per
        // process), and a seed must replay a simulated run.
        biased;
        () = ctx.cancelled() => {
            failures.count(plugin, hook);
            tracing::warn!(target: TARGET, plugin, hook, epoch = ctx.epoch(),
                "plugin hook still running at the end of the term; cancelled");
            false
        }
        result = AssertUnwindSafe(future).catch_unwind() => {
            log_result(failures, plugin, hook, result.unwrap_or_else(|panic| Err(panicked(panic.as_ref()))));
            true
        }
    }
}

/// Calls one plugin's hooks in order for as long as the coordinator runs,
/// and until the last term it started has ended.
pub(crate) async fn run_plugin(plugin: Arc<dyn CoordinatorPlugin>, env: RunnerEnv) {
    let span =
        tracing::info_span!(target: TARGET, parent: &env.span, "plugin", plugin = plugin.name());
    run_plugin_inner(plugin, env).instrument(span).await;
}

async fn run_plugin_inner(plugin: Arc<dyn CoordinatorPlugin>, env: RunnerEnv) {
    let RunnerEnv {
        namespace,
        worker_id,
        store,
        clock,
        election,
        mut terms,
        mut state,
        failures,
        ..
    } = env;
    let name: Arc<str> = Arc::from(plugin.name());
    let interval = plugin.work_interval().filter(|d| !d.is_zero());
    let mut current: Option<LeaderContext> = None;
    let mut last_epoch = 0u64;
    let mut next_work: Option<tokio::time::Instant> = None;
    let mut terms_open = true;
    let mut state_open = true;
    loop {
        // 1. The current term ended: say so, once.
        if let Some(ctx) = current.as_ref().filter(|ctx| !ctx.is_valid()) {
            let reason = ctx.term_reason();
            current = None;
            next_work = None;
            tracing::info!(target: TARGET, plugin = &*name, reason = ?reason, "on_stop_being_coordinator");
            let result = AssertUnwindSafe(plugin.on_stop_being_coordinator(reason))
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| Err(panicked(panic.as_ref())));
            log_result(&failures, &name, "on_stop_being_coordinator", result);
            continue;
        }
        // 2. A new term began: say so, once.
        if current.is_none() {
            let term = terms.borrow_and_update().clone();
            if let Some(term) = term.filter(|t| t.epoch > last_epoch && t.is_valid(clock.as_ref()))
            {
                last_epoch = term.epoch;
                let ctx = LeaderContext::new(
                    term,
                    namespace.clone(),
                    worker_id.clone(),
                    Some(name.clone()),
                    store.clone(),
                    clock.clone(),
                )
                .with_election(election.clone());
                current = Some(ctx.clone());
                tracing::info!(target: TARGET, plugin = &*name, epoch = ctx.epoch(), "on_become_coordinator");
                let finished = until_cancelled(
                    &failures,
                    &ctx,
                    &name,
                    "on_become_coordinator",
                    plugin.on_become_coordinator(ctx.clone()),
                )
                .await;
                next_work = interval
                    .filter(|_| finished)
                    .map(|_| tokio::time::Instant::now());
                continue;
            }
            if state.borrow().is_terminal() || (!terms_open && !state_open) {
                return;
            }
        }
        let work_at = next_work;
        tokio::select! {
            // In order: tokio picks a ready branch at random (seeded per
            // process), and a seed must replay a simulated run.
            biased;
            changed = terms.changed(), if terms_open => terms_open = changed.is_ok(),
            changed = state.changed(), if state_open => state_open = changed.is_ok(),
            () = cancelled(current.as_ref().map(LeaderContext::cancellation_token)) => {}
            () = sleep_until(work_at) => {
                if let (Some(ctx), Some(every)) = (current.clone(), interval) {
                    if ctx.is_valid() {
                        until_cancelled(&failures, &ctx, &name, "coordinator_work", plugin.coordinator_work(&ctx)).await;
                    }
                    next_work = Some(tokio::time::Instant::now() + every);
                }
            }
        }
    }
}
