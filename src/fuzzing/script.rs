//! The byte format of a `core` fuzz input ([`Script`]): two config bytes, then steps until the
//! bytes run out. A step is a delay byte (`d² · 4` ms: 0 to 260 s, fine-grained near the ack
//! and rate timers, coarse near the heartbeat), an op byte (modulo the number of ops) and the
//! op's argument bytes; a step cut short by the end of the input is dropped.
//!
//! A small hand-written cursor rather than `arbitrary`: the seed corpus is written by
//! [`Script::to_bytes`], which must be the exact inverse of [`Script::parse`], and `arbitrary`
//! does not promise how many bytes a value takes.

use super::cursor::Cursor;

/// One thing the script does to the connection. Server frames are written with the protocol's
/// serde encoder ([`ServerFrame::encode`](crate::protocol::ServerFrame::encode)), except
/// [`Step::Frame`], which is any text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Jump to `poll_timeout()` (if any) and feed `Input::Timeout`.
    Timeout,
    /// `connect()`.
    Connect,
    /// `reconnect()`.
    Reconnect,
    /// `disconnect()`.
    Disconnect,
    /// `send()` with this payload text (empty: a small object; not JSON: refused, nothing sent).
    Send(Vec<u8>),
    /// `request()` with a timeout of `n · 100` ms (0: the config's).
    Request(u8),
    /// `join("chat:{n % 4}")`.
    Join(u8),
    /// `leave("chat:{n % 4}")`.
    Leave(u8),
    /// `Input::Env`: online, offline, visible, hidden (`n % 4`).
    Env(u8),
    /// Answer the pending token fetch, if any: bit 0 set = failure, bit 1 picks `t` or `t2`.
    Token(u8),
    /// The current socket opened.
    Opened,
    /// The current socket closed with this code.
    Closed(u16),
    /// The current socket failed.
    TransportError,
    /// A binary frame on the current socket.
    Binary,
    /// Any text as a frame on the current socket (invalid UTF-8 replaced).
    Frame(Vec<u8>),
    /// `authenticated` on the current socket.
    Authenticated {
        /// Bit 0: `resumed`; bit 1: user `u2` instead of `u1`.
        flags: u8,
        /// The session: `s{n}`.
        session: u8,
        /// `missed`.
        missed: u8,
        /// `heartbeat_ms`: `n · 1000`.
        heartbeat: u8,
        /// `expires_in_ms`: `n · 1000`, 0 = absent.
        expires: u8,
        /// `limits`: `{sends_per_s: n, burst: n / 4}`, 0 = absent.
        limits: u8,
    },
    /// `auth_error` with one of the protocol's codes (or an unknown one).
    AuthError(u8),
    /// `ack` for send id `id` (0 is out of range: a bad frame).
    Ack {
        /// The send id.
        id: u8,
        /// Bit 0: `ok`; the rest picks the error code (none, `rate_limited`, …).
        code: u8,
        /// `retry_after_ms`: `n · 50`, 0 = absent.
        retry: u8,
    },
    /// `event`: 0 = volatile, 1 = the next seq after the client's resume point, else `n - 1`.
    Event(u8),
    /// `ping`, with `rtt_ms` = `n` (0 = absent).
    Ping(u8),
    /// `refreshed` with `expires_in_ms` = `n · 1000`.
    Refreshed(u8),
    /// `error {code: "invalid_frame"}`.
    ServerError,
    /// `restore_send(id, owner)`: owner none, `u1` or `u2` (`owner % 3`).
    RestoreSend {
        /// The send id (0 is refused).
        id: u8,
        /// Who the send belongs to.
        owner: u8,
    },
    /// `resume_from(ResumePoint { session: s{session}, seq })`.
    ResumeFrom {
        /// The session: `s{n}`.
        session: u8,
        /// The seq.
        seq: u8,
    },
    /// A transport input for socket `socket`, whatever it is: opened, closed, an
    /// `authenticated` frame (`what % 3`). Mostly a stale one, which must be ignored.
    Stale {
        /// The socket id.
        socket: u8,
        /// Which input.
        what: u8,
    },
}

/// How many ops there are (the op byte is taken modulo this).
const OPS: u8 = 25;

/// A whole `core` input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// Config bits: 0 a static token, 1 a client id, 2 retry forever, 3 no jitter, 4 hidden
    /// does not pause, 5 an ack batch of 2; bits 6–7: `hidden_grace` in 500 ms steps.
    pub config: u8,
    /// The jitter PRNG's seed.
    pub seed: u8,
    /// `(delay byte, step)`, in order.
    pub steps: Vec<(u8, Step)>,
}

