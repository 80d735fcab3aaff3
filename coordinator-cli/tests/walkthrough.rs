//! The README's walk-through, run as written: every `console` block of its
//! "Walk-through" section (two `run` workers, `status` and `watch` for the
//! operator, on a local directory, default timings), each command run
//! through `bash` with the README's `/tmp/coord` swapped for a temporary
//! directory, and its output compared with the quoted output. Times, ages,
//! ids and counts differ between runs: every word with a digit is compared
//! as `#`, and runs of spaces as one. The watch's lines about the
//! hand-over (`(was …)`) depend on whether a poll fell between the release
//! and the take-over, so they are checked by kind only.
#![cfg(unix)]
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

/// A `$ command` and the lines the README quotes after it.
#[derive(Debug)]
struct Step {
    command: String,
    output: Vec<String>,
}

/// The walk-through section's console blocks, as steps.
fn steps() -> Vec<Step> {
    let readme = include_str!("../README.md");
    let start = readme.find("## Walk-through").expect("a walk-through");
    let section = &readme[start..];
    let end = section[3..].find("\n## ").map_or(section.len(), |e| e + 3);
    let mut steps: Vec<Step> = Vec::new();
    let mut in_block = false;
    for line in section[..end].lines() {
        if line.starts_with("```") {
            in_block = line == "```console";
            continue;
        }
        if !in_block {
            continue;
        }
        if let Some(command) = line.strip_prefix("$ ") {
            steps.push(Step {
                command: command.to_owned(),
                output: Vec::new(),
            });
        } else if let Some(step) = steps.last_mut() {
            step.output.push(line.to_owned());
        }
    }
    steps
}

