//! What the scheduler refuses at `add`: cron errors that name the field,
//! expressions that never fire, jobs whose handler is not registered; and
//! that a refused job leaves nothing in the store.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::{clock, registry, virtual_store};
use coordinator_plugins::scheduler::{
    CronField, JobContext, JobError, JobSpec, Schedule, Scheduler, SchedulerError,
};
use coordinator_store::{LeaseStore, LeaseStoreExt};

fn field_of(expression: &str) -> (CronField, String) {
    match Schedule::parse("j", expression, "UTC") {
        Err(SchedulerError::Cron { field, value, .. }) => (field, value),
        other => panic!("`{expression}`: expected a field error, got {other:?}"),
    }
}

#[test]
fn each_bad_field_is_named_with_what_it_accepts() {
    for (expression, field, value) in [
        ("61 * * * *", CronField::Minute, "61"),
        ("* 24 * * *", CronField::Hour, "24"),
        ("* * 0 * *", CronField::DayOfMonth, "0"),
        ("* * 32 * *", CronField::DayOfMonth, "32"),
        ("* * * 13 *", CronField::Month, "13"),
        ("* * * FOO *", CronField::Month, "FOO"),
        ("* * * * 8", CronField::DayOfWeek, "8"),
        ("* * * * MON#6", CronField::DayOfWeek, "MON#6"),
        ("60 * * * * *", CronField::Second, "60"),
        ("* 61 * * * *", CronField::Minute, "61"),
        // croner alone would read these as minute 1 and 1-5 past the hour.
        ("JAN * * * *", CronField::Minute, "JAN"),
        ("MON-FRI * * * *", CronField::Minute, "MON-FRI"),
        // Weekday names are not months; `W` belongs to day-of-month.
        ("* * * MON *", CronField::Month, "MON"),
        ("* * * * 5W", CronField::DayOfWeek, "5W"),
        ("* * 5L * *", CronField::DayOfMonth, "5L"),
        ("* * * * L", CronField::DayOfWeek, "L"),
        ("* * +1 * *", CronField::DayOfMonth, "+1"),
        // Steps need `*/n` or `a-b/n`.
        ("0/5 * * * *", CronField::Minute, "0/5"),
        ("*/0 * * * *", CronField::Minute, "*/0"),
        ("5-1 * * * *", CronField::Minute, "5-1"),
    ] {
        assert_eq!(
            field_of(expression),
            (field, value.to_owned()),
            "{expression}"
        );
    }
    // A year appended to 5 fields makes 6: read with seconds first.
    let message = Schedule::parse("j", "0 9 * * MON-FRI 2027", "UTC")
        .unwrap_err()
        .to_string();
    assert!(
        message.contains(
            "(read as second minute hour day-of-month month day-of-week): month field `MON-FRI`"
        ),
        "{message}"
    );
    let message = Schedule::parse("nightly", "0 3 32 * *", "UTC")
        .unwrap_err()
        .to_string();
    assert!(
        message.starts_with(
            "job `nightly`: cron expression `0 3 32 * *` (read as minute hour day-of-month month \
             day-of-week): day-of-month field `32` is invalid ("
        ),
        "{message}"
    );
    assert!(
        message.ends_with(&format!(
            "the day-of-month field accepts {}",
            CronField::DayOfMonth.accepts()
        )),
        "{message}"
    );
}

#[test]
fn what_each_field_lists_is_accepted() {
    for expression in [
        "*/20 5 9-17 * JAN,FEB MON-FRI",
        "0 0 L * *",
        "0 0 15W * *",
        "0 0 LW * *",
        "0 0 ? * MON#2",
        "0 0 * * 5L",
        "0 0 * * 7",
        "0 0 1-7 * +MON",
        "0 0 * 1-12/3 ?",
        "0-30/10 * * * *",
        "@hourly",
        "@DAILY",
        "@weekly",
        "@monthly",
        "@yearly",
        "@annually",
        "  0 3 * * *  ",
    ] {
        JobSpec::new("j", expression)
            .validate()
            .unwrap_or_else(|e| panic!("`{expression}` refused: {e}"));
    }
}

