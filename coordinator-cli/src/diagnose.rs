//! `coordinator diagnose`: one bundle for a bug report.
//!
//! Versions, the environment that matters (credential values masked), the
//! resolved config with the source of every value and its validation, a
//! store probe (scratch objects under `.coordinator-probe/`, deleted;
//! `--no-probe` skips it and then nothing is written), `status`, this host's
//! clock facts, and the changes seen during a short `watch`. A failing
//! section is reported in the bundle and the others still run: the bundle
//! is most useful when something is broken. Secrets never appear: the URL
//! is shown redacted and every line passes through [`crate::redact`].

use std::time::Duration;

use serde_json::{json, Value};

use crate::cli::{DiagnoseArgs, Globals};
use crate::output::{self, now_unix_ms, utc, Table};
use crate::{config, exit, probe, redact, status, store, watch, Failure};

/// Environment variables worth showing (by prefix or name).
const ENV_SHOWN: &[&str] = &[
    "COORDINATOR_",
    "AWS_",
    "AZURE_",
    "GOOGLE_",
    "POD_NAME",
    "HOSTNAME",
    "RUST_LOG",
];

fn environment() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::env::vars()
        .filter(|(name, _)| ENV_SHOWN.iter().any(|p| name.starts_with(p)))
        .map(|(name, value)| {
            let shown = if redact::is_secret_name(&name) {
                format!("{} (set, {} bytes)", redact::MASK, value.len())
            } else if value.contains("://") {
                redact::url(&value)
            } else {
                value
            };
            (name, shown)
        })
        .collect();
    out.sort();
    out
}

/// `coordinator diagnose`.
pub(crate) async fn command(globals: &Globals, args: &DiagnoseArgs) -> Result<u8, Failure> {
    let mut bundle = serde_json::Map::new();
    bundle.insert(
        "versions".into(),
        json!({
            "coordinator-cli": env!("CARGO_PKG_VERSION"),
            "record_format": coordinator_core::FORMAT,
            "os": std::env::consts::OS,
            "arch": std::env::consts::ARCH,
        }),
    );
    bundle.insert(
        "environment".into(),
        Value::Object(
            environment()
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        ),
    );
    let now = now_unix_ms();
    let mut clock = json!({
        "host_wall_clock": utc(now),
        "host_wall_clock_unix_ms": now,
        "boot_time_clock": coordinator_runtime::SystemClock::counts_suspend(),
        "boot_time_clock_note": if coordinator_runtime::SystemClock::counts_suspend() {
            "the leader's deadline is measured on CLOCK_BOOTTIME, which counts suspend"
        } else {
            "no clock that counts suspend here: avoid suspending a leader"
        },
    });

    let resolved = match config::load(globals) {
        Ok(resolved) => resolved,
        Err(failure) => {
            bundle.insert(
                "config".into(),
                json!({ "valid": false, "error": redact::text(&failure.message) }),
            );
            bundle.insert("clock".into(), clock);
            emit(globals.json, &Value::Object(bundle));
            return Ok(exit::ERROR);
        }
    };
    let rows = config::rows(&resolved)?;
    bundle.insert(
        "config".into(),
        json!({
            "file": resolved.path.as_ref().map(|p| p.display().to_string()),
            "valid": true,
            "values": rows
                .iter()
                .map(|(path, value, source)| (path.clone(), json!({ "value": value, "source": source })))
                .collect::<serde_json::Map<_, _>>(),
        }),
    );
    let url = match resolved.url() {
        Ok(url) => url.to_owned(),
        Err(failure) => {
            bundle.insert("store".into(), json!({ "error": failure.message }));
            bundle.insert("clock".into(), clock);
            emit(globals.json, &Value::Object(bundle));
            return Ok(exit::ERROR);
        }
    };
    let mut code = exit::OK;

    if args.no_probe {
        bundle.insert("probe".into(), json!({ "skipped": "--no-probe" }));
    } else {
        match probe::probe(&url, args.rounds).await {
            Ok(report) => {
                if let Some(offset) = report.store_clock_offset_ms {
                    clock["store_minus_host_ms"] = json!(offset);
                }
                if !report.ok {
                    code = exit::ERROR;
                }
                bundle.insert(
                    "probe".into(),
                    serde_json::to_value(&report).unwrap_or_default(),
                );
            }
            Err(failure) => {
                code = exit::ERROR;
                bundle.insert("probe".into(), json!({ "error": failure.message }));
            }
        }
    }

    let namespace = status::namespace(&resolved);
    match (&namespace, store::open_read_only(&url).await) {
        (Ok(namespace), Ok((store, counter))) => {
            let election = &resolved.config.coordinator.election;
            match status::collect(store.as_ref(), namespace, election, false).await {
                Ok(mut snapshot) => {
                    let counts = counter.snapshot();
                    snapshot.requests.total = counts.total();
                    snapshot.requests.counts = counts;
                    bundle.insert(
                        "status".into(),
                        serde_json::to_value(&snapshot).unwrap_or_default(),
                    );
                }
                Err(e) => {
                    code = exit::ERROR;
                    bundle.insert(
                        "status".into(),
                        json!({ "error": store::store_message(&e) }),
                    );
                }
            }
            let mut changes = Vec::new();
            let interval = election.heartbeat_interval.min(Duration::from_secs(1));
            let followed = watch::follow(
                store.as_ref(),
                namespace,
                election,
                interval,
                Some(args.watch),
                &mut |change| changes.push(change),
            )
            .await;
            if let Err(e) = followed {
                code = exit::ERROR;
                changes.push(watch::Change::error(store::store_message(&e)));
            }
            bundle.insert(
                "watch".into(),
                json!({
                    "duration_ms": args.watch.as_millis() as u64,
                    "interval_ms": interval.as_millis() as u64,
                    "changes": changes,
                }),
            );
        }
        (Err(failure), _) => {
            code = exit::ERROR;
            bundle.insert("status".into(), json!({ "error": failure.message }));
        }
        (_, Err(failure)) => {
            code = exit::ERROR;
            bundle.insert("status".into(), json!({ "error": failure.message }));
        }
    }
    bundle.insert("clock".into(), clock);
    emit(globals.json, &Value::Object(bundle));
    Ok(code)
}

