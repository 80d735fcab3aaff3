//! `coordinator status`: who leads a namespace, read without joining it.
//!
//! Read-only by construction (the store is `coordinator_store::open_read_only`'s).
//! Its requests, for `W` heartbeat objects and `P` per-plugin elections:
//!
//! | request | count |
//! | --- | --- |
//! | GET `state.json`, `metadata.json`, `roster.json`, the election marker | 4 |
//! | LIST `workers/` | ⌈W / 1000⌉ (at least 1) |
//! | LIST the namespace's `.elections/` markers | 1 |
//! | GET each per-plugin election's `state.json` | P |
//! | with `--heartbeats`: GET each heartbeat object | W |
//!
//! so 6 requests for a global namespace of up to 1,000 workers. The count
//! made is printed at the end, with the bound.
//!
//! For the queues, schedulers and TTL expirers the config file names
//! (`[plugins.queue] names`, …), it also shows their data through the
//! plugins' public read APIs: per queue ([`Queue::stats`]) 3 LISTs
//! (messages, claims, dead letters), a GET of its counters and a GET per
//! claim; per scheduler ([`Scheduler::job_states`]: each job's next run
//! and last outcome) a LIST of its jobs, a GET per job, and per job a LIST
//! of its runs and a GET of the newest; per TTL expirer ([`Ttl::backlog`])
//! a LIST of its index per 1,000 entries. They are counted apart from the
//! bound, as plugin reads.
//!
//! [`Queue::stats`]: coordinator_plugins::queue::Queue::stats
//! [`Scheduler::job_states`]: coordinator_plugins::scheduler::Scheduler::job_states
//! [`Ttl::backlog`]: coordinator_plugins::ttl::Ttl::backlog

use std::collections::BTreeSet;
use std::time::Duration;

use coordinator_core::{
    decode, Config, HeartbeatRecord, Keys, LeaseRecord, MetadataRecord, Namespace, RecordError,
    RenewalLag, RenewalRule, RosterRecord, DATA_PREFIX,
};
use coordinator_store::{
    LeaseStore, LeaseStoreExt, RequestCounts, StoreError, StoredObject, LIST_PAGE_SIZE,
};
use serde::Serialize;

use crate::cli::{Globals, StatusArgs};
use crate::output::{self, age, now_unix_ms, utc, Table};
use crate::{config, exit, store, Failure};

/// What one record looked like.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RecordState {
    /// Not there.
    Absent,
    /// Decoded (format given).
    Ok,
    /// Not JSON or missing fields.
    Corrupt,
    /// No `format`: another implementation's.
    Foreign,
    /// A newer format than this version reads.
    NewerFormat,
}

/// One record's key, state and format.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct RecordInfo {
    pub(crate) key: String,
    pub(crate) state: RecordState,
    /// The `format` field, where there is one.
    pub(crate) format: Option<u64>,
    /// The store's timestamp of this version (ms since the Unix epoch).
    pub(crate) store_time_unix_ms: Option<i64>,
    /// The version (ETag, digest).
    pub(crate) version: Option<String>,
    /// Why it could not be decoded.
    pub(crate) problem: Option<String>,
}

/// The lease as status shows it.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct LeaseView {
    pub(crate) leader: Option<String>,
    pub(crate) incarnation: Option<String>,
    pub(crate) epoch: u64,
    pub(crate) reserved_epoch: u64,
    pub(crate) released: bool,
    pub(crate) renewals: u64,
    /// The holder's recorded timings.
    pub(crate) lease_timeout_ms: u64,
    pub(crate) renew_deadline_ms: u64,
    pub(crate) drift_tolerance: f64,
    pub(crate) successors: Vec<String>,
    pub(crate) roster_size: usize,
    pub(crate) acquired_at_unix_ms: u64,
    pub(crate) written_at_unix_ms: u64,
    /// Age of this version against the newest store timestamp seen in
    /// this status (a lower bound of the store's "now"): store clock only.
    pub(crate) age_store_clock_ms: Option<i64>,
    /// This host's clock now minus the store's timestamp of this version.
    pub(crate) age_host_clock_ms: Option<i64>,
    /// This host's clock now minus the writer's recorded write time.
    pub(crate) since_written_writer_clock_ms: i64,
}

/// One heartbeat object.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct WorkerView {
    pub(crate) worker_id: String,
    pub(crate) role: &'static str,
    pub(crate) in_roster: bool,
    pub(crate) store_time_unix_ms: Option<i64>,
    pub(crate) age_store_clock_ms: Option<i64>,
    pub(crate) age_host_clock_ms: Option<i64>,
    /// Whether its heartbeat is older than the configured worker timeout
    /// (by the larger of the two ages): the leader will time it out. For
    /// the leader, its lease's age (its renewals are its heartbeat).
    pub(crate) past_worker_timeout: bool,
    /// With `--heartbeats`: its record.
    pub(crate) heartbeat: Option<HeartbeatView>,
}

