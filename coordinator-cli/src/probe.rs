//! `coordinator probe URL`: what a store can do, each capability with the
//! evidence, and request latency.
//!
//! It opens the store as a worker would (`coordinator_store::open`: the
//! library's conditional-write probe, and on S3 the conditional-delete
//! probe), then checks each capability again on a scratch object under
//! `.coordinator-probe/` and deletes it, then times `--rounds` GETs and
//! compare-and-swaps of that object. A store that fails the library's probe
//! is reported with the library's message, which says what is wrong and
//! what to use instead (exit 1).

use std::time::Instant;

use bytes::Bytes;
use coordinator_store::{Conditional, LeaseStore, StoreError, PROBE_PREFIX};
use serde::Serialize;

use crate::cli::{Globals, ProbeArgs};
use crate::output::{self, now_unix_ms, Table};
use crate::{config, exit, redact, store, Failure};

/// One capability's finding.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Finding {
    pub(crate) capability: &'static str,
    /// `yes`, `no`, or `FAILED` for a required capability that failed.
    pub(crate) result: String,
    pub(crate) evidence: String,
}

/// Latency of one request kind over the rounds, in ms.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Latency {
    pub(crate) op: &'static str,
    pub(crate) rounds: usize,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) max_ms: f64,
}

/// Everything `probe` found.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) url: String,
    pub(crate) backend: &'static str,
    pub(crate) ok: bool,
    pub(crate) open_ms: f64,
    pub(crate) findings: Vec<Finding>,
    pub(crate) latency: Vec<Latency>,
    /// The store's clock minus this host's, from the written object's
    /// timestamp, if the store gives one. On S3 the timestamp has whole
    /// seconds, so the offset is low by up to 1 s.
    pub(crate) store_clock_offset_ms: Option<i64>,
    pub(crate) requests: u64,
}

