//! Server load: N idle authenticated WebSockets against a running server, room fan-out
//! latency, server RSS per connection, and a disconnect/reconnect storm.
//!
//! Run against a server that is already up (loopback only):
//!
//! ```text
//! SOCKLINE_JWT_SECRET=s SOCKLINE_SERVER_KEY=k target/release/sockline-server --addr 127.0.0.1:0
//! SOCKLINE_JWT_SECRET=s SOCKLINE_SERVER_KEY=k cargo run --release --features server \
//!     --example server_load -- --url http://127.0.0.1:PORT --server-pid PID -n 10000 --storm
//! ```
//!
//! or `scripts/bench-server.sh` (`make bench-server`) for sockline, the bare tokio-tungstenite
//! server (`examples/bare_broadcast.rs`), `ws` and Socket.IO (`bench/peers/`) side by side.
//!
//! What a run does, in order:
//! 1. Opens N sockets (at most `--connect-concurrency` handshakes at once), socket i as user
//!    `u{i}` (sockline: an HS256 token minted with `--jwt-secret`, or fetched from a `--dev`
//!    server's `/dev/token`; `auth` carries a random `client` id), each joining `--room`.
//!    Reports the time from the first connect to the last join.
//! 2. Waits until no frame has arrived for `--settle-ms` (sockline announces joins), then reads
//!    the server's RSS: (after − before) / N is the cost of one idle connection.
//! 3. Runs `--warmup` + `--rounds` rounds of `POST /notify` to the room, each waiting for every
//!    socket: latency is from just before the POST to the socket's read of the frame.
//! 4. With `--storm`: drops every socket at once (TCP reset), polls `/health` every 20 ms until
//!    it reports 0 connections (its slowest answer is reported), posts events meanwhile, then
//!    reconnects all (the SDK's backoff and jitter; sockline resumes with `{session, seq}`) and
//!    reports when the last one was back and whether every event arrived exactly once, in order.
//!
//! The tool shares the machine with the server it measures, so it stays lean: one task per
//! socket, a 4 KiB read buffer, no write buffer. By default it runs one runtime worker per CPU
//! (`--threads`): on this 2-core machine a single-threaded client was the bottleneck at 10,000
//! sockets (the bare server's p99 measured 276 ms with one thread, 131 ms with two). Every number is printed; `--json` writes them for `--table`.

#[path = "server_load/args.rs"]
mod args;
#[path = "server_load/http.rs"]
mod http;
#[path = "server_load/report.rs"]
mod report;
#[path = "server_load/socket.rs"]
mod socket;
#[path = "server_load/storm.rs"]
mod storm;
#[path = "server_load/wire.rs"]
mod wire;

use std::process::ExitCode;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use sockline::core::Backoff;
use tokio::sync::{watch, Semaphore};
use tokio::time::sleep;

use args::{Args, Proto, Target};
use report::{percentile_ms, Report, Round, Summary};
use socket::{Board, Phase, Plan};
use wire::Mark;

