//! Three real worker processes (`coordinator run`) on one local directory: SIGKILL the leader
//! and another leads within the bound; SIGTERM one and the hand-over is fast.
#![cfg(unix)]
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const WORKER: &str = env!("CARGO_BIN_EXE_coordinator");

/// `coordinator run --fast` timings.
const LEASE_TIMEOUT: Duration = Duration::from_millis(1500);
const POLL: Duration = Duration::from_millis(250);

struct Line {
    worker: String,
    text: String,
    at: Instant,
}

struct Cluster {
    children: Vec<(String, Child)>,
    lines: mpsc::Receiver<Line>,
    sender: mpsc::Sender<Line>,
    /// The latest VIEW line of each worker: (worker, epoch, is_leader).
    leaders: Vec<(String, u64, bool)>,
}

impl Cluster {
    fn start(dir: &std::path::Path, ids: &[&str]) -> Self {
        let (sender, lines) = mpsc::channel();
        let mut cluster = Cluster {
            children: Vec::new(),
            lines,
            sender,
            leaders: Vec::new(),
        };
        for id in ids {
            cluster.spawn(dir, id);
        }
        cluster
    }

    fn spawn(&mut self, dir: &std::path::Path, id: &str) {
        let mut child = Command::new(WORKER)
            .args([
                "--url",
                &format!("file://{}", dir.display()),
                "--namespace",
                "demo",
                "run",
                "--worker-id",
                id,
                "--fast",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the worker binary");
        let stdout = child.stdout.take().expect("piped stdout");
        let sender = self.sender.clone();
        let worker = id.to_owned();
        std::thread::spawn(move || {
            for text in BufReader::new(stdout).lines().map_while(Result::ok) {
                let line = Line {
                    worker: worker.clone(),
                    text,
                    at: Instant::now(),
                };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        self.children.push((id.to_owned(), child));
        self.leaders.push((id.to_owned(), 0, false));
    }

    /// Reads lines until `done` says so; returns the line that satisfied it.
    fn wait_for(
        &mut self,
        what: &str,
        max: Duration,
        mut done: impl FnMut(&[(String, u64, bool)]) -> bool,
    ) -> Instant {
        let deadline = Instant::now() + max;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "timed out after {max:?} waiting for {what}; state {:?}",
                    self.leaders
                )
            });
            println!("[{}] {}", line.worker, line.text);
            if line.text.starts_with("STOPPING ") {
                self.forget(&line.worker);
            }
            if let Some(rest) = line.text.strip_prefix("VIEW ") {
                let field = |name: &str| {
                    rest.split_whitespace()
                        .find_map(|kv| kv.strip_prefix(&format!("{name}=")).map(str::to_owned))
                        .unwrap_or_default()
                };
                let epoch: u64 = field("epoch").parse().unwrap_or(0);
                let is_leader = field("is_leader") == "true";
                for entry in &mut self.leaders {
                    if entry.0 == line.worker {
                        entry.1 = epoch;
                        entry.2 = is_leader;
                    }
                }
                if done(&self.leaders) {
                    return line.at;
                }
            }
        }
    }

    fn leader(&self) -> Option<(String, u64)> {
        let leading: Vec<_> = self.leaders.iter().filter(|l| l.2).collect();
        assert!(
            leading.len() <= 1,
            "two processes say they lead: {:?}",
            self.leaders
        );
        leading.first().map(|l| (l.0.clone(), l.1))
    }

    fn child(&mut self, id: &str) -> &mut Child {
        &mut self
            .children
            .iter_mut()
            .find(|(w, _)| w == id)
            .expect("known worker")
            .1
    }

    fn forget(&mut self, id: &str) {
        for entry in &mut self.leaders {
            if entry.0 == id {
                entry.2 = false;
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn sigkill_fails_over_and_sigterm_hands_over_fast() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cluster = Cluster::start(dir.path(), &["p1", "p2", "p3"]);
    cluster.wait_for("a first leader", Duration::from_secs(15), |l| {
        l.iter().any(|w| w.2)
    });
    let (first, epoch) = cluster.leader().expect("a leader");
    // Let every worker follow the lease and the roster settle.
    std::thread::sleep(Duration::from_millis(1500));
    while let Ok(line) = cluster.lines.try_recv() {
        println!("[{}] {}", line.worker, line.text);
    }

    // SIGKILL: no release; another process leads after the lease times out.
    let killed_at = Instant::now();
    cluster.child(&first).kill().expect("SIGKILL");
    cluster.child(&first).wait().expect("reaped");
    cluster.forget(&first);
    let bound = LEASE_TIMEOUT + POLL + Duration::from_millis(200) + Duration::from_millis(1500);
    let led_at = cluster.wait_for("fail-over", bound + Duration::from_secs(5), |l| {
        l.iter().any(|w| w.2 && w.1 > epoch)
    });
    let failover = led_at.duration_since(killed_at);
    let (second, epoch2) = cluster.leader().expect("a new leader");
    println!("SIGKILL {first} -> {second} leads after {failover:?} (lease {LEASE_TIMEOUT:?}, bound {bound:?})");
    assert!(failover <= bound, "fail-over took {failover:?}");
    assert!(epoch2 > epoch);

    // SIGTERM: the leader releases; the last one leads within about a poll.
    std::thread::sleep(Duration::from_millis(500));
    let status = Command::new("kill")
        .args(["-TERM", &cluster.child(&second).id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let termed_at = Instant::now();
    let third_led = cluster.wait_for("hand-over", Duration::from_secs(10), |l| {
        l.iter().any(|w| w.2 && w.1 > epoch2)
    });
    let handover = third_led.duration_since(termed_at);
    let (third, _) = cluster.leader().expect("the last leader");
    println!("SIGTERM {second} -> {third} leads after {handover:?}");
    assert_ne!(third, second);
    assert!(
        handover <= Duration::from_millis(1200),
        "hand-over took {handover:?}, expected about one poll ({POLL:?})"
    );
    let exit = cluster.child(&second).wait().expect("graceful exit");
    assert!(exit.success(), "SIGTERM exits cleanly: {exit:?}");
}
