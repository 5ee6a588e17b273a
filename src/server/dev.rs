//! The dev-only routes (`--dev`): tokens for the demo, and faults made real for a user so the
//! demo can show a cut, an outage and an expired token happening (PROTOCOL.md §9 codes).
//!
//! | route | what it does | answer |
//! |---|---|---|
//! | `GET /dev/token?user=U[&ttl_s=N][&expired=1]` | a token for `U` that lives `N` seconds (1–86,400; default an hour), or one that has already expired (to try refresh and expiry) | `{"token"}` |
//! | `POST /dev/drop?user=U&code=C` | closes every live socket of `U` with close code `C` (1000–4999 but 1004–1006 and 1015, which are never sent on the wire) | `{"closed": N}` |
//! | `POST /dev/outage?user=U&seconds=S` | for `S` seconds (0–120; 0 ends an outage) `U`'s new sockets are closed with 1013 (`try again later`) right after their `auth`; live sockets are left alone | `{"user", "seconds"}` |
//! | `POST /dev/expire?user=U` | closes every live socket of `U` with 4002 (`token expired`), as if its token had run out | `{"closed": N}` |
//!
//! Without `--dev` every `/dev/*` path answers 404, whatever else is served.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio::time::Instant;
use tracing::info;

use super::clock::now_ms;
use super::hub::Hub;
use super::logsafe::Clean;
use super::outbox::{Kill, TOKEN_EXPIRED};
use super::{auth, http::error_response, AppState};
use crate::protocol::CloseCode;

/// Lifetime of tokens from `/dev/token`.
const DEV_TOKEN_TTL: Duration = Duration::from_secs(3600);
/// The longest `ttl_s` `/dev/token` takes.
const MAX_DEV_TOKEN_TTL_S: u64 = 86_400;
const BAD_TTL: &str = "`ttl_s` must be a whole number of seconds from 1 to 86400";
/// The longest outage `/dev/outage` starts.
pub(crate) const MAX_OUTAGE: Duration = Duration::from_secs(120);
/// Users in an outage at once (the oldest-ending go first past it).
const MAX_OUTAGES: usize = 1_024;

/// Closes the sockets `/dev/drop` names.
const DROPPED: &str = "dropped by /dev/drop";

/// Users whose new sockets are refused until a deadline.
#[derive(Debug, Default)]
pub(crate) struct Outages {
    until: Mutex<HashMap<Box<str>, Instant>>,
}

impl Outages {
    fn lock(&self) -> MutexGuard<'_, HashMap<Box<str>, Instant>> {
        self.until.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Refuses `user`'s new sockets for `length` from `now` (zero: lifts the outage).
    fn start(&self, user: &str, now: Instant, length: Duration) {
        let mut until = self.lock();
        until.retain(|_, end| *end > now);
        if length.is_zero() {
            until.remove(user);
            return;
        }
        if until.len() >= MAX_OUTAGES && !until.contains_key(user) {
            let first = until
                .iter()
                .min_by_key(|(_, end)| **end)
                .map(|(u, _)| u.clone());
            if let Some(first) = first {
                until.remove(&first);
            }
        }
        until.insert(user.into(), now + length);
    }

    /// Whether `user`'s new sockets are refused at `now`.
    pub(crate) fn refuses(&self, user: &str, now: Instant) -> bool {
        self.lock().get(user).is_some_and(|end| *end > now)
    }
}

/// The `/dev/*` routes: the real ones with `--dev`, else 404 for every path under it.
pub(crate) fn routes(dev: bool) -> Router<AppState> {
    if !dev {
        return Router::new().route("/dev/{*rest}", any(not_found));
    }
    Router::new()
        .route("/dev/token", get(token))
        .route("/dev/drop", post(drop_user))
        .route("/dev/outage", post(outage))
        .route("/dev/expire", post(expire))
}

async fn not_found() -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "not_found",
        "the /dev routes need --dev",
    )
}

type Params = Query<HashMap<String, String>>;

/// The non-empty `user` parameter.
fn user_of(query: &HashMap<String, String>) -> Option<&str> {
    query
        .get("user")
        .map(String::as_str)
        .filter(|u| !u.is_empty())
}

const NO_USER: &str = "`user` is required";

fn bad_request(message: &str) -> Response {
    error_response(StatusCode::BAD_REQUEST, "bad_request", message)
}

