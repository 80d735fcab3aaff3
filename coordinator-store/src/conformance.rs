//! The one contract suite every [`LeaseStore`] must pass (feature
//! `conformance`).
//!
//! Every backend's tests call [`run_all`] or [`run_all_with`], or single
//! cases. Each case writes under `prefix` plus a sub-prefix unique to the
//! run (case name, time, process id, counter), so repeated runs on one store
//! never collide. Cases leave their keys behind: point the suite at a
//! scratch bucket, directory or prefix, never at live data.
//!
//! Every case panics with a message naming the case, the backend, the key
//! and the broken rule, and every assertion can fail on a store that breaks
//! the rule (the crate's own tests check this against broken stores).
//!
//! What a backend may legitimately differ in is passed in, never skipped:
//!
//! * whether versions are unique per write or content digests
//!   ([`VersionScheme`], for [`version_reuse`]);
//! * whether a race must have exactly one winner (`expect_linearizable`;
//!   false only for an emulator such as moto, whose conditional PUT is a
//!   check-then-write without a lock);
//! * how many keys to list;
//! * conditional delete, which the suite reads from
//!   [`Capabilities`](crate::Capabilities) and checks both ways.
//!
//! The race cases spawn tokio tasks, so they need a tokio runtime (a
//! multi-threaded one makes the races real on an in-process store).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::StreamExt;

use crate::{Conditional, LeaseStore, LeaseStoreExt, StoreError, Version, Written};

/// How a backend assigns versions, for [`version_reuse`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionScheme {
    /// Every write gets a new version, even of identical bytes (the memory
    /// store's counter, GCS generations, Azure ETags).
    UniquePerWrite,
    /// The version is a digest of the content, so identical bytes bring an
    /// old version back (S3 ETags, the local directory).
    ContentDigest,
    /// Not known: only the properties every correct store has are checked.
    Unknown,
}

/// The per-backend parameters of [`run_all_with`].
#[derive(Clone, Debug)]
pub struct SuiteOptions {
    /// Keys written and listed by [`list_returns_each_key_once`]
    /// (default 2,500: three S3 pages).
    pub list_keys: usize,
    /// Concurrent contenders per race round (default 50).
    pub contenders: usize,
    /// Race rounds (default 20).
    pub rounds: usize,
    /// Whether a race must have exactly one winner (default true). False
    /// reports a double winner as the emulator's fault instead of failing.
    pub expect_linearizable: bool,
    /// How the backend assigns versions (default [`VersionScheme::Unknown`]).
    pub versions: VersionScheme,
}

impl Default for SuiteOptions {
    fn default() -> Self {
        Self {
            list_keys: 2_500,
            contenders: 50,
            rounds: 20,
            expect_linearizable: true,
            versions: VersionScheme::Unknown,
        }
    }
}

/// What a race case saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RaceReport {
    /// Rounds run.
    pub rounds: usize,
    /// Rounds in which more than one contender succeeded (always 0 when
    /// linearizability was expected: the case panics instead).
    pub rounds_with_several_winners: usize,
}

/// Runs every case with the default [`SuiteOptions`] (2,500 keys listed, 50
/// contenders, 20 rounds, races must be linearizable, version scheme
/// unknown).
///
/// # Panics
/// On the first broken rule, naming the case, backend and key.
pub async fn run_all(store: Arc<dyn LeaseStore>, prefix: &str) {
    run_all_with(store, prefix, &SuiteOptions::default()).await;
}

/// Runs every case with `options`.
///
/// # Panics
/// On the first broken rule, naming the case, backend and key.
pub async fn run_all_with(store: Arc<dyn LeaseStore>, prefix: &str, options: &SuiteOptions) {
    let s = &*store;
    get_missing_is_none(s, prefix).await;
    create_is_exclusive(s, prefix).await;
    compare_and_swap_checks_version(s, prefix).await;
    compare_and_swap_on_missing_key_conflicts(s, prefix).await;
    get_if_changed_reports_state(s, prefix).await;
    version_reuse(s, prefix, options.versions).await;
    put_overwrites(s, prefix).await;
    delete_missing_is_ok(s, prefix).await;
    delete_if_version_is_conditional(s, prefix).await;
    concurrent_compare_and_swap(
        store.clone(),
        prefix,
        options.contenders,
        options.rounds,
        options.expect_linearizable,
    )
    .await;
    concurrent_create(
        store.clone(),
        prefix,
        options.contenders,
        options.rounds,
        options.expect_linearizable,
    )
    .await;
    list_returns_each_key_once(s, prefix, options.list_keys).await;
}

/// A sub-prefix of `prefix` unique to this case and run.
fn case_prefix(prefix: &str, case: &str) -> String {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let run = RUNS.fetch_add(1, Ordering::Relaxed);
    let unique = format!("{case}-{nanos:x}-{:x}-{run}", std::process::id());
    let prefix = prefix.trim_end_matches('/');
    if prefix.is_empty() {
        unique
    } else {
        format!("{prefix}/{unique}")
    }
}

