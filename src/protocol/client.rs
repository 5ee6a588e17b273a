//! The client's serde-free codec: [`IncomingFrame::decode`] for what the server sends and
//! [`encode`] for what the client sends, written over the crate's small JSON scanner so the
//! browser build links no `serde_json`. They follow the same shapes and rules as the serde
//! [`ServerFrame`](super::ServerFrame) and [`ClientFrame`](super::ClientFrame) (property tests
//! hold them to the same answers and bytes), and the same range checks.

use std::borrow::Cow;

use super::{check_size, invalid, is_wire_id, json, DecodeError, ErrorBody, SendLimits};

/// A server frame as the client's hot path decodes it, without serde: the same shapes and
/// rules as [`ServerFrame`](super::ServerFrame) (required fields, `#[serde(default)]`s, `null` for an `Option`,
/// unknown fields ignored, a repeated field refused), but borrowed from the frame's text:
/// strings are [`Cow`]s (owned only when they had escapes) and payloads (`data`) stay raw JSON
/// text, validated and never parsed, so listeners decode them straight into their own types.
/// What the client does not keep (an event's `ts`) is never copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncomingFrame<'a> {
    /// `authenticated`.
    Authenticated {
        /// The authenticated user's id.
        user_id: Cow<'a, str>,
        /// The session id.
        session: Cow<'a, str>,
        /// How often the server pings, in milliseconds.
        heartbeat_ms: u64,
        /// Whether the requested session was resumed.
        resumed: bool,
        /// When resumed: how many events the server replays next (0 when absent).
        missed: u64,
        /// The protocol version the server speaks (1 when absent).
        v: u32,
        /// The token's remaining life (`None` when absent or `null`).
        expires_in_ms: Option<u64>,
        /// The send rate the server enforces (`None` when absent or `null`).
        limits: Option<SendLimits>,
    },
    /// `auth_error`.
    AuthError {
        /// `invalid_token`, `expired` or `timeout`.
        code: Cow<'a, str>,
        /// A human-readable explanation (empty when absent).
        message: Cow<'a, str>,
    },
    /// `event`.
    Event {
        /// Its per-session sequence number; `None` for a volatile event.
        seq: Option<u64>,
        /// Its name.
        event: Cow<'a, str>,
        /// Its payload: the JSON text the server sent (`null` when absent).
        data: &'a str,
        /// When the server produced it (empty when absent).
        ts: Cow<'a, str>,
    },
    /// `ack`.
    Ack {
        /// The `id` of the `send` being answered.
        id: u64,
        /// Whether the server accepted the send.
        ok: bool,
        /// The result value as JSON text (`None` when absent or `null`).
        data: Option<&'a str>,
        /// Why the send failed (`None` when absent or `null`).
        error: Option<ErrorBody>,
    },
    /// `error`.
    Error {
        /// A stable machine-readable code.
        code: Cow<'a, str>,
        /// A human-readable explanation (empty when absent).
        message: Cow<'a, str>,
    },
    /// `ping`.
    Ping {
        /// The server's timestamp, echoed in the `pong`.
        t: u64,
        /// The round-trip time the server measured (`None` when absent or `null`).
        rtt_ms: Option<u64>,
    },
    /// `refreshed`.
    Refreshed {
        /// The new token's remaining life, in milliseconds.
        expires_in_ms: u64,
    },
}

/// The member names of every server frame, the most frequent first (`event` frames).
const KEYS: [&str; 20] = [
    "type",
    "seq",
    "event",
    "data",
    "ts",
    "id",
    "ok",
    "error",
    "t",
    "rtt_ms",
    "code",
    "message",
    "user_id",
    "session",
    "heartbeat_ms",
    "resumed",
    "missed",
    "v",
    "expires_in_ms",
    "limits",
];
const TYPE: usize = 0;
const SEQ: usize = 1;
const EVENT: usize = 2;
const DATA: usize = 3;
const TS: usize = 4;
const ID: usize = 5;
const OK: usize = 6;
const ERROR: usize = 7;
const T: usize = 8;
const RTT_MS: usize = 9;
const CODE: usize = 10;
const MESSAGE: usize = 11;
const USER_ID: usize = 12;
const SESSION: usize = 13;
const HEARTBEAT_MS: usize = 14;
const RESUMED: usize = 15;
const MISSED: usize = 16;
const V: usize = 17;
const EXPIRES_IN_MS: usize = 18;
const LIMITS: usize = 19;

