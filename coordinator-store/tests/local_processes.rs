//! Cross-process tests of [`LocalDirStore`]: 8 OS processes race
//! compare-and-swap and create-if-absent on one directory, and writers are
//! killed mid-write.
//!
//! The child processes are this test binary itself, re-executed through
//! `std::env::current_exe()` with `--exact child_process_entry` and the
//! environment variable `COORD_LOCAL_CHILD` naming the child's mode. That
//! needs no extra `[[bin]]` target (which would be installed with the crate)
//! and no example (which `cargo test` does not build for integration tests),
//! and the child runs exactly the store code under test. Without the
//! variable, `child_process_entry` returns at once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use coordinator_store::{LeaseStore, LeaseStoreExt, LocalDirStore, StoreError, Version};
use futures::executor::block_on;

const CHILD_ENV: &str = "COORD_LOCAL_CHILD";
const PROCESSES: usize = 8;
const ROUNDS: usize = 20;
const SLOT_MS: u64 = 25;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

fn spawn_child(mode: &str, envs: &[(&str, String)]) -> Child {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "child_process_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, mode)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (key, value) in envs {
        command.env(key, value);
    }
    command.spawn().unwrap()
}

/// Not a test of its own: the entry point of the child processes.
#[test]
fn child_process_entry() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    let var = |name: &str| std::env::var(name).unwrap();
    let root = PathBuf::from(var("COORD_LOCAL_ROOT"));
    let store = LocalDirStore::new(root);
    match mode.as_str() {
        "cas" | "create" => race_child(&store, &mode, &var),
        "writer" => writer_child(&store),
        "putter" => putter_child(&store),
        other => panic!("unknown child mode {other}"),
    }
}

/// One racer: in round `r` (at `start + r × SLOT_MS`) it attempts its write
/// and records `round outcome start_us end_us` in its output file.
fn race_child(store: &LocalDirStore, mode: &str, var: &dyn Fn(&str) -> String) {
    let id: usize = var("COORD_LOCAL_ID").parse().unwrap();
    let start_ms: u64 = var("COORD_LOCAL_START_MS").parse().unwrap();
    let versions: Vec<Version> = var("COORD_LOCAL_VERSIONS")
        .split(',')
        .filter(|v| !v.is_empty())
        .map(Version::new)
        .collect();
    let mut lines = String::new();
    for round in 0..ROUNDS {
        let slot = start_ms + round as u64 * SLOT_MS;
        let now = now_ms();
        if slot > now {
            std::thread::sleep(Duration::from_millis(slot - now));
        }
        let key = format!("race/{mode}/round-{round:02}.json");
        let body = Bytes::from(format!("process {id} round {round}"));
        let began = now_us();
        let outcome = match versions.get(round) {
            Some(version) if mode == "cas" => block_on(store.compare_and_swap(&key, version, body)),
            _ => block_on(store.create(&key, body)),
        };
        let ended = now_us();
        let word = match outcome {
            Ok(_) => "win",
            Err(StoreError::Conflict { .. }) if mode == "cas" => "lose",
            Err(StoreError::AlreadyExists { .. }) if mode == "create" => "lose",
            Err(e) => panic!("process {id} round {round}: unexpected error: {e}"),
        };
        lines.push_str(&format!("{round} {word} {began} {ended}\n"));
    }
    std::fs::write(var("COORD_LOCAL_OUT"), lines).unwrap();
}

/// Rewrites one key with 256 KiB bodies as fast as it can until killed
/// (or for 20 s at most).
fn writer_child(store: &LocalDirStore) {
    let key = "crash/state.json";
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut counter: u64 = 0;
    while Instant::now() < deadline {
        counter += 1;
        let body = crash_body(counter);
        let current = block_on(store.get(key)).unwrap();
        let result = match current {
            None => block_on(store.create(key, body)).map(|_| ()),
            Some(object) => {
                block_on(store.compare_and_swap(key, &object.version, body)).map(|_| ())
            }
        };
        result.unwrap();
    }
}

/// Puts one key with 256 KiB bodies as fast as it can until killed (or for
/// 20 s at most): most of its time is spent holding the key's lock.
fn putter_child(store: &LocalDirStore) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut counter: u64 = 0;
    while Instant::now() < deadline {
        counter += 1;
        block_on(store.put(STOPPED_KEY, crash_body(counter))).unwrap();
    }
}

/// The key of `a_stopped_lock_holder_is_named_by_pid`.
const STOPPED_KEY: &str = "stopped/state.json";

/// A body that can be checked for completeness: a header with the counter,
/// then 256 KiB of one byte derived from it.
fn crash_body(counter: u64) -> Bytes {
    let fill = b'a' + (counter % 26) as u8;
    let mut body = format!("{counter:012}:").into_bytes();
    body.extend(std::iter::repeat_n(fill, 256 * 1024));
    Bytes::from(body)
}

