//! One WebSocket from upgrade to close: the `auth` phase, then the live loop that reads client
//! frames, writes queued events, pings, and enforces the frame-size, rate and silence limits.
//!
//! Close codes this module sends: 4000 (no `auth` in time), 4001 (bad token or a non-`auth` first
//! frame), 4008 (too many sockets for the user), 1009 (frame too big), 1001 (server shutting down,
//! or the client was silent for two heartbeats), 1013 (the socket's queue overflowed) and 1000 (its
//! session was resumed on another socket).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{interval_at, sleep, timeout, Instant, MissedTickBehavior};
use tracing::{info, warn};

use super::auth;
use super::clock::now_ms;
use super::handlers::ack_frame;
use super::hub::{Hub, Kill, SOCKET_QUEUE};
use super::rate::TokenBucket;
use super::session::ConnId;
use super::{Mode, ServerConfig};
use crate::protocol::{ClientFrame, CloseCode, ErrorBody, ResumePoint, ServerFrame};

/// How long a write may stall before the peer is given up on.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// How long to wait for the peer's close reply after sending a close frame. Reading until then
/// keeps unread input from turning our TCP close into a reset; a peer that does not answer
/// has still received the close frame.
const CLOSE_WAIT: Duration = Duration::from_millis(500);

/// What a socket task needs from the server.
pub(crate) struct ConnContext {
    pub(crate) id: ConnId,
    pub(crate) peer: SocketAddr,
    pub(crate) hub: Arc<Hub>,
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) mode: watch::Receiver<Mode>,
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
pub(crate) async fn run(mut ws: WebSocket, mut ctx: ConnContext) {
    info!(conn = %ctx.id, peer = %ctx.peer, "socket opened");
    let Some((token, resume)) = await_auth(&mut ws, &mut ctx).await else {
        return;
    };
    let user = match auth::verify(&ctx.config.jwt_secret, &token) {
        Ok(user) => user,
        Err(failure) => {
            warn!(conn = %ctx.id, peer = %ctx.peer, reason = failure.code(), "auth failed");
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
    let (tx, rx) = mpsc::channel(SOCKET_QUEUE);
    let (kill_tx, kill_rx) = oneshot::channel();
    let attached =
        ctx.hub
            .lock()
            .attach(ctx.id, &user, resume.as_ref(), tx, kill_tx, Instant::now());
    let attached = match attached {
        Ok(attached) => attached,
        Err(_) => {
            warn!(conn = %ctx.id, peer = %ctx.peer, user = %user, "too many sockets for this user");
            close(
                &mut ws,
                CloseCode::TOO_MANY_CONNECTIONS,
                "too many connections",
            )
            .await;
            return;
        }
    };
    info!(
        conn = %ctx.id, peer = %ctx.peer, user = %user, session = %attached.session,
        resumed = attached.resumed, missed = attached.replay.len(), "authenticated"
    );
    let hello = ServerFrame::Authenticated {
        user_id: user.clone(),
        session: attached.session.0.clone(),
        heartbeat_ms: u64::try_from(ctx.config.heartbeat.as_millis()).unwrap_or(u64::MAX),
        resumed: attached.resumed,
        missed: attached.replay.len() as u64,
        v: crate::protocol::PROTOCOL_VERSION,
        expires_in_ms: None,
        limits: None,
    };
    let mut sent = send_text(&mut ws, hello.encode()).await;
    for frame in attached.replay {
        if !sent {
            break;
        }
        sent = send_text(&mut ws, frame).await;
    }
    let flow = if sent {
        let bucket = TokenBucket::new(ctx.config.rate_limit, Instant::now());
        let mut live = Live {
            ws: &mut ws,
            ctx: &mut ctx,
            rx,
            kill_rx,
            bucket,
            last_rtt: None,
        };
        live.run().await
    } else {
        Flow::Gone
    };
    ctx.hub.lock().detach(ctx.id, Instant::now());
    match flow {
        Flow::Close(code, reason) => {
            info!(conn = %ctx.id, user = %user, code = code.0, reason, "closing socket");
            close(&mut ws, code, reason).await;
        }
        Flow::Gone | Flow::Continue => info!(conn = %ctx.id, user = %user, "socket closed"),
    }
}

/// Waits for the first frame, which must be `auth`; closes the socket and returns `None` otherwise.
async fn await_auth(
    ws: &mut WebSocket,
    ctx: &mut ConnContext,
) -> Option<(String, Option<ResumePoint>)> {
    let deadline = sleep(ctx.config.auth_timeout);
    tokio::pin!(deadline);
    if *ctx.mode.borrow_and_update() != Mode::Running {
        close(ws, CloseCode::GOING_AWAY, "server shutting down").await;
        return None;
    }
    loop {
        tokio::select! {
            _ = &mut deadline => {
                info!(conn = %ctx.id, peer = %ctx.peer, "no auth frame in time");
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
                close(ws, CloseCode::GOING_AWAY, "server shutting down").await;
                return None;
            }
            msg = ws.recv() => {
                let reject = match msg {
                    None => return None,
                    Some(Err(e)) => {
                        if is_too_big(e) {
                            close(ws, CloseCode::TOO_BIG, "frame too big").await;
                        }
                        return None;
                    }
                    Some(Ok(Message::Text(text))) => {
                        if text.len() > ctx.config.max_frame_bytes {
                            close(ws, CloseCode::TOO_BIG, "frame too big").await;
                            return None;
                        }
                        match ClientFrame::decode(text.as_str(), ctx.config.max_frame_bytes) {
                            Ok(ClientFrame::Auth { token, resume, .. }) => return Some((token, resume)),
                            Ok(_) => "the first frame must be auth",
                            Err(_) => "the first frame must be a valid auth frame",
                        }
                    }
                    Some(Ok(Message::Binary(_))) => "the first frame must be auth",
                    Some(Ok(Message::Close(_))) => return None,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                };
                info!(conn = %ctx.id, peer = %ctx.peer, "frame before auth");
                close(ws, CloseCode::AUTH_REJECTED, reject).await;
                return None;
            }
        }
    }
}

/// An authenticated socket's loop.
struct Live<'a> {
    ws: &'a mut WebSocket,
    ctx: &'a mut ConnContext,
    rx: mpsc::Receiver<String>,
    kill_rx: oneshot::Receiver<Kill>,
    bucket: TokenBucket,
    last_rtt: Option<u64>,
}

impl Live<'_> {
    async fn run(&mut self) -> Flow {
        let heartbeat = self.ctx.config.heartbeat.max(Duration::from_millis(1));
        let mut pings = interval_at(Instant::now() + heartbeat, heartbeat);
        pings.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let silence = sleep(heartbeat * 2);
        tokio::pin!(silence);
        loop {
            let flow = tokio::select! {
                biased;
                kill = &mut self.kill_rx => match kill {
                    Ok(kill) => Flow::Close(kill.code, kill.reason),
                    Err(_) => Flow::Close(CloseCode::GOING_AWAY, "detached"),
                },
                _ = self.ctx.mode.changed() => Flow::Close(CloseCode::GOING_AWAY, "server shutting down"),
                _ = &mut silence => Flow::Close(CloseCode::GOING_AWAY, "heartbeat timeout"),
                msg = self.ws.recv() => match msg {
                    None => Flow::Gone,
                    Some(Err(e)) => if is_too_big(e) {
                        Flow::Close(CloseCode::TOO_BIG, "frame too big")
                    } else {
                        Flow::Gone
                    },
                    Some(Ok(msg)) => {
                        silence.as_mut().reset(Instant::now() + heartbeat * 2);
                        self.on_message(msg).await
                    }
                },
                out = self.rx.recv() => match out {
                    Some(text) => self.send(text).await,
                    None => Flow::Close(CloseCode::GOING_AWAY, "detached"),
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

    async fn send(&mut self, text: String) -> Flow {
        if send_text(self.ws, text).await {
            Flow::Continue
        } else {
            Flow::Gone
        }
    }

    async fn on_message(&mut self, msg: Message) -> Flow {
        let text = match msg {
            Message::Text(text) => text,
            Message::Binary(_) => {
                return self.invalid_frame("binary frames are not supported").await
            }
            Message::Close(_) => return Flow::Gone,
            Message::Ping(_) | Message::Pong(_) => return Flow::Continue,
        };
        if text.len() > self.ctx.config.max_frame_bytes {
            return Flow::Close(CloseCode::TOO_BIG, "frame too big");
        }
        let frame = match ClientFrame::decode(text.as_str(), self.ctx.config.max_frame_bytes) {
            Ok(frame) => frame,
            Err(e) => {
                let flow = self.invalid_frame(&e.to_string()).await;
                // A send the server cannot decode still gets its (failed) ack when its id can be
                // read, so the client settles it instead of resending it forever.
                return match (flow, send_id_prefix(text.as_str())) {
                    (Flow::Continue, Some(id)) => {
                        let ack =
                            ack_frame(id, Err(ErrorBody::new("invalid_frame", e.to_string())));
                        self.send(ack).await
                    }
                    (flow, _) => flow,
                };
            }
        };
        match frame {
            ClientFrame::Auth { .. } => self.invalid_frame("already authenticated").await,
            ClientFrame::Refresh { .. } => self.invalid_frame("refresh is not supported").await,
            ClientFrame::Pong { t } => {
                self.last_rtt = Some(now_ms().saturating_sub(t));
                Flow::Continue
            }
            ClientFrame::Ack { seq } => {
                self.ctx.hub.lock().trim_acked(self.ctx.id, seq);
                Flow::Continue
            }
            ClientFrame::Send { id, event, data } => {
                let within_rate = self.bucket.try_take(Instant::now());
                let answer = self.ctx.hub.lock().handle_send(
                    self.ctx.id,
                    id,
                    &event,
                    &data,
                    Instant::now(),
                    within_rate,
                );
                let Some((ack, rate_limited)) = answer else {
                    return Flow::Close(CloseCode::GOING_AWAY, "detached");
                };
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

    async fn invalid_frame(&mut self, message: &str) -> Flow {
        let frame = ServerFrame::Error {
            code: "invalid_frame".to_owned(),
            message: message.to_owned(),
        };
        self.send(frame.encode()).await
    }
}

/// The `id` of a frame that starts the way sockline clients write sends
/// (`{"type":"send","id":N,…`), read without parsing the rest.
fn send_id_prefix(text: &str) -> Option<u64> {
    let rest = text.strip_prefix(r#"{"type":"send","id":"#)?;
    let digits = rest.find(|c: char| !c.is_ascii_digit())?;
    rest.get(..digits)?.parse().ok()
}

/// Whether a receive error is tungstenite's "message too long" (above the hard cap set at upgrade).
fn is_too_big(error: axum::Error) -> bool {
    use tokio_tungstenite::tungstenite::{error::CapacityError, Error};
    matches!(
        error.into_inner().downcast_ref::<Error>(),
        Some(Error::Capacity(CapacityError::MessageTooLong { .. }))
    )
}

/// Sends a text frame; `false` if the socket is gone or the write stalled past [`IO_TIMEOUT`].
async fn send_text(ws: &mut WebSocket, text: String) -> bool {
    matches!(
        timeout(IO_TIMEOUT, ws.send(Message::Text(text.into()))).await,
        Ok(Ok(()))
    )
}

/// Sends a close frame, then reads until the peer's reply (or a timeout) so the TCP connection
/// ends cleanly instead of with a reset.
async fn close(ws: &mut WebSocket, code: CloseCode, reason: &str) {
    let frame = CloseFrame {
        code: code.0,
        reason: reason.into(),
    };
    let sent = timeout(IO_TIMEOUT, ws.send(Message::Close(Some(frame)))).await;
    if !matches!(sent, Ok(Ok(()))) {
        return;
    }
    let _ = timeout(CLOSE_WAIT, async {
        while let Some(Ok(_)) = ws.recv().await {}
    })
    .await;
}
