//! The config file, the environment and the flags, through the real binary.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{coordinator, run};

#[test]
fn usage_errors_exit_2_and_help_lists_the_exit_codes() {
    let r = run(coordinator().arg("--no-such-flag"));
    assert_eq!(r.code, 2);
    let r = run(coordinator().arg("--help"));
    assert_eq!(r.code, 0);
    for code in [
        "0  success",
        "1  an error",
        "2  a usage error",
        "3  status: no live leader",
    ] {
        assert!(r.stdout.contains(code), "--help lists `{code}`");
    }
}

#[test]
fn precedence_is_default_file_env_flag_with_sources() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("coordinator.toml");
    std::fs::write(
        &file,
        "url = \"memory://\"\nnamespace = \"from-file\"\n\n[coordinator.election]\nheartbeat_interval = \"2s\"\nlease_timeout = \"20s\"\n",
    )
    .unwrap();
    let r = run(coordinator()
        .arg("--config")
        .arg(&file)
        .args(["--namespace", "from-flag", "--json", "config"])
        .env("COORDINATOR_ELECTION_LEASE_TIMEOUT", "30s"));
    assert_eq!(r.code, 0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let values = &v["values"];
    assert_eq!(values["namespace"]["value"], "from-flag");
    assert_eq!(values["namespace"]["source"], "flag --namespace");
    assert_eq!(values["coordinator.election.lease_timeout"]["value"], "30s");
    assert_eq!(
        values["coordinator.election.lease_timeout"]["source"],
        "env COORDINATOR_ELECTION_LEASE_TIMEOUT"
    );
    assert_eq!(
        values["coordinator.election.heartbeat_interval"]["value"],
        "2s"
    );
    assert!(values["coordinator.election.heartbeat_interval"]["source"]
        .as_str()
        .unwrap()
        .ends_with("coordinator.toml:5"));
    assert_eq!(
        values["coordinator.election.renew_deadline"]["source"],
        "default"
    );
}

#[test]
fn invalid_values_name_the_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("coordinator.toml");
    // Breaks lease_timeout / renew_deadline > (1+ρ)/(1−ρ).
    std::fs::write(
        &file,
        "url = \"memory://\"\n[coordinator.election]\n\nlease_timeout = \"5s\"\n",
    )
    .unwrap();
    let r = run(coordinator().arg("--config").arg(&file).arg("config"));
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("coordinator.toml:4"), "{}", r.stderr);
    assert!(
        r.stderr.contains("coordinator.election.lease_timeout"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("raise lease_timeout"),
        "the library's hint: {}",
        r.stderr
    );

    // A misspelt field: toml's span gives the line and column.
    std::fs::write(&file, "[coordinator.election]\nlease_timout = \"5s\"\n").unwrap();
    let r = run(coordinator().arg("--config").arg(&file).arg("config"));
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("coordinator.toml:2:1"), "{}", r.stderr);
    assert!(r.stderr.contains("lease_timout"), "{}", r.stderr);

    // Not TOML at all.
    std::fs::write(&file, "url = \n").unwrap();
    let r = run(coordinator().arg("--config").arg(&file).arg("config"));
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("coordinator.toml:1"), "{}", r.stderr);

    // A bad environment value names the variable.
    let r = run(coordinator()
        .args(["config"])
        .env("COORDINATOR_ELECTION_HEARTBEAT_INTERVAL", "often"));
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("COORDINATOR_ELECTION_HEARTBEAT_INTERVAL"),
        "{}",
        r.stderr
    );

    // A bad plugin setting names its path.
    std::fs::write(&file, "[plugins.queue.config]\nconcurrency = 0\n").unwrap();
    let r = run(coordinator().arg("--config").arg(&file).arg("config"));
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("coordinator.toml:2: `plugins.queue.config.concurrency`"),
        "{}",
        r.stderr
    );
}

#[test]
fn unreadable_config_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    let r = run(coordinator().arg("--config").arg(&missing).arg("config"));
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("cannot read the config file"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("missing.toml"), "{}", r.stderr);
    // Named by the environment instead.
    let r = run(coordinator()
        .arg("config")
        .env("COORDINATOR_CONFIG", &missing));
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("missing.toml"), "{}", r.stderr);
}

#[test]
fn worker_id_source_and_url_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        "url = \"s3://user:sup3rs3cret@bucket/p\"\nworker_id_env = \"MY_POD\"\n",
    )
    .unwrap();
    let r = run(coordinator()
        .arg("--config")
        .arg(&file)
        .arg("config")
        .env("MY_POD", "pod-7"));
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("pod-7"), "{}", r.stdout);
    assert!(
        r.stdout.contains("env MY_POD (worker_id_env)"),
        "{}",
        r.stdout
    );
    assert!(
        !r.all().contains("sup3rs3cret"),
        "the password is never printed"
    );
}

/// Plugin names contain dots: `coordinator.plugin_modes` is one value,
/// shown with its source, and `COORDINATOR_PLUGIN_MODES` sets it whole.
#[test]
fn plugin_modes_from_the_file_and_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("coordinator.toml");
    std::fs::write(
        &file,
        "url = \"memory://\"\nnamespace = \"shop\"\n\n[coordinator]\nmode = \"per_plugin\"\n\n[coordinator.plugin_modes]\n\"queue.orders\" = \"global\"\n",
    )
    .unwrap();
    let r = run(coordinator().arg("--config").arg(&file).arg("config"));
    assert_eq!(r.code, 0);
    let row = r
        .stdout
        .lines()
        .find(|l| l.starts_with("coordinator.plugin_modes"))
        .unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[1], "queue.orders=global", "{row}");
    assert!(cells[2..].join(" ").contains("coordinator.toml:7"), "{row}");
    assert_eq!(cells.last().unwrap(), &"COORDINATOR_PLUGIN_MODES", "{row}");
    assert!(!r.stdout.contains("QUEUE_ORDERS"), "{}", r.stdout);

    let r = run(coordinator()
        .arg("--config")
        .arg(&file)
        .args(["--json", "config"])
        .env(
            "COORDINATOR_PLUGIN_MODES",
            "queue.orders=per_plugin, ttl.sessions=global",
        ));
    assert_eq!(r.code, 0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let modes = &v["values"]["coordinator.plugin_modes"];
    assert_eq!(
        modes["value"],
        serde_json::json!({"queue.orders": "per_plugin", "ttl.sessions": "global"})
    );
    assert_eq!(modes["source"], "env COORDINATOR_PLUGIN_MODES");

    for (value, error) in [
        ("queue.orders", "`queue.orders` is not `name=value`"),
        ("queue.orders=global,queue.orders=per_plugin", "given twice"),
        ("queue.orders=sometimes", "COORDINATOR_PLUGIN_MODES"),
    ] {
        let r = run(coordinator()
            .arg("--config")
            .arg(&file)
            .arg("config")
            .env("COORDINATOR_PLUGIN_MODES", value));
        assert_eq!(r.code, 1, "{value}");
        assert!(r.stderr.contains(error), "{value}: {}", r.stderr);
    }
}
