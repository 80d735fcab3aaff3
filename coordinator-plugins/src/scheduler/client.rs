//! Managing jobs (any worker) and reading their history.

use bytes::Bytes;
use coordinator_store::{LeaseStoreExt, StoreError};
use serde::Serialize;

use super::job::JobSpec;
use super::record::{AttemptRecord, JobRecord, RunOutcome, SlotKind, SlotRecord};
use super::{Scheduler, SchedulerError, SchedulerInner};
use crate::codec::{self, FORMAT};
use crate::delete::retire;
use crate::id::SortableId;
use crate::swap::{self, Attempts, Created, Swapped};

/// A job as [`Scheduler::jobs`] lists it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JobInfo {
    /// The definition.
    pub spec: JobSpec,
    /// Whether the leader schedules it.
    pub enabled: bool,
}

/// A job as an operator sees it, from [`Scheduler::job_states`]: its
/// definition, its next run and how its last run ended.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct JobState {
    /// The definition.
    pub spec: JobSpec,
    /// Whether the leader schedules it.
    pub enabled: bool,
    /// The first slot after now (ms since the epoch, on the scheduler's
    /// clock); `None` when the job is disabled or its schedule never fires
    /// again. A catch-up of a missed slot may run before it.
    pub next_run_unix_ms: Option<u64>,
    /// The newest run (running or ended); `None` if it never ran.
    pub last_run: Option<RunRecord>,
}

/// One run of a job, from [`Scheduler::history`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunRecord {
    /// The slot object's key.
    pub key: String,
    /// How it was claimed.
    pub kind: SlotKind,
    /// The slot's instant, for scheduled and catch-up runs.
    pub slot_unix_ms: Option<u64>,
    /// True while a runner holds it.
    pub running: bool,
    /// The final outcome, once it ended.
    pub outcome: Option<RunOutcome>,
    /// The attempts, oldest first: start, end, outcome, worker, epoch. Only
    /// the newest 16 are kept; `attempt` numbers them from 1, so the last
    /// one's is how many there were.
    pub attempts: Vec<AttemptRecord>,
}

impl SchedulerInner {
    pub(crate) async fn read_job(
        &self,
        job: &str,
    ) -> Result<Option<(coordinator_store::Version, JobRecord)>, SchedulerError> {
        let key = self.keys.job(job);
        let Some(found) = self
            .store
            .get(&key)
            .await
            .map_err(|e| SchedulerError::store("read job", &key, e))?
        else {
            return Ok(None);
        };
        let (record, _): (JobRecord, Bytes) = codec::decode(&found.body)
            .map_err(|reason| SchedulerError::corrupt(&key, self.backend(), reason))?;
        Ok(Some((found.version, record)))
    }

    fn encode_job(&self, key: &str, record: &JobRecord) -> Result<Bytes, SchedulerError> {
        codec::encode(record, None)
            .map_err(|reason| SchedulerError::corrupt(key, self.backend(), reason))
    }

    /// Read-modify-write of a live job, by compare-and-swap.
    async fn update_job(
        &self,
        job: &str,
        change: impl Fn(&mut JobRecord),
    ) -> Result<(), SchedulerError> {
        let key = self.keys.job(job);
        // A change of ours that landed unseen is recognised (crate::swap).
        let mut attempts = Attempts::new();
        for _ in 0..5 {
            let Some((version, mut record)) = self.read_job(job).await?.filter(|(_, r)| !r.removed)
            else {
                return Err(SchedulerError::NoSuchJob {
                    job: job.to_owned(),
                    key,
                });
            };
            change(&mut record);
            record.nonce = self.rng.token();
            let body = self.encode_job(&key, &record)?;
            match swap::swap(self.store.as_ref(), &mut attempts, &key, &version, body, ()).await {
                Ok(Swapped::Written(_)) => return Ok(()),
                Ok(Swapped::Changed(_))
                | Err(StoreError::Conflict { .. } | StoreError::Ambiguous { .. }) => continue,
                Err(error) => return Err(SchedulerError::store("update job", &key, error)),
            }
        }
        Err(SchedulerError::Contended {
            job: job.to_owned(),
            key,
        })
    }
}