/// Prints the bundle: JSON as it is, or one section per heading.
fn emit(json: bool, bundle: &Value) {
    if json {
        output::json(bundle, true);
        return;
    }
    output::line("# coordinator diagnose");
    output::line("");
    let sections = [
        "versions",
        "environment",
        "config",
        "store",
        "probe",
        "status",
        "clock",
        "watch",
    ];
    for section in sections {
        let Some(value) = bundle.get(section) else {
            continue;
        };
        output::line(&format!("## {section}"));
        let mut t = Table::new();
        match section {
            "config" => {
                if let Some(values) = value.get("values").and_then(Value::as_object) {
                    t.row(["KEY", "VALUE", "SOURCE"]);
                    for (k, v) in values {
                        t.row([k.clone(), scalar(&v["value"]), scalar(&v["source"])]);
                    }
                    output::line(&format!("file: {}, valid: yes", scalar(&value["file"])));
                } else {
                    t.row(["error".to_owned(), scalar(&value["error"])]);
                }
            }
            "watch" => {
                for change in value["changes"].as_array().into_iter().flatten() {
                    t.row([
                        scalar(&change["at"]),
                        scalar(&change["event"]),
                        scalar(&change["message"]),
                    ]);
                }
                output::line(&format!(
                    "{} ms, polling every {} ms",
                    scalar(&value["duration_ms"]),
                    scalar(&value["interval_ms"])
                ));
            }
            _ => flatten(&mut t, "", value),
        }
        t.print();
        output::line("");
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn flatten(t: &mut Table, prefix: &str, value: &Value) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(t, &path, v);
            }
        }
        Value::Array(items) if items.iter().any(|i| i.is_object()) => {
            for (i, item) in items.iter().enumerate() {
                flatten(t, &format!("{prefix}[{i}]"), item);
            }
        }
        other => t.row([prefix.to_owned(), scalar(other)]),
    }
}