/// Unwraps `result` or panics naming the case, backend and operation.
#[track_caller]
fn must<T>(case: &str, store: &dyn LeaseStore, what: &str, result: Result<T, StoreError>) -> T {
    match result {
        Ok(value) => value,
        Err(e) => panic!(
            "conformance[{case}] ({}): {what} failed: {e}",
            store.backend()
        ),
    }
}

/// Panics with the case and backend unless `condition` holds.
#[track_caller]
fn check(case: &str, store: &dyn LeaseStore, condition: bool, rule: impl FnOnce() -> String) {
    if !condition {
        panic!("conformance[{case}] ({}): {}", store.backend(), rule());
    }
}

#[track_caller]
fn expect_conflict<T: Debug>(
    case: &str,
    store: &dyn LeaseStore,
    what: &str,
    result: Result<T, StoreError>,
) {
    match result {
        Err(StoreError::Conflict { .. }) => {}
        other => panic!(
            "conformance[{case}] ({}): {what} must fail with Conflict, got {other:?}",
            store.backend()
        ),
    }
}

async fn body_of(case: &str, store: &dyn LeaseStore, key: &str) -> Option<(Bytes, Version)> {
    must(case, store, &format!("get `{key}`"), store.get(key).await).map(|o| (o.body, o.version))
}

/// A get of a missing key returns `Ok(None)` (not an error), and so does a
/// key that is only a prefix of other keys.
pub async fn get_missing_is_none(store: &dyn LeaseStore, prefix: &str) {
    const CASE: &str = "get_missing_is_none";
    let base = case_prefix(prefix, CASE);
    let missing = format!("{base}/missing.json");
    let got = must(
        CASE,
        store,
        "get of a missing key",
        store.get(&missing).await,
    );
    check(CASE, store, got.is_none(), || {
        format!("get of missing `{missing}` must be None, got {got:?}")
    });
    let nested = format!("{base}/dir/child.json");
    must(CASE, store, "put", store.put(&nested, "x".into()).await);
    let dir = format!("{base}/dir");
    let got = must(CASE, store, "get of a prefix", store.get(&dir).await);
    check(CASE, store, got.is_none(), || {
        format!("`{dir}` is only a prefix of `{nested}`; get must be None, got {got:?}")
    });
}

/// Creating one key twice: the first succeeds, the second gets exactly
/// [`StoreError::AlreadyExists`] and changes nothing.
pub async fn create_is_exclusive(store: &dyn LeaseStore, prefix: &str) {
    const CASE: &str = "create_is_exclusive";
    let key = format!("{}/state.json", case_prefix(prefix, CASE));
    let first = must(
        CASE,
        store,
        "first create",
        store.create(&key, "first".into()).await,
    );
    match store.create(&key, "second".into()).await {
        Err(StoreError::AlreadyExists { .. }) => {}
        other => panic!(
            "conformance[{CASE}] ({}): second create of `{key}` must fail with AlreadyExists, got {other:?}",
            store.backend()
        ),
    }
    let current = body_of(CASE, store, &key).await;
    check(
        CASE,
        store,
        current == Some((Bytes::from("first"), first.version.clone())),
        || format!("`{key}` must still hold the first create's body and version; got {current:?}"),
    );
}

/// A compare-and-swap with the current version succeeds with a new version
/// and new content; with a stale or made-up version it fails with
/// [`StoreError::Conflict`] and changes nothing.
pub async fn compare_and_swap_checks_version(store: &dyn LeaseStore, prefix: &str) {
    const CASE: &str = "compare_and_swap_checks_version";
    let key = format!("{}/state.json", case_prefix(prefix, CASE));
    let v1 = must(
        CASE,
        store,
        "create",
        store.create(&key, "one".into()).await,
    )
    .version;
    let v2 = must(
        CASE,
        store,
        "CAS with the current version",
        store.compare_and_swap(&key, &v1, "two".into()).await,
    )
    .version;
    check(CASE, store, v2 != v1, || {
        format!("CAS on `{key}` returned the old version {v1:?} for new content")
    });
    let current = body_of(CASE, store, &key).await;
    check(
        CASE,
        store,
        current == Some((Bytes::from("two"), v2.clone())),
        || format!("after CAS `{key}` must hold \"two\" at {v2:?}; got {current:?}"),
    );
    expect_conflict(
        CASE,
        store,
        &format!("CAS on `{key}` with the stale version {v1:?}"),
        store.compare_and_swap(&key, &v1, "three".into()).await,
    );
    expect_conflict(
        CASE,
        store,
        &format!("CAS on `{key}` with a made-up version"),
        store
            .compare_and_swap(&key, &Version::new("\"not-a-version\""), "four".into())
            .await,
    );
    let current = body_of(CASE, store, &key).await;
    check(
        CASE,
        store,
        current == Some((Bytes::from("two"), v2.clone())),
        || format!("refused CASes must not change `{key}`; got {current:?}"),
    );
}

