//! The driver task: owns the socket, runs the four beats (wait for one thing, feed it with
//! `now`, drain actions and events, re-arm the single timer) until the last handle is dropped.
//!
//! The [`Connection`](crate::core::Connection) sits behind a mutex shared with the handles so
//! that `send()` can return its synchronous `Result` (a full outbox) without an async round
//! trip; handles lock it only for the call and then wake this task, which does all the I/O.

use std::future::pending;
use std::sync::Arc;

use futures::{FutureExt, SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::client::{Message, Notice, Shared, StateChange};
use super::config::{TokenFuture, TokenSource};
use crate::core::{Action, ConnectionState, Event, Input, RequestId, SocketId, Transport};

type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;
type OpenFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<WsStream, String>> + Send>>;

/// The most frames fed in one beat before actions and events are drained.
const FRAMES_PER_BEAT: usize = 256;

/// What a handle asks of the task.
pub(crate) enum Command {
    /// The connection changed under the lock: drain it.
    Wake,
    /// Drain, then answer (used by `disconnect().await`).
    Flush(oneshot::Sender<()>),
}

/// The open socket: frames are read here, written by a per-socket writer task.
struct OpenSocket {
    id: SocketId,
    reader: futures::stream::SplitStream<WsStream>,
    writer: mpsc::UnboundedSender<WsMessage>,
}

/// Everything the loop waits on besides commands and the timer.
#[derive(Default)]
struct Io {
    socket: Option<OpenSocket>,
    opening: Option<(SocketId, OpenFuture)>,
    token: Option<(RequestId, TokenFuture)>,
    /// Scratch buffers for draining the core.
    actions: Vec<Action>,
    events: Vec<Event>,
}

pub(crate) async fn run(
    shared: Arc<Shared>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    token: TokenSource,
) {
    let mut io = Io::default();
    let max_frame = shared.conn().config().max_frame_bytes;
    loop {
        let deadline = beat(&shared, &mut io, &token, max_frame);
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => pending().await,
            }
        };
        tokio::select! {
            command = commands.recv() => match command {
                Some(Command::Wake) => {}
                Some(Command::Flush(done)) => {
                    beat(&shared, &mut io, &token, max_frame);
                    let _ = done.send(());
                }
                None => {
                    // The last handle is gone: close with 1000 and stop.
                    shared.with_conn(|conn, now| conn.disconnect(now));
                    beat(&shared, &mut io, &token, max_frame);
                    return;
                }
            },
            (socket, transport) = next_frame(&mut io.socket) => {
                // Feed this frame and whatever else is already buffered under one lock, so a
                // burst costs one wake-up and one drain instead of one per frame.
                let now = shared.now();
                let mut conn = shared.conn();
                let mut next = Some(transport);
                let mut budget = FRAMES_PER_BEAT;
                while let Some(transport) = next.take() {
                    let ended = matches!(transport, Transport::Closed { .. } | Transport::Error(_));
                    conn.handle_input(now, Input::Transport(socket, transport));
                    budget -= 1;
                    if ended {
                        io.socket = None;
                    } else if budget > 0 {
                        next = io.socket.as_mut().and_then(ready_frame);
                    }
                }
            }
            (socket, opened) = open(&mut io.opening) => {
                io.opening = None;
                match opened {
                    Ok(stream) => {
                        let (sink, reader) = stream.split();
                        let writer = spawn_writer(sink);
                        io.socket = Some(OpenSocket { id: socket, reader, writer });
                        shared.feed(Input::Transport(socket, Transport::Opened));
                    }
                    Err(error) => {
                        shared.feed(Input::Transport(socket, Transport::Error(error)));
                    }
                }
            }
            (request, result) = fetch_token(&mut io.token) => {
                io.token = None;
                shared.feed(Input::TokenFetched(request, result));
            }
            () = sleep => {
                shared.feed(Input::Timeout);
            }
        }
    }
}

/// Drains actions (performing them) and events (dispatching them) until both are empty, then
/// returns the next deadline.
fn beat(
    shared: &Shared,
    io: &mut Io,
    token: &TokenSource,
    max_frame: usize,
) -> Option<tokio::time::Instant> {
    let mut actions = std::mem::take(&mut io.actions);
    let mut events = std::mem::take(&mut io.events);
    let deadline = loop {
        let (now, last_error) = {
            let mut conn = shared.conn();
            actions.extend(std::iter::from_fn(|| conn.poll_action()));
            events.extend(std::iter::from_fn(|| conn.poll_event()));
            if actions.is_empty() && events.is_empty() {
                break conn.poll_timeout().map(|at| shared.deadline(at));
            }
            let changes_state = events
                .iter()
                .any(|e| matches!(e, Event::StateChanged { .. }));
            let last_error = changes_state
                .then(|| conn.last_error().map(str::to_owned))
                .flatten();
            (shared.now(), last_error)
        };
        for action in actions.drain(..) {
            perform(shared, io, token, max_frame, action);
        }
        for event in events.drain(..) {
            deliver(shared, event, now, last_error.as_deref());
        }
    };
    // Keep the buffers' capacity for the next beat.
    io.actions = actions;
    io.events = events;
    deadline
}

