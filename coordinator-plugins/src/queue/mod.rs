//! A work queue over the store: producers enqueue, every worker claims and
//! handles messages, and the namespace's leader recovers stalled claims and
//! cleans up.
//!
//! * [`Queue`]: the handle: [`enqueue`](Queue::enqueue),
//!   [`enqueue_batch`](Queue::enqueue_batch), [`stats`](Queue::stats),
//!   [`dead_letters`](Queue::dead_letters), [`consumer`](Queue::consumer),
//!   [`worker`](Queue::worker), [`maintenance`](Queue::maintenance).
//! * [`Consumer`] and [`ClaimedMessage`]: claim messages yourself and
//!   [`complete`](ClaimedMessage::complete) or [`fail`](ClaimedMessage::fail)
//!   them; [`ClaimHandle`] extends the visibility and says whether the
//!   claim is still held.
//! * [`QueueWorker`] and [`MessageHandler`]: a loop that claims up to
//!   [`concurrency`](QueueConfig::concurrency) messages and runs a handler
//!   on each.
//! * [`QueueMaintenance`]: the leader's part, a
//!   [`CoordinatorPlugin`](coordinator_runtime::CoordinatorPlugin) to attach to the
//!   namespace.
//!
//! # How it works
//!
//! A message is an object written once, with a sortable id (FIFO by
//! default). A worker claims it by **create-if-absent** of its claim object,
//! which carries a random lock token and the visibility timeout. The claim
//! is a lease: the worker stops believing it holds the message once the
//! visibility has passed on its own clock since just before it sent the
//! claim (its handler is cancelled then), unless it
//! [extended](ClaimHandle::extend) it by compare-and-swap. It ends the claim
//! by **compare-and-swap on the version it wrote**: to completed, or to
//! failed with what comes next (a retry after an exponential back-off, or a
//! dead letter once attempts run out). The leader lists the claims; a claim
//! whose version has not changed for the visibility (stretched by the drift
//! tolerance, plus a grace) **on the leader's clock** has stalled, and the
//! leader compare-and-swaps it to failed, carrying its epoch. The leader
//! then finishes every terminal claim: it writes the retry message (a new
//! key, fixed by the claim) or the dead letter, deletes the message, and
//! deletes the claim.
//!
//! # Guarantees
//!
//! * **At least once**: a message leaves the queue only after a handler
//!   succeeded on it (completed) or it failed its last attempt (dead
//!   letter, payload and errors kept). A crash of any worker or of the
//!   leader loses nothing: every step is a conditional write, and whatever
//!   was half done is finished by the next leader from the claim's state.
//! * **Never two live claims**: a claim is created once and changed only by
//!   compare-and-swap on the version just read. The claimer gives up before
//!   any observer can judge its claim expired (it counts from before its
//!   request; observers count from after they saw the version, and wait
//!   longer by the drift factor), so no two workers believe they hold the
//!   same message at the same instant.
//! * **Exact counters**: [`QueueStats::completed`] and
//!   [`QueueStats::failed`] count each ended claim once, across leader
//!   crashes and lost replies: the leader records a claim's key with its
//!   counts (in the counters object) before it deletes the claim, and a
//!   claim already recorded is only deleted, never counted again.
//! * **Late completions are rejected and reported**: a worker whose claim
//!   was recovered gets [`QueueError::ClaimLost`] from
//!   [`complete`](ClaimedMessage::complete) (and a warning is logged);
//!   the store refused the write. A completion that may have landed
//!   unseen while the claim is gone by the time it is read back gets
//!   [`QueueError::OutcomeUnknown`] instead: the leader may have finished
//!   it, or recovered it first, and nothing in the store tells which.
//! * The claim keys do not depend on the coordination mode, so a migration
//!   that runs the maintenance under both elections still claims each
//!   message once.
//!
//! # Not guaranteed
//!
//! * Exactly-once *effects*: a handler that ran past its visibility, or
//!   whose worker crashed after the effect, runs again. Make handlers
//!   idempotent, or extend the visibility while working.
//! * Strict FIFO: concurrent workers take the head of the queue in
//!   parallel, a retried message waits for its back-off, and ids from
//!   different producers are ordered by their wall clocks.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use coordinator_plugins::queue::Queue;
//! use coordinator_runtime::{CoordinatorConfig, CoordinatorRegistry};
//! use coordinator_store::MemoryStore;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // No coordinator starts until something is attached: a process that
//! // only enqueues and consumes needs one all the same, for its store,
//! // clock and worker id.
//! let registry = CoordinatorRegistry::new(
//!     Arc::new(MemoryStore::new()),
//!     CoordinatorConfig::default().with_worker_id("worker-1"),
//! )?;
//! let queue = Queue::builder(&registry, "shop", "orders").build()?;
//! queue.enqueue("order 1").await?;
//! let consumer = queue.consumer();
//! assert_eq!(consumer.worker_id(), "worker-1");
//! let claimed = consumer.claim(1).await?;
//! assert_eq!(&claimed[0].message().payload[..], b"order 1");
//! for message in claimed {
//!     message.complete().await?;
//! }
//! assert_eq!(queue.stats().await?.pending, 0);
//! # Ok(())
//! # }
//! ```

mod claim;
mod client;
mod config;
mod error;
mod leader;
mod record;
mod worker;

use std::fmt;
use std::sync::Arc;

