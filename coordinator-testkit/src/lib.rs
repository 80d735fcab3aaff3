#![doc = include_str!("../README.md")]

mod bounds;
#[cfg(all(feature = "chaos", unix))]
pub mod chaos;
mod clock;
mod faults;
mod fenced;
mod naive;
#[cfg(feature = "plugins")]
pub mod plugins;
#[cfg(feature = "wire")]
pub mod proxy;
mod report;
#[cfg(feature = "runtime")]
pub mod runtime;
mod scenario;
mod seed;
mod sim;
mod store;
pub mod timeline;
#[cfg(all(feature = "wire", unix))]
pub mod wire;

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

/// The exit statuses of the `coordinator-sim` and `coordinator-plugin-sim`
/// binaries. Usage errors have clap's code, 2; a broken invariant has its
/// own, so a script can tell a bad command line from a bug found.
pub mod exit_code {
    /// Every run kept its invariants (and its oracle's checks).
    pub const PASSED: i32 = 0;
    /// The simulator failed after accepting its command line (its output
    /// could not be written).
    pub const ERROR: i32 = 1;
    /// The command line is wrong: clap's usage errors (an unknown flag, a
    /// missing value) and values the simulator refuses (an unknown fault
    /// kind, a duration that does not parse).
    pub const USAGE: i32 = 2;
    /// A run broke an invariant (`coordinator-sim`, in a core mode) or its
    /// oracle (`coordinator-plugin-sim`).
    pub const INVARIANT_BROKEN: i32 = 3;
}
