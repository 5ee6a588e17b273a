//! The fault proxy the older tests name `Proxy`: a thin adapter over
//! [`sockline::testing::FaultProxy`], keeping their method names (`silence` = blackhole,
//! `reset_all` = cut).
#![allow(dead_code)]

#[cfg(not(feature = "testing"))]
compile_error!("tests that use support/proxy.rs need `--features testing` (it includes `server`)");

use std::net::SocketAddr;

use sockline::testing::FaultProxy;

/// A running proxy; dropping it stops accepting and resets every open connection.
pub struct Proxy(FaultProxy);

impl Proxy {
    /// Listens on 127.0.0.1:0 and forwards to `target`.
    pub async fn start(target: SocketAddr) -> Proxy {
        Proxy(FaultProxy::start(target).await.expect("proxy binds"))
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.0.addr()
    }

    /// The proxy's WebSocket URL.
    pub fn ws_url(&self) -> String {
        self.0.ws_url()
    }

    /// Stops forwarding bytes in both directions; sockets stay open.
    pub fn silence(&self) {
        self.0.blackhole(true);
    }

    /// Forwards again.
    pub fn forward(&self) {
        self.0.blackhole(false);
    }

    /// Resets (RST) every open connection.
    pub fn reset_all(&self) {
        self.0.cut();
    }

    /// Refuses (RST at once) new connections while `refuse` is true.
    pub fn refuse(&self, refuse: bool) {
        self.0.refuse(refuse);
    }
}
