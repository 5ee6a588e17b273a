//! One WebSocket from upgrade to close: the `auth` phase (`handshake`), then the live loop that
//! reads client frames, writes queued events, pings, refreshes the token, and enforces the
//! frame-size, rate, budget, silence and token-life limits.
//!
//! Close codes this module sends once the socket is authenticated:
//! - 4002 `token expired`: the token's `exp` passed without a `refresh`; 4001 after
//!   `auth_error {invalid_token | expired | user_mismatch}` answering a `refresh`.
//! - 1009: a frame too big; 1007: a text frame that is not UTF-8; 1002: a WebSocket protocol
//!   violation.
//! - 1008 `too many frames`: more inbound frames of any type (pings, pongs, acks, invalid
//!   frames, sends) than the socket's `frame_rate` budget allows.
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
use tokio::time::{interval_at, sleep, sleep_until, timeout, Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::frame::{CloseFrame, Utf8Bytes};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tracing::{info, warn};

use super::auth::{self, Verified};
use super::clock::now_ms;
use super::frames::Splicer;
use super::gate::Ticket;
use super::handlers::{ack_frame, Caller};
use super::handshake::{self, Admitted};
use super::hub::{Attached, Hub};
use super::logsafe::Clean;
use super::outbox::{Kill, Outgoing, TOKEN_EXPIRED, TOO_SLOW};
use super::rate::{self, SendLimiter, TokenBucket};
use super::session::ConnId;
use super::{Mode, ServerConfig};
use crate::protocol::{is_wire_id, ClientFrame, CloseCode, ErrorBody, ServerFrame};

/// 1002: the peer broke the WebSocket protocol.
pub(crate) const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
/// 1007: a text frame was not valid UTF-8.
pub(crate) const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
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

/// The longest a token's life is taken at its word: a deadline further away is capped here (the
/// socket is then closed with 4002 early, and the client reconnects with a fresh token).
const MAX_TOKEN_LIFE: Duration = Duration::from_secs(365 * 24 * 3600);

/// How a loop step ends the socket.
pub(crate) enum Flow {
    Continue,
    /// Close with this code and reason.
    Close(CloseCode, &'static str),
    /// The transport is gone: nothing more to send.
    Gone,
}

/// The `Instant` at which a verified token expires (capped at [`MAX_TOKEN_LIFE`]).
fn expiry_of(token: &Verified) -> Instant {
    let left = Duration::from_millis(token.expires_in_ms(now_ms())).min(MAX_TOKEN_LIFE);
    Instant::now() + left
}

/// Runs one socket to its end. The socket comes boxed: an `async fn` keeps a moved-in argument
/// twice in its state (the argument and the local it binds), and an idle socket holds that
/// state for its whole life.
pub(crate) async fn run(mut ws: Box<Socket>, mut ctx: ConnContext) {
    // Boxed, here and for each inbound message below: those futures are large and short-lived,
    // and an idle socket should not carry their space for its whole life.
    let Some(Admitted {
        mut attached,
        token,
    }) = Box::pin(handshake::admit(&mut ws, &mut ctx)).await
    else {
        return;
    };
    let user = attached.user.name.clone();
    let limiter = SendLimiter::new(ctx.config.rate_limit, Instant::now());
    // Encoded at once: a named frame would be held for the socket's whole life.
    let hello = ServerFrame::Authenticated {
        user_id: user.to_string(),
        session: attached.session.id.to_string(),
        heartbeat_ms: u64::try_from(ctx.config.heartbeat.as_millis()).unwrap_or(u64::MAX),
        resumed: attached.resumed,
        missed: attached.replay.len() as u64,
        v: crate::protocol::PROTOCOL_VERSION,
        expires_in_ms: Some(token.expires_in_ms(now_ms())),
        limits: limiter.limits(),
    }
    .encode();
    let mut splicer = Splicer::default();
    let mut sent = send_text(&mut ws, hello).await;
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
            limiter,
            frame_bucket: TokenBucket::new(ctx.config.frame_rate, Instant::now()),
            expires_at: expiry_of(&token),
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
pub(crate) fn on_receive_error(error: WsError, ctx: &ConnContext) -> Flow {
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

/// An authenticated socket's loop.
struct Live<'a> {
    ws: &'a mut Socket,
    ctx: &'a mut ConnContext,
    attached: &'a Attached,
    limiter: SendLimiter,
    frame_bucket: TokenBucket,
    /// When the token expires (moved by each accepted `refresh`).
    expires_at: Instant,
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
        let expiry = sleep_until(self.expires_at);
        tokio::pin!(expiry);
        let conn = self.attached.conn.clone();
        loop {
            let flow = tokio::select! {
                biased;
                _ = self.ctx.mode.changed() => Flow::Close(CloseCode::GOING_AWAY, "server shutting down"),
                _ = conn.woken() => self.write_queued().await,
                _ = &mut silence => Flow::Close(CloseCode::GOING_AWAY, "heartbeat timeout"),
                _ = &mut expiry => {
                    self.ctx.hub.stats.closed_token_expired.bump();
                    Flow::Close(TOKEN_EXPIRED.code, TOKEN_EXPIRED.reason)
                }
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
            if expiry.deadline() != self.expires_at {
                expiry.as_mut().reset(self.expires_at);
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
                // Sent in the replay already (a cluster queues while it reads the replay).
                Some(Outgoing::Event { seq, .. }) if seq <= self.attached.replayed_through => {
                    continue
                }
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
        if kill == TOKEN_EXPIRED {
            self.ctx.hub.stats.closed_token_expired.bump();
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
            ClientFrame::Refresh { token } => self.refresh(&token).await,
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
                let ack = match self.limiter.admit(now) {
                    Ok(()) => {
                        let caller = Caller {
                            user: &self.attached.user.name,
                            session: &self.attached.session,
                            scope: &self.attached.scope,
                            now,
                            send: None,
                        };
                        self.ctx.hub.handle_send(&caller, id, &event, &data).await
                    }
                    Err(wait) => {
                        self.ctx.hub.stats.rate_limited.bump();
                        let retry_after_ms = rate::ceil_ms(wait);
                        ack_frame(
                            id,
                            Err(ErrorBody {
                                code: "rate_limited".to_owned(),
                                message: "not processed: too many sends; send this id again \
                                          after retry_after_ms"
                                    .to_owned(),
                                retry_after_ms: Some(retry_after_ms),
                            }),
                        )
                    }
                };
                self.send(ack).await
            }
        }
    }

    /// `refresh {token}`: a token for the same user moves the socket's expiry
    /// (`refreshed {expires_in_ms}`); any other is `auth_error` and close 4001.
    async fn refresh(&mut self, token: &str) -> Flow {
        let user = &self.attached.user.name;
        match auth::verify_refresh(&self.ctx.config.jwt_secret, token, user) {
            Ok(token) => {
                self.expires_at = expiry_of(&token);
                let frame = ServerFrame::Refreshed {
                    expires_in_ms: token.expires_in_ms(now_ms()),
                };
                self.send(frame.encode()).await
            }
            Err(failure) => {
                warn!(conn = %self.ctx.id, user = %Clean(user), reason = failure.code(), "refresh refused");
                let frame = ServerFrame::AuthError {
                    code: failure.code().to_owned(),
                    message: failure.message().to_owned(),
                };
                match self.send(frame.encode()).await {
                    Flow::Continue => Flow::Close(CloseCode::AUTH_REJECTED, failure.message()),
                    flow => flow,
                }
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
/// (`{"type":"send","id":N,…`), read without parsing the rest: only a JSON integer in
/// 1 ..= 2^53 − 1 that ends there (`1.5`, `1e3`, `7.0`, `-1`, `01` are not ids, PROTOCOL.md §1).
fn send_id_prefix(text: &str) -> Option<u64> {
    let rest = text.strip_prefix(r#"{"type":"send","id":"#)?;
    let end = rest.find(|c: char| !c.is_ascii_digit())?;
    let ends_number = matches!(
        rest.as_bytes().get(end),
        Some(b',' | b'}' | b' ' | b'\t' | b'\n' | b'\r')
    );
    let digits = rest.get(..end)?;
    if !ends_number || digits.starts_with('0') {
        return None;
    }
    digits.parse().ok().filter(|id| is_wire_id(*id))
}

/// Sends a text frame; `false` if the socket is gone or the write stalled past [`IO_TIMEOUT`].
pub(crate) async fn send_text(ws: &mut Socket, text: String) -> bool {
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
pub(crate) async fn answer_close(ws: &mut Socket) {
    let _ = timeout(IO_TIMEOUT, ws.flush()).await;
}

/// Sends a close frame, then reads until the peer's reply (or a timeout) so the TCP connection
/// ends cleanly instead of with a reset.
pub(crate) async fn close(ws: &mut Socket, code: CloseCode, reason: &str) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_wire_integer_is_read_as_the_id_of_an_undecodable_send() {
        let id = |text: &str| send_id_prefix(text);
        assert_eq!(id(r#"{"type":"send","id":7,"event":[[[]]]}"#), Some(7));
        assert_eq!(
            id(r#"{"type":"send","id":9007199254740991}"#),
            Some((1 << 53) - 1)
        );
        for bad in [
            r#"{"type":"send","id":1.5,"event":"e"}"#,
            r#"{"type":"send","id":1e3,"event":"e"}"#,
            r#"{"type":"send","id":7.0,"event":"e"}"#,
            r#"{"type":"send","id":-1,"event":"e"}"#,
            r#"{"type":"send","id":0,"event":"e"}"#,
            r#"{"type":"send","id":01,"event":"e"}"#,
            r#"{"type":"send","id":9007199254740992,"event":"e"}"#,
            r#"{"type":"send","id":18446744073709551616,"event":"e"}"#,
            r#"{"type":"send","id":"7","event":"e"}"#,
            r#"{"type":"send","id":7"#,
        ] {
            assert_eq!(id(bad), None, "{bad}");
        }
    }
}