/// A heartbeat record's fields (`--heartbeats`).
#[derive(Clone, Debug, Serialize)]
pub(crate) struct HeartbeatView {
    pub(crate) state: RecordState,
    pub(crate) incarnation: Option<String>,
    pub(crate) sequence: u64,
    pub(crate) epoch_seen: u64,
    pub(crate) takeover_wait_ms: u64,
    pub(crate) started_at_unix_ms: u64,
}

/// A per-plugin election of the namespace.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct ElectionView {
    /// `global` or `plugin.<name>`.
    pub(crate) election: String,
    /// The mark of its marker object, from the listing (not read).
    pub(crate) marker_key: String,
    /// For a per-plugin election: its lease's state, leader and epoch.
    pub(crate) lease: Option<RecordInfo>,
    pub(crate) leader: Option<String>,
    pub(crate) epoch: Option<u64>,
    pub(crate) released: Option<bool>,
}

/// The one-line verdict and the exit status it maps to.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Verdict {
    /// `healthy`, `degraded` (late renewal, a held per-plugin lease),
    /// `no_leader`, `unusable_records`.
    pub(crate) status: &'static str,
    pub(crate) message: String,
    pub(crate) exit_code: u8,
}

/// Everything `status` found.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Snapshot {
    pub(crate) namespace: String,
    pub(crate) backend: &'static str,
    pub(crate) store_clock_trusted: bool,
    pub(crate) taken_at_unix_ms: i64,
    pub(crate) verdict: Verdict,
    pub(crate) lease: Option<LeaseView>,
    pub(crate) epoch_high_water: Option<u64>,
    pub(crate) longest_takeover_wait_ms: Option<u64>,
    pub(crate) marker_epoch: Option<u64>,
    pub(crate) roster: Option<Vec<String>>,
    pub(crate) roster_revision: Option<u64>,
    pub(crate) workers: Vec<WorkerView>,
    pub(crate) elections: Vec<ElectionView>,
    /// Every record read: key, state, format.
    pub(crate) records: Vec<RecordInfo>,
    /// The configured timings status judged by (worker timeout, heartbeat).
    pub(crate) judged_by: JudgedBy,
    /// The plugin data of the queues and schedulers the config names.
    pub(crate) plugins: Vec<PluginData>,
    pub(crate) requests: RequestsMade,
}

/// One plugin instance's data (queues, schedulers named in the config).
#[derive(Clone, Debug, Serialize)]
pub(crate) struct PluginData {
    pub(crate) kind: &'static str,
    pub(crate) name: String,
    /// Queue: `QueueStats` (pending, delayed, in_flight, finishing,
    /// completed, failed, dead). Scheduler: its jobs with the last run.
    pub(crate) data: serde_json::Value,
    /// A one-line summary for the table.
    pub(crate) summary: String,
    pub(crate) error: Option<String>,
}

/// The timings the verdict uses besides the lease's own.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct JudgedBy {
    pub(crate) heartbeat_interval_ms: u64,
    pub(crate) heartbeat_jitter_ms: u64,
    pub(crate) worker_timeout_ms: u64,
    /// One renewal request's time, added to both renewal thresholds.
    pub(crate) request_timeout_ms: u64,
}

/// The requests status made, and the documented bound.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct RequestsMade {
    pub(crate) counts: RequestCounts,
    pub(crate) total: u64,
    /// The bound of the election records' requests (module docs).
    pub(crate) bound: u64,
    /// Requests made for the configured plugins' data (module docs).
    pub(crate) plugin_reads: u64,
}

fn info(key: &str, object: Option<&StoredObject>) -> RecordInfo {
    let mut info = RecordInfo {
        key: key.to_owned(),
        state: RecordState::Absent,
        format: None,
        store_time_unix_ms: None,
        version: None,
        problem: None,
    };
    if let Some(object) = object {
        info.state = RecordState::Ok;
        info.store_time_unix_ms = object.store_time.map(|t| t.0);
        info.version = Some(object.version.to_string());
        info.format = serde_json::from_slice::<serde_json::Value>(&object.body)
            .ok()
            .and_then(|v| v.get("format").and_then(serde_json::Value::as_u64));
    }
    info
}

fn mark(info: &mut RecordInfo, error: &RecordError) {
    info.state = match error {
        RecordError::Foreign { .. } => RecordState::Foreign,
        RecordError::NewerFormat { .. } => RecordState::NewerFormat,
        _ => RecordState::Corrupt,
    };
    info.problem = Some(error.to_string());
}

