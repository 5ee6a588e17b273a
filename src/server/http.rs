//! The HTTP face: routes `/ws`, `/health`, `/notify`, the `/dev/*` routes (`dev`) and the
//! static files.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::time::Instant;
use tower_http::services::{ServeDir, ServeFile};
use tracing::{info, warn};

use super::gate::Ticket;
use super::logsafe::Clean;
use super::upgrade;
use super::{dev, AppState, Mode};

/// Builds the router for a server.
pub(crate) fn router(state: AppState) -> Router {
    let mut router = Router::new()
        .route("/ws", get(ws_upgrade))
        .route("/health", get(health))
        .route(
            "/notify",
            post(notify).layer(DefaultBodyLimit::max(state.config.max_frame_bytes)),
        );
    router = router.merge(dev::routes(state.config.dev));
    if let Some(dir) = &state.config.static_dir {
        let index = ServeFile::new(dir.join("index.html"));
        router = router.fallback_service(ServeDir::new(dir).fallback(index));
    }
    router.with_state(state)
}

/// `{"error":{"code":…,"message":…}}` with a status.
pub(crate) fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({ "error": { "code": code, "message": message } });
    (status, Json(body)).into_response()
}

/// Whether a request's `Origin` may open a socket: any when the allow-list is empty, and
/// requests without `Origin` (native clients) always.
fn origin_allowed(allowed: &[String], headers: &HeaderMap) -> bool {
    match headers.get(header::ORIGIN) {
        None => true,
        Some(origin) => {
            allowed.is_empty()
                || origin
                    .to_str()
                    .is_ok_and(|o| allowed.iter().any(|a| a.eq_ignore_ascii_case(o)))
        }
    }
}

async fn ws_upgrade(State(state): State<AppState>, request: Request<Body>) -> Response {
    let peer = request
        .extensions()
        .get::<Arc<Ticket>>()
        .map(|ticket| ticket.peer.to_string())
        .unwrap_or_default();
    if !origin_allowed(&state.config.allowed_origins, request.headers()) {
        let origin = request
            .headers()
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok())
            .unwrap_or("");
        warn!(peer = %peer, origin = %Clean(origin), "WebSocket upgrade refused: origin not allowed");
        return error_response(
            StatusCode::FORBIDDEN,
            "forbidden_origin",
            "origin not allowed",
        );
    }
    if *state.mode.borrow() != Mode::Running {
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "server shutting down",
        );
    }
    match upgrade::upgrade(&state, request) {
        Ok(response) => response,
        Err((status, code, message)) => error_response(status, code, message),
    }
}

pub(crate) async fn health(State(state): State<AppState>) -> Json<Value> {
    let mut body = state.hub.stats.snapshot(
        state.config.replay_budget_bytes,
        state.config.unread_budget_bytes,
        state.config.dedupe_budget_bytes,
        // Not the current runtime's: the accept thread and the probe listener answer on theirs.
        state.tasks.alive_on_runtime(),
    );
    if let Value::Object(fields) = &mut body {
        fields.insert("status".to_owned(), json!("ok"));
        let node = match state.hub.cluster() {
            Some(cluster) => cluster.health(),
            None => json!({ "broker": "memory" }),
        };
        fields.insert("node".to_owned(), node);
        fields.insert(
            "uptime_s".to_owned(),
            json!(state.started.elapsed().as_secs()),
        );
    }
    Json(body)
}

/// Compares without an early exit, so the key cannot be guessed byte by byte from timings.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Where a `/notify` goes.
enum Target {
    User(String),
    Room(String),
}

fn parse_notify(body: &[u8]) -> Result<(Target, String, Value), String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Object(mut obj) = value else {
        return Err("the body must be a JSON object".to_owned());
    };
    let text = |v: Option<Value>, key: &str| match v {
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s)),
        Some(_) => Err(format!("`{key}` must be a non-empty string")),
        None => Ok(None),
    };
    let user = text(obj.remove("user"), "user")?;
    let room = text(obj.remove("room"), "room")?;
    let target = match (user, room) {
        (Some(user), None) => Target::User(user),
        (None, Some(room)) => Target::Room(room),
        _ => return Err("exactly one of `user` and `room` is required".to_owned()),
    };
    let event = text(obj.remove("event"), "event")?.ok_or("`event` is required")?;
    let data = obj.remove("data").unwrap_or(Value::Null);
    Ok((target, event, data))
}

async fn notify(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let authorized = presented
        .is_some_and(|key| constant_time_eq(key.as_bytes(), state.config.server_key.as_bytes()));
    if !authorized {
        warn!("/notify refused: missing or wrong server key");
        return error_response(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong server key",
        );
    }
    let (target, event, data) = match parse_notify(&body) {
        Ok(parsed) => parsed,
        Err(message) => return error_response(StatusCode::BAD_REQUEST, "bad_request", &message),
    };
    let now = Instant::now();
    let hub = &state.hub;
    if !hub.event_fits(&event, &data) {
        return error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            "the event would not fit in a frame clients accept",
        );
    }
    let delivered = match &target {
        Target::User(user) => hub.notify(user, &event, &data, now).await,
        Target::Room(room) => hub.notify_room(room, &event, &data, now, None).await,
    };
    let Ok(delivered) = delivered else {
        warn!("/notify refused: the cluster's broker is unreachable");
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "broker_unavailable",
            "Redis did not confirm the event (unreachable: not delivered; too slow to answer: \
             it may have been delivered, and a retry can deliver it twice); retry later",
        );
    };
    match &target {
        Target::User(user) => {
            info!(user = %Clean(user), event = %Clean(&event), delivered, "notify")
        }
        Target::Room(room) => {
            info!(room = %Clean(room), event = %Clean(&event), delivered, "notify")
        }
    }
    (
        StatusCode::ACCEPTED,
        Json(json!({ "delivered": delivered })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_bodies_need_exactly_one_target_and_an_event() {
        assert!(parse_notify(br#"{"user":"u1","event":"e","data":{}}"#).is_ok());
        assert!(parse_notify(br#"{"room":"chat:7","event":"e"}"#).is_ok());
        for bad in [
            &br#"{"user":"u1","room":"chat:7","event":"e"}"#[..],
            br#"{"event":"e"}"#,
            br#"{"user":"u1"}"#,
            br#"{"user":"u1","event":""}"#,
            br#"{"user":1,"event":"e"}"#,
            br#"[]"#,
            b"nope",
        ] {
            assert!(
                parse_notify(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn origins() {
        let mut headers = HeaderMap::new();
        assert!(origin_allowed(&["https://a".into()], &headers));
        headers.insert(header::ORIGIN, "https://b".parse().unwrap());
        assert!(origin_allowed(&[], &headers));
        assert!(!origin_allowed(&["https://a".into()], &headers));
        assert!(origin_allowed(&["https://b".into()], &headers));
    }
}
