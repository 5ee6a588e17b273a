//! The storm: drop every socket at once, time the server's drain and its `/health` answers,
//! post events during the outage, reconnect everyone and check that each event arrives exactly
//! once, in order.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::time::sleep;

use super::args::Args;
use super::http;
use super::report::Storm;
use super::socket::{Board, Phase};
use super::wire::{self, Mark};

/// One `/health` round over every server.
struct Sample {
    /// Board time the answers were complete.
    at: u64,
    /// The slowest answer, in ns.
    latency: u64,
    ok: bool,
}

/// Polls `/health` on every server, one request at a time, every `interval`, until `stop`; marks
/// `drained` (a board time) at the first answer reporting 0 connections in total.
async fn poll_health(
    addrs: Vec<SocketAddr>,
    interval: Duration,
    board: Arc<Board>,
    samples: Arc<Mutex<Vec<Sample>>>,
    drained: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Relaxed) {
        let started = Instant::now();
        let mut total = Some(0);
        let mut ok = true;
        let mut latency = 0;
        for addr in &addrs {
            let asked = Instant::now();
            match http::health(*addr, Duration::from_secs(10)).await {
                Ok(health) => total = total.zip(health.connections).map(|(a, b)| a + b),
                Err(_) => {
                    ok = false;
                    total = None;
                }
            }
            latency = latency.max(u64::try_from(asked.elapsed().as_nanos()).unwrap_or(u64::MAX));
        }
        let at = board.stamp(Instant::now());
        if total == Some(0) {
            let _ = drained.compare_exchange(0, at, Relaxed, Relaxed);
        }
        samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Sample { at, latency, ok });
        sleep(interval.saturating_sub(started.elapsed())).await;
    }
}

/// Runs `poll` on a thread and single-threaded runtime of its own, as a load balancer's probe
/// is: the answers it times are the server's, not this tool's runtime busy with 10,000
/// reconnecting sockets.
fn on_own_thread(
    poll: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime.block_on(poll),
            Err(e) => eprintln!("server_load: the /health poller's runtime: {e}"),
        }
    })
}

/// Posts storm event `k`; a failure is counted on the board.
async fn post(args: &Args, addr: SocketAddr, board: &Board, k: u32, pad: &str) -> bool {
    let body = wire::notify_body(
        &args.room,
        Mark {
            round: None,
            storm: Some(k),
        },
        pad,
    );
    match http::notify(addr, &args.server_key, &body).await {
        Ok(()) => true,
        Err(e) => {
            board.fail(format!("storm POST /notify: {e}"));
            false
        }
    }
}

/// Waits up to `limit` for `done`, checking every 10 ms.
async fn wait_for(limit: Duration, done: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        sleep(Duration::from_millis(10)).await;
    }
    true
}

fn secs_between(from: u64, to: u64) -> f64 {
    to.saturating_sub(from) as f64 / 1e9
}