/// A compare-and-swap on a missing key fails with
/// [`StoreError::Conflict`] and does not create the object.
pub async fn compare_and_swap_on_missing_key_conflicts(store: &dyn LeaseStore, prefix: &str) {
    const CASE: &str = "compare_and_swap_on_missing_key_conflicts";
    let base = case_prefix(prefix, CASE);
    // A real version of another key, so no backend can refuse it for its form.
    let other = format!("{base}/other.json");
    let version = must(
        CASE,
        store,
        "create",
        store.create(&other, "x".into()).await,
    )
    .version;
    let missing = format!("{base}/missing.json");
    expect_conflict(
        CASE,
        store,
        &format!("CAS on missing `{missing}`"),
        store.compare_and_swap(&missing, &version, "y".into()).await,
    );
    let current = body_of(CASE, store, &missing).await;
    check(CASE, store, current.is_none(), || {
        format!("a refused CAS must not create `{missing}`; got {current:?}")
    });
}

/// [`get_if_changed`](LeaseStore::get_if_changed) answers `Absent` for a
/// missing key, `Unchanged` for the current version, and `Changed` with the
/// new object after a write.
pub async fn get_if_changed_reports_state(store: &dyn LeaseStore, prefix: &str) {
    const CASE: &str = "get_if_changed_reports_state";
    let key = format!("{}/state.json", case_prefix(prefix, CASE));
    let made_up = Version::new("\"0123\"");
    let absent = must(
        CASE,
        store,
        "get_if_changed",
        store.get_if_changed(&key, &made_up).await,
    );
    check(CASE, store, absent == Conditional::Absent, || {
        format!("get_if_changed of missing `{key}` must be Absent, got {absent:?}")
    });
    let v1 = must(
        CASE,
        store,
        "create",
        store.create(&key, "one".into()).await,
    )
    .version;
    let same = must(
        CASE,
        store,
        "get_if_changed",
        store.get_if_changed(&key, &v1).await,
    );
    check(CASE, store, same == Conditional::Unchanged, || {
        format!("get_if_changed of `{key}` at its current version must be Unchanged, got {same:?}")
    });
    let v2 = must(
        CASE,
        store,
        "CAS",
        store.compare_and_swap(&key, &v1, "two".into()).await,
    )
    .version;
    match must(CASE, store, "get_if_changed", store.get_if_changed(&key, &v1).await) {
        Conditional::Changed(object) => check(
            CASE,
            store,
            object.body == "two" && object.version == v2,
            || format!("Changed must carry the new body and version {v2:?}, got {object:?}"),
        ),
        other => panic!(
            "conformance[{CASE}] ({}): get_if_changed of `{key}` with an old version must be Changed, got {other:?}",
            store.backend()
        ),
    }
    must(CASE, store, "delete", store.delete(&key).await);
    let gone = must(
        CASE,
        store,
        "get_if_changed",
        store.get_if_changed(&key, &v2).await,
    );
    check(CASE, store, gone == Conditional::Absent, || {
        format!("get_if_changed of deleted `{key}` must be Absent, got {gone:?}")
    });
}

