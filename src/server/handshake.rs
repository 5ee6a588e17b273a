//! A socket's `auth` phase (PROTOCOL.md §2, §3, §7): waiting for the first frame, reading it
//! (version, client id, resume point), verifying the token and attaching the session, and what a
//! refused socket is told before it is closed.
//!
//! Close codes this module sends: 4000 (`auth_error {timeout}`: no `auth` in time), 4001 (a first
//! frame other than a valid `auth`; or after `auth_error {invalid_token | expired |
//! unsupported_version | invalid_client}`), 4008 (too many sockets for the user), 1008 (more
//! than 8 frames before `auth`), 1009 / 1007 (a frame too big / not UTF-8), 1001 (shutting down),
//! 1013 (dev mode: the user is in a `/dev/outage`).

use serde::Deserialize;
use tokio::time::{sleep, Instant};
use tokio_tungstenite::tungstenite::Message;
use tracing::{debug, info, warn};

use futures::StreamExt;

use super::auth::{self, Verified};
use super::connection::{close, on_receive_error, send_text, ConnContext, Flow, Socket};
use super::hub::Attached;
use super::logsafe::Clean;
use super::Mode;
use crate::protocol::{
    is_client_id, ClientFrame, CloseCode, ResumePoint, ServerFrame, MAX_WIRE_ID, PROTOCOL_VERSION,
};

/// Frames a socket may send before its `auth` frame (pings included).
const PRE_AUTH_FRAMES: u32 = 8;

/// An authenticated socket, attached to its session.
pub(crate) struct Admitted {
    pub(crate) attached: Attached,
    pub(crate) token: Verified,
}

/// What the `auth` frame asks for.
#[derive(Debug, PartialEq)]
struct AuthRequest {
    token: String,
    client: Option<String>,
    resume: Option<ResumePoint>,
}

