//! `coordinator`: the operator's command for a leader election over object
//! storage.
//!
//! ```text
//! coordinator [--url URL] [--namespace NS] [--config coordinator.toml] [--json] <COMMAND>
//!   status     who leads, the workers, the records, a verdict (read-only)
//!   watch      follow a namespace read-only, one line per change
//!   probe URL  what the store can do, with evidence and latency
//!   diagnose   one bundle for a bug report (no secrets)
//!   run        join the election as a worker until SIGTERM
//! ```
//!
//! # Exit status
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | success (`status`: a live leader) |
//! | 1 | an error: the store, the config file, a refused namespace |
//! | 2 | a usage error (unknown flag, missing value) |
//! | 3 | `status`: no live leader (no lease, released, or the leader is past its renew deadline) |
//! | 4 | `status`: records this version cannot use (another implementation's, or a newer format) |
//!
//! Settings come from, in rising precedence: the defaults, the config file
//! (`--config`, or `COORDINATOR_CONFIG`), `COORDINATOR_…` environment
//! variables, and the command-line flags; see [`config`].

mod cli;
mod config;
mod diagnose;
mod events;
mod logs;
mod output;
mod probe;
mod redact;
mod run;
mod status;
mod store;
mod watch;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

/// Every exit status the binary uses (documented in `--help` and the README).
pub(crate) mod exit {
    /// Success; for `status`, a live leader.
    pub(crate) const OK: u8 = 0;
    /// An error: the store, the config file, a refused namespace.
    pub(crate) const ERROR: u8 = 1;
    /// A usage error (clap's own code).
    pub(crate) const USAGE: u8 = 2;
    /// `status`: no live leader.
    pub(crate) const NO_LEADER: u8 = 3;
    /// `status`: foreign or newer-format records.
    pub(crate) const UNUSABLE_RECORDS: u8 = 4;
}

/// An error that ends the command: its message (already redacted where it
/// may carry a URL) and exit status.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) message: String,
    pub(crate) code: u8,
}

impl Failure {
    pub(crate) fn error(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: exit::ERROR,
        }
    }

    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: exit::USAGE,
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version print to stdout and exit 0; the rest are
            // usage errors (exit 2).
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("coordinator: cannot start the async runtime: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    redact::register_env();
    logs::init();
    let outcome = runtime.block_on(dispatch(cli));
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("coordinator: {}", redact::text(&failure.message));
            ExitCode::from(failure.code)
        }
    }
}

async fn dispatch(cli: Cli) -> Result<u8, Failure> {
    let globals = cli.globals;
    match cli.command {
        Command::Status(args) => status::command(&globals, &args).await,
        Command::Watch(args) => watch::command(&globals, &args).await,
        Command::Probe(args) => probe::command(&globals, &args).await,
        Command::Diagnose(args) => diagnose::command(&globals, &args).await,
        Command::Run(args) => run::command(&globals, &args).await,
        Command::Config => config::command(&globals),
    }
}
