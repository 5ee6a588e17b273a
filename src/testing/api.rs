//! [`ServerApi`]: the reference server's HTTP routes (`/notify`, `/health`) as a backend calls
//! them, for a [`TestServer`](super::TestServer) or any running `sockline-server`.

use std::net::SocketAddr;

use hyper::Method;
use serde::Serialize;
use serde_json::{json, Value};

use super::http::{request, HttpError};

/// Calls a reference server's HTTP API at `addr` with the `/notify` bearer key.
///
/// [`TestServer`](super::TestServer) has the same methods; use this one for a server in another
/// process (a `sockline-server --dev` listens with the key `dev-key`).
#[derive(Debug, Clone)]
pub struct ServerApi {
    addr: SocketAddr,
    server_key: String,
}

impl ServerApi {
    /// The API of the server listening on `addr`, whose `/notify` key is `server_key`.
    pub fn new(addr: SocketAddr, server_key: impl Into<String>) -> ServerApi {
        ServerApi {
            addr,
            server_key: server_key.into(),
        }
    }

    /// Where requests go.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `POST /notify {"user", "event", "data"}`; returns how many live sockets it reached (the
    /// event is also buffered for the user's sessions to resume).
    pub async fn notify_user(
        &self,
        user: &str,
        event: &str,
        data: impl Serialize,
    ) -> Result<u64, HttpError> {
        self.notify(json!({ "user": user, "event": event, "data": to_value(data)? }))
            .await
    }

    /// `POST /notify {"room", "event", "data"}`; returns how many live sockets it reached.
    pub async fn notify_room(
        &self,
        room: &str,
        event: &str,
        data: impl Serialize,
    ) -> Result<u64, HttpError> {
        self.notify(json!({ "room": room, "event": event, "data": to_value(data)? }))
            .await
    }

    async fn notify(&self, body: Value) -> Result<u64, HttpError> {
        let path = "/notify";
        let key = Some(self.server_key.as_str());
        match request(self.addr, Method::POST, path, key, Some(&body)).await? {
            (202, reply) => Ok(reply["delivered"].as_u64().unwrap_or_default()),
            (status, body) => Err(HttpError::Status {
                path: path.to_owned(),
                status,
                body,
            }),
        }
    }

    /// `GET /health`: `{"status", "connections", "users", "rooms", "uptime_s", …}`.
    pub async fn health(&self) -> Result<Value, HttpError> {
        let path = "/health";
        match request(self.addr, Method::GET, path, None, None).await? {
            (200, body) => Ok(body),
            (status, body) => Err(HttpError::Status {
                path: path.to_owned(),
                status,
                body,
            }),
        }
    }
}

fn to_value(data: impl Serialize) -> Result<Value, HttpError> {
    serde_json::to_value(data).map_err(|e| HttpError::BadData(e.to_string()))
}
