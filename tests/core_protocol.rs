//! The wire protocol (`sockline::protocol`) from the outside, on every target: this file runs
//! natively (`cargo test`) and on wasm32 in Node (`cargo test --target wasm32-unknown-unknown`).

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use serde_json::{json, Value};
use sockline::core::Payload;
use sockline::protocol::{
    encode, ClientFrame, CloseCode, DecodeError, ErrorBody, IncomingFrame, ResumePoint, SendLimits,
    ServerFrame, MAX_FRAME_BYTES,
};

fn all_client_frames() -> Vec<ClientFrame> {
    vec![
        ClientFrame::Auth {
            v: 1,
            token: "eyJ.token".into(),
            client: None,
            resume: None,
        },
        ClientFrame::Auth {
            v: 1,
            token: "eyJ.token".into(),
            client: Some("tab-0123456789abcdef".into()),
            resume: Some(ResumePoint {
                session: "s-1".into(),
                seq: 9_007_199_254_740_991,
            }),
        },
        ClientFrame::Send {
            id: 1,
            event: "message".into(),
            data: json!({"room": "r1", "text": "héllo \"world\" 👋", "n": [1, 2.5, null, true]}),
        },
        ClientFrame::Send {
            id: 2,
            event: "ping_room".into(),
            data: Value::Null,
        },
        ClientFrame::Ack { seq: 0 },
        ClientFrame::Pong {
            t: 1_700_000_000_000,
        },
        ClientFrame::Refresh {
            token: "eyJ.fresh".into(),
        },
    ]
}

fn all_server_frames() -> Vec<ServerFrame> {
    vec![
        ServerFrame::Authenticated {
            v: 1,
            user_id: "u1".into(),
            session: "s-1".into(),
            heartbeat_ms: 30_000,
            resumed: true,
            missed: 3,
            expires_in_ms: Some(899_000),
            limits: Some(SendLimits {
                sends_per_s: 50,
                burst: 100,
            }),
        },
        ServerFrame::AuthError {
            code: "expired".into(),
            message: "token expired".into(),
        },
        ServerFrame::Event {
            seq: Some(42),
            event: "new_notification".into(),
            data: json!({"id": "n1", "nested": {"a": [1, 2, 3]}}),
            ts: "2026-01-01T00:00:00Z".into(),
        },
        ServerFrame::Event {
            seq: None,
            event: "typing_update".into(),
            data: json!({"chat_id": "7", "user": "bob", "typing": true}),
            ts: String::new(),
        },
        ServerFrame::Ack {
            id: 7,
            ok: true,
            data: Some(json!({"unread": 5})),
            error: None,
        },
        ServerFrame::Ack {
            id: 8,
            ok: false,
            data: None,
            error: Some(ErrorBody::new("forbidden", "not a member")),
        },
        ServerFrame::Error {
            code: "rate_limited".into(),
            message: "slow down".into(),
        },
        ServerFrame::Ping {
            t: 123,
            rtt_ms: Some(17),
        },
        ServerFrame::Ping {
            t: 124,
            rtt_ms: None,
        },
        ServerFrame::Refreshed {
            expires_in_ms: 60_000,
        },
    ]
}

/// The `type` tag of an encoded frame.
fn type_tag(text: &str) -> String {
    let value: Value = serde_json::from_str(text).expect("encoded frames are JSON");
    value["type"].as_str().expect("a string `type`").to_owned()
}

#[test]
fn every_client_frame_round_trips() {
    for frame in all_client_frames() {
        let text = frame.encode();
        let back = ClientFrame::decode(&text, MAX_FRAME_BYTES).expect(&text);
        assert_eq!(back, frame, "{text}");
        // Encoding is deterministic: the decoded frame encodes to the same text.
        assert_eq!(back.encode(), text);
    }
}

#[test]
fn every_server_frame_round_trips() {
    for frame in all_server_frames() {
        let text = frame.encode();
        let back = ServerFrame::decode(&text, MAX_FRAME_BYTES).expect(&text);
        assert_eq!(back, frame, "{text}");
        assert_eq!(back.encode(), text);
    }
}

