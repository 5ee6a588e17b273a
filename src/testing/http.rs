//! The test kit's HTTP/1 client (hyper): one request per connection to the reference server's
//! JSON routes, with a deadline.

use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::time::timeout;

/// How long one request may take, connect to last body byte.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

/// Why a request to the test server failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The server could not be reached or the exchange broke off.
    #[error("HTTP request to {addr} failed: {message}")]
    Transport {
        /// Where the request went.
        addr: SocketAddr,
        /// What went wrong.
        message: String,
    },
    /// No complete response within 10 s.
    #[error("HTTP request to {addr} got no response within {REQUEST_DEADLINE:?}")]
    Timeout {
        /// Where the request went.
        addr: SocketAddr,
    },
    /// The data to send does not serialize as JSON.
    #[error("the data does not serialize as JSON: {0}")]
    BadData(String),
    /// The server answered with an unexpected status.
    #[error("HTTP {status} from {path}: {body}")]
    Status {
        /// The route.
        path: String,
        /// The status code.
        status: u16,
        /// The response body (JSON when the server sent JSON).
        body: Value,
    },
}

/// Sends one request and returns (status, JSON body; `Value::String` for a non-JSON body and
/// `Null` for an empty one).
pub(crate) async fn request(
    addr: SocketAddr,
    method: Method,
    path: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
) -> Result<(u16, Value), HttpError> {
    timeout(REQUEST_DEADLINE, exchange(addr, method, path, bearer, body))
        .await
        .map_err(|_| HttpError::Timeout { addr })?
        .map_err(|message| HttpError::Transport { addr, message })
}

async fn exchange(
    addr: SocketAddr,
    method: Method,
    path: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
) -> Result<(u16, Value), String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    // Drives the connection; it ends when the response is read and `sender` is dropped.
    tokio::spawn(connection);
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, addr.to_string());
    if let Some(bearer) = bearer {
        builder = builder.header(AUTHORIZATION, format!("Bearer {bearer}"));
    }
    let payload = match body {
        Some(body) => {
            builder = builder.header(CONTENT_TYPE, "application/json");
            Bytes::from(body.to_string())
        }
        None => Bytes::new(),
    };
    let request = builder
        .body(Full::new(payload))
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let raw = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let value = if raw.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&raw)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&raw).into_owned()))
    };
    Ok((status, value))
}
