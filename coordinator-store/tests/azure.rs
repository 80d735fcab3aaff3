//! The Azure backend ([`ObjectStoreLease`] through [`open`]) against a real
//! Azure Blob Storage server: Azurite 3.35.0 on 127.0.0.1, started by
//! `scripts/test` (scripts/azurite.sh).
//!
//! Reads `COORD_AZURE_ENDPOINT` (the account URL: for Azurite
//! `http://127.0.0.1:PORT/devstoreaccount1`), `COORD_AZURE_CONTAINER`
//! (default `coordinator-test`; the container must exist) and the standard
//! `AZURE_STORAGE_ACCOUNT_NAME` and `AZURE_STORAGE_ACCOUNT_KEY`. Without
//! `COORD_AZURE_ENDPOINT` the tests print `SKIPPED` and pass, unless
//! `COORD_REQUIRE_AZURE=1` (set by `scripts/test` under CI), when they fail:
//! CI must never pass with the Azure tests skipped.
//!
//! [`ObjectStoreLease`]: coordinator_store::ObjectStoreLease

#![cfg(feature = "azure")]
// Test helpers panic to report a failure, as the tests themselves do.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Instant;

use common::{emulator_options as azurite_options, say, unique, Emulator};
use coordinator_store::conformance::{self, SuiteOptions, VersionScheme};
use coordinator_store::{open_with, LeaseStoreExt, StoreError, PROBE_PREFIX};

const AZURITE: Emulator = Emulator {
    name: "Azurite",
    backend: "Azure",
    store_backend: "azure",
    linearizable: true,
    endpoint_var: "COORD_AZURE_ENDPOINT",
    require_var: "COORD_REQUIRE_AZURE",
    bucket_var: "COORD_AZURE_CONTAINER",
};

/// The account URL of the Azure server, or `None` (after saying so) to skip.
fn endpoint(test: &str) -> Option<String> {
    AZURITE.endpoint(test)
}

fn container() -> String {
    AZURITE.bucket()
}

fn azure_url(endpoint: &str, container: &str, prefix: &str) -> String {
    format!("az://{container}/{prefix}?endpoint={endpoint}")
}

/// The whole conformance suite, the races with exactly one winner
/// required, and conditional delete on (the probe of open() saw Azurite
/// refuse a DELETE with a wrong If-Match and honour the right one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_on_azurite() {
    let Some(endpoint) = endpoint("conformance_suite_on_azurite") else {
        return;
    };
    let url = azure_url(&endpoint, &container(), &unique("conformance"));
    let started = Instant::now();
    let store = open_with(&url, azurite_options())
        .await
        .unwrap_or_else(|e| panic!("open {url}: {e}"));
    say(format!(
        "open (both probes) on Azurite: {:?}",
        started.elapsed()
    ));
    assert_eq!(store.backend(), "azure");
    let caps = store.capabilities();
    assert!(caps.conditional_get, "{caps:?}");
    assert!(
        !caps.trusted_clock,
        "an emulator's clock is not trusted: {caps:?}"
    );
    assert!(
        caps.conditional_delete,
        "the conditional-delete probe must pass on Azurite: {caps:?}"
    );

    // Azure ETags are new on every write, identical bytes or not. Every
    // case runs here except the races (rounds: 0), which run below, where
    // their reports are shown rather than left in captured output.
    let options = SuiteOptions {
        list_keys: 2_500,
        contenders: 20,
        rounds: 0,
        expect_linearizable: AZURITE.linearizable,
        versions: VersionScheme::UniquePerWrite,
    };
    let started = Instant::now();
    conformance::run_all_with(store.clone(), "suite", &options).await;
    say(format!(
        "conformance suite on Azurite: {:?}",
        started.elapsed()
    ));
    // Exactly one winner per round is required: Azurite serialises
    // conditional writes (unlike moto).
    AZURITE.races(store, 20, 10).await;
}

/// Azure's conditional delete (`Delete Blob` with `If-Match`, SharedKey
/// signed) on Azurite: a stale ETag is refused and deletes nothing, the
/// current one deletes, a missing blob is a conflict; the probes leave
/// nothing behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_delete_on_azurite() {
    let Some(endpoint) = endpoint("conditional_delete_on_azurite") else {
        return;
    };
    let url = azure_url(&endpoint, &container(), &unique("cdelete"));
    let store = open_with(&url, azurite_options()).await.unwrap();
    assert!(
        store.list(PROBE_PREFIX).await.unwrap().is_empty(),
        "the probes of open() delete their objects"
    );
    AZURITE.conditional_delete(store.as_ref()).await;

    // Keys with characters that need escaping in a URL path.
    let key = "q/a b+c%d/é.json";
    let written = store.create(key, "x".into()).await.unwrap();
    store
        .delete_if_version(key, &written.version)
        .await
        .unwrap();
    assert!(store.get(key).await.unwrap().is_none());
}

/// A container that does not exist is named in a Misconfigured error, by
/// the probe of open() and by a conditional delete alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_container_is_misconfigured_naming_it() {
    let Some(endpoint) = endpoint("missing_container_is_misconfigured_naming_it") else {
        return;
    };
    let url = azure_url(&endpoint, "no-such-container-coord", "p");
    let err = open_with(&url, azurite_options()).await.unwrap_err();
    let StoreError::Misconfigured { backend, message } = &err else {
        panic!("expected Misconfigured, got {err:?}");
    };
    assert_eq!(*backend, "azure");
    assert!(
        message.contains("`no-such-container-coord` does not exist"),
        "{message}"
    );
}