/// Every word with a digit as `#`, runs of spaces as one.
fn normalize(line: &str) -> String {
    let mut out = String::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.chars().any(|c| c.is_ascii_digit()) {
            out.push('#');
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in line.chars() {
        if c.is_ascii_alphanumeric() || ".:-_".contains(c) {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            if !(c == ' ' && out.ends_with(' ')) {
                out.push(c);
            }
        }
    }
    flush(&mut word, &mut out);
    out.trim_end().to_owned()
}

struct Walk {
    dir: tempfile::TempDir,
    children: Vec<Child>,
}

impl Walk {
    fn command(&self, text: &str) -> Command {
        let text = text.replace(
            "/tmp/coord",
            &self.dir.path().join("coord").display().to_string(),
        );
        let bin_dir = std::path::Path::new(common::BIN).parent().unwrap();
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut command = Command::new("bash");
        command
            .args(["-c", &format!("exec {text}")])
            .env("PATH", path)
            .env(
                "COORDINATOR_URL",
                format!("file://{}", self.dir.path().join("coord").display()),
            )
            .env("COORDINATOR_NAMESPACE", "demo")
            .env_remove("COORDINATOR_CONFIG");
        command
    }

    /// Starts a long-running command; its stdout lines arrive on the channel.
    fn spawn(&mut self, text: &str) -> (u32, Receiver<String>) {
        let mut child = self
            .command(text)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let pid = child.id();
        self.children.push(child);
        (pid, rx)
    }
}

impl Drop for Walk {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn lines(rx: &Receiver<String>, n: usize, who: &str) -> Vec<String> {
    (0..n)
        .map(|_| {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("{who}: no line within 60 s"));
            println!("[{who}] {line}");
            line
        })
        .collect()
}

fn assert_same(step: &Step, actual: &[String]) {
    let want: Vec<String> = step.output.iter().map(|l| normalize(l)).collect();
    let got: Vec<String> = actual.iter().map(|l| normalize(l)).collect();
    assert_eq!(
        got,
        want,
        "`{}`: the README quotes\n{}\nthe command printed\n{}",
        step.command,
        step.output.join("\n"),
        actual.join("\n")
    );
}

#[test]
fn the_readme_walk_through_prints_what_it_quotes() {
    let steps = steps();
    let commands: Vec<&str> = steps.iter().map(|s| s.command.as_str()).collect();
    assert_eq!(
        commands,
        [
            "export COORDINATOR_URL=file:///tmp/coord COORDINATOR_NAMESPACE=demo",
            "mkdir -p /tmp/coord",
            "coordinator run --worker-id w1",
            "coordinator run --worker-id w2",
            "coordinator status",
            "coordinator watch --interval 1s",
            "coordinator status | head -3; echo \"exit ${PIPESTATUS[0]}\"",
        ],
        "the walk-through changed: update this test"
    );
    let step = |command: &str| steps.iter().find(|s| s.command == command).unwrap();
    let mut walk = Walk {
        dir: tempfile::tempdir().unwrap(),
        children: Vec::new(),
    };
    // The export is what `command` sets for every step.
    assert!(walk
        .command("mkdir -p /tmp/coord")
        .status()
        .unwrap()
        .success());

    // The watch runs from before the workers start.
    let (watch, watch_lines) = walk.spawn("coordinator watch --interval 1s");
    let header = lines(&watch_lines, 1, "watch");

    let w1_step = step("coordinator run --worker-id w1");
    let (w1, w1_lines) = walk.spawn(&w1_step.command);
    assert_same(w1_step, &lines(&w1_lines, w1_step.output.len(), "w1"));
    let w2_step = step("coordinator run --worker-id w2");
    let (w2, w2_lines) = walk.spawn(&w2_step.command);
    assert_same(w2_step, &lines(&w2_lines, w2_step.output.len(), "w2"));

    // Status once the leader has listed w2 and published it (the worker
    // list interval) and named it successor (the next renewal).
    let status_step = step("coordinator status");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let out = walk.command("coordinator status").output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.contains("roster            w1, w2") && text.contains("successors        w2") {
            assert_eq!(out.status.code(), Some(0), "{text}");
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "w2 never reached the roster:\n{text}"
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    println!("[status]\n{status}");
    let status: Vec<String> = status.lines().map(str::to_owned).collect();
    assert_same(status_step, &status);

    // Ctrl-C w1: w2 takes over; then Ctrl-C w2.
    signal(w1, "INT");
    let mut w2_leads = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !w2_leads {
        assert!(Instant::now() < deadline, "w2 never took over");
        let line = lines(&w2_lines, 1, "w2").remove(0);
        w2_leads = line.contains("leader=w2") && line.contains("is_leader=true");
    }
    // As in the README: w2 is stopped once the watch has shown it leading.
    let mut watched = header;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !watched.iter().any(|l| l.contains("w2 leads at epoch")) {
        assert!(
            Instant::now() < deadline,
            "the watch never showed w2 leading"
        );
        watched.extend(lines(&watch_lines, 1, "watch"));
    }
    signal(w2, "INT");
    for child in &mut walk.children[1..] {
        assert!(child.wait().unwrap().success());
    }
    // The watch sees w2's release and departure within a poll or two.
    std::thread::sleep(Duration::from_secs(3));
    signal(watch, "INT");
    while let Ok(line) = watch_lines.recv_timeout(Duration::from_secs(10)) {
        println!("[watch] {line}");
        watched.push(line);
    }
    let watch_step = step("coordinator watch --interval 1s");
    let got: Vec<String> = watched.iter().map(|l| normalize(l)).collect();
    assert_eq!(got[0], normalize(&watch_step.output[0]), "the cost line");
    assert_eq!(
        got.last().map(String::as_str),
        Some(normalize(watch_step.output.last().unwrap()).as_str()),
        "the request count at the end"
    );
    for quoted in &watch_step.output {
        let want = normalize(quoted);
        if quoted.contains("(was ") {
            // The hand-over's lines: checked by kind below.
            continue;
        }
        assert!(
            got.contains(&want),
            "watch never printed `{quoted}`:\n{}",
            watched.join("\n")
        );
    }
    let kind = |k: &str| {
        got.iter()
            .filter(|l| l.starts_with(&format!("# {k} ")))
            .count()
    };
    assert!(
        kind("leader") >= 2,
        "w1 then w2 led:\n{}",
        watched.join("\n")
    );
    assert!(
        kind("released") >= 1,
        "w2 released:\n{}",
        watched.join("\n")
    );

    let last = step("coordinator status | head -3; echo \"exit ${PIPESTATUS[0]}\"");
    let out = walk.command(&last.command).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("[status | head]\n{text}");
    let got: Vec<String> = text.lines().map(str::to_owned).collect();
    assert_same(last, &got);
}

#[test]
fn normalizing_keeps_words_and_hides_numbers() {
    assert_eq!(
        normalize("w1      leader    15.0s   no"),
        normalize("w2  leader 9.8s no")
    );
    assert_eq!(
        normalize("epoch             1 (reserved 2)"),
        "epoch # (reserved #)"
    );
    assert_ne!(
        normalize("released          no"),
        normalize("released          yes")
    );
}
