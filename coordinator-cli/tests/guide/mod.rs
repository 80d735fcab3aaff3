//! The harness of `troubleshooting.rs`: the guide's quoted blocks,
//! scenarios (a store directory, `coordinator run` workers, the library's
//! log lines) and the check that runs a block against one (its `…`
//! wildcard is the doc-command tests' `wildcard_matches`).
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use coordinator_runtime::{CoordinatorConfig, CoordinatorRegistry};
use coordinator_store::LeaseStore;

use crate::common::{self, coordinator, file_url};
use crate::doc_commands::wildcard_matches;

pub const GUIDE: &str = include_str!("../../../docs/troubleshooting.md");

/// Every repro block of the guide, by name, in order.
pub fn blocks() -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    let mut lines = GUIDE.lines();
    while let Some(line) = lines.next() {
        let Some(name) = line
            .trim()
            .strip_prefix("<!-- repro: ")
            .and_then(|rest| rest.strip_suffix(" -->"))
        else {
            continue;
        };
        let fence = lines.next().unwrap_or_default();
        assert!(
            fence.starts_with("```"),
            "repro {name}: no block after the marker"
        );
        let body: Vec<String> = lines
            .by_ref()
            .take_while(|l| !l.starts_with("```"))
            .map(str::to_owned)
            .collect();
        out.push((name.to_owned(), body));
    }
    out
}

/// A scenario: where its store is, and what it printed on its own.
pub struct Scenario {
    pub dir: tempfile::TempDir,
    namespace: &'static str,
    config: Option<PathBuf>,
    output: Arc<Mutex<Vec<String>>>,
}

impl Scenario {
    pub fn new(namespace: &'static str) -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            namespace,
            config: None,
            output: Arc::default(),
        }
    }

    pub fn url(&self) -> String {
        file_url(self.dir.path())
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `coordinator.toml` with `extra` below the URL and namespace.
    pub fn with_config(mut self, extra: &str) -> Self {
        let path = self.dir.path().join("coordinator.toml");
        std::fs::write(
            &path,
            format!(
                "url = \"{}\"\nnamespace = \"{}\"\n{extra}",
                self.url(),
                self.namespace
            ),
        )
        .unwrap();
        self.config = Some(path);
        self
    }

    pub fn note(&self, text: &str) {
        println!("[note] {text}");
        let mut output = self.output.lock().unwrap();
        output.extend(text.lines().map(str::to_owned));
    }

    pub fn command(&self) -> std::process::Command {
        let mut command = coordinator();
        command
            .current_dir(self.path())
            .env("COORDINATOR_URL", self.url())
            .env("COORDINATOR_NAMESPACE", self.namespace);
        if let Some(config) = &self.config {
            command.env("COORDINATOR_CONFIG", config);
        }
        command
    }

    /// Starts `coordinator run --fast --worker-id ID` (and `extra`); its
    /// lines go to the scenario's output.
    pub fn worker(&self, id: &str, extra: &[&str]) -> Worker {
        let mut child = self
            .command()
            .args(["run", "--fast", "--worker-id", id])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let lines = lines.clone();
            let output = self.output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    println!("[worker] {line}");
                    lines.lock().unwrap().push(line.clone());
                    output.lock().unwrap().push(line);
                }
            });
        }
        Worker { child, lines }
    }

    /// Runs the guide's block `name` against this scenario.
    pub fn check(&self, name: &str) {
        let (_, body) = blocks()
            .into_iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no block `{name}` in docs/troubleshooting.md"));
        let mut seen: Vec<String> = self.output.lock().unwrap().clone();
        let mut context = "the scenario's output".to_owned();
        let mut missing = Vec::new();
        for line in body {
            if let Some(command) = line.strip_prefix("$ ") {
                if command.starts_with("coordinator run ") && !command.ends_with("$?\"") {
                    // A worker: the scenario started it (with `--fast`).
                    seen = self.output.lock().unwrap().clone();
                    context = format!("the scenario's `{command} --fast`");
                } else {
                    seen = self.run_line(command);
                    context = format!("`{command}`");
                }
                continue;
            }
            if line.trim().is_empty() {
                continue;
            }
            if !seen
                .iter()
                .any(|actual| wildcard_matches(&line, actual.trim_end()))
            {
                missing.push(format!("{context}: {line}"));
            }
        }
        assert!(
            missing.is_empty(),
            "lines the guide quotes for `{name}` that the code did not print:\n{}\n\nscenario output:\n{}",
            missing.join("\n"),
            self.output.lock().unwrap().join("\n")
        );
    }

    pub fn run_line(&self, line: &str) -> Vec<String> {
        let (command, echo) = match line.strip_suffix("; echo \"exit $?\"") {
            Some(command) => (command, true),
            None => (line, false),
        };
        let args: Vec<&str> = command.split_whitespace().collect();
        assert_eq!(args[0], "coordinator", "the guide runs only `coordinator`");
        let run = common::run(self.command().args(&args[1..]));
        let mut out: Vec<String> = run.all().lines().map(str::to_owned).collect();
        if echo {
            out.push(format!("exit {}", run.code));
        }
        out
    }
}

