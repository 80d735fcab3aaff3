//! Cron expressions: the accepted syntax field by field ([`CronField`]),
//! checked before `croner` sees the expression so that an error names the
//! bad field, and the check that an expression fires at all.
//!
//! `croner` alone would accept more than we document (a seventh, year
//! field; month and weekday names in any field, since it replaces them in
//! the whole string) and would report errors without saying which field
//! failed; this module narrows it to exactly the syntax
//! [`CronField::accepts`] lists.

use std::fmt;

use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

use super::SchedulerError;

/// The `@` aliases the parser accepts (case-insensitive).
pub(crate) const ALIASES: &str = "@hourly, @daily, @weekly, @monthly, @yearly, @annually";

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// One field of a cron expression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CronField {
    /// Seconds: the first of 6 fields.
    Second,
    /// Minutes.
    Minute,
    /// Hours.
    Hour,
    /// Day of the month.
    DayOfMonth,
    /// Month.
    Month,
    /// Day of the week.
    DayOfWeek,
}

impl CronField {
    /// Every field, in the order of a 6-field expression.
    const ALL: [CronField; 6] = [
        Self::Second,
        Self::Minute,
        Self::Hour,
        Self::DayOfMonth,
        Self::Month,
        Self::DayOfWeek,
    ];

    /// The field's name, as errors print it (`day-of-month`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Second => "second",
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::DayOfMonth => "day-of-month",
            Self::Month => "month",
            Self::DayOfWeek => "day-of-week",
        }
    }

    /// Exactly what the parser accepts in this field.
    pub fn accepts(self) -> &'static str {
        match self {
            Self::Second => "0-59, `*`, a list `a,b`, a range `a-b`, a step `*/n` or `a-b/n`",
            Self::Minute => "0-59, `*`, a list `a,b`, a range `a-b`, a step `*/n` or `a-b/n`",
            Self::Hour => "0-23, `*`, a list `a,b`, a range `a-b`, a step `*/n` or `a-b/n`",
            Self::DayOfMonth => {
                "1-31, `*` or `?`, a list `a,b`, a range `a-b`, a step `*/n` or `a-b/n`, \
                 `L` (last day), `nW` (weekday nearest day n), `LW` (last weekday)"
            }
            Self::Month => {
                "1-12 or JAN-DEC, `*`, a list `a,b`, a range `a-b`, a step `*/n` or `a-b/n`"
            }
            Self::DayOfWeek => {
                "0-7 (0 and 7 are Sunday) or SUN-SAT, `*` or `?`, a list `a,b`, a range `a-b`, \
                 a step `*/n` or `a-b/n`, `nL` (last weekday n of the month), `n#k` (k-th \
                 weekday n, k 1-5), a leading `+` (both day fields must match; without it \
                 either one does)"
            }
        }
    }

    /// The names allowed in this field, besides digits and `*?,-/#+`.
    fn words(self) -> &'static [&'static str] {
        match self {
            Self::Second | Self::Minute | Self::Hour => &[],
            Self::DayOfMonth => &["L", "W", "LW"],
            Self::Month => &MONTHS,
            Self::DayOfWeek => &WEEKDAYS,
        }
    }
}

impl fmt::Display for CronField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
}

/// Parses `expression` for job `job`, naming the field at fault.
pub(crate) fn parse(job: &str, expression: &str) -> Result<Cron, SchedulerError> {
    let shape = |reason: String| SchedulerError::CronShape {
        job: job.to_owned(),
        expression: expression.to_owned(),
        reason,
    };
    let trimmed = expression.trim();
    if trimmed.starts_with('@') {
        let known = ALIASES
            .split(", ")
            .any(|alias| alias.eq_ignore_ascii_case(trimmed));
        if !known {
            return Err(shape(format!("has the unknown alias `{trimmed}`")));
        }
    } else {
        let values: Vec<&str> = trimmed.split_whitespace().collect();
        let (fields, layout) = match values.len() {
            5 => (
                &CronField::ALL[1..],
                "minute hour day-of-month month day-of-week",
            ),
            6 => (
                &CronField::ALL[..],
                "second minute hour day-of-month month day-of-week",
            ),
            n => return Err(shape(format!("has {n} fields"))),
        };
        for (&field, &value) in fields.iter().zip(&values) {
            check_field(field, value).map_err(|reason| SchedulerError::Cron {
                job: job.to_owned(),
                expression: expression.to_owned(),
                layout,
                field,
                value: value.to_owned(),
                reason,
            })?;
        }
    }
    parser().parse(trimmed).map_err(|e| {
        shape(format!(
            "is refused by the parser ({e}) although each field is valid alone"
        ))
    })
}

/// Checks one field alone: its words, then croner on an expression that is
/// `*` everywhere else.
fn check_field(field: CronField, value: &str) -> Result<(), String> {
    let upper = value.to_ascii_uppercase();
    let body = match (field, upper.strip_prefix('+')) {
        (CronField::DayOfWeek, Some(rest)) => rest,
        (_, Some(_)) => return Err("`+` is only allowed first in day-of-week".into()),
        (_, None) => upper.as_str(),
    };
    if field == CronField::DayOfWeek && body.split(',').any(|part| part == "L") {
        return Err("`L` needs a weekday in day-of-week (`5L`: the last Friday)".into());
    }
    for word in body
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| !w.is_empty())
    {
        // `5L` and `MON#2` split into `L` and `MON`.
        let allowed =
            field.words().contains(&word) || (field == CronField::DayOfWeek && word == "L");
        if !allowed {
            return Err(format!("`{word}` is not a name this field knows"));
        }
    }
    let position = CronField::ALL
        .iter()
        .position(|f| *f == field)
        .unwrap_or_default();
    let mut probe = ["0", "0", "0", "*", "*", "*"];
    probe[position] = value;
    parser()
        .parse(&probe.join(" "))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The fields that decide on which dates `cron` fires, for the error of
/// an expression that never fires.
pub(crate) fn date_fields(expression: &str) -> String {
    let values: Vec<&str> = expression.split_whitespace().collect();
    let offset = usize::from(values.len() == 6);
    let get = |i: usize| values.get(i + offset).copied().unwrap_or("*");
    let (dom, month, dow) = (get(2), get(3), get(4));
    if dow.starts_with('+') {
        format!("day-of-month `{dom}`, month `{month}` and day-of-week `{dow}` together")
    } else {
        format!("day-of-month `{dom}` in month `{month}`")
    }
}
