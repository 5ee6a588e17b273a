//! One WebSocket from upgrade to close: the `auth` phase, then the live loop that reads client
//! frames, writes queued events, pings, and enforces the frame-size, rate, budget and silence
//! limits.
//!
//! Close codes this module sends:
//! - 4000: no `auth` in time; 4001: bad token, or a first frame other than `auth`;
//!   4008: too many sockets for the user.
//! - 1009: a frame too big; 1007: a text frame that is not UTF-8; 1002: a WebSocket protocol
//!   violation.
//! - 1008 `too many frames`: more than 8 frames before `auth`, or more inbound frames of any type
//!   (pings, pongs, acks, invalid frames, sends) than the socket's `frame_rate` budget allows.
//! - 1013 `socket queue full` (the peer does not read: its queue passed 256 frames or 256 KiB) or
//!   `write stalled` (a write could not drain for 2 s); the close frame is sent if the peer's
//!   buffers still take it, else the connection is dropped. The session keeps buffering for
//!   resume.
//! - 1001: server shutting down, or the client was silent for two heartbeats.
//! - 1000: its session was resumed on another socket.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::sync::watch;
use tokio::time::{interval_at, sleep, timeout, Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::frame::{CloseFrame, Utf8Bytes};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tracing::{debug, info, warn};

use super::auth;
use super::clock::now_ms;
use super::frames::Splicer;
use super::gate::Ticket;
use super::handlers::{ack_frame, Caller};
use super::hub::{Attached, Hub};
use super::logsafe::Clean;
use super::outbox::{Kill, Outgoing, TOO_SLOW};
use super::rate::TokenBucket;
use super::session::ConnId;
use super::{Mode, ServerConfig};
use crate::protocol::{ClientFrame, CloseCode, ErrorBody, ResumePoint, ServerFrame};

/// 1002: the peer broke the WebSocket protocol.
pub(crate) const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
/// 1007: a text frame was not valid UTF-8.
pub(crate) const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
/// Frames a socket may send before its `auth` frame (pings included).
const PRE_AUTH_FRAMES: u32 = 8;
/// How long a write may stall before the peer is given up on.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// How long to wait for the peer's close reply after sending a close frame. Reading until then
/// keeps unread input from turning our TCP close into a reset; a peer that does not answer
/// has still received the close frame.
const CLOSE_WAIT: Duration = Duration::from_millis(500);

/// An upgraded socket.
pub(crate) type Socket = WebSocketStream<TokioIo<Upgraded>>;

/// What a socket task needs from the server.
pub(crate) struct ConnContext {
    pub(crate) id: ConnId,
    pub(crate) ticket: Arc<Ticket>,
    pub(crate) hub: Arc<Hub>,
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) mode: watch::Receiver<Mode>,
}

/// How one write ended.
enum Written {
    Done,
    Failed,
    Stalled,
    Killed(Kill),
}

