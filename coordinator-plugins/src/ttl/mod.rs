//! Records with a time to live, expired by the namespace's leader.
//!
//! * [`Ttl`]: the handle: [`put`](Ttl::put), [`refresh`](Ttl::refresh),
//!   [`get`](Ttl::get), [`remove`](Ttl::remove), [`sweeper`](Ttl::sweeper).
//! * [`Expiry`]: a time to live, or an absolute instant.
//! * [`ExpiryAction`]: hard delete, soft delete, archive, or a callback
//!   ([`ExpiryCallback`]).
//! * [`TtlSweeper`]: the leader's part, a
//!   [`CoordinatorPlugin`](coordinator_runtime::CoordinatorPlugin).
//!
//! # How it works
//!
//! A record is an object holding its payload, its expiry instant and its
//! *generation* (a fresh [`SortableId`](crate::SortableId) on every put and
//! refresh). Each registration also writes an empty **index entry** into the
//! bucket of its expiry instant (written first, so a record never exists
//! without its entry). Every sweep the leader lists each **overdue bucket**
//! from where it stopped last (persisted, fenced by its epoch), so a bucket
//! that fell due during an outage is still swept. For each entry it reads
//! the record and acts only if the record's generation is the entry's, it
//! is live, and its expiry has passed on the leader's clock by the skew
//! margin; the action is a write **conditional on the version it just
//! read**, so a refresh that lands in between wins and nothing is ever
//! removed after it was refreshed. Stale entries are deleted. A full listing
//! of the index at every term start (and every
//! [`full_scan_interval`](TtlConfig::full_scan_interval)) catches entries
//! written late into an already swept bucket.
//!
//! # Guarantees
//!
//! * Never early: a record is acted on only once the leader's wall clock
//!   is past its expiry by [`clock_skew_margin`](TtlConfig::clock_skew_margin)
//!   (expiry is a calendar instant; this holds while the registrant's and
//!   the leader's clocks differ by less than the margin).
//! * Never after a refresh: the action is conditional on the version read.
//! * Not late: within one bucket width plus one sweep interval (plus the
//!   margin) after expiry while a leader runs; after an outage, at the first
//!   sweep of the next leader.
//! * Nothing orphaned: every overdue bucket is swept, and periodic full
//!   listings catch stragglers.
//!
//! # Not guaranteed
//!
//! * A callback runs at least once, not exactly once: if the leader dies
//!   during it, the next leader runs it again once the claim's lease lapsed
//!   on its clock.
//! * "Batched deletes" are concurrent single-object deletes: the store
//!   interface has no multi-object delete (S3's DeleteObjects is not
//!   conditional).
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use coordinator_plugins::ttl::{Expiry, Ttl};
//! use coordinator_runtime::{CoordinatorConfig, CoordinatorRegistry};
//! use coordinator_store::MemoryStore;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = CoordinatorRegistry::new(
//!     Arc::new(MemoryStore::new()),
//!     CoordinatorConfig::default().with_worker_id("w1"),
//! )?;
//! let ttl = Ttl::builder(&registry, "web", "sessions").build()?;
//! ttl.put("session/42", "alice", Expiry::After(Duration::from_secs(1800))).await?;
//! assert_eq!(&ttl.get("session/42").await?.unwrap().payload[..], b"alice");
//! ttl.refresh("session/42", Expiry::After(Duration::from_secs(3600))).await?;
//! // registry.attach("web", Arc::new(ttl.sweeper())).await?;
//! # Ok(())
//! # }
//! ```

mod client;
mod config;
mod error;
mod leader;
mod record;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use coordinator_runtime::{Clock, CoordinatorError, CoordinatorRegistry, PluginScope};
use coordinator_store::LeaseStore;

pub use client::{Registration, TtlBacklog, TtlRecord};
pub use config::{ExpiryAction, TtlConfig};
pub use error::TtlError;
pub use leader::TtlSweeper;

use crate::id::IdGenerator;
use crate::layout;
use crate::rng::Rng;
use record::TtlKeys;

/// The `tracing` target of the TTL expirer.
pub const TARGET: &str = "coordinator_plugins::ttl";

/// When a record expires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// This long after the write, by the writing worker's wall clock.
    After(Duration),
    /// At this wall-clock instant, in ms since the Unix epoch.
    At(u64),
}

/// A record that expired, as the [`ExpiryCallback`] sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpiredRecord {
    /// The record's key.
    pub key: String,
    /// Its payload.
    pub payload: Bytes,
    /// When it expired (ms since the epoch).
    pub expires_at_unix_ms: u64,
    /// The leader's epoch.
    pub epoch: u64,
}

/// The error a callback returns; the record is kept and retried at a
/// later sweep.
pub type CallbackError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Called by the leader for each expired record under
/// [`ExpiryAction::Callback`]; the record is deleted once it returns `Ok`.
/// Any `Fn(ExpiredRecord) -> impl Future<Output = Result<(), CallbackError>>`
/// is one.
///
/// ```
/// use coordinator_plugins::ttl::{CallbackError, ExpiredRecord, ExpiryCallback};
/// fn assert_callback(_: impl ExpiryCallback) {}
/// assert_callback(|record: ExpiredRecord| async move {
///     println!("{} expired", record.key);
///     Ok::<(), CallbackError>(())
/// });
/// ```
#[async_trait]
pub trait ExpiryCallback: Send + Sync + 'static {
    /// Handles one expired record.
    ///
    /// # Errors
    ///
    /// Any error keeps the record for a later sweep.
    async fn expired(&self, record: ExpiredRecord) -> Result<(), CallbackError>;
}

