//! `coordinator watch`: follow a namespace read-only, one line per change.
//!
//! Each poll is a conditional GET of `state.json` and a LIST of `workers/`
//! (one per 1,000 workers): 2 requests for up to 1,000 workers, at the
//! `--interval` (default: the configured heartbeat interval). Ages are
//! judged as the workers judge them, by observer time: how long this
//! process has seen a version unchanged on its own monotonic clock, never
//! by comparing clocks.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use coordinator_core::{decode, Config, Keys, LeaseRecord, Namespace, RecordError};
use coordinator_store::{Conditional, LeaseStore, LeaseStoreExt, RequestKind, StoreError, Version};
use serde::Serialize;

use crate::cli::{Globals, WatchArgs};
use crate::output::{self, now_unix_ms, utc};
use crate::{config, exit, store, Failure};

/// One change seen.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Change {
    pub(crate) at: String,
    pub(crate) at_unix_ms: i64,
    /// `leader`, `released`, `vacant`, `no_lease`, `unusable_lease`, `late`,
    /// `joined`, `left` (its heartbeat removed while fresh: a graceful
    /// stop), `timed_out`, `removed` (its heartbeat removed after it timed
    /// out), `error`.
    pub(crate) event: &'static str,
    pub(crate) worker: Option<String>,
    pub(crate) epoch: Option<u64>,
    pub(crate) message: String,
}

impl Change {
    fn new(
        event: &'static str,
        worker: Option<String>,
        epoch: Option<u64>,
        message: String,
    ) -> Self {
        let now = now_unix_ms();
        Self {
            at: utc(now),
            at_unix_ms: now,
            event,
            worker,
            epoch,
            message,
        }
    }

    /// A store error that ended a follow.
    pub(crate) fn error(message: String) -> Self {
        Self::new("error", None, None, message)
    }

    pub(crate) fn line(&self) -> String {
        format!("{}  {:<10} {}", self.at, self.event, self.message)
    }
}

/// What a poll costs and what an hour of polls costs at S3 Standard.
pub(crate) fn cost_line(interval: Duration) -> String {
    let polls = 3600.0 / interval.as_secs_f64().max(0.001);
    let usd = polls * (RequestKind::Get.s3_standard_usd() + RequestKind::List.s3_standard_usd());
    format!(
        "2 requests per poll (a conditional GET of the lease, a LIST of the heartbeats per \
         1,000 workers) every {}: {:.0} requests an hour, ${usd:.4} an hour at S3 Standard prices",
        output::age(interval.as_millis() as i64),
        polls * 2.0
    )
}

/// What the follower remembers between polls.
#[derive(Default)]
struct Seen {
    version: Option<Version>,
    since: Option<Instant>,
    lease: Option<LeaseRecord>,
    lease_state: Option<&'static str>,
    late_reported: bool,
    /// Worker → (version, first seen at, timed out reported).
    workers: BTreeMap<String, (Version, Instant, bool)>,
}

/// Polls until `duration` (if any) has passed, handing each change to
/// `sink`. Passing store errors (unavailable, throttled) are reported as
/// changes and polled again; a misconfigured store (a missing bucket,
/// refused credentials) ends the follow with the error.
pub(crate) async fn follow(
    store: &dyn LeaseStore,
    namespace: &Namespace,
    election: &Config,
    interval: Duration,
    duration: Option<Duration>,
    sink: &mut dyn FnMut(Change),
) -> Result<(), StoreError> {
    let keys = Keys::global(namespace);
    let lease_key = keys.lease();
    let start = Instant::now();
    let mut seen = Seen::default();
    let mut last_error: Option<String> = None;
    loop {
        match poll(
            store, &keys, &lease_key, election, interval, &mut seen, sink,
        )
        .await
        {
            Ok(()) => last_error = None,
            Err(e @ StoreError::Misconfigured { .. }) => return Err(e),
            Err(e) => {
                let message = store::store_message(&e);
                if last_error.as_ref() != Some(&message) {
                    sink(Change::new("error", None, None, message.clone()));
                    last_error = Some(message);
                }
            }
        }
        let next = Instant::now() + interval;
        if let Some(d) = duration {
            if next >= start + d {
                let left = (start + d).saturating_duration_since(Instant::now());
                tokio::time::sleep(left).await;
                return Ok(());
            }
        }
        tokio::time::sleep(interval).await;
    }
}