fn check_crash_body(body: &[u8]) -> u64 {
    assert_eq!(
        body.len(),
        13 + 256 * 1024,
        "torn body of {} bytes",
        body.len()
    );
    let counter: u64 = std::str::from_utf8(&body[..12]).unwrap().parse().unwrap();
    assert_eq!(body, &crash_body(counter)[..], "body {counter} is corrupt");
    counter
}

fn wait_ok(child: Child, what: &str) {
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{what} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs one race of `PROCESSES` processes over `ROUNDS` rounds and checks
/// that each round has exactly one winner whose body is stored.
fn race(mode: &str) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = LocalDirStore::new(root.clone());
    let mut versions = Vec::new();
    if mode == "cas" {
        for round in 0..ROUNDS {
            let key = format!("race/cas/round-{round:02}.json");
            let written = block_on(store.create(&key, format!("initial {round}").into())).unwrap();
            versions.push(written.version.as_str().to_owned());
        }
    }
    let start_ms = now_ms() + 600;
    let children: Vec<(usize, Child, PathBuf)> = (0..PROCESSES)
        .map(|id| {
            let out = dir.path().join(format!("child-{id}.txt"));
            let child = spawn_child(
                mode,
                &[
                    ("COORD_LOCAL_ROOT", root.display().to_string()),
                    ("COORD_LOCAL_ID", id.to_string()),
                    ("COORD_LOCAL_START_MS", start_ms.to_string()),
                    ("COORD_LOCAL_VERSIONS", versions.join(",")),
                    ("COORD_LOCAL_OUT", out.display().to_string()),
                ],
            );
            (id, child, out)
        })
        .collect();

    // round -> [(process, won, start_us, end_us)]
    let mut rounds: BTreeMap<usize, Vec<(usize, bool, u64, u64)>> = BTreeMap::new();
    for (id, child, out) in children {
        wait_ok(child, &format!("child process {id}"));
        for line in std::fs::read_to_string(&out).unwrap().lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            let round: usize = fields[0].parse().unwrap();
            rounds.entry(round).or_default().push((
                id,
                fields[1] == "win",
                fields[2].parse().unwrap(),
                fields[3].parse().unwrap(),
            ));
        }
    }
    assert_eq!(rounds.len(), ROUNDS);
    let (mut raced, mut all_at_once) = (0, 0);
    for (round, attempts) in &rounds {
        assert_eq!(attempts.len(), PROCESSES, "round {round}: {attempts:?}");
        let winners: Vec<usize> = attempts.iter().filter(|a| a.1).map(|a| a.0).collect();
        assert_eq!(
            winners.len(),
            1,
            "{mode} round {round}: exactly one process may win, got {winners:?}"
        );
        let key = format!("race/{mode}/round-{round:02}.json");
        let stored = block_on(store.get(&key)).unwrap().unwrap();
        assert_eq!(
            stored.body,
            Bytes::from(format!("process {} round {round}", winners[0])),
            "{key} must hold the winner's body"
        );
        let first_end = attempts.iter().map(|a| a.3).min().unwrap();
        let last_start = attempts.iter().map(|a| a.2).max().unwrap();
        if last_start < first_end {
            all_at_once += 1;
        }
        let overlaps = attempts
            .iter()
            .enumerate()
            .any(|(i, a)| attempts[i + 1..].iter().any(|b| a.2 < b.3 && b.2 < a.3));
        if overlaps {
            raced += 1;
        }
    }
    eprintln!(
        "{mode}: {PROCESSES} processes x {ROUNDS} rounds, one winner each; \
         {raced} rounds had overlapping attempts, {all_at_once} had all {PROCESSES} in flight at once"
    );
    // Otherwise the test proved nothing about concurrency.
    assert!(
        raced > 0,
        "{mode}: no round had two attempts in flight at once"
    );
}

#[test]
fn eight_processes_race_compare_and_swap() {
    race("cas");
}

#[test]
fn eight_processes_race_create() {
    race("create");
}