#[test]
fn frames_are_tagged_with_their_snake_case_type() {
    let client: Vec<String> = all_client_frames()
        .iter()
        .map(|f| type_tag(&f.encode()))
        .collect();
    assert_eq!(
        client,
        ["auth", "auth", "send", "send", "ack", "pong", "refresh"]
    );

    let server: Vec<String> = all_server_frames()
        .iter()
        .map(|f| type_tag(&f.encode()))
        .collect();
    assert_eq!(
        server,
        [
            "authenticated",
            "auth_error",
            "event",
            "event",
            "ack",
            "ack",
            "error",
            "ping",
            "ping",
            "refreshed"
        ]
    );
}

#[test]
fn optional_fields_are_omitted_on_the_wire_and_defaulted_when_absent() {
    // Omitted when empty.
    let auth = ClientFrame::Auth {
        v: 1,
        token: "t".into(),
        client: None,
        resume: None,
    };
    assert_eq!(auth.encode(), r#"{"type":"auth","v":1,"token":"t"}"#);
    let ping = ServerFrame::Ping { t: 9, rtt_ms: None };
    assert_eq!(ping.encode(), r#"{"type":"ping","t":9}"#);
    let ack = ServerFrame::Ack {
        id: 1,
        ok: true,
        data: None,
        error: None,
    };
    assert_eq!(ack.encode(), r#"{"type":"ack","id":1,"ok":true}"#);

    // Defaulted when a peer leaves them out.
    assert_eq!(
        ServerFrame::decode(
            r#"{"type":"authenticated","user_id":"u","session":"s","heartbeat_ms":1000,"resumed":false}"#,
            MAX_FRAME_BYTES
        ),
        Ok(ServerFrame::Authenticated {
            v: 1,
            user_id: "u".into(),
            session: "s".into(),
            heartbeat_ms: 1000,
            resumed: false,
            missed: 0,
            expires_in_ms: None,
            limits: None,
        })
    );
    assert_eq!(
        ServerFrame::decode(r#"{"type":"event","seq":1,"event":"e"}"#, MAX_FRAME_BYTES),
        Ok(ServerFrame::Event {
            seq: Some(1),
            event: "e".into(),
            data: Value::Null,
            ts: String::new(),
        })
    );
    assert_eq!(
        ClientFrame::decode(
            r#"{"type":"send","id":3,"event":"typing"}"#,
            MAX_FRAME_BYTES
        ),
        Ok(ClientFrame::Send {
            id: 3,
            event: "typing".into(),
            data: Value::Null,
        })
    );
}

#[test]
fn frames_above_the_limit_are_rejected_before_parsing() {
    assert_eq!(MAX_FRAME_BYTES, 64 * 1024);

    // A valid frame of exactly the limit is accepted...
    let prefix = r#"{"type":"ping","t":1,"pad":""#;
    let suffix = r#""}"#;
    let pad = MAX_FRAME_BYTES - prefix.len() - suffix.len();
    let exact = format!("{prefix}{}{suffix}", "a".repeat(pad));
    assert_eq!(exact.len(), MAX_FRAME_BYTES);
    assert_eq!(
        ServerFrame::decode(&exact, MAX_FRAME_BYTES),
        Ok(ServerFrame::Ping { t: 1, rtt_ms: None })
    );

    // ...one byte more is not, and neither is anything, valid JSON or not, above a smaller limit.
    let over = format!("{prefix}{}{suffix}", "a".repeat(pad + 1));
    assert_eq!(
        ServerFrame::decode(&over, MAX_FRAME_BYTES),
        Err(DecodeError::TooLarge {
            size: MAX_FRAME_BYTES + 1,
            limit: MAX_FRAME_BYTES,
        })
    );
    let pong = r#"{"type":"pong","t":1}"#;
    assert_eq!(
        ClientFrame::decode(pong, pong.len() - 1),
        Err(DecodeError::TooLarge {
            size: pong.len(),
            limit: pong.len() - 1,
        })
    );
    assert!(matches!(
        ClientFrame::decode(&"{".repeat(100), 10),
        Err(DecodeError::TooLarge {
            size: 100,
            limit: 10
        })
    ));
}

#[test]
fn malformed_input_is_an_invalid_error_never_a_panic() {
    let bad = [
        "",
        " ",
        "null",
        "42",
        "\"ping\"",
        "[]",
        "{",
        "{}",
        r#"{"type":"nope"}"#,
        r#"{"type":"PING","t":1}"#,
        r#"{"type":"ping"}"#,
        r#"{"type":"ping","t":"soon"}"#,
        r#"{"type":"ping","t":-1}"#,
        r#"{"type":"ping","t":1.5}"#,
        r#"{"type":"ack","id":18446744073709551616,"ok":true}"#,
        r#"{"type":"auth"}"#,
        r#"{"type":"auth","token":"t","resume":{"session":"s"}}"#,
        r#"{"type":"send","id":1}"#,
        r#"{"type":"ack","seq":1,"id":1}x"#,
        "\u{0}\u{ffff}",
    ];
    for text in bad {
        let server = ServerFrame::decode(text, MAX_FRAME_BYTES);
        assert!(
            matches!(server, Err(DecodeError::Invalid(ref m)) if !m.is_empty()),
            "server {text:?}: {server:?}"
        );
        let client = ClientFrame::decode(text, MAX_FRAME_BYTES);
        assert!(
            matches!(client, Err(DecodeError::Invalid(ref m)) if !m.is_empty()),
            "client {text:?}: {client:?}"
        );
    }
}

#[test]
fn client_and_server_frames_do_not_cross_decode() {
    // A client-only frame is not a server frame and vice versa; `ack` exists on both sides
    // with different fields, so each side rejects the other's shape.
    assert!(ServerFrame::decode(r#"{"type":"pong","t":1}"#, MAX_FRAME_BYTES).is_err());
    assert!(ServerFrame::decode(r#"{"type":"ack","seq":5}"#, MAX_FRAME_BYTES).is_err());
    assert!(ClientFrame::decode(r#"{"type":"ping","t":1}"#, MAX_FRAME_BYTES).is_err());
    assert!(ClientFrame::decode(r#"{"type":"ack","id":5,"ok":true}"#, MAX_FRAME_BYTES).is_err());
}

#[test]
fn close_code_retry_policy() {
    let not_retryable = [
        CloseCode::AUTH_REJECTED,
        CloseCode::FORBIDDEN,
        CloseCode::TOO_MANY_CONNECTIONS,
        CloseCode::INVALID_PAYLOAD,
        CloseCode::POLICY,
        CloseCode::TOO_BIG,
    ];
    assert_eq!(
        not_retryable.map(|c| c.0),
        [4001, 4003, 4008, 1007, 1008, 1009],
        "named codes keep their numbers"
    );
    for code in not_retryable {
        assert!(!code.is_retryable(), "{code} must not be retried");
    }

    let retryable = [
        CloseCode::NORMAL,
        CloseCode::GOING_AWAY,
        CloseCode::ABNORMAL,
        CloseCode::INTERNAL_ERROR,
        CloseCode::SERVICE_RESTART,
        CloseCode::TRY_AGAIN_LATER,
        CloseCode::AUTH_TIMEOUT,
        CloseCode::TOKEN_EXPIRED,
    ];
    assert_eq!(
        retryable.map(|c| c.0),
        [1000, 1001, 1006, 1011, 1012, 1013, 4000, 4002]
    );
    for code in retryable {
        assert!(code.is_retryable(), "{code} must be retried");
    }

    // Codes sockline does not name are retried, so an unknown close never strands an app.
    for code in [0, 999, 1002, 1003, 1014, 3000, 4002, 4009, 4999, u16::MAX] {
        assert!(CloseCode(code).is_retryable(), "{code} must be retried");
    }
}

#[test]
fn close_codes_display_and_serialize_as_bare_numbers() {
    assert_eq!(CloseCode::AUTH_REJECTED.to_string(), "4001");
    assert_eq!(
        serde_json::to_string(&CloseCode::GOING_AWAY).unwrap(),
        "1001"
    );
    assert_eq!(
        serde_json::from_str::<CloseCode>("4008").unwrap(),
        CloseCode::TOO_MANY_CONNECTIONS
    );
}

/// The client's serde-free codec (what the browser runs) against the serde frames (what the
/// server runs), on every target: the same bytes out, the same frames in.
#[test]
fn the_client_codec_matches_the_serde_frames() {
    for frame in all_client_frames() {
        let ours = match &frame {
            ClientFrame::Auth {
                token,
                client,
                resume,
                ..
            } => encode::auth(token, client.as_deref(), resume.as_ref()),
            ClientFrame::Send { id, event, data } => encode::send(
                *id,
                &serde_json::to_string(event).unwrap(),
                &data.to_string(),
            ),
            ClientFrame::Ack { seq } => encode::ack(*seq),
            ClientFrame::Pong { t } => encode::pong(*t),
            ClientFrame::Refresh { token } => encode::refresh(token),
        };
        assert_eq!(ours, frame.encode());
    }
    let raw = |v: &Value| v.to_string();
    for frame in all_server_frames() {
        let text = frame.encode();
        // The payload text the decoder borrows from the frame, as serde_json writes it.
        let payload = match &frame {
            ServerFrame::Event { data, .. }
            | ServerFrame::Ack {
                data: Some(data), ..
            } => raw(data),
            _ => String::new(),
        };
        let expected = match frame {
            ServerFrame::Authenticated {
                v,
                user_id,
                session,
                heartbeat_ms,
                resumed,
                missed,
                expires_in_ms,
                limits,
            } => IncomingFrame::Authenticated {
                v,
                user_id: user_id.into(),
                session: session.into(),
                heartbeat_ms,
                resumed,
                missed,
                expires_in_ms,
                limits,
            },
            ServerFrame::AuthError { code, message } => IncomingFrame::AuthError {
                code: code.into(),
                message: message.into(),
            },
            ServerFrame::Event { seq, event, ts, .. } => IncomingFrame::Event {
                seq,
                event: event.into(),
                data: &payload,
                ts: ts.into(),
            },
            ServerFrame::Ack {
                id,
                ok,
                data,
                error,
            } => IncomingFrame::Ack {
                id,
                ok,
                data: data.as_ref().map(|_| payload.as_str()),
                error,
            },
            ServerFrame::Error { code, message } => IncomingFrame::Error {
                code: code.into(),
                message: message.into(),
            },
            ServerFrame::Ping { t, rtt_ms } => IncomingFrame::Ping { t, rtt_ms },
            ServerFrame::Refreshed { expires_in_ms } => IncomingFrame::Refreshed { expires_in_ms },
        };
        assert_eq!(
            IncomingFrame::decode(&text, MAX_FRAME_BYTES),
            Ok(expected),
            "{text}"
        );
    }
    // Defaults and `null`s as serde reads them.
    assert_eq!(
        IncomingFrame::decode(
            r#"{"type":"ack","id":1,"ok":true,"data":null,"error":null,"x":[{}]}"#,
            MAX_FRAME_BYTES
        ),
        Ok(IncomingFrame::Ack {
            id: 1,
            ok: true,
            data: None,
            error: None
        })
    );
    assert_eq!(
        IncomingFrame::decode(r#"{"type":"event","seq":1,"event":"e"}"#, MAX_FRAME_BYTES),
        Ok(IncomingFrame::Event {
            seq: Some(1),
            event: "e".into(),
            data: "null",
            ts: "".into(),
        })
    );
    let big = format!(
        r#"{{"type":"ping","t":1,"x":"{}"}}"#,
        "a".repeat(MAX_FRAME_BYTES)
    );
    assert!(matches!(
        IncomingFrame::decode(&big, MAX_FRAME_BYTES),
        Err(DecodeError::TooLarge { .. })
    ));
}

#[test]
fn payloads_must_be_one_json_value() {
    for ok in [
        "null",
        " {\"a\":[1,2.5e-3,\"\\ud83d\\udc4b\"]} ",
        "\"x\"",
        "-0",
    ] {
        assert_eq!(
            Payload::from_json(ok).map(|p| p.into_json()),
            Ok(ok.to_owned())
        );
    }
    for bad in ["", "{", "1 2", "'x'", "undefined", "\"\\ud800\"", "[1,]"] {
        assert!(Payload::from_json(bad).is_err(), "{bad:?}");
    }
    assert_eq!(Payload::null().json(), "null");
}
