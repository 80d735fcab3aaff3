//! `cargo test -p examples --example multi_plugin`: runs the example on a
//! local directory, checks its key lines and scrapes its Prometheus
//! endpoint with the `curl` command the docs show; and once over S3 when
//! `COORD_S3_ENDPOINT` is set (scripts/test starts moto).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::{monitor, run, settings::Args};

fn args(extra: &[&str]) -> Args {
    Args::parse(extra.iter().map(|s| (*s).to_owned())).unwrap()
}

/// The lines every run must print, in this order.
fn check_story(lines: &[String]) {
    let text = lines.join("\n");
    let mut at = 0;
    for expected in [
        "started: queue.orders, scheduler.cron, ttl.sessions under the election plg_coordinator_global/shop/state.json",
        "watch: I lead now (epoch 1)",
        "event: worker w",
        "queue: handled order-",
        "==> queue stats after the leader's sweep: 0 pending, 0 in flight, 6 completed",
        "cron: job `report`, slot ",
        "ttl: session/1 expired",
        "crashed under epoch 1",
        "==> fail-over: ",
        "==> after the fail-over: 9 orders handled",
        "the crashed worker timed out",
        "== 6. metrics()",
        "==> hand-over: ",
        "done: first leader",
    ] {
        let Some(found) = text[at..].find(expected) else {
            panic!("missing, or out of order: {expected:?}\n---\n{text}");
        };
        at += found + expected.len();
    }
    for order in 1..=9 {
        assert!(
            text.contains(&format!("queue: handled order-{order} ")),
            "order-{order} was never handled"
        );
    }
    // No hook failed: the last column of the metrics table is 0 everywhere.
    for line in lines.iter().filter(|l| l.starts_with("  w")) {
        assert!(line.ends_with(" 0"), "hook failures: {line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_on_a_local_directory_and_serves_prometheus() {
    let port = monitor::free_port().unwrap();
    let report = run(args(&["--metrics-port", &port.to_string()]))
        .await
        .unwrap();
    assert_eq!(report.metrics_port, Some(port));
    check_story(&report.lines);
    assert!(report.lines.iter().any(|l| l.contains("store: file://")));

    // What docs/migration.md shows: `curl localhost:PORT/metrics`.
    let curl = tokio::process::Command::new("curl")
        .args(["-sf", &format!("localhost:{port}/metrics")])
        .output()
        .await
        .expect("curl is installed");
    assert!(curl.status.success(), "curl: {curl:?}");
    let body = String::from_utf8(curl.stdout).unwrap();
    let names = monitor::metric_names(&body);
    for name in [
        "coordinator_is_leader",
        "coordinator_epoch",
        "coordinator_workers",
        "coordinator_heartbeats_total",
        "coordinator_renewals_total",
        "coordinator_leader_changes_total",
        "coordinator_store_requests_total",
        "coordinator_renewal_margin_seconds",
        "coordinator_store_request_seconds",
    ] {
        assert!(
            names.iter().any(|n| n == name),
            "{name} missing from {names:?}"
        );
    }
    // Each worker is labelled; the new leader says 1.
    for worker in ["w1", "w2", "w3"] {
        assert!(
            body.contains(&format!("worker_id=\"{worker}\"")),
            "{worker}"
        );
    }
    assert!(body
        .lines()
        .any(|l| l.starts_with("coordinator_is_leader{") && l.ends_with(" 1")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_unchanged_over_s3() {
    let Ok(endpoint) = std::env::var("COORD_S3_ENDPOINT") else {
        if std::env::var("COORD_REQUIRE_S3").as_deref() == Ok("1") {
            panic!("COORD_REQUIRE_S3=1 but COORD_S3_ENDPOINT is unset: start moto with scripts/moto.sh start");
        }
        eprintln!(
            "SKIPPED runs_unchanged_over_s3: COORD_S3_ENDPOINT is not set (scripts/moto.sh start)"
        );
        return;
    };
    let bucket = std::env::var("COORD_S3_BUCKET").unwrap_or_else(|_| "coordinator-test".into());
    let unique = format!(
        "multi-plugin-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let url = format!("s3://{bucket}/{unique}?endpoint={endpoint}");
    let report = run(args(&["--url", &url, "--metrics-port", "0"]))
        .await
        .unwrap();
    assert!(report.lines.iter().any(|l| l.contains("(s3)")));
    check_story(&report.lines);
}

#[test]
fn the_file_is_the_documented_coordinator_toml_format() {
    // The layout docs/configuration.md shows parses into the same types.
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/configuration.md"
    ))
    .unwrap();
    let start = doc
        .find("```toml\nurl = ")
        .expect("the coordinator.toml block")
        + "```toml\n".len();
    let block = &doc[start..start + doc[start..].find("```").unwrap()];
    let parsed: super::settings::FileConfig = toml::from_str(block).unwrap();
    assert_eq!(parsed.plugins.queue.name("?"), "jobs");
    let ours = super::settings::FileConfig::load(&args(&[]).config).unwrap();
    assert_eq!(ours.namespace.as_deref(), Some("shop"));
    assert_eq!(ours.plugins.ttl.name("?"), "sessions");
    // Misspelt keys are refused, as the `coordinator` command refuses them.
    assert!(
        toml::from_str::<super::settings::FileConfig>("[plugins.queue]\nname = [\"x\"]").is_err()
    );
}
