//! What the tool writes and reads on each wire: sockline frames (DESIGN §3), Engine.IO v4 /
//! Socket.IO v4 packets, and the bare peers' `{"join"}` / `{"event","data"}` JSON; and the
//! `/notify` body that carries a round or storm marker.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::args::Proto;

/// The event name of every event the tool posts.
pub(crate) const EVENT: &str = "bench";
/// The Socket.IO ack id of the join.
const SIO_JOIN_ID: u64 = 1;

/// Which posted event a frame carries: a fan-out round or a storm event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub(crate) struct Mark {
    #[serde(default)]
    pub round: Option<u32>,
    #[serde(default)]
    pub storm: Option<u32>,
}

/// A frame from the server, as far as the tool cares.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Incoming {
    /// sockline `authenticated`.
    Authenticated { session: String, resumed: bool },
    /// The server confirmed the join (sockline: the `ack` of a `send`, with its id).
    Joined,
    /// sockline: the `ack` of send `id`, ok or not.
    Ack { id: u64, ok: bool, error: String },
    /// The server refused the auth or the join, or ended the session.
    Refused(String),
    /// An event; `seq` on sockline (absent for volatile events), `mark` when it is one of ours.
    Event {
        seq: Option<u64>,
        mark: Option<Mark>,
    },
    /// A frame to answer with this text (sockline `pong`, Engine.IO `3`).
    Reply(String),
    /// Engine.IO open packet: send the Socket.IO connect (`40`).
    EioOpen,
    /// Socket.IO connected to the main namespace: send the join.
    SioConnected,
    /// A server `error` frame that does not end the socket.
    Error(String),
    /// Anything else (acks of other sends, pongs, unknown frames).
    Other,
}

/// The first frame the tool sends after the WebSocket opens, if the wire starts with the client.
pub(crate) fn hello(
    proto: Proto,
    room: &str,
    token: &str,
    client: &str,
    resume: Option<(&str, u64)>,
) -> Option<String> {
    match proto {
        Proto::Sockline => {
            let mut auth = json!({ "type": "auth", "token": token, "client": client });
            if let Some((session, seq)) = resume {
                auth["resume"] = json!({ "session": session, "seq": seq });
            }
            Some(auth.to_string())
        }
        // Engine.IO speaks first (the open packet).
        Proto::Socketio => None,
        Proto::Ws | Proto::Bare => Some(json!({ "join": room }).to_string()),
    }
}

/// The join request (sockline, after `authenticated`, as send `id`: a client's send ids are
/// never reused, across sessions too; Socket.IO, after `40`).
pub(crate) fn join(proto: Proto, room: &str, id: u64) -> String {
    match proto {
        Proto::Sockline => {
            json!({ "type": "send", "id": id, "event": "join_room", "data": { "room": room } })
                .to_string()
        }
        Proto::Socketio => format!("42{SIO_JOIN_ID}{}", json!(["join", room])),
        Proto::Ws | Proto::Bare => json!({ "join": room }).to_string(),
    }
}

/// The Socket.IO connect packet for the main namespace.
pub(crate) const SIO_CONNECT: &str = "40";

/// A sockline cumulative `ack`.
pub(crate) fn ack(seq: u64) -> String {
    format!(r#"{{"type":"ack","seq":{seq}}}"#)
}

/// The `/notify` body for one of our events.
pub(crate) fn notify_body(room: &str, mark: Mark, pad: &str) -> String {
    let mut data = json!({ "pad": pad });
    if let Some(round) = mark.round {
        data["round"] = json!(round);
    }
    if let Some(storm) = mark.storm {
        data["storm"] = json!(storm);
    }
    json!({ "room": room, "event": EVENT, "data": data }).to_string()
}

/// Reads one text frame.
pub(crate) fn decode(proto: Proto, text: &str) -> Incoming {
    match proto {
        Proto::Sockline => decode_sockline(text),
        Proto::Socketio => decode_socketio(text),
        Proto::Ws | Proto::Bare => decode_plain(text),
    }
}

fn mark_of(event: Option<&str>, data: Option<&RawValue>) -> Option<Mark> {
    if event != Some(EVENT) {
        return None;
    }
    data.and_then(|d| serde_json::from_str(d.get()).ok())
}

#[derive(Deserialize)]
struct SocklineFrame<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    seq: Option<u64>,
    #[serde(borrow)]
    event: Option<Cow<'a, str>>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    session: Option<String>,
    resumed: Option<bool>,
    t: Option<u64>,
    id: Option<u64>,
    ok: Option<bool>,
    #[serde(borrow)]
    code: Option<Cow<'a, str>>,
    error: Option<Value>,
}

