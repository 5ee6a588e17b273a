//! Building human-readable messages without `core::fmt`: pieces and decimal numbers appended to
//! one `String`. The `Display` impls of the errors, causes and reasons write what their
//! `message()` builds, so every face reads the same text, and the browser build, which calls
//! `message()` directly, links no formatting machinery (`write!` and `format!` would pull in
//! `core::fmt` and its integer formatter: several KiB of wasm).

use crate::protocol::json::write_u64;

/// One message, built piece by piece.
#[derive(Debug, Default)]
pub(crate) struct Message(String);

impl Message {
    /// A message starting with `text`.
    pub(crate) fn new(text: &str) -> Self {
        Message(String::from(text))
    }

    /// Appends `text`.
    pub(crate) fn s(mut self, text: &str) -> Self {
        self.0.push_str(text);
        self
    }

    /// Appends `n` in decimal.
    pub(crate) fn n(mut self, n: u64) -> Self {
        write_u64(&mut self.0, n);
        self
    }

    /// The text.
    pub(crate) fn done(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use crate::core::{Cause, DisconnectReason, LinkError, SendId};
    use crate::error::{AckError, ClientError, SendError};
    use crate::protocol::DecodeError;

    /// The texts the `format!` strings wrote before messages were built without `core::fmt`.
    #[test]
    fn messages_read_as_before() {
        let cases: Vec<(String, &str)> = vec![
            (
                SendError::OutboxFull {
                    max_messages: 1000,
                    max_bytes: 1 << 20,
                }
                .to_string(),
                "outbox full (1000 messages / 1048576 bytes); send not queued",
            ),
            (
                SendError::TooLarge {
                    size: 70_069,
                    limit: 65_536,
                }
                .to_string(),
                "frame of 70069 bytes exceeds the limit of 65536 bytes",
            ),
            (
                SendError::BadPayload("x".into()).to_string(),
                "payload is not valid JSON: x",
            ),
            (
                AckError::Timeout { timeout_ms: 10 }.to_string(),
                "no ack within 10 ms",
            ),
            (
                ClientError::SendFailed {
                    id: SendId(7),
                    error: AckError::Rejected {
                        code: "forbidden".into(),
                        message: "no".into(),
                    },
                }
                .to_string(),
                "send 7 failed: server rejected the send (forbidden): no",
            ),
            (
                ClientError::Room {
                    room: "chat:7".into(),
                    code: "forbidden".into(),
                    message: "no".into(),
                }
                .to_string(),
                "room `chat:7` refused (forbidden): no",
            ),
            (
                ClientError::BadFrame(DecodeError::Invalid("missing field".into())).to_string(),
                "server sent an unreadable frame: invalid frame: missing field",
            ),
            (
                ClientError::UnexpectedFrame { frame: "event" }.to_string(),
                "server sent an unexpected `event` frame",
            ),
            (
                ClientError::SeqGap {
                    expected: 3,
                    got: 5,
                }
                .to_string(),
                "events lost in transit: expected seq 3, got 5",
            ),
            (
                Cause::Lost(LinkError::Closed {
                    code: 1006,
                    reason: "connection dropped".into(),
                })
                .to_string(),
                "socket closed (1006): connection dropped",
            ),
            (
                LinkError::HeartbeatTimeout { silent_ms: 40_000 }.to_string(),
                "heartbeat timeout: no frame for 40000 ms",
            ),
            (
                Cause::Stopped(DisconnectReason::RetriesExhausted {
                    retries: 5,
                    last_error: "auth timed out".into(),
                })
                .to_string(),
                "gave up after 5 retries; last error: auth timed out",
            ),
            (
                DisconnectReason::Refused {
                    code: 4008,
                    reason: "too many".into(),
                }
                .to_string(),
                "server refused the connection (close 4008): too many",
            ),
            (Cause::Connect.to_string(), "connect() was called"),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }
}