/// The ABA property: a compare-and-swap holding a version observed before
/// an intervening write must fail once the content differs from what was
/// observed.
///
/// Two parts:
///
/// 1. **Bodies that never repeat** (what the coordinator writes: each record
///    carries a nonce and a counter). Write A₁, B₂, A₃, where A₃ has A₁'s
///    fields but a new nonce; a CAS with A₁'s version must fail on every
///    backend.
/// 2. **Identical bytes rewritten.** Write A, B, then A again (same bytes).
///    On every backend, a CAS with the first A's version succeeds exactly
///    when the store reports that version again. With
///    [`VersionScheme::UniquePerWrite`] it must not report it (the stale CAS
///    fails); with [`VersionScheme::ContentDigest`] it must (the stale CAS
///    succeeds: this is the ABA hazard that part 1's nonce removes).
pub async fn version_reuse(store: &dyn LeaseStore, prefix: &str, scheme: VersionScheme) {
    const CASE: &str = "version_reuse";
    let base = case_prefix(prefix, CASE);

    // Part 1: records with a nonce.
    let key = format!("{base}/record.json");
    let record = |nonce: u32, leader: &str| {
        Bytes::from(format!(
            r#"{{"format":1,"leader":"{leader}","epoch":7,"nonce":{nonce}}}"#
        ))
    };
    let w1 = must(
        CASE,
        store,
        "create",
        store.create(&key, record(1, "a")).await,
    );
    let w2 = must(
        CASE,
        store,
        "CAS",
        store
            .compare_and_swap(&key, &w1.version, record(2, "b"))
            .await,
    );
    must(
        CASE,
        store,
        "CAS",
        store
            .compare_and_swap(&key, &w2.version, record(3, "a"))
            .await,
    );
    expect_conflict(
        CASE,
        store,
        &format!("CAS on `{key}` with a version from before two writes (bodies differ by nonce)"),
        store
            .compare_and_swap(&key, &w1.version, record(4, "c"))
            .await,
    );

    // Part 2: identical bytes.
    let key = format!("{base}/same-bytes.json");
    let v1 = must(CASE, store, "create", store.create(&key, "A".into()).await).version;
    let v2 = must(
        CASE,
        store,
        "CAS",
        store.compare_and_swap(&key, &v1, "B".into()).await,
    )
    .version;
    let v3 = must(
        CASE,
        store,
        "CAS back to the first bytes",
        store.compare_and_swap(&key, &v2, "A".into()).await,
    )
    .version;
    match scheme {
        VersionScheme::UniquePerWrite => check(CASE, store, v3 != v1, || {
            format!("versions are declared unique per write, but rewriting the same bytes at `{key}` returned the old version {v1:?}")
        }),
        VersionScheme::ContentDigest => check(CASE, store, v3 == v1, || {
            format!("versions are declared content digests, but the same bytes at `{key}` got {v3:?} after {v1:?}")
        }),
        VersionScheme::Unknown => {}
    }
    let stale = store.compare_and_swap(&key, &v1, "C".into()).await;
    if v3 == v1 {
        // The version is current again, so the CAS must succeed.
        must(
            CASE,
            store,
            "CAS with a version that is current again",
            stale,
        );
    } else {
        expect_conflict(
            CASE,
            store,
            &format!("CAS on `{key}` with a version from before the bytes were rewritten"),
            stale,
        );
    }
}

/// An unconditional put creates a missing object and overwrites an
/// existing one with a new version.
pub async fn put_overwrites(store: &dyn LeaseStore, prefix: &str) {
    const CASE: &str = "put_overwrites";
    let key = format!("{}/workers/w1.json", case_prefix(prefix, CASE));
    let v1 = must(
        CASE,
        store,
        "put of a missing key",
        store.put(&key, "one".into()).await,
    )
    .version;
    let v2 = must(
        CASE,
        store,
        "put over an object",
        store.put(&key, "two".into()).await,
    )
    .version;
    check(CASE, store, v1 != v2, || {
        format!("put of new content at `{key}` returned the old version {v1:?}")
    });
    let current = body_of(CASE, store, &key).await;
    check(
        CASE,
        store,
        current == Some((Bytes::from("two"), v2.clone())),
        || format!("after put `{key}` must hold \"two\" at {v2:?}; got {current:?}"),
    );
}

/// Deleting a missing key succeeds; deleting an object removes it, and
/// deleting it again succeeds.
pub async fn delete_missing_is_ok(store: &dyn LeaseStore, prefix: &str) {
    const CASE: &str = "delete_missing_is_ok";
    let key = format!("{}/gone.json", case_prefix(prefix, CASE));
    must(
        CASE,
        store,
        "delete of a missing key",
        store.delete(&key).await,
    );
    must(CASE, store, "create", store.create(&key, "x".into()).await);
    must(CASE, store, "delete", store.delete(&key).await);
    let current = body_of(CASE, store, &key).await;
    check(CASE, store, current.is_none(), || {
        format!("`{key}` must be gone after delete, got {current:?}")
    });
    must(CASE, store, "second delete", store.delete(&key).await);
}

/// Where [`Capabilities::conditional_delete`](crate::Capabilities) is true:
/// a stale version gets [`StoreError::Conflict`] and deletes nothing, the
/// current version deletes, and a missing object gets `Conflict`. Where it
/// is false: [`StoreError::NotSupported`], and nothing is deleted.
pub async fn delete_if_version_is_conditional(store: &dyn LeaseStore, prefix: &str) {
    const CASE: &str = "delete_if_version_is_conditional";
    let key = format!("{}/claim.json", case_prefix(prefix, CASE));
    let v1 = must(
        CASE,
        store,
        "create",
        store.create(&key, "one".into()).await,
    )
    .version;
    let v2 = must(
        CASE,
        store,
        "CAS",
        store.compare_and_swap(&key, &v1, "two".into()).await,
    )
    .version;
    if !store.capabilities().conditional_delete {
        match store.delete_if_version(&key, &v2).await {
            Err(StoreError::NotSupported { .. }) => {}
            other => panic!(
                "conformance[{CASE}] ({}): capabilities say no conditional delete, so delete_if_version must be NotSupported, got {other:?}",
                store.backend()
            ),
        }
        let current = body_of(CASE, store, &key).await;
        check(CASE, store, current.is_some(), || {
            format!("an unsupported delete_if_version must not delete `{key}`")
        });
        return;
    }
    expect_conflict(
        CASE,
        store,
        &format!("delete_if_version of `{key}` with a stale version"),
        store.delete_if_version(&key, &v1).await,
    );
    let current = body_of(CASE, store, &key).await;
    check(
        CASE,
        store,
        current == Some((Bytes::from("two"), v2.clone())),
        || format!("a refused delete_if_version must leave `{key}` alone, got {current:?}"),
    );
    must(
        CASE,
        store,
        "delete_if_version with the current version",
        store.delete_if_version(&key, &v2).await,
    );
    let current = body_of(CASE, store, &key).await;
    check(CASE, store, current.is_none(), || {
        format!("`{key}` must be gone after delete_if_version, got {current:?}")
    });
    expect_conflict(
        CASE,
        store,
        &format!("delete_if_version of missing `{key}`"),
        store.delete_if_version(&key, &v2).await,
    );
}

