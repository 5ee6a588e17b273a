//! The `frame` check: the client's decoder ([`IncomingFrame::decode`]) takes any text without
//! panicking, accepts exactly what the serde [`ServerFrame`] accepts and reads the same values
//! from it, and a frame it accepts, encoded again by serde, decodes to that same frame.

use serde_json::Value;

use crate::protocol::{DecodeError, IncomingFrame, ServerFrame, MAX_FRAME_BYTES};

/// Runs the check on one input.
pub fn frame(data: &[u8]) {
    let text = super::text(data);
    let ours = IncomingFrame::decode(&text, MAX_FRAME_BYTES);
    let theirs = ServerFrame::decode(&text, MAX_FRAME_BYTES);
    match (ours, theirs) {
        (Ok(incoming), Ok(frame)) => {
            // The same values (payloads compared as serde reads them: both sides parse the
            // same digits, so even floats agree).
            let expected = incoming_of(&frame);
            assert_eq!(canonical(&incoming), expected, "decoded {text:?}");
            // Encoded again by the server's encoder, it decodes to the same frame. (No size
            // limit: re-encoding may grow a frame, `1E2` becomes `100.0`.)
            let again = frame.encode();
            match IncomingFrame::decode(&again, usize::MAX) {
                Ok(decoded) => assert_eq!(decoded, expected, "{text:?} re-encoded as {again:?}"),
                Err(e) => panic!("{text:?} re-encoded as {again:?} does not decode: {e}"),
            }
        }
        (Err(_), Err(_)) => {}
        (Ok(incoming), Err(e)) => assert!(
            matches!(&e, DecodeError::Invalid(m) if super::out_of_range(m)),
            "accepted {text:?} as {incoming:?}; serde: {e}"
        ),
        (Err(e), Ok(frame)) => panic!("refused {text:?} ({e}); serde read {frame:?}"),
    }
}

/// `raw` JSON as `serde_json` writes what it reads from it.
fn reencoded(raw: &str) -> String {
    match serde_json::from_str::<Value>(raw) {
        Ok(value) => value.to_string(),
        Err(e) => panic!("the decoder kept a payload serde_json cannot read: {raw:?}: {e}"),
    }
}

/// `incoming` with its raw payloads rewritten as serde would write them.
fn canonical(incoming: &IncomingFrame) -> IncomingFrame {
    let mut out = incoming.clone();
    match &mut out {
        IncomingFrame::Event { data, .. } => *data = reencoded(data),
        IncomingFrame::Ack {
            data: Some(data), ..
        } => *data = reencoded(data),
        _ => {}
    }
    out
}

/// What the client's decoder must read from the encoding of `frame`.
fn incoming_of(frame: &ServerFrame) -> IncomingFrame {
    match frame.clone() {
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
            user_id,
            session,
            heartbeat_ms,
            resumed,
            missed,
            v,
            expires_in_ms,
            limits,
        },
        ServerFrame::AuthError { code, message } => IncomingFrame::AuthError { code, message },
        ServerFrame::Event {
            seq,
            event,
            data,
            ts,
        } => IncomingFrame::Event {
            seq,
            event,
            data: data.to_string(),
            ts,
        },
        ServerFrame::Ack {
            id,
            ok,
            data,
            error,
        } => IncomingFrame::Ack {
            id,
            ok,
            // `Some(null)` is written as `null`, which reads back as absent on both sides.
            data: data.filter(|d| !d.is_null()).map(|d| d.to_string()),
            error,
        },
        ServerFrame::Error { code, message } => IncomingFrame::Error { code, message },
        ServerFrame::Ping { t, rtt_ms } => IncomingFrame::Ping { t, rtt_ms },
        ServerFrame::Refreshed { expires_in_ms } => IncomingFrame::Refreshed { expires_in_ms },
    }
}
