//! The wire protocol shared by client and server (DESIGN §3): JSON text frames tagged by `type`,
//! the close codes with their retry policy, and the frame size limit.
//!
//! Decoding never panics: bad input of any shape is a [`DecodeError`] value.
//!
//! Two codecs, one wire shape: the server (and tests) read and write frames with serde
//! ([`ClientFrame`], [`ServerFrame`]); the client's hot path uses [`IncomingFrame::decode`] and
//! [`encode`], written by hand over [`crate::json`] so the browser build links no `serde_json`.
//! Property tests (`tests/json_scanner.rs`) hold the two to the same bytes and the same answers.
//!
//! Two small extensions over DESIGN §3, both optional on the wire so older peers still parse:
//! `ping` may carry `rtt_ms` (the round-trip time the server measured from the previous
//! `ping`/`pong`, which is how a client learns its RTT without a shared clock), and
//! `authenticated` may carry `missed` (how many events the server is about to replay after a
//! resume), and `ack` may carry `data` (the result of a request such as `get_unread_count`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::json;

/// The largest text frame either side accepts, in bytes (64 KiB).
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// Where a resumed session picks up: the session id and the highest contiguous `seq` received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumePoint {
    /// The session id from the last `authenticated` frame.
    pub session: String,
    /// The highest contiguous event `seq` the client has received in that session.
    pub seq: u64,
}

/// An error body carried by a failed `ack`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A stable machine-readable code, e.g. `forbidden`, `rate_limited`, `unknown_event`.
    pub code: String,
    /// A human-readable explanation.
    #[serde(default)]
    pub message: String,
}

/// A frame sent by the client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// The first frame on every socket: the token and, when the client has a session, where to resume.
    Auth {
        /// The bearer token (a JWT for the reference server).
        token: String,
        /// The session to resume, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume: Option<ResumePoint>,
    },
    /// An application event; the server answers with an `ack` carrying the same `id`.
    Send {
        /// Increases within a session; a repeated id is acknowledged again but not processed again.
        id: u64,
        /// The event name, lower_snake (e.g. `message`, `join_room`).
        event: String,
        /// The event payload.
        #[serde(default)]
        data: Value,
    },
    /// The highest contiguous server `seq` the client has received (cumulative).
    Ack {
        /// The acknowledged sequence number.
        seq: u64,
    },
    /// The answer to a server `ping`, echoing its `t`.
    Pong {
        /// The `t` of the ping being answered.
        t: u64,
    },
}

/// A frame sent by the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// Authentication succeeded.
    Authenticated {
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
    },
    /// Authentication failed; the server closes with 4001 (or 4000 for `timeout`) next.
    AuthError {
        /// `invalid_token`, `expired` or `timeout`.
        code: String,
        /// A human-readable explanation.
        #[serde(default)]
        message: String,
    },
    /// An application event with its per-session sequence number.
    Event {
        /// Increases by one per event within a session.
        seq: u64,
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
    /// A problem with the connection that does not close it (e.g. `invalid_frame`, `rate_limited`).
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
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The frame is larger than [`MAX_FRAME_BYTES`].
    #[error("frame of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The frame's size in bytes.
        size: usize,
        /// The limit it exceeded.
        limit: usize,
    },
    /// The frame is not valid JSON or not a known frame shape.
    #[error("invalid frame: {0}")]
    Invalid(String),
}