/// The members of `limits` and of an ack's `error`.
const LIMIT_KEYS: [&str; 2] = ["sends_per_s", "burst"];
const ERROR_KEYS: [&str; 3] = ["code", "message", "retry_after_ms"];

/// An object's members, read in one pass into a slot per known name (slot `i` for `keys[i]`;
/// one size for every object read, so the code exists once).
#[derive(Default)]
struct Members<'a> {
    slots: [Option<&'a str>; KEYS.len()],
    /// Bit `i`: `keys[i]` appeared more than once.
    repeated: u32,
    /// Whether any string in the object had an escape (else each is its quotes' contents).
    escapes: bool,
}

impl<'a> Members<'a> {
    /// Reads the object `text` in place.
    fn read(&mut self, text: &'a str, keys: &[&str]) -> Result<(), DecodeError> {
        let fields =
            json::object_fields(text, keys, &mut self.slots).map_err(|e| invalid(e.reason()))?;
        self.repeated = fields.repeated;
        self.escapes = fields.escapes;
        Ok(())
    }

    /// The raw value of slot `i`, if present; a repeated name is an error (as for serde).
    fn get(&self, i: usize) -> Result<Option<&'a str>, DecodeError> {
        if self.repeated & (1 << i) != 0 {
            return Err(invalid("duplicate field"));
        }
        Ok(self.slots.get(i).copied().flatten())
    }

    /// The raw value of slot `i`, or `None` when absent or `null` (an `Option` field).
    fn opt(&self, i: usize) -> Result<Option<&'a str>, DecodeError> {
        Ok(self.get(i)?.filter(|raw| !json::is_null(raw)))
    }

    fn req(&self, i: usize) -> Result<&'a str, DecodeError> {
        self.get(i)?.ok_or_else(|| invalid("missing field"))
    }

    fn string(&self, i: usize) -> Result<Cow<'a, str>, DecodeError> {
        self.string_value(self.req(i)?)
    }

    /// A string that defaults to empty when absent (`null` is still an error, as for serde).
    fn string_or_empty(&self, i: usize) -> Result<Cow<'a, str>, DecodeError> {
        self.get(i)?
            .map_or(Ok(Cow::Borrowed("")), |raw| self.string_value(raw))
    }

    /// A string member's value. `raw` was validated with the object, so when the object had
    /// no escape, a string is exactly what its quotes enclose: no second scan.
    fn string_value(&self, raw: &'a str) -> Result<Cow<'a, str>, DecodeError> {
        if !self.escapes && raw.as_bytes().first() == Some(&b'"') {
            return Ok(Cow::Borrowed(raw.get(1..raw.len() - 1).unwrap_or_default()));
        }
        json::parse_str(raw).map_err(|e| invalid(e.reason()))
    }

    fn u64(&self, i: usize) -> Result<u64, DecodeError> {
        number(self.req(i)?)
    }

    fn bool(&self, i: usize) -> Result<bool, DecodeError> {
        json::parse_bool(self.req(i)?).map_err(|e| invalid(e.reason()))
    }
}

fn number(raw: &str) -> Result<u64, DecodeError> {
    json::parse_u64(raw).map_err(|e| invalid(e.reason()))
}

fn number_u32(raw: &str) -> Result<u32, DecodeError> {
    u32::try_from(number(raw)?).map_err(|_| invalid("number out of range"))
}

/// A send id or event seq: 1 ..= 2^53 - 1.
fn wire_id(raw: &str) -> Result<u64, DecodeError> {
    let n = number(raw)?;
    if is_wire_id(n) {
        Ok(n)
    } else {
        Err(invalid("id out of range (1 ..= 2^53 - 1)"))
    }
}