async fn token(State(state): State<AppState>, Query(query): Params) -> Response {
    let Some(user) = user_of(&query) else {
        return bad_request(NO_USER);
    };
    let secret = &state.config.jwt_secret;
    let token = if query.get("expired").is_some_and(|v| v == "1") {
        auth::mint_token_expiring_at(secret, user, now_ms() / 1000 - 1)
    } else {
        match query.get("ttl_s").map(|v| v.parse::<u64>()) {
            None => auth::mint_token(secret, user, DEV_TOKEN_TTL),
            Some(Ok(ttl @ 1..=MAX_DEV_TOKEN_TTL_S)) => {
                auth::mint_token(secret, user, Duration::from_secs(ttl))
            }
            Some(_) => return bad_request(BAD_TTL),
        }
    };
    Json(json!({ "token": token })).into_response()
}

/// A close code an endpoint may send: 1000–4999 but the ones reserved for local use.
fn sendable(code: u16) -> bool {
    (1000..=4999).contains(&code) && !matches!(code, 1004..=1006 | 1015)
}

async fn drop_user(State(state): State<AppState>, Query(query): Params) -> Response {
    let Some(user) = user_of(&query) else {
        return bad_request(NO_USER);
    };
    let code = match query.get("code").map(|c| c.parse::<u16>()) {
        Some(Ok(code)) if sendable(code) => code,
        _ => {
            return bad_request("`code` must be a close code in 1000-4999 (not 1004-1006 or 1015)")
        }
    };
    let kill = Kill {
        code: CloseCode(code),
        reason: DROPPED,
    };
    let closed = close_all(&state.hub, user, kill);
    info!(user = %Clean(user), code, closed, "/dev/drop");
    Json(json!({ "closed": closed })).into_response()
}

async fn outage(State(state): State<AppState>, Query(query): Params) -> Response {
    let Some(user) = user_of(&query) else {
        return bad_request(NO_USER);
    };
    let seconds = match query.get("seconds").map(|s| s.parse::<u64>()) {
        Some(Ok(s)) if s <= MAX_OUTAGE.as_secs() => s,
        _ => return bad_request("`seconds` must be a whole number from 0 to 120"),
    };
    state
        .hub
        .outages
        .start(user, Instant::now(), Duration::from_secs(seconds));
    info!(user = %Clean(user), seconds, "/dev/outage");
    Json(json!({ "user": user, "seconds": seconds })).into_response()
}

async fn expire(State(state): State<AppState>, Query(query): Params) -> Response {
    let Some(user) = user_of(&query) else {
        return bad_request(NO_USER);
    };
    let closed = close_all(&state.hub, user, TOKEN_EXPIRED);
    info!(user = %Clean(user), closed, "/dev/expire");
    Json(json!({ "closed": closed })).into_response()
}

/// Orders every live socket of `user` closed; returns how many.
fn close_all(hub: &Arc<Hub>, user: &str, kill: Kill) -> usize {
    let mut closed = 0;
    for session in hub.users.sessions_of(user) {
        let conn = session.lock().attached.clone();
        if let Some(conn) = conn.filter(|conn| conn.kill_order().is_none()) {
            conn.kill(kill);
            closed += 1;
        }
    }
    closed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes_reserved_for_local_use_are_not_sendable() {
        for ok in [1000, 1001, 1013, 3000, 4002, 4999] {
            assert!(sendable(ok), "{ok}");
        }
        for bad in [0, 999, 1004, 1005, 1006, 1015, 5000] {
            assert!(!sendable(bad), "{bad}");
        }
    }

    #[test]
    fn an_outage_ends_at_its_deadline_or_when_lifted() {
        let outages = Outages::default();
        let t0 = Instant::now();
        outages.start("u1", t0, Duration::from_secs(10));
        assert!(outages.refuses("u1", t0 + Duration::from_secs(9)));
        assert!(!outages.refuses("u1", t0 + Duration::from_secs(10)));
        assert!(!outages.refuses("u2", t0));
        outages.start("u1", t0, Duration::ZERO);
        assert!(!outages.refuses("u1", t0));
        for n in 0..MAX_OUTAGES + 10 {
            outages.start(&format!("u{n}"), t0, Duration::from_secs(60));
        }
        assert!(outages.lock().len() <= MAX_OUTAGES);
    }
}