async fn poll(
    store: &dyn LeaseStore,
    keys: &Keys,
    lease_key: &str,
    election: &Config,
    interval: Duration,
    seen: &mut Seen,
    sink: &mut dyn FnMut(Change),
) -> Result<(), StoreError> {
    let answer = match &seen.version {
        Some(v) => store.get_if_changed(lease_key, v).await?,
        None => match store.get(lease_key).await? {
            Some(o) => Conditional::Changed(o),
            None => Conditional::Absent,
        },
    };
    let now = Instant::now();
    match answer {
        Conditional::Unchanged => {
            if let (Some(lease), Some(since)) = (&seen.lease, seen.since) {
                let unchanged = now.duration_since(since);
                let deadline = Duration::from_millis(lease.renew_deadline_ms);
                if lease.leader.is_some()
                    && !lease.released
                    && unchanged > deadline
                    && !seen.late_reported
                {
                    seen.late_reported = true;
                    let leader = lease.leader.as_ref().map(|l| l.worker_id.to_string());
                    sink(Change::new(
                        "late",
                        leader.clone(),
                        Some(lease.epoch),
                        format!(
                            "{} has not renewed for {} (past its renew deadline {}): no live leader",
                            leader.unwrap_or_default(),
                            output::age(unchanged.as_millis() as i64),
                            output::age(deadline.as_millis() as i64)
                        ),
                    ));
                }
            }
        }
        Conditional::Absent => {
            if seen.lease_state != Some("absent") {
                sink(Change::new(
                    "no_lease",
                    None,
                    None,
                    "no lease: nobody leads".into(),
                ));
            }
            seen.lease_state = Some("absent");
            seen.version = None;
            seen.lease = None;
            seen.since = None;
        }
        Conditional::Changed(object) => {
            seen.version = Some(object.version.clone());
            seen.since = Some(now);
            seen.late_reported = false;
            match decode::<LeaseRecord>(lease_key, &object.body) {
                Ok(lease) => {
                    let before = seen.lease.take();
                    let who = |l: &LeaseRecord| {
                        (!l.released)
                            .then(|| l.leader.as_ref().map(|i| i.worker_id.to_string()))
                            .flatten()
                    };
                    let now_leader = who(&lease);
                    let changed = before.as_ref().is_none_or(|b| {
                        who(b) != now_leader
                            || b.epoch != lease.epoch
                            || b.released != lease.released
                    });
                    if changed {
                        let was = before
                            .as_ref()
                            .map(|b| {
                                format!(
                                    " (was {} at epoch {})",
                                    who(b).unwrap_or_else(|| "none".into()),
                                    b.epoch
                                )
                            })
                            .unwrap_or_default();
                        if let Some(leader) = &now_leader {
                            sink(Change::new(
                                "leader",
                                Some(leader.clone()),
                                Some(lease.epoch),
                                format!("{leader} leads at epoch {}{was}", lease.epoch),
                            ));
                        } else if !lease.released {
                            sink(Change::new(
                                "vacant",
                                None,
                                Some(lease.epoch),
                                format!(
                                    "lease vacant at epoch {} (written in place of a missing \
                                     lease; its last holder is unknown): no leader until a worker \
                                     has seen it unchanged for the longest takeover wait on \
                                     record, {}{was}",
                                    lease.epoch,
                                    output::age(lease.lease_timeout_ms as i64)
                                ),
                            ));
                        } else {
                            sink(Change::new(
                                "released",
                                None,
                                Some(lease.epoch),
                                format!("lease released at epoch {}: no leader{was}", lease.epoch),
                            ));
                        }
                    }
                    seen.lease_state = Some("ok");
                    seen.lease = Some(lease);
                }
                Err(e) => {
                    let state = match e {
                        RecordError::Foreign { .. } => "foreign",
                        RecordError::NewerFormat { .. } => "newer",
                        _ => "corrupt",
                    };
                    if seen.lease_state != Some(state) {
                        sink(Change::new("unusable_lease", None, None, e.to_string()));
                    }
                    seen.lease_state = Some(state);
                    seen.lease = None;
                }
            }
        }
    }

    let listed = store.list(&keys.workers_prefix()).await?;
    let now = Instant::now();
    let leader = seen
        .lease
        .as_ref()
        .filter(|l| !l.released)
        .and_then(|l| l.leader.as_ref())
        .map(|i| i.worker_id.to_string());
    let mut present = BTreeMap::new();
    for meta in listed {
        if let Some(id) = keys.worker_of_key(&meta.key) {
            present.insert(id.to_string(), meta.version);
        }
    }
    for (id, version) in &present {
        match seen.workers.get_mut(id) {
            None => {
                sink(Change::new(
                    "joined",
                    Some(id.clone()),
                    None,
                    format!("worker {id} joined"),
                ));
                seen.workers
                    .insert(id.clone(), (version.clone(), now, false));
            }
            Some(entry) => {
                if &entry.0 != version {
                    *entry = (version.clone(), now, false);
                } else if !entry.2
                    && leader.as_deref() != Some(id.as_str())
                    && now.duration_since(entry.1) > election.worker_timeout
                {
                    entry.2 = true;
                    sink(Change::new(
                        "timed_out",
                        Some(id.clone()),
                        None,
                        format!(
                            "worker {id} timed out: heartbeat unchanged for {} (worker timeout {})",
                            output::age(now.duration_since(entry.1).as_millis() as i64),
                            output::age(election.worker_timeout.as_millis() as i64)
                        ),
                    ));
                }
            }
        }
    }
    let gone: Vec<String> = seen
        .workers
        .keys()
        .filter(|id| !present.contains_key(*id))
        .cloned()
        .collect();
    for id in gone {
        let Some((_, since, reported)) = seen.workers.remove(&id) else {
            continue;
        };
        let unchanged = now.duration_since(since);
        // A live worker rewrites its heartbeat every membership interval
        // (plus jitter); one that stood longer than that, and a poll, before
        // it vanished had stopped beating: the leader removed it after its
        // worker timeout (on the leader's clock, which started watching
        // before this process may have), not a graceful stop.
        let overdue = election.membership_interval + election.heartbeat_jitter + interval;
        if reported || unchanged > overdue {
            sink(Change::new(
                "removed",
                Some(id.clone()),
                None,
                format!(
                    "worker {id} removed after it timed out: its heartbeat stood unchanged for {} \
                     (rewritten every {} by a live worker; worker timeout {}) before its object \
                     was removed",
                    output::age(unchanged.as_millis() as i64),
                    output::age(election.membership_interval.as_millis() as i64),
                    output::age(election.worker_timeout.as_millis() as i64)
                ),
            ));
        } else {
            sink(Change::new(
                "left",
                Some(id.clone()),
                None,
                format!("worker {id} left (heartbeat object removed)"),
            ));
        }
    }
    Ok(())
}