/// Refuses a frame above `limit` bytes before anything parses it.
fn check_size(text: &str, limit: usize) -> Result<(), DecodeError> {
    if text.len() > limit {
        return Err(DecodeError::TooLarge {
            size: text.len(),
            limit,
        });
    }
    Ok(())
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

impl ClientFrame {
    /// Decodes a client frame, refusing frames above `limit` bytes.
    pub fn decode(text: &str, limit: usize) -> Result<Self, DecodeError> {
        decode(text, limit)
    }

    /// Encodes the frame as JSON text.
    pub fn encode(&self) -> String {
        encode(self)
    }
}

impl ServerFrame {
    /// Decodes a server frame, refusing frames above `limit` bytes.
    pub fn decode(text: &str, limit: usize) -> Result<Self, DecodeError> {
        decode(text, limit)
    }

    /// Encodes the frame as JSON text.
    pub fn encode(&self) -> String {
        encode(self)
    }
}

/// A server frame as the client's hot path decodes it, without serde: the same shapes and
/// rules as [`ServerFrame`] (required fields, `#[serde(default)]`s, `null` for an `Option`,
/// unknown fields ignored, a repeated field refused), but payloads (`data`) stay raw JSON text,
/// validated and never parsed, so listeners decode them straight into their own types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncomingFrame {
    /// `authenticated`.
    Authenticated {
        /// The authenticated user's id.
        user_id: String,
        /// The session id.
        session: String,
        /// How often the server pings, in milliseconds.
        heartbeat_ms: u64,
        /// Whether the requested session was resumed.
        resumed: bool,
        /// When resumed: how many events the server replays next (0 when absent).
        missed: u64,
    },
    /// `auth_error`.
    AuthError {
        /// `invalid_token`, `expired` or `timeout`.
        code: String,
        /// A human-readable explanation (empty when absent).
        message: String,
    },
    /// `event`.
    Event {
        /// Its per-session sequence number.
        seq: u64,
        /// Its name.
        event: String,
        /// Its payload: the JSON text the server sent (`null` when absent).
        data: String,
        /// When the server produced it (empty when absent).
        ts: String,
    },
    /// `ack`.
    Ack {
        /// The `id` of the `send` being answered.
        id: u64,
        /// Whether the server accepted the send.
        ok: bool,
        /// The result value as JSON text (`None` when absent or `null`).
        data: Option<String>,
        /// Why the send failed (`None` when absent or `null`).
        error: Option<ErrorBody>,
    },
    /// `error`.
    Error {
        /// A stable machine-readable code.
        code: String,
        /// A human-readable explanation (empty when absent).
        message: String,
    },
    /// `ping`.
    Ping {
        /// The server's timestamp, echoed in the `pong`.
        t: u64,
        /// The round-trip time the server measured (`None` when absent or `null`).
        rtt_ms: Option<u64>,
    },
}

fn invalid(reason: &str) -> DecodeError {
    DecodeError::Invalid(String::from(reason))
}

/// A frame's members, looked up by key.
struct Members<'a>(Vec<(std::borrow::Cow<'a, str>, &'a str)>);

impl<'a> Members<'a> {
    /// The raw value of `key`, if present; a repeated key is an error (as for serde).
    fn get(&self, key: &str) -> Result<Option<&'a str>, DecodeError> {
        let mut found = None;
        for (k, raw) in &self.0 {
            if k == key {
                if found.is_some() {
                    return Err(invalid("duplicate field"));
                }
                found = Some(*raw);
            }
        }
        Ok(found)
    }

    /// The raw value of `key`, or `None` when absent or `null` (an `Option` field).
    fn opt(&self, key: &str) -> Result<Option<&'a str>, DecodeError> {
        Ok(self.get(key)?.filter(|raw| !json::is_null(raw)))
    }

    fn req(&self, key: &str) -> Result<&'a str, DecodeError> {
        self.get(key)?.ok_or_else(|| invalid("missing field"))
    }

    fn string(&self, key: &str) -> Result<String, DecodeError> {
        string(self.req(key)?)
    }

    /// A string that defaults to empty when absent (`null` is still an error, as for serde).
    fn string_or_empty(&self, key: &str) -> Result<String, DecodeError> {
        self.get(key)?.map_or(Ok(String::new()), string)
    }

    fn u64(&self, key: &str) -> Result<u64, DecodeError> {
        number(self.req(key)?)
    }

    fn bool(&self, key: &str) -> Result<bool, DecodeError> {
        json::parse_bool(self.req(key)?).map_err(|e| invalid(e.reason()))
    }
}

fn string(raw: &str) -> Result<String, DecodeError> {
    json::parse_string(raw).map_err(|e| invalid(e.reason()))
}

fn number(raw: &str) -> Result<u64, DecodeError> {
    json::parse_u64(raw).map_err(|e| invalid(e.reason()))
}

