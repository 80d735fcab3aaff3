//! What the tests against a local emulator share: `s3.rs` (moto) and
//! `azure.rs` (Azurite). Each server is found through an environment
//! variable that `scripts/test` exports after starting it; without it a
//! test says `SKIPPED` on stderr and passes, unless the server's
//! `COORD_REQUIRE_*` variable is `1` (set by `scripts/test` under CI), when
//! it fails: CI must never pass with these tests skipped.
//!
//! Beyond the conformance suite, both run the same cases of their own
//! here: the races, with the winners reported where they are seen
//! ([`Emulator::races`]), and conditional delete through a store from
//! `open()` ([`Emulator::conditional_delete`]).

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use coordinator_store::conformance::{self, RaceReport};
use coordinator_store::{LeaseStore, LeaseStoreExt, StoreError, StoreOptions};

/// An emulator the tests run against.
pub(crate) struct Emulator {
    /// Its name in messages: `moto`, `Azurite`.
    pub(crate) name: &'static str,
    /// The backend whose tests need it, in messages: `S3`, `Azure`.
    pub(crate) backend: &'static str,
    /// What its stores' `LeaseStore::backend` says: `s3`, `azure`.
    pub(crate) store_backend: &'static str,
    /// Whether a race of conditional writes has exactly one winner on it.
    /// False for moto, whose conditional PUT is a check-then-write without
    /// a lock: its double winners are reported, loudly, not failed.
    pub(crate) linearizable: bool,
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

    /// The conformance suite's two races (compare-and-swap on one key,
    /// create of one fresh key) on `store`, under the prefix `races`, each
    /// reported on stderr with the time both took. Exactly one winner per
    /// round is required where the emulator is [`linearizable`]; elsewhere
    /// several winners are counted and said to be the emulator's.
    ///
    /// [`linearizable`]: Emulator::linearizable
    pub(crate) async fn races(&self, store: Arc<dyn LeaseStore>, contenders: usize, rounds: usize) {
        let started = Instant::now();
        let cas = conformance::concurrent_compare_and_swap(
            store.clone(),
            "races",
            contenders,
            rounds,
            self.linearizable,
        )
        .await;
        self.report("concurrent_compare_and_swap", cas);
        let create =
            conformance::concurrent_create(store, "races", contenders, rounds, self.linearizable)
                .await;
        self.report("concurrent_create", create);
        say(format!(
            "races on {} ({contenders} contenders x {rounds} rounds, twice): {:?}",
            self.name,
            started.elapsed()
        ));
    }

    fn report(&self, case: &str, report: RaceReport) {
        if report.rounds_with_several_winners > 0 {
            say(format!(
                "*** {case} on {}: {} of {} rounds had several winners. That is {} (its \
                 conditional PUT is a check-then-write without a lock), not our code; real {} \
                 and our memory and local stores allow exactly one. ***",
                self.name,
                report.rounds_with_several_winners,
                report.rounds,
                self.name,
                self.backend
            ));
        } else {
            say(format!(
                "{case} on {}: exactly one winner in each of {} rounds",
                self.name, report.rounds
            ));
        }
    }

    /// Conditional delete on a store from `open()` whose probe turned it
    /// on: a stale version is refused (a `Conflict` naming the key and the
    /// backend) and deletes nothing, the current version as a listing gives
    /// it deletes, and a missing object is a conflict.
    pub(crate) async fn conditional_delete(&self, store: &dyn LeaseStore) {
        assert!(store.capabilities().conditional_delete);
        let first = store.create("q/msg.json", "1".into()).await.unwrap();
        let second = store
            .compare_and_swap("q/msg.json", &first.version, "2".into())
            .await
            .unwrap();
        let err = store
            .delete_if_version("q/msg.json", &first.version)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::Conflict { key, backend } if key == "q/msg.json" && *backend == self.store_backend),
            "{err:?}"
        );
        let kept = store.get("q/msg.json").await.unwrap().unwrap();
        assert_eq!(
            (kept.body.as_ref(), &kept.version),
            (&b"2"[..], &second.version),
            "a refused conditional delete leaves the object alone"
        );
        // A listing's version is the write's (Azure lists an ETag
        // unquoted, a write returns it quoted): either deletes.
        let listed = store.list("q").await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].version, second.version);
        store
            .delete_if_version("q/msg.json", &listed[0].version)
            .await
            .unwrap();
        assert!(store.get("q/msg.json").await.unwrap().is_none());
        let err = store
            .delete_if_version("q/msg.json", &second.version)
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Conflict { .. }),
            "a missing object (404 NoSuchKey, BlobNotFound) is a conflict: {err:?}"
        );
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
