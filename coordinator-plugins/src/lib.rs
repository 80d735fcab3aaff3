//! Leader-driven plugins over the [`coordinator_runtime`] runtime: a work
//! [`queue`], a cron [`scheduler`] and a [`ttl`] expirer.
//!
//! Each is built only on the public API of `coordinator-runtime` (the
//! [`CoordinatorPlugin`](coordinator_runtime::CoordinatorPlugin) trait and the
//! [`LeaderContext`](coordinator_runtime::LeaderContext) it hands a leader) and on
//! [`LeaseStore`](coordinator_store::LeaseStore); each works in global and
//! in per-plugin mode, on every backend.
//!
//! Each handle is built from the
//! [`CoordinatorRegistry`](coordinator_runtime::CoordinatorRegistry) its
//! leader part will be attached through, for one namespace
//! (`Queue::builder(&registry, namespace, name)`): it uses the registry's
//! store, clock and worker id, and attaching its leader part under another
//! namespace or through another registry fails with
//! [`PluginScopeMismatch`](coordinator_runtime::CoordinatorError::PluginScopeMismatch).
//!
//! # What this crate never does
//!
//! * **Write shared state unconditionally.** Every write is a
//!   create-if-absent, or a compare-and-swap on the version just read.
//!   Leader writes carry the leader's epoch, and a new leader seals an
//!   object (compare-and-swaps its epoch in) before it trusts what it read.
//! * **Delete blindly.** A delete of shared state is a conditional delete
//!   where [`Capabilities::conditional_delete`](coordinator_store::Capabilities)
//!   says the backend has one; otherwise a compare-and-swap to a terminal
//!   state. Objects that are written once and never rewritten (messages,
//!   index entries, terminal claims) are the exception that proves it: a
//!   plain delete of them can only remove the version read (see
//!   [`delete`](crate#deleting)).
//! * **Reuse a key.** Messages, retries, registrations and run-now requests
//!   get [`SortableId`]s; cron slots are named by their instant.
//! * **Compare two machines' clocks** to decide an expiry. A claim (queue
//!   message, scheduler slot, TTL callback) is the lease pattern per item:
//!   the claimer guards itself on its own clock from before its request;
//!   an observer counts from when it first saw the claim's version, on its
//!   own monotonic clock, and waits longer by the drift factor.
//! * **Act as leader without checking.** Every leader-only effect is
//!   preceded by a synchronous [`LeaderContext::is_valid`](coordinator_runtime::LeaderContext::is_valid).
//!
//! # Exactly once, at least once
//!
//! Exactly once is promised **for the claim**: one live claim per queue
//! message, one claim per cron slot, across fail-overs and across the two
//! coordination modes (claim keys live under [`DATA_PREFIX`], which does
//! not depend on the mode). The **side effects** of a handler or a job are
//! at least once (a worker can crash after its effect and before recording
//! it), or at most once where the scheduler is asked for it. No store can
//! make them exactly once; make handlers idempotent.
//!
//! # Deleting
//!
//! Objects written once by create-if-absent and never rewritten (queue
//! messages, TTL index entries, run-now requests, and claims or slots once
//! they are in a terminal state) are deleted with a conditional delete where
//! the backend has one, and a plain delete where it has not: the key is never
//! reused, so the only version a delete can remove is the one that was read.
//! Objects that are rewritten and whose key a user may reuse (TTL records,
//! job definitions) become a tombstone by compare-and-swap where the backend
//! has no conditional delete, and the tombstone is replaced, never deleted,
//! when the key is used again.
//!
//! # Logging
//!
//! `tracing` targets: `coordinator_plugins::queue`,
//! `coordinator_plugins::scheduler`, `coordinator_plugins::ttl`, with the
//! fields `queue`/`scheduler`/`ttl`, `worker_id`, `key`, `epoch`.
//!
//! # Feature flags
//!
//! * `aws`, `gcp`, `azure` (on by default): coordinator-store's cloud
//!   backends, forwarded through coordinator-runtime's features of the
//!   same names. Without them only `file://` and `memory://` stores open.
//! * `metrics` (off by default): one counter per kind of plugin work
//!   (messages enqueued, handled, retried, dead-lettered, recovered claims;
//!   job attempts started, succeeded, failed, missed slots skipped; records
//!   expired) through the `metrics` facade, named in [`PLUGIN_COUNTERS`]
//!   and in the one table of every metric
//!   (`coordinator_runtime::prometheus_text`); it turns on
//!   coordinator-runtime's `metrics` too (hook failures among them).

//! # Example: a queue, its worker and its maintenance on one coordinator
//!
//! ```
//! use std::sync::Arc;
//! use coordinator_runtime::{CoordinatorRegistry, CoordinatorConfig, TokioClock};
//! use coordinator_plugins::queue::{ClaimHandle, HandlerError, Message, Queue};
//! use coordinator_store::MemoryStore;
//! use tokio_util::sync::CancellationToken;
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = CoordinatorRegistry::builder(Arc::new(MemoryStore::new()))
//!     .config(CoordinatorConfig::default().with_worker_id("w1"))
//!     .clock(Arc::new(TokioClock::starting_at(1_700_000_000_000)))
//!     .build()?;
//! // The queue takes the registry's store, clock and worker id, and its
//! // maintenance can be attached only to `shop` through this registry.
//! let queue = Queue::builder(&registry, "shop", "orders").build()?;
//! registry.attach("shop", Arc::new(queue.maintenance())).await?;
//! queue.enqueue("order 1").await?;
//! let stop = CancellationToken::new();
//! let worker = queue.worker(|_m: Message, _c: ClaimHandle| async { Ok::<(), HandlerError>(()) });
//! let running = tokio::spawn(worker.run(stop.clone()));
//! tokio::time::sleep(std::time::Duration::from_secs(30)).await;
//! assert_eq!(queue.stats().await?.completed, 1);
//! stop.cancel();
//! running.await?;
//! registry.close().await;
//! # Ok(())
//! # }
//! ```

mod clock;
mod codec;
mod delete;
mod duration;
mod id;
mod layout;
mod observe;
mod retry;
mod rng;
mod swap;
mod telemetry;

pub mod queue;
pub mod scheduler;
pub mod ttl;

pub use id::{SortableId, ID_LEN};
pub use layout::DATA_PREFIX;
pub use retry::RetryPolicy;
pub use telemetry::PLUGIN_COUNTERS;