impl IncomingFrame {
    /// Decodes a server frame, refusing frames above `limit` bytes. Bad input of any shape is
    /// a [`DecodeError`] with a static message; nothing here formats or panics.
    pub fn decode(text: &str, limit: usize) -> Result<Self, DecodeError> {
        check_size(text, limit)?;
        let m = Members(json::object_members(text).map_err(|e| invalid(e.reason()))?);
        let kind = m
            .get("type")?
            .ok_or_else(|| invalid("missing field `type`"))?;
        Ok(match string(kind)?.as_str() {
            "authenticated" => IncomingFrame::Authenticated {
                user_id: m.string("user_id")?,
                session: m.string("session")?,
                heartbeat_ms: m.u64("heartbeat_ms")?,
                resumed: m.bool("resumed")?,
                missed: m.get("missed")?.map_or(Ok(0), number)?,
            },
            "auth_error" => IncomingFrame::AuthError {
                code: m.string("code")?,
                message: m.string_or_empty("message")?,
            },
            "event" => IncomingFrame::Event {
                seq: m.u64("seq")?,
                event: m.string("event")?,
                data: m.get("data")?.unwrap_or("null").to_owned(),
                ts: m.string_or_empty("ts")?,
            },
            "ack" => IncomingFrame::Ack {
                id: m.u64("id")?,
                ok: m.bool("ok")?,
                data: m.opt("data")?.map(str::to_owned),
                error: match m.opt("error")? {
                    None => None,
                    Some(raw) => {
                        let e =
                            Members(json::object_members(raw).map_err(|e| invalid(e.reason()))?);
                        Some(ErrorBody {
                            code: e.string("code")?,
                            message: e.string_or_empty("message")?,
                        })
                    }
                },
            },
            "error" => IncomingFrame::Error {
                code: m.string("code")?,
                message: m.string_or_empty("message")?,
            },
            "ping" => IncomingFrame::Ping {
                t: m.u64("t")?,
                rtt_ms: m.opt("rtt_ms")?.map(number).transpose()?,
            },
            _ => return Err(invalid("unknown frame type")),
        })
    }
}

/// The frames the client sends, encoded without serde, byte for byte as
/// [`ClientFrame::encode`] would write them (the tests hold both to that).
pub mod encode {
    use super::ResumePoint;
    use crate::json::{write_string, write_u64};

