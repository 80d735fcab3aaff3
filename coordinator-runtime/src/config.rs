//! The runtime's configuration: the election timings plus who this worker
//! is, how plugins are coordinated, and what to log.

use std::collections::BTreeMap;

use coordinator_core::Namespace;
use serde::{Deserialize, Serialize};

use crate::error::CoordinatorError;

/// How plugins share elections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CoordinationMode {
    /// One election loop per namespace serves every plugin (the default):
    /// one lease, one heartbeat per worker, whatever the number of plugins.
    #[default]
    Global,
    /// One election loop per plugin and namespace, each under the plugin's
    /// own prefix (`plg_coordinator_plugin/<plugin>/<namespace>/`), so it can
    /// run side by side with the system being replaced during a migration.
    /// Costs one loop's requests per plugin.
    PerPlugin,
}

/// Everything a [`CoordinatorRegistry`](crate::CoordinatorRegistry) registry needs besides
/// the store.
///
/// Every field has a default; in serde config, durations are written as
/// `"5s"` or `"1500ms"`:
///
/// ```
/// use coordinator_runtime::{CoordinationMode, CoordinatorConfig};
/// let config: CoordinatorConfig = serde_json::from_str(r#"{
///     "worker_id": "worker-1",
///     "mode": "per_plugin",
///     "plugin_modes": { "queue.jobs": "global" },
///     "election": { "heartbeat_interval": "2s", "heartbeat_jitter": "500ms" }
/// }"#).unwrap();
/// assert_eq!(config.mode, CoordinationMode::PerPlugin);
/// assert_eq!(config.mode_for("queue.jobs"), CoordinationMode::Global);
/// config.validate().unwrap();
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CoordinatorConfig {
    /// This worker's id. Default: none, which derives one from `POD_NAME`
    /// or `HOSTNAME` plus a random suffix (see
    /// [`resolve_worker_id`](crate::resolve_worker_id)).
    pub worker_id: Option<String>,
    /// The election and membership timings (heartbeat 5 s, lease 15 s,
    /// renew deadline 10 s, worker timeout 20 s by default). See
    /// [`coordinator_core::Config`].
    pub election: coordinator_core::Config,
    /// Global (default) or per-plugin coordination, for every plugin that
    /// [`plugin_modes`](Self::plugin_modes) does not name.
    pub mode: CoordinationMode,
    /// The mode of single plugins, by plugin name (what
    /// [`CoordinatorPlugin::name`](crate::CoordinatorPlugin::name) returns:
    /// `queue.jobs`, `scheduler.cron`, `ttl.sessions` for the built-in
    /// plugins), overriding [`mode`](Self::mode) for them: how one plugin
    /// is canaried on the shared election (or kept on its own) while the
    /// others stay where they are. Used by
    /// [`CoordinatorRegistry::attach`](crate::CoordinatorRegistry::attach).
    /// Default empty. In TOML, quote the names that contain a dot:
    /// `[coordinator.plugin_modes]` then `"queue.jobs" = "global"`.
    pub plugin_modes: BTreeMap<String, CoordinationMode>,
    /// In global mode, when a namespace's global election cannot start (its
    /// lease belongs to another implementation), attach plugins in per-plugin
    /// mode instead, with a warning. Default false.
    pub fallback_to_per_plugin: bool,
    /// Log one line per heartbeat cycle (target `coordinator_runtime::election`,
    /// level INFO, message `cycle`) with the leader, epoch, role, roster
    /// size, requests in flight and made so far, store errors and the next
    /// wake-up. Default false.
    pub diagnostics: bool,
    /// The root seed for jitter, nonces, the incarnation and the worker id
    /// suffix. Default: none, which draws a fresh seed from the OS for each
    /// coordinator. Fix it only in tests and simulations.
    pub seed: Option<u64>,
    /// How many events [`events()`](crate::Coordinator::events) buffers
    /// per subscriber before a slow one misses some. Default 1024.
    pub event_capacity: usize,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        Self {
            worker_id: None,
            election: coordinator_core::Config::default(),
            mode: CoordinationMode::Global,
            plugin_modes: BTreeMap::new(),
            fallback_to_per_plugin: false,
            diagnostics: false,
            seed: None,
            event_capacity: 1024,
        }
    }
}

