//! The dev-only routes: `/dev/token` (with a chosen life, or already expired) and the fault routes
//! (issue 13 item 6) `/dev/drop`, `/dev/outage`, `/dev/expire`, which close a user's sockets or
//! refuse their new ones, only with `--dev`; without it every `/dev/*` is 404.
#![cfg(feature = "server")]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};
use sockline::protocol::{ClientFrame, ServerFrame};
use sockline::server::ServerConfig;
use support::*;

fn dev_config() -> ServerConfig {
    ServerConfig {
        dev: true,
        heartbeat: Duration::from_secs(10),
        ..ServerConfig::for_tests()
    }
}

async fn post(addr: SocketAddr, path: &str) -> (u16, Value) {
    http_post_raw(addr, path, None, "").await
}

/// Sends `auth` for `user` and returns the close code the socket ends with.
async fn refused_with(addr: SocketAddr, user: &str) -> u16 {
    let mut c = WsClient::connect(addr).await;
    c.send(&ClientFrame::Auth {
        v: 1,
        token: token(user),
        client: None,
        resume: None,
    })
    .await;
    match c.next(WAIT).await {
        Received::Close(code, _) => code,
        other => panic!("expected a close, got {other:?}"),
    }
}

#[tokio::test]
async fn drop_closes_every_socket_of_the_user_with_the_code_asked_for() {
    let server = start_server(dev_config()).await;
    let addr = server.local_addr();
    let (mut a1, _) = WsClient::authed(addr, "u1").await;
    let (mut a2, _) = WsClient::authed(addr, "u1").await;
    let (mut b, _) = WsClient::authed(addr, "u2").await;
    assert_eq!(
        post(addr, "/dev/drop?user=u1&code=4321").await,
        (200, json!({"closed": 2}))
    );
    a1.expect_close(4321).await;
    a2.expect_close(4321).await;
    b.send_event(1, "get_unread_count", json!({})).await;
    assert!(
        ack_parts(b.recv_ack(1).await).0,
        "another user is untouched"
    );
    assert_eq!(
        post(addr, "/dev/drop?user=nobody&code=1000").await,
        (200, json!({"closed": 0}))
    );
    for bad in [
        "/dev/drop?user=u2&code=1005",
        "/dev/drop?user=u2&code=1006",
        "/dev/drop?user=u2&code=1015",
        "/dev/drop?user=u2&code=999",
        "/dev/drop?user=u2&code=5000",
        "/dev/drop?user=u2&code=x",
        "/dev/drop?user=u2",
        "/dev/drop?code=1000",
    ] {
        assert_eq!(post(addr, bad).await.0, 400, "{bad}");
    }
    b.send_event(2, "get_unread_count", json!({})).await;
    assert!(
        ack_parts(b.recv_ack(2).await).0,
        "a refused drop closes nothing"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn an_outage_refuses_the_users_new_sockets_with_1013_until_it_ends() {
    let server = start_server(dev_config()).await;
    let addr = server.local_addr();
    let (mut live, _) = WsClient::authed(addr, "u1").await;
    assert_eq!(
        post(addr, "/dev/outage?user=u1&seconds=1").await,
        (200, json!({"user": "u1", "seconds": 1}))
    );
    assert_eq!(refused_with(addr, "u1").await, 1013);
    WsClient::authed(addr, "u2").await;
    live.send_event(1, "get_unread_count", json!({})).await;
    assert!(ack_parts(live.recv_ack(1).await).0, "live sockets stay");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    WsClient::authed(addr, "u1").await;
    // Lifted early with seconds=0; more than 120 s is refused.
    post(addr, "/dev/outage?user=u1&seconds=120").await;
    assert_eq!(refused_with(addr, "u1").await, 1013);
    post(addr, "/dev/outage?user=u1&seconds=0").await;
    WsClient::authed(addr, "u1").await;
    for bad in [
        "/dev/outage?user=u1&seconds=121",
        "/dev/outage?user=u1&seconds=-1",
        "/dev/outage?user=u1",
        "/dev/outage?seconds=5",
    ] {
        assert_eq!(post(addr, bad).await.0, 400, "{bad}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn expire_closes_the_users_sockets_with_4002_as_an_expired_token_would() {
    let server = start_server(dev_config()).await;
    let addr = server.local_addr();
    let (mut a, _) = WsClient::authed(addr, "u1").await;
    let (mut b, _) = WsClient::authed(addr, "u2").await;
    assert_eq!(
        post(addr, "/dev/expire?user=u1").await,
        (200, json!({"closed": 1}))
    );
    assert_eq!(a.expect_close(4002).await, "token expired");
    b.send_event(1, "get_unread_count", json!({})).await;
    assert!(ack_parts(b.recv_ack(1).await).0);
    let (_, health) = http_get(addr, "/health").await;
    assert_eq!(health["closed"]["token_expired"], 1);
    assert_eq!(post(addr, "/dev/expire").await.0, 400);
    server.shutdown().await;
}

#[tokio::test]
async fn dev_tokens_live_as_long_as_asked_or_are_already_expired() {
    let server = start_server(dev_config()).await;
    let addr = server.local_addr();
    let minted = |body: Value| body["token"].as_str().expect("a token").to_owned();
    let (status, body) = http_get(addr, "/dev/token?user=u1&ttl_s=5").await;
    assert_eq!(status, 200);
    let (_, authenticated) = WsClient::authed_as(addr, &minted(body), None, None).await;
    let ServerFrame::Authenticated { expires_in_ms, .. } = authenticated else {
        panic!("expected authenticated, got {authenticated:?}");
    };
    let life = expires_in_ms.expect("expires_in_ms");
    assert!(
        (3_000..=5_000).contains(&life),
        "a 5 s token has {life} ms left"
    );

    let (_, body) = http_get(addr, "/dev/token?user=u1&expired=1").await;
    let (refusal, code) = auth_and_expect_close(addr, &minted(body)).await;
    assert!(
        matches!(&refusal, ServerFrame::AuthError { code, .. } if code == "expired"),
        "{refusal:?}"
    );
    assert_eq!(code, 4001);
    for bad in ["0", "86401", "1.5", "x"] {
        let (status, _) = http_get(addr, &format!("/dev/token?user=u1&ttl_s={bad}")).await;
        assert_eq!(status, 400, "ttl_s={bad}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn without_dev_mode_every_dev_route_is_404_even_with_a_static_dir() {
    let dir = std::env::temp_dir().join(format!("sockline-dev-404-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), "<p>app</p>").unwrap();
    for static_dir in [None, Some(dir.clone())] {
        let config = ServerConfig {
            static_dir,
            ..ServerConfig::for_tests()
        };
        let server = start_server(config).await;
        let addr = server.local_addr();
        let (mut a, _) = WsClient::authed(addr, "u1").await;
        for path in [
            "/dev/drop?user=u1&code=4000",
            "/dev/outage?user=u1&seconds=5",
            "/dev/expire?user=u1",
        ] {
            assert_eq!(post(addr, path).await.0, 404, "{path}");
        }
        assert_eq!(http_get(addr, "/dev/token?user=u1").await.0, 404);
        a.send_event(1, "get_unread_count", json!({})).await;
        assert!(ack_parts(a.recv_ack(1).await).0, "nothing was closed");
        WsClient::authed(addr, "u1").await;
        server.shutdown().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}
