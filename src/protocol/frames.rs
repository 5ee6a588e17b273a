//! The serde frames: [`ClientFrame`] and [`ServerFrame`], what the reference server reads and
//! writes (and the reference the client's hand-written codec is tested against).
//!
//! [`ClientFrame::decode`] and [`ServerFrame::decode`] also enforce the rules serde cannot
//! express: send ids and seqs in 1 ..= 2^53 − 1, well-formed client ids.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    check_size, invalid, is_client_id, is_wire_id, DecodeError, ErrorBody, ResumePoint, SendLimits,
    MAX_WIRE_ID, PROTOCOL_VERSION,
};

fn version_one() -> u32 {
    PROTOCOL_VERSION
}

/// `v`: absent or `null` is version 1 (PROTOCOL.md §1: an optional member given as `null` is
/// the same as absent).
fn version_or_one<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    Ok(Option::<u32>::deserialize(deserializer)?.unwrap_or(PROTOCOL_VERSION))
}

/// A frame sent by the client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// The first frame on every socket: the token, the client id and, when the client has a
    /// session, where to resume.
    Auth {
        /// The protocol version the client speaks (1 when absent).
        #[serde(default = "version_one", deserialize_with = "version_or_one")]
        v: u32,
        /// The bearer token (a JWT for the reference server).
        token: String,
        /// The client id (16–64 of `[A-Za-z0-9_-]`), stable for the client's life.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client: Option<String>,
        /// The session to resume, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume: Option<ResumePoint>,
    },
    /// An application event; the server answers with an `ack` carrying the same `id`.
    Send {
        /// The client's send id (1 ..= 2^53 − 1): per client, increasing, never reused.
        id: u64,
        /// The event name, lower_snake (e.g. `message`, `join_room`).
        event: String,
        /// The event payload.
        #[serde(default)]
        data: Value,
    },
    /// The highest contiguous server `seq` the client has received (cumulative; 0: none).
    Ack {
        /// The acknowledged sequence number.
        seq: u64,
    },
    /// The answer to a server `ping`, echoing its `t`.
    Pong {
        /// The `t` of the ping being answered.
        t: u64,
    },
    /// A fresh token for the live socket, sent before the current one expires.
    Refresh {
        /// The new token; it must name the same user.
        token: String,
    },
}

/// A frame sent by the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// Authentication succeeded.
    Authenticated {
        /// The protocol version the server speaks on this socket (1 when absent).
        #[serde(default = "version_one", deserialize_with = "version_or_one")]
        v: u32,
        /// The authenticated user's id (the token's `sub`).
        user_id: String,
        /// The session id, used to resume later.
        session: String,
        /// How often the server pings, in milliseconds.
        heartbeat_ms: u64,
        /// Whether the requested session was resumed (rooms and send-id memory kept).
        resumed: bool,
        /// When resumed: how many events the server replays next.
        #[serde(default)]
        missed: u64,
        /// The token's remaining life, in milliseconds (absent: it does not expire).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_in_ms: Option<u64>,
        /// The send rate the server enforces on this socket.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limits: Option<SendLimits>,
    },
    /// Authentication failed; the server closes with 4001 (or 4000 for `timeout`) next.
    AuthError {
        /// `invalid_token`, `expired`, `timeout`, `unsupported_version`, `invalid_client` or
        /// `user_mismatch`.
        code: String,
        /// A human-readable explanation.
        #[serde(default)]
        message: String,
    },
    /// An application event. With a `seq` it is durable (buffered for replay, acknowledged);
    /// without one it is volatile (live only: typing, membership, presence).
    Event {
        /// Increases by one per durable event within a session; absent for volatile events.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
        /// The event name, lower_snake (e.g. `new_notification`).
        event: String,
        /// The event payload.
        #[serde(default)]
        data: Value,
        /// When the server produced the event (RFC 3339).
        #[serde(default)]
        ts: String,
    },
    /// The answer to a client `send`.
    Ack {
        /// The `id` of the `send` being answered.
        id: u64,
        /// Whether the server accepted the send.
        ok: bool,
        /// A result value, for requests that return one (e.g. `get_unread_count`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data: Option<Value>,
        /// Why the send failed, when `ok` is false.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<ErrorBody>,
    },
    /// A problem with the connection that does not close it (e.g. `invalid_frame`).
    Error {
        /// A stable machine-readable code.
        code: String,
        /// A human-readable explanation.
        #[serde(default)]
        message: String,
    },
    /// A heartbeat; the client answers `pong` with the same `t`.
    Ping {
        /// The server's timestamp in milliseconds, echoed back in the `pong`.
        t: u64,
        /// The round-trip time the server measured for the previous ping, in milliseconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rtt_ms: Option<u64>,
    },
    /// A `refresh` was accepted: the socket lives until the new token expires.
    Refreshed {
        /// The new token's remaining life, in milliseconds.
        expires_in_ms: u64,
    },
}

