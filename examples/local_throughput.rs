//! Local-directory store throughput from several OS processes at once.
//!
//! ```text
//! cargo run --release --example local_throughput -- \
//!     --processes 8 --ops 500 [--mode all|independent|contended|create] [--dir PATH]
//! ```
//!
//! The example re-executes itself once per process (`--child ID`); the
//! children start together at a time the parent picks and report what they
//! did. Modes:
//!
//! * `independent`: each process compare-and-swaps its own key `--ops` times
//!   (a worker renewing its own record; the lock stripes rarely collide);
//! * `contended`: every process reads and compare-and-swaps one shared key
//!   `--ops` times (a lease everybody wants): reports attempts and wins;
//! * `create`: each process creates `--ops` fresh keys.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use coordinator_store::{LeaseStore, LocalDirStore, StoreError};
use futures::executor::block_on;

struct Args {
    processes: usize,
    ops: u64,
    mode: String,
    dir: Option<PathBuf>,
    child: Option<usize>,
    start_us: u64,
}

fn parse_args() -> Args {
    let mut args = Args {
        processes: 8,
        ops: 500,
        mode: "all".to_owned(),
        dir: None,
        child: None,
        start_us: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--processes" => {
                args.processes = value().parse().unwrap_or_else(|_| usage("--processes N"))
            }
            "--ops" => args.ops = value().parse().unwrap_or_else(|_| usage("--ops N")),
            "--mode" => args.mode = value(),
            "--dir" => args.dir = Some(PathBuf::from(value())),
            "--child" => args.child = Some(value().parse().unwrap_or_else(|_| usage("--child ID"))),
            "--start-us" => {
                args.start_us = value().parse().unwrap_or_else(|_| usage("--start-us T"))
            }
            other => usage(&format!("unknown argument {other}")),
        }
    }
    args
}

fn usage(problem: &str) -> ! {
    eprintln!(
        "{problem}\nusage: local_throughput [--processes 8] [--ops 500] \
         [--mode all|independent|contended|create] [--dir PATH]"
    );
    std::process::exit(2)
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

fn body(process: usize, i: u64) -> Bytes {
    Bytes::from(format!(
        r#"{{"format":1,"leader":"worker-{process:04}","epoch":42,"nonce":{i},"counter":{i},"lease_ms":15000,"padding":"{}"}}"#,
        "x".repeat(200)
    ))
}

/// Runs one child's share and prints `attempts wins end_us`.
fn child(args: &Args, id: usize, dir: PathBuf) {
    let store = LocalDirStore::new(dir);
    let now = now_us();
    if args.start_us > now {
        std::thread::sleep(Duration::from_micros(args.start_us - now));
    }
    let mut wins = 0u64;
    match args.mode.as_str() {
        "independent" => {
            let key = format!("independent/workers/w{id}.json");
            let mut version = block_on(store.put(&key, body(id, 0))).unwrap().version;
            for i in 1..=args.ops {
                version = block_on(store.compare_and_swap(&key, &version, body(id, i)))
                    .unwrap()
                    .version;
                wins += 1;
            }
        }
        "contended" => {
            let key = "contended/state.json";
            for i in 1..=args.ops {
                let current = block_on(store.get(key)).unwrap();
                let outcome = match current {
                    None => block_on(store.create(key, body(id, i))).map(|_| ()),
                    Some(o) => {
                        block_on(store.compare_and_swap(key, &o.version, body(id, i))).map(|_| ())
                    }
                };
                match outcome {
                    Ok(()) => wins += 1,
                    Err(StoreError::Conflict { .. } | StoreError::AlreadyExists { .. }) => {}
                    Err(e) => panic!("{e}"),
                }
            }
        }
        "create" => {
            for i in 1..=args.ops {
                let key = format!("create/p{id}/k{i}.json");
                block_on(store.create(&key, body(id, i))).unwrap();
                wins += 1;
            }
        }
        other => usage(&format!("unknown mode {other}")),
    }
    println!("{} {wins} {}", args.ops, now_us());
}

fn run_mode(args: &Args, mode: &str, dir: &std::path::Path) {
    let start_us = now_us() + 300_000 + 20_000 * args.processes as u64;
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..args.processes)
        .map(|id| {
            Command::new(&exe)
                .args([
                    "--child",
                    &id.to_string(),
                    "--mode",
                    mode,
                    "--ops",
                    &args.ops.to_string(),
                    "--start-us",
                    &start_us.to_string(),
                    "--dir",
                    &dir.display().to_string(),
                ])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let (mut attempts, mut wins, mut end) = (0u64, 0u64, 0u64);
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "a child failed: {}", output.status);
        let line = String::from_utf8(output.stdout).unwrap();
        let fields: Vec<u64> = line
            .split_whitespace()
            .map(|f| f.parse().unwrap())
            .collect();
        attempts += fields[0];
        wins += fields[1];
        end = end.max(fields[2]);
    }
    let seconds = end.saturating_sub(start_us) as f64 / 1e6;
    println!(
        "{mode:<12} processes={} ops/process={} attempts={attempts} successes={wins} wall={seconds:.3}s \
         attempts/s={:.0} successes/s={:.0}",
        args.processes,
        args.ops,
        attempts as f64 / seconds,
        wins as f64 / seconds,
    );
}

/// The disk's floor for one durable replace, without the store: write a
/// temp file, fsync it, rename it over the target, fsync the directory.
fn baseline(dir: &std::path::Path, ops: u32) {
    use std::io::Write;
    let dir = dir.join("baseline");
    std::fs::create_dir_all(&dir).unwrap();
    let start = std::time::Instant::now();
    for i in 0..ops {
        let temp = dir.join(".tmp.x");
        let mut file = std::fs::File::create(&temp).unwrap();
        file.write_all(&body(0, u64::from(i))).unwrap();
        file.sync_all().unwrap();
        std::fs::rename(&temp, dir.join("x")).unwrap();
        std::fs::File::open(&dir).unwrap().sync_all().unwrap();
    }
    let per_op = start.elapsed() / ops;
    println!(
        "baseline     raw temp write + fsync + rename + directory fsync, 1 process: {:.3} ms/op ({:.0} ops/s)",
        per_op.as_secs_f64() * 1e3,
        1.0 / per_op.as_secs_f64()
    );
}

fn main() {
    let args = parse_args();
    if let Some(id) = args.child {
        let dir = args
            .dir
            .clone()
            .unwrap_or_else(|| usage("--child needs --dir"));
        child(&args, id, dir);
        return;
    }
    let holder;
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => {
            holder = tempfile::tempdir().unwrap();
            holder.path().to_path_buf()
        }
    };
    let modes: Vec<&str> = match args.mode.as_str() {
        "all" => vec!["independent", "contended", "create"],
        one => vec![one],
    };
    println!(
        "local_throughput: dir={} processes={} ops={}",
        dir.display(),
        args.processes,
        args.ops
    );
    baseline(&dir, 100);
    for mode in modes {
        run_mode(&args, mode, &dir);
    }
}
