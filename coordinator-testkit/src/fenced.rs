//! An emulated plugin that writes one fenced object while its worker leads,
//! the pattern DESIGN.md asks of every plugin that writes shared state:
//! the object carries the epoch; a new leader *seals* it (reads it, then
//! compare-and-swaps its own epoch in) before anything else, and then
//! writes only by compare-and-swap on the version it holds, checking that
//! it still leads just before each write.

use coordinator_core::{Request, RequestId, Response, Version};

use crate::scenario::Fencing;

/// The fenced object's body.
pub(crate) fn body(epoch: u64, seq: u64, seal: bool) -> Vec<u8> {
    format!(r#"{{"epoch":{epoch},"seq":{seq},"seal":{seal}}}"#).into_bytes()
}

/// Epoch, sequence and seal flag of a fenced body.
pub(crate) fn parse(body: &[u8]) -> Option<(u64, u64, bool)> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    Some((
        v.get("epoch")?.as_u64()?,
        v.get("seq")?.as_u64()?,
        v.get("seal")?.as_bool()?,
    ))
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    Idle,
    Reading,
    Writing { seq: u64 },
    Sealed { version: Version, seq: u64 },
}

/// What the writer wants next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// Send this request.
    Send(RequestId, Request),
    /// Call [`FencedWriter::on_timer`] after this many ms.
    Wait(u64),
    /// Nothing.
    Idle,
}

/// The writer of one machine.
#[derive(Clone, Debug)]
pub(crate) struct FencedWriter {
    key: String,
    style: Fencing,
    epoch: u64,
    state: State,
    next_id: u64,
    pending: Option<RequestId>,
    /// Bumped whenever a wait is superseded.
    pub(crate) timer_token: u64,
}

/// How often the leader writes the object.
pub(crate) const WRITE_EVERY_MS: u64 = 2_000;

impl FencedWriter {
    pub(crate) fn new(key: String, style: Fencing) -> Self {
        Self {
            key,
            style,
            epoch: 0,
            state: State::Idle,
            next_id: 0,
            pending: None,
            timer_token: 0,
        }
    }

    fn send(&mut self, request: Request) -> Next {
        let id = RequestId(self.next_id);
        self.next_id += 1;
        self.pending = Some(id);
        Next::Send(id, request)
    }

    fn write(&mut self, seq: u64, expected: Option<Version>) -> Next {
        self.state = State::Writing { seq };
        let body = body(self.epoch, seq, seq == 0);
        let key = self.key.clone();
        let request = match (self.style, expected) {
            (Fencing::Unconditional, _) => Request::Put { key, body },
            (Fencing::Cas, Some(expected)) => Request::CompareAndSwap {
                key,
                expected,
                body,
            },
            (Fencing::Cas, None) => Request::Create { key, body },
        };
        self.send(request)
    }

    fn read(&mut self) -> Next {
        self.state = State::Reading;
        let key = self.key.clone();
        self.send(Request::Get {
            key,
            if_changed: None,
        })
    }

    /// The worker became leader under `epoch`: seal the object.
    pub(crate) fn begin(&mut self, epoch: u64) -> Next {
        self.epoch = epoch;
        self.timer_token += 1;
        match self.style {
            Fencing::Cas => self.read(),
            Fencing::Unconditional => self.write(0, None),
        }
    }

    /// The worker stopped leading.
    pub(crate) fn end(&mut self) {
        self.epoch = 0;
        self.state = State::Idle;
        self.pending = None;
        self.timer_token += 1;
    }

    /// A reply; `leading` is the worker's `is_leader` at this instant.
    pub(crate) fn on_reply(&mut self, id: RequestId, response: Response, leading: bool) -> Next {
        if self.pending != Some(id) || self.epoch == 0 {
            return Next::Idle;
        }
        self.pending = None;
        if !leading {
            self.end();
            return Next::Idle;
        }
        match (self.state.clone(), response) {
            (State::Reading, Response::Object { body, version, .. }) => match parse(&body) {
                Some((epoch, seq, _)) if epoch > self.epoch => {
                    let _ = seq;
                    // A newer leader sealed it: this one is stale.
                    self.end();
                    Next::Idle
                }
                Some((epoch, seq, _)) if epoch == self.epoch => {
                    // Our own write, seen after an ambiguous answer.
                    self.state = State::Sealed { version, seq };
                    Next::Wait(WRITE_EVERY_MS)
                }
                _ => self.write(0, Some(version)),
            },
            (State::Reading, Response::Absent) => self.write(0, None),
            (State::Writing { seq }, Response::Written { version, .. }) => {
                self.state = State::Sealed { version, seq };
                Next::Wait(WRITE_EVERY_MS)
            }
            (State::Writing { .. }, Response::Conflict | Response::AlreadyExists) => self.read(),
            (_, Response::Failed(_)) => {
                // Unknown or refused: look again after a pause.
                self.state = State::Idle;
                Next::Wait(500)
            }
            _ => {
                self.end();
                Next::Idle
            }
        }
    }

    /// A wait ended; `leading` as above.
    pub(crate) fn on_timer(&mut self, token: u64, leading: bool) -> Next {
        if token != self.timer_token || self.epoch == 0 || self.pending.is_some() {
            return Next::Idle;
        }
        if !leading {
            self.end();
            return Next::Idle;
        }
        match self.state.clone() {
            State::Sealed { version, seq } => self.write(seq + 1, Some(version)),
            _ => match self.style {
                Fencing::Cas => self.read(),
                Fencing::Unconditional => self.write(1, None),
            },
        }
    }
}