fn decode_sockline(text: &str) -> Incoming {
    let Ok(frame) = serde_json::from_str::<SocklineFrame<'_>>(text) else {
        return Incoming::Error(format!("undecodable frame: {}", clip(text)));
    };
    match frame.kind.as_ref() {
        "event" => Incoming::Event {
            seq: frame.seq,
            mark: mark_of(frame.event.as_deref(), frame.data),
        },
        "ping" => Incoming::Reply(format!(r#"{{"type":"pong","t":{}}}"#, frame.t.unwrap_or(0))),
        "authenticated" => Incoming::Authenticated {
            session: frame.session.unwrap_or_default(),
            resumed: frame.resumed.unwrap_or(false),
        },
        "auth_error" => Incoming::Refused(format!(
            "auth_error {}",
            frame.code.as_deref().unwrap_or("?")
        )),
        "ack" => match frame.id {
            Some(id) => Incoming::Ack {
                id,
                ok: frame.ok == Some(true),
                error: frame.error.map_or(String::new(), |e| e.to_string()),
            },
            None => Incoming::Error("ack without id".to_owned()),
        },
        "error" => Incoming::Error(format!("error {}", frame.code.as_deref().unwrap_or("?"))),
        _ => Incoming::Other,
    }
}

fn decode_socketio(text: &str) -> Incoming {
    match text.as_bytes().first() {
        Some(b'0') => Incoming::EioOpen,
        Some(b'1') => Incoming::Refused("engine.io close packet".to_owned()),
        Some(b'2') => Incoming::Reply("3".to_owned()),
        Some(b'4') => decode_socketio_packet(&text[1..]),
        _ => Incoming::Other,
    }
}

/// A Socket.IO packet (the Engine.IO `4` message prefix removed).
fn decode_socketio_packet(packet: &str) -> Incoming {
    match packet.as_bytes().first() {
        Some(b'0') => Incoming::SioConnected,
        Some(b'1') => Incoming::Refused("socket.io disconnect packet".to_owned()),
        Some(b'4') => Incoming::Refused(format!("socket.io connect error: {}", clip(packet))),
        Some(b'2') => {
            let Ok(args) = serde_json::from_str::<Vec<&RawValue>>(&packet[1..]) else {
                return Incoming::Error(format!("undecodable event: {}", clip(packet)));
            };
            let name = args
                .first()
                .and_then(|n| serde_json::from_str::<&str>(n.get()).ok());
            Incoming::Event {
                seq: None,
                mark: mark_of(name, args.get(1).copied()),
            }
        }
        Some(b'3') => {
            let rest = &packet[1..];
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if rest[..digits].parse::<u64>() != Ok(SIO_JOIN_ID) {
                return Incoming::Other;
            }
            match serde_json::from_str::<Vec<Value>>(&rest[digits..]) {
                Ok(args) if args.first().and_then(Value::as_str) == Some("joined") => {
                    Incoming::Joined
                }
                _ => Incoming::Refused(format!("join refused: {}", clip(packet))),
            }
        }
        _ => Incoming::Other,
    }
}

#[derive(Deserialize)]
struct PlainFrame<'a> {
    #[serde(borrow)]
    event: Option<Cow<'a, str>>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    joined: Option<Value>,
    error: Option<Value>,
}

fn decode_plain(text: &str) -> Incoming {
    let Ok(frame) = serde_json::from_str::<PlainFrame<'_>>(text) else {
        return Incoming::Error(format!("undecodable frame: {}", clip(text)));
    };
    if frame.joined.is_some() {
        Incoming::Joined
    } else if let Some(error) = frame.error {
        Incoming::Refused(format!("join refused: {error}"))
    } else if frame.event.is_some() {
        Incoming::Event {
            seq: None,
            mark: mark_of(frame.event.as_deref(), frame.data),
        }
    } else {
        Incoming::Other
    }
}

