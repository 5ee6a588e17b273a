//! The `frame` check: the client's decoder ([`IncomingFrame::decode`]) takes any text without
//! panicking, accepts exactly what the serde [`ServerFrame`] accepts and reads the same values
//! from it, and a frame it accepts, encoded again by serde, decodes to that same frame.

use std::borrow::Cow;

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
            let (rest, payload) = split(&incoming);
            assert_eq!((rest, payload.map(reencoded)), expected, "decoded {text:?}");
            // Encoded again by the server's encoder, it decodes to the same frame. (No size
            // limit: re-encoding may grow a frame, `1E2` becomes `100.0`.)
            let again = frame.encode();
            match IncomingFrame::decode(&again, usize::MAX) {
                Ok(decoded) => {
                    let (rest, payload) = split(&decoded);
                    assert_eq!(
                        (rest, payload.map(str::to_owned)),
                        expected,
                        "{text:?} re-encoded as {again:?}"
                    );
                }
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

/// `incoming` without its raw payload (an event's `data` empty, an ack's absent), and that
/// payload.
fn split<'a>(incoming: &IncomingFrame<'a>) -> (IncomingFrame<'a>, Option<&'a str>) {
    let mut rest = incoming.clone();
    let payload = match &mut rest {
        IncomingFrame::Event { data, .. } => Some(std::mem::take(data)),
        IncomingFrame::Ack { data, .. } => data.take(),
        _ => None,
    };
    (rest, payload)
}

/// What the client's decoder must read from the encoding of `frame`, split as [`split`] does,
/// the payload as serde writes it.
fn incoming_of(frame: &ServerFrame) -> (IncomingFrame<'_>, Option<String>) {
    match frame {
        ServerFrame::Authenticated {
            v,
            user_id,
            session,
            heartbeat_ms,
            resumed,
            missed,
            expires_in_ms,
            limits,
        } => (
            IncomingFrame::Authenticated {
                user_id: Cow::Borrowed(user_id.as_str()),
                session: Cow::Borrowed(session.as_str()),
                heartbeat_ms: *heartbeat_ms,
                resumed: *resumed,
                missed: *missed,
                v: *v,
                expires_in_ms: *expires_in_ms,
                limits: *limits,
            },
            None,
        ),
        ServerFrame::AuthError { code, message } => (
            IncomingFrame::AuthError {
                code: Cow::Borrowed(code.as_str()),
                message: Cow::Borrowed(message.as_str()),
            },
            None,
        ),
        ServerFrame::Event {
            seq,
            event,
            data,
            ts,
        } => (
            IncomingFrame::Event {
                seq: *seq,
                event: Cow::Borrowed(event.as_str()),
                data: "",
                ts: Cow::Borrowed(ts.as_str()),
            },
            Some(data.to_string()),
        ),
        ServerFrame::Ack {
            id,
            ok,
            data,
            error,
        } => (
            IncomingFrame::Ack {
                id: *id,
                ok: *ok,
                data: None,
                error: error.clone(),
            },
            // `Some(null)` is written as `null`, which reads back as absent on both sides.
            data.as_ref()
                .filter(|d| !d.is_null())
                .map(|d| d.to_string()),
        ),
        ServerFrame::Error { code, message } => (
            IncomingFrame::Error {
                code: Cow::Borrowed(code.as_str()),
                message: Cow::Borrowed(message.as_str()),
            },
            None,
        ),
        ServerFrame::Ping { t, rtt_ms } => (
            IncomingFrame::Ping {
                t: *t,
                rtt_ms: *rtt_ms,
            },
            None,
        ),
        ServerFrame::Refreshed { expires_in_ms } => (
            IncomingFrame::Refreshed {
                expires_in_ms: *expires_in_ms,
            },
            None,
        ),
    }
}
