//! The package's wasm ABI: two exports the TypeScript driver (js/src/core/) calls, over one
//! byte buffer in linear memory, and the table of live clients. The wasm imports nothing and
//! never calls out: every call runs one input or command (or a drain, or a getter) to the end
//! and leaves its answer in the buffer.
//!
//! - `sl_buf(len) -> ptr`: the buffer, grown to at least `len` bytes. The driver writes a
//!   call's string arguments there as UTF-8, separated by a `0xFF` byte (never part of UTF-8;
//!   `NEW` puts its numbers first, as little-endian `f64`s); after the call, `sl_buf(0)` points
//!   at the answer.
//! - `sl_call(client, op, now, a, b, len) -> n`: runs `op` (an [`op`] constant) on `client` at
//!   `now` (`performance.now()`) with the numbers `a`, `b` and the first `len` bytes of the
//!   buffer as its strings; returns the answer's length: 0 for a command with nothing to say,
//!   else JSON text, `[…]` for a result or `{code, message}` for an error (see [`super::out`]).

use std::cell::RefCell;

use super::options::{config, NUMS};
use super::out::Out;
use crate::core::{
    Connection, Env, Input, Instant, Payload, RequestId, SendId, SocketId, Transport,
};
use crate::error::SendError;
use crate::protocol::ResumePoint;
use crate::shell::{Batch, Shell};

/// The `op` numbers of `sl_call` (js/src/core/abi.ts has the same list).
pub(crate) mod op {
    /// The [`NUMS`](super::NUMS) numbers of the options, then `[url, clientId, token?]`;
    /// `a` = 1 when `token` is the token source (else `getToken()` is), `b` = the jitter's seed
    /// → `[client]`.
    pub const NEW: u32 = 0;
    /// → `[error, request ids…]`: the requests still pending, to reject with `error`.
    pub const FREE: u32 = 1;
    /// → `[deadline, delay, record…]`: the shell's actions and outputs, then the timer.
    pub const DRAIN: u32 = 2;
    pub const CONNECT: u32 = 3;
    pub const RECONNECT: u32 = 4;
    pub const DISCONNECT: u32 = 5;
    /// `[room]`.
    pub const JOIN: u32 = 6;
    /// `[room]`.
    pub const LEAVE: u32 = 7;
    /// `[name, data json]` → `[id]`.
    pub const SEND: u32 = 8;
    /// `[name, data json]`, `a` = 1 when `b` is the `timeoutMs` given → `[id]`.
    pub const REQUEST: u32 = 9;
    /// `[name, data json, owner?]`, `a` = id.
    pub const RESTORE: u32 = 10;
    /// `[session]`, `a` = seq.
    pub const RESUME_FROM: u32 = 11;
    /// `a` = a page event (see `page`; `setVisible` is 0 / 1), `b` = 1 when a `pageshow`
    /// restored the page while online.
    pub const PAGE: u32 = 12;
    pub const TIMEOUT: u32 = 13;
    /// `a` = socket.
    pub const OPENED: u32 = 14;
    /// `[text]`, `a` = socket.
    pub const FRAME: u32 = 15;
    /// `a` = socket.
    pub const BINARY: u32 = 16;
    /// `[reason]`, `a` = socket, `b` = code.
    pub const CLOSED: u32 = 17;
    /// `[what happened]`, `a` = socket.
    pub const SOCKET_ERROR: u32 = 18;
    /// `[token | why not]`, `a` = request, `b` = 1 for a token.
    pub const TOKEN: u32 = 19;
    /// → `[state name]`.
    pub const STATE: u32 = 20;
    /// → `[user]`, or `[]` before one.
    pub const USER: u32 = 21;
    /// → `[{session, seq} | null]`.
    pub const RESUME_POINT: u32 = 22;
    /// → `[id]`.
    pub const NEXT_SEND_ID: u32 = 23;
    /// → `[{state, timeInStateMs, …}]`.
    pub const STATS: u32 = 24;
}

/// What the page reports (`a` of [`op::PAGE`]), and the [`Env`] each one is.
fn page(event: f64, restored_online: bool) -> Option<Env> {
    match event as u32 {
        0 => Some(Env::Visible),
        1 => Some(Env::Hidden),
        2 => Some(Env::Online),
        3 => Some(Env::Offline),
        // `pagehide`: the page may enter the back-forward cache, which an open socket keeps it
        // out of: close it as if offline.
        4 => Some(Env::Offline),
        // `pageshow`: back from that cache, and online: reconnect.
        5 if restored_online => Some(Env::Online),
        _ => None,
    }
}

/// One client: the shell (with no resolver of its own: the driver keeps the promises, keyed
/// by send id) and the batch every drain reuses.
struct Face {
    shell: Shell<()>,
    batch: Batch<()>,
}

