//! The library's log lines on stderr: a `tracing_subscriber` fmt layer
//! filtered by `COORDINATOR_LOG`, else `RUST_LOG`, else `warn` (so the
//! normal output stays the commands' own lines). Every line passes through
//! [`redact::text`], like everything else the binary prints.

use std::io::{IsTerminal, Write};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use crate::redact;

/// The variable read first.
pub(crate) const LOG_ENV: &str = "COORDINATOR_LOG";
/// The variable read when [`LOG_ENV`] is unset.
pub(crate) const FALLBACK_ENV: &str = "RUST_LOG";
/// The filter when neither is set.
pub(crate) const DEFAULT_FILTER: &str = "warn";

/// Installs the subscriber. An invalid filter is reported on stderr and
/// replaced by [`DEFAULT_FILTER`]: a typo in a log setting must not stop a
/// worker.
pub(crate) fn init() {
    let (name, value) = match std::env::var(LOG_ENV) {
        Ok(value) => (LOG_ENV, value),
        Err(_) => match std::env::var(FALLBACK_ENV) {
            Ok(value) => (FALLBACK_ENV, value),
            Err(_) => ("", DEFAULT_FILTER.to_owned()),
        },
    };
    let filter = EnvFilter::try_new(&value).unwrap_or_else(|e| {
        eprintln!(
            "coordinator: {name}={}: not a log filter ({e}); using `{DEFAULT_FILTER}` \
             (example: `coordinator_runtime=info,warn`)",
            redact::text(&value)
        );
        EnvFilter::new(DEFAULT_FILTER)
    });
    // Another subscriber already installed (never in the binary) is kept.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(Redacted)
        .try_init();
}

/// Makes one [`Line`] per log event.
struct Redacted;

impl<'a> MakeWriter<'a> for Redacted {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line(Vec::new())
    }
}

/// One event's text, redacted and written to stderr when dropped (the fmt
/// layer writes an event through one writer, then drops it).
struct Line(Vec<u8>);

impl Write for Line {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let text = redact::text(&String::from_utf8_lossy(&self.0));
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}
