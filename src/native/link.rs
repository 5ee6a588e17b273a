//! One native WebSocket: opening it (tokio-tungstenite), reading frames as [`Transport`] inputs,
//! and writing from a bounded queue with a write deadline, so a server that does not read trips
//! a clear error (and a reconnect) instead of growing memory.
//!
//! The driver task owns the socket whole, reads and writes alike: the queue is written each
//! time the driver waits for the next frame. (A writer task on the other half of a split socket
//! starves under a flood of inbound frames: the reader takes the halves' shared lock again at
//! once for every buffered frame, the queue fills with the client's own acks, and a server that
//! reads perfectly well looked dead.)

use std::collections::VecDeque;
use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{FutureExt, SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::{sleep_until, timeout, Instant, Sleep};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::core::{SocketId, Transport};

pub(crate) type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;
/// A socket being opened.
pub(crate) type OpenFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<WsStream, String>> + Send>>;

/// How the writer is bounded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WriteLimits {
    /// Frames the queue holds before a send counts as a dead link.
    pub(crate) queue: usize,
    /// How long queued frames may wait without any write progress before the link counts as dead.
    pub(crate) stall: Duration,
}

/// Opens a WebSocket to `url`; frames up to twice `max_frame` reach the core (which reports
/// one above the limit as unreadable and carries on); only a grossly oversized one fails the
/// socket, so a frame just over the limit cannot cause a reconnect loop.
pub(crate) fn open(url: String, max_frame: usize) -> OpenFuture {
    let config = WebSocketConfig::default()
        .max_message_size(Some(max_frame.saturating_mul(2)))
        .max_frame_size(Some(max_frame.saturating_mul(2)))
        .max_write_buffer_size(max_frame.saturating_mul(4));
    Box::pin(async move {
        tokio_tungstenite::connect_async_with_config(url, Some(config), true)
            .await
            .map(|(stream, _response)| stream)
            .map_err(|e| e.to_string())
    })
}

/// An open socket: frames are read here, and the queue written here too.
pub(crate) struct OpenSocket {
    pub(crate) id: SocketId,
    ws: WsStream,
    limits: WriteLimits,
    /// Frames not handed to the socket yet.
    queue: VecDeque<WsMessage>,
    /// Frames handed to the socket but not flushed yet.
    unflushed: bool,
    /// Fires `limits.stall` after the last write progress while writes are pending.
    stall: Pin<Box<Sleep>>,
    /// Whether `stall` counts (writes are pending).
    stall_armed: bool,
}

impl OpenSocket {
    pub(crate) fn new(id: SocketId, ws: WsStream, limits: WriteLimits) -> Self {
        OpenSocket {
            id,
            ws,
            limits,
            queue: VecDeque::new(),
            unflushed: false,
            stall: Box::pin(sleep_until(Instant::now())),
            stall_armed: false,
        }
    }

    /// Queues a text frame; `Err` (with the reason) when the queue is full: the server has
    /// stopped reading, so the link is as good as dead.
    pub(crate) fn send_text(&mut self, text: String) -> Result<(), String> {
        if self.queue.len() >= self.limits.queue.max(1) {
            return Err(String::from(
                "write queue full: the server is not reading what the client sends",
            ));
        }
        self.queue.push_back(WsMessage::text(text));
        Ok(())
    }

    /// Sends a close frame after what is queued and lets a task finish the writes (bounded by
    /// the write deadline) and close the connection.
    pub(crate) fn close(mut self, code: u16, reason: String) {
        let frame = CloseFrame {
            code: WsCloseCode::from(code),
            reason: reason.into(),
        };
        self.queue.push_back(WsMessage::Close(Some(frame)));
        let OpenSocket {
            mut ws,
            queue,
            limits,
            ..
        } = self;
        tokio::spawn(async move {
            let written = timeout(limits.stall, async {
                for message in queue {
                    ws.feed(message).await?;
                }
                ws.flush().await
            })
            .await;
            if matches!(written, Ok(Ok(()))) {
                let _ = timeout(limits.stall, ws.close(None)).await;
            }
        });
    }

    /// The next thing that happens on the socket; the queue is written meanwhile.
    pub(crate) async fn next(&mut self) -> Transport {
        poll_fn(|cx| self.poll_next(cx)).await
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Transport> {
        if let Err(reason) = self.poll_write(cx) {
            return Poll::Ready(Transport::Error(reason));
        }
        loop {
            let read = std::task::ready!(self.ws.poll_next_unpin(cx));
            if let Some(transport) = to_transport(read) {
                return Poll::Ready(transport);
            }
        }
    }

    /// Hands queued frames to the socket and flushes them, as far as it takes them now; `Err`
    /// when a write failed or no write progress was made for `limits.stall`.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Result<(), String> {
        let mut progress = false;
        while !self.queue.is_empty() {
            match self.ws.poll_ready_unpin(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(error)) => return Err(error.to_string()),
                Poll::Pending => break,
            }
            if let Some(message) = self.queue.pop_front() {
                self.ws
                    .start_send_unpin(message)
                    .map_err(|e| e.to_string())?;
                self.unflushed = true;
                progress = true;
            }
        }
        if self.unflushed {
            match self.ws.poll_flush_unpin(cx) {
                Poll::Ready(Ok(())) => {
                    self.unflushed = false;
                    progress = true;
                }
                Poll::Ready(Err(error)) => return Err(error.to_string()),
                Poll::Pending => {}
            }
        }
        if self.queue.is_empty() && !self.unflushed {
            self.stall_armed = false;
            return Ok(());
        }
        if progress || !self.stall_armed {
            self.stall
                .as_mut()
                .reset(Instant::now() + self.limits.stall);
            self.stall_armed = true;
        }
        if self.stall.poll_unpin(cx).is_ready() {
            let ms = u64::try_from(self.limits.stall.as_millis()).unwrap_or(u64::MAX);
            return Err(format!(
                "write stalled for {ms} ms: the server is not reading"
            ));
        }
        Ok(())
    }

    /// A frame that is already buffered, without waiting.
    pub(crate) fn ready(&mut self) -> Option<Transport> {
        loop {
            let read = self.ws.next().now_or_never()?;
            if let Some(transport) = to_transport(read) {
                return Some(transport);
            }
        }
    }
}

/// What a read from the socket means to the core; `None` for control frames tungstenite
/// answers by itself (ping/pong).
fn to_transport(read: Option<Result<WsMessage, WsError>>) -> Option<Transport> {
    Some(match read {
        Some(Ok(WsMessage::Text(text))) => Transport::Frame(text.as_str().to_owned()),
        Some(Ok(WsMessage::Binary(_))) => Transport::Binary,
        Some(Ok(WsMessage::Close(Some(frame)))) => Transport::Closed {
            code: frame.code.into(),
            reason: frame.reason.to_string(),
        },
        Some(Ok(WsMessage::Close(None))) => Transport::Closed {
            code: 1005,
            reason: String::new(),
        },
        Some(Ok(_)) => return None,
        Some(Err(error)) => Transport::Error(error.to_string()),
        None => Transport::Closed {
            code: 1006,
            reason: "connection dropped".into(),
        },
    })
}
