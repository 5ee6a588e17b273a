//! The driver task: owns the socket, runs the beats (wait for one thing, feed it with `now`,
//! drain the shell, perform the actions, deliver the outputs, re-arm the single timer) until
//! the last handle is dropped.
//!
//! The [`Shell`](crate::shell::Shell) sits behind a mutex shared with the handles so that
//! `send()` can return its synchronous `Result` (a full outbox) without an async round trip;
//! handles lock it only for the call and then wake this task, which does all the I/O.

use std::future::pending;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::config::{TokenFuture, TokenProvider};
use super::link::{self, OpenFuture, OpenSocket, WriteLimits};
use super::shared::{AckSender, Shared};
use super::types::{Message, Notice, StateChange};
use crate::core::{Action, Input, Payload, RequestId, SocketId, Transport};
use crate::shell::{Batch, Output};

/// The most frames fed in one beat before the shell is drained: a burst of small frames costs
/// one drain per thousand (each drain and wake-up costs about what a frame does).
const FRAMES_PER_BEAT: usize = 1024;
/// No further frame is fed in a beat once this many bytes were (the last one fed may pass
/// it): what waits in one beat for delivery stays near 1 MiB.
const BYTES_PER_BEAT: usize = 1 << 20;

/// What a handle asks of the task.
pub(crate) enum Command {
    /// The connection changed under the lock: drain it.
    Wake,
    /// Drain, then answer (used by `disconnect().await`).
    Flush(oneshot::Sender<()>),
}

/// Everything the loop waits on besides commands and the timer.
struct Io {
    socket: Option<OpenSocket>,
    opening: Option<(SocketId, OpenFuture)>,
    token: Option<(RequestId, TokenFuture)>,
    provider: Option<TokenProvider>,
    max_frame: usize,
    limits: WriteLimits,
    batch: Batch<AckSender>,
}

pub(crate) async fn run(
    shared: Arc<Shared>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    provider: Option<TokenProvider>,
) {
    let (max_frame, limits) = {
        let shell = shared.shell();
        let config = shell.conn().config();
        let limits = WriteLimits {
            // A whole outbox flush fits, with room for rejoins, acks and pongs.
            queue: config.outbox_max_messages.saturating_add(1024),
            stall: config.heartbeat_grace,
        };
        (config.max_frame_bytes, limits)
    };
    let mut io = Io {
        socket: None,
        opening: None,
        token: None,
        provider,
        max_frame,
        limits,
        batch: Batch::default(),
    };
    loop {
        let deadline = beat(&shared, &mut io);
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(shared.deadline(at)).await,
                None => pending().await,
            }
        };
        tokio::select! {
            command = commands.recv() => match command {
                Some(Command::Wake) => {}
                Some(Command::Flush(done)) => {
                    beat(&shared, &mut io);
                    let _ = done.send(());
                }
                None => {
                    // The last handle is gone: close with 1000 and stop.
                    shared.with_conn(|conn, now| conn.disconnect(now));
                    beat(&shared, &mut io);
                    return;
                }
            },
            (socket, transport) = next_frame(&mut io.socket) => feed_frames(&shared, &mut io, socket, transport),
            (socket, opened) = open(&mut io.opening) => {
                io.opening = None;
                match opened {
                    Ok(stream) => {
                        io.socket = Some(OpenSocket::new(socket, stream, io.limits));
                        shared.feed(Input::Transport(socket, Transport::Opened));
                    }
                    Err(error) => shared.feed(Input::Transport(socket, Transport::Error(error))),
                }
            }
            (request, result) = fetch_token(&mut io.token) => {
                io.token = None;
                shared.feed(Input::TokenFetched(request, result));
            }
            () = sleep => shared.feed(Input::Timeout),
        }
    }
}