/// Runs the storm on sockets that are all live now.
pub(crate) async fn run(
    args: &Args,
    addrs: Vec<SocketAddr>,
    probes: Vec<SocketAddr>,
    notify_addr: SocketAddr,
    board: &Arc<Board>,
    control: &watch::Sender<Phase>,
    pad: &str,
) -> Storm {
    let resumes = args.proto.resumes();
    let dropped = board.alive.load(Relaxed);
    let samples = Arc::new(Mutex::new(Vec::new()));
    let drained = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let interval = Duration::from_millis(args.health_interval_ms.max(1));
    let poller = on_own_thread(poll_health(
        addrs,
        interval,
        board.clone(),
        samples.clone(),
        drained.clone(),
        stop.clone(),
    ));
    // The probe listeners, polled on their own (their drain mark is not used).
    let probe_samples = Arc::new(Mutex::new(Vec::new()));
    let probe_poller = (!probes.is_empty()).then(|| {
        on_own_thread(poll_health(
            probes,
            interval,
            board.clone(),
            probe_samples.clone(),
            Arc::new(AtomicU64::new(0)),
            stop.clone(),
        ))
    });

    let dropped_at = board.stamp(Instant::now());
    let _ = control.send(Phase::Drop);
    // Storm events are numbered by successful posts, so a failed post leaves no hole.
    let mut next = 0;
    if resumes {
        for _ in 0..args.storm_events {
            next += u32::from(post(args, notify_addr, board, next, pad).await);
        }
    }
    board.outage_events.store(next, Relaxed);
    wait_for(Duration::from_secs(args.drain_timeout_s), || {
        drained.load(Relaxed) != 0
    })
    .await;

    let wave_at = board.stamp(Instant::now());
    let _ = control.send(Phase::Reconnect);
    let live_every = Duration::from_millis(args.storm_live_interval_ms);
    let deadline = Instant::now() + Duration::from_secs(args.storm_timeout_s);
    let mut next_live = Instant::now() + live_every;
    while board.back.load(Relaxed) < dropped && Instant::now() < deadline {
        if resumes && !live_every.is_zero() && Instant::now() >= next_live {
            next += u32::from(post(args, notify_addr, board, next, pad).await);
            next_live += live_every;
        }
        sleep(Duration::from_millis(10)).await;
    }
    let back = board.back.load(Relaxed);
    let last_back = board.last_back();
    if resumes {
        // One last event that every socket that is back must get, then the exactly-once check.
        next += u32::from(post(args, notify_addr, board, next, pad).await);
        let total = next;
        wait_for(Duration::from_secs(10), || {
            board.storm_short(total).0 <= dropped.saturating_sub(back)
        })
        .await;
    }
    stop.store(true, Relaxed);
    let _ = tokio::task::spawn_blocking(move || {
        let _ = poller.join();
        if let Some(probe_poller) = probe_poller {
            let _ = probe_poller.join();
        }
    })
    .await;

    let take = |samples: &Mutex<Vec<Sample>>| {
        std::mem::take(&mut *samples.lock().unwrap_or_else(PoisonError::into_inner))
    };
    let (samples, probe_samples) = (take(&samples), take(&probe_samples));
    let slowest = |samples: &[Sample], from: u64, to: u64| {
        samples
            .iter()
            .filter(|s| s.at >= from && s.at < to)
            .map(|s| s.latency as f64 / 1e6)
            .max_by(f64::total_cmp)
    };
    let worst = |from: u64, to: u64| slowest(&samples, from, to);
    let drained_at = drained.load(Relaxed);
    let (short_sockets, short_events) = if resumes {
        board.storm_short(next)
    } else {
        (0, 0)
    };
    Storm {
        dropped,
        drain_s: (drained_at != 0).then(|| secs_between(dropped_at, drained_at)),
        health_max_drain_ms: worst(dropped_at, wave_at),
        health_max_wave_ms: worst(wave_at, u64::MAX),
        health_samples: samples.len(),
        health_failures: samples.iter().filter(|s| !s.ok).count(),
        probe_max_drain_ms: slowest(&probe_samples, dropped_at, wave_at),
        probe_max_wave_ms: slowest(&probe_samples, wave_at, u64::MAX),
        probe_failures: probe_samples.iter().filter(|s| !s.ok).count(),
        back,
        all_back_s: (back >= dropped)
            .then_some(last_back)
            .flatten()
            .map(|t| secs_between(wave_at, t)),
        last_back_s: last_back.map(|t| secs_between(wave_at, t)),
        resumes,
        resumed: board.resumed.load(Relaxed),
        resume_refused: board.resume_refused.load(Relaxed),
        events_posted: next,
        short_sockets,
        missed: if resumes {
            board.storm_missed.load(Relaxed) + short_events
        } else {
            0
        },
        duplicates: board.storm_dups.load(Relaxed),
        retries: board.retries.load(Relaxed),
    }
}
