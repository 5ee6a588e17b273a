//! Property tests of the hand-written JSON scanner ([`json`]) and the client's serde-free codec
//! ([`IncomingFrame`], [`encode`]), with `serde_json` as the oracle: random values encoded by
//! serde_json scan back to the same values, the encoders write exactly what serde_json writes,
//! the range checks agree, and malformed input is an error, never a panic.

use proptest::prelude::*;
use serde_json::{json, Map, Value};

use super::{
    encode, json, ClientFrame, ErrorBody, IncomingFrame, ResumePoint, SendLimits, ServerFrame,
    MAX_FRAME_BYTES, MAX_WIRE_ID,
};
use crate::core::Payload;

/// Ids and seqs: mostly in range, sometimes at or past its edges.
fn wire_id() -> impl Strategy<Value = u64> {
    prop_oneof![
        8 => 1..=MAX_WIRE_ID,
        1 => Just(0u64),
        1 => Just(MAX_WIRE_ID + 1),
        1 => any::<u64>(),
    ]
}

/// Strings with the characters that need care: quotes, backslashes, controls, non-ASCII,
/// astral-plane characters.
fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just('"'),
            Just('\\'),
            Just('/'),
            (0u32..0x20).prop_map(|c| char::from_u32(c).unwrap()),
            Just('\u{7f}'),
            Just('é'),
            Just('\u{2028}'),
            Just('👋'),
            any::<char>(),
            prop::char::range('a', 'z'),
        ],
        0..12,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(6, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((text(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn event_frame() -> impl Strategy<Value = ServerFrame> {
    (prop::option::of(wire_id()), text(), value(), text()).prop_map(|(seq, event, data, ts)| {
        ServerFrame::Event {
            seq,
            event,
            data,
            ts,
        }
    })
}

fn server_frame() -> impl Strategy<Value = ServerFrame> {
    let error_body = (text(), text(), prop::option::of(any::<u64>())).prop_map(
        |(code, message, retry_after_ms)| ErrorBody {
            code,
            message,
            retry_after_ms,
        },
    );
    let limits = (any::<u32>(), any::<u32>())
        .prop_map(|(sends_per_s, burst)| SendLimits { sends_per_s, burst });
    prop_oneof![
        (
            (text(), text(), any::<u64>(), any::<bool>(), any::<u64>()),
            (
                any::<u32>(),
                prop::option::of(any::<u64>()),
                prop::option::of(limits)
            )
        )
            .prop_map(
                |(
                    (user_id, session, heartbeat_ms, resumed, missed),
                    (v, expires_in_ms, limits),
                )| {
                    ServerFrame::Authenticated {
                        v,
                        user_id,
                        session,
                        heartbeat_ms,
                        resumed,
                        missed,
                        expires_in_ms,
                        limits,
                    }
                }
            ),
        (text(), text()).prop_map(|(code, message)| ServerFrame::AuthError { code, message }),
        event_frame(),
        any::<u64>().prop_map(|expires_in_ms| ServerFrame::Refreshed { expires_in_ms }),
        (
            wire_id(),
            any::<bool>(),
            prop::option::of(value()),
            prop::option::of(error_body)
        )
            .prop_map(|(id, ok, data, error)| ServerFrame::Ack {
                id,
                ok,
                // `Some(Null)` is encoded as `null`, which reads back as `None` on both sides.
                data: data.filter(|d| !d.is_null()),
                error,
            }),
        (text(), text()).prop_map(|(code, message)| ServerFrame::Error { code, message }),
        (any::<u64>(), prop::option::of(any::<u64>()))
            .prop_map(|(t, rtt_ms)| ServerFrame::Ping { t, rtt_ms }),
    ]
}

/// What `IncomingFrame` should hold for `frame`, payloads compared as parsed values.
fn same(incoming: &IncomingFrame, frame: &ServerFrame) -> bool {
    let parse = |raw: &str| serde_json::from_str::<Value>(raw).expect("raw payloads are JSON");
    match (incoming, frame) {
        (
            IncomingFrame::Authenticated {
                user_id,
                session,
                heartbeat_ms,
                resumed,
                missed,
                v,
                expires_in_ms,
                limits,
            },
            ServerFrame::Authenticated {
                user_id: u,
                session: s,
                heartbeat_ms: h,
                resumed: r,
                missed: m,
                v: v2,
                expires_in_ms: x,
                limits: l,
            },
        ) => {
            (
                user_id.as_ref(),
                session.as_ref(),
                heartbeat_ms,
                resumed,
                missed,
            ) == (u.as_str(), s.as_str(), h, r, m)
                && (v, expires_in_ms, limits) == (v2, x, l)
        }
        (
            IncomingFrame::Refreshed { expires_in_ms },
            ServerFrame::Refreshed { expires_in_ms: x },
        ) => expires_in_ms == x,
        (
            IncomingFrame::AuthError { code, message },
            ServerFrame::AuthError {
                code: c,
                message: m,
            },
        )
        | (
            IncomingFrame::Error { code, message },
            ServerFrame::Error {
                code: c,
                message: m,
            },
        ) => (code.as_ref(), message.as_ref()) == (c.as_str(), m.as_str()),
        (
            IncomingFrame::Event {
                seq,
                event,
                data,
                ts,
            },
            ServerFrame::Event {
                seq: s,
                event: e,
                data: d,
                ts: t,
            },
        ) => (seq, event.as_ref(), ts.as_ref()) == (s, e.as_str(), t.as_str()) && parse(data) == *d,
        (
            IncomingFrame::Ack {
                id,
                ok,
                data,
                error,
            },
            ServerFrame::Ack {
                id: i,
                ok: o,
                data: d,
                error: e,
            },
        ) => (id, ok, error) == (i, o, e) && data.as_deref().map(parse) == *d,
        (IncomingFrame::Ping { t, rtt_ms }, ServerFrame::Ping { t: t2, rtt_ms: r2 }) => {
            (t, rtt_ms) == (t2, r2)
        }
        _ => false,
    }
}

/// Valid JSON with one byte-level mutation: truncated, a byte dropped, or a character inserted.
fn mutated(base: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    let insert = prop_oneof![
        Just('"'),
        Just('\\'),
        Just('{'),
        Just('}'),
        Just('['),
        Just(']'),
        Just(','),
        Just(':'),
        Just('-'),
        Just('.'),
        Just('e'),
        Just('0'),
        Just('5'),
        Just('u'),
        Just('n'),
        Just(' '),
        Just('\u{1}'),
    ];
    (base, any::<prop::sample::Index>(), 0u8..3, insert).prop_map(|(text, at, how, c)| {
        let cuts: Vec<usize> = (0..=text.len())
            .filter(|&i| text.is_char_boundary(i))
            .collect();
        let i = cuts[at.index(cuts.len())];
        match how {
            0 => text[..i].to_owned(),
            1 => {
                let next = cuts.iter().copied().find(|&j| j > i).unwrap_or(i);
                format!("{}{}", &text[..i], &text[next..])
            }
            _ => format!("{}{}{}", &text[..i], c, &text[i..]),
        }
    })
}

/// serde_json refuses numbers beyond `f64`; the scanner checks number syntax only.
fn out_of_range(e: &serde_json::Error) -> bool {
    e.to_string().contains("number out of range")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn serde_json_output_validates_and_splits_into_the_same_members(v in value()) {
        let text = v.to_string();
        prop_assert_eq!(json::validate(&text), Ok(()));
        let pretty = serde_json::to_string_pretty(&v).unwrap();
        prop_assert_eq!(json::validate(&pretty), Ok(()));
        // Compact: each member's raw text is exactly what serde_json writes for it.
        let wrapped = json!({ "k": v.clone(), "other": [1, "x"] });
        let wrapped_text = wrapped.to_string();
        let members: Vec<(String, &str)> = json::object_members(&wrapped_text)
            .unwrap()
            .into_iter()
            .map(|(k, raw)| (k.into_owned(), raw))
            .collect();
        let expected: Vec<(String, String)> = wrapped
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect();
        prop_assert_eq!(members.len(), expected.len());
        for ((k, raw), (ek, eraw)) in members.iter().zip(&expected) {
            prop_assert_eq!(k, ek);
            prop_assert_eq!(*raw, eraw.as_str());
        }
        // Pretty: each member reads back as what its compact text reads back as (serde_json's
        // float parsing is not exact, so both sides go through it).
        if let Value::Object(map) = &v {
            let members = json::object_members(&pretty).unwrap();
            prop_assert_eq!(members.len(), map.len());
            for (k, raw) in members {
                let compact = map.get(k.as_ref()).unwrap().to_string();
                prop_assert_eq!(
                    serde_json::from_str::<Value>(raw).unwrap(),
                    serde_json::from_str::<Value>(&compact).unwrap()
                );
            }
        }
    }

    #[test]
    fn strings_and_numbers_read_back(s in text(), n in any::<u64>()) {
        let encoded = serde_json::to_string(&s).unwrap();
        prop_assert_eq!(json::parse_string(&encoded), Ok(s.clone()));
        let mut written = String::new();
        json::write_string(&mut written, &s);
        prop_assert_eq!(&written, &encoded);
        // Every character escaped as `\uXXXX` (surrogate pairs for astral ones) reads back too.
        let escaped: String = std::iter::once("\"".to_owned())
            .chain(s.encode_utf16().map(|u| format!("\\u{u:04X}")))
            .chain(std::iter::once("\"".to_owned()))
            .collect();
        prop_assert_eq!(json::parse_string(&escaped), Ok(s));
        prop_assert_eq!(json::parse_u64(&n.to_string()), Ok(n));
        let mut out = String::new();
        json::write_u64(&mut out, n);
        prop_assert_eq!(out, n.to_string());
    }

    #[test]
    fn validation_agrees_with_serde_json(text in prop_oneof![
        mutated(value().prop_map(|v| v.to_string())),
        ".{0,24}",
    ]) {
        let ours = json::validate(&text);
        match serde_json::from_str::<Value>(&text) {
            Ok(_) => prop_assert_eq!(ours, Ok(())),
            Err(e) if out_of_range(&e) => {}
            Err(e) => prop_assert!(ours.is_err(), "accepted {:?}; serde_json: {}", text, e),
        }
        prop_assert_eq!(Payload::from_json(text.clone()).is_ok(), ours.is_ok());
    }

    #[test]
    fn client_encoders_write_what_serde_writes(
        token in text(),
        resume in prop::option::of((text(), any::<u64>())),
        event in text(),
        data in value(),
        n in any::<u64>(),
    ) {
        let resume = resume.map(|(session, seq)| ResumePoint { session, seq });
        let client = Some("Ab_-0123456789xyz".to_owned()).filter(|_| n % 2 == 0);
        let auth = ClientFrame::Auth {
            v: 1,
            token: token.clone(),
            client: client.clone(),
            resume: resume.clone(),
        };
        prop_assert_eq!(encode::auth(&token, client.as_deref(), resume.as_ref()), auth.encode());
        prop_assert_eq!(
            encode::refresh(&token),
            ClientFrame::Refresh { token: token.clone() }.encode()
        );
        let send = ClientFrame::Send { id: n, event: event.clone(), data: data.clone() };
        let text = encode::send(n, &serde_json::to_string(&event).unwrap(), &data.to_string());
        prop_assert_eq!(text, send.encode());
        prop_assert_eq!(encode::ack(n), ClientFrame::Ack { seq: n }.encode());
        prop_assert_eq!(encode::pong(n), ClientFrame::Pong { t: n }.encode());
    }

    #[test]
    fn incoming_frames_decode_what_the_server_encodes(frame in server_frame()) {
        // Compared with what serde reads back (its float parsing is not exact). Ids and seqs
        // out of range are refused by both.
        let pretty = serde_json::to_string_pretty(&frame).unwrap();
        for text in [frame.encode(), pretty] {
            match (ServerFrame::decode(&text, usize::MAX), IncomingFrame::decode(&text, usize::MAX)) {
                (Ok(frame), Ok(incoming)) => {
                    prop_assert!(same(&incoming, &frame), "{:?} vs {:?}", incoming, frame);
                }
                (Err(_), Err(_)) => {}
                (serde, ours) => prop_assert!(false, "{}: serde {:?}, ours {:?}", text, serde, ours),
            }
        }
    }

    #[test]
    fn incoming_frames_accept_what_serde_accepts(text in prop_oneof![
        mutated(server_frame().prop_map(|f| f.encode())),
        ".{0,24}",
    ]) {
        let ours = IncomingFrame::decode(&text, MAX_FRAME_BYTES);
        match ServerFrame::decode(&text, MAX_FRAME_BYTES) {
            Ok(frame) => {
                let incoming = ours.expect("serde accepted it");
                prop_assert!(same(&incoming, &frame), "{:?} vs {:?}", incoming, frame);
            }
            Err(e) => {
                let range = matches!(&e, super::DecodeError::Invalid(m) if m.contains("number out of range"));
                prop_assert!(range || ours.is_err(), "accepted {:?}; serde: {}", text, e);
            }
        }
    }
}

/// What the event fast path takes, the general reader reads the same, to the byte (borrowed
/// strings, the raw payload); what it leaves (`None`), the general reader decides alone.
fn fast_path_agrees(text: &str) -> Result<(), TestCaseError> {
    if let Some(fast) = IncomingFrame::event_as_the_server_writes_it(text) {
        prop_assert_eq!(Ok(fast), IncomingFrame::read_members(text), "{}", text);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn the_event_fast_path_answers_as_the_general_reader(text in prop_oneof![
        event_frame().prop_map(|f| f.encode()),
        mutated(event_frame().prop_map(|f| f.encode())),
        mutated(mutated(event_frame().prop_map(|f| f.encode()))),
    ]) {
        fast_path_agrees(&text)?;
    }
}

#[test]
fn the_event_fast_path_takes_the_servers_shape_and_leaves_the_rest() {
    let taken = [
        r#"{"type":"event","seq":7,"event":"x","data":{"a":[1,"b"]},"ts":"t"}"#,
        r#"{"type":"event","event":"typing","data":null,"ts":""}"#,
        r#"{"type":"event","seq":1,"event":"x","data": 1,"ts":"t"}"#,
        r#"{"type":"event","seq":9007199254740991,"event":"x","data":"\u00e9","ts":"t"}  "#,
    ];
    let left = [
        // The general reader's answers: errors, or the same frame read another way.
        r#"{"type":"event","seq":07,"event":"x","data":1,"ts":"t"}"#,
        r#"{"type":"event","seq":0,"event":"x","data":1,"ts":"t"}"#,
        r#"{"type":"event","seq":9007199254740992,"event":"x","data":1,"ts":"t"}"#,
        r#"{"type":"event","seq":1e3,"event":"x","data":1,"ts":"t"}"#,
        r#"{"type":"event","seq":1.0,"event":"x","data":1,"ts":"t"}"#,
        r#"{"type":"event","seq":null,"event":"x","data":1,"ts":"t"}"#,
        r#"{"type":"event","seq":1,"event":"x\n","data":1,"ts":"t"}"#,
        r#"{"type":"event","seq":1,"event":"\u0078","data":1,"ts":"t"}"#,
        r#"{"type":"event","seq":1,"event":"x","data":[1,],"ts":"t"}"#,
        r#"{"type":"event","seq":1,"event":"x","data":1,"ts":"t"}}"#,
        r#"{"type":"event","seq":1,"event":"x","data":1,"ts":"t","ts":"u"}"#,
        r#"{"type":"event","seq":1,"event":"x","data":1}"#,
        r#"{"type":"event","seq":1,"event":"x","data":1,"ts":"t""#,
        r#"{"type":"event", "seq":1,"event":"x","data":1,"ts":"t"}"#,
    ];
    for text in taken {
        assert!(
            IncomingFrame::event_as_the_server_writes_it(text).is_some(),
            "{text}"
        );
        fast_path_agrees(text).unwrap();
    }
    for text in left {
        assert!(
            IncomingFrame::event_as_the_server_writes_it(text).is_none(),
            "{text}"
        );
    }
    let deep = format!(
        r#"{{"type":"event","event":"x","data":{}1{},"ts":""}}"#,
        "[".repeat(json::MAX_DEPTH),
        "]".repeat(json::MAX_DEPTH)
    );
    assert!(IncomingFrame::event_as_the_server_writes_it(&deep).is_none());
    assert!(IncomingFrame::read_members(&deep).is_err());
}

#[test]
fn malformed_input_is_an_error() {
    for bad in [
        "",
        " ",
        "{",
        "}",
        "[1,]",
        "[,1]",
        "{\"a\"}",
        "{\"a\":}",
        "{\"a\":1,}",
        "{a:1}",
        "01",
        "-",
        "1.",
        ".5",
        "1e",
        "1e+",
        "+1",
        "tru",
        "nul",
        "\"\\u12\"",
        "\"\\ud800\"",
        "\"\\udc00\"",
        "\"a\u{0}\"",
        "[1] x",
        "{} {}",
        "NaN",
        "Infinity",
        "'a'",
    ] {
        assert!(json::validate(bad).is_err(), "{bad:?}");
        assert!(
            IncomingFrame::decode(bad, MAX_FRAME_BYTES).is_err(),
            "{bad:?}"
        );
    }
    let deep = "[".repeat(json::MAX_DEPTH + 1) + &"]".repeat(json::MAX_DEPTH + 1);
    assert!(json::validate(&deep).is_err());
    assert!(serde_json::from_str::<Value>(&deep).is_err());
    let ok = "[".repeat(json::MAX_DEPTH) + &"]".repeat(json::MAX_DEPTH);
    assert!(json::validate(&ok).is_ok());
    assert!(serde_json::from_str::<Value>(&ok).is_ok());
    // A repeated field, a `null` where a string is required, the wrong type for a field.
    for bad in [
        r#"{"type":"ping","t":1,"t":2}"#,
        r#"{"type":"error","code":"x","message":null}"#,
        r#"{"type":"ping","t":"1"}"#,
        r#"{"type":"ack","id":1,"ok":true,"error":"x"}"#,
        r#"{"type":1}"#,
    ] {
        assert!(
            IncomingFrame::decode(bad, MAX_FRAME_BYTES).is_err(),
            "{bad}"
        );
        assert!(ServerFrame::decode(bad, MAX_FRAME_BYTES).is_err(), "{bad}");
    }
}
