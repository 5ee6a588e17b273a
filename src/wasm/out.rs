//! What the browser face hands the TypeScript driver, written as compact JSON text: the shell's
//! actions and outputs as positional records (one `JSON.parse` in the driver reads a whole
//! batch; event payloads are embedded as the raw JSON the server sent), errors as
//! `{code, message, id?}` objects (the driver turns them into `SocklineError`s), the counters.
//!
//! Records (the first element is the tag the driver switches on):
//!
//! | tag | record | the driver |
//! |---|---|---|
//! | 0 | `[0, socket, url]` | opens a socket |
//! | 1 | `[1, socket, text]` | sends a text frame on it |
//! | 2 | `[2, socket, code, reason]` | closes it (`reason` already cut to what browsers accept) |
//! | 3 | `[3, request]` | calls `getToken()` |
//! | 4 | `[4, from, to, attempt, reason, message, nextRetryMs]` | tells `onState` listeners |
//! | 5 | `[5, event, data, seq]` | tells the event's and `onAny` listeners |
//! | 6 | `[6, id, ok, data \| error]` | settles request `id`'s promise (`data` absent: `undefined`) |
//! | 7 | `[7, id, ok, data \| error]` | emits `ack` |
//! | 8 | `[8, error]` | emits `error` |
//! | 9 | `[9, missed]` | emits `resumed` |
//! | 10 | `[10]` | emits `resume_failed` |

use crate::core::{Action, Payload, SendId, Stats};
use crate::error::{AckError, ClientError};
use crate::protocol::json::{write_string, write_u64};
use crate::shell::Output;

/// Longest close reason a browser accepts, in UTF-8 bytes.
const MAX_CLOSE_REASON: usize = 123;

/// The text being written.
#[derive(Default)]
pub(crate) struct Out(pub(crate) String);

impl Out {
    /// Appends `text` as it is (JSON punctuation, or JSON the core validated).
    pub(crate) fn raw(&mut self, text: &str) -> &mut Self {
        self.0.push_str(text);
        self
    }

    /// Appends `text` as a JSON string.
    pub(crate) fn str(&mut self, text: &str) -> &mut Self {
        write_string(&mut self.0, text);
        self
    }

    /// Appends `n`.
    pub(crate) fn num(&mut self, n: u64) -> &mut Self {
        write_u64(&mut self.0, n);
        self
    }

    /// Appends `n`, or `null`.
    pub(crate) fn opt(&mut self, n: Option<u64>) -> &mut Self {
        match n {
            Some(n) => self.num(n),
            None => self.raw("null"),
        }
    }

    /// Appends `{"code":…,"message":…}`, with `"id"` when given.
    pub(crate) fn error(&mut self, code: &str, message: &str, id: Option<SendId>) -> &mut Self {
        self.raw("{\"code\":")
            .str(code)
            .raw(",\"message\":")
            .str(message);
        if let Some(id) = id {
            self.raw(",\"id\":").num(id.0);
        }
        self.raw("}")
    }

    /// Appends `,` and one action's record.
    pub(crate) fn action(&mut self, action: &Action) {
        match action {
            Action::OpenSocket { socket, url } => {
                self.raw(",[0,").num(socket.0).raw(",").str(url);
            }
            Action::SendFrame { socket, text } => {
                self.raw(",[1,").num(socket.0).raw(",").str(text);
            }
            Action::CloseSocket {
                socket,
                code,
                reason,
            } => {
                let mut end = reason.len().min(MAX_CLOSE_REASON);
                while !reason.is_char_boundary(end) {
                    end -= 1;
                }
                self.raw(",[2,")
                    .num(socket.0)
                    .raw(",")
                    .num(u64::from(*code))
                    .raw(",")
                    .str(reason.get(..end).unwrap_or_default());
            }
            Action::FetchToken { request } => {
                self.raw(",[3,").num(request.0);
            }
        }
        self.raw("]");
    }

    /// Appends `,` and one output's record.
    pub(crate) fn output(&mut self, output: &Output<()>) {
        match output {
            Output::State(view) => {
                let next = view
                    .retry_in
                    .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
                self.raw(",[4,")
                    .str(view.from.name())
                    .raw(",")
                    .str(view.to.name())
                    .raw(",")
                    .num(u64::from(view.attempt()))
                    .raw(",")
                    .str(view.cause.code())
                    .raw(",")
                    .str(&view.cause.message())
                    .raw(",")
                    .opt(next);
            }
            Output::Message { event, data, seq } => {
                self.raw(",[5,")
                    .str(event)
                    .raw(",")
                    .raw(data.json())
                    .raw(",")
                    .opt(*seq);
            }
            Output::Settle { id, result, .. } => self.outcome(6, *id, result),
            Output::Ack { id, result } => self.outcome(7, *id, result),
            Output::Error(e) => {
                let id = match e {
                    ClientError::SendFailed { id, .. } => Some(*id),
                    _ => None,
                };
                self.raw(",[8,").error(e.code(), &e.message(), id);
            }
            Output::Resumed { missed } => {
                self.raw(",[9,").num(*missed);
            }
            Output::ResumeFailed => {
                self.raw(",[10");
            }
        }
        self.raw("]");
    }

    /// `,[tag,id,true,data]` (`data` left out for none) or `,[tag,id,false,error]`, open.
    fn outcome(&mut self, tag: u64, id: SendId, result: &Result<Option<Payload>, AckError>) {
        self.raw(",[").num(tag).raw(",").num(id.0).raw(",");
        match result {
            Ok(data) => {
                self.raw("true");
                if let Some(data) = data {
                    self.raw(",").raw(data.json());
                }
            }
            Err(e) => {
                self.raw("false,").error(e.code(), &e.message(), Some(id));
            }
        }
    }

    /// Appends the counters as the object `stats()` returns (without its `debug` part, which
    /// is the driver's).
    pub(crate) fn stats(&mut self, s: &Stats) {
        let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.raw("{\"state\":")
            .str(s.state)
            .raw(",\"timeInStateMs\":")
            .num(ms(s.time_in_state))
            .raw(",\"attempt\":")
            .num(u64::from(s.attempt))
            .raw(",\"reconnects\":")
            .num(s.reconnects)
            .raw(",\"lastRttMs\":")
            .opt(s.last_rtt.map(ms))
            .raw(",\"outboxDepth\":")
            .num(s.outbox_depth as u64)
            .raw(",\"outboxBytes\":")
            .num(s.outbox_bytes as u64)
            .raw(",\"framesIn\":")
            .num(s.frames_in)
            .raw(",\"framesOut\":")
            .num(s.frames_out)
            .raw(",\"duplicatesDropped\":")
            .num(s.duplicates_dropped)
            .raw(",\"rooms\":")
            .num(s.rooms as u64)
            .raw("}");
    }
}
