//! Printing: every line goes through [`crate::redact::text`];
//! human output is aligned tables, `--json` one object.

use std::io::Write;

use crate::redact;

/// Prints one line on stdout, secrets masked. A closed pipe (`| head`)
/// is not an error worth a panic.
pub(crate) fn line(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{}", redact::text(text));
    let _ = stdout.flush();
}

/// Prints `value` as one line of JSON (pretty when `pretty`).
pub(crate) fn json(value: &serde_json::Value, pretty: bool) {
    let text = if pretty {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    }
    .unwrap_or_default();
    line(&text);
}

/// Rows of cells printed with every column padded to its widest cell.
#[derive(Debug, Default)]
pub(crate) struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    /// The table as text, one line per row, without trailing spaces.
    pub(crate) fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut widths = vec![0; columns];
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in &self.rows {
            let mut text = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i > 0 {
                    text.push_str("  ");
                }
                text.push_str(cell);
                if i + 1 < row.len() {
                    let pad = widths[i] - cell.chars().count();
                    text.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }

    pub(crate) fn print(&self) {
        for text in self.render().lines() {
            line(text);
        }
    }
}

/// A duration in milliseconds, for people: `850ms`, `12.3s`, `4m05s`, `2h10m`.
pub(crate) fn age(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let ms = ms.unsigned_abs();
    if ms < 1000 {
        format!("{sign}{ms}ms")
    } else if ms < 60_000 {
        format!("{sign}{:.1}s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{sign}{}m{:02}s", ms / 60_000, (ms % 60_000) / 1000)
    } else {
        format!("{sign}{}h{:02}m", ms / 3_600_000, (ms % 3_600_000) / 60_000)
    }
}

/// A Unix time in ms as UTC `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub(crate) fn utc(unix_ms: i64) -> String {
    let secs = unix_ms.div_euclid(1000);
    let millis = unix_ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// This host's wall clock, in ms since the Unix epoch.
pub(crate) fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_times_format() {
        let mut t = Table::new();
        t.row(["a", "bb", "c"]);
        t.row(["ccc", "d", ""]);
        assert_eq!(t.render(), "a    bb  c\nccc  d\n");
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(1_767_225_600_123), "2026-01-01T00:00:00.123Z");
        assert_eq!(age(850), "850ms");
        assert_eq!(age(12_340), "12.3s");
        assert_eq!(age(245_000), "4m05s");
    }
}