/// Reports the outcome of one race round, panicking where the rules say so.
fn judge_round(
    case: &str,
    store: &dyn LeaseStore,
    key: &str,
    round: usize,
    winners: &[(usize, Written)],
    expect_linearizable: bool,
    report: &mut RaceReport,
) {
    report.rounds += 1;
    if winners.is_empty() {
        panic!(
            "conformance[{case}] ({}): round {round} on `{key}`: no contender won; the store refused every write with the current state",
            store.backend()
        );
    }
    if winners.len() > 1 {
        let who: Vec<usize> = winners.iter().map(|(i, _)| *i).collect();
        if expect_linearizable {
            panic!(
                "conformance[{case}] ({}): round {round} on `{key}`: {} contenders won ({who:?}); exactly one may",
                store.backend(),
                winners.len()
            );
        }
        report.rounds_with_several_winners += 1;
        eprintln!(
            "conformance[{case}] ({}): round {round} on `{key}`: {} contenders won ({who:?}). \
             This store was declared non-linearizable (an emulator such as moto, whose conditional PUT \
             is a check-then-write without a lock): this is the emulator, not a failure of our code; \
             the exactly-one-winner guarantee is tested on the memory and local stores.",
            store.backend(),
            winners.len()
        );
    }
}

/// Collects the outcomes of one round's contenders: winners with their
/// write, losers must have failed with `loss` (Conflict or AlreadyExists).
async fn gather(
    case: &str,
    store: &dyn LeaseStore,
    key: &str,
    tasks: Vec<tokio::task::JoinHandle<Result<Written, StoreError>>>,
    is_loss: fn(&StoreError) -> bool,
) -> Vec<(usize, Written)> {
    let mut winners = Vec::new();
    for (contender, task) in tasks.into_iter().enumerate() {
        match task.await {
            Ok(Ok(written)) => winners.push((contender, written)),
            Ok(Err(e)) if is_loss(&e) => {}
            Ok(Err(e)) => panic!(
                "conformance[{case}] ({}): contender {contender} on `{key}` failed with an unexpected error: {e}",
                store.backend()
            ),
            Err(join) => panic!(
                "conformance[{case}] ({}): contender {contender} on `{key}` panicked or was cancelled: {join}",
                store.backend()
            ),
        }
    }
    winners
}

/// Checks that `key` holds one winner's body and version after a round.
async fn check_winner_stored(
    case: &str,
    store: &dyn LeaseStore,
    key: &str,
    round: usize,
    bodies: &BTreeMap<usize, Bytes>,
    winners: &[(usize, Written)],
) -> Version {
    let Some((body, version)) = body_of(case, store, key).await else {
        panic!(
            "conformance[{case}] ({}): round {round}: `{key}` vanished",
            store.backend()
        );
    };
    let stored_by = winners
        .iter()
        .find(|(i, w)| bodies.get(i) == Some(&body) && w.version == version);
    check(case, store, stored_by.is_some(), || {
        format!("round {round}: `{key}` holds {body:?} at {version:?}, which is no winner's write")
    });
    version
}