impl Script {
    /// Reads a script from any bytes.
    pub fn parse(data: &[u8]) -> Script {
        let mut c = Cursor::new(data);
        let config = c.u8().unwrap_or(0);
        let seed = c.u8().unwrap_or(0);
        let mut steps = Vec::new();
        while let Some(step) = Self::step(&mut c) {
            steps.push(step);
        }
        Script {
            config,
            seed,
            steps,
        }
    }

    fn step(c: &mut Cursor<'_>) -> Option<(u8, Step)> {
        let delay = c.u8()?;
        let step = match c.u8()? % OPS {
            0 => Step::Timeout,
            1 => Step::Connect,
            2 => Step::Reconnect,
            3 => Step::Disconnect,
            4 => Step::Send(c.bytes()?),
            5 => Step::Request(c.u8()?),
            6 => Step::Join(c.u8()?),
            7 => Step::Leave(c.u8()?),
            8 => Step::Env(c.u8()?),
            9 => Step::Token(c.u8()?),
            10 => Step::Opened,
            11 => Step::Closed(c.u16()?),
            12 => Step::TransportError,
            13 => Step::Binary,
            14 => Step::Frame(c.bytes()?),
            15 => Step::Authenticated {
                flags: c.u8()?,
                session: c.u8()?,
                missed: c.u8()?,
                heartbeat: c.u8()?,
                expires: c.u8()?,
                limits: c.u8()?,
            },
            16 => Step::AuthError(c.u8()?),
            17 => Step::Ack {
                id: c.u8()?,
                code: c.u8()?,
                retry: c.u8()?,
            },
            18 => Step::Event(c.u8()?),
            19 => Step::Ping(c.u8()?),
            20 => Step::Refreshed(c.u8()?),
            21 => Step::ServerError,
            22 => Step::RestoreSend {
                id: c.u8()?,
                owner: c.u8()?,
            },
            23 => Step::ResumeFrom {
                session: c.u8()?,
                seq: c.u8()?,
            },
            _ => Step::Stale {
                socket: c.u8()?,
                what: c.u8()?,
            },
        };
        Some((delay, step))
    }

    /// The bytes [`parse`](Self::parse) reads back as this script (byte strings longer than
    /// 65,535 bytes are cut there).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![self.config, self.seed];
        for (delay, step) in &self.steps {
            out.push(*delay);
            write(&mut out, step);
        }
        out
    }
}

fn write(out: &mut Vec<u8>, step: &Step) {
    let bytes = |out: &mut Vec<u8>, b: &[u8]| {
        let b = &b[..b.len().min(usize::from(u16::MAX))];
        out.extend_from_slice(&(b.len() as u16).to_be_bytes());
        out.extend_from_slice(b);
    };
    match step {
        Step::Timeout => out.push(0),
        Step::Connect => out.push(1),
        Step::Reconnect => out.push(2),
        Step::Disconnect => out.push(3),
        Step::Send(payload) => {
            out.push(4);
            bytes(out, payload);
        }
        Step::Request(n) => out.extend([5, *n]),
        Step::Join(n) => out.extend([6, *n]),
        Step::Leave(n) => out.extend([7, *n]),
        Step::Env(n) => out.extend([8, *n]),
        Step::Token(n) => out.extend([9, *n]),
        Step::Opened => out.push(10),
        Step::Closed(code) => {
            out.push(11);
            out.extend_from_slice(&code.to_be_bytes());
        }
        Step::TransportError => out.push(12),
        Step::Binary => out.push(13),
        Step::Frame(text) => {
            out.push(14);
            bytes(out, text);
        }
        Step::Authenticated {
            flags,
            session,
            missed,
            heartbeat,
            expires,
            limits,
        } => out.extend([15, *flags, *session, *missed, *heartbeat, *expires, *limits]),
        Step::AuthError(n) => out.extend([16, *n]),
        Step::Ack { id, code, retry } => out.extend([17, *id, *code, *retry]),
        Step::Event(n) => out.extend([18, *n]),
        Step::Ping(n) => out.extend([19, *n]),
        Step::Refreshed(n) => out.extend([20, *n]),
        Step::ServerError => out.push(21),
        Step::RestoreSend { id, owner } => out.extend([22, *id, *owner]),
        Step::ResumeFrom { session, seq } => out.extend([23, *session, *seq]),
        Step::Stale { socket, what } => out.extend([24, *socket, *what]),
    }
}
