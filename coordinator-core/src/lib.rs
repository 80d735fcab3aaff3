//! The pure core of the coordinator: records, keys, configuration, and the
//! election state machine that makes every decision.
//!
//! # What this crate never does
//!
//! No I/O, no async runtime, no clock reads, no randomness it is not handed
//! as a seed. Time comes in as an [`Instant`] argument, store results come in
//! as [`Response`]s, and decisions go out as [`Action`]s and [`Event`]s. The
//! tokio runtime (`coordinator-runtime`) and the simulator (`coordinator-testkit`)
//! are two drivers of the same [`Machine`]. CI checks with
//! `cargo tree -p coordinator-core` that neither tokio nor object_store is a
//! dependency.
//!
//! # Guarantees
//!
//! * **One leader at a time**, as long as every clock's *rate* error stays
//!   within [`Config::drift_tolerance`] ρ. A follower waits until the lease
//!   has not changed for `lease_timeout` on its own clock, counted from the
//!   moment it *first saw* the version; the leader stops at `renew_deadline`
//!   after the start of its last successful renewal; `validate()` enforces
//!   `lease_timeout / renew_deadline > (1+ρ)/(1−ρ)`. Nothing compares two
//!   machines' wall clocks.
//! * **Fencing**: every acquisition raises the epoch by one, by
//!   compare-and-swap on the version just read. A worker's view of the epoch
//!   never goes back; `metadata.json` keeps a high-water mark in case the
//!   lease object disappears.
//! * **No lost writes**: every write of shared state is a create-if-absent or
//!   a compare-and-swap; a write with an unknown outcome is resolved by
//!   re-reading and comparing nonces.
//!
//! # Not guaranteed
//!
//! * Clocks that jump in *rate* beyond ρ (a VM frozen with a clock that does
//!   not count the pause): the runtime measures with `CLOCK_BOOTTIME` for
//!   that reason.
//! * Effects of a deposed leader that were sent before its deadline and land
//!   after it: only writes fenced by the epoch (or by compare-and-swap) are
//!   safe from that; the plugins are built that way.
//!
//! # Example
//!
//! ```
//! use coordinator_core::*;
//! let me = Identity { worker_id: WorkerId::new("w1").unwrap(), incarnation: Incarnation(9) };
//! let mut m = Machine::new(Config::default(), Namespace::new("demo").unwrap(), me,
//!     StoreTraits::default(), 1, Instant::from_millis(0), 0);
//! while let Some(action) = m.poll_action() {
//!     // A real driver executes `action.request` against a store.
//!     let response = match action.request {
//!         Request::Get { .. } => Response::Absent,
//!         _ => Response::Written { version: Version::new("v1"), store_time_ms: None },
//!     };
//!     m.handle_response(action.id, response, Instant::from_millis(5));
//! }
//! assert!(m.is_leader(Instant::from_millis(10)));
//! assert_eq!(m.view().epoch, 1);
//! ```

mod action;
mod config;
mod duration_format;
mod event;
mod ids;
mod keys;
mod machine;
mod metrics;
mod records;
mod renewal;
mod rng;
mod time;

pub use action::{Action, Failure, Listed, Request, RequestId, Response, Version};
pub use config::{Config, ConfigError, StaleTakeover};
pub use duration_format::{format_duration, parse_duration};
pub use event::{Event, StepDownReason};
pub use ids::{IdError, Identity, Incarnation, Namespace, WorkerId, MAX_ID_BYTES};
pub use keys::{Keys, DATA_PREFIX, GLOBAL_PREFIX, PLUGIN_PREFIX};
#[cfg(feature = "mutations")]
pub use machine::Mutation;
pub use machine::{LeadershipView, Machine, StoreTraits, ABSENCE_RECHECK_MIN};
pub use metrics::Counters;
pub use records::{
    decode, encode, HeartbeatRecord, LeaseRecord, MetadataRecord, RecordError, RosterRecord, FORMAT,
};
pub use renewal::{RenewalLag, RenewalRule};
pub use rng::{jittered_backoff, mix64, splitmix64, SplitMix64};
pub use time::Instant;
