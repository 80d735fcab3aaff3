//! The lines `coordinator run` prints: one per event, as `KEY=value` text
//! or (`--events-json`) one JSON object stamped with `mono_ns`.
//!
//! ```text
//! READY worker=w1 namespace=demo
//! VIEW worker=w1 namespace=demo leader=w2 epoch=3 is_leader=false
//! STOPPING worker=w1
//! STOPPED worker=w1
//! ```
//!
//! ```text
//! {"event":"ready","mono_ns":81234567890,"namespace":"demo","worker":"w1"}
//! {"epoch":3,"event":"view","is_leader":false,"leader":"w2","mono_ns":81290000000,"namespace":"demo","worker":"w1"}
//! {"event":"stopping","mono_ns":81300000000,"worker":"w1"}
//! {"event":"stopped","mono_ns":81310000000,"worker":"w1"}
//! ```
//!
//! `mono_ns` is the instant the event was seen on `CLOCK_MONOTONIC`, in
//! nanoseconds: one clock shared by every process on a Linux machine, so
//! the wire benchmark (coordinator-testkit's `wire` module) compares
//! workers' lines exactly. It is `null` on other systems.

use serde_json::{json, Value};

/// One event of a `run` worker.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Event {
    /// Joined `namespace`'s election.
    Ready { worker: String, namespace: String },
    /// A change of leader, epoch or role in `namespace` (not each renewal).
    View {
        worker: String,
        namespace: String,
        leader: Option<String>,
        epoch: u64,
        is_leader: bool,
    },
    /// `/metrics` and `/healthz` are served at `addr`.
    Metrics { addr: String },
    /// SIGTERM or Ctrl-C: releasing the leases.
    Stopping { worker: String },
    /// Released; the process exits.
    Stopped { worker: String },
}

/// An event with the instant it was seen.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Stamped {
    pub(crate) event: Event,
    /// `CLOCK_MONOTONIC` in nanoseconds, where there is one.
    pub(crate) mono_ns: Option<u64>,
}

impl Event {
    /// This event, stamped now.
    pub(crate) fn now(self) -> Stamped {
        Stamped {
            event: self,
            mono_ns: monotonic_ns(),
        }
    }

    /// The text line.
    pub(crate) fn text(&self) -> String {
        match self {
            Self::Ready { worker, namespace } => {
                format!("READY worker={worker} namespace={namespace}")
            }
            Self::View {
                worker,
                namespace,
                leader,
                epoch,
                is_leader,
            } => format!(
                "VIEW worker={worker} namespace={namespace} leader={} epoch={epoch} is_leader={is_leader}",
                leader.as_deref().unwrap_or("none")
            ),
            Self::Metrics { addr } => {
                format!("METRICS http://{addr}/metrics http://{addr}/healthz")
            }
            Self::Stopping { worker } => format!("STOPPING worker={worker}"),
            Self::Stopped { worker } => format!("STOPPED worker={worker}"),
        }
    }
}

impl Stamped {
    /// The `--events-json` object.
    pub(crate) fn json(&self) -> Value {
        let mut value = match &self.event {
            Event::Ready { worker, namespace } => {
                json!({"event": "ready", "worker": worker, "namespace": namespace})
            }
            Event::View {
                worker,
                namespace,
                leader,
                epoch,
                is_leader,
            } => json!({
                "event": "view",
                "worker": worker,
                "namespace": namespace,
                "leader": leader,
                "epoch": epoch,
                "is_leader": is_leader,
            }),
            Event::Metrics { addr } => json!({
                "event": "metrics",
                "metrics": format!("http://{addr}/metrics"),
                "healthz": format!("http://{addr}/healthz"),
            }),
            Event::Stopping { worker } => json!({"event": "stopping", "worker": worker}),
            Event::Stopped { worker } => json!({"event": "stopped", "worker": worker}),
        };
        if let Some(object) = value.as_object_mut() {
            object.insert("mono_ns".into(), json!(self.mono_ns));
        }
        value
    }

    /// The line to print: the text, or with `json` the JSON object.
    pub(crate) fn line(&self, json: bool) -> String {
        if json {
            self.json().to_string()
        } else {
            self.event.text()
        }
    }
}

/// Now on `CLOCK_MONOTONIC`, in nanoseconds: the same clock in every
/// process of the machine (not `CLOCK_BOOTTIME`, the election's clock,
/// because other programs, Python's `time.monotonic()` among them, read
/// this one).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn monotonic_ns() -> Option<u64> {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let secs = u64::try_from(ts.tv_sec).ok()?;
    let nanos = u64::try_from(ts.tv_nsec).ok()?;
    Some(secs.saturating_mul(1_000_000_000).saturating_add(nanos))
}

/// No machine-wide clock is read elsewhere: `mono_ns` is `null`.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn monotonic_ns() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> Event {
        Event::View {
            worker: "w1".into(),
            namespace: "demo".into(),
            leader: Some("w2".into()),
            epoch: 3,
            is_leader: false,
        }
    }

    #[test]
    fn text_and_json_carry_the_same_fields() {
        let stamped = Stamped {
            event: view(),
            mono_ns: Some(81_290_000_000),
        };
        assert_eq!(
            stamped.line(false),
            "VIEW worker=w1 namespace=demo leader=w2 epoch=3 is_leader=false"
        );
        assert_eq!(
            stamped.line(true),
            r#"{"epoch":3,"event":"view","is_leader":false,"leader":"w2","mono_ns":81290000000,"namespace":"demo","worker":"w1"}"#
        );
        let none = Event::View {
            worker: "w1".into(),
            namespace: "demo".into(),
            leader: None,
            epoch: 0,
            is_leader: false,
        };
        assert!(none.text().contains("leader=none"));
        let unstamped = Stamped {
            event: none,
            mono_ns: None,
        };
        assert_eq!(unstamped.json()["leader"], Value::Null);
        assert_eq!(unstamped.json()["mono_ns"], Value::Null);
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn the_stamp_is_the_machines_monotonic_clock() {
        let a = Event::Stopping { worker: "w".into() }
            .now()
            .mono_ns
            .unwrap();
        let b = monotonic_ns().unwrap();
        assert!(a > 0 && b >= a, "{a} then {b}");
    }
}
