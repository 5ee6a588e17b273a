//! The wire protocol shared by client and server: the vocabulary both sides use (size limits,
//! [`CloseCode`] and its retry policy, [`ResumePoint`], [`ErrorBody`], the id range), the serde
//! frames the server speaks ([`frames`]), and the client's serde-free codec ([`client`]).
//!
//! [PROTOCOL.md](https://github.com/sockline/sockline/blob/main/PROTOCOL.md) at the repository
//! root is the normative description of every frame and rule; this module follows it.
//!
//! Decoding never panics: bad input of any shape is a [`DecodeError`] value.
//!
//! Two codecs, one wire shape: the server (and tests) read and write frames with serde
//! ([`ClientFrame`], [`ServerFrame`]); the client's hot path uses [`IncomingFrame::decode`] and
//! [`encode`], written by hand over a small JSON scanner so the browser build links no
//! `serde_json`. Property tests hold the two to the same bytes and the same answers.

use serde::{Deserialize, Serialize};

pub mod client;
pub mod frames;
pub(crate) mod json;
#[cfg(all(test, not(target_arch = "wasm32")))]
mod props;

pub use client::{encode, IncomingFrame};
pub use frames::{ClientFrame, ServerFrame};
pub use json::JsonError;

/// The largest text frame either side accepts, in bytes (64 KiB).
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// The protocol version this crate speaks (`auth.v`, `authenticated.v`).
pub const PROTOCOL_VERSION: u32 = 1;

/// The largest send id or event seq on the wire: 2^53 − 1, exact in JavaScript.
pub const MAX_WIRE_ID: u64 = (1 << 53) - 1;

/// Whether `n` is a valid send id or event seq (1 ..= 2^53 − 1).
pub fn is_wire_id(n: u64) -> bool {
    (1..=MAX_WIRE_ID).contains(&n)
}

/// Whether `id` is a valid client id: 16–64 characters of `[A-Za-z0-9_-]`.
pub fn is_client_id(id: &str) -> bool {
    (16..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A client id from 16 random bytes: 22 characters of base64url (no padding), which
/// [`is_client_id`] accepts. Drivers call it with bytes from a real random source.
pub fn client_id_from(bytes: [u8; 16]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits: u32 = 0;
    let mut held = 0;
    let mut out = String::with_capacity(22);
    for byte in bytes {
        bits = (bits << 8) | u32::from(byte);
        held += 8;
        while held >= 6 {
            held -= 6;
            out.push(char::from(ALPHABET[((bits >> held) & 63) as usize]));
        }
    }
    if held > 0 {
        out.push(char::from(ALPHABET[((bits << (6 - held)) & 63) as usize]));
    }
    out
}

/// Where a resumed session picks up: the session id and the highest contiguous `seq` received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumePoint {
    /// The session id from the last `authenticated` frame.
    pub session: String,
    /// The highest contiguous event `seq` the client has received in that session (0: none).
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
    /// For `rate_limited`: how long to wait before sending the same id again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl ErrorBody {
    /// An error body with no retry hint.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorBody {
            code: code.into(),
            message: message.into(),
            retry_after_ms: None,
        }
    }
}

/// The per-socket send rate a server enforces (`authenticated.limits`), so clients can pace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendLimits {
    /// Sends per second the bucket refills.
    pub sends_per_s: u32,
    /// How many sends the bucket holds when full.
    pub burst: u32,
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The frame is larger than [`MAX_FRAME_BYTES`].
    TooLarge {
        /// The frame's size in bytes.
        size: usize,
        /// The limit it exceeded.
        limit: usize,
    },
    /// The frame is not valid JSON or not a known frame shape.
    Invalid(String),
}

impl DecodeError {
    /// What [`Display`](std::fmt::Display) writes, e.g. `invalid frame: missing field`.
    pub fn message(&self) -> String {
        match self {
            DecodeError::TooLarge { size, limit } => crate::error::too_large(*size, *limit),
            DecodeError::Invalid(why) => crate::message::Message::new("invalid frame: ")
                .s(why)
                .done(),
        }
    }
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message())
    }
}

/// Refuses a frame above `limit` bytes before anything parses it.
pub(crate) fn check_size(text: &str, limit: usize) -> Result<(), DecodeError> {
    if text.len() > limit {
        return Err(DecodeError::TooLarge {
            size: text.len(),
            limit,
        });
    }
    Ok(())
}

pub(crate) fn invalid(reason: &str) -> DecodeError {
    DecodeError::Invalid(String::from(reason))
}

/// A WebSocket close code, with the names and retry policy sockline gives them
/// (PROTOCOL.md §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: normal closure.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the server is going away (shutdown or restart), or the socket was silent.
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1006: the connection dropped without a close frame (never sent on the wire).
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: a text frame was not valid UTF-8.
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: policy violation (frame budget, bad path or origin).
    pub const POLICY: CloseCode = CloseCode(1008);
    /// 1009: a frame was too big.
    pub const TOO_BIG: CloseCode = CloseCode(1009);
    /// 1011: the server hit an internal error.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// 1012: the service is restarting.
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);
    /// 1013: try again later (the socket did not read fast enough, or the server is full).
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);
    /// 4000: no `auth` frame arrived in time.
    pub const AUTH_TIMEOUT: CloseCode = CloseCode(4000);
    /// 4001: the token was rejected, or a frame other than `auth` came first.
    pub const AUTH_REJECTED: CloseCode = CloseCode(4001);
    /// 4002: the token expired on a live socket (retryable with a fresh token).
    pub const TOKEN_EXPIRED: CloseCode = CloseCode(4002);
    /// 4003: forbidden.
    pub const FORBIDDEN: CloseCode = CloseCode(4003);
    /// 4008: too many connections for this user.
    pub const TOO_MANY_CONNECTIONS: CloseCode = CloseCode(4008);

    /// Whether a client should reconnect after the server closed with this code.
    ///
    /// Not retryable: 4001, 4003, 4008, 1007, 1008 and 1009 — reconnecting would be refused the
    /// same way. Everything else is retryable, including codes sockline does not name: a server
    /// that closes for an unknown reason should not leave an app offline for good.
    pub fn is_retryable(self) -> bool {
        !matches!(
            self,
            CloseCode::AUTH_REJECTED
                | CloseCode::FORBIDDEN
                | CloseCode::TOO_MANY_CONNECTIONS
                | CloseCode::INVALID_PAYLOAD
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

    #[test]
    fn close_code_retry_policy_follows_the_protocol() {
        for code in [1000, 1001, 1006, 1011, 1012, 1013, 4000, 4002, 3000, 4999] {
            assert!(CloseCode(code).is_retryable(), "{code}");
        }
        for code in [4001, 4003, 4008, 1007, 1008, 1009] {
            assert!(!CloseCode(code).is_retryable(), "{code}");
        }
    }

    #[test]
    fn wire_ids_and_client_ids() {
        assert!(!is_wire_id(0));
        assert!(is_wire_id(1) && is_wire_id(MAX_WIRE_ID));
        assert!(!is_wire_id(MAX_WIRE_ID + 1) && !is_wire_id(u64::MAX));
        assert!(is_client_id("abcdefghijklmnop") && is_client_id(&"a_-9".repeat(16)));
        for bad in [
            "short",
            "abcdefghijklmno!",
            "abcdefghijklmnop ",
            &"a".repeat(65),
        ] {
            assert!(!is_client_id(bad), "{bad}");
        }
    }
}
