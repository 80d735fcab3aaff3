//! Which stores [`open`] trusts the clock of
//! ([`Capabilities::trusted_clock`], the stale-lease shortcut): AWS S3, GCS
//! and Azure themselves, nothing with a custom endpoint or an emulator,
//! unless the URL says `trust_store_clock=true`.
//!
//! Building an `s3://…?endpoint=` or `az://` store needs credentials in the
//! environment, and `object_store` also reads endpoints and emulators from
//! it (`AWS_ENDPOINT_URL`, `GOOGLE_BASE_URL`,
//! `AZURE_STORAGE_USE_EMULATOR`). Setting variables in a test process
//! whose other threads read them is a data race, so each environment runs
//! in a child process: this test binary re-executed with
//! `--exact child_process_entry`, every `AWS_*`, `GOOGLE_*` and `AZURE_*`
//! variable removed, and exactly the ones the case needs set. No request
//! is made ([`open_unprobed`]).
//!
//! [`open`]: coordinator_store::open
//! [`Capabilities::trusted_clock`]: coordinator_store::Capabilities::trusted_clock

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use coordinator_store::open_unprobed;

const CHILD_ENV: &str = "COORD_STORE_CLOCK_CHILD";

/// Credentials that let the stores be built (never used: no request).
const CREDENTIALS: &[(&str, &str)] = &[
    ("AWS_ACCESS_KEY_ID", "test"),
    ("AWS_SECRET_ACCESS_KEY", "test"),
    ("AZURE_STORAGE_ACCOUNT_NAME", "account"),
    ("AZURE_STORAGE_ACCOUNT_KEY", "dGVzdA=="),
];

/// Runs `child_process_entry` in `mode` with only `envs` among the cloud
/// variables, and fails with its output if it fails.
fn run_child(mode: &str, envs: &[(&str, &str)]) {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.args([
        "--exact",
        "child_process_entry",
        "--nocapture",
        "--test-threads=1",
    ]);
    for (name, _) in std::env::vars_os() {
        let cloud = name.to_str().is_some_and(|name| {
            ["AWS_", "GOOGLE_", "AZURE_"]
                .iter()
                .any(|prefix| name.starts_with(prefix))
        });
        if cloud {
            command.env_remove(&name);
        }
    }
    command.env(CHILD_ENV, mode);
    for (name, value) in CREDENTIALS.iter().chain(envs) {
        command.env(name, value);
    }
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{mode} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Not a test of its own: the entry point of the child processes.
#[test]
fn child_process_entry() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    let cases: &[(&str, bool)] = match mode.as_str() {
        "cloud" => &[
            // The services themselves.
            ("s3://bucket/p", true),
            ("s3://bucket/p?region=eu-west-1", true),
            ("gs://bucket/p", true),
            ("az://container/p", true),
            // Any custom endpoint: MinIO, R2, Ceph, moto, Azurite.
            ("s3://bucket/p?endpoint=http://127.0.0.1:9000", false),
            ("s3://bucket/p?endpoint=https://minio.example.com&region=us-east-1", false),
            ("s3://bucket/p?endpoint=https://acct.r2.cloudflarestorage.com", false),
            (
                "az://container/p?endpoint=http://127.0.0.1:10000/devstoreaccount1",
                false,
            ),
            // Opted in by name.
            (
                "s3://bucket/p?endpoint=http://127.0.0.1:9000&trust_store_clock=true",
                true,
            ),
            (
                "az://container/p?endpoint=http://127.0.0.1:10000/devstoreaccount1&trust_store_clock=true",
                true,
            ),
            // Opted out by name.
            ("s3://bucket/p?trust_store_clock=false", false),
            ("gs://bucket/p?trust_store_clock=false", false),
            ("az://container/p?trust_store_clock=false", false),
        ],
        // Endpoints and emulators from the environment, as object_store
        // reads them: the same URLs are not the cloud services any more.
        "emulators" => &[
            ("s3://bucket/p", false),
            ("gs://bucket/p", false),
            ("az://container/p", false),
            ("s3://bucket/p?trust_store_clock=true", true),
            ("gs://bucket/p?trust_store_clock=true", true),
            ("az://container/p?trust_store_clock=true", true),
        ],
        other => panic!("unknown child mode {other}"),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for &(url, trusted) in cases {
        let store = runtime
            .block_on(open_unprobed(url))
            .unwrap_or_else(|e| panic!("{mode}: {url}: {e}"));
        assert_eq!(
            store.capabilities().trusted_clock,
            trusted,
            "{mode}: trusted_clock of {url}"
        );
    }
}

#[test]
fn only_aws_gcs_and_azure_themselves_are_trusted_unless_opted_in() {
    run_child("cloud", &[]);
}

#[test]
fn endpoints_and_emulators_from_the_environment_are_not_trusted() {
    run_child(
        "emulators",
        &[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
            ("GOOGLE_BASE_URL", "http://127.0.0.1:4443"),
            ("AZURE_STORAGE_USE_EMULATOR", "true"),
        ],
    );
}