#[async_trait]
impl<F, Fut> ExpiryCallback for F
where
    F: Fn(ExpiredRecord) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), CallbackError>> + Send + 'static,
{
    async fn expired(&self, record: ExpiredRecord) -> Result<(), CallbackError> {
        self(record).await
    }
}

/// A handle on one TTL instance (a name within a namespace). Cheap to clone.
#[derive(Clone)]
pub struct Ttl {
    pub(crate) inner: Arc<TtlInner>,
}

impl TtlInner {
    /// Counts one `work` of this expirer (the `metrics` feature).
    pub(crate) fn count(&self, work: crate::telemetry::Work) {
        crate::telemetry::count(work, &self.scope, &format!("ttl.{}", self.name));
    }
}

pub(crate) struct TtlInner {
    pub(crate) scope: PluginScope,
    pub(crate) store: Arc<dyn LeaseStore>,
    pub(crate) name: String,
    pub(crate) keys: TtlKeys,
    pub(crate) config: TtlConfig,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) rng: Rng,
    pub(crate) ids: IdGenerator,
    pub(crate) callback: Option<Arc<dyn ExpiryCallback>>,
}

impl TtlInner {
    pub(crate) fn backend(&self) -> &'static str {
        self.store.backend()
    }

    /// The start of the bucket holding `unix_ms`.
    pub(crate) fn bucket_of(&self, unix_ms: u64) -> u64 {
        let width = crate::clock::ms(self.config.bucket_width).max(1);
        unix_ms - unix_ms % width
    }
}

/// Builds a [`Ttl`].
pub struct TtlBuilder {
    scope: Result<PluginScope, CoordinatorError>,
    namespace: String,
    name: String,
    config: TtlConfig,
    callback: Option<Arc<dyn ExpiryCallback>>,
}

impl TtlBuilder {
    /// Sets the configuration.
    pub fn config(mut self, config: TtlConfig) -> Self {
        self.config = config;
        self
    }

    /// Sets the callback of [`ExpiryAction::Callback`] (and that action).
    pub fn callback(mut self, callback: impl ExpiryCallback) -> Self {
        self.callback = Some(Arc::new(callback));
        self.config.action = ExpiryAction::Callback;
        self
    }

    /// Validates and builds.
    ///
    /// # Errors
    ///
    /// [`TtlError::InvalidName`] or [`TtlError::Config`] (also when the
    /// action is `Callback` and no callback was given).
    pub fn build(self) -> Result<Ttl, TtlError> {
        for (what, name) in [("namespace", &self.namespace), ("ttl", &self.name)] {
            layout::check_name(name).map_err(|reason| TtlError::InvalidName {
                what,
                name: name.clone(),
                reason,
            })?;
        }
        let scope = self.scope.map_err(|error| TtlError::InvalidName {
            what: "namespace",
            name: self.namespace.clone(),
            reason: error.to_string(),
        })?;
        self.config.validate()?;
        if self.config.action == ExpiryAction::Callback && self.callback.is_none() {
            return Err(TtlError::Config {
                field: "action",
                message: "`callback` needs a callback: call TtlBuilder::callback".into(),
            });
        }
        let rng = Rng::seeded(self.config.seed);
        let ids = IdGenerator::new(&rng);
        Ok(Ttl {
            inner: Arc::new(TtlInner {
                store: scope.store().clone(),
                clock: scope.clock().clone(),
                scope,
                keys: TtlKeys::new(layout::base(&self.namespace, "ttl", &self.name)),
                name: self.name,
                config: self.config,
                rng,
                ids,
                callback: self.callback,
            }),
        })
    }
}

impl fmt::Debug for TtlBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TtlBuilder")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Ttl {
    /// A builder for TTL instance `name` of `namespace`, in `registry`'s
    /// [scope](CoordinatorRegistry::scope) for `namespace`: the instance
    /// uses the registry's store and clock, and its
    /// [`sweeper`](Self::sweeper) can be attached only to `namespace`
    /// through `registry`. Building it starts no coordinator.
    pub fn builder(
        registry: &CoordinatorRegistry,
        namespace: impl Into<String>,
        name: impl Into<String>,
    ) -> TtlBuilder {
        let namespace = namespace.into();
        TtlBuilder {
            scope: registry.scope(&namespace),
            namespace,
            name: name.into(),
            config: TtlConfig::default(),
            callback: None,
        }
    }

    /// The instance's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The key prefix of every object of this instance.
    pub fn prefix(&self) -> &str {
        self.inner.keys.base()
    }

    /// The namespace the instance belongs to.
    pub fn namespace(&self) -> &str {
        self.inner.scope.namespace().as_str()
    }

    /// The leader's part, to attach to the instance's namespace through the
    /// registry it was built from:
    /// `registry.attach(ttl.namespace(), Arc::new(ttl.sweeper()))`;
    /// anywhere else it is refused
    /// ([`CoordinatorError::PluginScopeMismatch`]).
    pub fn sweeper(&self) -> TtlSweeper {
        TtlSweeper::new(self.inner.clone())
    }
}

impl fmt::Debug for Ttl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ttl")
            .field("name", &self.inner.name)
            .field("backend", &self.inner.backend())
            .finish_non_exhaustive()
    }
}
