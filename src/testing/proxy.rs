//! [`FaultProxy`]: a loopback TCP proxy whose faults are switched on and off at run time.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::link;

/// The faults a [`FaultProxy`] applies, all off by default. Read them with
/// [`FaultProxy::faults`]; set them one by one with the proxy's commands or all at once with
/// [`FaultProxy::set_faults`]. Every change applies at once to the links already open and to the
/// ones opened later.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Faults {
    /// New connections are reset as soon as they are accepted.
    pub refuse: bool,
    /// Nothing is forwarded in either direction; sockets stay open.
    pub blackhole: bool,
    /// Added to every byte's trip, in each direction.
    pub latency: Duration,
    /// Bytes are forwarded in writes of at most this many bytes, a millisecond apart.
    pub slice: Option<usize>,
    /// Each direction of each link forwards at most this many bytes per second.
    pub bandwidth: Option<u64>,
}

impl Faults {
    /// No fault: the proxy forwards bytes as they come.
    pub fn none() -> Self {
        Faults::default()
    }
}

/// Counters of a [`FaultProxy`] since it started, from [`FaultProxy::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProxyStats {
    /// Connections accepted and forwarded.
    pub links_opened: u64,
    /// Links open now.
    pub links_open: u64,
    /// Connections reset at once because [`Faults::refuse`] was on.
    pub refused: u64,
    /// Links reset by [`FaultProxy::cut`] (or by dropping the proxy).
    pub links_cut: u64,
    /// Bytes forwarded from clients to the target.
    pub bytes_up: u64,
    /// Bytes forwarded from the target to clients.
    pub bytes_down: u64,
    /// Writes towards the target (one per slice when slicing).
    pub writes_up: u64,
    /// Writes towards clients (one per slice when slicing).
    pub writes_down: u64,
}

/// The proxy's live counters, shared with every link.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) links_opened: AtomicU64,
    pub(crate) links_open: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) links_cut: AtomicU64,
    pub(crate) bytes: [AtomicU64; 2],
    pub(crate) writes: [AtomicU64; 2],
}

impl Counters {
    fn snapshot(&self) -> ProxyStats {
        let get = |n: &AtomicU64| n.load(Ordering::Relaxed);
        ProxyStats {
            links_opened: get(&self.links_opened),
            links_open: get(&self.links_open),
            refused: get(&self.refused),
            links_cut: get(&self.links_cut),
            bytes_up: get(&self.bytes[0]),
            bytes_down: get(&self.bytes[1]),
            writes_up: get(&self.writes[0]),
            writes_down: get(&self.writes[1]),
        }
    }
}

/// A TCP proxy on `127.0.0.1` in front of `target`, with faults switched at run time.
///
/// Point the client at [`ws_url`](Self::ws_url) (or [`addr`](Self::addr)) instead of the
/// server. Each accepted connection is a *link*: the proxy opens its own connection to the
/// target and copies bytes both ways. What each fault looks like to a client:
///
/// | command | the client sees |
/// |---|---|
/// | [`cut`](Self::cut) | every open link reset (TCP RST on both sides, no close frame): a read error at once, as when a server process dies or a NAT drops the mapping |
/// | [`refuse(true)`](Self::refuse) | each new connection reset right after the TCP handshake, before the WebSocket upgrade: a failed connect, as when nothing listens |
/// | [`blackhole(true)`](Self::blackhole) | a silent partition: sockets stay open, nothing arrives either way (the server's pings included), a new connection's upgrade hangs. Only a heartbeat or connect timeout notices. Bytes are held, not dropped: lifting the blackhole delivers them, as TCP retransmission would |
/// | [`latency(d)`](Self::latency) | every byte arrives `d` later, in each direction (a round trip grows by `2·d`); throughput is not reduced |
/// | [`slice(Some(n))`](Self::slice) | bytes arrive in writes of at most `n` bytes, 1 ms apart: WebSocket frames split across many TCP reads, and must still be reassembled whole |
/// | [`bandwidth(Some(b))`](Self::bandwidth) | each direction of each link carries at most `b` bytes per second: large frames take `size / b` seconds |
///
/// Faults combine (latency with slicing, say) and each is undone by its own command with the
/// opposite argument, or all at once by [`heal`](Self::heal); healing does not revive links
/// that were cut. A link buffers at most 1 MiB per direction; past that it stops reading, so
/// the sender's TCP window fills as on a slow network.
///
/// Dropping the proxy stops accepting and resets every open link.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use std::time::Duration;
/// use sockline::testing::FaultProxy;
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// // Any TCP service will do; here a one-shot echo server.
/// let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let target = echo.local_addr()?;
/// tokio::spawn(async move {
///     let (mut socket, _) = echo.accept().await?;
///     let mut buf = [0u8; 5];
///     socket.read_exact(&mut buf).await?;
///     socket.write_all(&buf).await
/// });
///
/// let proxy = FaultProxy::start(target).await?;
/// proxy.latency(Duration::from_millis(50));
/// let started = tokio::time::Instant::now();
/// let mut socket = tokio::net::TcpStream::connect(proxy.addr()).await?;
/// socket.write_all(b"hello").await?;
/// let mut back = [0u8; 5];
/// socket.read_exact(&mut back).await?;
/// assert_eq!(&back, b"hello");
/// assert!(started.elapsed() >= Duration::from_millis(100), "50 ms each way");
/// assert_eq!(proxy.stats().bytes_up, 5);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    target: SocketAddr,
    faults: watch::Sender<Faults>,
    /// Bumped by `cut`; every link watches it. Dropped with the proxy, which ends every link.
    cuts: watch::Sender<u64>,
    counters: Arc<Counters>,
    accept: JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

