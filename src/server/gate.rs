//! Admission at accept time: the global connection cap and the per-IP cap on connections that have
//! not authenticated, and the [`Ticket`] each admitted connection carries until it closes.
//!
//! A refused connection gets a complete HTTP `503` before it is closed (PROTOCOL.md §8), with code
//! `server_full` over `max_connections` and `too_many_unauthenticated` over
//! `max_unauthed_per_ip` (IPv6 addresses count per /64). Both carry `Retry-After: 1`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::timeout;

use super::stats::Stats;

/// Refused connections that may linger (reading the request they sent) at once; past it a
/// refusal is written and the connection dropped at once.
const LINGERING_REFUSALS: usize = 64;
/// How long a refused connection may linger.
const LINGER: Duration = Duration::from_millis(500);

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `max_connections` are open.
    Full,
    /// The peer's address has `max_unauthed_per_ip` connections that have not authenticated.
    PerIp,
}

impl Refusal {
    fn response(self) -> &'static [u8] {
        match self {
            Refusal::Full => b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\nContent-Type: application/json\r\nContent-Length: 78\r\n\r\n{\"error\":{\"code\":\"server_full\",\"message\":\"too many connections; retry later\"}}",
            Refusal::PerIp => b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\nContent-Type: application/json\r\nContent-Length: 96\r\n\r\n{\"error\":{\"code\":\"too_many_unauthenticated\",\"message\":\"too many connections from this address\"}}",
        }
    }
}

/// The address a per-IP count is kept for: the IPv4 address, or the /64 of an IPv6 one.
fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

/// The admission counters.
#[derive(Debug)]
pub(crate) struct Gate {
    max_connections: usize,
    max_unauthed_per_ip: usize,
    unauthed: Mutex<HashMap<IpAddr, usize>>,
    lingering: Arc<Semaphore>,
    stats: Arc<Stats>,
}

impl Gate {
    pub(crate) fn new(
        max_connections: usize,
        max_unauthed_per_ip: usize,
        stats: Arc<Stats>,
    ) -> Self {
        Gate {
            max_connections,
            max_unauthed_per_ip,
            unauthed: Mutex::new(HashMap::new()),
            lingering: Arc::new(Semaphore::new(LINGERING_REFUSALS)),
            stats,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.unauthed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits a connection from `peer`, or says why not (and counts it).
    pub(crate) fn admit(self: &Arc<Self>, peer: SocketAddr) -> Result<Arc<Ticket>, Refusal> {
        if self.max_connections > 0 && self.stats.tcp_open.get() >= self.max_connections {
            self.stats.refused_max_connections.bump();
            return Err(Refusal::Full);
        }
        let ip = ip_key(peer.ip());
        {
            let mut unauthed = self.lock();
            let count = unauthed.entry(ip).or_insert(0);
            if self.max_unauthed_per_ip > 0 && *count >= self.max_unauthed_per_ip {
                self.stats.refused_per_ip.bump();
                return Err(Refusal::PerIp);
            }
            *count += 1;
        }
        self.stats.tcp_open.add(1);
        self.stats.unauthenticated.add(1);
        Ok(Arc::new(Ticket {
            gate: self.clone(),
            ip,
            peer,
            unauthed: AtomicBool::new(true),
        }))
    }

    fn release_unauthed(&self, ip: IpAddr) {
        let mut unauthed = self.lock();
        if let Some(count) = unauthed.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                unauthed.remove(&ip);
            }
        }
        self.stats.unauthenticated.sub(1);
    }

    /// Answers a refused connection and closes it: lingering briefly to read what it sent (so the
    /// close is not a reset that loses the answer) while few refusals are lingering, at once
    /// otherwise.
    pub(crate) fn refuse(&self, stream: TcpStream, refusal: Refusal) {
        let response = refusal.response();
        match self.lingering.clone().try_acquire_owned() {
            Ok(permit) => {
                tokio::spawn(async move {
                    let mut stream = stream;
                    let _ = timeout(LINGER, async {
                        stream.write_all(response).await?;
                        stream.shutdown().await?;
                        let mut sink = [0u8; 1024];
                        while stream.read(&mut sink).await? > 0 {}
                        Ok::<(), std::io::Error>(())
                    })
                    .await;
                    drop(permit);
                });
            }
            Err(_) => {
                let mut sink = [0u8; 1024];
                while matches!(stream.try_read(&mut sink), Ok(n) if n > 0) {}
                let _ = stream.try_write(response);
            }
        }
    }
}

/// An admitted connection's place in the counts, held by whoever holds the connection (the HTTP
/// task, then the socket task) and given back on drop.
#[derive(Debug)]
pub(crate) struct Ticket {
    gate: Arc<Gate>,
    ip: IpAddr,
    pub(crate) peer: SocketAddr,
    unauthed: AtomicBool,
}

impl Ticket {
    /// The connection authenticated: it no longer counts against its IP's unauthenticated cap.
    pub(crate) fn authenticated(&self) {
        if self.unauthed.swap(false, Ordering::AcqRel) {
            self.gate.release_unauthed(self.ip);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.authenticated();
        self.gate.stats.tcp_open.sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ip_key(a), ip_key(b));
        assert_ne!(ip_key(a), ip_key(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(ip_key(mapped), "10.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn the_caps_refuse_and_tickets_give_their_place_back() {
        let stats = Arc::new(Stats::default());
        let gate = Arc::new(Gate::new(3, 2, stats.clone()));
        let peer: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let other: SocketAddr = "10.0.0.2:1".parse().unwrap();
        let a = gate.admit(peer).unwrap();
        let _b = gate.admit(peer).unwrap();
        assert_eq!(gate.admit(peer).unwrap_err(), Refusal::PerIp);
        a.authenticated();
        let _c = gate.admit(peer).unwrap();
        assert_eq!(gate.admit(other).unwrap_err(), Refusal::Full);
        drop(a);
        let _d = gate.admit(other).unwrap();
        assert_eq!(stats.tcp_open.get(), 3);
        assert_eq!(stats.unauthenticated.get(), 3);
        assert_eq!(
            (
                stats.refused_per_ip.get(),
                stats.refused_max_connections.get()
            ),
            (1, 1)
        );
        for refusal in [Refusal::Full, Refusal::PerIp] {
            let text = std::str::from_utf8(refusal.response()).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            assert!(
                head.contains(&format!("Content-Length: {}", body.len())),
                "{head}"
            );
            assert!(serde_json::from_str::<serde_json::Value>(body).is_ok());
        }
    }
}
