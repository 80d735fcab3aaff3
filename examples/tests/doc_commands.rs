//! The examples that README.md and docs/benchmarks.md tell a reader to run
//! (`cargo run --example …`, `./target/release/examples/…`, `$B …`), read
//! from the documents and run with the flags they show. `library`,
//! `multi_plugin` and `migration` are `test = true` examples that run
//! themselves; the rest are run here.
//!
//! The binaries are the debug builds `cargo test` makes of every example
//! before it runs the tests (`cargo test -p examples`, or the suite); a
//! nested `cargo run` would wait on the suite's build lock. The
//! measurements' lengths are cut so that the suite stays fast: the local
//! throughput's `--ops` to 20, the plugins benchmark's `--messages` to 100
//! (`--s3-messages` 20), and the election's request count to a 2 s window
//! after a 1 s warm-up (its optional arguments); every other flag is the
//! document's.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[path = "../../coordinator-testkit/tests/common/doc_commands.rs"]
mod doc_commands;

use std::path::PathBuf;
use std::process::Command;

use doc_commands::{commands, words, DocCommand};

/// The debug build of the example `name`, next to this test's binary.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo test -p examples` (which builds every example) \
         or `cargo build -p examples --examples` first",
        path.display()
    );
    path
}

/// The example a command runs and the arguments it gives it, if it runs one.
fn invocation(command: &DocCommand) -> Option<(String, Vec<String>)> {
    let words = words(&command.text);
    let program = words.first()?;
    if let Some(name) = program.strip_prefix("./target/release/examples/") {
        return Some((name.to_owned(), words[1..].to_vec()));
    }
    if program == "$B" {
        return Some(("election_requests".to_owned(), words[1..].to_vec()));
    }
    if program == "cargo" && words.get(1).map(String::as_str) == Some("run") {
        let at = words.iter().position(|w| w == "--example")?;
        let args = match words.iter().position(|w| w == "--") {
            Some(dashes) => words[dashes + 1..].to_vec(),
            None => Vec::new(),
        };
        return Some((words[at + 1].clone(), args));
    }
    None
}

fn documented() -> Vec<(DocCommand, String, Vec<String>)> {
    ["README.md", "docs/benchmarks.md"]
        .iter()
        .flat_map(|doc| commands(doc))
        .filter_map(|c| invocation(&c).map(|(name, args)| (c, name, args)))
        .collect()
}

/// Runs `name` with `args` through `bash` (the documents' arguments use
/// the emulators' variables), expecting a clean exit.
fn run(command: &DocCommand, name: &str, args: &[String]) -> String {
    let exe = example(name);
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("exec \"$EXAMPLE\" {}", args.join(" ")))
        .env("EXAMPLE", &exe)
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "{}:{}: `{}` ({name} {args:?}) exited {:?}",
        command.doc,
        command.line,
        command.text,
        out.status
    );
    stdout
}

fn set(args: &mut Vec<String>, flag: &str, value: &str) {
    match args.iter().position(|a| a == flag) {
        Some(at) => args[at + 1] = value.to_owned(),
        None => args.extend([flag.to_owned(), value.to_owned()]),
    }
}

fn runs_of(name: &str) -> Vec<(DocCommand, String, Vec<String>)> {
    let found: Vec<_> = documented()
        .into_iter()
        .filter(|(_, n, _)| n == name)
        .collect();
    assert!(
        !found.is_empty(),
        "no document runs the example {name} any more"
    );
    found
}

#[test]
fn the_readme_demo_runs_to_its_summary() {
    for (command, name, args) in runs_of("global_coordinator") {
        let out = run(&command, &name, &args);
        assert!(out.contains("done. Summary:"), "{out}");
        assert!(out.contains("fail-over after crash"), "{out}");
    }
}

#[test]
fn the_local_throughput_runs_with_the_documented_process_counts() {
    let found = runs_of("local_throughput");
    assert!(found.len() >= 2);
    for (command, name, mut args) in found {
        set(&mut args, "--ops", "20");
        let out = run(&command, &name, &args);
        let processes = &args[args.iter().position(|a| a == "--processes").unwrap() + 1];
        assert!(
            out.contains(&format!("processes={processes} ops/process=20")),
            "{out}"
        );
    }
}

#[test]
fn the_plugins_benchmark_runs_with_its_documented_flags() {
    for (command, name, mut args) in runs_of("plugins_bench") {
        // The flags the document lists under the command.
        set(&mut args, "--messages", "100");
        set(&mut args, "--s3-messages", "20");
        set(&mut args, "--workers", "8");
        set(&mut args, "--concurrency", "4");
        let out = run(&command, &name, &args);
        for kind in ["queue [local directory]", "ttl:", "scheduler:"] {
            assert!(out.contains(kind), "{out}");
        }
    }
}