/// `contenders` tasks compare-and-swap one key from the same version at
/// once, for `rounds` rounds: exactly one wins each round, the others get
/// [`StoreError::Conflict`], and the key holds the winner's body.
///
/// With `expect_linearizable` false (an emulator), several winners are
/// reported on stderr and counted in the [`RaceReport`] instead of failing.
///
/// # Panics
/// On a broken rule, naming the round.
pub async fn concurrent_compare_and_swap(
    store: Arc<dyn LeaseStore>,
    prefix: &str,
    contenders: usize,
    rounds: usize,
    expect_linearizable: bool,
) -> RaceReport {
    const CASE: &str = "concurrent_compare_and_swap";
    let s = &*store;
    let key = format!("{}/state.json", case_prefix(prefix, CASE));
    let mut version = must(
        CASE,
        s,
        "create",
        s.create(&key, "round start".into()).await,
    )
    .version;
    let mut report = RaceReport::default();
    for round in 0..rounds {
        let barrier = Arc::new(tokio::sync::Barrier::new(contenders));
        let bodies: BTreeMap<usize, Bytes> = (0..contenders)
            .map(|i| (i, Bytes::from(format!("round {round} contender {i}"))))
            .collect();
        let tasks = bodies
            .values()
            .map(|body| {
                let (store, key, version, body, barrier) = (
                    store.clone(),
                    key.clone(),
                    version.clone(),
                    body.clone(),
                    barrier.clone(),
                );
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.compare_and_swap(&key, &version, body).await
                })
            })
            .collect();
        let winners = gather(CASE, s, &key, tasks, |e| {
            matches!(e, StoreError::Conflict { .. })
        })
        .await;
        judge_round(
            CASE,
            s,
            &key,
            round,
            &winners,
            expect_linearizable,
            &mut report,
        );
        version = check_winner_stored(CASE, s, &key, round, &bodies, &winners).await;
    }
    report
}

/// `contenders` tasks create one fresh key at once, for `rounds` rounds:
/// exactly one wins each round, the others get
/// [`StoreError::AlreadyExists`], and the key holds the winner's body.
///
/// `expect_linearizable` as for [`concurrent_compare_and_swap`].
///
/// # Panics
/// On a broken rule, naming the round.
pub async fn concurrent_create(
    store: Arc<dyn LeaseStore>,
    prefix: &str,
    contenders: usize,
    rounds: usize,
    expect_linearizable: bool,
) -> RaceReport {
    const CASE: &str = "concurrent_create";
    let s = &*store;
    let base = case_prefix(prefix, CASE);
    let mut report = RaceReport::default();
    for round in 0..rounds {
        let key = format!("{base}/round-{round}.json");
        let barrier = Arc::new(tokio::sync::Barrier::new(contenders));
        let bodies: BTreeMap<usize, Bytes> = (0..contenders)
            .map(|i| (i, Bytes::from(format!("round {round} creator {i}"))))
            .collect();
        let tasks = bodies
            .values()
            .map(|body| {
                let (store, key, body, barrier) =
                    (store.clone(), key.clone(), body.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.create(&key, body).await
                })
            })
            .collect();
        let winners = gather(CASE, s, &key, tasks, |e| {
            matches!(e, StoreError::AlreadyExists { .. })
        })
        .await;
        judge_round(
            CASE,
            s,
            &key,
            round,
            &winners,
            expect_linearizable,
            &mut report,
        );
        check_winner_stored(CASE, s, &key, round, &bodies, &winners).await;
    }
    report
}

