//! `coordinator run`: refusals and the plugins from the config file.
#![cfg(unix)]
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::worker::{Stderr, Worker};
use common::{coordinator, file_url, files, run, Run};

/// How long a worker of these tests may take to lead.
const LEADS_WITHIN: Duration = Duration::from_secs(15);

/// Runs `coordinator run --fast` as worker `w1` of namespace `demo` on
/// `url` to its end (a refusal, in these tests).
fn run_demo_w1(url: &str) -> Run {
    run(coordinator().args([
        "--url",
        url,
        "--namespace",
        "demo",
        "run",
        "--worker-id",
        "w1",
        "--fast",
    ]))
}

/// Writes `DIR/coordinator.toml` for namespace `shop` on the store
/// `DIR/data` (created), followed by `tables`; returns both paths.
fn shop_config(dir: &Path, tables: &str) -> (PathBuf, PathBuf) {
    let config = dir.join("coordinator.toml");
    let data = dir.join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(
        &config,
        format!(
            "url = \"{}\"\nnamespace = \"shop\"\n\n{tables}",
            file_url(&data)
        ),
    )
    .unwrap();
    (config, data)
}

/// Starts `coordinator --config CONFIG run --plugins --fast` as worker `p1`.
fn plugins_worker(config: &Path, stderr: Stderr) -> Worker {
    Worker::spawn(
        coordinator().arg("--config").arg(config).args([
            "run",
            "--plugins",
            "--fast",
            "--worker-id",
            "p1",
        ]),
        stderr,
    )
}

/// Every file under `dir` with its bytes.
fn contents(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    files(dir)
        .into_iter()
        .map(|f| {
            let bytes = std::fs::read(dir.join(&f)).unwrap();
            (f, bytes)
        })
        .collect()
}

const FOREIGN: &[u8] = br#"{"leader":"old-system-7","expiresAt":1700000000000}"#;

#[test]
fn a_foreign_lease_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let lease = dir.path().join("plg_coordinator_global/demo/state.json");
    std::fs::create_dir_all(lease.parent().unwrap()).unwrap();
    std::fs::write(&lease, FOREIGN).unwrap();
    let before = contents(dir.path());
    let r = run_demo_w1(&file_url(dir.path()));
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("another implementation"), "{}", r.stderr);
    assert!(r.stderr.contains("nothing written"), "{}", r.stderr);
    assert_eq!(contents(dir.path()), before, "nothing written");
}

/// The same on S3 (moto): every object and body as before, listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_lease_on_s3_is_refused_and_left_alone() {
    use coordinator_store::LeaseStoreExt;
    let Some(endpoint) = common::s3_endpoint("a_foreign_lease_on_s3_is_refused_and_left_alone")
    else {
        return;
    };
    let url = format!(
        "s3://{}/{}?endpoint={endpoint}",
        common::s3_bucket(),
        common::unique("foreign")
    );
    let store = coordinator_store::open_read_only(&url).await.unwrap();
    // The other implementation's lease, written before the snapshot.
    let writer = coordinator_store::open(&url).await.unwrap();
    writer
        .create("plg_coordinator_global/demo/state.json", FOREIGN.into())
        .await
        .unwrap();
    let snapshot = || async {
        let mut out = Vec::new();
        for meta in store.list("").await.unwrap() {
            let object = store.get(&meta.key).await.unwrap().unwrap();
            out.push((meta.key, object.body.to_vec(), object.version));
        }
        out
    };
    let before = snapshot().await;
    assert!(before
        .iter()
        .any(|(k, _, _)| k == "plg_coordinator_global/demo/state.json"));
    let url2 = url.clone();
    let r = tokio::task::spawn_blocking(move || run_demo_w1(&url2))
        .await
        .unwrap();
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("another implementation"), "{}", r.stderr);
    assert_eq!(snapshot().await, before, "nothing written");
}

#[test]
fn plugins_from_the_config_file_run_where_the_worker_leads() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _data) = shop_config(
        dir.path(),
        "[plugins.queue]\nnames = [\"orders\"]\n\n[plugins.ttl]\nnames = [\"sessions\"]\n",
    );
    let p1 = plugins_worker(&config, Stderr::Inherit);
    // p1 leads shop.
    p1.until("is_leader=true", LEADS_WITHIN);
    // Let the plugins' leader hooks run once.
    std::thread::sleep(Duration::from_millis(500));
    let rest = p1.stop().stdout;
    assert!(rest.iter().any(|l| l.starts_with("STOPPED worker=p1")));
    let r = run(coordinator().arg("--config").arg(&config).arg("status"));
    assert_eq!(r.code, 3, "released on SIGTERM");
}

fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn metrics_and_healthz_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    // A directory that does not exist yet: the worker creates it.
    let store_dir = dir.path().join("new").join("store");
    let m1 = Worker::spawn(
        coordinator().args([
            "--url",
            &file_url(&store_dir),
            "--namespace",
            "demo",
            "run",
            "--fast",
            "--worker-id",
            "m1",
            "--metrics-addr",
            "127.0.0.1:0",
        ]),
        Stderr::Inherit,
    );
    let addr = m1
        .until("is_leader=true", LEADS_WITHIN)
        .iter()
        .find_map(|l| l.strip_prefix("METRICS http://"))
        .and_then(|rest| rest.split('/').next())
        .map(str::to_owned)
        .expect("the METRICS line");
    // A few renewals (every 200 ms with --fast).
    std::thread::sleep(Duration::from_millis(800));
    let metrics = http_get(&addr, "/metrics");
    println!("{metrics}");
    assert!(metrics.starts_with("HTTP/1.1 200 OK"));
    assert!(metrics.contains("text/plain; version=0.0.4"));
    assert!(
        metrics.contains(r#"coordinator_is_leader{namespace="demo",worker_id="m1",plugin=""} 1"#)
    );
    assert!(metrics.contains(
        r#"coordinator_acquisitions_total{namespace="demo",worker_id="m1",plugin=""} 1"#
    ));
    assert!(metrics.contains(
        r#"coordinator_health{namespace="demo",worker_id="m1",plugin="",status="healthy"} 1"#
    ));
    assert!(metrics.contains("# TYPE coordinator_store_requests_total counter"));
    assert!(metrics.contains("# TYPE coordinator_renewal_margin_seconds histogram"));
    assert!(metrics.contains(
        r#"coordinator_store_request_seconds_bucket{namespace="demo",worker_id="m1",plugin="",le="+Inf"}"#
    ));
    let renewals = metrics
        .lines()
        .find(|l| l.starts_with("coordinator_renewal_margin_seconds_count{"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap();
    assert!(renewals >= 1, "renewal margins recorded");
    let health = http_get(&addr, "/healthz");
    println!("{health}");
    assert!(health.starts_with("HTTP/1.1 200 OK"));
    assert!(health.contains(r#""status":"healthy""#));
    assert!(http_get(&addr, "/nope").starts_with("HTTP/1.1 404"));
    assert!(store_dir.is_dir());
    drop(m1);
}

/// This test process's CLOCK_MONOTONIC, in nanoseconds.
#[cfg(target_os = "linux")]
fn monotonic_ns() -> u64 {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(target_os = "linux")]
#[test]
fn events_json_lines_carry_the_machines_monotonic_clock() {
    let dir = tempfile::tempdir().unwrap();
    let started = monotonic_ns();
    let j1 = Worker::spawn(
        coordinator()
            .args(["--url", &file_url(dir.path()), "--namespace", "demo"])
            .args(["run", "--worker-id", "j1", "--fast", "--events-json"]),
        Stderr::Inherit,
    );
    let next = || -> serde_json::Value {
        let line = j1.next_line(LEADS_WITHIN);
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"))
    };
    let ready = next();
    assert_eq!(ready["event"], "ready");
    assert_eq!(ready["worker"], "j1");
    assert_eq!(ready["namespace"], "demo");
    let mut last = ready["mono_ns"].as_u64().expect("mono_ns on Linux");
    // Another process's stamp, on the same clock as this one's.
    assert!(
        last >= started,
        "ready at {last}, before the launch at {started}"
    );
    let deadline = Instant::now() + LEADS_WITHIN;
    loop {
        assert!(Instant::now() < deadline, "j1 never led");
        let view = next();
        assert_eq!(view["event"], "view", "{view}");
        assert_eq!(view["namespace"], "demo");
        let at = view["mono_ns"].as_u64().unwrap();
        assert!(at >= last, "mono_ns went back: {last} then {at}");
        last = at;
        if view["is_leader"] == true {
            assert_eq!(view["leader"], "j1");
            assert!(view["epoch"].as_u64().unwrap() >= 1);
            break;
        }
    }
    j1.signal("TERM");
    let stopping = next();
    assert_eq!(stopping["event"], "stopping", "{stopping}");
    let stopped = next();
    assert_eq!(stopped["event"], "stopped", "{stopped}");
    assert!(stopped["mono_ns"].as_u64().unwrap() >= stopping["mono_ns"].as_u64().unwrap());
    assert!(j1.wait().status.success());
    assert!(stopped["mono_ns"].as_u64().unwrap() <= monotonic_ns());
}

/// `mode` and `[coordinator.plugin_modes]` apply to `run --plugins`: the
/// per-plugin queue gets its own election (its lease under
/// `plg_coordinator_plugin/queue.orders/shop/`), the TTL expirer canaried
/// on the shared election gets none.
#[test]
fn run_plugins_follow_their_coordination_mode() {
    let dir = tempfile::tempdir().unwrap();
    let (config, data) = shop_config(
        dir.path(),
        "[coordinator]\nmode = \"per_plugin\"\n\n[coordinator.plugin_modes]\n\"ttl.sessions\" = \"global\"\n\n[plugins.queue]\nnames = [\"orders\"]\n\n[plugins.ttl]\nnames = [\"sessions\"]\n",
    );
    let p1 = plugins_worker(&config, Stderr::Inherit);
    let own = data.join("plg_coordinator_plugin/queue.orders/shop/state.json");
    let deadline = Instant::now() + LEADS_WITHIN;
    let mut held = false;
    while Instant::now() < deadline {
        if let Ok(body) = std::fs::read_to_string(&own) {
            let lease: serde_json::Value = serde_json::from_str(&body).unwrap();
            println!("{lease}");
            if lease.to_string().contains("\"p1\"") {
                held = true;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        held,
        "queue.orders leads under its own election: {}",
        own.display()
    );
    assert!(
        !data.join("plg_coordinator_plugin/ttl.sessions").exists(),
        "ttl.sessions runs under the shared election: {:?}",
        files(&data)
    );
    assert!(data.join("plg_coordinator_global/shop/state.json").exists());
    p1.stop();
}

/// Runs a worker until it leads, stops it with SIGTERM and returns its
/// stderr.
fn stderr_of_a_worker(log: Option<&str>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut command = coordinator();
    command
        .args(["--url", &file_url(dir.path()), "--namespace", "demo"])
        .args(["run", "--fast", "--worker-id", "l1"])
        .env_remove("RUST_LOG");
    if let Some(log) = log {
        command.env("COORDINATOR_LOG", log);
    }
    let l1 = Worker::spawn(&mut command, Stderr::Capture);
    l1.until("is_leader=true", LEADS_WITHIN);
    l1.stop().stderr
}

#[test]
fn coordinator_log_shows_the_runtimes_log_lines_on_stderr() {
    let info = stderr_of_a_worker(Some("info"));
    assert!(
        info.lines()
            .any(|l| l.contains("INFO")
                && l.contains("coordinator_runtime::election: lease acquired")),
        "{info}"
    );
    // The default is `warn`: a healthy worker's stderr stays empty.
    let quiet = stderr_of_a_worker(None);
    assert!(!quiet.contains("coordinator_runtime"), "{quiet}");
    // A bad filter is reported, and the worker still runs.
    let bad = stderr_of_a_worker(Some("coordinator_runtime=loud"));
    assert!(
        bad.contains("COORDINATOR_LOG=coordinator_runtime=loud: not a log filter"),
        "{bad}"
    );
}

/// `run --plugins` cannot register job handlers, so it does not attach a
/// scheduler (a CLI worker leading it would run no job): it says so on
/// stderr at start, and the scheduler gets no election of its own.
#[test]
fn run_plugins_does_not_attach_schedulers_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let (config, data) = shop_config(
        dir.path(),
        "[coordinator]\nmode = \"per_plugin\"\n\n[plugins.queue]\nnames = [\"orders\"]\n\n[plugins.scheduler]\nnames = [\"cron\"]\n",
    );
    let p1 = plugins_worker(&config, Stderr::Capture);
    let queue = data.join("plg_coordinator_plugin/queue.orders/shop/state.json");
    let deadline = Instant::now() + LEADS_WITHIN;
    while !queue.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(queue.exists(), "the queue is attached: {:?}", files(&data));
    // Past a few polls: had it been attached, the scheduler's own election
    // would have written its lease by now, as the queue's did.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !data.join("plg_coordinator_plugin/scheduler.cron").exists(),
        "{:?}",
        files(&data)
    );
    let stderr = p1.stop().stderr;
    assert!(
        stderr.contains(
            "coordinator: run --plugins: scheduler `cron` not attached: its job handlers are \
             application code this command cannot register"
        ),
        "{stderr}"
    );
}