/// The start of a frame, for error messages.
fn clip(text: &str) -> &str {
    let end = text.char_indices().nth(80).map_or(text.len(), |(i, _)| i);
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUND: Mark = Mark {
        round: Some(3),
        storm: None,
    };

    #[test]
    fn sockline_frames() {
        let d = |t| decode(Proto::Sockline, t);
        assert_eq!(
            d(
                r#"{"type":"authenticated","user_id":"u1","session":"s1","heartbeat_ms":30000,"resumed":true,"missed":2}"#
            ),
            Incoming::Authenticated {
                session: "s1".into(),
                resumed: true
            }
        );
        assert_eq!(
            d(r#"{"type":"event","seq":7,"event":"bench","data":{"round":3,"pad":"x"},"ts":"t"}"#),
            Incoming::Event {
                seq: Some(7),
                mark: Some(ROUND)
            }
        );
        assert_eq!(
            d(r#"{"type":"event","seq":8,"event":"user_joined","data":{"round":3}}"#),
            Incoming::Event {
                seq: Some(8),
                mark: None
            }
        );
        assert_eq!(
            d(r#"{"type":"ack","id":2,"ok":true}"#),
            Incoming::Ack {
                id: 2,
                ok: true,
                error: String::new()
            }
        );
        assert!(matches!(
            d(r#"{"type":"ack","id":1,"ok":false,"error":{"code":"forbidden"}}"#),
            Incoming::Ack { id: 1, ok: false, error } if error.contains("forbidden")
        ));
        assert_eq!(
            d(r#"{"type":"ping","t":42}"#),
            Incoming::Reply(r#"{"type":"pong","t":42}"#.into())
        );
        assert!(
            matches!(d(r#"{"type":"auth_error","code":"expired"}"#), Incoming::Refused(m) if m.contains("expired"))
        );
        assert!(matches!(d("nope"), Incoming::Error(_)));
    }

    #[test]
    fn socketio_packets() {
        let d = |t| decode(Proto::Socketio, t);
        assert_eq!(
            d(r#"0{"sid":"x","upgrades":[],"pingInterval":25000}"#),
            Incoming::EioOpen
        );
        assert_eq!(d(r#"40{"sid":"y"}"#), Incoming::SioConnected);
        assert_eq!(d("2"), Incoming::Reply("3".into()));
        assert_eq!(d(r#"431["joined"]"#), Incoming::Joined);
        assert!(matches!(
            d(r#"431["expected join(ROOM)"]"#),
            Incoming::Refused(_)
        ));
        assert_eq!(
            d(r#"42["bench",{"round":3,"pad":"xx"}]"#),
            Incoming::Event {
                seq: None,
                mark: Some(ROUND)
            }
        );
        assert!(matches!(d(r#"44{"message":"nope"}"#), Incoming::Refused(_)));
        assert_eq!(
            join(Proto::Socketio, "chat:b", 7),
            r#"421["join","chat:b"]"#
        );
    }

    #[test]
    fn plain_frames_and_bodies() {
        let d = |t| decode(Proto::Bare, t);
        assert_eq!(d(r#"{"joined":"chat:b"}"#), Incoming::Joined);
        assert_eq!(
            d(r#"{"event":"bench","data":{"storm":2}}"#),
            Incoming::Event {
                seq: None,
                mark: Some(Mark {
                    round: None,
                    storm: Some(2)
                })
            }
        );
        let body: Value = serde_json::from_str(&notify_body("chat:b", ROUND, "ab")).unwrap();
        assert_eq!(
            body,
            json!({"room":"chat:b","event":"bench","data":{"pad":"ab","round":3}})
        );
        let auth: Value = serde_json::from_str(
            &hello(Proto::Sockline, "r", "tok", "c1", Some(("s", 9))).unwrap(),
        )
        .unwrap();
        assert_eq!(
            auth,
            json!({"type":"auth","token":"tok","client":"c1","resume":{"session":"s","seq":9}})
        );
    }
}