#[test]
fn a_temp_file_left_by_a_crash_is_ignored_and_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let store = LocalDirStore::new(root.clone());
    let good = block_on(store.create("ns/state.json", "good".into())).unwrap();
    // A crash after writing the temp file and before the rename.
    let crash = |name: &str| std::fs::write(root.join("ns").join(name), b"torn {\"fo").unwrap();
    crash(".tmp.state.json");
    crash(".tmp.never-renamed.json");

    let listed = block_on(store.list("")).unwrap();
    let keys: Vec<&str> = listed.iter().map(|m| m.key.as_str()).collect();
    assert_eq!(keys, ["ns/state.json"]);
    assert_eq!(listed[0].version, good.version);
    let got = block_on(store.get("ns/state.json")).unwrap().unwrap();
    assert_eq!(
        (got.body, got.version.clone()),
        (Bytes::from("good"), good.version.clone())
    );
    assert!(block_on(store.get("ns/never-renamed.json"))
        .unwrap()
        .is_none());

    // The next write of the key overwrites its leftover temp file.
    let next =
        block_on(store.compare_and_swap("ns/state.json", &good.version, "next".into())).unwrap();
    assert!(!root.join("ns/.tmp.state.json").exists());
    assert_eq!(
        block_on(store.get("ns/state.json"))
            .unwrap()
            .unwrap()
            .version,
        next.version
    );
    // The sweep removes the rest.
    assert_eq!(block_on(store.remove_stale_temp_files()).unwrap(), 1);
    assert!(!root.join("ns/.tmp.never-renamed.json").exists());
    assert_eq!(block_on(store.list("ns")).unwrap().len(), 1);
}

#[test]
fn a_writer_killed_mid_write_leaves_a_whole_value() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = LocalDirStore::new(root.clone());
    for kill in 0..3 {
        let mut child = spawn_child(
            "writer",
            &[("COORD_LOCAL_ROOT", root.display().to_string())],
        );
        // Let it write a few times past what the previous writer left.
        let waited = Instant::now();
        loop {
            if let Some(object) = block_on(store.get("crash/state.json")).unwrap() {
                let counter = check_crash_body(&object.body);
                if counter >= 3 {
                    break;
                }
            }
            assert!(
                waited.elapsed() < Duration::from_secs(15),
                "writer {kill} made no progress"
            );
            std::thread::sleep(Duration::from_millis(2 + 7 * kill));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        // Whatever it was doing, the key holds one whole body, and a listing
        // shows only the key.
        let object = block_on(store.get("crash/state.json")).unwrap().unwrap();
        check_crash_body(&object.body);
        let listed = block_on(store.list("crash")).unwrap();
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0].version, object.version);
        // The store still works: a compare-and-swap on what we read succeeds.
        block_on(store.compare_and_swap("crash/state.json", &object.version, crash_body(0)))
            .unwrap();
    }
    // Clean any temp file the last kill left.
    block_on(store.remove_stale_temp_files()).unwrap();
    assert!(std::fs::read_dir(root.join("crash")).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with(".tmp.")));
}

/// A process stopped (SIGSTOP) while it holds a key's lock blocks that key
/// for as long as it stays stopped; a writer that times out waiting gets
/// an error naming the stopped process's pid.
#[cfg(unix)]
#[test]
fn a_stopped_lock_holder_is_named_by_pid() {
    use rustix::process::{kill_process, Pid, Signal};

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = LocalDirStore::new(root.clone()).with_lock_timeout(Duration::from_millis(300));
    /// Kills the child even if an assertion fails while it is stopped (a
    /// stopped child would otherwise outlive the test).
    struct Killed(Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let child = Killed(spawn_child(
        "putter",
        &[("COORD_LOCAL_ROOT", root.display().to_string())],
    ));
    let pid = child.0.id();
    let raw = Pid::from_raw(i32::try_from(pid).unwrap()).unwrap();
    let waited = Instant::now();
    while block_on(store.get(STOPPED_KEY)).unwrap().is_none() {
        assert!(
            waited.elapsed() < Duration::from_secs(15),
            "the putter made no progress"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // Stop it at random moments until one finds it holding the lock (it
    // holds it most of the time); a stop outside the lock lets our put
    // through, which the putter does not mind.
    let mut named = None;
    for _ in 0..50 {
        kill_process(raw, Signal::STOP).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let outcome = block_on(store.put(STOPPED_KEY, "parent".into()));
        kill_process(raw, Signal::CONT).unwrap();
        match outcome {
            Ok(_) => {}
            Err(e @ StoreError::Unavailable { .. }) => {
                let text = e.to_string();
                // Stopped between taking the lock and recording its pid,
                // the file still names the previous holder (a hint, as
                // documented): try again.
                if text.contains(&format!("process {pid} ")) {
                    named = Some(text);
                    break;
                }
            }
            Err(e) => panic!("unexpected error: {e}"),
        }
        std::thread::sleep(Duration::from_millis(3));
    }
    drop(child);
    let text = named.expect("50 stops never caught the putter holding its lock");
    assert!(
        text.contains(&format!("is process {pid} stopped?")),
        "{text}"
    );
    assert!(text.contains(&format!("kill -CONT {pid}")), "{text}");
    // Resumed and gone, it blocks nobody.
    block_on(store.put(STOPPED_KEY, "after".into())).unwrap();
}
