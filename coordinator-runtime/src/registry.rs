//! [`CoordinatorRegistry`]: one coordinator per namespace (and, for each
//! plugin attached in per-plugin mode, per plugin), created on first use,
//! cached and shared.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use coordinator_core::{Identity, Incarnation, Namespace};
use coordinator_store::LeaseStore;
use tokio::sync::OnceCell;

use crate::clock::{Clock, SystemClock};
use crate::config::{CoordinationMode, CoordinatorConfig};
use crate::coordinator::{lock, Coordinator, SpawnParams};
use crate::error::{CoordinatorError, ErrorKind};
use crate::identity::{derive_seed, os_seed, resolve_worker_id};
use crate::plugin::{AttachedNames, CoordinatorPlugin, PluginScope};
use crate::TARGET;

/// The cache key: a namespace, and the plugin for a per-plugin coordinator.
type Key = (Namespace, Option<Namespace>);

/// The coordinators of one worker process: one per namespace, created
/// lazily on first use, cached and shared. Concurrent first callers for one
/// namespace get the same instance, and exactly one election loop runs for
/// it.
///
/// Call [`close`](Self::close) before exiting: it stops every loop
/// gracefully (releasing leadership and deleting this worker's heartbeat
/// objects), so successors take over within about one poll. Dropping the
/// registry without closing logs a warning and still asks every loop to
/// stop, in the background, while the tokio runtime lives.
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
/// let a = registry.get("orders").await?;
/// let b = registry.get("orders").await?;
/// assert!(Arc::ptr_eq(&a, &b));
/// registry.close().await;
/// # Ok(())
/// # }
/// ```
pub struct CoordinatorRegistry {
    /// Unique in the process: what a [`PluginScope`] names its registry by.
    id: u64,
    store: Arc<dyn LeaseStore>,
    config: CoordinatorConfig,
    identity: Identity,
    clock: Arc<dyn Clock>,
    entries: Mutex<HashMap<Key, Arc<OnceCell<Arc<Coordinator>>>>>,
    /// The plugins attached (or being attached) through this registry or
    /// its coordinators, by namespace and name, whatever their mode: a name
    /// runs under one election per namespace and worker, never under both.
    attached: Arc<AttachedNames>,
    closed: AtomicBool,
}

/// Builds a [`CoordinatorRegistry`] with a clock of your choice.
///
/// ```
/// use std::sync::Arc;
/// use coordinator_runtime::{CoordinatorRegistry, CoordinatorConfig, TokioClock};
/// use coordinator_store::MemoryStore;
/// let registry = CoordinatorRegistry::builder(Arc::new(MemoryStore::new()))
///     .config(CoordinatorConfig::default().with_worker_id("w1").with_seed(7))
///     .clock(Arc::new(TokioClock::new()))
///     .build()
///     .unwrap();
/// assert_eq!(registry.worker_id().as_str(), "w1");
/// ```
#[derive(Debug)]
pub struct CoordinatorRegistryBuilder {
    store: Arc<dyn LeaseStore>,
    config: CoordinatorConfig,
    clock: Option<Arc<dyn Clock>>,
}

impl CoordinatorRegistryBuilder {
    /// Sets the configuration (default: [`CoordinatorConfig::default`]).
    pub fn config(mut self, config: CoordinatorConfig) -> Self {
        self.config = config;
        self
    }

    /// Sets the clock (default: [`SystemClock`]; use
    /// [`TokioClock`](crate::TokioClock) under paused tokio time).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Validates the configuration and resolves this worker's identity.
    ///
    /// # Errors
    ///
    /// What [`CoordinatorConfig::validate`] finds, or an invalid derived
    /// worker id.
    pub fn build(self) -> Result<CoordinatorRegistry, CoordinatorError> {
        self.config.validate()?;
        let seed = self.config.seed;
        let draw = |label: &str| seed.map_or_else(os_seed, |root| derive_seed(root, &[label]));
        let worker_id = resolve_worker_id(self.config.worker_id.as_deref(), draw("worker-id"))?;
        let identity = Identity {
            worker_id,
            incarnation: Incarnation(draw("incarnation")),
        };
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Ok(CoordinatorRegistry {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            store: self.store,
            config: self.config,
            identity,
            clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock::new())),
            entries: Mutex::new(HashMap::new()),
            attached: Arc::default(),
            closed: AtomicBool::new(false),
        })
    }
}