impl FaultProxy {
    /// Listens on `127.0.0.1` (an OS-chosen port) and forwards to `target`, with no fault on.
    /// Must be called within a tokio runtime.
    pub async fn start(target: SocketAddr) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let faults = watch::Sender::new(Faults::none());
        let cuts = watch::Sender::new(0);
        let counters = Arc::new(Counters::default());
        let accept = tokio::spawn(link::accept_loop(
            listener,
            target,
            faults.subscribe(),
            cuts.subscribe(),
            counters.clone(),
        ));
        Ok(FaultProxy {
            addr,
            target,
            faults,
            cuts,
            counters,
            accept,
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where the proxy forwards to.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// `ws://ADDR/ws`: the reference server's WebSocket route through the proxy.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// `http://ADDR`: the target's HTTP routes through the proxy.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The faults in force.
    pub fn faults(&self) -> Faults {
        self.faults.borrow().clone()
    }

    /// Replaces every fault at once.
    pub fn set_faults(&self, faults: Faults) {
        self.faults.send_replace(faults);
    }

    /// Turns every fault off. Links already cut stay cut.
    pub fn heal(&self) {
        self.set_faults(Faults::none());
    }

    /// Resets every open link (TCP RST to the client and to the target). New connections are
    /// accepted as before unless [`refuse`](Self::refuse) is on.
    pub fn cut(&self) {
        self.cuts.send_modify(|generation| *generation += 1);
    }

    /// While `on`, every new connection is reset as soon as it is accepted. Open links are kept
    /// (to drop them too, [`cut`](Self::cut) as well).
    pub fn refuse(&self, on: bool) {
        self.faults.send_modify(|f| f.refuse = on);
    }

    /// While `on`, nothing is forwarded either way and sockets stay open; bytes sent meanwhile
    /// are held and delivered once it is off.
    pub fn blackhole(&self, on: bool) {
        self.faults.send_modify(|f| f.blackhole = on);
    }

    /// Delays every byte by `latency` in each direction; `Duration::ZERO` removes the delay.
    /// Bytes already on their way keep the delay they were read with.
    pub fn latency(&self, latency: Duration) {
        self.faults.send_modify(|f| f.latency = latency);
    }

    /// Forwards in writes of at most `bytes` bytes (at least 1), a millisecond apart; `None`
    /// forwards whatever was read in one write.
    pub fn slice(&self, bytes: Option<usize>) {
        self.faults
            .send_modify(|f| f.slice = bytes.map(|n| n.max(1)));
    }

    /// Caps each direction of each link at `bytes_per_second` (at least 1); `None` removes the cap.
    pub fn bandwidth(&self, bytes_per_second: Option<u64>) {
        self.faults
            .send_modify(|f| f.bandwidth = bytes_per_second.map(|b| b.max(1)));
    }

    /// The counters since the proxy started.
    pub fn stats(&self) -> ProxyStats {
        self.counters.snapshot()
    }
}