fn perform(shared: &Shared, io: &mut Io, token: &TokenSource, max_frame: usize, action: Action) {
    match action {
        Action::FetchToken { request } => match token {
            TokenSource::Static(token) => {
                shared.feed(Input::TokenFetched(request, Ok(token.clone())));
            }
            TokenSource::Provider(provider) => io.token = Some((request, provider())),
        },
        Action::OpenSocket { socket, url } => {
            let config = WebSocketConfig::default()
                // Twice the protocol limit: a frame between the two reaches the core, which
                // reports it as unreadable and carries on; only a grossly oversized one fails
                // the socket (a frame just over the limit must not cause a reconnect loop).
                .max_message_size(Some(max_frame.saturating_mul(2)))
                .max_frame_size(Some(max_frame.saturating_mul(2)));
            let future = async move {
                tokio_tungstenite::connect_async_with_config(url, Some(config), true)
                    .await
                    .map(|(stream, _response)| stream)
                    .map_err(|e| e.to_string())
            };
            io.opening = Some((socket, Box::pin(future)));
        }
        Action::SendFrame { socket, text } => {
            if let Some(open) = io.socket.as_ref().filter(|s| s.id == socket) {
                let _ = open.writer.send(WsMessage::text(text));
            }
        }
        Action::CloseSocket {
            socket,
            code,
            reason,
        } => {
            if io.opening.as_ref().is_some_and(|(id, _)| *id == socket) {
                io.opening = None;
            }
            if let Some(open) = io.socket.take_if(|s| s.id == socket) {
                let frame = CloseFrame {
                    code: WsCloseCode::from(code),
                    reason: reason.into(),
                };
                let _ = open.writer.send(WsMessage::Close(Some(frame)));
            }
        }
    }
}

fn deliver(shared: &Shared, event: Event, now: crate::core::Instant, last_error: Option<&str>) {
    match event {
        Event::StateChanged { from, to } => {
            let (retry_in, reason) = match &to {
                ConnectionState::Reconnecting { next_at, .. } => (
                    next_at.map(|at| at.saturating_duration_since(now)),
                    last_error.map(str::to_owned),
                ),
                ConnectionState::Disconnected { reason } => (None, Some(reason.to_string())),
                _ => (None, None),
            };
            tracing::debug!(from = from.name(), to = to.name(), ?reason, "state");
            shared.publish_state(StateChange {
                from,
                to,
                retry_in,
                reason,
            });
        }
        Event::Message { event, data, seq } => {
            shared.dispatch_message(&Message { event, data, seq });
        }
        Event::Ack { id, result } => {
            let result = result.map(|data| data.map(|d| d.to_value()));
            shared.settle(id, &result);
            shared.dispatch_notice(&Notice::Ack { id, result });
        }
        Event::Error(error) => {
            tracing::warn!(%error, "sockline");
            shared.dispatch_notice(&Notice::Error(error));
        }
        Event::Resumed { missed } => shared.dispatch_notice(&Notice::Resumed { missed }),
        Event::ResumeFailed => shared.dispatch_notice(&Notice::ResumeFailed),
    }
}

fn spawn_writer(
    mut sink: futures::stream::SplitSink<WsStream, WsMessage>,
) -> mpsc::UnboundedSender<WsMessage> {
    let (tx, mut rx) = mpsc::unbounded_channel::<WsMessage>();
    tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            let closing = matches!(message, WsMessage::Close(_));
            if sink.send(message).await.is_err() || closing {
                break;
            }
        }
        let _ = sink.close().await;
    });
    tx
}

/// What a read from the socket means to the core; `None` for control frames tungstenite
/// answers by itself (ping/pong).
fn to_transport(read: Option<Result<WsMessage, WsError>>) -> Option<Transport> {
    Some(match read {
        Some(Ok(WsMessage::Text(text))) => Transport::Frame(text.as_str().to_owned()),
        Some(Ok(WsMessage::Close(Some(frame)))) => Transport::Closed {
            code: frame.code.into(),
            reason: frame.reason.to_string(),
        },
        Some(Ok(WsMessage::Close(None))) => Transport::Closed {
            code: 1005,
            reason: String::new(),
        },
        // The protocol is text only: the core reports a binary frame as unreadable.
        Some(Ok(WsMessage::Binary(_))) => Transport::Frame(String::new()),
        Some(Ok(_)) => return None,
        Some(Err(error)) => Transport::Error(error.to_string()),
        None => Transport::Closed {
            code: 1006,
            reason: "connection dropped".into(),
        },
    })
}

async fn next_frame(socket: &mut Option<OpenSocket>) -> (SocketId, Transport) {
    let Some(open) = socket else {
        return pending().await;
    };
    loop {
        if let Some(transport) = to_transport(open.reader.next().await) {
            return (open.id, transport);
        }
    }
}

/// A frame that is already buffered, without waiting.
fn ready_frame(open: &mut OpenSocket) -> Option<Transport> {
    loop {
        let read = open.reader.next().now_or_never()?;
        if let Some(transport) = to_transport(read) {
            return Some(transport);
        }
    }
}

async fn open(
    opening: &mut Option<(SocketId, OpenFuture)>,
) -> (SocketId, Result<WsStream, String>) {
    match opening {
        Some((socket, future)) => (*socket, future.await),
        None => pending().await,
    }
}

async fn fetch_token(
    token: &mut Option<(RequestId, TokenFuture)>,
) -> (RequestId, Result<String, String>) {
    match token {
        Some((request, future)) => (*request, future.await),
        None => pending().await,
    }
}