fn decoded<T: serde::de::DeserializeOwned>(
    key: &str,
    object: Option<&StoredObject>,
    records: &mut Vec<RecordInfo>,
) -> Option<T> {
    let mut record = info(key, object);
    let out = object.and_then(|o| match decode::<T>(key, &o.body) {
        Ok(value) => Some(value),
        Err(e) => {
            mark(&mut record, &e);
            None
        }
    });
    records.push(record);
    out
}

/// Reads the namespace (see the module docs for the requests).
pub(crate) async fn collect(
    store: &dyn LeaseStore,
    namespace: &Namespace,
    election: &Config,
    read_heartbeats: bool,
) -> Result<Snapshot, StoreError> {
    let keys = Keys::global(namespace);
    let now = now_unix_ms();
    let mut records = Vec::new();

    let lease_key = keys.lease();
    let lease_object = store.get(&lease_key).await?;
    let metadata_key = keys.metadata();
    let metadata_object = store.get(&metadata_key).await?;
    let roster_key = keys.roster();
    let roster_object = store.get(&roster_key).await?;
    let marker_key = keys.election_marker().to_owned();
    let marker_object = store.get(&marker_key).await?;
    let listed = store.list(&keys.workers_prefix()).await?;
    let elections_prefix = format!("{DATA_PREFIX}/{namespace}/.elections/");
    let marker_list = store.list(&elections_prefix).await?;

    let lease: Option<LeaseRecord> = decoded(&lease_key, lease_object.as_ref(), &mut records);
    let metadata: Option<MetadataRecord> =
        decoded(&metadata_key, metadata_object.as_ref(), &mut records);
    let roster: Option<RosterRecord> = decoded(&roster_key, roster_object.as_ref(), &mut records);
    let marker: Option<MetadataRecord> = decoded(&marker_key, marker_object.as_ref(), &mut records);

    // The newest store timestamp seen: a lower bound of the store's now.
    let store_now = [
        &lease_object,
        &metadata_object,
        &roster_object,
        &marker_object,
    ]
    .iter()
    .filter_map(|o| o.as_ref().and_then(|o| o.store_time).map(|t| t.0))
    .chain(listed.iter().filter_map(|m| m.store_time.map(|t| t.0)))
    .max();
    let age_store = |t: Option<i64>| match (store_now, t) {
        (Some(now), Some(t)) => Some(now - t),
        _ => None,
    };
    let age_host = |t: Option<i64>| t.map(|t| now - t);

    let lease_time = lease_object
        .as_ref()
        .and_then(|o| o.store_time)
        .map(|t| t.0);
    let lease_view = lease.as_ref().map(|l| LeaseView {
        leader: l.leader.as_ref().map(|i| i.worker_id.to_string()),
        incarnation: l.leader.as_ref().map(|i| i.incarnation.to_string()),
        epoch: l.epoch,
        reserved_epoch: l.reserved_epoch,
        released: l.released,
        renewals: l.renewals,
        lease_timeout_ms: l.lease_timeout_ms,
        renew_deadline_ms: l.renew_deadline_ms,
        drift_tolerance: l.drift_tolerance,
        successors: l.successors.iter().map(ToString::to_string).collect(),
        roster_size: l.roster_size,
        acquired_at_unix_ms: l.acquired_at_unix_ms,
        written_at_unix_ms: l.written_at_unix_ms,
        age_store_clock_ms: age_store(lease_time),
        age_host_clock_ms: age_host(lease_time),
        since_written_writer_clock_ms: now - l.written_at_unix_ms as i64,
    });
    let leader_id = lease_view
        .as_ref()
        .filter(|l| !l.released)
        .and_then(|l| l.leader.clone());
    let roster_ids: BTreeSet<String> = roster
        .as_ref()
        .map(|r| r.workers.iter().map(ToString::to_string).collect())
        .unwrap_or_default();

    let timeout_ms = election.worker_timeout.as_millis() as i64;
    let mut workers = Vec::new();
    for meta in &listed {
        let Some(id) = keys.worker_of_key(&meta.key) else {
            continue;
        };
        let id = id.to_string();
        let t = meta.store_time.map(|t| t.0);
        let (a_store, a_host) = (age_store(t), age_host(t));
        let heartbeat = if read_heartbeats {
            let object = store.get(&meta.key).await?;
            let mut scratch = Vec::new();
            let record: Option<HeartbeatRecord> = decoded(&meta.key, object.as_ref(), &mut scratch);
            let state = scratch.pop().map_or(RecordState::Absent, |r| r.state);
            Some(HeartbeatView {
                state,
                incarnation: record.as_ref().map(|r| r.incarnation.to_string()),
                sequence: record.as_ref().map_or(0, |r| r.sequence),
                epoch_seen: record.as_ref().map_or(0, |r| r.epoch_seen),
                takeover_wait_ms: record.as_ref().map_or(0, |r| r.takeover_wait_ms),
                started_at_unix_ms: record.as_ref().map_or(0, |r| r.started_at_unix_ms),
            })
        } else {
            None
        };
        // The leader's renewals prove it alive (it rewrites its heartbeat
        // object less often), so its lease's age is what counts for it.
        let is_leader = leader_id.as_deref() == Some(id.as_str());
        let worst = if is_leader {
            lease_view.as_ref().and_then(|l| {
                l.age_store_clock_ms
                    .into_iter()
                    .chain(l.age_host_clock_ms)
                    .max()
            })
        } else {
            a_store.into_iter().chain(a_host).max()
        };
        workers.push(WorkerView {
            role: if is_leader {
                "leader"
            } else if lease_view
                .as_ref()
                .is_some_and(|l| l.successors.first() == Some(&id))
            {
                "successor"
            } else {
                "follower"
            },
            in_roster: roster_ids.contains(&id),
            store_time_unix_ms: t,
            age_store_clock_ms: a_store,
            age_host_clock_ms: a_host,
            past_worker_timeout: worst.is_some_and(|a| a > timeout_ms),
            heartbeat,
            worker_id: id,
        });
    }

    let mut elections = Vec::new();
    for meta in &marker_list {
        let Some(name) = meta
            .key
            .strip_prefix(&elections_prefix)
            .and_then(|rest| rest.strip_suffix(".json"))
        else {
            continue;
        };
        let mut view = ElectionView {
            election: name.to_owned(),
            marker_key: meta.key.clone(),
            lease: None,
            leader: None,
            epoch: None,
            released: None,
        };
        if let Some(plugin) = name.strip_prefix("plugin.") {
            if let Ok(plugin) = Namespace::new(plugin) {
                let key = Keys::per_plugin(&plugin, namespace).lease();
                let object = store.get(&key).await?;
                let mut one = Vec::new();
                let record: Option<LeaseRecord> = decoded(&key, object.as_ref(), &mut one);
                if let Some(r) = &record {
                    view.leader = r.leader.as_ref().map(|i| i.worker_id.to_string());
                    view.epoch = Some(r.epoch);
                    view.released = Some(r.released);
                }
                view.lease = one.pop();
            }
        }
        elections.push(view);
    }

    let per_plugin = elections.iter().filter(|e| e.lease.is_some()).count() as u64;
    let pages = |n: usize| (n.div_ceil(LIST_PAGE_SIZE)).max(1) as u64;
    let bound = 4
        + pages(listed.len())
        + pages(marker_list.len())
        + per_plugin
        + if read_heartbeats {
            listed.len() as u64
        } else {
            0
        };

    let mut snapshot = Snapshot {
        namespace: namespace.to_string(),
        backend: store.backend(),
        store_clock_trusted: store.capabilities().trusted_clock,
        taken_at_unix_ms: now,
        verdict: Verdict {
            status: "healthy",
            message: String::new(),
            exit_code: exit::OK,
        },
        lease: lease_view,
        epoch_high_water: metadata.as_ref().map(|m| m.epoch_high_water).or_else(|| {
            metadata_object
                .as_ref()
                .and_then(|o| MetadataRecord::high_water_of_any_format(&o.body))
        }),
        longest_takeover_wait_ms: metadata.as_ref().map(|m| m.longest_takeover_wait_ms),
        marker_epoch: marker.as_ref().map(|m| m.epoch_high_water),
        roster: roster
            .as_ref()
            .map(|r| r.workers.iter().map(ToString::to_string).collect()),
        roster_revision: roster.as_ref().map(|r| r.revision),
        workers,
        elections,
        records,
        plugins: Vec::new(),
        judged_by: JudgedBy {
            heartbeat_interval_ms: election.heartbeat_interval.as_millis() as u64,
            heartbeat_jitter_ms: election.heartbeat_jitter.as_millis() as u64,
            worker_timeout_ms: election.worker_timeout.as_millis() as u64,
            request_timeout_ms: election.request_timeout.as_millis() as u64,
        },
        requests: RequestsMade {
            counts: RequestCounts::default(),
            total: 0,
            bound,
            plugin_reads: 0,
        },
    };
    snapshot.verdict = verdict(&snapshot);
    Ok(snapshot)
}