/// How a loop step ends the socket.
enum Flow {
    Continue,
    /// Close with this code and reason.
    Close(CloseCode, &'static str),
    /// The transport is gone: nothing more to send.
    Gone,
}

/// Runs one socket to its end.
pub(crate) async fn run(mut ws: Socket, mut ctx: ConnContext) {
    let peer = ctx.ticket.peer;
    debug!(conn = %ctx.id, peer = %peer, "socket opened");
    // Boxed, here and for each inbound message below: those futures are large and short-lived,
    // and an idle socket should not carry their space for its whole life.
    let Some((token, resume)) = Box::pin(await_auth(&mut ws, &mut ctx)).await else {
        return;
    };
    let user = match auth::verify(&ctx.config.jwt_secret, &token) {
        Ok(user) => user,
        Err(failure) => {
            warn!(conn = %ctx.id, peer = %peer, reason = failure.code(), "auth failed");
            let frame = ServerFrame::AuthError {
                code: failure.code().to_owned(),
                message: failure.message().to_owned(),
            };
            if send_text(&mut ws, frame.encode()).await {
                close(&mut ws, CloseCode::AUTH_REJECTED, failure.message()).await;
            }
            return;
        }
    };
    let mut attached = match ctx.hub.attach(&user, resume.as_ref(), Instant::now()) {
        Ok(attached) => attached,
        Err(_) => {
            ctx.hub.stats.closed_too_many_per_user.bump();
            warn!(conn = %ctx.id, peer = %peer, user = %Clean(&user), "too many sockets for this user");
            close(
                &mut ws,
                CloseCode::TOO_MANY_CONNECTIONS,
                "too many connections",
            )
            .await;
            return;
        }
    };
    ctx.ticket.authenticated();
    info!(
        conn = %ctx.id, peer = %peer, user = %Clean(&user), session = %attached.session.id,
        resumed = attached.resumed, missed = attached.replay.len(), "authenticated"
    );
    let hello = ServerFrame::Authenticated {
        user_id: user.clone(),
        session: attached.session.id.to_string(),
        heartbeat_ms: u64::try_from(ctx.config.heartbeat.as_millis()).unwrap_or(u64::MAX),
        resumed: attached.resumed,
        missed: attached.replay.len() as u64,
        v: crate::protocol::PROTOCOL_VERSION,
        expires_in_ms: None,
        limits: None,
    };
    let mut splicer = Splicer::default();
    let mut sent = send_text(&mut ws, hello.encode()).await;
    for (seq, tail) in std::mem::take(&mut attached.replay) {
        if !sent {
            break;
        }
        sent = match splicer.stored(seq, &tail) {
            Some(frame) => send_frame(&mut ws, frame).await,
            None => true,
        };
    }
    let flow = if sent {
        let mut live = Live {
            send_bucket: TokenBucket::new(ctx.config.rate_limit, Instant::now()),
            frame_bucket: TokenBucket::new(ctx.config.frame_rate, Instant::now()),
            ws: &mut ws,
            ctx: &mut ctx,
            attached: &attached,
            last_rtt: None,
            batch: VecDeque::new(),
            splicer,
        };
        live.run().await
    } else {
        Flow::Gone
    };
    ctx.hub.detach(&attached, Instant::now());
    match flow {
        Flow::Close(code, reason) => {
            info!(conn = %ctx.id, user = %Clean(&user), code = code.0, reason, "closing socket");
            close(&mut ws, code, reason).await;
        }
        Flow::Gone | Flow::Continue => info!(conn = %ctx.id, user = %Clean(&user), "socket closed"),
    }
}

/// What a receive error means for the socket (counted where it is an attack or a fault).
fn on_receive_error(error: WsError, ctx: &ConnContext) -> Flow {
    match error {
        WsError::Capacity(CapacityError::MessageTooLong { .. }) => {
            ctx.hub.stats.closed_too_big.bump();
            Flow::Close(CloseCode::TOO_BIG, "frame too big")
        }
        WsError::Utf8(_) => {
            ctx.hub.stats.closed_invalid_utf8.bump();
            Flow::Close(INVALID_PAYLOAD, "invalid UTF-8 in a text frame")
        }
        WsError::Protocol(_) => Flow::Close(PROTOCOL_ERROR, "WebSocket protocol violation"),
        _ => Flow::Gone,
    }
}

/// Closes the socket as `flow` says; `None` always (the socket is done).
async fn end(ws: &mut Socket, flow: Flow) -> Option<(String, Option<ResumePoint>)> {
    if let Flow::Close(code, reason) = flow {
        close(ws, code, reason).await;
    }
    None
}

/// Waits for the first frame, which must be `auth`; closes the socket and returns `None` otherwise.
async fn await_auth(
    ws: &mut Socket,
    ctx: &mut ConnContext,
) -> Option<(String, Option<ResumePoint>)> {
    let deadline = sleep(ctx.config.auth_timeout);
    tokio::pin!(deadline);
    if *ctx.mode.borrow_and_update() != Mode::Running {
        return end(
            ws,
            Flow::Close(CloseCode::GOING_AWAY, "server shutting down"),
        )
        .await;
    }
    let mut frames = 0;
    loop {
        let msg = tokio::select! {
            _ = &mut deadline => {
                ctx.hub.stats.auth_timeouts.bump();
                debug!(conn = %ctx.id, peer = %ctx.ticket.peer, "no auth frame in time");
                let frame = ServerFrame::AuthError {
                    code: "timeout".to_owned(),
                    message: "no auth frame in time".to_owned(),
                };
                if send_text(ws, frame.encode()).await {
                    close(ws, CloseCode::AUTH_TIMEOUT, "auth timeout").await;
                }
                return None;
            }
            _ = ctx.mode.changed() => {
                return end(ws, Flow::Close(CloseCode::GOING_AWAY, "server shutting down")).await;
            }
            msg = ws.next() => msg,
        };
        let msg = match msg {
            None => return None,
            Some(Err(e)) => return end(ws, on_receive_error(e, ctx)).await,
            Some(Ok(msg)) => msg,
        };
        frames += 1;
        if frames > PRE_AUTH_FRAMES {
            ctx.hub.stats.closed_frame_budget.bump();
            return end(ws, Flow::Close(CloseCode::POLICY, "too many frames")).await;
        }
        let reject = match msg {
            Message::Text(text) => {
                if text.len() > ctx.config.max_frame_bytes {
                    ctx.hub.stats.closed_too_big.bump();
                    return end(ws, Flow::Close(CloseCode::TOO_BIG, "frame too big")).await;
                }
                match ClientFrame::decode(text.as_str(), ctx.config.max_frame_bytes) {
                    Ok(ClientFrame::Auth { token, resume, .. }) => return Some((token, resume)),
                    Ok(_) => "the first frame must be auth",
                    Err(_) => "the first frame must be a valid auth frame",
                }
            }
            Message::Binary(_) => "the first frame must be auth",
            Message::Close(_) => {
                answer_close(ws).await;
                return None;
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
        };
        debug!(conn = %ctx.id, peer = %ctx.ticket.peer, "frame before auth");
        return end(ws, Flow::Close(CloseCode::AUTH_REJECTED, reject)).await;
    }
}

/// An authenticated socket's loop.
struct Live<'a> {
    ws: &'a mut Socket,
    ctx: &'a mut ConnContext,
    attached: &'a Attached,
    send_bucket: TokenBucket,
    frame_bucket: TokenBucket,
    last_rtt: Option<u64>,
    /// The batch taken from the socket's queue (kept to reuse its capacity).
    batch: VecDeque<Outgoing>,
    splicer: Splicer,
}

impl Live<'_> {
    async fn run(&mut self) -> Flow {
        let heartbeat = self.ctx.config.heartbeat.max(Duration::from_millis(1));
        let mut pings = interval_at(Instant::now() + heartbeat, heartbeat);
        pings.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let silence = sleep(heartbeat * 2);
        tokio::pin!(silence);
        let conn = self.attached.conn.clone();
        loop {
            let flow = tokio::select! {
                biased;
                _ = self.ctx.mode.changed() => Flow::Close(CloseCode::GOING_AWAY, "server shutting down"),
                _ = conn.woken() => self.write_queued().await,
                _ = &mut silence => Flow::Close(CloseCode::GOING_AWAY, "heartbeat timeout"),
                msg = self.ws.next() => match msg {
                    None => Flow::Gone,
                    Some(Err(e)) => on_receive_error(e, self.ctx),
                    Some(Ok(msg)) => {
                        silence.as_mut().reset(Instant::now() + heartbeat * 2);
                        if self.frame_bucket.try_take(Instant::now()) {
                            Box::pin(self.on_message(msg)).await
                        } else {
                            self.ctx.hub.stats.closed_frame_budget.bump();
                            Flow::Close(CloseCode::POLICY, "too many frames")
                        }
                    }
                },
                _ = pings.tick() => {
                    let ping = ServerFrame::Ping { t: now_ms(), rtt_ms: self.last_rtt };
                    self.send(ping.encode()).await
                }
            };
            if !matches!(flow, Flow::Continue) {
                return flow;
            }
        }
    }

