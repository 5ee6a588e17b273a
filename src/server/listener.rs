//! The accept thread: accepts every TCP connection on an OS thread and single-threaded runtime
//! of its own, admits it through the [`Gate`], and sends it on by the first bytes of its first
//! request (read without consuming them):
//!
//! - `GET /health` is answered right here, with `Connection: close` (a client's next request
//!   comes on a new connection, which is sorted again), so a load balancer's or orchestrator's
//!   probe on the main port waits for nothing but the OS scheduler. In a reconnect wave the main
//!   runtime's workers are busy with thousands of handshakes; while the accept loop ran among
//!   them, the kernel's accept queue held up to ~1,600 connections at 10,000 sockets on 2 cores
//!   and a probe waited behind all of them (260–570 ms).
//! - Everything else is handed to the main runtime (moved off this thread's reactor onto the
//!   main one) and served there.
//! - A connection that sends nothing within `header_timeout` is closed here (counted as
//!   `timeouts.header`).
//!
//! On either runtime a connection is then served as HTTP/1.1 with hyper's header-read timeout and
//! the upgrade deadline, until it upgrades or ends:
//! - A connection that has not sent a complete request head within `header_timeout` (also the
//!   longest idle gap between keep-alive requests) is closed (counted as `timeouts.header`).
//! - A connection still speaking plain HTTP `upgrade_timeout` after accept is shut down
//!   gracefully (an in-flight response is still answered, within one more such period; counted as
//!   `timeouts.upgrade`). A WebSocket upgrade ends the HTTP phase; the socket's `auth` deadline
//!   takes over from there.
//! - On shutdown, accepting stops and every HTTP connection is shut down gracefully; the thread
//!   ends once the connections it serves have ended.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::{watch, Notify};
use tokio::time::{sleep, timeout};
use tower::ServiceExt;
use tracing::{debug, error, warn};

use super::gate::{Gate, Ticket};
use super::session::ConnId;
use super::tasks::Tasks;
use super::{AppState, Mode, SHUTDOWN_GRACE};

/// Largest request head (and read buffer) an HTTP connection may use.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Pause after an accept error (out of file descriptors, …) before accepting again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// The start of a request the accept thread answers itself.
const HEALTH_PROBE: &[u8] = b"GET /health";
/// Pause before looking again at a request line that has only partly arrived.
const PEEK_AGAIN: Duration = Duration::from_millis(1);

/// The accept thread of a running server.
#[derive(Debug)]
pub(crate) struct AcceptThread {
    thread: JoinHandle<()>,
    abort: Arc<Notify>,
}

impl AcceptThread {
    /// Serves `listener` on a new thread until the server stops running (or [`Self::abort`]).
    pub(crate) fn spawn(
        listener: std::net::TcpListener,
        router: Router,
        state: AppState,
        gate: Arc<Gate>,
    ) -> io::Result<AcceptThread> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let abort = Arc::new(Notify::new());
        let aborted = abort.clone();
        let thread = std::thread::Builder::new()
            .name("sockline-accept".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::select! {
                        () = run(listener, router, state, gate) => {}
                        () = aborted.notified() => {}
                    }
                });
                // Dropping the runtime drops every connection still on it.
            })?;
        Ok(AcceptThread { thread, abort })
    }

    /// Crash simulation: stops at once; the listener and the connections served on the thread are
    /// dropped without an answer.
    pub(crate) fn abort(&self) {
        self.abort_handle().abort();
    }

    /// What [`Self::abort`] does, kept apart from the thread.
    pub(crate) fn abort_handle(&self) -> AbortAccept {
        AbortAccept(self.abort.clone())
    }

    /// Waits (blocking) for the thread to end.
    pub(crate) fn join(self) {
        if self.thread.join().is_err() {
            error!("the accept thread panicked");
        }
    }
}

/// Stops an [`AcceptThread`] at once.
#[derive(Debug)]
pub(crate) struct AbortAccept(Arc<Notify>);