/// The one-line verdict; the rules are client-go's health check's: a
/// leader that has not renewed within its renew deadline is not a leader.
pub(crate) fn verdict(s: &Snapshot) -> Verdict {
    let unusable: Vec<&RecordInfo> = s
        .records
        .iter()
        .chain(s.elections.iter().filter_map(|e| e.lease.as_ref()))
        .filter(|r| matches!(r.state, RecordState::Foreign | RecordState::NewerFormat))
        .collect();
    if let Some(first) = unusable.first() {
        let what = match first.state {
            RecordState::Foreign => {
                "written by another implementation (no `format` field); workers of this version \
                 refuse to write here"
            }
            _ => {
                "of a newer format than this version reads; workers of this version follow it and \
                 replace it once it stood unchanged for recovery_wait"
            }
        };
        return Verdict {
            status: "unusable_records",
            message: format!(
                "foreign or newer-format records: `{}` is {what} ({} such record{})",
                first.key,
                unusable.len(),
                if unusable.len() == 1 { "" } else { "s" }
            ),
            exit_code: exit::UNUSABLE_RECORDS,
        };
    }
    let no_leader = |message: String| Verdict {
        status: "no_leader",
        message,
        exit_code: exit::NO_LEADER,
    };
    let lease_record = s.records.first();
    let Some(lease) = &s.lease else {
        return no_leader(match lease_record.map(|r| &r.state) {
            Some(RecordState::Corrupt) => {
                "no leader: the lease is corrupt (workers replace it after recovery_wait)".into()
            }
            _ if s.workers.is_empty() && s.epoch_high_water.is_none() => {
                "no leader: the namespace is unused (no lease, no workers)".into()
            }
            _ => "no leader: no lease".into(),
        });
    };
    let Some(leader) = lease.leader.as_ref().filter(|_| !lease.released) else {
        if !lease.released {
            // Vacant: written in place of a missing lease; its last holder
            // is unknown, so workers owe it the wait its writer recorded.
            return no_leader(format!(
                "no leader: the lease is vacant at epoch {} (written in place of a missing lease; \
                 its last holder is unknown); a worker takes it once it has stood unchanged for \
                 the longest takeover wait on record, {}",
                lease.epoch,
                output::age(lease.lease_timeout_ms as i64)
            ));
        }
        return no_leader(format!(
            "no leader: the lease was released at epoch {}; the next worker takes it within a poll",
            lease.epoch
        ));
    };
    // The larger of the two ages: the store clock's is a lower bound, this
    // host's may be skewed. Judged by the one rule for late renewals
    // (`RenewalRule`, which `Coordinator::health` applies too): the
    // configured renewal interval, the holder's recorded renew deadline,
    // and a tolerance of one request's time plus, with timestamps in whole
    // seconds (S3's Last-Modified, Azure's), the second a version can look
    // older than it is.
    let age = lease
        .age_store_clock_ms
        .into_iter()
        .chain(lease.age_host_clock_ms)
        .max()
        .unwrap_or(lease.since_written_writer_clock_ms);
    let whole_seconds = s
        .records
        .iter()
        .filter_map(|r| r.store_time_unix_ms)
        .chain(s.workers.iter().filter_map(|w| w.store_time_unix_ms))
        .all(|t| t % 1000 == 0);
    let granularity_ms = if whole_seconds { 999 } else { 0 };
    let ms = Duration::from_millis;
    let rule = RenewalRule {
        interval: ms(s.judged_by.heartbeat_interval_ms + s.judged_by.heartbeat_jitter_ms),
        renew_deadline: ms(lease.renew_deadline_ms),
        tolerance: ms(s.judged_by.request_timeout_ms + granularity_ms),
    };
    let shown = |d: Duration| output::age(d.as_millis() as i64);
    let mut notes = Vec::new();
    let mut status = "healthy";
    match rule.judge(ms(age.max(0) as u64)) {
        RenewalLag::PastDeadline { .. } => {
            return no_leader(format!(
                "no live leader: {leader} has not renewed for {} (past its renew deadline {} \
                 plus {} of tolerance); a follower takes over after {}",
                output::age(age),
                output::age(lease.renew_deadline_ms as i64),
                shown(rule.tolerance),
                output::age(lease.lease_timeout_ms as i64)
            ));
        }
        RenewalLag::Late { .. } => {
            status = "degraded";
            notes.push(format!(
                "leader late to renew: last renewal {} ago, expected every {} at most (plus {} \
                 of tolerance)",
                output::age(age),
                shown(rule.interval),
                shown(rule.tolerance)
            ));
        }
        RenewalLag::OnTime => {}
    }
    // A per-plugin election counts while its lease is held (a leader, not
    // released), whatever its age: a plugin still led there, or a killed
    // leader's lease a roll-back would wait out. A released or vacant one,
    // or a marker alone (markers are never deleted), is a finished
    // migration.
    let plugins: Vec<String> = s
        .elections
        .iter()
        .filter(|e| e.election.starts_with("plugin."))
        .filter_map(|e| {
            let leader = e.leader.as_ref().filter(|_| e.released == Some(false))?;
            Some(format!("{} led by {leader}", e.election))
        })
        .collect();
    if !plugins.is_empty() {
        status = if status == "healthy" {
            "degraded"
        } else {
            status
        };
        notes.push(format!(
            "per-plugin elections held ({}): a migration in progress or a leftover",
            plugins.join(", ")
        ));
    }
    let late_workers = s.workers.iter().filter(|w| w.past_worker_timeout).count();
    if late_workers > 0 {
        notes.push(format!(
            "{late_workers} worker{} past the worker timeout",
            if late_workers == 1 { "" } else { "s" }
        ));
    }
    let head = format!("{leader} leads at epoch {}", lease.epoch);
    Verdict {
        status,
        message: if notes.is_empty() {
            format!("healthy: {head}")
        } else {
            format!("{status}: {head}; {}", notes.join("; "))
        },
        exit_code: exit::OK,
    }
}

