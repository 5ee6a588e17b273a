//! The WebSocket upgrade of `GET /ws` (RFC 6455 §4.2): checks the handshake headers, answers
//! `101`, and spawns the socket task on the upgraded connection with bounded buffers.
//!
//! Buffers per socket: a 512-byte read buffer to start with, no write batching, and at most
//! `max_frame_bytes × 2 + 64 KiB` of unsent output in tungstenite (a peer that does not read
//! cannot grow it further; its pongs are not stacked up either).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;
use tracing::debug;

use super::connection::{self, ConnContext};
use super::gate::Ticket;
use super::session::ConnId;
use super::AppState;

/// The read buffer a socket starts with (it grows for larger frames): an idle socket holds it
/// for its whole life, and the frames clients send are small.
const READ_BUFFER: usize = 512;

/// Whether a comma-separated header has `token` (case-insensitive).
fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

/// Why a request is not a WebSocket handshake.
fn check_handshake(request: &Request<Body>) -> Result<HeaderValue, &'static str> {
    let headers = request.headers();
    if request.method() != Method::GET {
        return Err("a WebSocket handshake uses GET");
    }
    if !header_has_token(headers, header::CONNECTION, "upgrade")
        || !header_has_token(headers, header::UPGRADE, "websocket")
    {
        return Err("this route only speaks WebSocket (Connection: upgrade, Upgrade: websocket)");
    }
    if !headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v.as_bytes() == b"13")
    {
        return Err("Sec-WebSocket-Version must be 13");
    }
    headers
        .get(header::SEC_WEBSOCKET_KEY)
        .cloned()
        .ok_or("Sec-WebSocket-Key is missing")
}

/// The socket configuration: tungstenite's own frame cap sits above `max_frame_bytes` so the
/// socket loop can close an oversize frame with 1009 itself.
fn socket_config(max_frame_bytes: usize) -> WebSocketConfig {
    let hard_cap = max_frame_bytes.saturating_mul(2).max(16 * 1024);
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_write_buffer_size(hard_cap + 64 * 1024)
        .max_message_size(Some(hard_cap))
        .max_frame_size(Some(hard_cap))
}

/// Answers the handshake and starts the socket task, or refuses with a status.
pub(crate) fn upgrade(
    state: &AppState,
    mut request: Request<Body>,
) -> Result<Response, (StatusCode, &'static str, &'static str)> {
    let key = check_handshake(&request)
        .map_err(|why| (StatusCode::UPGRADE_REQUIRED, "not_websocket", why))?;
    let ticket = request.extensions_mut().remove::<Arc<Ticket>>().ok_or((
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "no connection ticket",
    ))?;
    let on_upgrade = request.extensions_mut().remove::<OnUpgrade>().ok_or((
        StatusCode::BAD_REQUEST,
        "not_upgradable",
        "this connection cannot be upgraded",
    ))?;
    let id = ConnId(state.next_conn.fetch_add(1, Ordering::Relaxed));
    let config = socket_config(state.config.max_frame_bytes);
    let ctx = ConnContext {
        id,
        ticket,
        hub: state.hub.clone(),
        config: state.config.clone(),
        mode: state.mode.clone(),
    };
    state.tasks.spawn(id, async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(config),
                )
                .await;
                connection::run(Box::new(ws), ctx).await;
            }
            Err(e) => debug!(conn = %id, error = %e, "the upgrade did not complete"),
        }
    });
    let accept = derive_accept_key(key.as_bytes());
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    Ok(response)
}
