//! The relay behind [`FaultProxy`](super::FaultProxy): the accept loop, one task per link, and
//! the per-direction reader → writer pipeline where the faults are applied.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep, sleep_until, Instant};

use super::proxy::{Counters, Faults};

/// Largest read; with [`QUEUE_CHUNKS`] it bounds what one direction buffers (1 MiB).
const CHUNK_BYTES: usize = 16 * 1024;
/// Chunks read but not yet written, per direction.
const QUEUE_CHUNKS: usize = 64;
/// The pause between two slices of a sliced write.
pub(crate) const SLICE_GAP: Duration = Duration::from_millis(1);
/// Bandwidth pacing granularity: one write carries at most this fraction of a second's bytes.
const PACING_STEPS_PER_SECOND: u64 = 50;

/// Which way bytes flow; indexes the counters.
#[derive(Debug, Clone, Copy)]
enum Direction {
    /// Client → target.
    Up = 0,
    /// Target → client.
    Down = 1,
}

/// What the reader hands the writer.
enum Chunk {
    /// Bytes read at this instant.
    Data(Instant, Vec<u8>),
    /// The sender closed its side (FIN): pass the FIN on once the data before it is written.
    Eof,
}

/// Accepts connections until the task is aborted; each becomes a link (or is reset at once
/// while refusing).
pub(crate) async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    faults: watch::Receiver<Faults>,
    cuts: watch::Receiver<u64>,
    counters: Arc<Counters>,
) {
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            // Out of fds or a connection that died in the backlog: keep accepting.
            Err(_) => {
                sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if faults.borrow().refuse {
            counters.refused.fetch_add(1, Ordering::Relaxed);
            reset(client);
            continue;
        }
        counters.links_opened.fetch_add(1, Ordering::Relaxed);
        counters.links_open.fetch_add(1, Ordering::Relaxed);
        let mut cuts = cuts.clone();
        cuts.mark_unchanged();
        tokio::spawn(run_link(
            client,
            target,
            faults.clone(),
            cuts,
            counters.clone(),
        ));
    }
}

/// Drops a socket with `SO_LINGER` 0, so the peer gets a RST instead of a FIN.
fn reset(socket: TcpStream) {
    // Deprecated because a non-zero linger blocks the thread on drop; a zero linger never does.
    #[allow(deprecated)]
    let _ = socket.set_linger(Some(Duration::ZERO));
    drop(socket);
}

async fn run_link(
    mut client: TcpStream,
    target: SocketAddr,
    faults: watch::Receiver<Faults>,
    mut cuts: watch::Receiver<u64>,
    counters: Arc<Counters>,
) {
    let _ = client.set_nodelay(true);
    let connect = async {
        // Held while blackholed: the SYN of a real partition would not get through either.
        wait_until_open(&mut faults.clone()).await?;
        TcpStream::connect(target).await
    };
    let upstream = tokio::select! {
        upstream = connect => upstream.ok(),
        // A cut, or the proxy dropped (the sender is gone): either way, reset.
        _ = cuts.changed() => {
            counters.links_cut.fetch_add(1, Ordering::Relaxed);
            None
        }
    };
    let Some(mut upstream) = upstream else {
        reset(client);
        counters.links_open.fetch_sub(1, Ordering::Relaxed);
        return;
    };
    let _ = upstream.set_nodelay(true);
    let clean = {
        let (client_read, client_write) = client.split();
        let (upstream_read, upstream_write) = upstream.split();
        let pipes = async {
            tokio::try_join!(
                pipe(
                    client_read,
                    upstream_write,
                    Direction::Up,
                    &faults,
                    &counters
                ),
                pipe(
                    upstream_read,
                    client_write,
                    Direction::Down,
                    &faults,
                    &counters
                ),
            )
        };
        tokio::select! {
            done = pipes => done.is_ok(),
            _ = cuts.changed() => {
                counters.links_cut.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    };
    // Both sides closed cleanly: close normally. A side failed, or the link was cut: reset both.
    if !clean {
        reset(client);
        reset(upstream);
    }
    counters.links_open.fetch_sub(1, Ordering::Relaxed);
}

/// Waits while the blackhole is on. `Err` when the proxy is gone.
async fn wait_until_open(faults: &mut watch::Receiver<Faults>) -> io::Result<()> {
    faults
        .wait_for(|f| !f.blackhole)
        .await
        .map(drop)
        .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "proxy dropped"))
}