thread_local! {
    static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static CLIENTS: RefCell<Vec<Option<Face>>> = const { RefCell::new(Vec::new()) };
}

/// The buffer, at least `len` bytes long; its address.
#[no_mangle]
pub extern "C" fn sl_buf(len: u32) -> *mut u8 {
    BUF.with(|buf| match buf.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < len as usize {
                buf.resize(len as usize, 0);
            }
            buf.as_mut_ptr()
        }
        Err(_) => std::ptr::null_mut(),
    })
}

/// Runs one call; see the [module docs](self).
#[no_mangle]
pub extern "C" fn sl_call(client: u32, op: u32, now: f64, a: f64, b: f64, len: u32) -> u32 {
    BUF.with(|buf| {
        let Ok(mut buf) = buf.try_borrow_mut() else {
            return 0;
        };
        let mut input = std::mem::take(&mut *buf);
        input.truncate(len as usize);
        let mut out = Out::default();
        let mut nums = [f64::NAN; NUMS];
        let mut text = input.as_slice();
        if op == op::NEW {
            if let Some((head, rest)) = text.split_first_chunk::<{ NUMS * 8 }>() {
                for (n, bytes) in nums.iter_mut().zip(head.chunks_exact(8)) {
                    *n = f64::from_le_bytes(bytes.try_into().unwrap_or_default());
                }
                text = rest;
            }
        }
        let mut s = [""; 3];
        let strings = split(text, &mut s);
        // Rounded up, so a timer that fires on time never looks early to the core.
        let now = Instant::from_millis(if now.is_finite() && now > 0.0 {
            now.ceil() as u64
        } else {
            0
        });
        match strings {
            Some(s) => CLIENTS.with(|clients| match clients.try_borrow_mut() {
                Ok(mut clients) => run(&mut clients, client, op, now, [a, b], &nums, s, &mut out),
                Err(_) => freed(&mut out),
            }),
            None => invalid(&mut out, "arguments are not UTF-8"),
        }
        *buf = out.0.into_bytes();
        buf.len() as u32
    })
}