impl CoordinatorConfig {
    /// Sets [`worker_id`](Self::worker_id).
    pub fn with_worker_id(mut self, worker_id: impl Into<String>) -> Self {
        self.worker_id = Some(worker_id.into());
        self
    }

    /// Sets [`election`](Self::election).
    pub fn with_election(mut self, election: coordinator_core::Config) -> Self {
        self.election = election;
        self
    }

    /// Sets [`mode`](Self::mode).
    pub fn with_mode(mut self, mode: CoordinationMode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets the mode of the plugin named `plugin` (an entry of
    /// [`plugin_modes`](Self::plugin_modes)).
    ///
    /// ```
    /// use coordinator_runtime::{CoordinationMode, CoordinatorConfig};
    /// let config = CoordinatorConfig::default()
    ///     .with_mode(CoordinationMode::PerPlugin)
    ///     .with_plugin_mode("queue.jobs", CoordinationMode::Global);
    /// assert_eq!(config.mode_for("queue.jobs"), CoordinationMode::Global);
    /// assert_eq!(config.mode_for("ttl.sessions"), CoordinationMode::PerPlugin);
    /// ```
    pub fn with_plugin_mode(mut self, plugin: impl Into<String>, mode: CoordinationMode) -> Self {
        self.plugin_modes.insert(plugin.into(), mode);
        self
    }

    /// The mode the plugin named `plugin` runs under: its entry in
    /// [`plugin_modes`](Self::plugin_modes), else [`mode`](Self::mode).
    pub fn mode_for(&self, plugin: &str) -> CoordinationMode {
        self.plugin_modes.get(plugin).copied().unwrap_or(self.mode)
    }

    /// Sets [`seed`](Self::seed).
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Sets [`diagnostics`](Self::diagnostics).
    pub fn with_diagnostics(mut self, diagnostics: bool) -> Self {
        self.diagnostics = diagnostics;
        self
    }

    /// Sets [`fallback_to_per_plugin`](Self::fallback_to_per_plugin).
    pub fn with_fallback_to_per_plugin(mut self, fallback: bool) -> Self {
        self.fallback_to_per_plugin = fallback;
        self
    }

    /// Checks the election timings' safety rules, the worker id (if given),
    /// the plugin names of [`plugin_modes`](Self::plugin_modes) and the
    /// event buffer size.
    ///
    /// # Errors
    ///
    /// [`CoordinatorError::Config`], [`CoordinatorError::InvalidId`] or
    /// [`CoordinatorError::InvalidOption`], naming the field.
    ///
    /// ```
    /// let mut config = coordinator_runtime::CoordinatorConfig::default();
    /// config.event_capacity = 0;
    /// assert!(config.validate().unwrap_err().to_string().contains("event_capacity"));
    /// ```
    pub fn validate(&self) -> Result<(), CoordinatorError> {
        self.election.validate()?;
        if let Some(id) = &self.worker_id {
            coordinator_core::WorkerId::new(id.as_str())?;
        }
        for plugin in self.plugin_modes.keys() {
            if let Err(error) = Namespace::new(plugin.as_str()) {
                return Err(CoordinatorError::InvalidOption {
                    field: "plugin_modes",
                    message: format!(
                        "`{plugin}` cannot be a plugin name ({error}); use the name the plugin \
                         reports, e.g. `queue.jobs`"
                    ),
                });
            }
        }
        if self.event_capacity == 0 {
            return Err(CoordinatorError::InvalidOption {
                field: "event_capacity",
                message: "must be at least 1; the default is 1024".into(),
            });
        }
        Ok(())
    }
}