/// Reads the data of the queues and schedulers `config` names, through a
/// registry over the read-only `store` that never starts a coordinator.
pub(crate) async fn plugin_data(
    store: std::sync::Arc<dyn LeaseStore>,
    namespace: &Namespace,
    config: &config::PluginsConfig,
) -> Vec<PluginData> {
    use coordinator_plugins::queue::Queue;
    use coordinator_plugins::scheduler::Scheduler;
    let mut out = Vec::new();
    if config.queue.names.is_empty()
        && config.scheduler.names.is_empty()
        && config.ttl.names.is_empty()
    {
        return out;
    }
    let registry = match coordinator_runtime::CoordinatorRegistry::new(
        store,
        coordinator_runtime::CoordinatorConfig::default().with_worker_id("coordinator-status"),
    ) {
        Ok(registry) => registry,
        Err(e) => {
            out.push(PluginData {
                kind: "plugins",
                name: String::new(),
                data: serde_json::Value::Null,
                summary: String::new(),
                error: Some(e.to_string()),
            });
            return out;
        }
    };
    let ns = namespace.to_string();
    for name in &config.queue.names {
        let stats = match Queue::builder(&registry, ns.as_str(), name.as_str())
            .config(config.queue.config.clone())
            .build()
        {
            Ok(queue) => queue.stats().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        out.push(match stats {
            Ok(stats) => PluginData {
                kind: "queue",
                name: name.clone(),
                summary: format!(
                    "depth {} (+{} delayed), in flight {}, dead letters {}, completed {}, failed {}",
                    stats.pending, stats.delayed, stats.in_flight, stats.dead, stats.completed,
                    stats.failed
                ),
                data: serde_json::to_value(stats).unwrap_or_default(),
                error: None,
            },
            Err(error) => PluginData {
                kind: "queue",
                name: name.clone(),
                data: serde_json::Value::Null,
                summary: String::new(),
                error: Some(error),
            },
        });
    }
    for name in &config.ttl.names {
        out.push(ttl_backlog(&registry, namespace, name, &config.ttl.config).await);
    }
    for name in &config.scheduler.names {
        let scheduler = match Scheduler::builder(&registry, ns.as_str(), name.as_str())
            .config(config.scheduler.config.clone())
            .build()
        {
            Ok(scheduler) => scheduler,
            Err(e) => {
                out.push(PluginData {
                    kind: "scheduler",
                    name: name.clone(),
                    data: serde_json::Value::Null,
                    summary: String::new(),
                    error: Some(e.to_string()),
                });
                continue;
            }
        };
        let now = now_unix_ms();
        let result: Result<Vec<serde_json::Value>, String> = scheduler
            .job_states()
            .await
            .map(|states| {
                states
                    .into_iter()
                    .map(|job| {
                        serde_json::json!({
                            "job": job.spec.name,
                            "schedule": job.spec.schedule,
                            "time_zone": job.spec.time_zone,
                            "enabled": job.enabled,
                            "next_run_unix_ms": job.next_run_unix_ms,
                            "next_run": job.next_run_unix_ms.map(|t| {
                                let t = t as i64;
                                format!("{} (in {})", utc(t), age(t - now))
                            }),
                            "last_run": job.last_run,
                        })
                    })
                    .collect()
            })
            .map_err(|e| e.to_string());
        out.push(match result {
            Ok(jobs) => PluginData {
                kind: "scheduler",
                name: name.clone(),
                summary: if jobs.is_empty() {
                    "no jobs".into()
                } else {
                    jobs.iter()
                        .map(|j| {
                            let outcome = j["last_run"]["outcome"]
                                .as_object()
                                .and_then(|o| o.keys().next().cloned())
                                .or_else(|| j["last_run"]["outcome"].as_str().map(str::to_owned))
                                .unwrap_or_else(|| "never run".into());
                            format!(
                                "{} `{}`{} next: {}, last: {outcome}",
                                j["job"].as_str().unwrap_or(""),
                                j["schedule"].as_str().unwrap_or(""),
                                if j["enabled"] == true {
                                    ""
                                } else {
                                    " (disabled)"
                                },
                                j["next_run"].as_str().unwrap_or("none")
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("; ")
                },
                data: serde_json::Value::Array(jobs),
                error: None,
            },
            Err(error) => PluginData {
                kind: "scheduler",
                name: name.clone(),
                data: serde_json::Value::Null,
                summary: String::new(),
                error: Some(error),
            },
        });
    }
    out
}

/// A TTL expirer's backlog ([`Ttl::backlog`](coordinator_plugins::ttl::Ttl::backlog):
/// one LIST of its index, one per 1,000 entries): index entries, those in
/// overdue buckets, and the oldest overdue bucket. Entries the sweeper
/// will find stale (refreshed or removed records) count until it deletes
/// them.
async fn ttl_backlog(
    registry: &coordinator_runtime::CoordinatorRegistry,
    namespace: &Namespace,
    name: &str,
    config: &coordinator_plugins::ttl::TtlConfig,
) -> PluginData {
    let backlog = match coordinator_plugins::ttl::Ttl::builder(registry, namespace.as_str(), name)
        .config(config.clone())
        .build()
    {
        Ok(ttl) => ttl.backlog().await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let backlog = match backlog {
        Ok(backlog) => backlog,
        Err(error) => {
            return PluginData {
                kind: "ttl",
                name: name.to_owned(),
                data: serde_json::Value::Null,
                summary: String::new(),
                error: Some(error),
            }
        }
    };
    let now = now_unix_ms();
    PluginData {
        kind: "ttl",
        name: name.to_owned(),
        summary: format!(
            "{} index entries, {} overdue{}",
            backlog.index_entries,
            backlog.overdue,
            backlog
                .oldest_overdue_bucket_unix_ms
                .map(|o| {
                    let o = o as i64;
                    format!(", oldest overdue bucket {} ({} ago)", utc(o), age(now - o))
                })
                .unwrap_or_default()
        ),
        data: serde_json::to_value(backlog).unwrap_or_default(),
        error: None,
    }
}

/// `coordinator status`.
pub(crate) async fn command(globals: &Globals, args: &StatusArgs) -> Result<u8, Failure> {
    let resolved = config::load(globals)?;
    let url = resolved.url()?.to_owned();
    let namespace = namespace(&resolved)?;
    let (store, counter) = store::open_read_only(&url).await?;
    let mut snapshot = collect(
        store.as_ref(),
        &namespace,
        &resolved.config.coordinator.election,
        args.heartbeats,
    )
    .await
    .map_err(|e| store::store_failure(&e))?;
    let before = counter.snapshot().total();
    snapshot.plugins = plugin_data(store.clone(), &namespace, &resolved.config.plugins).await;
    // The plugin reads depend on the data (claims, jobs; see the module
    // docs): counted apart from the election's bound.
    snapshot.requests.plugin_reads = counter.snapshot().total() - before;
    let counts = counter.snapshot();
    snapshot.requests.total = counts.total();
    snapshot.requests.counts = counts;
    if globals.json {
        output::json(&serde_json::to_value(&snapshot).unwrap_or_default(), true);
    } else {
        print(&snapshot);
    }
    Ok(snapshot.verdict.exit_code)
}

pub(crate) fn namespace(resolved: &config::Resolved) -> Result<Namespace, Failure> {
    let name = resolved.namespace()?;
    Namespace::new(name.as_str()).map_err(|e| Failure::usage(format!("--namespace: {e}")))
}

fn opt_age(ms: Option<i64>) -> String {
    ms.map_or_else(|| "-".into(), age)
}

/// The human form: an aligned table of facts, one of workers, the count.
pub(crate) fn print(s: &Snapshot) {
    let mut t = Table::new();
    t.row([
        "namespace".to_owned(),
        format!(
            "{} ({} store, store clock {})",
            s.namespace,
            s.backend,
            if s.store_clock_trusted {
                "trusted"
            } else {
                "not trusted"
            }
        ),
    ]);
    t.row(["verdict".to_owned(), s.verdict.message.clone()]);
    match &s.lease {
        None => {
            let state = s
                .records
                .first()
                .map_or(RecordState::Absent, |r| r.state.clone());
            t.row(["lease".to_owned(), format!("{state:?}").to_lowercase()]);
        }
        Some(l) => {
            t.row([
                "leader".to_owned(),
                match (&l.leader, &l.incarnation) {
                    (Some(id), Some(inc)) => format!("{id} (incarnation {inc})"),
                    _ => "none".into(),
                },
            ]);
            t.row([
                "epoch".to_owned(),
                format!("{} (reserved {})", l.epoch, l.reserved_epoch),
            ]);
            t.row([
                "released".to_owned(),
                if l.released { "yes" } else { "no" }.to_owned(),
            ]);
            t.row([
                "lease age".to_owned(),
                format!(
                    "{} by this host's clock, >= {} by the store's clock alone, {} since the \
                     writer's own timestamp ({} renewal{})",
                    opt_age(l.age_host_clock_ms),
                    opt_age(l.age_store_clock_ms),
                    age(l.since_written_writer_clock_ms),
                    l.renewals,
                    if l.renewals == 1 { "" } else { "s" }
                ),
            ]);
            t.row([
                "leader timings".to_owned(),
                format!(
                    "lease_timeout {}, renew_deadline {}, drift_tolerance {}",
                    age(l.lease_timeout_ms as i64),
                    age(l.renew_deadline_ms as i64),
                    l.drift_tolerance
                ),
            ]);
            t.row([
                "acquired".to_owned(),
                format!("{} (writer's clock)", utc(l.acquired_at_unix_ms as i64)),
            ]);
            t.row([
                "successors".to_owned(),
                if l.successors.is_empty() {
                    "-".to_owned()
                } else {
                    l.successors.join(", ")
                },
            ]);
        }
    }
    t.row([
        "epoch high-water".to_owned(),
        format!(
            "{} (metadata.json), marker {}, longest takeover wait {}",
            s.epoch_high_water.map_or("-".into(), |e| e.to_string()),
            s.marker_epoch.map_or("-".into(), |e| e.to_string()),
            s.longest_takeover_wait_ms
                .map_or("-".into(), |ms| age(ms as i64))
        ),
    ]);
    t.row([
        "roster".to_owned(),
        match &s.roster {
            Some(r) => format!(
                "{} (revision {})",
                r.join(", "),
                s.roster_revision.unwrap_or(0)
            ),
            None => "-".into(),
        },
    ]);
    t.row([
        "records".to_owned(),
        s.records
            .iter()
            .map(|r| {
                let name = r.key.rsplit('/').next().unwrap_or(&r.key);
                let name = if r.key.contains("/.elections/") {
                    "marker"
                } else {
                    name
                };
                match (&r.state, r.format) {
                    (RecordState::Ok, Some(f)) => format!("{name} format {f}"),
                    (state, _) => format!("{name} {}", format!("{state:?}").to_lowercase()),
                }
            })
            .collect::<Vec<_>>()
            .join(", "),
    ]);
    t.row([
        "elections".to_owned(),
        if s.elections.is_empty() {
            "-".to_owned()
        } else {
            s.elections
                .iter()
                .map(|e| match (&e.leader, e.epoch) {
                    (Some(l), Some(epoch)) => format!("{} (leader {l}, epoch {epoch})", e.election),
                    (None, Some(epoch)) => format!("{} (no leader, epoch {epoch})", e.election),
                    _ => e.election.clone(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        },
    ]);
    t.print();
    output::line("");
    let mut w = Table::new();
    let heartbeats = s.workers.iter().any(|w| w.heartbeat.is_some());
    let mut header = vec![
        "WORKER",
        "ROLE",
        "HEARTBEAT AGE (HOST CLOCK)",
        "(STORE CLOCK, AT LEAST)",
        "PAST WORKER TIMEOUT",
        "IN ROSTER",
    ];
    if heartbeats {
        header.extend(["INCARNATION", "SEQUENCE", "EPOCH SEEN", "RECORD"]);
    }
    w.row(header);
    for worker in &s.workers {
        let mut row = vec![
            worker.worker_id.clone(),
            worker.role.to_owned(),
            opt_age(worker.age_host_clock_ms),
            opt_age(worker.age_store_clock_ms),
            if worker.past_worker_timeout {
                format!("yes (> {})", age(s.judged_by.worker_timeout_ms as i64))
            } else {
                "no".into()
            },
            if worker.in_roster { "yes" } else { "no" }.to_owned(),
        ];
        if let Some(h) = &worker.heartbeat {
            row.extend([
                h.incarnation.clone().unwrap_or_else(|| "-".into()),
                h.sequence.to_string(),
                h.epoch_seen.to_string(),
                format!("{:?}", h.state).to_lowercase(),
            ]);
        }
        w.row(row);
    }
    if s.workers.is_empty() {
        output::line("no worker heartbeats");
    } else {
        w.print();
    }
    if !s.plugins.is_empty() {
        output::line("");
        let mut p = Table::new();
        p.row(["PLUGIN", "NAME", "DATA"]);
        for plugin in &s.plugins {
            p.row([
                plugin.kind.to_owned(),
                plugin.name.clone(),
                match &plugin.error {
                    Some(e) => format!("error: {e}"),
                    None => plugin.summary.clone(),
                },
            ]);
        }
        p.print();
    }
    output::line("");
    let c = &s.requests.counts;
    let plugins = if s.requests.plugin_reads > 0 {
        format!(" + {} plugin reads", s.requests.plugin_reads)
    } else {
        String::new()
    };
    output::line(&format!(
        "requests: {} (get {}, list {}; bound {}{plugins}; writes 0)",
        s.requests.total, c.get, c.list, s.requests.bound
    ));
}
