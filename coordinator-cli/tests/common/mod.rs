//! Running the real `coordinator` binary: a command to completion
//! ([`run`]) or a worker until the test stops it ([`worker`]).
#![allow(dead_code, unreachable_pub)]

pub mod worker;

use std::path::Path;
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_coordinator");

/// The binary with a clean `COORDINATOR_*` environment.
pub fn coordinator() -> Command {
    let mut command = Command::new(BIN);
    for (name, _) in std::env::vars() {
        if name.starts_with("COORDINATOR_") {
            command.env_remove(name);
        }
    }
    command
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

pub fn run(command: &mut Command) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().expect("run the coordinator binary");
    let run = Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    };
    println!(
        "exit {}\n--- stdout\n{}--- stderr\n{}",
        run.code, run.stdout, run.stderr
    );
    run
}

pub fn file_url(dir: &Path) -> String {
    format!("file://{}", dir.display())
}

/// Every file under `dir`, relative, sorted (to check nothing was written).
pub fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(entries) = std::fs::read_dir(&d) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if let Ok(rel) = path.strip_prefix(dir) {
                    out.push(rel.display().to_string());
                }
            }
        }
    }
    out.sort();
    out
}

/// The S3 endpoint of the S3 tests, or `None` (after a loud SKIPPED) when
/// it is unset; panics when `COORD_REQUIRE_S3=1` demands it.
pub fn s3_endpoint(test: &str) -> Option<String> {
    match std::env::var("COORD_S3_ENDPOINT") {
        Ok(endpoint) => Some(endpoint),
        Err(_) => {
            if std::env::var("COORD_REQUIRE_S3").as_deref() == Ok("1") {
                panic!("COORD_REQUIRE_S3=1 but COORD_S3_ENDPOINT is unset: start moto with scripts/moto.sh start");
            }
            eprintln!("** SKIPPED {test}: COORD_S3_ENDPOINT is not set (run scripts/test) **");
            None
        }
    }
}

pub fn s3_bucket() -> String {
    std::env::var("COORD_S3_BUCKET").unwrap_or_else(|_| "coordinator-test".into())
}

pub fn unique(tag: &str) -> String {
    format!(
        "cli-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    )
}
