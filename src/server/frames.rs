//! Event frames encoded once per fan-out: the shared tail, and the per-socket splice that puts a
//! session's `seq` in front of it without allocating.
//!
//! An `event` frame is `{"type":"event","seq":N` followed by the tail
//! `,"event":…,"data":…,"ts":"…"}`. The tail is encoded once per fan-out and shared (`Bytes`) by
//! every session's replay entry and socket queue; each socket task splices its `seq` in front
//! of it in a scratch buffer it reuses ([`Splicer`]). A volatile event (no `seq`, never stored)
//! is one complete frame shared by every receiver ([`volatile_frame`]).

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::Value;
use tokio_tungstenite::tungstenite::protocol::frame::Utf8Bytes;

const STORED_PREFIX: &[u8] = br#"{"type":"event","seq":"#;
const VOLATILE_PREFIX: &[u8] = br#"{"type":"event""#;

/// Encodes `,"event":…,"data":…,"ts":"…"}` for one fan-out.
pub(crate) fn tail(event: &str, data: &Value, ts: &str) -> Bytes {
    let mut out = Vec::with_capacity(event.len() + ts.len() + 64);
    out.extend_from_slice(br#","event":"#);
    // Writing a str or a Value into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, event);
    out.extend_from_slice(br#","data":"#);
    let _ = serde_json::to_writer(&mut out, data);
    out.extend_from_slice(br#","ts":""#);
    out.extend_from_slice(ts.as_bytes());
    out.extend_from_slice(b"\"}");
    Bytes::from(out)
}

/// The whole frame of a volatile event: `{"type":"event"` then the tail, without a `seq`
/// (PROTOCOL.md §4: such an event is never buffered, replayed or acknowledged).
pub(crate) fn volatile_frame(tail: &[u8]) -> Utf8Bytes {
    let mut out = Vec::with_capacity(VOLATILE_PREFIX.len() + tail.len());
    out.extend_from_slice(VOLATILE_PREFIX);
    out.extend_from_slice(tail);
    // Both parts are JSON text; the fallback is never taken.
    Utf8Bytes::try_from(out).unwrap_or_else(|_| Utf8Bytes::from_static(r#"{"type":"event"}"#))
}

/// A socket's scratch buffer for splicing stored events; after the first frames it allocates no
/// more (the previous frame's bytes are reclaimed once tungstenite has copied them out).
#[derive(Debug, Default)]
pub(crate) struct Splicer {
    scratch: BytesMut,
}

impl Splicer {
    /// `{"type":"event","seq":N` + `tail`, as one text frame.
    pub(crate) fn stored(&mut self, seq: u64, tail: &[u8]) -> Option<Utf8Bytes> {
        let mut digits = [0u8; 20];
        let digits = u64_digits(seq, &mut digits);
        self.scratch
            .reserve(STORED_PREFIX.len() + digits.len() + tail.len());
        self.scratch.put_slice(STORED_PREFIX);
        self.scratch.put_slice(digits);
        self.scratch.put_slice(tail);
        Utf8Bytes::try_from(self.scratch.split().freeze()).ok()
    }
}

fn u64_digits(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ServerFrame;
    use serde_json::json;

    #[test]
    fn a_spliced_frame_is_the_protocols_event_frame() {
        let data = json!({"id": "n1", "text": "a \"quoted\" \n line"});
        let tail = tail("new_notification", &data, "2026-01-01T00:00:00.000Z");
        let mut splicer = Splicer::default();
        for seq in [1, 7, (1 << 53) - 1] {
            let frame = splicer.stored(seq, &tail).unwrap();
            assert_eq!(
                ServerFrame::decode(frame.as_str(), usize::MAX).unwrap(),
                ServerFrame::Event {
                    seq: Some(seq),
                    event: "new_notification".into(),
                    data: data.clone(),
                    ts: "2026-01-01T00:00:00.000Z".into(),
                }
            );
        }
    }

    #[test]
    fn a_volatile_frame_has_no_seq() {
        let data = json!({"room": "chat:1", "user": "u1"});
        let frame = volatile_frame(&tail("user_joined", &data, "t"));
        assert_eq!(
            ServerFrame::decode(frame.as_str(), usize::MAX).unwrap(),
            ServerFrame::Event {
                seq: None,
                event: "user_joined".into(),
                data,
                ts: "t".into(),
            }
        );
    }

    #[test]
    fn the_scratch_buffer_is_reused_once_frames_are_dropped() {
        let tail = tail("e", &json!({"x": 1}), "t");
        let mut splicer = Splicer::default();
        let first = splicer.stored(1, &tail).unwrap();
        let at = first.as_str().as_ptr();
        drop(first);
        let second = splicer.stored(2, &tail).unwrap();
        assert_eq!(second.as_str().as_ptr(), at, "the same allocation");
    }
}