/// One direction: a reader that timestamps chunks and a writer that applies latency, slicing,
/// bandwidth and the blackhole, joined by a bounded queue. `Ok` once the FIN was passed on.
async fn pipe<R, W>(
    mut from: R,
    mut to: W,
    direction: Direction,
    faults: &watch::Receiver<Faults>,
    counters: &Counters,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (tx, rx) = mpsc::channel(QUEUE_CHUNKS);
    let read = read_side(&mut from, tx, faults.clone());
    let write = write_side(
        &mut to,
        rx,
        faults.clone(),
        &counters.bytes[direction as usize],
        &counters.writes[direction as usize],
    );
    tokio::try_join!(read, write).map(drop)
}

async fn read_side<R: AsyncRead + Unpin>(
    from: &mut R,
    tx: mpsc::Sender<Chunk>,
    mut faults: watch::Receiver<Faults>,
) -> io::Result<()> {
    let mut buf = vec![0u8; CHUNK_BYTES];
    loop {
        // While blackholed, read nothing: the sender's bytes wait in the kernel.
        wait_until_open(&mut faults).await?;
        let n = tokio::select! {
            read = from.read(&mut buf) => read?,
            // `read` is cancel safe: nothing is lost by going back to wait.
            _ = faults.wait_for(|f| f.blackhole) => continue,
        };
        let chunk = if n == 0 {
            Chunk::Eof
        } else {
            Chunk::Data(Instant::now(), buf[..n].to_vec())
        };
        if tx.send(chunk).await.is_err() {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        if n == 0 {
            return Ok(());
        }
    }
}

async fn write_side<W: AsyncWrite + Unpin>(
    to: &mut W,
    mut rx: mpsc::Receiver<Chunk>,
    mut faults: watch::Receiver<Faults>,
    bytes: &AtomicU64,
    writes: &AtomicU64,
) -> io::Result<()> {
    // The earliest time the bandwidth cap allows the next write.
    let mut next_free = Instant::now();
    while let Some(chunk) = rx.recv().await {
        let (read_at, data) = match chunk {
            Chunk::Data(at, data) => (at, data),
            Chunk::Eof => {
                to.shutdown().await?;
                return Ok(());
            }
        };
        let latency = faults.borrow().latency;
        sleep_until(read_at + latency).await;
        let mut rest = &data[..];
        while !rest.is_empty() {
            wait_until_open(&mut faults).await?;
            let now = faults.borrow().clone();
            let mut n = now.slice.unwrap_or(rest.len()).min(rest.len());
            if let Some(rate) = now.bandwidth {
                n = n.min(
                    usize::try_from(rate / PACING_STEPS_PER_SECOND)
                        .unwrap_or(usize::MAX)
                        .max(1),
                );
                sleep_until(next_free).await;
                let cost = Duration::from_secs_f64(n as f64 / rate as f64);
                next_free = next_free.max(Instant::now()) + cost;
            }
            to.write_all(&rest[..n]).await?;
            to.flush().await?;
            bytes.fetch_add(n as u64, Ordering::Relaxed);
            writes.fetch_add(1, Ordering::Relaxed);
            rest = &rest[n..];
            if now.slice.is_some() && !rest.is_empty() {
                sleep(SLICE_GAP).await;
            }
        }
    }
    // The reader failed before sending Eof; its error is the one `try_join!` reports.
    Err(io::ErrorKind::BrokenPipe.into())
}
