//! The tokio runtime of the coordinator: leader election, a live worker
//! roster and leader-only background work over object storage, with **one
//! election loop per process and namespace serving every plugin**.
//!
//! The decisions are made by the sans-IO [`coordinator_core::Machine`]; this
//! crate drives it through a [`LeaseStore`](coordinator_store::LeaseStore):
//! it executes the machine's requests (each with a time limit), feeds back
//! the answers and the time, and publishes what the machine says.
//!
//! # Map
//!
//! * [`CoordinatorRegistry`]: one per worker process. One [`Coordinator`]
//!   per namespace, created on first use and shared;
//!   [`close`](CoordinatorRegistry::close) stops them all gracefully.
//! * [`Coordinator`]: one namespace's election loop (in per-plugin mode, one
//!   plugin's in one namespace), whichever mode made it.
//!   [`leadership()`](Coordinator::leadership) (a watch channel: late
//!   subscribers see the current view at once),
//!   [`events()`](Coordinator::events),
//!   [`metrics()`](Coordinator::metrics),
//!   [`health()`](Coordinator::health) ([`Health`]: healthy, degraded or
//!   unhealthy with the reason, for liveness and readiness probes),
//!   and [`prometheus_text`] for a `/metrics` endpoint,
//!   [`workers()`](Coordinator::workers),
//!   [`leader()`](Coordinator::leader), [`epoch()`](Coordinator::epoch),
//!   [`is_leader()`](Coordinator::is_leader).
//! * [`CoordinatorPlugin`] and [`LeaderContext`]: leader-only work, with the
//!   epoch as fencing token and a cancellation token that fires at this
//!   worker's deadline.
//! * [`PluginScope`] ([`CoordinatorRegistry::scope`]): what a plugin's handle
//!   is built from (the registry's store, clock and worker id, and a
//!   namespace), so that it cannot be attached anywhere else.
//! * [`CoordinationMode`]: `Global` (default) or `PerPlugin` (one loop per
//!   plugin under its own prefix, for side-by-side migration), per registry
//!   ([`CoordinatorConfig::mode`]) and per plugin
//!   ([`CoordinatorConfig::plugin_modes`],
//!   [`CoordinatorRegistry::attach_with_mode`]), so one plugin can be
//!   canaried on the shared election.
//! * [`Clock`], [`SystemClock`] (`CLOCK_BOOTTIME` on Linux), [`TokioClock`]
//!   (paused-time tests).
//!
//! # Guarantees
//!
//! * At most one worker leads a namespace at any instant, as long as every
//!   clock's rate error stays within `drift_tolerance` (see
//!   [`coordinator_core`]); the leader's deadline is measured on a clock
//!   that counts suspend (on Linux).
//! * A plugin's [`LeaderContext`] is cancelled at the deadline at the latest,
//!   even if the election loop or the plugin's own hook is stuck; its
//!   [`is_valid`](LeaderContext::is_valid) is exact at any instant.
//! * A store error never ends the loop: it backs off with jitter, counts the
//!   error, and a leader that cannot renew steps down at its deadline.
//! * After a graceful stop the lease is released, so a successor leads
//!   within about one poll; after a crash, within `lease_timeout` plus a
//!   poll.
//!
//! # Not guaranteed
//!
//! * Effects sent before the deadline can land after it. Shared state must
//!   be written fenced (epoch + compare-and-swap); see [`CoordinatorPlugin`].
//! * Event streams are bounded: a subscriber that falls far behind misses
//!   events (counted). The leadership watch never misses the current state.
//!
//! # Feature flags
//!
//! * `metrics`: emit every counter, gauge and histogram of
//!   [`prometheus_text`] through the [`metrics`](https://docs.rs/metrics)
//!   facade as it changes (same names and labels), for the exporter the
//!   application installs. Off by default; [`prometheus_text`] needs no
//!   feature.
//!
//! # Logging
//!
//! Everything is logged with `tracing` under the target
//! `coordinator_runtime::election`, inside a span `coordinator` with the fields
//! `namespace`, `worker_id`, `plugin` and `epoch`. Set
//! [`CoordinatorConfig::diagnostics`] for one line per heartbeat cycle.
//!
//! # Feature flags
//!
//! * `aws`, `gcp`, `azure` (on by default): coordinator-store's cloud
//!   backends (`s3://`, `gs://`, `az://`), forwarded. With
//!   `default-features = false` only `file://` and `memory://` stores
//!   open, and none of `object_store`'s cloud code (HTTP client, TLS,
//!   signing) is compiled; a cloud URL then fails with
//!   `StoreError::NotCompiled`, which names the feature to enable.

//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use coordinator_runtime::{async_trait, CoordinatorRegistry, CoordinatorConfig, CoordinatorPlugin,
//!     LeaderContext, PluginError, TokioClock};
//! use coordinator_core::StepDownReason;
//! use coordinator_store::MemoryStore;
//!
//! struct Hello;
//!
//! #[async_trait]
//! impl CoordinatorPlugin for Hello {
//!     fn name(&self) -> &str { "hello" }
//!     async fn on_become_coordinator(&self, ctx: LeaderContext) -> Result<(), PluginError> {
//!         println!("{} leads {} (epoch {})", ctx.worker_id(), ctx.namespace(), ctx.epoch());
//!         Ok(())
//!     }
//!     async fn on_stop_being_coordinator(&self, reason: StepDownReason) -> Result<(), PluginError> {
//!         println!("stopped leading: {reason:?}");
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), coordinator_runtime::CoordinatorError> {
//! let store = Arc::new(MemoryStore::new());
//! let registry = CoordinatorRegistry::builder(store)
//!     .config(CoordinatorConfig::default().with_worker_id("worker-1"))
//!     .clock(Arc::new(TokioClock::new()))
//!     .build()?;
//! let orders = registry.attach("orders", Arc::new(Hello)).await?;
//! orders.leadership().wait_for(|view| view.is_leader).await.unwrap();
//! assert_eq!(orders.workers().len(), 1);
//! registry.close().await; // releases the lease, deletes the heartbeat
//! # Ok(())
//! # }
//! ```

mod clock;
mod config;
mod coordinator;
mod driver;
mod error;
mod events;
mod exec;
mod export;
#[cfg(feature = "metrics")]
mod facade;
mod health;
mod histogram;
mod identity;
mod plugin;
mod registry;
mod term;

/// The `tracing` target of every log line of this crate.
pub const TARGET: &str = "coordinator_runtime::election";

pub use async_trait::async_trait;
pub use clock::{Clock, SystemClock, TokioClock};
pub use config::{CoordinationMode, CoordinatorConfig};
pub use coordinator::{Coordinator, CoordinatorMetrics, CoordinatorState, PluginHookFailures};
pub use coordinator_core::{Event, LeadershipView, StepDownReason};
pub use error::{CoordinatorError, ErrorKind};
pub use events::EventStream;
pub use export::prometheus_text;
pub use health::{Health, HealthStatus, FAILING_REQUESTS_DEGRADED};
pub use histogram::{Histogram, RENEWAL_MARGIN_BOUNDS, STORE_REQUEST_BOUNDS};
pub use identity::{os_seed, resolve_worker_id};
pub use plugin::{CoordinatorPlugin, PluginError, PluginScope};
pub use registry::{CoordinatorRegistry, CoordinatorRegistryBuilder};
pub use term::LeaderContext;
pub use tokio_util::sync::CancellationToken;
