//! `coordinator diagnose`: the bundle's sections, and no secret anywhere.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{coordinator, file_url, run};

const SECRETS: [&str; 4] = [
    "Sup3rS3cretPw",
    "envSecretValue42",
    "sessionTokenValue4242",
    "sigAbcDef0123456",
];

fn assert_no_secret(r: &common::Run) {
    for secret in SECRETS {
        assert!(
            !r.all().contains(secret),
            "`{secret}` printed:\n{}",
            r.all()
        );
    }
}

fn with_secrets(command: &mut std::process::Command) -> &mut std::process::Command {
    command
        .env("AWS_SECRET_ACCESS_KEY", SECRETS[1])
        .env("AWS_SESSION_TOKEN", SECRETS[2])
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
}

#[test]
fn the_bundle_on_a_local_directory() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(with_secrets(coordinator().args([
        "--url",
        &file_url(dir.path()),
        "--namespace",
        "demo",
        "--json",
        "diagnose",
        "--watch",
        "300ms",
        "--rounds",
        "2",
    ])));
    assert_eq!(r.code, 0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["versions"]["coordinator-cli"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["config"]["valid"], true);
    assert_eq!(v["config"]["values"]["url"]["source"], "flag --url");
    assert_eq!(
        v["config"]["values"]["coordinator.election.lease_timeout"]["source"],
        "default"
    );
    assert_eq!(v["probe"]["ok"], true);
    assert_eq!(v["status"]["verdict"]["status"], "no_leader");
    assert_eq!(v["status"]["requests"]["total"], 6);
    assert!(v["clock"]["boot_time_clock"].is_boolean());
    assert!(v["clock"]["store_minus_host_ms"].is_i64());
    assert_eq!(v["watch"]["changes"][0]["event"], "no_lease");
    assert_eq!(v["environment"]["AWS_ACCESS_KEY_ID"], "AKIDEXAMPLE");
    assert!(v["environment"]["AWS_SECRET_ACCESS_KEY"]
        .as_str()
        .unwrap()
        .starts_with("*** (set"));
    assert_no_secret(&r);

    // The human form: one heading per section; --no-probe writes nothing.
    let empty = tempfile::tempdir().unwrap();
    let r = run(with_secrets(coordinator().args([
        "--url",
        &file_url(empty.path()),
        "--namespace",
        "demo",
        "diagnose",
        "--watch",
        "200ms",
        "--no-probe",
    ])));
    assert_eq!(r.code, 0);
    for heading in [
        "## versions",
        "## environment",
        "## config",
        "## probe",
        "## status",
        "## clock",
        "## watch",
    ] {
        assert!(r.stdout.contains(heading), "{heading}");
    }
    assert!(common::files(empty.path()).is_empty());
    assert_no_secret(&r);
}

#[test]
fn credentials_in_the_url_and_environment_never_appear() {
    // A password in the URL and a signature parameter: the store refuses
    // the URL (credentials come from the environment) and its message
    // quotes it; the CLI masks both.
    let url = format!(
        "s3://admin:{}@bucket/prefix?X-Amz-Signature={}",
        SECRETS[0], SECRETS[3]
    );
    for command in [
        vec!["diagnose", "--watch", "100ms"],
        vec!["--json", "diagnose", "--watch", "100ms"],
        vec!["status"],
        vec!["config"],
        vec!["watch", "--duration", "100ms"],
    ] {
        let r = run(with_secrets(
            coordinator()
                .args(["--url", &url, "--namespace", "demo"])
                .args(&command),
        ));
        if command != ["config"] {
            assert_ne!(r.code, 0, "{command:?} on a refused URL");
        }
        assert_no_secret(&r);
        let r = run(with_secrets(coordinator().args(["probe", &url])));
        assert_ne!(r.code, 0);
        assert_no_secret(&r);
    }
    // The same URL from a config file and from the environment.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, format!("url = \"{url}\"\nnamespace = \"demo\"\n")).unwrap();
    let r = run(with_secrets(
        coordinator().arg("--config").arg(&file).arg("diagnose"),
    ));
    assert_no_secret(&r);
    let r = run(with_secrets(
        coordinator()
            .args(["-n", "demo", "diagnose"])
            .env("COORDINATOR_URL", &url),
    ));
    assert_no_secret(&r);
}