fn main() -> ExitCode {
    let args = Args::parse();
    if !args.table.is_empty() {
        return match report::print_table(&args.table) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let runtime = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run(&args));
    // Dropping the runtime drops every socket (with a reset: they all have zero linger).
    drop(runtime);
    match outcome {
        Ok(report) => {
            report.print();
            if let Some(path) = &args.json {
                let json = serde_json::to_string_pretty(&report).unwrap_or_default();
                if let Err(e) = std::fs::write(path, json) {
                    eprintln!("error: {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; says how when N sockets will not fit.
fn raise_nofile(sockets: usize) {
    let needed = sockets as u64 + 64;
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(soft) if soft >= needed => {}
        Ok(soft) => eprintln!(
            "warning: RLIMIT_NOFILE is {soft} (the hard limit), {sockets} sockets need about {needed}: \
             raise it first (`ulimit -Hn {needed}` as root, or `prlimit --nofile={needed} --pid $$`)"
        ),
        Err(e) => eprintln!("warning: cannot raise RLIMIT_NOFILE ({e}); `ulimit -n {needed}` first"),
    }
}

/// The server RSS: the sum over `--server-pid`s, else over the servers' `/health` `rss_bytes`;
/// with each server's own figure (in `--server-pid` or `--url` order).
async fn server_rss(args: &Args, targets: &[Target]) -> (String, Option<u64>, Vec<u64>) {
    let mut each = Vec::new();
    if !args.server_pids.is_empty() {
        for pid in &args.server_pids {
            match http::proc_rss(*pid) {
                Ok(rss) => each.push(rss),
                Err(e) => return (format!("/proc: {e}"), None, Vec::new()),
            }
        }
        return (
            "/proc/PID/status VmRSS".to_owned(),
            Some(each.iter().sum()),
            each,
        );
    }
    for target in targets {
        match http::health(target.addr, Duration::from_secs(10)).await {
            Ok(http::Health {
                rss_bytes: Some(rss),
                ..
            }) => each.push(rss),
            _ => {
                return (
                    "none (no --server-pid, no rss_bytes in /health)".to_owned(),
                    None,
                    Vec::new(),
                )
            }
        }
    }
    (
        "/health rss_bytes".to_owned(),
        Some(each.iter().sum()),
        each,
    )
}

/// One token per socket: minted with `--jwt-secret`, else from `/dev/token`, 16 at a time.
async fn tokens(args: &Args, targets: &[Target]) -> Result<Vec<String>, String> {
    let users = (0..args.sockets).map(|i| format!("{}{i}", args.user_prefix));
    if let Some(secret) = &args.jwt_secret {
        let ttl = Duration::from_secs(6 * 3600);
        return Ok(users
            .map(|u| sockline::server::mint_token(secret, &u, ttl))
            .collect());
    }
    let mut tokens = Vec::with_capacity(args.sockets);
    let users: Vec<String> = users.collect();
    for (chunk_start, chunk) in users.chunks(16).enumerate().map(|(c, ch)| (c * 16, ch)) {
        let fetches = chunk.iter().enumerate().map(|(j, user)| {
            let addr = targets[(chunk_start + j) % targets.len()].addr;
            async move { http::dev_token(addr, user).await }
        });
        for token in futures::future::join_all(fetches).await {
            tokens.push(token?);
        }
    }
    Ok(tokens)
}

/// Waits until `done` or `limit`, checking every `step`.
async fn wait_until(limit: Duration, step: Duration, done: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        sleep(step).await;
    }
    true
}

async fn run(args: &Args) -> Result<Report, String> {
    if args.sockets == 0 {
        return Err("-n must be at least 1".to_owned());
    }
    raise_nofile(args.sockets);
    let targets = args
        .urls
        .iter()
        .map(|u| Target::parse(u, args.proto))
        .collect::<Result<Vec<_>, _>>()?;
    let notify_addr = match &args.notify_url {
        Some(url) => Target::parse(url, args.proto)?.addr,
        None => targets[0].addr,
    };
    let tokens = if args.proto == Proto::Sockline {
        tokens(args, &targets).await?
    } else {
        Vec::new()
    };
    let pad = "x".repeat(args.payload_bytes);
    let total_rounds = args.warmup + args.rounds;
    let board = Arc::new(Board::new(args.sockets, total_rounds));
    let plan = Arc::new(Plan {
        proto: args.proto,
        targets: targets.clone(),
        room: args.room.clone(),
        tokens,
        backoff: Backoff {
            initial: Duration::from_millis(args.backoff_initial_ms),
            jitter: !args.no_jitter,
            ..Backoff::default()
        },
        seed: rand::random(),
    });
    let mut report = Report {
        label: args
            .label
            .clone()
            .unwrap_or_else(|| args.proto.name().to_owned()),
        proto: args.proto.name().to_owned(),
        sockets: args.sockets,
        servers: targets.len(),
        ..Report::default()
    };
    let (rss_source, rss_before, _) = server_rss(args, &targets).await;

    // 1. Connect and join.
    let (control, watcher) = watch::channel(Phase::Live);
    let gate = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let started = board.stamp(Instant::now());
    for idx in 0..args.sockets {
        tokio::spawn(socket::run(
            idx,
            plan.clone(),
            board.clone(),
            watcher.clone(),
            gate.clone(),
        ));
    }
    let settled_connecting =
        || board.joined.load(Relaxed) + board.first_failed.load(Relaxed) >= args.sockets;
    wait_until(
        Duration::from_secs(args.connect_timeout_s),
        Duration::from_millis(10),
        settled_connecting,
    )
    .await;
    // Sockets still connecting now give up, so every later count is of the joined ones (a
    // socket between its check and its count gets a moment to finish counting).
    board.connecting.store(false, Relaxed);
    gate.close();
    sleep(Duration::from_millis(20)).await;
    report.joined = board.joined.load(Relaxed);
    let last_join = board.last_join.load(Relaxed);
    report.connect_last_s = last_join.saturating_sub(started) as f64 / 1e9;
    report.connect_s = (report.joined == args.sockets).then_some(report.connect_last_s);

    // 2. Settle, then RSS.
    let settle_from = Instant::now();
    let quiet = Duration::from_millis(args.settle_ms);
    let mut seen = (board.frames.load(Relaxed), Instant::now());
    while settle_from.elapsed() < Duration::from_secs(args.settle_timeout_s) {
        sleep(Duration::from_millis(20)).await;
        let frames = board.frames.load(Relaxed);
        if frames != seen.0 {
            seen = (frames, Instant::now());
        } else if seen.1.elapsed() >= quiet {
            break;
        }
    }
    report.settle_s = seen.1.saturating_duration_since(settle_from).as_secs_f64();
    let (_, rss_after, rss_after_each) = server_rss(args, &targets).await;
    report.rss_source = rss_source;
    report.rss_after_by_server = rss_after_each;
    report.rss_before = rss_before;
    report.rss_after = rss_after;
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        report.rss_per_conn =
            Some(after.saturating_sub(before) as f64 / report.joined.max(1) as f64);
    }

    // 3. Fan-out rounds.
    let server_cpu = || {
        let readings: Option<Vec<f64>> = args
            .server_pids
            .iter()
            .map(|p| http::proc_cpu_ms(Some(*p)))
            .collect();
        readings
            .filter(|r| !r.is_empty())
            .map(|r| r.iter().sum::<f64>())
    };
    let mut measured = Vec::new();
    for r in 0..total_rounds {
        let expected = board.alive.load(Relaxed);
        let body = wire::notify_body(
            &args.room,
            Mark {
                round: Some(r as u32),
                storm: None,
            },
            &pad,
        );
        let cpu_before = (server_cpu(), http::proc_cpu_ms(None));
        let posted = board.stamp(Instant::now());
        let post_error = http::notify(notify_addr, &args.server_key, &body)
            .await
            .err();
        if post_error.is_none() {
            wait_until(
                Duration::from_millis(args.round_timeout_ms),
                Duration::from_millis(2),
                || board.round_count(r) >= expected,
            )
            .await;
        }
        let cpu_after = (server_cpu(), http::proc_cpu_ms(None));
        let mut latencies = board.round_latencies(r, posted);
        latencies.sort_unstable();
        let complete = latencies.len() >= expected && expected > 0;
        let round = Round {
            expected,
            received: latencies.len(),
            p50_ms: percentile_ms(&latencies, 0.50),
            p99_ms: percentile_ms(&latencies, 0.99),
            max_ms: percentile_ms(&latencies, 1.0),
            last_ms: if complete {
                percentile_ms(&latencies, 1.0)
            } else {
                None
            },
            post_error,
            server_cpu_ms: cpu_before.0.zip(cpu_after.0).map(|(a, b)| b - a),
            client_cpu_ms: cpu_before.1.zip(cpu_after.1).map(|(a, b)| b - a),
        };
        if r >= args.warmup {
            measured.extend_from_slice(&latencies);
            report.rounds.push(round);
        }
        sleep(Duration::from_millis(args.round_gap_ms)).await;
    }
    measured.sort_unstable();
    report.summary = Summary::of(&report.rounds, &measured);

    // 4. Storm.
    if args.storm {
        let addrs = targets.iter().map(|t| t.addr).collect();
        let probes = args
            .probe_urls
            .iter()
            .map(|url| Target::parse(url, args.proto).map(|t| t.addr))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("--probe-url: {e}"))?;
        report.storm =
            Some(storm::run(args, addrs, probes, notify_addr, &board, &control, &pad).await);
    }
    let _ = control.send(Phase::Stop);

    for (name, counter) in [
        ("frames", &board.frames),
        ("seq_gaps", &board.seq_gaps),
        ("seq_duplicates", &board.seq_dups),
        ("round_duplicates", &board.round_dups),
        ("server_error_frames", &board.server_errors),
    ] {
        report
            .counters
            .insert(name.to_owned(), counter.load(Relaxed));
    }
    report.failures = board.failures();
    Ok(report)
}
