//! `coordinator-plugin-sim`: the plugins on the real runtime under paused
//! time, seeded store faults, clock drift and crashes (the testkit's
//! `plugins` layer), from the command line. Prints the report as JSON.
//!
//! ```text
//! coordinator-plugin-sim queue --workers 20 --messages 10000 --seed 61
//! coordinator-plugin-sim scheduler --workers 3 --hours 6 --seed 62
//! coordinator-plugin-sim ttl --workers 3 --records 5000 --seed 63 --faults none
//! coordinator-plugin-sim queue --workers 4 --messages 1000 --seed 24 --storms
//! ```
//!
//! Exit status ([`coordinator_testkit::exit_code`]): 0 when the run kept its
//! oracle's checks; 1 when the report could not be written; 2 when the
//! command line is wrong (clap's usage errors, and values it refuses); 3
//! when the run broke its oracle.

use clap::{Arg, ArgAction, ArgMatches, Command};
use coordinator_testkit::exit_code;
use coordinator_testkit::plugins::queue::{run_queue, QueueScenario};
use coordinator_testkit::plugins::scheduler::{run_scheduler, SchedulerScenario};
use coordinator_testkit::plugins::storms::Storms;
use coordinator_testkit::plugins::ttl::{run_ttl, TtlScenario};
use coordinator_testkit::plugins::World;

fn common(command: Command, workers: &'static str) -> Command {
    command
        .arg(
            Arg::new("workers")
                .long("workers")
                .default_value(workers)
                .help("worker processes"),
        )
        .arg(
            Arg::new("seed")
                .long("seed")
                .default_value("1")
                .help("root seed"),
        )
        .arg(
            Arg::new("faults")
                .long("faults")
                .default_value("chaos")
                .help("chaos | none (latency only)"),
        )
        .arg(
            Arg::new("storms")
                .long("storms")
                .action(ArgAction::SetTrue)
                .help("add correlated fault storms (`Storms::default()`: one a minute on average, 8-40 s, most requests of one worker or of everyone failing, ambiguous or losing their answer)"),
        )
        .arg(
            Arg::new("conditional-delete")
                .long("conditional-delete")
                .action(ArgAction::SetTrue)
                .help("the store has a conditional delete (default: tombstones, as without one)"),
        )
}

fn command() -> Command {
    Command::new("coordinator-plugin-sim")
        .about("The queue, scheduler and TTL plugins on the real runtime under paused time, seeded store faults and crashes, with an oracle")
        .subcommand_required(true)
        .subcommand(common(Command::new("queue").about("messages through workers with crashes"), "20")
            .arg(Arg::new("messages").long("messages").default_value("10000")))
        .subcommand(common(Command::new("scheduler").about("a per-minute job across fail-overs"), "3")
            .arg(Arg::new("hours").long("hours").default_value("6")))
        .subcommand(common(Command::new("ttl").about("records expiring across fail-overs"), "3")
            .arg(Arg::new("records").long("records").default_value("5000")))
        .after_help("Exit status:
  0  the run kept its oracle's checks
  1  the report could not be written
  2  the command line is wrong (a usage error, or a value the simulator refuses)
  3  the run broke its oracle")
}

/// A value on the command line the simulator refuses: a usage error.
fn fail(message: String) -> ! {
    eprintln!("coordinator-plugin-sim: {message}");
    std::process::exit(exit_code::USAGE);
}

fn num<T: std::str::FromStr>(m: &ArgMatches, name: &str) -> T {
    let text = m.get_one::<String>(name).map(String::as_str).unwrap_or("");
    text.parse()
        .unwrap_or_else(|_| fail(format!("--{name}: `{text}` is not a number")))
}

fn world(m: &ArgMatches, base: World) -> World {
    let mut world = base;
    match m.get_one::<String>("faults").map(String::as_str) {
        Some("chaos") | None => {}
        Some("none") => world.faults = None,
        Some(other) => fail(format!("--faults: `{other}`; use chaos or none")),
    }
    if m.get_flag("storms") {
        world.storms = Some(Storms::default());
    }
    world.conditional_delete = m.get_flag("conditional-delete");
    world
}

fn print<R: serde::Serialize>(report: &R, violations: usize) {
    match serde_json::to_string_pretty(report) {
        Ok(text) => println!("{text}"),
        Err(error) => {
            eprintln!("coordinator-plugin-sim: {error}");
            std::process::exit(exit_code::ERROR);
        }
    }
    if violations > 0 {
        std::process::exit(exit_code::INVARIANT_BROKEN);
    }
}

fn main() {
    let m = command().get_matches();
    match m.subcommand() {
        Some(("queue", m)) => {
            let mut sc = QueueScenario::new(num(m, "seed"), num(m, "workers"), num(m, "messages"));
            sc.world = world(m, sc.world);
            let report = run_queue(&sc);
            print(&report, report.violations.len());
        }
        Some(("scheduler", m)) => {
            let mut sc = SchedulerScenario::new(num(m, "seed"), num(m, "workers"), num(m, "hours"));
            sc.world = world(m, sc.world);
            let report = run_scheduler(&sc);
            print(&report, report.violations.len());
        }
        Some(("ttl", m)) => {
            let mut sc = TtlScenario::new(num(m, "seed"), num(m, "workers"), num(m, "records"));
            sc.world = world(m, sc.world);
            if sc.world.faults.is_none() {
                sc.late_allowance = std::time::Duration::ZERO;
            }
            let report = run_ttl(&sc);
            print(&report, report.violations.len());
        }
        _ => fail("a subcommand: queue, scheduler or ttl".to_owned()),
    }
}
