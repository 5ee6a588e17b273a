//! A client's close frame is answered with a close frame (RFC 6455 §5.5.1) in every phase of a
//! socket: before `auth`, as the frame that breaks the pre-auth frame budget, and on a live
//! socket. Without the answer the client sees a reset (a browser: close 1006, `wasClean` false).
//! Found by the `server` fuzz target (`fuzz/regressions/server/close-*`).
#![cfg(feature = "server")]

mod support;

use sockline::server::ServerConfig;
use support::{start_server, WsClient};

#[tokio::test]
async fn a_close_before_auth_is_answered() {
    let server = start_server(ServerConfig::for_tests()).await;
    let mut client = WsClient::connect(server.local_addr()).await;
    client.send_close(1000).await;
    client.expect_close(1000).await;
}

#[tokio::test]
async fn a_close_that_breaks_the_pre_auth_budget_is_answered() {
    let server = start_server(ServerConfig::for_tests()).await;
    let mut client = WsClient::connect(server.local_addr()).await;
    // Eight frames are allowed before `auth`; the close is the ninth.
    for _ in 0..8 {
        client.send_ping().await;
    }
    client.send_close(1000).await;
    client.expect_close(1000).await;
}

#[tokio::test]
async fn a_close_on_a_live_socket_is_answered() {
    let server = start_server(ServerConfig::for_tests()).await;
    let (mut client, _) = WsClient::authed(server.local_addr(), "alice").await;
    client.send_close(1000).await;
    client.expect_close(1000).await;
}
