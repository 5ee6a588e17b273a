//! The byte format of a `server` fuzz input ([`ServerScript`]): a config byte, then steps until
//! the bytes run out, each an op byte (modulo the number of ops) and its argument bytes; a step
//! cut short by the end of the input is dropped. [`ServerScript::to_bytes`] is the exact inverse
//! of [`ServerScript::parse`] (the seed corpus is written with it).
//!
//! Three sockets take part: `A`, authenticated as `mallory` before the script starts; `U`, open
//! but unauthenticated (a step can replace it with a fresh one); and the victim's, which the
//! script never touches. A `to` byte picks `A` (even) or `U` (odd).

use super::cursor::Cursor;

/// One thing the script does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerStep {
    /// Any text as a text frame (invalid UTF-8 replaced).
    Text {
        /// The socket.
        to: u8,
        /// The text.
        text: Vec<u8>,
    },
    /// A binary frame.
    Binary {
        /// The socket.
        to: u8,
        /// The bytes.
        data: Vec<u8>,
    },
    /// `send` with id `id` (0 is out of range), one of the server's events (or an unknown one)
    /// and data shaped by `arg` (room names of every kind, chat ids, texts up to near the frame
    /// limit, notification ids including the victim's).
    Send {
        /// The socket.
        to: u8,
        /// The send id.
        id: u8,
        /// Picks the event name.
        event: u8,
        /// Picks the data.
        arg: u8,
    },
    /// `auth` with one of a set of tokens (only `mallory`'s are valid; the victim's only with a
    /// wrong signature), a resume point (none, the victim's session, `A`'s, made up) and a
    /// client id (none, valid, malformed, the victim's).
    Auth {
        /// The socket.
        to: u8,
        /// Picks the token.
        token: u8,
        /// Picks the resume point.
        resume: u8,
        /// Picks the client id.
        client: u8,
    },
    /// `ack {seq}` (255: one past the largest seq).
    Ack {
        /// The socket.
        to: u8,
        /// The seq.
        seq: u8,
    },
    /// `pong {t}`.
    Pong {
        /// The socket.
        to: u8,
        /// The `t` (times a large factor).
        t: u8,
    },
    /// `refresh {token}` with one of the tokens.
    Refresh {
        /// The socket.
        to: u8,
        /// Picks the token.
        token: u8,
    },
    /// Let `d² · 4` ms of (virtual) time pass (at most 30 minutes over a whole script).
    Wait(u8),
    /// A text frame that is not UTF-8.
    BadUtf8 {
        /// The socket.
        to: u8,
    },
    /// A control frame: ping (0), pong (1), close (2).
    Control {
        /// The socket.
        to: u8,
        /// Which.
        what: u8,
    },
    /// `POST /notify` (to `mallory`, or to a chat room; never to the victim).
    Notify(u8),
    /// Drop `U` and open a fresh unauthenticated socket in its place.
    Reopen,
}

/// How many ops there are (the op byte is taken modulo this).
const OPS: u8 = 12;

/// A whole `server` input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerScript {
    /// Config bits: 0 a send rate of 2/s, 1 a frame budget of 20/s, 2 two sockets per user.
    pub config: u8,
    /// The steps, in order.
    pub steps: Vec<ServerStep>,
}

impl ServerScript {
    /// Reads a script from any bytes.
    pub fn parse(data: &[u8]) -> ServerScript {
        let mut c = Cursor::new(data);
        let config = c.u8().unwrap_or(0);
        let mut steps = Vec::new();
        while let Some(step) = Self::step(&mut c) {
            steps.push(step);
        }
        ServerScript { config, steps }
    }

    fn step(c: &mut Cursor<'_>) -> Option<ServerStep> {
        Some(match c.u8()? % OPS {
            0 => ServerStep::Text {
                to: c.u8()?,
                text: c.bytes()?,
            },
            1 => ServerStep::Binary {
                to: c.u8()?,
                data: c.bytes()?,
            },
            2 => ServerStep::Send {
                to: c.u8()?,
                id: c.u8()?,
                event: c.u8()?,
                arg: c.u8()?,
            },
            3 => ServerStep::Auth {
                to: c.u8()?,
                token: c.u8()?,
                resume: c.u8()?,
                client: c.u8()?,
            },
            4 => ServerStep::Ack {
                to: c.u8()?,
                seq: c.u8()?,
            },
            5 => ServerStep::Pong {
                to: c.u8()?,
                t: c.u8()?,
            },
            6 => ServerStep::Refresh {
                to: c.u8()?,
                token: c.u8()?,
            },
            7 => ServerStep::Wait(c.u8()?),
            8 => ServerStep::BadUtf8 { to: c.u8()? },
            9 => ServerStep::Control {
                to: c.u8()?,
                what: c.u8()?,
            },
            10 => ServerStep::Notify(c.u8()?),
            _ => ServerStep::Reopen,
        })
    }

    /// The bytes [`parse`](Self::parse) reads back as this script (byte strings longer than
    /// 65,535 bytes are cut there).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![self.config];
        let bytes = |out: &mut Vec<u8>, b: &[u8]| {
            let b = &b[..b.len().min(usize::from(u16::MAX))];
            out.extend_from_slice(&(b.len() as u16).to_be_bytes());
            out.extend_from_slice(b);
        };
        for step in &self.steps {
            match step {
                ServerStep::Text { to, text } => {
                    out.extend([0, *to]);
                    bytes(&mut out, text);
                }
                ServerStep::Binary { to, data } => {
                    out.extend([1, *to]);
                    bytes(&mut out, data);
                }
                ServerStep::Send { to, id, event, arg } => out.extend([2, *to, *id, *event, *arg]),
                ServerStep::Auth {
                    to,
                    token,
                    resume,
                    client,
                } => out.extend([3, *to, *token, *resume, *client]),
                ServerStep::Ack { to, seq } => out.extend([4, *to, *seq]),
                ServerStep::Pong { to, t } => out.extend([5, *to, *t]),
                ServerStep::Refresh { to, token } => out.extend([6, *to, *token]),
                ServerStep::Wait(d) => out.extend([7, *d]),
                ServerStep::BadUtf8 { to } => out.extend([8, *to]),
                ServerStep::Control { to, what } => out.extend([9, *to, *what]),
                ServerStep::Notify(n) => out.extend([10, *n]),
                ServerStep::Reopen => out.push(11),
            }
        }
        out
    }
}