    /// `{"type":"auth","token":…,"resume":{"session":…,"seq":…}}` (no `resume` when `None`).
    pub fn auth(token: &str, resume: Option<&ResumePoint>) -> String {
        let mut out = String::from(r#"{"type":"auth","token":"#);
        write_string(&mut out, token);
        if let Some(resume) = resume {
            out.push_str(r#","resume":{"session":"#);
            write_string(&mut out, &resume.session);
            out.push_str(r#","seq":"#);
            write_u64(&mut out, resume.seq);
            out.push('}');
        }
        out.push('}');
        out
    }

    /// `{"type":"send","id":…,"event":…,"data":…}` from the already-encoded event name and data.
    pub fn send(id: u64, event_json: &str, data_json: &str) -> String {
        let mut out = String::with_capacity(40 + event_json.len() + data_json.len());
        out.push_str(r#"{"type":"send","id":"#);
        write_u64(&mut out, id);
        out.push_str(r#","event":"#);
        out.push_str(event_json);
        out.push_str(r#","data":"#);
        out.push_str(data_json);
        out.push('}');
        out
    }

    /// `{"type":"ack","seq":…}`.
    pub fn ack(seq: u64) -> String {
        let mut out = String::from(r#"{"type":"ack","seq":"#);
        write_u64(&mut out, seq);
        out.push('}');
        out
    }

    /// `{"type":"pong","t":…}`.
    pub fn pong(t: u64) -> String {
        let mut out = String::from(r#"{"type":"pong","t":"#);
        write_u64(&mut out, t);
        out.push('}');
        out
    }
}

/// A WebSocket close code, with the names and retry policy sockline gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: normal closure.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the server is going away (shutdown or restart).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1006: the connection dropped without a close frame (never sent on the wire).
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1008: policy violation (bad path or origin).
    pub const POLICY: CloseCode = CloseCode(1008);
    /// 1009: a frame was too big.
    pub const TOO_BIG: CloseCode = CloseCode(1009);
    /// 1011: the server hit an internal error.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// 1012: the service is restarting.
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);
    /// 1013: try again later.
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);
    /// 4000: no `auth` frame arrived in time.
    pub const AUTH_TIMEOUT: CloseCode = CloseCode(4000);
    /// 4001: the token was rejected, or a frame other than `auth` came first.
    pub const AUTH_REJECTED: CloseCode = CloseCode(4001);
    /// 4003: forbidden.
    pub const FORBIDDEN: CloseCode = CloseCode(4003);
    /// 4008: too many connections for this user.
    pub const TOO_MANY_CONNECTIONS: CloseCode = CloseCode(4008);

    /// Whether a client should reconnect after the server closed with this code.
    ///
    /// Not retryable: 4001, 4003, 4008, 1008 and 1009 — reconnecting would be refused the same way.
    /// Everything else is retryable, including codes sockline does not name: a server that
    /// closes for an unknown reason should not leave an app offline for good.
    pub fn is_retryable(self) -> bool {
        !matches!(
            self,
            CloseCode::AUTH_REJECTED
                | CloseCode::FORBIDDEN
                | CloseCode::TOO_MANY_CONNECTIONS
                | CloseCode::POLICY
                | CloseCode::TOO_BIG
        )
    }
}

impl std::fmt::Display for CloseCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn client_frames_match_the_documented_wire_shape() {
        let auth = ClientFrame::Auth {
            token: "t".into(),
            resume: Some(ResumePoint {
                session: "s".into(),
                seq: 41,
            }),
        };
        assert_eq!(
            serde_json::to_value(&auth).unwrap(),
            json!({"type":"auth","token":"t","resume":{"session":"s","seq":41}})
        );
        let no_resume = ClientFrame::Auth {
            token: "t".into(),
            resume: None,
        };
        assert_eq!(no_resume.encode(), r#"{"type":"auth","token":"t"}"#);
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
    }

    #[test]
    fn server_frames_round_trip() {
        let frames = [
            r#"{"type":"authenticated","user_id":"u1","session":"s1","heartbeat_ms":30000,"resumed":false}"#,
            r#"{"type":"auth_error","code":"expired","message":"token expired"}"#,
            r#"{"type":"event","seq":42,"event":"new_notification","data":{"id":"n1"},"ts":"2026-01-01T00:00:00Z"}"#,
            r#"{"type":"ack","id":17,"ok":true}"#,
            r#"{"type":"ack","id":17,"ok":false,"error":{"code":"forbidden","message":"no"}}"#,
            r#"{"type":"error","code":"rate_limited","message":"slow down"}"#,
            r#"{"type":"ping","t":123}"#,
        ];
        for text in frames {
            let frame = ServerFrame::decode(text, MAX_FRAME_BYTES).unwrap();
            let again = ServerFrame::decode(&frame.encode(), MAX_FRAME_BYTES).unwrap();
            assert_eq!(frame, again, "{text}");
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

    #[test]
    fn incoming_events_keep_their_payload_raw() {
        let text = r#"{"type":"event","seq":3,"event":"x","data":{"a": [1, 2]},"ts":"t"}"#;
        match IncomingFrame::decode(text, MAX_FRAME_BYTES).unwrap() {
            IncomingFrame::Event {
                seq,
                event,
                data,
                ts,
            } => {
                assert_eq!(
                    (seq, event.as_str(), data.as_str(), ts.as_str()),
                    (3, "x", r#"{"a": [1, 2]}"#, "t")
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            IncomingFrame::decode(r#"{"type":"ping","t":1}"#, MAX_FRAME_BYTES),
            Ok(IncomingFrame::Ping { t: 1, rtt_ms: None })
        );
        for bad in [
            r#"{"type":"event","seq":1}"#,
            r#"{"seq":1}"#,
            "[",
            r#"{"type":"nope"}"#,
        ] {
            assert!(
                IncomingFrame::decode(bad, MAX_FRAME_BYTES).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn client_encoders_write_what_serde_writes() {
        let resume = ResumePoint {
            session: "s\"1".into(),
            seq: u64::MAX,
        };
        for (token, resume) in [("t", None), ("a\u{1}\n\"é", Some(&resume))] {
            let frame = ClientFrame::Auth {
                token: token.into(),
                resume: resume.cloned(),
            };
            assert_eq!(encode::auth(token, resume), frame.encode());
        }
        let send = ClientFrame::Send {
            id: 17,
            event: "message".into(),
            data: json!({"text":"hi"}),
        };
        assert_eq!(
            encode::send(17, r#""message""#, r#"{"text":"hi"}"#),
            send.encode()
        );
        assert_eq!(encode::ack(42), ClientFrame::Ack { seq: 42 }.encode());
        assert_eq!(encode::pong(0), ClientFrame::Pong { t: 0 }.encode());
    }

    #[test]
    fn close_code_retry_policy_follows_the_design() {
        for code in [1001, 1006, 1011, 1012, 1013, 4000] {
            assert!(CloseCode(code).is_retryable(), "{code}");
        }
        for code in [4001, 4003, 4008, 1008, 1009] {
            assert!(!CloseCode(code).is_retryable(), "{code}");
        }
    }
}