/// Writes `keys` objects of varied sizes (some one level deeper, plus
/// neighbours that share the prefix as a string but not as a segment) and
/// checks that a listing returns each once, sorted, with its size and
/// version, and nothing else; and that a listing of a sub-prefix returns
/// exactly the keys under it.
pub async fn list_returns_each_key_once(store: &dyn LeaseStore, prefix: &str, keys: usize) {
    const CASE: &str = "list_returns_each_key_once";
    let base = format!("{}/list", case_prefix(prefix, CASE));
    let key_of = |i: usize| {
        if i.is_multiple_of(5) {
            format!("{base}/d{}/k{i:05}", i % 3)
        } else {
            format!("{base}/k{i:05}")
        }
    };
    let body_of_key = |i: usize| Bytes::from(format!("{i:05}{}", "x".repeat(i % 23)));

    // Write in reverse order so that a store returning write order fails.
    let written: Vec<(String, u64, Version)> = futures::stream::iter((0..keys).rev())
        .map(|i| {
            let key = key_of(i);
            let body = body_of_key(i);
            async move {
                let size = body.len() as u64;
                let result = store.create(&key, body).await;
                (key, size, result)
            }
        })
        .buffer_unordered(32)
        .map(|(key, size, result)| {
            let written = must(CASE, store, &format!("create `{key}`"), result);
            (key, size, written.version)
        })
        .collect()
        .await;
    for neighbour in [format!("{base}-sibling.json"), format!("{base}x/k.json")] {
        must(
            CASE,
            store,
            "put of a neighbour",
            store.put(&neighbour, "n".into()).await,
        );
    }

    let expected: BTreeMap<String, (u64, Version)> = written
        .into_iter()
        .map(|(key, size, version)| (key, (size, version)))
        .collect();
    let listed = must(
        CASE,
        store,
        &format!("list `{base}`"),
        store.list(&base).await,
    );
    check(CASE, store, listed.len() == expected.len(), || {
        format!(
            "list `{base}` returned {} entries for {} keys",
            listed.len(),
            expected.len()
        )
    });
    for pair in listed.windows(2) {
        check(CASE, store, pair[0].key < pair[1].key, || {
            format!(
                "list `{base}` is not sorted or repeats a key: `{}` then `{}`",
                pair[0].key, pair[1].key
            )
        });
    }
    for meta in &listed {
        let Some((size, version)) = expected.get(&meta.key) else {
            panic!(
                "conformance[{CASE}] ({}): list `{base}` returned `{}`, which was not written under it",
                store.backend(),
                meta.key
            );
        };
        check(CASE, store, meta.size == *size, || {
            format!(
                "list: `{}` has size {}, wrote {size} bytes",
                meta.key, meta.size
            )
        });
        check(CASE, store, &meta.version == version, || {
            format!(
                "list: `{}` has version {:?}, the write returned {version:?}",
                meta.key, meta.version
            )
        });
    }

    let sub = format!("{base}/d1");
    let in_sub = expected
        .keys()
        .filter(|k| k.starts_with(&format!("{sub}/")))
        .count();
    let listed_sub = must(
        CASE,
        store,
        &format!("list `{sub}`"),
        store.list(&sub).await,
    );
    check(
        CASE,
        store,
        listed_sub.len() == in_sub && listed_sub.iter().all(|m| m.key.starts_with(&sub)),
        || {
            format!(
                "list `{sub}` returned {} entries, expected the {in_sub} keys under it",
                listed_sub.len()
            )
        },
    );

    // Walking `list_page` gives the same keys in the same order, in pages
    // of at most the limit, each starting after the previous page's last.
    // About five pages whatever the size (each is a request on a real
    // server), never a single one.
    let limit = (listed.len() / 4).max(3);
    let mut paged: Vec<String> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = must(
            CASE,
            store,
            &format!("list_page `{base}` after {after:?}"),
            store.list_page(&base, after.as_deref(), limit).await,
        );
        check(CASE, store, page.len() <= limit, || {
            format!(
                "list_page `{base}` returned {} entries for a limit of {limit}",
                page.len()
            )
        });
        let short = page.len() < limit;
        after = page.last().map(|m| m.key.clone()).or(after);
        paged.extend(page.into_iter().map(|m| m.key));
        if short {
            break;
        }
    }
    let keys: Vec<&String> = listed.iter().map(|m| &m.key).collect();
    // `start_after` is any string, not only a key: the prefix itself with
    // a trailing `/` sorts before every key under it.
    let from_slash = must(
        CASE,
        store,
        &format!("list_page `{base}` after `{base}/`"),
        store
            .list_page(&base, Some(&format!("{base}/")), listed.len() + 1)
            .await,
    );
    check(CASE, store, from_slash.len() == listed.len(), || {
        format!(
            "list_page `{base}` after `{base}/` returned {} of {} keys",
            from_slash.len(),
            listed.len()
        )
    });
    check(
        CASE,
        store,
        paged.iter().collect::<Vec<_>>() == keys,
        || {
            format!(
            "walking list_page `{base}` gave {} keys, list gave {}; paging must neither skip nor repeat",
            paged.len(),
            keys.len()
        )
        },
    );
}

#[cfg(test)]
mod tests {
    //! The suite must be able to fail: run it against stores that break one
    //! rule each and check that the right case panics.

    use super::*;
    use crate::{Capabilities, MemoryStore, ObjectMeta, StoredObject};
    use async_trait::async_trait;
    use futures::FutureExt;
    use std::panic::AssertUnwindSafe;

    /// Which rule to break.
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Flaw {
        CreateOverwrites,
        CasIgnoresVersion,
        CasCreatesMissing,
        ListUnsorted,
        ListDropsOne,
        DeleteIfVersionIgnoresVersion,
        DeleteIfVersionUnsupportedButClaimed,
        ContentDigestVersions,
        RaceCheckThenWrite,
    }

    #[derive(Debug)]
    struct Broken {
        inner: MemoryStore,
        flaw: Flaw,
    }

