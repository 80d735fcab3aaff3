//! The network faults the proxy can switch on, and the per-request
//! decision drawn from them.
//!
//! A listener (one per worker) has its own faults, the proxy has faults for
//! every listener, and a listener can be partitioned (every request held
//! unanswered). [`decide`] turns the faults in force into one
//! [`Decision`] per request, drawing from the listener's seeded stream.

use std::time::Duration;

use coordinator_core::SplitMix64;
use serde::{Deserialize, Serialize};

/// A network fault, in force until switched off.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "snake_case")]
pub enum NetFault {
    /// Each request waits `base_ms` plus up to `jitter_ms` before it is
    /// forwarded.
    Latency {
        /// The fixed part, ms.
        base_ms: u64,
        /// The uniform random part, ms.
        jitter_ms: u64,
    },
    /// A share of the requests: the connection is closed (FIN) without an
    /// answer, the request not forwarded.
    Drop {
        /// The share of requests, 0–1.
        share: f64,
    },
    /// A share of the requests: the connection is reset (RST), the request
    /// not forwarded.
    Reset {
        /// The share of requests, 0–1.
        share: f64,
    },
    /// Every request is held and never answered (the connection stays
    /// open until the client gives up).
    Blackhole,
    /// A share of the requests is answered `503 SlowDown` (S3's
    /// throttling) without being forwarded.
    SlowDown {
        /// The share of requests, 0–1.
        share: f64,
    },
    /// A share of the requests is answered `500 InternalError` without
    /// being forwarded.
    ServerError {
        /// The share of requests, 0–1.
        share: f64,
    },
    /// A share of the requests is forwarded and applied; its answer is read
    /// and thrown away, and the connection closed: the client's retry
    /// meets its own write.
    LoseAnswer {
        /// The share of requests, 0–1.
        share: f64,
    },
}

impl NetFault {
    /// A few words for logs and the timeline.
    pub fn label(&self) -> String {
        match self {
            Self::Latency { base_ms, jitter_ms } => {
                format!("latency {base_ms}+{jitter_ms} ms")
            }
            Self::Drop { share } => format!("drop {:.0}%", share * 100.0),
            Self::Reset { share } => format!("reset {:.0}%", share * 100.0),
            Self::Blackhole => "blackhole".into(),
            Self::SlowDown { share } => format!("503 SlowDown {:.0}%", share * 100.0),
            Self::ServerError { share } => format!("500 {:.0}%", share * 100.0),
            Self::LoseAnswer { share } => format!("lose answers {:.0}%", share * 100.0),
        }
    }
}

/// What the proxy does with one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Forward it and its answer.
    Forward,
    /// Close the connection without forwarding.
    Close,
    /// Reset the connection without forwarding.
    Reset,
    /// Never answer.
    Blackhole,
    /// Answer `503 SlowDown`.
    SlowDown,
    /// Answer `500 InternalError`.
    ServerError,
    /// Forward it, drop its answer, close.
    LoseAnswer,
}

/// The decision for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Wait this long first.
    pub delay: Duration,
    /// Then do this.
    pub action: Action,
}

/// Decides one request under `faults` (the listener's and the proxy's).
/// The first fault whose draw hits decides; latencies add up.
pub fn decide(faults: &[NetFault], partitioned: bool, rng: &mut SplitMix64) -> Decision {
    let mut delay = Duration::ZERO;
    let mut action = if partitioned {
        Action::Blackhole
    } else {
        Action::Forward
    };
    for fault in faults {
        let hit = |share: f64, rng: &mut SplitMix64| rng.chance(share);
        let chosen = match *fault {
            NetFault::Latency { base_ms, jitter_ms } => {
                let jitter = if jitter_ms == 0 {
                    0
                } else {
                    rng.up_to(jitter_ms)
                };
                delay += Duration::from_millis(base_ms + jitter);
                None
            }
            NetFault::Blackhole => Some(Action::Blackhole),
            NetFault::Drop { share } => hit(share, rng).then_some(Action::Close),
            NetFault::Reset { share } => hit(share, rng).then_some(Action::Reset),
            NetFault::SlowDown { share } => hit(share, rng).then_some(Action::SlowDown),
            NetFault::ServerError { share } => hit(share, rng).then_some(Action::ServerError),
            NetFault::LoseAnswer { share } => hit(share, rng).then_some(Action::LoseAnswer),
        };
        if let (Action::Forward, Some(chosen)) = (action, chosen) {
            action = chosen;
        }
    }
    Decision { delay, action }
}

/// The S3 error answer the proxy injects for `action` (`SlowDown` or
/// `ServerError`), with an XML body as S3 sends it.
pub fn error_answer(action: Action) -> Vec<u8> {
    let (status, code, message) = match action {
        Action::SlowDown => (
            "503 Slow Down",
            "SlowDown",
            "Please reduce your request rate.",
        ),
        _ => (
            "500 Internal Server Error",
            "InternalError",
            "We encountered an internal error. Please try again.",
        ),
    };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>chaos-proxy</RequestId></Error>"
    );
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_drawn_and_the_first_hit_decides() {
        let mut rng = SplitMix64::new(7);
        let faults = [
            NetFault::Latency {
                base_ms: 10,
                jitter_ms: 5,
            },
            NetFault::SlowDown { share: 0.5 },
            NetFault::LoseAnswer { share: 1.0 },
        ];
        let mut slow = 0;
        for _ in 0..1000 {
            let d = decide(&faults, false, &mut rng);
            assert!(d.delay >= Duration::from_millis(10) && d.delay <= Duration::from_millis(15));
            match d.action {
                Action::SlowDown => slow += 1,
                Action::LoseAnswer => {}
                other => panic!("{other:?}"),
            }
        }
        assert!((400..600).contains(&slow), "{slow} of 1000 at 50%");
        assert_eq!(decide(&[], false, &mut rng).action, Action::Forward);
        assert_eq!(decide(&[], true, &mut rng).action, Action::Blackhole);
        assert_eq!(
            decide(&[NetFault::Blackhole], false, &mut rng).action,
            Action::Blackhole
        );
    }

    #[test]
    fn injected_answers_are_framed() {
        let answer = String::from_utf8(error_answer(Action::SlowDown)).unwrap_or_default();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or_default();
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        assert!(body.contains("<Code>SlowDown</Code>"));
    }
}
