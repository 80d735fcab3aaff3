#![doc = include_str!("../README.md")]

mod bounds;
mod clock;
mod faults;
mod fenced;
mod naive;
#[cfg(feature = "plugins")]
pub mod plugins;
mod report;
#[cfg(feature = "runtime")]
pub mod runtime;
mod scenario;
mod seed;
mod sim;
mod store;

pub use clock::{SimClock, PPM, UNIX_BASE_MS};
pub use faults::{
    Canary, ClockSteps, Episodes, FaultSet, Latency, LatencyModel, LifecycleRule, OperatorFault,
    OperatorFaults, RequestFault, RequestFaults, StoreFlavor, TimingRollout, FAULT_KINDS,
};
pub use naive::NaiveMachine;
pub use report::{
    usd_per_month, FencedStats, Report, RoleRequests, Summary, Violation, ViolationKind,
};
pub use scenario::{Fencing, Mode, Scenario, Scripted};
pub use seed::{parse_seeds, random_seed, seeds_from_env, SeedTree};
pub use sim::{Elector, Sim};
pub use store::{
    is_write, Object, Requests, SimStore, HOURS_PER_MONTH, LIST_PAGE, USD_PER_DELETE, USD_PER_GET,
    USD_PER_PUT,
};
