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
        "started: queue.orders, scheduler.cron, ttl.sessions under the election plg_coordinator_global/shop",
        "watch: I lead now (epoch 1)",
        "queue: handled order-",
        "==> queue stats after the leader's sweep: 0 pending, 0 in flight, 6 completed",
        "cron: job `report`, slot ",
        "ttl: session/1 expired",
        "crashed under epoch ",
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
    // The events task and the watch task print independently.
    assert!(text.contains("event: worker w"), "no roster event\n{text}");
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

/// `curl -sf localhost:PORT/metrics`, what the docs show; the body if it
/// answered.
async fn curl(port: u16) -> Option<String> {
    let out = tokio::process::Command::new("curl")
        .args(["-sf", &format!("localhost:{port}/metrics")])
        .output()
        .await
        .expect("curl is installed");
    out.status
        .success()
        .then(|| String::from_utf8(out.stdout).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_on_a_local_directory_and_serves_prometheus() {
    let port = monitor::free_port().unwrap();
    // Scrape while it runs, as a person would from another terminal: keep
    // the first body in which some worker leads and has renewed.
    let scraper = tokio::spawn(async move {
        loop {
            if let Some(body) = curl(port).await {
                let leads = body
                    .lines()
                    .any(|l| l.starts_with("coordinator_is_leader{") && l.ends_with(" 1"));
                if leads && body.contains("coordinator_renewal_margin_seconds") {
                    return body;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
    });
    let report = run(args(&["--metrics-port", &port.to_string()]))
        .await
        .unwrap();
    assert_eq!(report.metrics_port, Some(port));
    check_story(&report.lines);
    assert!(report.lines.iter().any(|l| l.contains("store: file://")));
    let body = tokio::time::timeout(std::time::Duration::from_secs(5), scraper)
        .await
        .expect("no scrape during the run showed a leader")
        .unwrap();

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
    for worker in ["w1", "w2", "w3"] {
        assert!(
            body.contains(&format!("namespace=\"shop\",worker_id=\"{worker}\"")),
            "{worker}"
        );
    }
    // The endpoint still answers after the run, with what it last saw.
    assert!(curl(port).await.is_some());
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
    // Its own namespace: the other test's exporter, if installed, sees
    // this run's series too (the `metrics` recorder is per process).
    let report = run(args(&[
        "--url",
        &url,
        "--namespace",
        "shop-s3",
        "--metrics-port",
        "0",
    ]))
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
    // docs/migration.md's per-plugin override parses, with the meaning it gives it.
    let migration =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/migration.md"))
            .unwrap();
    let start = migration.find("```toml\n").unwrap() + "```toml\n".len();
    let block = &migration[start..start + migration[start..].find("```").unwrap()];
    let parsed: super::settings::FileConfig = toml::from_str(block).unwrap();
    let mode = |name: &str| parsed.coordinator.mode_for(name);
    assert_eq!(
        mode("queue.orders"),
        coordinator_runtime::CoordinationMode::Global
    );
    assert_eq!(
        mode("ttl.sessions"),
        coordinator_runtime::CoordinationMode::PerPlugin
    );
    // Misspelt keys are refused, as the `coordinator` command refuses them.
    assert!(
        toml::from_str::<super::settings::FileConfig>("[plugins.queue]\nname = [\"x\"]").is_err()
    );
}