fn decode<T: serde::de::DeserializeOwned>(text: &str, limit: usize) -> Result<T, DecodeError> {
    check_size(text, limit)?;
    serde_json::from_str(text).map_err(|e| DecodeError::Invalid(e.to_string()))
}

fn encode<T: Serialize>(frame: &T) -> String {
    // Serializing these types cannot fail: every map key is a string and there are no
    // non-finite floats outside `Value`, which serde_json represents as `null`.
    serde_json::to_string(frame).expect("frames always serialize")
}

fn check_id(id: u64) -> Result<(), DecodeError> {
    if is_wire_id(id) {
        Ok(())
    } else {
        Err(invalid("id out of range (1 ..= 2^53 - 1)"))
    }
}

fn check_seq_or_zero(seq: u64) -> Result<(), DecodeError> {
    if seq <= MAX_WIRE_ID {
        Ok(())
    } else {
        Err(invalid("seq out of range (0 ..= 2^53 - 1)"))
    }
}

impl ClientFrame {
    /// Decodes a client frame, refusing frames above `limit` bytes, ids and seqs out of range
    /// and malformed client ids.
    pub fn decode(text: &str, limit: usize) -> Result<Self, DecodeError> {
        let frame: ClientFrame = decode(text, limit)?;
        match &frame {
            ClientFrame::Auth { client, resume, .. } => {
                if client.as_deref().is_some_and(|c| !is_client_id(c)) {
                    return Err(invalid("client id must be 16-64 of [A-Za-z0-9_-]"));
                }
                if let Some(resume) = resume {
                    check_seq_or_zero(resume.seq)?;
                }
            }
            ClientFrame::Send { id, .. } => check_id(*id)?,
            ClientFrame::Ack { seq } => check_seq_or_zero(*seq)?,
            ClientFrame::Pong { .. } | ClientFrame::Refresh { .. } => {}
        }
        Ok(frame)
    }

    /// Encodes the frame as JSON text.
    pub fn encode(&self) -> String {
        encode(self)
    }
}

impl ServerFrame {
    /// Decodes a server frame, refusing frames above `limit` bytes and ids or seqs out of range.
    pub fn decode(text: &str, limit: usize) -> Result<Self, DecodeError> {
        let frame: ServerFrame = decode(text, limit)?;
        match &frame {
            ServerFrame::Event { seq: Some(seq), .. } => check_id(*seq)?,
            ServerFrame::Ack { id, .. } => check_id(*id)?,
            _ => {}
        }
        Ok(frame)
    }