/// Why an `auth` frame is refused.
#[derive(Debug, PartialEq)]
enum Refused {
    /// Not a readable `auth` frame: closed with 4001 and this reason, nothing before it.
    Frame(&'static str),
    /// Readable but refused: `auth_error {code, message}`, then 4001.
    Auth(&'static str, &'static str),
}

/// The members read before anything else, so a client speaking another version is told so even
/// when the rest of its frame has another shape.
#[derive(Deserialize)]
struct Head {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    v: Option<u64>,
}

/// Reads the first frame: an `auth` this server speaks, with a well-formed client id.
fn read_auth(text: &str) -> Result<AuthRequest, Refused> {
    const INVALID: Refused = Refused::Frame("the first frame must be a valid auth frame");
    let head: Head = serde_json::from_str(text).map_err(|_| INVALID)?;
    if head.kind != "auth" {
        return Err(Refused::Frame("the first frame must be auth"));
    }
    if head.v.is_some_and(|v| v != u64::from(PROTOCOL_VERSION)) {
        return Err(Refused::Auth(
            "unsupported_version",
            "this server speaks protocol version 1",
        ));
    }
    let Ok(ClientFrame::Auth {
        token,
        client,
        resume,
        ..
    }) = serde_json::from_str(text)
    else {
        return Err(INVALID);
    };
    if client.as_deref().is_some_and(|c| !is_client_id(c)) {
        return Err(Refused::Auth(
            "invalid_client",
            "a client id is 16-64 characters of [A-Za-z0-9_-]",
        ));
    }
    if resume.as_ref().is_some_and(|r| r.seq > MAX_WIRE_ID) {
        return Err(INVALID);
    }
    Ok(AuthRequest {
        token,
        client,
        resume,
    })
}

/// Tells the client why, then closes with 4001.
async fn reject(ws: &mut Socket, code: &str, message: &str) {
    let frame = ServerFrame::AuthError {
        code: code.to_owned(),
        message: message.to_owned(),
    };
    if send_text(ws, frame.encode()).await {
        close(ws, CloseCode::AUTH_REJECTED, message).await;
    }
}

/// Runs the `auth` phase; `None` when the socket was refused (and closed) or went away.
pub(crate) async fn admit(ws: &mut Socket, ctx: &mut ConnContext) -> Option<Admitted> {
    let peer = ctx.ticket.peer;
    debug!(conn = %ctx.id, peer = %peer, "socket opened");
    let request = await_auth(ws, ctx).await?;
    let token = match auth::verify(&ctx.config.jwt_secret, &request.token) {
        Ok(token) => token,
        Err(failure) => {
            warn!(conn = %ctx.id, peer = %peer, reason = failure.code(), "auth failed");
            reject(ws, failure.code(), failure.message()).await;
            return None;
        }
    };
    let user = token.user.as_str();
    if ctx.config.dev && ctx.hub.outages.refuses(user, Instant::now()) {
        debug!(conn = %ctx.id, peer = %peer, user = %Clean(user), "refused: /dev/outage");
        close(ws, CloseCode::TRY_AGAIN_LATER, "outage (/dev/outage)").await;
        return None;
    }
    let client = request.client.as_deref();
    let attached = match ctx
        .hub
        .attach(user, client, request.resume.as_ref(), Instant::now())
    {
        Ok(attached) => attached,
        Err(_) => {
            ctx.hub.stats.closed_too_many_per_user.bump();
            warn!(conn = %ctx.id, peer = %peer, user = %Clean(user), "too many sockets for this user");
            close(ws, CloseCode::TOO_MANY_CONNECTIONS, "too many connections").await;
            return None;
        }
    };
    ctx.ticket.authenticated();
    info!(
        conn = %ctx.id, peer = %peer, user = %Clean(user), session = %attached.session.id,
        resumed = attached.resumed, missed = attached.replay.len(), "authenticated"
    );
    Some(Admitted { attached, token })
}

/// Closes the socket as `flow` says; `None` always (the socket is done).
async fn end(ws: &mut Socket, flow: Flow) -> Option<AuthRequest> {
    if let Flow::Close(code, reason) = flow {
        close(ws, code, reason).await;
    }
    None
}

/// Waits for the first frame, which must be `auth`; closes the socket and returns `None` otherwise.
async fn await_auth(ws: &mut Socket, ctx: &mut ConnContext) -> Option<AuthRequest> {
    let deadline = sleep(ctx.config.auth_timeout);
    tokio::pin!(deadline);
    if *ctx.mode.borrow_and_update() != Mode::Running {
        return end(
            ws,
            Flow::Close(CloseCode::GOING_AWAY, "server shutting down"),
        )
        .await;
    }
    let mut frames = 0;
    loop {
        let msg = tokio::select! {
            _ = &mut deadline => {
                ctx.hub.stats.auth_timeouts.bump();
                debug!(conn = %ctx.id, peer = %ctx.ticket.peer, "no auth frame in time");
                let frame = ServerFrame::AuthError {
                    code: "timeout".to_owned(),
                    message: "no auth frame in time".to_owned(),
                };
                if send_text(ws, frame.encode()).await {
                    close(ws, CloseCode::AUTH_TIMEOUT, "auth timeout").await;
                }
                return None;
            }
            _ = ctx.mode.changed() => {
                return end(ws, Flow::Close(CloseCode::GOING_AWAY, "server shutting down")).await;
            }
            msg = ws.next() => msg,
        };
        let msg = match msg {
            None => return None,
            Some(Err(e)) => return end(ws, on_receive_error(e, ctx)).await,
            Some(Ok(msg)) => msg,
        };
        frames += 1;
        if frames > PRE_AUTH_FRAMES {
            ctx.hub.stats.closed_frame_budget.bump();
            return end(ws, Flow::Close(CloseCode::POLICY, "too many frames")).await;
        }
        let refused = match msg {
            Message::Text(text) => {
                if text.len() > ctx.config.max_frame_bytes {
                    ctx.hub.stats.closed_too_big.bump();
                    return end(ws, Flow::Close(CloseCode::TOO_BIG, "frame too big")).await;
                }
                match read_auth(text.as_str()) {
                    Ok(request) => return Some(request),
                    Err(refused) => refused,
                }
            }
            Message::Binary(_) => Refused::Frame("the first frame must be auth"),
            Message::Close(_) => return None,
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
        };
        debug!(conn = %ctx.id, peer = %ctx.ticket.peer, ?refused, "auth refused");
        match refused {
            Refused::Frame(reason) => {
                return end(ws, Flow::Close(CloseCode::AUTH_REJECTED, reason)).await
            }
            Refused::Auth(code, message) => {
                reject(ws, code, message).await;
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_auth_frame_is_read_version_first_then_client_id() {
        let ok = read_auth(r#"{"type":"auth","token":"t","client":"abcdefghijklmnop"}"#).unwrap();
        assert_eq!(ok.client.as_deref(), Some("abcdefghijklmnop"));
        assert!(read_auth(r#"{"type":"auth","v":1,"token":"t","resume":null}"#).is_ok());
        assert_eq!(
            read_auth(r#"{"type":"auth","v":2,"shape":"of version 2"}"#),
            Err(Refused::Auth(
                "unsupported_version",
                "this server speaks protocol version 1"
            ))
        );
        assert!(matches!(
            read_auth(r#"{"type":"auth","token":"t","client":"short"}"#),
            Err(Refused::Auth("invalid_client", _))
        ));
        for bad in [
            r#"{"type":"pong","t":1}"#,
            r#"{"type":"auth"}"#,
            "{nope",
            r#"{"type":"auth","token":"t","resume":{"session":"s","seq":9007199254740992}}"#,
        ] {
            assert!(matches!(read_auth(bad), Err(Refused::Frame(_))), "{bad}");
        }
    }
}
