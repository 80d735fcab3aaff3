//! The shared contract suite against the in-process and local stores, and
//! against the metering and fault-injection wrappers (with no faults), which
//! must not change any behaviour.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use coordinator_store::conformance::{self, SuiteOptions, VersionScheme};
use coordinator_store::{FailingStore, LeaseStore, LocalDirStore, MemoryStore, Metered};

fn options(versions: VersionScheme) -> SuiteOptions {
    SuiteOptions {
        list_keys: 2_500,
        contenders: 50,
        rounds: 20,
        expect_linearizable: true,
        versions,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store() {
    let store: Arc<dyn LeaseStore> = Arc::new(MemoryStore::new());
    conformance::run_all_with(store, "conf", &options(VersionScheme::UniquePerWrite)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_store_with_defaults_and_empty_prefix() {
    conformance::run_all(Arc::new(MemoryStore::new()), "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_dir_store() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn LeaseStore> = Arc::new(LocalDirStore::new(dir.path().join("root")));
    conformance::run_all_with(store, "conf", &options(VersionScheme::ContentDigest)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_dir_store_runs_twice_on_one_directory() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn LeaseStore> = Arc::new(LocalDirStore::new(dir.path().to_path_buf()));
    let small = SuiteOptions {
        list_keys: 50,
        rounds: 3,
        ..options(VersionScheme::ContentDigest)
    };
    conformance::run_all_with(store.clone(), "again/", &small).await;
    conformance::run_all_with(store, "again/", &small).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metered_memory_store() {
    let metered = Metered::new(MemoryStore::new());
    let counter = metered.counter();
    let store: Arc<dyn LeaseStore> = Arc::new(metered);
    conformance::run_all_with(store, "conf", &options(VersionScheme::UniquePerWrite)).await;
    let counts = counter.snapshot();
    // 2,500 listed keys are three LIST pages.
    assert!(counts.list >= 3, "{counts:?}");
    assert!(
        counts.put > 2_500 && counts.get > 0 && counts.errors > 0,
        "{counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_store_without_faults() {
    let failing = FailingStore::new(MemoryStore::new(), 7);
    let control = failing.controller();
    let store: Arc<dyn LeaseStore> = Arc::new(failing);
    conformance::run_all_with(store, "conf", &options(VersionScheme::UniquePerWrite)).await;
    assert_eq!(control.injected(), 0);
}
