//! A `coordinator run` process a test starts, reads line by line and
//! stops: the one way the CLI tests start a worker and wait for it.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Where a worker's stderr goes.
pub enum Stderr {
    /// To the test's own stderr (shown with the test's output).
    Inherit,
    /// Read into a string, returned by [`Worker::wait`].
    Capture,
}

/// A running worker; SIGKILLed and reaped when dropped, so a failing test
/// leaves no process behind.
pub struct Worker {
    child: Child,
    /// Its stdout, a line at a time (each printed as it comes).
    lines: Receiver<String>,
    stderr: Option<JoinHandle<String>>,
}

/// What a worker left when it exited.
pub struct Exited {
    pub status: ExitStatus,
    /// The stdout lines no call had read yet.
    pub stdout: Vec<String>,
    /// Its stderr, where captured; empty otherwise.
    pub stderr: String,
}

impl Worker {
    /// Starts `command` (a [`super::coordinator`] with its arguments) with
    /// its stdout piped to this worker's lines and its stderr as `stderr`
    /// says.
    pub fn spawn(command: &mut Command, stderr: Stderr) -> Self {
        command.stdout(Stdio::piped()).stderr(match stderr {
            Stderr::Inherit => Stdio::inherit(),
            Stderr::Capture => Stdio::piped(),
        });
        let mut child = command.spawn().expect("start the coordinator binary");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                println!("worker: {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = child.stderr.take().map(|mut stderr| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = stderr.read_to_string(&mut text);
                text
            })
        });
        Self {
            child,
            lines,
            stderr,
        }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The next stdout line; panics if none comes within `timeout` or
    /// stdout ends.
    pub fn next_line(&self, timeout: Duration) -> String {
        self.lines
            .recv_timeout(timeout)
            .unwrap_or_else(|e| panic!("no line from the worker within {timeout:?}: {e}"))
    }

    /// The stdout lines up to and including the first that contains
    /// `what`; panics if none does within `timeout`.
    pub fn until(&self, what: &str, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Ok(line) = self.lines.recv_timeout(left) else {
                break;
            };
            let done = line.contains(what);
            seen.push(line);
            if done {
                return seen;
            }
        }
        panic!("the worker never printed `{what}` within {timeout:?}: {seen:?}");
    }

    /// Sends signal `name` (`TERM`, `STOP`, …) with `kill`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {}", self.child.id());
    }

    /// Waits for the worker to exit (without signalling it) and returns
    /// what it left.
    pub fn wait(mut self) -> Exited {
        let status = self.child.wait().expect("wait for the worker");
        let mut stdout = Vec::new();
        loop {
            // The reader ends with stdout: the process has exited.
            match self.lines.recv_timeout(Duration::from_secs(10)) {
                Ok(line) => stdout.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("the worker's stdout stayed open after it exited")
                }
            }
        }
        let stderr = match self.stderr.take() {
            Some(reader) => reader.join().expect("the stderr reader"),
            None => String::new(),
        };
        if !stderr.is_empty() {
            println!("--- worker stderr\n{stderr}");
        }
        Exited {
            status,
            stdout,
            stderr,
        }
    }

    /// SIGTERM, then waits: the worker must stop gracefully (exit 0).
    pub fn stop(self) -> Exited {
        self.signal("TERM");
        let exited = self.wait();
        assert!(exited.status.success(), "SIGTERM: {}", exited.status);
        exited
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // A no-op once `wait` has reaped it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
