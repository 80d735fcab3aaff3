//! `coordinator probe` on a local directory, memory and moto, and bad URLs.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{coordinator, file_url, files, run};

fn findings(stdout: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(stdout).unwrap();
    let mut out = serde_json::Map::new();
    for f in v["findings"].as_array().unwrap() {
        out.insert(
            f["capability"].as_str().unwrap().to_owned(),
            f["result"].clone(),
        );
    }
    serde_json::Value::Object(out)
}

#[test]
fn local_directory_and_memory() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(coordinator().args(["probe", &file_url(dir.path()), "--rounds", "5", "--json"]));
    assert_eq!(r.code, 0);
    let f = findings(&r.stdout);
    assert_eq!(f["create-if-absent"], "yes");
    assert_eq!(f["compare-and-swap"], "yes");
    assert_eq!(f["conditional GET"], "yes");
    assert_eq!(f["conditional delete"], "yes");
    assert_eq!(f["trusted clock"], "no");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["latency"][0]["op"], "get");
    assert_eq!(v["latency"][0]["rounds"], 5);
    assert!(
        v["latency"][0]["p99_ms"].as_f64().unwrap() >= v["latency"][0]["p50_ms"].as_f64().unwrap()
    );
    // Only the local store's lock files remain: no scratch object.
    let left: Vec<String> = files(dir.path())
        .into_iter()
        .filter(|f| !f.starts_with(".locks/"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    let r = run(coordinator().args(["probe", "memory://", "--rounds", "3"]));
    assert_eq!(r.code, 0);
    assert!(
        r.stdout.contains("verdict: usable for leader election"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("CAPABILITY"), "{}", r.stdout);
}

#[test]
fn bad_urls_exit_1_with_the_fix() {
    let r = run(coordinator().args(["probe", "file://relative/dir"]));
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("absolute"), "{}", r.stderr);
    let r = run(coordinator().args(["probe", "s3://bucket/p?colour=blue"]));
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("unknown parameter `colour`"),
        "{}",
        r.stderr
    );
    let r = run(coordinator().args(["probe"]));
    assert_eq!(r.code, 2, "no URL anywhere");
}

#[test]
fn s3_probe() {
    let Some(endpoint) = common::s3_endpoint("s3_probe") else {
        return;
    };
    let bucket = common::s3_bucket();
    let url = format!(
        "s3://{bucket}/{}?endpoint={endpoint}",
        common::unique("probe")
    );
    let r = run(coordinator().args(["probe", &url, "--rounds", "3", "--json"]));
    assert_eq!(r.code, 0);
    let f = findings(&r.stdout);
    assert_eq!(f["create-if-absent"], "yes");
    assert_eq!(f["compare-and-swap"], "yes");
    assert_eq!(
        f["trusted clock"], "no",
        "moto is not trusted without trust_store_clock"
    );

    let r = run(coordinator().args([
        "probe",
        &format!(
            "s3://no-such-bucket-{}/p?endpoint={endpoint}",
            std::process::id()
        ),
    ]));
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("does not exist"), "{}", r.stderr);

    let r = run(coordinator().args(["probe", "s3://b/p?endpoint=http://127.0.0.1:1"]));
    assert_ne!(r.code, 0, "nothing answers");
}