    /// Writes everything the hub queued, or closes as the hub ordered. A write that waits on a
    /// peer that does not read still obeys a kill order (queue full, takeover) at once.
    async fn write_queued(&mut self) -> Flow {
        if let Err(kill) = self.attached.conn.take(&mut self.batch) {
            return self.killed(kill);
        }
        let mut rewake = false;
        let flow = loop {
            let write = match self.batch.pop_front() {
                Some(Outgoing::Event { seq, tail }) => match self.splicer.stored(seq, &tail) {
                    Some(frame) => Some(frame),
                    None => continue,
                },
                Some(Outgoing::Frame(frame)) => Some(frame),
                None => None,
            };
            let last = write.is_none();
            match self.write_one(write, &mut rewake).await {
                Written::Done if last => break Flow::Continue,
                Written::Done => {}
                Written::Failed => break Flow::Gone,
                Written::Stalled => break self.stalled(),
                Written::Killed(kill) => break self.killed(kill),
            }
        };
        if rewake {
            self.attached.conn.rewake();
        }
        flow
    }

    /// Feeds one frame (`None`: flushes), within [`IO_TIMEOUT`] and unless a kill order comes
    /// first; `rewake` is set when frames were queued meanwhile.
    async fn write_one(&mut self, frame: Option<Utf8Bytes>, rewake: &mut bool) -> Written {
        let conn = self.attached.conn.clone();
        let ws = &mut *self.ws;
        let op = timeout(IO_TIMEOUT, async move {
            match frame {
                Some(frame) => ws.feed(Message::Text(frame)).await,
                None => ws.flush().await,
            }
        });
        tokio::pin!(op);
        loop {
            tokio::select! {
                biased;
                done = &mut op => return match done {
                    Ok(Ok(())) => Written::Done,
                    Ok(Err(_)) => Written::Failed,
                    Err(_) => Written::Stalled,
                },
                _ = conn.woken() => match conn.kill_order() {
                    Some(kill) => return Written::Killed(kill),
                    None => *rewake = true,
                },
            }
        }
    }