impl CoordinatorRegistry {
    /// A registry over `store` with the [`SystemClock`].
    ///
    /// # Errors
    ///
    /// What [`CoordinatorConfig::validate`] finds, or an invalid derived
    /// worker id.
    pub fn new(
        store: Arc<dyn LeaseStore>,
        config: CoordinatorConfig,
    ) -> Result<Self, CoordinatorError> {
        Self::builder(store).config(config).build()
    }

    /// A builder, to choose the clock.
    pub fn builder(store: Arc<dyn LeaseStore>) -> CoordinatorRegistryBuilder {
        CoordinatorRegistryBuilder {
            store,
            config: CoordinatorConfig::default(),
            clock: None,
        }
    }

    /// This process's worker id (the same in every namespace).
    pub fn worker_id(&self) -> &coordinator_core::WorkerId {
        &self.identity.worker_id
    }

    /// This process's identity: worker id and random incarnation.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The configuration in force.
    pub fn config(&self) -> &CoordinatorConfig {
        &self.config
    }

    /// The scope to build a plugin's handle in for `namespace`: this
    /// registry's store, clock and worker id. A plugin built from it can be
    /// attached only to `namespace` through this registry; see
    /// [`PluginScope`]. Starts nothing: a process that only produces work
    /// (enqueues, registers records) builds its handles from a registry
    /// that never starts a coordinator.
    ///
    /// # Errors
    ///
    /// [`CoordinatorError::InvalidId`] for a namespace that cannot be used
    /// in keys.
    pub fn scope(&self, namespace: &str) -> Result<PluginScope, CoordinatorError> {
        Ok(PluginScope {
            registry: self.id,
            namespace: Namespace::new(namespace)?,
            worker_id: self.identity.worker_id.clone(),
            store: self.store.clone(),
            clock: self.clock.clone(),
        })
    }

    /// The global-mode coordinator of `namespace`, started on first use.
    ///
    /// The first call waits for the first read of the namespace's lease (one
    /// store round trip), so that a namespace owned by another
    /// implementation is reported here. A coordinator that was stopped or
    /// aborted directly stays cached: `get` returns it as it is.
    ///
    /// # Errors
    ///
    /// * [`CoordinatorError::InvalidId`] for a namespace that cannot be used
    ///   in keys;
    /// * [`CoordinatorError::Refused`] if the lease belongs to another
    ///   implementation (a later call tries again);
    /// * [`CoordinatorError::Closed`] after [`close`](Self::close).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a start that was begun finishes for the next caller.
    pub async fn get(&self, namespace: &str) -> Result<Arc<Coordinator>, CoordinatorError> {
        let namespace = Namespace::new(namespace)?;
        self.entry(namespace, None).await
    }

    /// The per-plugin coordinator of `plugin` in `namespace` (keys under
    /// `plg_coordinator_plugin/<plugin>/<namespace>/`), started on first use.
    ///
    /// # Errors
    ///
    /// As for [`get`](Self::get); the plugin name is validated like a
    /// namespace.
    ///
    /// # Cancel safety
    ///
    /// As for [`get`](Self::get).
    pub async fn get_per_plugin(
        &self,
        namespace: &str,
        plugin: &str,
    ) -> Result<Arc<Coordinator>, CoordinatorError> {
        let namespace = Namespace::new(namespace)?;
        let plugin = Namespace::new(plugin)?;
        self.entry(namespace, Some(plugin)).await
    }

    /// Attaches `plugin` to `namespace` in the mode the configuration gives
    /// its name ([`CoordinatorConfig::mode_for`]: its entry in
    /// [`plugin_modes`](CoordinatorConfig::plugin_modes), else
    /// [`mode`](CoordinatorConfig::mode)), and returns the coordinator it
    /// runs under; see [`attach_with_mode`](Self::attach_with_mode).
    ///
    /// # Errors
    ///
    /// As for [`attach_with_mode`](Self::attach_with_mode).
    ///
    /// # Cancel safety
    ///
    /// As for [`get`](Self::get).
    pub async fn attach(
        &self,
        namespace: &str,
        plugin: Arc<dyn CoordinatorPlugin>,
    ) -> Result<Arc<Coordinator>, CoordinatorError> {
        let mode = self.config.mode_for(plugin.name());
        self.attach_with_mode(namespace, plugin, mode).await
    }