/// `coordinator watch`.
pub(crate) async fn command(globals: &Globals, args: &WatchArgs) -> Result<u8, Failure> {
    let resolved = config::load(globals)?;
    let url = resolved.url()?.to_owned();
    let namespace = crate::status::namespace(&resolved)?;
    let election = resolved.config.coordinator.election.clone();
    let interval = args.interval.unwrap_or(election.heartbeat_interval);
    if interval.is_zero() {
        return Err(Failure::usage("--interval must be greater than zero"));
    }
    let (store, counter) = store::open_read_only(&url).await?;
    let cost = cost_line(interval);
    if globals.json {
        output::json(
            &serde_json::json!({
                "event": "start",
                "namespace": namespace.to_string(),
                "interval_ms": interval.as_millis() as u64,
                "cost": cost,
            }),
            false,
        );
    } else {
        output::line(&format!("watching {namespace}: {cost}"));
    }
    let json = globals.json;
    let mut sink = |change: Change| {
        if json {
            output::json(&serde_json::to_value(&change).unwrap_or_default(), false);
        } else {
            output::line(&change.line());
        }
    };
    let watching = follow(
        store.as_ref(),
        &namespace,
        &election,
        interval,
        args.duration,
        &mut sink,
    );
    let outcome = tokio::select! {
        outcome = watching => outcome,
        _ = tokio::signal::ctrl_c() => Ok(()),
    };
    outcome.map_err(|e| store::store_failure(&e))?;
    let total = counter.snapshot().total();
    if json {
        output::json(
            &serde_json::json!({ "event": "end", "requests": total }),
            false,
        );
    } else {
        output::line(&format!("requests: {total}"));
    }
    Ok(exit::OK)
}
