//! The accept loop: admits each TCP connection through the [`Gate`], then serves it as HTTP/1.1
//! with hyper's header-read timeout and the upgrade deadline, until it upgrades or ends.
//!
//! - A connection that has not sent a complete request head within `header_timeout` (also the
//!   longest idle gap between keep-alive requests) is closed (counted as `timeouts.header`).
//! - A connection still speaking plain HTTP `upgrade_timeout` after accept is shut down
//!   gracefully (an in-flight response is still answered, within one more such period; counted as
//!   `timeouts.upgrade`). A WebSocket upgrade ends the HTTP phase; the socket's `auth` deadline
//!   takes over from there.
//! - On shutdown, accepting stops and every HTTP connection is shut down gracefully.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::sleep;
use tower::ServiceExt;
use tracing::{debug, warn};

use super::gate::{Gate, Ticket};
use super::session::ConnId;
use super::{AppState, Mode};

/// Largest request head (and read buffer) an HTTP connection may use.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Pause after an accept error (out of file descriptors, …) before accepting again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Accepts until the server stops running.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    router: Router,
    state: AppState,
    gate: Arc<Gate>,
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
        let task = serve(stream, ticket, router.clone(), state.clone());
        state.tasks.spawn(id, task);
    }
}

/// Resolves once the server stops running.
async fn stopping(mut mode: watch::Receiver<Mode>) {
    // Err means the sender is gone, which only happens when the server is dropped.
    let _ = mode.wait_for(|m| *m != Mode::Running).await;
}

/// Serves one connection's HTTP phase.
async fn serve(stream: TcpStream, ticket: Arc<Ticket>, router: Router, state: AppState) {
    let service = {
        let ticket = ticket.clone();
        service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ticket.clone());
            router.clone().oneshot(request)
        })
    };
    let mut builder = http1::Builder::new();
    builder
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