impl Scheduler {
    /// Adds a job, enabled. Its first slot is the first after now; earlier
    /// slots are never caught up.
    ///
    /// # Errors
    ///
    /// What [`JobSpec::validate`] finds; [`SchedulerError::NoHandler`] when
    /// the job's handler is not registered on this scheduler;
    /// [`SchedulerError::JobExists`]; [`SchedulerError::Store`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe.
    pub async fn add(&self, spec: JobSpec) -> Result<(), SchedulerError> {
        spec.validate()?;
        let inner = &self.inner;
        // Leaders build their schedulers like this one: a handler missing
        // here is most likely missing there, and the job would never run.
        if !inner.handlers.contains_key(spec.handler_name()) {
            let mut registered: Vec<&str> = inner.handlers.keys().map(String::as_str).collect();
            registered.sort_unstable();
            return Err(SchedulerError::NoHandler {
                job: spec.name.clone(),
                handler: spec.handler_name().to_owned(),
                registered: if registered.is_empty() {
                    "none".to_owned()
                } else {
                    registered.join(", ")
                },
            });
        }
        let key = inner.keys.job(&spec.name);
        let record = JobRecord {
            format: FORMAT,
            spec: spec.clone(),
            enabled: true,
            active_since_unix_ms: inner.clock.unix_ms(),
            nonce: inner.rng.token(),
            removed: false,
        };
        let body = inner.encode_job(&key, &record)?;
        // Create it, or replace a tombstone by compare-and-swap; our own
        // write applied by a hidden retry is ours (crate::swap).
        let mut attempts = Attempts::new();
        let mut expected = None;
        for _ in 0..5 {
            let written = swap::write(
                inner.store.as_ref(),
                &mut attempts,
                &key,
                expected.as_ref(),
                body.clone(),
                (),
            )
            .await;
            match written {
                Ok(Swapped::Written(_)) => return Ok(()),
                Ok(Swapped::Changed(Some(found))) => {
                    let (other, _): (JobRecord, Bytes) = codec::decode(&found.body)
                        .map_err(|reason| SchedulerError::corrupt(&key, inner.backend(), reason))?;
                    if !other.removed {
                        return Err(SchedulerError::JobExists {
                            job: spec.name.clone(),
                            key,
                        });
                    }
                    // A tombstone: replace it.
                    expected = Some(found.version);
                }
                Ok(Swapped::Changed(None)) => expected = None,
                // Not applied, perhaps not yet: try again.
                Err(StoreError::Conflict { .. } | StoreError::Ambiguous { .. }) => {}
                Err(error) => return Err(SchedulerError::store("add job", &key, error)),
            }
        }
        Err(SchedulerError::Contended {
            job: spec.name,
            key,
        })
    }

    /// Removes a job: a conditional delete where the backend has one,
    /// otherwise a tombstone (compare-and-swap). Its history stays. A run in
    /// progress finishes.
    ///
    /// # Errors
    ///
    /// [`SchedulerError::NoSuchJob`], [`SchedulerError::Store`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe.
    pub async fn remove(&self, job: &str) -> Result<(), SchedulerError> {
        let inner = &self.inner;
        let key = inner.keys.job(job);
        let mut attempts = Attempts::new();
        for _ in 0..5 {
            let Some((version, mut record)) =
                inner.read_job(job).await?.filter(|(_, r)| !r.removed)
            else {
                return Err(SchedulerError::NoSuchJob {
                    job: job.to_owned(),
                    key,
                });
            };
            record.removed = true;
            record.enabled = false;
            record.nonce = inner.rng.token();
            let tombstone = inner.encode_job(&key, &record)?;
            match retire(
                inner.store.as_ref(),
                &mut attempts,
                &key,
                &version,
                tombstone,
            )
            .await
            {
                Ok(crate::delete::Deleted::Done) => return Ok(()),
                Ok(crate::delete::Deleted::Changed) => continue,
                Err(error) => return Err(SchedulerError::store("remove job", &key, error)),
            }
        }
        Err(SchedulerError::Contended {
            job: job.to_owned(),
            key,
        })
    }

    /// Enables a job. Slots that fell while it was disabled are not caught
    /// up.
    ///
    /// # Errors
    ///
    /// [`SchedulerError::NoSuchJob`], [`SchedulerError::Store`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe.
    pub async fn enable(&self, job: &str) -> Result<(), SchedulerError> {
        let now = self.inner.clock.unix_ms();
        self.inner
            .update_job(job, |r| {
                if !r.enabled {
                    r.enabled = true;
                    r.active_since_unix_ms = now;
                }
            })
            .await
    }

    /// Disables a job: the leader claims none of its slots until it is
    /// enabled again. A run in progress finishes.
    ///
    /// # Errors
    ///
    /// [`SchedulerError::NoSuchJob`], [`SchedulerError::Store`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe.
    pub async fn disable(&self, job: &str) -> Result<(), SchedulerError> {
        self.inner.update_job(job, |r| r.enabled = false).await
    }