#[test]
fn wrong_shapes_say_what_is_accepted() {
    for (expression, reason) in [
        ("* * * *", "has 4 fields"),
        // croner alone would take a seventh field as the year.
        ("0 0 0 1 1 * 2030", "has 7 fields"),
        ("", "has 0 fields"),
        ("@midnight", "has the unknown alias `@midnight`"),
        ("@reboot", "has the unknown alias `@reboot`"),
    ] {
        let error = Schedule::parse("j", expression, "UTC").unwrap_err();
        assert!(
            matches!(&error, SchedulerError::CronShape { reason: r, .. } if r == reason),
            "`{expression}`: {error:?}"
        );
        assert!(
            error.to_string().ends_with(
                "use 5 fields (minute hour day-of-month month day-of-week), 6 with a second \
                 field first, or one of @hourly, @daily, @weekly, @monthly, @yearly, @annually"
            ),
            "{error}"
        );
    }
}

#[test]
fn expressions_that_never_fire_are_refused() {
    for expression in [
        "0 0 30 2 *",
        "0 0 31 4 *",
        "0 0 31 4,6,9,11 *",
        "0 0 30-31 FEB *",
        "0 0 0 31 11 *",
        // With `+` both day fields must match: 1-7 March is never a 5th Monday.
        "0 0 1-7 3 +MON#5",
    ] {
        let error = JobSpec::new("j", expression).validate().unwrap_err();
        assert!(
            matches!(&error, SchedulerError::CronNeverFires { expression: e, .. } if e == expression),
            "`{expression}`: {error:?}"
        );
    }
    let message = JobSpec::new("leap", "0 0 30 2 *")
        .validate()
        .unwrap_err()
        .to_string();
    assert_eq!(
        message,
        "job `leap`: cron expression `0 0 30 2 *` never fires: no date has day-of-month `30` \
         in month `2`; pick days that every chosen month has, or `L` for the last day of the month"
    );
    // Rare is not never: 29 February, a 5th Monday in February, and an
    // OR of the day fields (30 February or any Monday in February).
    for expression in [
        "0 0 29 2 *",
        "0 0 * 2 MON#5",
        "0 0 30 2 MON",
        "0 0 L 2 *",
        "0 0 31 1-4 *",
        // 29 February on a Monday (2016, 2044, …), and as the fifth Sunday
        // of February (2004, 2032, …): once in 28 years.
        "0 0 29 2 +MON",
        "0 0 29 2 +SUN#5",
    ] {
        JobSpec::new("j", expression)
            .validate()
            .unwrap_or_else(|e| panic!("`{expression}` refused: {e}"));
    }
}

#[tokio::test(start_paused = true)]
async fn add_refuses_a_job_without_a_registered_handler_and_writes_nothing() {
    let store: Arc<dyn LeaseStore> = Arc::new(virtual_store());
    let clock = clock();
    let registry = registry(store.clone(), "w1", &clock);
    let scheduler = Scheduler::builder(&registry, "ns", "cron")
        .handler("report", |_ctx: JobContext| async {
            Ok::<(), JobError>(())
        })
        .handler("cleanup", |_ctx: JobContext| async {
            Ok::<(), JobError>(())
        })
        .build()
        .unwrap();
    let error = scheduler
        .add(JobSpec::new("nightly", "0 3 * * *"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, SchedulerError::NoHandler { job, handler, registered }
            if job == "nightly" && handler == "nightly" && registered == "cleanup, report"),
        "{error:?}"
    );
    let error = scheduler
        .add(JobSpec::new("nightly", "0 3 * * *").handler("reprot"))
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "job `nightly`: no handler `reprot` is registered on this scheduler (registered: \
         cleanup, report); register it with `SchedulerBuilder::handler` on every worker that \
         may lead, or set the job's handler to a registered one"
    );
    let error = scheduler
        .add(JobSpec::new("feb30", "0 0 30 2 *").handler("report"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, SchedulerError::CronNeverFires { .. }),
        "{error:?}"
    );
    assert!(
        scheduler.jobs().await.unwrap().is_empty(),
        "refused jobs are not stored"
    );
    assert!(
        store.list(scheduler.prefix()).await.unwrap().is_empty(),
        "nothing written under {}",
        scheduler.prefix()
    );
    scheduler
        .add(JobSpec::new("nightly", "0 3 * * *").handler("report"))
        .await
        .unwrap();
    assert_eq!(scheduler.jobs().await.unwrap().len(), 1);

    let bare = Scheduler::builder(&registry, "ns", "bare").build().unwrap();
    let error = bare
        .add(JobSpec::new("nightly", "0 3 * * *"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, SchedulerError::NoHandler { registered, .. } if registered == "none"),
        "{error:?}"
    );
}
