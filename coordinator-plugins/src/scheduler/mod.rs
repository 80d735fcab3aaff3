//! A cron scheduler whose jobs run on the namespace's leader only, each
//! slot claimed once across fail-overs.
//!
//! * [`Scheduler`]: the handle: [`add`](Scheduler::add),
//!   [`remove`](Scheduler::remove), [`enable`](Scheduler::enable),
//!   [`disable`](Scheduler::disable), [`run_now`](Scheduler::run_now),
//!   [`jobs`](Scheduler::jobs), [`history`](Scheduler::history),
//!   [`plugin`](Scheduler::plugin).
//! * [`JobSpec`] and [`Schedule`]: a cron expression (5 or 6 fields,
//!   ranges, steps, lists, names, `L`/`W`/`#`, `@hourly`…`@yearly`, parsed
//!   by the `croner` crate) in a named IANA time zone (`chrono-tz`), with
//!   DST handled; missed-run policy, timeout, retries, delivery.
//! * [`JobHandler`] and [`JobContext`]: the code a job runs, registered by
//!   name on every worker.
//! * [`SchedulerPlugin`]: the leader's loop, a
//!   [`CoordinatorPlugin`](coordinator_runtime::CoordinatorPlugin).
//!
//! # How it works
//!
//! Job definitions are objects (any worker may add, remove, enable or
//! disable a job; compare-and-swap). The leader reads them, computes each
//! job's next slot in its time zone and, when it falls due, checks
//! [`LeaderContext::is_valid`](coordinator_runtime::LeaderContext::is_valid) and
//! **creates the slot's object** (create-if-absent; the key is the slot's
//! instant, the body carries the leader's epoch and worker id). Only the
//! worker whose create succeeded runs that slot. The runner renews the slot
//! while the job runs (a lease, judged by observers on their own clocks) and
//! ends it with the outcome: the slot objects are the persisted history
//! (start, end, outcome, worker, epoch of each of a slot's newest 16
//! attempts; their numbers count every attempt).
//!
//! # Guarantees
//!
//! * **Each slot is claimed exactly once**, across fail-overs and across a
//!   migration that runs the scheduler under both elections (the slot keys
//!   do not depend on the mode): a deposed leader's create fails on the
//!   existing object.
//! * **Only the leader runs jobs**: a run is cancelled (its future dropped,
//!   its token fired) when the leader's term ends, at its deadline at the
//!   latest, and when its timeout passes.
//! * **Side effects are at least once** by default: a run cut short by a
//!   crash is taken over by the next leader once its lease has lapsed on
//!   that leader's clock, and failed attempts are retried with back-off.
//!   With [`Delivery::AtMostOnce`] they are **at most once**: one attempt,
//!   and a run cut short is recorded as abandoned. No store can make side
//!   effects exactly once.
//! * **Missed runs**: a slot that fell due while no one led is run late if
//!   the leader reaches it within the job's
//!   [`late_tolerance`](JobSpec::late_tolerance); older ones follow the
//!   [`MissedRunPolicy`]. The newest slot object marks where the schedule
//!   stands, so no slot before it is ever run (again).
//!
//! # Not guaranteed
//!
//! * Punctuality beyond the leader's wall clock: slots fall due by the
//!   leader's wall clock (cron is a calendar). Two leaders whose clocks
//!   differ may run a slot a little early or late, never twice.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use coordinator_plugins::scheduler::{JobContext, JobError, JobSpec, Scheduler};
//! use coordinator_runtime::{CoordinatorConfig, CoordinatorRegistry};
//! use coordinator_store::MemoryStore;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = CoordinatorRegistry::new(
//!     Arc::new(MemoryStore::new()),
//!     CoordinatorConfig::default().with_worker_id("w1"),
//! )?;
//! let scheduler = Scheduler::builder(&registry, "shop", "cron")
//!     .handler("cleanup", |ctx: JobContext| async move {
//!         println!("cleanup for slot {:?}", ctx.slot_unix_ms());
//!         Ok::<(), JobError>(())
//!     })
//!     .build()?;
//! scheduler.add(JobSpec::new("cleanup", "*/5 * * * *")).await?;
//! scheduler.disable("cleanup").await?;
//! assert!(!scheduler.jobs().await?[0].enabled);
//! // registry.attach("shop", Arc::new(scheduler.plugin())).await?;
//! # Ok(())
//! # }
//! ```

mod client;
mod config;
mod cron;
mod error;
mod handler;
mod job;
mod leader;
mod record;
mod run;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use coordinator_runtime::{Clock, CoordinatorError, CoordinatorRegistry, PluginScope};
use coordinator_store::LeaseStore;

pub use client::{JobInfo, JobState, RunRecord};
pub use config::SchedulerConfig;
pub use cron::CronField;
pub use error::SchedulerError;
pub use handler::{JobContext, JobError, JobHandler};
pub use job::{Delivery, JobSpec, MissedRunPolicy, Schedule};
pub use leader::SchedulerPlugin;
pub use record::{AttemptRecord, RunOutcome, SlotKind};