fn ms(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn latency(op: &'static str, mut samples: Vec<f64>) -> Latency {
    samples.sort_by(f64::total_cmp);
    Latency {
        op,
        rounds: samples.len(),
        p50_ms: percentile(&samples, 0.5),
        p99_ms: percentile(&samples, 0.99),
        max_ms: samples.last().copied().unwrap_or(0.0),
    }
}

/// Runs the probe. `Err` only when the store cannot be opened at all.
pub(crate) async fn probe(url: &str, rounds: u32) -> Result<Report, Failure> {
    redact::url(url);
    let started = Instant::now();
    let opened = coordinator_store::open(url)
        .await
        .map_err(|e| store::store_failure(&e))?;
    let open_ms = ms(started.elapsed());
    let (store, counter) = store::metered(opened);
    let mut report = Report {
        url: redact::url(url),
        backend: store.backend(),
        ok: true,
        open_ms,
        findings: Vec::new(),
        latency: Vec::new(),
        store_clock_offset_ms: None,
        requests: 0,
    };
    let key = format!("{PROBE_PREFIX}/cli-{:016x}", coordinator_runtime::os_seed());
    let outcome = checks(store.as_ref(), &key, rounds, &mut report).await;
    // Whatever happened, leave nothing behind.
    let _ = store.delete(&key).await;
    if let Err(e) = outcome {
        report.ok = false;
        report.findings.push(Finding {
            capability: "store requests",
            result: "FAILED".into(),
            evidence: store::store_message(&e),
        });
    }
    report.requests = counter.snapshot().total();
    Ok(report)
}

async fn checks(
    store: &dyn LeaseStore,
    key: &str,
    rounds: u32,
    report: &mut Report,
) -> Result<(), StoreError> {
    let body = |step: &str| Bytes::from(format!("{{\"probe\":\"cli\",\"step\":\"{step}\"}}"));
    let host_before = now_unix_ms();
    let first = store.create(key, body("create")).await?;
    let host_after = now_unix_ms();
    if let Some(t) = first.store_time {
        report.store_clock_offset_ms = Some(t.0 - (host_before + host_after) / 2);
    }

    // create-if-absent
    let finding = match store.create(key, body("again")).await {
        Err(StoreError::AlreadyExists { .. }) => Finding {
            capability: "create-if-absent",
            result: "yes".into(),
            evidence: format!("a second create of `{key}` was refused (already exists)"),
        },
        Ok(_) => Finding {
            capability: "create-if-absent",
            result: "FAILED".into(),
            evidence: "a create over an existing object was accepted: this store overwrites \
                       conditional writes and cannot hold a lease"
                .into(),
        },
        Err(e) => return Err(e),
    };
    report.ok &= finding.result != "FAILED";
    report.findings.push(finding);

    // compare-and-swap
    let host_before = now_unix_ms();
    let second = store
        .compare_and_swap(key, &first.version, body("swap"))
        .await?;
    let host_after = now_unix_ms();
    let finding = match store
        .compare_and_swap(key, &first.version, body("stale"))
        .await
    {
        Err(StoreError::Conflict { .. }) => {
            let read = store.get(key).await?;
            let kept = read.as_ref().is_some_and(|o| o.body == body("swap"));
            // Where the write's answer had no timestamp (S3), the read's
            // Last-Modified (1 s granularity) gives the offset.
            if report.store_clock_offset_ms.is_none() {
                if let Some(t) = read.as_ref().and_then(|o| o.store_time) {
                    report.store_clock_offset_ms = Some(t.0 - (host_before + host_after) / 2);
                }
            }
            Finding {
                capability: "compare-and-swap",
                result: if kept { "yes" } else { "FAILED" }.into(),
                evidence: format!(
                    "a swap on version {} succeeded (new version {}), a swap on that stale \
                     version was refused (conflict){}",
                    first.version,
                    second.version,
                    if kept {
                        " and left the object unchanged"
                    } else {
                        ", yet the object changed"
                    }
                ),
            }
        }
        Ok(_) => Finding {
            capability: "compare-and-swap",
            result: "FAILED".into(),
            evidence: "a swap with a stale version was accepted: this store overwrites \
                       conditional writes and cannot hold a lease"
                .into(),
        },
        Err(e) => return Err(e),
    };
    report.ok &= finding.result != "FAILED";
    report.findings.push(finding);

    // conditional GET
    let caps = store.capabilities();
    let finding = match store.get_if_changed(key, &second.version).await? {
        Conditional::Unchanged => Finding {
            capability: "conditional GET",
            result: if caps.conditional_get { "yes" } else { "no" }.into(),
            evidence: if caps.conditional_get {
                "a read with the current version answered `unchanged` without a body \
                 (If-None-Match)"
                    .into()
            } else {
                "emulated: a full GET compared with the known version".into()
            },
        },
        other => Finding {
            capability: "conditional GET",
            result: "no".into(),
            evidence: format!("a read with the current version answered {other:?}"),
        },
    };
    report.findings.push(finding);

    // conditional delete
    let finding = if caps.conditional_delete {
        let wrong = store.delete_if_version(key, &first.version).await;
        let still = store.get(key).await?.is_some();
        match wrong {
            Err(StoreError::Conflict { .. }) if still => Finding {
                capability: "conditional delete",
                result: "yes".into(),
                evidence: "a delete naming a stale version was refused and left the object".into(),
            },
            other => Finding {
                capability: "conditional delete",
                result: "FAILED".into(),
                evidence: format!(
                    "a delete naming a stale version answered {:?} and the object is {}",
                    other.map_err(|e| e.to_string()),
                    if still { "still there" } else { "gone" }
                ),
            },
        }
    } else {
        Finding {
            capability: "conditional delete",
            result: "no".into(),
            evidence: "not offered (on S3: the server did not honour If-Match on DELETE when \
                       the store was opened); plugins write tombstones instead"
                .into(),
        }
    };
    report.findings.push(finding);

    // trusted clock
    report.findings.push(Finding {
        capability: "trusted clock",
        result: if caps.trusted_clock { "yes" } else { "no" }.into(),
        evidence: match (caps.trusted_clock, report.store_clock_offset_ms) {
            (true, Some(offset)) => format!(
                "AWS S3, GCS, Azure or trust_store_clock=true; store clock minus this host's: \
                 {offset} ms"
            ),
            (true, None) => "AWS S3, GCS, Azure or trust_store_clock=true".into(),
            (false, offset) => format!(
                "a starting worker waits a full lease timeout instead of judging a lease's age \
                 by the store's timestamps (only AWS S3, GCS and Azure themselves are trusted; \
                 trust_store_clock=true overrides){}",
                offset
                    .map(|o| format!("; store clock minus this host's: {o} ms"))
                    .unwrap_or_default()
            ),
        },
    });

    // latency
    let mut gets = Vec::new();
    let mut swaps = Vec::new();
    let mut version = second.version;
    for round in 0..rounds {
        let t = Instant::now();
        store.get(key).await?;
        gets.push(ms(t.elapsed()));
        let t = Instant::now();
        version = store
            .compare_and_swap(key, &version, body(&format!("round-{round}")))
            .await?
            .version;
        swaps.push(ms(t.elapsed()));
    }
    report.latency.push(latency("get", gets));
    report.latency.push(latency("compare_and_swap", swaps));
    Ok(())
}

/// `coordinator probe [URL]`.
pub(crate) async fn command(globals: &Globals, args: &ProbeArgs) -> Result<u8, Failure> {
    let url = match &args.target {
        Some(url) => url.clone(),
        None => config::load(globals)?.url()?.to_owned(),
    };
    let report = probe(&url, args.rounds).await?;
    if globals.json {
        output::json(&serde_json::to_value(&report).unwrap_or_default(), true);
    } else {
        print(&report);
    }
    Ok(if report.ok { exit::OK } else { exit::ERROR })
}

pub(crate) fn print(report: &Report) {
    output::line(&format!(
        "store {} ({} backend), opened and probed by the library in {} ms",
        report.url, report.backend, report.open_ms
    ));
    let mut t = Table::new();
    t.row(["CAPABILITY", "RESULT", "EVIDENCE"]);
    for f in &report.findings {
        t.row([
            f.capability.to_owned(),
            f.result.clone(),
            f.evidence.clone(),
        ]);
    }
    t.print();
    let mut l = Table::new();
    l.row(["LATENCY", "ROUNDS", "P50", "P99", "MAX"]);
    for x in &report.latency {
        l.row([
            x.op.to_owned(),
            x.rounds.to_string(),
            format!("{} ms", x.p50_ms),
            format!("{} ms", x.p99_ms),
            format!("{} ms", x.max_ms),
        ]);
    }
    output::line("");
    l.print();
    output::line("");
    output::line(&format!(
        "verdict: {} ({} requests after the library's own probe; the scratch object was deleted)",
        if report.ok {
            "usable for leader election"
        } else {
            "NOT usable for leader election"
        },
        report.requests
    ));
}
