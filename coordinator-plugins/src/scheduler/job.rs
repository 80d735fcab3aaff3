//! Jobs: [`JobSpec`] (what, when, how), and [`Schedule`] (a cron expression
//! in a named time zone).

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use serde::{Deserialize, Serialize};

use super::SchedulerError;
use crate::layout;
use crate::RetryPolicy;

/// What happens to slots that fell due while no one could run them (no
/// leader, or the job disabled... a disabled job's slots are never run).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissedRunPolicy {
    /// Run the most recent missed slot once, late (the default).
    #[default]
    RunOnce,
    /// Run none of them; wait for the next slot.
    Skip,
}

/// What a run promises about its side effects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// A run cut short by a fail-over is run again by the next leader, and
    /// failed attempts are retried: every slot's job completes at least once
    /// (if it can), side effects may repeat. The default.
    #[default]
    AtLeastOnce,
    /// A slot's job is started at most once: no retries, and a run cut short
    /// by a fail-over is recorded as abandoned, not run again.
    AtMostOnce,
}

/// One job: its schedule, time zone, handler and policies.
///
/// ```
/// use std::time::Duration;
/// use coordinator_plugins::scheduler::{JobSpec, MissedRunPolicy};
/// let spec = JobSpec::new("nightly-report", "30 2 * * MON-FRI")
///     .time_zone("Europe/Berlin")
///     .timeout(Duration::from_secs(600))
///     .missed(MissedRunPolicy::Skip);
/// spec.validate().unwrap();
/// assert_eq!(spec.handler_name(), "nightly-report");
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// The job's name (letters, digits, `-`, `_`, `.`, `:`).
    pub name: String,
    /// A cron expression: 5 fields (minute hour day-of-month month
    /// day-of-week), or 6 with seconds first; ranges, steps, lists, names
    /// (`JAN`, `MON`), `L`, `W`, `#`; or `@hourly`, `@daily`, `@weekly`,
    /// `@monthly`, `@yearly` / `@annually`. [`CronField::accepts`] lists
    /// each field's syntax; an expression that never fires (30 February)
    /// is refused.
    ///
    /// [`CronField::accepts`]: super::CronField::accepts
    pub schedule: String,
    /// The IANA time zone the expression is read in. Default `UTC`. Across
    /// DST changes a fixed-time job skipped by a spring-forward gap runs at
    /// the first instant after the gap, and runs once (at the earlier
    /// instant) in a fall-back overlap; interval jobs (`*/15 * * * *`) run on
    /// every real instant that matches.
    #[serde(default = "utc")]
    pub time_zone: String,
    /// The registered handler to run; default: the job's name.
    #[serde(default)]
    pub handler: Option<String>,
    /// Missed-run policy. Default [`MissedRunPolicy::RunOnce`].
    #[serde(default)]
    pub missed: MissedRunPolicy,
    /// A slot due longer ago than this when the leader gets to it counts as
    /// missed; a younger one is simply run late. Default 1 min.
    #[serde(default = "one_minute", with = "crate::duration")]
    pub late_tolerance: Duration,
    /// How long one attempt may run; the job's future is dropped (and its
    /// token cancelled) then. Default 5 min.
    #[serde(default = "five_minutes", with = "crate::duration")]
    pub timeout: Duration,
    /// Attempts per slot and back-off between them. Default: 3 attempts,
    /// 1 s doubling up to 1 min. Must be one attempt with
    /// [`Delivery::AtMostOnce`].
    #[serde(default = "default_retry")]
    pub retry: RetryPolicy,
    /// At least once (default) or at most once.
    #[serde(default)]
    pub delivery: Delivery,
}

/// 2000-01-01T00:00:00Z.
const YEAR_2000_UNIX_MS: u64 = 946_684_800_000;

fn utc() -> String {
    "UTC".into()
}
fn one_minute() -> Duration {
    Duration::from_secs(60)
}
fn five_minutes() -> Duration {
    Duration::from_secs(300)
}
fn default_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(60),
        multiplier: 2.0,
    }
}