/// A `coordinator run` process, killed when dropped.
pub struct Worker {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Worker {
    pub fn wait_for(&self, what: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.lines.lock().unwrap().iter().any(|l| l.contains(what)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no line with `{what}` in {:?}", self.lines.lock().unwrap());
    }

    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal}");
    }

    /// SIGTERM, and waits for the graceful stop.
    pub fn stop(mut self) {
        self.signal("TERM");
        assert!(self.child.wait().unwrap().success());
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn pause(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// The election timings of `coordinator run --fast`, for workers run here.
pub fn fast() -> coordinator_core::Config {
    coordinator_core::Config {
        heartbeat_interval: Duration::from_millis(200),
        heartbeat_jitter: Duration::from_millis(50),
        lease_timeout: Duration::from_millis(1500),
        renew_deadline: Duration::from_millis(1000),
        worker_timeout: Duration::from_millis(1500),
        membership_interval: Duration::from_millis(500),
        worker_list_interval: Duration::from_millis(500),
        request_timeout: Duration::from_millis(300),
        retry_backoff: Duration::from_millis(50),
        succession_step: Duration::from_millis(100),
        ..coordinator_core::Config::default()
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

pub fn registry(store: Arc<dyn LeaseStore>, id: &str) -> CoordinatorRegistry {
    CoordinatorRegistry::new(
        store,
        CoordinatorConfig::default()
            .with_worker_id(id)
            .with_election(fast()),
    )
    .unwrap()
}

/// The library's log lines, as an application's `tracing_subscriber::fmt`
/// prints them (without the timestamp), for every in-process worker of
/// this test binary; scenarios pick theirs by namespace.
pub fn logs() -> &'static Mutex<Vec<u8>> {
    static LOGS: OnceLock<&'static Mutex<Vec<u8>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer: &'static Mutex<Vec<u8>> = Box::leak(Box::new(Mutex::new(Vec::new())));
        tracing_subscriber::fmt()
            .with_ansi(false)
            .without_time()
            .with_env_filter("coordinator=info,coordinator_runtime=info,coordinator_plugins=info")
            .with_writer(move || LogWriter(buffer))
            .init();
        buffer
    })
}

pub struct LogWriter(&'static Mutex<Vec<u8>>);

impl Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The log lines that mention `marker`, added to the scenario's output.
pub fn collect_logs(scenario: &Scenario, marker: &str) {
    let text = String::from_utf8_lossy(&logs().lock().unwrap()).into_owned();
    for line in text.lines().filter(|l| l.contains(marker)) {
        println!("[log] {line}");
        scenario.note(line);
    }
}

pub fn local_store(path: &Path) -> Arc<dyn LeaseStore> {
    Arc::new(coordinator_store::LocalDirStore::new(path.to_path_buf()))
}