    /// Attaches `plugin` to `namespace` in `mode`, whatever the
    /// configuration says, and returns the coordinator it runs under:
    ///
    /// * `Global`: the namespace's shared coordinator. If that is refused and
    ///   [`fallback_to_per_plugin`](CoordinatorConfig::fallback_to_per_plugin)
    ///   is set, the plugin's own per-plugin coordinator instead, with a
    ///   warning.
    /// * `PerPlugin`: the plugin's own coordinator (keys under
    ///   `plg_coordinator_plugin/<plugin>/<namespace>/`).
    ///
    /// Plugins of one registry may use different modes: during a migration
    /// one plugin is canaried on the shared election while the others keep
    /// their own. A plugin name runs under one election per namespace and
    /// registry: attaching it again, in either mode, is refused.
    ///
    /// # Errors
    ///
    /// As for [`get`](Self::get), plus an invalid name,
    /// [`CoordinatorError::PluginAlreadyAttached`] for a name already
    /// attached to `namespace` through this registry (in either mode), and
    /// [`CoordinatorError::PluginScopeMismatch`] for a plugin built for
    /// another namespace or from another registry (see
    /// [`CoordinatorPlugin::scope`]).
    ///
    /// # Cancel safety
    ///
    /// As for [`get`](Self::get); a cancelled attach leaves the name free.
    ///
    /// # Examples
    ///
    /// Two plugins of one worker, one under the namespace's shared election
    /// and one under its own:
    ///
    /// ```
    /// use std::sync::Arc;
    /// use coordinator_runtime::{async_trait, CoordinationMode, CoordinatorConfig,
    ///     CoordinatorPlugin, CoordinatorRegistry, LeaderContext, PluginError, StepDownReason};
    /// use coordinator_store::MemoryStore;
    ///
    /// struct Named(&'static str);
    ///
    /// #[async_trait]
    /// impl CoordinatorPlugin for Named {
    ///     fn name(&self) -> &str { self.0 }
    ///     async fn on_become_coordinator(&self, ctx: LeaderContext) -> Result<(), PluginError> {
    ///         println!("{} leads under {}", self.0, ctx.election());
    ///         Ok(())
    ///     }
    ///     async fn on_stop_being_coordinator(&self, _: StepDownReason) -> Result<(), PluginError> {
    ///         Ok(())
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), coordinator_runtime::CoordinatorError> {
    /// // Every plugin per plugin, except `billing`, canaried on the shared election.
    /// let config = CoordinatorConfig::default()
    ///     .with_worker_id("w1")
    ///     .with_mode(CoordinationMode::PerPlugin)
    ///     .with_plugin_mode("billing", CoordinationMode::Global);
    /// let registry = CoordinatorRegistry::new(Arc::new(MemoryStore::new()), config)?;
    /// let billing = registry.attach("shop", Arc::new(Named("billing"))).await?;
    /// let reports = registry.attach("shop", Arc::new(Named("reports"))).await?;
    /// assert_eq!(billing.keys().lease(), "plg_coordinator_global/shop/state.json");
    /// assert_eq!(reports.keys().lease(), "plg_coordinator_plugin/reports/shop/state.json");
    /// // The same name again, in the other mode: refused.
    /// let again = registry
    ///     .attach_with_mode("shop", Arc::new(Named("billing")), CoordinationMode::PerPlugin)
    ///     .await;
    /// assert!(again.is_err());
    /// registry.close().await;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn attach_with_mode(
        &self,
        namespace: &str,
        plugin: Arc<dyn CoordinatorPlugin>,
        mode: CoordinationMode,
    ) -> Result<Arc<Coordinator>, CoordinatorError> {
        let name = plugin.name().to_owned();
        Namespace::new(name.as_str())?;
        let ns = Namespace::new(namespace)?;
        if let Some(scope) = plugin.scope() {
            scope.check(&name, self.id, &ns, &self.identity.worker_id)?;
        }
        let claim = self.attached.claim(&ns, &name)?;
        let coordinator = match mode {
            CoordinationMode::PerPlugin => self.get_per_plugin(namespace, &name).await?,
            CoordinationMode::Global => match self.get(namespace).await {
                Ok(coordinator) => coordinator,
                Err(error)
                    if error.kind() == ErrorKind::Refused && self.config.fallback_to_per_plugin =>
                {
                    tracing::warn!(target: TARGET, namespace, plugin = name.as_str(), error = %error,
                        "global coordination cannot start; falling back to per-plugin mode for this plugin");
                    self.get_per_plugin(namespace, &name).await?
                }
                Err(error) => return Err(error),
            },
        };
        coordinator.add_claimed_plugin(plugin)?;
        claim.keep();
        Ok(coordinator)
    }

    /// The coordinators started so far.
    pub fn coordinators(&self) -> Vec<Arc<Coordinator>> {
        lock(&self.entries)
            .values()
            .filter_map(|cell| cell.get().cloned())
            .collect()
    }

    async fn entry(
        &self,
        namespace: Namespace,
        plugin: Option<Namespace>,
    ) -> Result<Arc<Coordinator>, CoordinatorError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(CoordinatorError::Closed);
        }
        let key = (namespace.clone(), plugin.clone());
        let cell = lock(&self.entries).entry(key).or_default().clone();
        let coordinator = cell
            .get_or_try_init(|| self.start(namespace, plugin))
            .await?
            .clone();
        if self.closed.load(Ordering::Acquire) {
            // Closed while starting: close() may have missed this one.
            coordinator.stop().await;
            return Err(CoordinatorError::Closed);
        }
        Ok(coordinator)
    }

    async fn start(
        &self,
        namespace: Namespace,
        plugin: Option<Namespace>,
    ) -> Result<Arc<Coordinator>, CoordinatorError> {
        let plugin_label = plugin.as_ref().map_or("", |p| p.as_str());
        let seed = self.config.seed.map_or_else(os_seed, |root| {
            derive_seed(root, &[namespace.as_str(), plugin_label, "machine"])
        });
        let (coordinator, ready) = Coordinator::spawn(SpawnParams {
            registry: self.id,
            attached: self.attached.clone(),
            store: self.store.clone(),
            config: self.config.clone(),
            namespace: namespace.clone(),
            plugin,
            identity: self.identity.clone(),
            clock: self.clock.clone(),
            seed,
        });
        match ready.await {
            Ok(Err(error)) => {
                coordinator.wait_stopped().await;
                Err(CoordinatorError::Refused {
                    namespace: namespace.to_string(),
                    base: coordinator.keys().base().to_owned(),
                    error,
                })
            }
            _ => Ok(coordinator),
        }
    }

    /// Stops every coordinator gracefully, concurrently, and waits for them:
    /// each releases its lease if it leads and deletes this worker's
    /// heartbeat object; every plugin's last stop hook has returned when
    /// this returns. Later calls to [`get`](Self::get) fail with
    /// [`CoordinatorError::Closed`]. Idempotent.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future leaves the stops going on in the background.
    pub async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let all = self.coordinators();
        futures::future::join_all(all.iter().map(|c| c.stop())).await;
    }

    /// True once [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

impl Drop for CoordinatorRegistry {
    fn drop(&mut self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let all = self.coordinators();
        let running: Vec<_> = all.iter().filter(|c| !c.state().is_terminal()).collect();
        if running.is_empty() {
            return;
        }
        tracing::warn!(target: TARGET, coordinators = running.len(),
            "CoordinatorRegistry dropped without close(): stopping their loops in the background; call close().await to release leadership before exiting");
        for coordinator in running {
            coordinator.request_stop();
        }
    }
}

impl fmt::Debug for CoordinatorRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoordinatorRegistry")
            .field("identity", &self.identity)
            .field("backend", &self.store.backend())
            .field("mode", &self.config.mode)
            .field("plugin_modes", &self.config.plugin_modes)
            .field("coordinators", &lock(&self.entries).len())
            .field("closed", &self.is_closed())
            .finish()
    }
}