use crate::id::IdGenerator;
use crate::layout;
use crate::rng::Rng;
use record::SchedulerKeys;

/// The `tracing` target of the scheduler.
pub const TARGET: &str = "coordinator_plugins::scheduler";

/// A handle on one scheduler (a name within a namespace). Cheap to clone.
#[derive(Clone)]
pub struct Scheduler {
    pub(crate) inner: Arc<SchedulerInner>,
}

pub(crate) struct SchedulerInner {
    pub(crate) scope: PluginScope,
    pub(crate) store: Arc<dyn LeaseStore>,
    pub(crate) name: String,
    pub(crate) keys: SchedulerKeys,
    pub(crate) config: SchedulerConfig,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) rng: Rng,
    pub(crate) ids: IdGenerator,
    pub(crate) handlers: HashMap<String, Arc<dyn JobHandler>>,
}

impl SchedulerInner {
    /// Counts one `work` of this scheduler (the `metrics` feature).
    pub(crate) fn count(&self, work: crate::telemetry::Work) {
        crate::telemetry::count(work, &self.scope, &format!("scheduler.{}", self.name));
    }

    pub(crate) fn backend(&self) -> &'static str {
        self.store.backend()
    }
}

/// Builds a [`Scheduler`] and registers its handlers.
pub struct SchedulerBuilder {
    scope: Result<PluginScope, CoordinatorError>,
    namespace: String,
    name: String,
    config: SchedulerConfig,
    handlers: HashMap<String, Arc<dyn JobHandler>>,
}

impl SchedulerBuilder {
    /// Sets the configuration.
    pub fn config(mut self, config: SchedulerConfig) -> Self {
        self.config = config;
        self
    }

    /// Registers the code run by jobs whose handler is `name`. Register the
    /// same handlers on every worker that may lead: a leader without a
    /// job's handler logs an error and leaves the job's slots unclaimed.
    pub fn handler(mut self, name: impl Into<String>, handler: impl JobHandler) -> Self {
        self.handlers.insert(name.into(), Arc::new(handler));
        self
    }

    /// Validates and builds.
    ///
    /// # Errors
    ///
    /// [`SchedulerError::InvalidName`] or [`SchedulerError::Config`].
    pub fn build(self) -> Result<Scheduler, SchedulerError> {
        for (what, name) in [("namespace", &self.namespace), ("scheduler", &self.name)] {
            layout::check_name(name).map_err(|reason| SchedulerError::InvalidName {
                what,
                name: name.clone(),
                reason,
            })?;
        }
        let scope = self.scope.map_err(|error| SchedulerError::InvalidName {
            what: "namespace",
            name: self.namespace.clone(),
            reason: error.to_string(),
        })?;
        self.config.validate()?;
        let rng = Rng::seeded(self.config.seed);
        let ids = IdGenerator::new(&rng);
        Ok(Scheduler {
            inner: Arc::new(SchedulerInner {
                store: scope.store().clone(),
                clock: scope.clock().clone(),
                scope,
                keys: SchedulerKeys::new(layout::base(&self.namespace, "scheduler", &self.name)),
                name: self.name,
                config: self.config,
                rng,
                ids,
                handlers: self.handlers,
            }),
        })
    }
}

impl fmt::Debug for SchedulerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchedulerBuilder")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("handlers", &self.handlers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Scheduler {
    /// A builder for scheduler `name` of `namespace`, in `registry`'s
    /// [scope](CoordinatorRegistry::scope) for `namespace`: the scheduler
    /// uses the registry's store and clock, and its
    /// [`plugin`](Self::plugin) can be attached only to `namespace` through
    /// `registry`. Building it starts no coordinator.
    pub fn builder(
        registry: &CoordinatorRegistry,
        namespace: impl Into<String>,
        name: impl Into<String>,
    ) -> SchedulerBuilder {
        let namespace = namespace.into();
        SchedulerBuilder {
            scope: registry.scope(&namespace),
            namespace,
            name: name.into(),
            config: SchedulerConfig::default(),
            handlers: HashMap::new(),
        }
    }

    /// The scheduler's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The key prefix of every object of this scheduler.
    pub fn prefix(&self) -> &str {
        self.inner.keys.base()
    }

    /// The namespace the scheduler belongs to.
    pub fn namespace(&self) -> &str {
        self.inner.scope.namespace().as_str()
    }

    /// The leader's loop, to attach to the scheduler's namespace through the
    /// registry it was built from:
    /// `registry.attach(scheduler.namespace(), Arc::new(scheduler.plugin()))`;
    /// anywhere else it is refused
    /// ([`CoordinatorError::PluginScopeMismatch`]).
    pub fn plugin(&self) -> SchedulerPlugin {
        SchedulerPlugin::new(self.inner.clone())
    }
}

impl fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scheduler")
            .field("name", &self.inner.name)
            .field("backend", &self.inner.backend())
            .finish_non_exhaustive()
    }
}