/// The strings of a call (at most three: `RESTORE`'s owner, `NEW`'s token), or `None` when one
/// is not UTF-8.
fn split<'a, 's>(text: &'a [u8], s: &'s mut [&'a str; 3]) -> Option<&'s [&'a str]> {
    let mut count = 0;
    if !text.is_empty() {
        for part in text.split(|&b| b == 0xFF) {
            let part = std::str::from_utf8(part).ok()?;
            if let Some(slot) = s.get_mut(count) {
                *slot = part;
                count += 1;
            }
        }
    }
    s.get(..count)
}

fn freed(out: &mut Out) {
    out.error("freed", "the client was freed", None);
}

fn invalid(out: &mut Out, message: &str) {
    out.error("invalid_argument", message, None);
}

fn send_error(out: &mut Out, e: &SendError) {
    out.error(e.code(), &e.message(), None);
}

/// A payload the driver stringified; only a lone surrogate could make it unacceptable (the
/// server could not read it either).
fn payload(json: &str, out: &mut Out) -> Option<Payload> {
    let data = Payload::from_json(json).ok();
    if data.is_none() {
        out.error("bad_payload", "data is not JSON-serializable", None);
    }
    data
}

/// A JS number that must be an integer of at least `min`.
fn integer(n: f64, min: f64) -> Option<u64> {
    (n.is_finite() && n >= min && n.fract() == 0.0).then_some(n as u64)
}

#[allow(clippy::too_many_arguments)]
fn run(
    clients: &mut Vec<Option<Face>>,
    client: u32,
    op: u32,
    now: Instant,
    [a, b]: [f64; 2],
    nums: &[f64; NUMS],
    s: &[&str],
    out: &mut Out,
) {
    let arg = |i: usize| s.get(i).copied().unwrap_or_default();
    if op == op::NEW {
        let token = (a == 1.0).then(|| arg(2));
        return match config(nums, arg(0), arg(1), token, b as u64) {
            Ok(config) => {
                let slot = clients.iter().position(Option::is_none).unwrap_or_else(|| {
                    clients.push(None);
                    clients.len() - 1
                });
                out.raw("[").num(slot as u64).raw("]");
                let shell = Shell::new(Connection::new(config, now));
                if let Some(s) = clients.get_mut(slot) {
                    *s = Some(Face {
                        shell,
                        batch: Batch::default(),
                    });
                }
            }
            Err(message) => {
                out.error("invalid_options", message, None);
            }
        };
    }
    let Some(slot) = clients.get_mut(client as usize) else {
        return freed(out);
    };
    if op == op::FREE {
        // The driver rejects the requests it holds (the shell's pending table, mirrored).
        if slot.take().is_some() {
            out.raw("[")
                .error(
                    "freed",
                    "the client was freed before the request was acknowledged",
                    None,
                )
                .raw("]");
        }
        return;
    }
    let Some(face) = slot else {
        return freed(out);
    };
    match op {
        op::DRAIN => {
            face.shell.drain(now, &mut face.batch);
            let at = face.batch.deadline.map(Instant::as_millis);
            // setTimeout takes a signed 32-bit delay; a longer one would fire at once.
            let delay = at.map(|at| at.saturating_sub(now.as_millis()).min(i32::MAX as u64));
            out.raw("[").opt(at).raw(",").opt(delay);
            for action in &face.batch.actions {
                out.action(action);
            }
            for output in &face.batch.outputs {
                out.output(output);
            }
            out.raw("]");
        }
        op::SEND | op::REQUEST => {
            let Some(data) = payload(arg(1), out) else {
                return;
            };
            let sent = if op == op::SEND {
                face.shell.conn_mut().send(now, arg(0), &data)
            } else {
                let timeout = match a != 0.0 {
                    false => None,
                    true if b.is_finite() && b >= 0.0 => {
                        Some(std::time::Duration::from_millis(b as u64))
                    }
                    true => return invalid(out, "`timeoutMs` must be a non-negative number"),
                };
                face.shell
                    .request(now, arg(0), &data, timeout, ())
                    .map_err(|(e, ())| e)
            };
            match sent {
                Ok(id) => {
                    out.raw("[").num(id.0).raw("]");
                }
                Err(e) => send_error(out, &e),
            }
        }
        _ => command(face.shell.conn_mut(), op, now, a, b, s, out),
    }
}

/// The calls that only need the connection.
fn command(
    conn: &mut Connection,
    op: u32,
    now: Instant,
    a: f64,
    b: f64,
    s: &[&str],
    out: &mut Out,
) {
    let arg = |i: usize| s.get(i).copied().unwrap_or_default();
    let input = |conn: &mut Connection, input| conn.handle_input(now, input);
    let socket = SocketId(a as u64);
    match op {
        op::CONNECT => conn.connect(now),
        op::RECONNECT => conn.reconnect(now),
        op::DISCONNECT => conn.disconnect(now),
        op::JOIN if arg(0).is_empty() => invalid(out, "the room name must not be empty"),
        op::JOIN => conn.join(now, arg(0)),
        op::LEAVE => conn.leave(now, arg(0)),
        op::RESTORE => {
            let Some(id) = integer(a, 1.0) else {
                return invalid(out, "`id` must be a positive integer");
            };
            let Some(data) = payload(arg(1), out) else {
                return;
            };
            let owner = s.get(2).copied();
            if let Err(e) = conn.restore_send(now, SendId(id), arg(0), &data, owner) {
                send_error(out, &e);
            }
        }
        op::RESUME_FROM => match integer(a, 0.0) {
            Some(seq) => conn.resume_from(ResumePoint {
                session: String::from(arg(0)),
                seq,
            }),
            None => invalid(out, "`seq` must be a non-negative integer"),
        },
        op::PAGE => {
            if let Some(env) = page(a, b != 0.0) {
                input(conn, Input::Env(env));
            }
        }
        op::TIMEOUT => input(conn, Input::Timeout),
        op::OPENED => input(conn, Input::Transport(socket, Transport::Opened)),
        op::FRAME => input(
            conn,
            Input::Transport(socket, Transport::Frame(String::from(arg(0)))),
        ),
        op::BINARY => input(conn, Input::Transport(socket, Transport::Binary)),
        op::CLOSED => input(
            conn,
            Input::Transport(
                socket,
                Transport::Closed {
                    code: b as u16,
                    reason: String::from(arg(0)),
                },
            ),
        ),
        op::SOCKET_ERROR => input(
            conn,
            Input::Transport(socket, Transport::Error(String::from(arg(0)))),
        ),
        op::TOKEN => {
            let text = String::from(arg(0));
            let result = if b != 0.0 { Ok(text) } else { Err(text) };
            input(conn, Input::TokenFetched(RequestId(a as u64), result));
        }
        op::STATE => {
            out.raw("[").str(conn.state().name()).raw("]");
        }
        op::USER => {
            out.raw("[");
            if let Some(user) = conn.user() {
                out.str(user);
            }
            out.raw("]");
        }
        op::RESUME_POINT => {
            out.raw("[");
            match conn.resume_point() {
                Some(p) => {
                    out.raw("{\"session\":")
                        .str(&p.session)
                        .raw(",\"seq\":")
                        .num(p.seq)
                        .raw("}");
                }
                None => {
                    out.raw("null");
                }
            }
            out.raw("]");
        }
        op::NEXT_SEND_ID => {
            out.raw("[").num(conn.next_send_id().0).raw("]");
        }
        op::STATS => {
            out.raw("[");
            out.stats(&conn.stats());
            out.raw("]");
        }
        _ => invalid(out, "unknown call"),
    }
}
