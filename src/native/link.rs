//! One native WebSocket: opening it (tokio-tungstenite), reading frames as [`Transport`] inputs,
//! and a writer task with a bounded queue and a write deadline, so a server that does not read
//! trips a clear error (and a reconnect) instead of growing memory.

use std::future::pending;
use std::time::Duration;

use futures::stream::{SplitSink, SplitStream};
use futures::{FutureExt, SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;
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
    /// How long one write may take before the link counts as dead.
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

/// An open socket: frames are read here and written by its writer task.
pub(crate) struct OpenSocket {
    pub(crate) id: SocketId,
    reader: SplitStream<WsStream>,
    writer: mpsc::Sender<WsMessage>,
    /// Why the writer gave up (a stalled or failed write), once it has; `None` once heard.
    writer_failed: Option<oneshot::Receiver<String>>,
}

impl OpenSocket {
    pub(crate) fn new(id: SocketId, stream: WsStream, limits: WriteLimits) -> Self {
        let (sink, reader) = stream.split();
        let (writer, queue) = mpsc::channel(limits.queue.max(1));
        let (failed_tx, writer_failed) = oneshot::channel();
        tokio::spawn(write_loop(sink, queue, limits.stall, failed_tx));
        OpenSocket {
            id,
            reader,
            writer,
            writer_failed: Some(writer_failed),
        }
    }

    /// Queues a text frame; `Err` (with the reason) when the queue is full: the server has
    /// stopped reading, so the link is as good as dead.
    pub(crate) fn send_text(&self, text: String) -> Result<(), String> {
        match self.writer.try_send(WsMessage::text(text)) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => Err(String::from(
                "write queue full: the server is not reading what the client sends",
            )),
            // The writer already failed: the read side reports why.
            Err(mpsc::error::TrySendError::Closed(_)) => Ok(()),
        }
    }

    /// Sends a close frame and lets the writer finish.
    pub(crate) fn close(self, code: u16, reason: String) {
        let frame = CloseFrame {
            code: WsCloseCode::from(code),
            reason: reason.into(),
        };
        let _ = self.writer.try_send(WsMessage::Close(Some(frame)));
    }

    /// The next thing that happens on the socket.
    pub(crate) async fn next(&mut self) -> Transport {
        loop {
            let (reader, writer_failed) = (&mut self.reader, &mut self.writer_failed);
            let writer_failed = async {
                match writer_failed.as_mut() {
                    Some(failed) => failed.await,
                    None => pending().await,
                }
            };
            tokio::select! {
                read = reader.next() => {
                    if let Some(transport) = to_transport(read) {
                        return transport;
                    }
                }
                failed = writer_failed => {
                    self.writer_failed = None;
                    // `Err`: the writer ended cleanly (a close was sent); the read side ends it.
                    if let Ok(reason) = failed {
                        return Transport::Error(reason);
                    }
                }
            }
        }
    }

    /// A frame that is already buffered, without waiting.
    pub(crate) fn ready(&mut self) -> Option<Transport> {
        loop {
            let read = self.reader.next().now_or_never()?;
            if let Some(transport) = to_transport(read) {
                return Some(transport);
            }
        }
    }
}

async fn write_loop(
    mut sink: SplitSink<WsStream, WsMessage>,
    mut queue: mpsc::Receiver<WsMessage>,
    stall: Duration,
    failed: oneshot::Sender<String>,
) {
    while let Some(message) = queue.recv().await {
        let closing = matches!(message, WsMessage::Close(_));
        match timeout(stall, sink.send(message)).await {
            Ok(Ok(())) if !closing => {}
            Ok(Ok(())) => break,
            Ok(Err(error)) => {
                let _ = failed.send(error.to_string());
                return;
            }
            Err(_) => {
                let ms = u64::try_from(stall.as_millis()).unwrap_or(u64::MAX);
                let _ = failed.send(format!(
                    "write stalled for {ms} ms: the server is not reading"
                ));
                return;
            }
        }
    }
    let _ = timeout(stall, sink.close()).await;
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