impl AbortAccept {
    /// See [`AcceptThread::abort`].
    pub(crate) fn abort(&self) {
        self.0.notify_one();
    }
}

/// The thread's work: accept until the server stops, then wait (at most the shutdown grace) for
/// the connections served here.
async fn run(listener: std::net::TcpListener, router: Router, state: AppState, gate: Arc<Gate>) {
    let listener = match TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(e) => {
            error!(error = %e, "the listener cannot be served");
            return;
        }
    };
    let here = Arc::new(Tasks::new(Handle::current()));
    accept_loop(listener, router, state, gate, &here).await;
    if timeout(SHUTDOWN_GRACE, here.wait_idle()).await.is_err() {
        warn!("connections on the accept thread still open after the grace period; dropping them");
    }
}

/// Accepts until the server stops running; each connection goes to [`route`] on this thread.
async fn accept_loop(
    listener: TcpListener,
    router: Router,
    state: AppState,
    gate: Arc<Gate>,
    here: &Arc<Tasks>,
) {
    let stop = stopping(state.mode.clone());
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                warn!(error = %e, "accept failed; pausing");
                sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let ticket = match gate.admit(peer) {
            Ok(ticket) => ticket,
            Err(refusal) => {
                debug!(peer = %peer, ?refusal, "connection refused");
                gate.refuse(stream, refusal);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let id = ConnId(state.next_conn.fetch_add(1, Ordering::Relaxed));
        here.spawn(id, route(stream, ticket, id, router.clone(), state.clone()));
    }
}

/// What a connection's first bytes say.
#[derive(Debug, PartialEq, Eq)]
enum FirstRequest {
    HealthProbe,
    Other,
    /// Nothing (or only part of a request line) within the header timeout.
    Silent,
    /// Closed (or failed) before sending anything.
    Gone,
}

/// Whether a request that starts with `head` is a health probe; `None` while `head` is too short
/// to tell.
fn is_health_probe(head: &[u8]) -> Option<bool> {
    let common = head.len().min(HEALTH_PROBE.len());
    if head[..common] != HEALTH_PROBE[..common] {
        return Some(false);
    }
    head.get(HEALTH_PROBE.len())
        .map(|after| matches!(after, b' ' | b'?'))
}

/// Reads the first bytes of `stream` without consuming them, for at most `within`.
async fn first_request(stream: &TcpStream, within: Duration) -> FirstRequest {
    let mut head = [0u8; HEALTH_PROBE.len() + 1];
    let look = async {
        loop {
            match stream.peek(&mut head).await {
                Ok(0) | Err(_) => return FirstRequest::Gone,
                Ok(n) => match is_health_probe(&head[..n]) {
                    Some(true) => return FirstRequest::HealthProbe,
                    Some(false) => return FirstRequest::Other,
                    // Peeking again now would see the same bytes: wait for the rest.
                    None => sleep(PEEK_AGAIN).await,
                },
            }
        }
    };
    timeout(within, look).await.unwrap_or(FirstRequest::Silent)
}

/// Serves a health probe here and hands anything else to the main runtime.
async fn route(
    stream: TcpStream,
    ticket: Arc<Ticket>,
    id: ConnId,
    router: Router,
    state: AppState,
) {
    let first = tokio::select! {
        first = first_request(&stream, state.config.header_timeout) => first,
        // Shutting down: a connection that has not said what it wants yet is just closed.
        () = stopping(state.mode.clone()) => return,
    };
    match first {
        // Boxed: this task stays small until it turns out to be a probe.
        FirstRequest::HealthProbe => {
            Box::pin(serve(stream, ticket, router, state, Reuse::Close)).await;
        }
        FirstRequest::Other => {
            // Off this thread's reactor, onto the main runtime's (registered there by `from_std`).
            let stream = match stream.into_std() {
                Ok(stream) => stream,
                Err(e) => return debug!(peer = %ticket.peer, error = %e, "cannot hand over"),
            };
            let tasks = state.tasks.clone();
            // The HTTP connection's state is boxed when the task first runs, so it is allocated
            // on the main runtime's threads. Allocated here, in this thread's malloc arena, it
            // left that arena's pages fragmented around the long-lived tickets: 6.2 instead of
            // 5.8 KiB of RSS per idle socket at 10,000.
            tasks.spawn(id, async move {
                // The ticket too is allocated again here (the accept thread held the only
                // reference), so nothing a socket keeps for its life stays in that arena.
                let ticket = Arc::try_unwrap(ticket).map_or_else(|shared| shared, Arc::new);
                match TcpStream::from_std(stream) {
                    Ok(stream) => {
                        Box::pin(serve(stream, ticket, router, state, Reuse::KeepAlive)).await;
                    }
                    Err(e) => debug!(peer = %ticket.peer, error = %e, "cannot hand over"),
                }
            });
        }
        FirstRequest::Silent => {
            state.hub.stats.header_timeouts.bump();
            debug!(peer = %ticket.peer, "nothing sent in time; closed");
        }
        FirstRequest::Gone => {}
    }
}

/// Resolves once the server stops running.
async fn stopping(mut mode: watch::Receiver<Mode>) {
    // Err means the sender is gone, which only happens when the server is dropped.
    let _ = mode.wait_for(|m| *m != Mode::Running).await;
}

/// Whether a connection may carry more than one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reuse {
    KeepAlive,
    /// One request, answered with `Connection: close`.
    Close,
}