use coordinator_runtime::{Clock, CoordinatorError, CoordinatorRegistry, PluginScope};
use coordinator_store::LeaseStore;

pub(crate) use claim::truncate as truncate_error;
pub use claim::{ClaimHandle, ClaimedMessage, Consumer, FailOutcome, Message, WorkerStats};
pub use client::{DeadLetter, QueueStats};
pub use config::QueueConfig;
pub use error::QueueError;
pub use leader::QueueMaintenance;
pub use worker::{HandlerError, MessageHandler, QueueWorker};

use crate::id::IdGenerator;
use crate::layout;
use crate::rng::Rng;
use record::QueueKeys;

/// The `tracing` target of the queue.
pub const TARGET: &str = "coordinator_plugins::queue";

/// A handle on one queue (a name within a namespace). Cheap to clone; every
/// clone shares the id generator and the random stream.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use coordinator_plugins::queue::{Queue, QueueConfig};
/// use coordinator_runtime::{CoordinatorConfig, CoordinatorRegistry};
/// use coordinator_store::MemoryStore;
/// let registry = CoordinatorRegistry::new(
///     Arc::new(MemoryStore::new()),
///     CoordinatorConfig::default().with_worker_id("w1"),
/// )
/// .unwrap();
/// let queue = Queue::builder(&registry, "shop", "orders")
///     .config(QueueConfig { concurrency: 8, ..QueueConfig::default() })
///     .build()
///     .unwrap();
/// assert_eq!(queue.name(), "orders");
/// ```
#[derive(Clone)]
pub struct Queue {
    pub(crate) inner: Arc<QueueInner>,
}

pub(crate) struct QueueInner {
    pub(crate) scope: PluginScope,
    pub(crate) store: Arc<dyn LeaseStore>,
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) keys: QueueKeys,
    pub(crate) config: QueueConfig,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) rng: Rng,
    pub(crate) ids: IdGenerator,
}

impl QueueInner {
    pub(crate) fn backend(&self) -> &'static str {
        self.store.backend()
    }

    /// Counts one `work` of this queue (the `metrics` feature).
    pub(crate) fn count(&self, work: crate::telemetry::Work) {
        crate::telemetry::count(work, &self.scope, &format!("queue.{}", self.name));
    }
}

/// Builds a [`Queue`]: the config is optional.
#[derive(Debug)]
pub struct QueueBuilder {
    scope: Result<PluginScope, CoordinatorError>,
    namespace: String,
    name: String,
    config: QueueConfig,
}

impl QueueBuilder {
    /// Sets the configuration (default [`QueueConfig::default`]).
    pub fn config(mut self, config: QueueConfig) -> Self {
        self.config = config;
        self
    }

    /// Validates the names and the configuration.
    ///
    /// # Errors
    ///
    /// [`QueueError::InvalidName`] or [`QueueError::Config`].
    pub fn build(self) -> Result<Queue, QueueError> {
        for (what, name) in [("namespace", &self.namespace), ("queue", &self.name)] {
            layout::check_name(name).map_err(|reason| QueueError::InvalidName {
                what,
                name: name.clone(),
                reason,
            })?;
        }
        let scope = self.scope.map_err(|error| QueueError::InvalidName {
            what: "namespace",
            name: self.namespace.clone(),
            reason: error.to_string(),
        })?;
        self.config.validate()?;
        let rng = Rng::seeded(self.config.seed);
        let ids = IdGenerator::new(&rng);
        let keys = QueueKeys::new(layout::base(&self.namespace, "queue", &self.name));
        Ok(Queue {
            inner: Arc::new(QueueInner {
                store: scope.store().clone(),
                clock: scope.clock().clone(),
                scope,
                namespace: self.namespace,
                name: self.name,
                keys,
                config: self.config,
                rng,
                ids,
            }),
        })
    }
}

impl Queue {
    /// A builder for the queue `name` of `namespace`, in `registry`'s
    /// [scope](CoordinatorRegistry::scope) for `namespace`: the queue uses
    /// the registry's store and clock, its consumers claim as the
    /// registry's worker, and its [`maintenance`](Self::maintenance) can be
    /// attached only to `namespace` through `registry`. Building it starts
    /// no coordinator: a process that only enqueues builds it the same way.
    pub fn builder(
        registry: &CoordinatorRegistry,
        namespace: impl Into<String>,
        name: impl Into<String>,
    ) -> QueueBuilder {
        let namespace = namespace.into();
        QueueBuilder {
            scope: registry.scope(&namespace),
            namespace,
            name: name.into(),
            config: QueueConfig::default(),
        }
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The namespace the queue belongs to.
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// The configuration in force.
    pub fn config(&self) -> &QueueConfig {
        &self.inner.config
    }

    /// The key prefix of every object of this queue.
    pub fn prefix(&self) -> &str {
        self.inner.keys.base()
    }

    /// The leader's part, to attach to the queue's namespace through the
    /// registry it was built from:
    /// `registry.attach(queue.namespace(), Arc::new(queue.maintenance()))`;
    /// anywhere else it is refused
    /// ([`CoordinatorError::PluginScopeMismatch`]).
    pub fn maintenance(&self) -> QueueMaintenance {
        QueueMaintenance::new(self.clone())
    }
}

impl fmt::Debug for Queue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("namespace", &self.inner.namespace)
            .field("name", &self.inner.name)
            .field("backend", &self.inner.backend())
            .finish_non_exhaustive()
    }
}