/// Feeds `first` and whatever else is already buffered under one lock, so a burst costs one
/// wake-up and one drain instead of one per frame.
fn feed_frames(shared: &Shared, io: &mut Io, socket: SocketId, first: Transport) {
    let now = shared.now();
    let mut shell = shared.shell();
    let mut next = Some(first);
    let (mut frames, mut bytes) = (FRAMES_PER_BEAT, BYTES_PER_BEAT);
    while let Some(transport) = next.take() {
        let ended = matches!(transport, Transport::Closed { .. } | Transport::Error(_));
        if let Transport::Frame(text) = &transport {
            bytes = bytes.saturating_sub(text.len());
        }
        shell
            .conn_mut()
            .handle_input(now, Input::Transport(socket, transport));
        frames -= 1;
        if ended {
            io.socket = None;
        } else if frames > 0 && bytes > 0 {
            next = io.socket.as_mut().and_then(OpenSocket::ready);
        }
    }
}

/// Drains the shell, performs and delivers, until nothing is left; returns the next deadline.
fn beat(shared: &Shared, io: &mut Io) -> Option<crate::core::Instant> {
    let mut batch = std::mem::take(&mut io.batch);
    loop {
        shared.shell().drain(shared.now(), &mut batch);
        if batch.is_empty() {
            break;
        }
        for action in batch.actions.drain(..) {
            perform(shared, io, action);
        }
        for output in batch.outputs.drain(..) {
            deliver(shared, output);
        }
    }
    let deadline = batch.deadline;
    // Keep the buffers' capacity for the next beat.
    io.batch = batch;
    deadline
}

fn perform(shared: &Shared, io: &mut Io, action: Action) {
    match action {
        Action::FetchToken { request } => {
            io.token = Some(match &io.provider {
                Some(provider) => (request, (provider.0)()),
                // Unreachable with a `ClientConfig` (it holds a static token or a provider).
                None => (
                    request,
                    Box::pin(async { Err("no token configured".to_owned()) }),
                ),
            });
        }
        Action::OpenSocket { socket, url } => {
            io.opening = Some((socket, link::open(url, io.max_frame)));
        }
        Action::SendFrame { socket, text } => {
            if let Some(open) = io.socket.as_mut().filter(|s| s.id == socket) {
                if let Err(error) = open.send_text(text) {
                    io.socket = None;
                    shared.feed(Input::Transport(socket, Transport::Error(error)));
                }
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
                open.close(code, reason);
            }
        }
    }
}

fn to_value(
    result: Result<Option<Payload>, crate::error::AckError>,
) -> Result<Option<Value>, crate::error::AckError> {
    result.map(|data| data.map(|d| d.to_value()))
}

fn deliver(shared: &Shared, output: Output<AckSender>) {
    match output {
        Output::State(view) => {
            tracing::debug!(from = view.from.name(), to = view.to.name(), cause = %view.cause, "state");
            shared.publish_state(StateChange::from(view));
        }
        Output::Message { event, data, seq } => {
            shared.dispatch_message(&Message { event, data, seq });
        }
        Output::Settle {
            resolver, result, ..
        } => {
            let _ = resolver.send(to_value(result));
        }
        Output::Ack { id, result } => {
            shared.dispatch_notice(&Notice::Ack {
                id,
                result: to_value(result),
            });
        }
        Output::Error(error) => {
            tracing::warn!(%error, "sockline");
            shared.dispatch_notice(&Notice::Error(error));
        }
        Output::Resumed { missed } => shared.dispatch_notice(&Notice::Resumed { missed }),
        Output::ResumeFailed => shared.dispatch_notice(&Notice::ResumeFailed),
    }
}

async fn next_frame(socket: &mut Option<OpenSocket>) -> (SocketId, Transport) {
    match socket {
        Some(open) => (open.id, open.next().await),
        None => pending().await,
    }
}

async fn open(
    opening: &mut Option<(SocketId, OpenFuture)>,
) -> (SocketId, Result<link::WsStream, String>) {
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
