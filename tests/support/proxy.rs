//! A TCP proxy for fault injection: forwards loopback traffic to a target, and on command goes
//! silent (forwards nothing, keeps every socket open), resets every connection (RST), or refuses
//! new ones.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Forward,
    Silent,
}

struct State {
    target: Mutex<SocketAddr>,
    refuse: Mutex<bool>,
    mode: watch::Sender<Mode>,
    /// Bumped to reset every open connection.
    generation: watch::Sender<u64>,
}

/// A running proxy; dropping it stops accepting (open connections end with their peers).
pub struct Proxy {
    addr: SocketAddr,
    state: Arc<State>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.reset_all();
    }
}

impl Proxy {
    /// Listens on 127.0.0.1:0 and forwards to `target`.
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
        let addr = listener.local_addr().expect("proxy addr");
        let state = Arc::new(State {
            target: Mutex::new(target),
            refuse: Mutex::new(false),
            mode: watch::Sender::new(Mode::Forward),
            generation: watch::Sender::new(0),
        });
        let accept_state = state.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                // Linger 0: dropping the socket sends RST instead of FIN. (Deprecated because a
                // non-zero linger blocks on drop; a zero linger never does.)
                #[allow(deprecated)]
                let _ = client.set_linger(Some(Duration::ZERO));
                if *accept_state.refuse.lock().unwrap() {
                    drop(client);
                    continue;
                }
                tokio::spawn(relay(client, accept_state.clone()));
            }
        });
        Proxy {
            addr,
            state,
            accept,
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The proxy's WebSocket URL.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// Stops forwarding bytes in both directions; sockets stay open.
    pub fn silence(&self) {
        self.state.mode.send_replace(Mode::Silent);
    }

    /// Forwards again.
    pub fn forward(&self) {
        self.state.mode.send_replace(Mode::Forward);
    }

    /// Resets (RST) every open connection.
    pub fn reset_all(&self) {
        self.state.generation.send_modify(|g| *g += 1);
    }

    /// Refuses (RST at once) new connections while `refuse` is true.
    pub fn refuse(&self, refuse: bool) {
        *self.state.refuse.lock().unwrap() = refuse;
    }
}

async fn relay(client: TcpStream, state: Arc<State>) {
    let target = *state.target.lock().unwrap();
    let Ok(upstream) = TcpStream::connect(target).await else {
        return;
    };
    #[allow(deprecated)]
    let _ = upstream.set_linger(Some(Duration::ZERO));
    let mut generation = state.generation.subscribe();
    generation.mark_unchanged();
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    tokio::select! {
        _ = pump(client_read, upstream_write, state.mode.subscribe()) => {}
        _ = pump(upstream_read, client_write, state.mode.subscribe()) => {}
        _ = generation.changed() => {}
    }
    // Everything drops here: with linger 0, both sides see a reset.
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        // While silent, read nothing and write nothing: the peer's bytes wait in the kernel.
        if mode.wait_for(|m| *m == Mode::Forward).await.is_err() {
            return;
        }
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = mode.wait_for(|m| *m == Mode::Silent) => continue,
        };
        if mode.wait_for(|m| *m == Mode::Forward).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