    /// Asks the leader to run `job` once, now (within one
    /// [`reload_interval`](super::SchedulerConfig::reload_interval)), even if
    /// disabled. Returns the request's id; the run is claimed once.
    ///
    /// # Errors
    ///
    /// [`SchedulerError::NoSuchJob`], [`SchedulerError::Store`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe.
    pub async fn run_now(&self, job: &str) -> Result<SortableId, SchedulerError> {
        let inner = &self.inner;
        if inner
            .read_job(job)
            .await?
            .filter(|(_, r)| !r.removed)
            .is_none()
        {
            return Err(SchedulerError::NoSuchJob {
                job: job.to_owned(),
                key: inner.keys.job(job),
            });
        }
        let id = inner.ids.next(inner.clock.unix_ms());
        let key = inner.keys.request(job, id.as_str());
        let body = Bytes::from(format!("{{\"format\":{FORMAT}}}"));
        // The id is fresh, so whatever is at its key is this request.
        match swap::create(inner.store.as_ref(), &mut Attempts::new(), &key, body, ()).await {
            Ok(Created::Written(_) | Created::Taken) => Ok(id),
            Err(error) => Err(SchedulerError::store("run now", &key, error)),
        }
    }

    /// Every job (one listing, one read each).
    ///
    /// # Errors
    ///
    /// [`SchedulerError::Store`], [`SchedulerError::Corrupt`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn jobs(&self) -> Result<Vec<JobInfo>, SchedulerError> {
        let inner = &self.inner;
        let prefix = inner.keys.jobs();
        let listed = inner
            .store
            .list(&prefix)
            .await
            .map_err(|e| SchedulerError::store("list jobs", &prefix, e))?;
        let mut out = Vec::new();
        for meta in listed {
            let Some(job) = inner.keys.job_of_key(&meta.key) else {
                continue;
            };
            if let Some((_, record)) = inner.read_job(&job).await? {
                if !record.removed {
                    out.push(JobInfo {
                        spec: record.spec,
                        enabled: record.enabled,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Every job with its next run and its newest run, for a reader that
    /// shows the scheduler (`coordinator status`) without knowing its
    /// layout. Read-only: a LIST of the jobs and a GET per job
    /// ([`jobs`](Self::jobs)), then per job a LIST of its runs and a GET
    /// of the newest ([`history`](Self::history) with a limit of 1).
    ///
    /// # Errors
    ///
    /// [`SchedulerError::Store`], [`SchedulerError::Corrupt`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn job_states(&self) -> Result<Vec<JobState>, SchedulerError> {
        let now = self.inner.clock.unix_ms();
        let mut out = Vec::new();
        for job in self.jobs().await? {
            let next_run_unix_ms = if job.enabled {
                // A schedule that no longer parses shows no next run; the
                // leader reports it when it loads the job.
                job.spec
                    .parse_schedule()
                    .ok()
                    .and_then(|schedule| schedule.next_after(now))
            } else {
                None
            };
            let last_run = self.history(&job.spec.name, 1).await?.pop();
            out.push(JobState {
                spec: job.spec,
                enabled: job.enabled,
                next_run_unix_ms,
                last_run,
            });
        }
        Ok(out)
    }

    /// The newest `limit` runs of `job` (scheduled ones by slot, then
    /// run-now ones by request id), oldest first.
    ///
    /// # Errors
    ///
    /// [`SchedulerError::Store`], [`SchedulerError::Corrupt`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn history(&self, job: &str, limit: usize) -> Result<Vec<RunRecord>, SchedulerError> {
        let inner = &self.inner;
        let prefix = inner.keys.slots(job);
        let listed = inner
            .store
            .list(&prefix)
            .await
            .map_err(|e| SchedulerError::store("history", &prefix, e))?;
        let skip = listed.len().saturating_sub(limit);
        let mut out = Vec::new();
        for meta in listed.into_iter().skip(skip) {
            let Some(found) = inner
                .store
                .get(&meta.key)
                .await
                .map_err(|e| SchedulerError::store("history", &meta.key, e))?
            else {
                continue;
            };
            let (slot, _): (SlotRecord, Bytes) = codec::decode(&found.body)
                .map_err(|reason| SchedulerError::corrupt(&meta.key, inner.backend(), reason))?;
            out.push(RunRecord {
                key: meta.key,
                kind: slot.kind,
                slot_unix_ms: slot.slot_unix_ms,
                running: slot.running,
                outcome: slot.outcome,
                attempts: slot.attempts,
            });
        }
        Ok(out)
    }
}