/// Serves one connection's HTTP phase.
async fn serve(
    stream: TcpStream,
    ticket: Arc<Ticket>,
    router: Router,
    state: AppState,
    reuse: Reuse,
) {
    let service = {
        let ticket = ticket.clone();
        service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ticket.clone());
            router.clone().oneshot(request)
        })
    };
    let mut builder = http1::Builder::new();
    builder
        .keep_alive(reuse == Reuse::KeepAlive)
        .timer(TokioTimer::new())
        .header_read_timeout(state.config.header_timeout)
        .max_buf_size(MAX_HEAD_BYTES);
    let conn = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    let upgrade_timeout = state.config.upgrade_timeout;
    let result = tokio::select! {
        result = conn.as_mut() => result,
        _ = sleep(upgrade_timeout) => {
            state.hub.stats.upgrade_timeouts.bump();
            debug!(peer = %ticket.peer, "no upgrade in time; shutting the HTTP connection down");
            conn.as_mut().graceful_shutdown();
            match tokio::time::timeout(upgrade_timeout, conn.as_mut()).await {
                Ok(result) => result,
                Err(_) => return,
            }
        }
        () = stopping(state.mode.clone()) => {
            conn.as_mut().graceful_shutdown();
            match tokio::time::timeout(upgrade_timeout, conn.as_mut()).await {
                Ok(result) => result,
                Err(_) => return,
            }
        }
    };
    if let Err(e) = result {
        if e.is_timeout() {
            state.hub.stats.header_timeouts.bump();
            debug!(peer = %ticket.peer, "no complete request head in time; closed");
        } else {
            debug!(peer = %ticket.peer, error = %e, "HTTP connection ended with an error");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_get_of_health_is_a_probe() {
        for (head, probe) in [
            (&b"GET /health HTTP/1.1\r\n"[..], Some(true)),
            (b"GET /health?verbose HTTP/1.1", Some(true)),
            (b"GET /healthz HTTP/1.1", Some(false)),
            (b"GET /health/x HTTP/1.1", Some(false)),
            (b"GET /ws HTTP/1.1", Some(false)),
            (b"HEAD /health HTTP/1.1", Some(false)),
            (b"POST /notify HTTP/1.1", Some(false)),
            (b"get /health HTTP/1.1", Some(false)),
            (b"\x16\x03\x01", Some(false)),
            (b"GET /hea", None),
            (b"GET /health", None),
            (b"", None),
        ] {
            assert_eq!(
                is_health_probe(&head[..head.len().min(HEALTH_PROBE.len() + 1)]),
                probe,
                "{}",
                String::from_utf8_lossy(head)
            );
        }
    }
}