impl JobSpec {
    /// A job named `name` on `schedule`, with every default.
    pub fn new(name: impl Into<String>, schedule: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            schedule: schedule.into(),
            time_zone: utc(),
            handler: None,
            missed: MissedRunPolicy::default(),
            late_tolerance: one_minute(),
            timeout: five_minutes(),
            retry: default_retry(),
            delivery: Delivery::default(),
        }
    }

    /// Sets [`time_zone`](Self::time_zone).
    pub fn time_zone(mut self, zone: impl Into<String>) -> Self {
        self.time_zone = zone.into();
        self
    }

    /// Sets [`handler`](Self::handler).
    pub fn handler(mut self, handler: impl Into<String>) -> Self {
        self.handler = Some(handler.into());
        self
    }

    /// Sets [`missed`](Self::missed).
    pub fn missed(mut self, policy: MissedRunPolicy) -> Self {
        self.missed = policy;
        self
    }

    /// Sets [`late_tolerance`](Self::late_tolerance).
    pub fn late_tolerance(mut self, tolerance: Duration) -> Self {
        self.late_tolerance = tolerance;
        self
    }

    /// Sets [`timeout`](Self::timeout).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets [`retry`](Self::retry).
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Sets [`delivery`](Self::delivery); [`Delivery::AtMostOnce`] also sets
    /// one attempt.
    pub fn delivery(mut self, delivery: Delivery) -> Self {
        self.delivery = delivery;
        if delivery == Delivery::AtMostOnce {
            self.retry = RetryPolicy::none();
        }
        self
    }

    /// The handler this job runs.
    pub fn handler_name(&self) -> &str {
        self.handler.as_deref().unwrap_or(&self.name)
    }

    /// Parses the schedule in the time zone.
    ///
    /// # Errors
    ///
    /// [`SchedulerError::CronShape`], [`SchedulerError::Cron`] or
    /// [`SchedulerError::TimeZone`].
    pub fn parse_schedule(&self) -> Result<Schedule, SchedulerError> {
        Schedule::parse(&self.name, &self.schedule, &self.time_zone)
    }

    /// Checks the name, the schedule (that it parses and fires at least
    /// once), the zone and the policies.
    ///
    /// # Errors
    ///
    /// [`SchedulerError::InvalidName`], [`SchedulerError::CronShape`],
    /// [`SchedulerError::Cron`], [`SchedulerError::CronNeverFires`],
    /// [`SchedulerError::TimeZone`] or [`SchedulerError::Config`].
    pub fn validate(&self) -> Result<(), SchedulerError> {
        layout::check_name(&self.name).map_err(|reason| SchedulerError::InvalidName {
            what: "job",
            name: self.name.clone(),
            reason,
        })?;
        let schedule = self.parse_schedule()?;
        // Without a year field the calendar repeats every 400 years, and
        // croner searches up to the year 5000: no slot after 2000 means none
        // ever.
        if schedule.next_after(YEAR_2000_UNIX_MS).is_none() {
            return Err(SchedulerError::CronNeverFires {
                job: self.name.clone(),
                expression: self.schedule.clone(),
                fields: super::cron::date_fields(&self.schedule),
            });
        }
        if let Err((field, message)) = self.retry.check() {
            return Err(SchedulerError::Config {
                field: if field == "max_attempts" {
                    "retry.max_attempts"
                } else {
                    "retry"
                },
                message,
            });
        }
        if self.delivery == Delivery::AtMostOnce && self.retry.max_attempts > 1 {
            return Err(SchedulerError::Config {
                field: "retry.max_attempts",
                message: format!(
                    "job `{}` is at-most-once, so it cannot retry ({} attempts); set 1 attempt or use at_least_once",
                    self.name, self.retry.max_attempts
                ),
            });
        }
        if self.timeout.is_zero() {
            return Err(SchedulerError::Config {
                field: "timeout",
                message: format!("job `{}`: the timeout must be positive", self.name),
            });
        }
        Ok(())
    }
}

/// A parsed cron expression in a time zone.
///
/// ```
/// use coordinator_plugins::scheduler::Schedule;
/// // 01:30 every day in New York; 2024-03-10 is the spring-forward day.
/// let daily = Schedule::parse("job", "30 1 * * *", "America/New_York").unwrap();
/// let before = 1_710_043_200_000; // 2024-03-10T04:00:00Z = 23:00 EST
/// let next = daily.next_after(before).unwrap();
/// assert_eq!(next, 1_710_052_200_000); // 06:30Z = 01:30 EST
/// assert!(Schedule::parse("job", "@hourly", "UTC").is_ok());
/// assert!(Schedule::parse("job", "61 * * * *", "UTC").is_err());
/// ```
#[derive(Clone, Debug)]
pub struct Schedule {
    cron: Cron,
    zone: Tz,
}

impl Schedule {
    /// Parses `expression` (5 or 6 fields, or an `@` alias) in `zone`.
    ///
    /// # Errors
    ///
    /// [`SchedulerError::CronShape`], [`SchedulerError::Cron`] (naming the
    /// field) or [`SchedulerError::TimeZone`], naming `job`.
    pub fn parse(job: &str, expression: &str, zone: &str) -> Result<Self, SchedulerError> {
        let cron = super::cron::parse(job, expression)?;
        let zone = Tz::from_str(zone).map_err(|_| SchedulerError::TimeZone {
            job: job.to_owned(),
            zone: zone.to_owned(),
        })?;
        Ok(Self { cron, zone })
    }

    /// The first slot strictly after `unix_ms`, in ms since the epoch;
    /// `None` if there is none (before year 5000).
    pub fn next_after(&self, unix_ms: u64) -> Option<u64> {
        let ms = i64::try_from(unix_ms).ok()?;
        let utc: DateTime<Utc> = Utc.timestamp_millis_opt(ms).single()?;
        let local = utc.with_timezone(&self.zone);
        let next = self.cron.find_next_occurrence(&local, false).ok()?;
        u64::try_from(next.timestamp_millis()).ok()
    }
}

impl Schedule {
    pub(crate) fn previous_before_impl(&self, unix_ms: u64) -> Option<u64> {
        let ms = i64::try_from(unix_ms).ok()?;
        let utc: DateTime<Utc> = Utc.timestamp_millis_opt(ms).single()?;
        let local = utc.with_timezone(&self.zone);
        let previous = self.cron.find_previous_occurrence(&local, false).ok()?;
        u64::try_from(previous.timestamp_millis()).ok()
    }
}