    fn killed(&mut self, kill: Kill) -> Flow {
        if kill == TOO_SLOW {
            self.ctx.hub.stats.closed_slow.bump();
        }
        Flow::Close(kill.code, kill.reason)
    }

    fn stalled(&mut self) -> Flow {
        self.batch.clear();
        self.ctx.hub.stats.closed_slow.bump();
        Flow::Close(CloseCode::TRY_AGAIN_LATER, "write stalled")
    }

    async fn send(&mut self, text: String) -> Flow {
        match timeout(IO_TIMEOUT, self.ws.send(Message::Text(text.into()))).await {
            Ok(Ok(())) => Flow::Continue,
            Ok(Err(_)) => Flow::Gone,
            Err(_) => self.stalled(),
        }
    }

    async fn on_message(&mut self, msg: Message) -> Flow {
        let text = match msg {
            Message::Text(text) => text,
            Message::Binary(_) => {
                return self.invalid_frame("binary frames are not supported").await
            }
            Message::Close(_) => {
                answer_close(self.ws).await;
                return Flow::Gone;
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => return Flow::Continue,
        };
        if text.len() > self.ctx.config.max_frame_bytes {
            self.ctx.hub.stats.closed_too_big.bump();
            return Flow::Close(CloseCode::TOO_BIG, "frame too big");
        }
        let frame = match ClientFrame::decode(text.as_str(), self.ctx.config.max_frame_bytes) {
            Ok(frame) => frame,
            Err(e) => return self.undecodable(&text, &e.to_string()).await,
        };
        match frame {
            ClientFrame::Auth { .. } => self.invalid_frame("already authenticated").await,
            ClientFrame::Refresh { .. } => self.invalid_frame("refresh is not supported").await,
            ClientFrame::Pong { t } => {
                self.last_rtt = Some(now_ms().saturating_sub(t));
                Flow::Continue
            }
            ClientFrame::Ack { seq } => {
                self.attached.session.lock().replay.trim_acked(seq);
                Flow::Continue
            }
            ClientFrame::Send { id, event, data } => {
                let now = Instant::now();
                let within_rate = self.send_bucket.try_take(now);
                let caller = Caller {
                    user: &self.attached.user.name,
                    session: &self.attached.session,
                    now,
                };
                let (ack, rate_limited) =
                    self.ctx
                        .hub
                        .handle_send(&caller, id, &event, &data, within_rate);
                if rate_limited {
                    let error = ServerFrame::Error {
                        code: "rate_limited".to_owned(),
                        message: "too many sends; slow down".to_owned(),
                    };
                    if let flow @ (Flow::Gone | Flow::Close(..)) = self.send(error.encode()).await {
                        return flow;
                    }
                }
                self.send(ack).await
            }
        }
    }

    /// A text frame that does not decode: `invalid_frame`, and a failed ack when it reads as a
    /// send with an id, so the client settles it instead of resending it forever.
    async fn undecodable(&mut self, text: &Utf8Bytes, message: &str) -> Flow {
        let flow = self.invalid_frame(message).await;
        match (flow, send_id_prefix(text.as_str())) {
            (Flow::Continue, Some(id)) => {
                let ack = ack_frame(id, Err(ErrorBody::new("invalid_frame", message)));
                self.send(ack).await
            }
            (flow, _) => flow,
        }
    }

    async fn invalid_frame(&mut self, message: &str) -> Flow {
        let frame = ServerFrame::Error {
            code: "invalid_frame".to_owned(),
            message: message.to_owned(),
        };
        self.send(frame.encode()).await
    }
}

/// The `id` of a frame that starts the way sockline clients write sends
/// (`{"type":"send","id":N,…`), read without parsing the rest; only a valid send id (1 ..=
/// 2^53 − 1): any other is not an id a client can be answered for (PROTOCOL.md §3).
fn send_id_prefix(text: &str) -> Option<u64> {
    let rest = text.strip_prefix(r#"{"type":"send","id":"#)?;
    let digits = rest.find(|c: char| !c.is_ascii_digit())?;
    rest.get(..digits)?
        .parse()
        .ok()
        .filter(|id| crate::protocol::is_wire_id(*id))
}

/// Sends a text frame; `false` if the socket is gone or the write stalled past [`IO_TIMEOUT`].
async fn send_text(ws: &mut Socket, text: String) -> bool {
    send_frame(ws, text.into()).await
}

async fn send_frame(ws: &mut Socket, frame: Utf8Bytes) -> bool {
    matches!(
        timeout(IO_TIMEOUT, ws.send(Message::Text(frame))).await,
        Ok(Ok(()))
    )
}

/// Answers the peer's close frame (RFC 6455 §5.5.1): tungstenite queues the reply when it reads
/// the close and writes it on the next flush, which a socket that stops here would never do.
async fn answer_close(ws: &mut Socket) {
    let _ = timeout(IO_TIMEOUT, ws.flush()).await;
}

/// Sends a close frame, then reads until the peer's reply (or a timeout) so the TCP connection
/// ends cleanly instead of with a reset.
async fn close(ws: &mut Socket, code: CloseCode, reason: &str) {
    let frame = CloseFrame {
        code: code.0.into(),
        reason: reason.into(),
    };
    let sent = timeout(IO_TIMEOUT, ws.send(Message::Close(Some(frame)))).await;
    if !matches!(sent, Ok(Ok(()))) {
        // The peer's close came first (the frame that broke a limit was its close): tungstenite
        // refuses a second close, but the reply it queued still has to go out.
        answer_close(ws).await;
        return;
    }
    let _ = timeout(CLOSE_WAIT, async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}
