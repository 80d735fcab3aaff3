//! What the tests against a local emulator share: `s3.rs` (moto) and
//! `azure.rs` (Azurite). Each server is found through an environment
//! variable that `scripts/test` exports after starting it; without it a
//! test says `SKIPPED` on stderr and passes, unless the server's
//! `COORD_REQUIRE_*` variable is `1` (set by `scripts/test` under CI), when
//! it fails: CI must never pass with these tests skipped.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use coordinator_store::StoreOptions;

/// An emulator the tests run against.
pub(crate) struct Emulator {
    /// Its name in messages: `moto`, `Azurite`.
    pub(crate) name: &'static str,
    /// The backend whose tests need it, in messages: `S3`, `Azure`.
    pub(crate) backend: &'static str,
    /// The variable that holds its endpoint.
    pub(crate) endpoint_var: &'static str,
    /// The variable that turns a missing endpoint into a failure.
    pub(crate) require_var: &'static str,
    /// The variable that names its bucket (or container), which must exist;
    /// `coordinator-test` when unset.
    pub(crate) bucket_var: &'static str,
}

impl Emulator {
    /// The emulator's endpoint, or `None` (after saying so) to skip `test`.
    pub(crate) fn endpoint(&self, test: &str) -> Option<String> {
        match std::env::var(self.endpoint_var) {
            Ok(endpoint) if !endpoint.is_empty() => Some(endpoint),
            _ => {
                if std::env::var(self.require_var).as_deref() == Ok("1") {
                    panic!(
                        "{test}: {} is unset but {}=1: the {} tests must run here; run \
                         scripts/test, which starts {}",
                        self.endpoint_var, self.require_var, self.backend, self.name
                    );
                }
                // Straight to the process's stderr: the test harness
                // captures eprintln! of passing tests, and this must be seen.
                let _ = writeln!(
                    std::io::stderr(),
                    "\n*** SKIPPED {test}: {} unset — run scripts/test to start {} ***\n",
                    self.endpoint_var,
                    self.name
                );
                None
            }
        }
    }

    /// The bucket (or container) the tests write under.
    pub(crate) fn bucket(&self) -> String {
        std::env::var(self.bucket_var).unwrap_or_else(|_| "coordinator-test".to_owned())
    }
}

/// A prefix no other run or test shares.
pub(crate) fn unique(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("tests/{test}-{nanos:x}-{:x}", std::process::id())
}

/// Options for the conformance suite on an emulator: moto is one Python
/// process and Azurite one Node.js process, sharing 2 cores with the test,
/// so the suite's bursts of 20 concurrent requests can take longer than
/// the 2 s production default.
pub(crate) fn emulator_options() -> StoreOptions {
    StoreOptions {
        request_timeout: Duration::from_secs(15),
        max_retries: 2,
        retry_timeout: Duration::from_secs(15),
    }
}

/// Says `line` on the process's stderr, past the harness's capture of
/// passing tests' output: race reports must never be hidden.
pub(crate) fn say(line: String) {
    let _ = writeln!(std::io::stderr(), "{line}");
}