    #[async_trait]
    impl LeaseStore for Broken {
        fn backend(&self) -> &'static str {
            "broken"
        }
        fn capabilities(&self) -> Capabilities {
            self.inner.capabilities()
        }
        async fn get(&self, key: &str) -> Result<Option<StoredObject>, StoreError> {
            self.inner.get(key).await
        }
        async fn create(&self, key: &str, body: Bytes) -> Result<Written, StoreError> {
            match self.flaw {
                Flaw::CreateOverwrites => self.inner.put(key, body).await,
                Flaw::RaceCheckThenWrite => {
                    if self.inner.get(key).await?.is_some() {
                        return self.inner.create(key, body).await;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                    self.inner.put(key, body).await
                }
                _ => self.inner.create(key, body).await,
            }
        }
        async fn compare_and_swap(
            &self,
            key: &str,
            expected: &Version,
            body: Bytes,
        ) -> Result<Written, StoreError> {
            match self.flaw {
                Flaw::CasIgnoresVersion if self.inner.get(key).await?.is_some() => {
                    self.inner.put(key, body).await
                }
                Flaw::CasCreatesMissing if self.inner.get(key).await?.is_none() => {
                    self.inner.put(key, body).await
                }
                Flaw::ContentDigestVersions => {
                    // Claims content digests but the memory store's versions
                    // are unique per write: the declared scheme is violated.
                    self.inner.compare_and_swap(key, expected, body).await
                }
                Flaw::RaceCheckThenWrite => {
                    let current = self.inner.get(key).await?;
                    if current.map(|o| o.version) != Some(expected.clone()) {
                        return Err(StoreError::Conflict {
                            key: key.to_owned(),
                            backend: "broken",
                        });
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                    self.inner.put(key, body).await
                }
                _ => self.inner.compare_and_swap(key, expected, body).await,
            }
        }
        async fn put(&self, key: &str, body: Bytes) -> Result<Written, StoreError> {
            self.inner.put(key, body).await
        }
        async fn list_page(
            &self,
            prefix: &str,
            start_after: Option<&str>,
            limit: usize,
        ) -> Result<Vec<ObjectMeta>, StoreError> {
            let mut listed = self.inner.list_page(prefix, start_after, limit).await?;
            match self.flaw {
                Flaw::ListUnsorted => listed.reverse(),
                Flaw::ListDropsOne => {
                    listed.pop();
                }
                _ => {}
            }
            Ok(listed)
        }
        async fn delete(&self, key: &str) -> Result<(), StoreError> {
            self.inner.delete(key).await
        }
        async fn delete_if_version(&self, key: &str, expected: &Version) -> Result<(), StoreError> {
            match self.flaw {
                Flaw::DeleteIfVersionIgnoresVersion => self.inner.delete(key).await,
                Flaw::DeleteIfVersionUnsupportedButClaimed => Err(StoreError::NotSupported {
                    op: "delete_if_version",
                    backend: "broken",
                }),
                _ => self.inner.delete_if_version(key, expected).await,
            }
        }
    }

    async fn fails(flaw: Flaw, expected_case: &str) {
        let store: Arc<dyn LeaseStore> = Arc::new(Broken {
            inner: MemoryStore::new(),
            flaw,
        });
        let versions = if flaw == Flaw::ContentDigestVersions {
            VersionScheme::ContentDigest
        } else {
            VersionScheme::UniquePerWrite
        };
        let options = SuiteOptions {
            list_keys: 30,
            contenders: 8,
            rounds: 5,
            expect_linearizable: true,
            versions,
        };
        let outcome = AssertUnwindSafe(run_all_with(store, "t", &options))
            .catch_unwind()
            .await;
        let Err(panic) = outcome else {
            panic!("the suite passed a store with {flaw:?}");
        };
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        assert!(
            message.contains(&format!("conformance[{expected_case}]")),
            "{flaw:?} should fail {expected_case}, failed with: {message}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_suite_catches_broken_stores() {
        fails(Flaw::CreateOverwrites, "create_is_exclusive").await;
        fails(Flaw::CasIgnoresVersion, "compare_and_swap_checks_version").await;
        fails(
            Flaw::CasCreatesMissing,
            "compare_and_swap_on_missing_key_conflicts",
        )
        .await;
        fails(Flaw::ListUnsorted, "list_returns_each_key_once").await;
        fails(Flaw::ListDropsOne, "list_returns_each_key_once").await;
        fails(
            Flaw::DeleteIfVersionIgnoresVersion,
            "delete_if_version_is_conditional",
        )
        .await;
        fails(
            Flaw::DeleteIfVersionUnsupportedButClaimed,
            "delete_if_version_is_conditional",
        )
        .await;
        fails(Flaw::ContentDigestVersions, "version_reuse").await;
        fails(Flaw::RaceCheckThenWrite, "concurrent_compare_and_swap").await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_non_linearizable_race_is_reported_not_failed() {
        let store: Arc<dyn LeaseStore> = Arc::new(Broken {
            inner: MemoryStore::new(),
            flaw: Flaw::RaceCheckThenWrite,
        });
        let report = concurrent_compare_and_swap(store.clone(), "t", 8, 5, false).await;
        assert_eq!(report.rounds, 5);
        assert!(report.rounds_with_several_winners > 0, "{report:?}");
        let report = concurrent_create(store, "t", 8, 5, false).await;
        assert!(report.rounds_with_several_winners > 0, "{report:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory_passes() {
        let options = SuiteOptions {
            versions: VersionScheme::UniquePerWrite,
            ..SuiteOptions::default()
        };
        run_all_with(Arc::new(MemoryStore::new()), "conformance", &options).await;
    }
}