#[test]
fn the_election_request_count_runs_on_every_documented_store_there_is() {
    let found = runs_of("election_requests");
    assert_eq!(found.len(), 3, "S3, Azure and memory");
    for (command, name, mut args) in found {
        let needs = ["COORD_S3_ENDPOINT", "COORD_AZURE_ENDPOINT"]
            .into_iter()
            .find(|var| args[0].contains(var));
        if let Some(var) = needs {
            if std::env::var_os(var).is_none() {
                let require = if var.contains("S3") {
                    "COORD_REQUIRE_S3"
                } else {
                    "COORD_REQUIRE_AZURE"
                };
                assert!(
                    std::env::var(require).as_deref() != Ok("1"),
                    "{require}=1 but {var} is unset"
                );
                println!("SKIPPED `{}`: {var} is unset", command.text);
                continue;
            }
        }
        // SECONDS, then the optional WORKERS (3, the default) and WARM-UP.
        assert_eq!(args.len(), 2, "{args:?}");
        args[1] = "2".to_owned();
        args.extend(["3".to_owned(), "1".to_owned()]);
        let out = run(&command, &name, &args);
        assert!(out.contains("| leader |"), "{out}");
    }
}

/// The README's `cargo add` lines cannot run here (the crates are not on
/// crates.io yet, as the README says, and a test must not touch the
/// network); what they must agree with is checked: the `[dependencies]`
/// block the README says they give names the same crates and tokio
/// features, at the workspace's version.
#[test]
fn the_readme_cargo_add_lines_give_the_dependencies_it_shows() {
    let adds: Vec<Vec<String>> = commands("README.md")
        .iter()
        .map(|c| words(&c.text))
        .filter(|w| w.len() > 2 && w[0] == "cargo" && w[1] == "add")
        .collect();
    assert_eq!(adds.len(), 2, "{adds:?}");
    let readme = std::fs::read_to_string(doc_commands::root().join("README.md")).unwrap();
    let start = readme.find("```toml\n[dependencies]").expect("the block") + "```toml\n".len();
    let block = &readme[start..start + readme[start..].find("```").unwrap()];
    let shown: toml::Table = toml::from_str(block).unwrap();
    let shown = shown["dependencies"].as_table().unwrap();
    let mut added = Vec::new();
    for add in &adds {
        let features = add.iter().position(|w| w == "--features");
        let crates = &add[2..features.unwrap_or(add.len())];
        for name in crates {
            added.push(name.clone());
            let dependency = &shown
                .get(name)
                .unwrap_or_else(|| panic!("`cargo add {name}` but the block has no {name}"));
            if let Some(at) = features {
                let want: Vec<&str> = add[at + 1].split(',').collect();
                let got: Vec<&str> = dependency["features"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f.as_str().unwrap())
                    .collect();
                assert_eq!(got, want, "{name}'s features");
            }
        }
    }
    let mut listed: Vec<&String> = shown.keys().collect();
    listed.sort();
    added.sort();
    assert_eq!(listed, added.iter().collect::<Vec<_>>());
    let manifest = std::fs::read_to_string(doc_commands::root().join("Cargo.toml")).unwrap();
    let manifest: toml::Table = toml::from_str(&manifest).unwrap();
    let version = manifest["workspace"]["package"]["version"]
        .as_str()
        .unwrap();
    for name in ["coordinator-runtime", "coordinator-store"] {
        let req = shown[name].as_str().unwrap();
        assert!(
            version.starts_with(&format!("{req}.")),
            "{name} = \"{req}\" does not match the workspace's {version}"
        );
    }
}

/// The README says what `cargo run --example library` prints (in running
/// text): the example must print it. `library` is a `test = true` example,
/// so `cargo test` builds it only as its test harness (`library-HASH`),
/// whose `the_readme_program_runs` calls the example's `main`: that is run
/// here, the newest build of it, with its output shown.
#[test]
fn the_library_example_prints_what_the_readme_says() {
    let readme = std::fs::read_to_string(doc_commands::root().join("README.md")).unwrap();
    let readme = readme.split_whitespace().collect::<Vec<_>>().join(" ");
    let claim = "`cargo run --example library` prints `";
    let at = readme.find(claim).expect("the README's sentence") + claim.len();
    let printed = &readme[at..at + readme[at..].find('`').unwrap()];
    let dir = example("global_coordinator").parent().unwrap().to_owned();
    let harness = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("library-") && p.extension().is_none()
        })
        .max_by_key(|p| p.metadata().unwrap().modified().unwrap())
        .expect("the library example's test harness (cargo test -p examples builds it)");
    let out = Command::new(&harness)
        .args(["the_readme_program_runs", "--exact", "--nocapture"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}: {stdout}", harness.display());
    assert!(
        stdout.contains("1 passed") && stdout.lines().any(|l| l == printed),
        "README.md says `cargo run --example library` prints `{printed}`; it printed\n{stdout}"
    );
}