    /// Encodes the frame as JSON text.
    pub fn encode(&self) -> String {
        encode(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::MAX_FRAME_BYTES;
    use serde_json::json;

    #[test]
    fn client_frames_match_the_documented_wire_shape() {
        let auth = ClientFrame::Auth {
            v: 1,
            token: "t".into(),
            client: Some("c".repeat(16)),
            resume: Some(ResumePoint {
                session: "s".into(),
                seq: 41,
            }),
        };
        assert_eq!(
            serde_json::to_value(&auth).unwrap(),
            json!({"type":"auth","v":1,"token":"t","client":"cccccccccccccccc","resume":{"session":"s","seq":41}})
        );
        let bare = ClientFrame::Auth {
            v: 1,
            token: "t".into(),
            client: None,
            resume: None,
        };
        assert_eq!(bare.encode(), r#"{"type":"auth","v":1,"token":"t"}"#);
        assert_eq!(
            ClientFrame::decode(r#"{"type":"auth","token":"t"}"#, MAX_FRAME_BYTES),
            Ok(bare.clone()),
            "v defaults to 1"
        );
        assert_eq!(
            ClientFrame::decode(r#"{"type":"auth","v":null,"token":"t"}"#, MAX_FRAME_BYTES),
            Ok(bare),
            "null is absent"
        );
        let send = ClientFrame::Send {
            id: 17,
            event: "message".into(),
            data: json!({"text":"hi"}),
        };
        assert_eq!(
            send.encode(),
            r#"{"type":"send","id":17,"event":"message","data":{"text":"hi"}}"#
        );
        assert_eq!(
            ClientFrame::Ack { seq: 42 }.encode(),
            r#"{"type":"ack","seq":42}"#
        );
        assert_eq!(
            ClientFrame::Pong { t: 5 }.encode(),
            r#"{"type":"pong","t":5}"#
        );
        assert_eq!(
            ClientFrame::Refresh { token: "t".into() }.encode(),
            r#"{"type":"refresh","token":"t"}"#
        );
    }

    #[test]
    fn server_frames_round_trip() {
        let frames = [
            r#"{"type":"authenticated","v":1,"user_id":"u1","session":"s1","heartbeat_ms":30000,"resumed":false,"missed":0}"#,
            r#"{"type":"authenticated","v":1,"user_id":"u1","session":"s1","heartbeat_ms":30000,"resumed":true,"missed":2,"expires_in_ms":5000,"limits":{"sends_per_s":50,"burst":100}}"#,
            r#"{"type":"auth_error","code":"expired","message":"token expired"}"#,
            r#"{"type":"event","seq":42,"event":"new_notification","data":{"id":"n1"},"ts":"2026-01-01T00:00:00Z"}"#,
            r#"{"type":"event","event":"typing_update","data":{},"ts":""}"#,
            r#"{"type":"ack","id":17,"ok":true}"#,
            r#"{"type":"ack","id":17,"ok":false,"error":{"code":"rate_limited","message":"no","retry_after_ms":1000}}"#,
            r#"{"type":"error","code":"invalid_frame","message":"slow down"}"#,
            r#"{"type":"ping","t":123}"#,
            r#"{"type":"refreshed","expires_in_ms":60000}"#,
        ];
        for text in frames {
            let frame = ServerFrame::decode(text, MAX_FRAME_BYTES).unwrap();
            assert_eq!(frame.encode(), text, "{text}");
        }
    }

    #[test]
    fn ids_and_seqs_out_of_range_are_invalid() {
        for text in [
            r#"{"type":"send","id":0,"event":"e"}"#,
            r#"{"type":"send","id":9007199254740992,"event":"e"}"#,
            r#"{"type":"send","id":18446744073709551615,"event":"e"}"#,
            r#"{"type":"send","id":1.5,"event":"e"}"#,
            r#"{"type":"send","id":1e3,"event":"e"}"#,
            r#"{"type":"ack","seq":9007199254740992}"#,
            r#"{"type":"auth","token":"t","client":"short"}"#,
            r#"{"type":"auth","token":"t","resume":{"session":"s","seq":9007199254740992}}"#,
        ] {
            assert!(
                ClientFrame::decode(text, MAX_FRAME_BYTES).is_err(),
                "{text}"
            );
        }
        assert!(ClientFrame::decode(
            r#"{"type":"send","id":9007199254740991,"event":"e"}"#,
            MAX_FRAME_BYTES
        )
        .is_ok());
        assert!(ClientFrame::decode(r#"{"type":"ack","seq":0}"#, MAX_FRAME_BYTES).is_ok());
        for text in [
            r#"{"type":"event","seq":0,"event":"e"}"#,
            r#"{"type":"event","seq":9007199254740992,"event":"e"}"#,
            r#"{"type":"ack","id":0,"ok":true}"#,
        ] {
            assert!(
                ServerFrame::decode(text, MAX_FRAME_BYTES).is_err(),
                "{text}"
            );
        }
    }

    #[test]
    fn bad_input_is_an_error_value() {
        for text in [
            "",
            "null",
            "[]",
            "{",
            r#"{"type":"nope"}"#,
            r#"{"type":"event"}"#,
            r#"{"type":"ack","id":-1,"ok":true}"#,
            "\u{0}\u{ffff}",
        ] {
            assert!(matches!(
                ServerFrame::decode(text, MAX_FRAME_BYTES),
                Err(DecodeError::Invalid(_))
            ));
            assert!(matches!(
                ClientFrame::decode(text, MAX_FRAME_BYTES),
                Err(DecodeError::Invalid(_))
            ));
        }
        let big = format!(
            r#"{{"type":"ping","t":1,"x":"{}"}}"#,
            "a".repeat(MAX_FRAME_BYTES)
        );
        assert!(matches!(
            ServerFrame::decode(&big, MAX_FRAME_BYTES),
            Err(DecodeError::TooLarge { .. })
        ));
    }
}