fn limits(raw: &str) -> Result<SendLimits, DecodeError> {
    let mut m = Members::default();
    m.read(raw, &LIMIT_KEYS)?;
    Ok(SendLimits {
        sends_per_s: number_u32(m.req(0)?)?,
        burst: number_u32(m.req(1)?)?,
    })
}

fn error_body(raw: &str) -> Result<ErrorBody, DecodeError> {
    let mut e = Members::default();
    e.read(raw, &ERROR_KEYS)?;
    Ok(ErrorBody {
        code: e.string(0)?.into_owned(),
        message: e.string_or_empty(1)?.into_owned(),
        retry_after_ms: e.opt(2)?.map(number).transpose()?,
    })
}

impl<'a> IncomingFrame<'a> {
    /// Decodes a server frame, refusing frames above `limit` bytes. Bad input of any shape is
    /// a [`DecodeError`] with a static message; nothing here formats or panics.
    pub fn decode(text: &'a str, limit: usize) -> Result<Self, DecodeError> {
        check_size(text, limit)?;
        #[cfg(not(target_arch = "wasm32"))]
        if let Some(event) = Self::event_as_the_server_writes_it(text) {
            return Ok(event);
        }
        Self::read_members(text)
    }

    /// The general reader: any member order, whitespace, escapes, every frame type.
    pub(super) fn read_members(text: &'a str) -> Result<Self, DecodeError> {
        let mut m = Members::default();
        m.read(text, &KEYS)?;
        let kind = m
            .get(TYPE)?
            .ok_or_else(|| invalid("missing field `type`"))?;
        Ok(match m.string_value(kind)?.as_ref() {
            "event" => IncomingFrame::Event {
                seq: m.opt(SEQ)?.map(wire_id).transpose()?,
                event: m.string(EVENT)?,
                data: m.get(DATA)?.unwrap_or("null"),
                ts: m.string_or_empty(TS)?,
            },
            "ack" => IncomingFrame::Ack {
                id: wire_id(m.req(ID)?)?,
                ok: m.bool(OK)?,
                data: m.opt(DATA)?,
                error: m.opt(ERROR)?.map(error_body).transpose()?,
            },
            "ping" => IncomingFrame::Ping {
                t: m.u64(T)?,
                rtt_ms: m.opt(RTT_MS)?.map(number).transpose()?,
            },
            "authenticated" => IncomingFrame::Authenticated {
                user_id: m.string(USER_ID)?,
                session: m.string(SESSION)?,
                heartbeat_ms: m.u64(HEARTBEAT_MS)?,
                resumed: m.bool(RESUMED)?,
                missed: m.get(MISSED)?.map_or(Ok(0), number)?,
                v: m.opt(V)?.map_or(Ok(1), number_u32)?,
                expires_in_ms: m.opt(EXPIRES_IN_MS)?.map(number).transpose()?,
                limits: m.opt(LIMITS)?.map(limits).transpose()?,
            },
            "auth_error" => IncomingFrame::AuthError {
                code: m.string(CODE)?,
                message: m.string_or_empty(MESSAGE)?,
            },
            "error" => IncomingFrame::Error {
                code: m.string(CODE)?,
                message: m.string_or_empty(MESSAGE)?,
            },
            "refreshed" => IncomingFrame::Refreshed {
                expires_in_ms: m.u64(EXPIRES_IN_MS)?,
            },
            _ => return Err(invalid("unknown frame type")),
        })
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl<'a> IncomingFrame<'a> {
    /// An `event` frame in the exact shape the server writes (serde's member order, no
    /// whitespace, plain strings): `{"type":"event","seq":N,"event":"…","data":…,"ts":"…"}`, or
    /// without `seq` for a volatile event. Read straight through, without the member table:
    /// the same answer [`decode`](Self::decode) gives, payload validated alike (the property
    /// tests compare the two on every frame they make). `None` for any other text, which then
    /// takes the general reader. Native only: the browser build keeps one reader, for size.
    pub(super) fn event_as_the_server_writes_it(text: &'a str) -> Option<Self> {
        let mut r = json::Expected::new(text);
        r.literal(r#"{"type":"event","#)?;
        let seq = match r.literal(r#""seq":"#) {
            Some(()) => {
                let seq = r.integer().filter(|&n| is_wire_id(n))?;
                r.literal(",")?;
                Some(seq)
            }
            None => None,
        };
        r.literal(r#""event":"#)?;
        let event = r.plain_string()?;
        r.literal(r#","data":"#)?;
        // One level inside the frame, as the general reader counts it.
        let data = r.value(1)?;
        r.literal(r#","ts":"#)?;
        let ts = r.plain_string()?;
        r.literal("}")?;
        r.end()?;
        Some(IncomingFrame::Event {
            seq,
            event: Cow::Borrowed(event),
            data,
            ts: Cow::Borrowed(ts),
        })
    }
}

/// The frames the client sends, encoded without serde, byte for byte as
/// [`ClientFrame::encode`](super::ClientFrame::encode) would write them (the tests hold both to
/// that).
pub mod encode {
    use crate::protocol::json::{write_string, write_u64};
    use crate::protocol::{ResumePoint, PROTOCOL_VERSION};

    /// `{"type":"auth","v":1,"token":…,"client":…,"resume":{"session":…,"seq":…}}` (no
    /// `client` / `resume` when `None`).
    pub fn auth(token: &str, client: Option<&str>, resume: Option<&ResumePoint>) -> String {
        let mut out = String::from(r#"{"type":"auth","v":"#);
        write_u64(&mut out, u64::from(PROTOCOL_VERSION));
        out.push_str(r#","token":"#);
        write_string(&mut out, token);
        if let Some(client) = client {
            out.push_str(r#","client":"#);
            write_string(&mut out, client);
        }
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

    /// `{"type":"refresh","token":…}`.
    pub fn refresh(token: &str) -> String {
        let mut out = String::from(r#"{"type":"refresh","token":"#);
        write_string(&mut out, token);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ClientFrame, ResumePoint, MAX_FRAME_BYTES};
    use serde_json::json;

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
                    (seq, event.as_ref(), data, ts.as_ref()),
                    (Some(3), "x", r#"{"a": [1, 2]}"#, "t")
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
            r#"{"type":"event","seq":0,"event":"x"}"#,
            r#"{"type":"event","seq":18446744073709551615,"event":"x"}"#,
            r#"{"type":"event","seq":9007199254740992,"event":"x"}"#,
            r#"{"type":"ack","id":0,"ok":true}"#,
        ] {
            assert!(
                IncomingFrame::decode(bad, MAX_FRAME_BYTES).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn volatile_events_have_no_seq() {
        for text in [
            r#"{"type":"event","event":"typing_update","data":{}}"#,
            r#"{"type":"event","seq":null,"event":"typing_update","data":{}}"#,
        ] {
            assert!(matches!(
                IncomingFrame::decode(text, MAX_FRAME_BYTES),
                Ok(IncomingFrame::Event { seq: None, .. })
            ));
        }
    }

    #[test]
    fn client_encoders_write_what_serde_writes() {
        let resume = ResumePoint {
            session: "s\"1".into(),
            seq: u64::MAX,
        };
        let client = "c".repeat(16);
        for (token, client, resume) in [
            ("t", None, None),
            ("a\u{1}\n\"é", Some(client.as_str()), Some(&resume)),
        ] {
            let frame = ClientFrame::Auth {
                v: 1,
                token: token.into(),
                client: client.map(str::to_owned),
                resume: resume.cloned(),
            };
            assert_eq!(encode::auth(token, client, resume), frame.encode());
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
        assert_eq!(
            encode::refresh("t\""),
            ClientFrame::Refresh {
                token: "t\"".into()
            }
            .encode()
        );
    }
}
