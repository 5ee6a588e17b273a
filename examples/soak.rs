//! Churn soak: a population of native clients against one reference server for a set time —
//! connecting, authenticating, joining rooms, sending, receiving `/notify` fan-out, being cut
//! abruptly through `FaultProxy` and resuming, and being replaced by new clients (new
//! sessions) — while the server's RSS, open fds and task count are sampled.
//!
//! Run (10 minutes against a release server it starts itself, the default):
//!
//! ```text
//! cargo build --release --features server --bin sockline-server
//! cargo run --release --features testing --example soak -- --duration 10m
//! ```
//!
//! Or against a server already running (`--server ADDR`, with `SOCKLINE_JWT_SECRET` and
//! `SOCKLINE_SERVER_KEY` set to the server's; `--server-pid` enables the /proc samples).
//!
//! At the end every client generation reports lost, duplicated and reordered events and
//! unacked sends, summed in one table; all must be 0. An event is owed to a generation when it
//! was published after the generation was connected and in its room (a fence it heard there)
//! and acknowledged before the generation began to retire; a closing fence through the user's
//! own stream proves everything owed had its chance to arrive. The drift of each server metric
//! is the median over the last window (a minute, or a quarter of a shorter run) against the
//! median over the first (which starts after `--warmup-s`, 0 by default). Exits 1 if any count is not 0 or a drift exceeds `--max-drift-pct`.

#[path = "soak/child.rs"]
mod child;
#[path = "soak/ledger.rs"]
mod ledger;
#[path = "soak/population.rs"]
mod population;
#[path = "soak/sampler.rs"]
mod sampler;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use sockline::testing::ServerApi;
use tokio::sync::watch;
use tokio::time::Instant;

use ledger::{Ledger, Totals};
use population::{Plan, World};
use sampler::{drift, range, Sample};

/// A duration: `600`, `600s`, `10m` or `1h`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("not a duration: {text}"))?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("unknown unit in {text} (s, m or h)")),
    };
    Ok(Duration::from_secs(seconds))
}

/// The churn soak of the reference server.
#[derive(Debug, Parser)]
#[command(name = "soak")]
struct Args {
    /// How long to run (`600`, `600s`, `10m`, `1h`).
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    duration: Duration,
    /// Client slots (one user each; each slot lives through client generations).
    #[arg(long, default_value_t = 40)]
    clients: usize,
    /// Chat rooms the slots are spread over.
    #[arg(long, default_value_t = 8)]
    rooms: usize,
    /// Mean milliseconds between two sends of one client.
    #[arg(long, default_value_t = 500)]
    send_every_ms: u64,
    /// Mean milliseconds between two `/notify`s of one user or room.
    #[arg(long, default_value_t = 1000)]
    notify_every_ms: u64,
    /// Mean seconds between two cuts of one client's link.
    #[arg(long, default_value_t = 10)]
    cut_every_s: u64,
    /// Seconds between cuts of every link at once.
    #[arg(long, default_value_t = 90)]
    mass_cut_every_s: u64,
    /// Shortest life of a client generation, in seconds.
    #[arg(long, default_value_t = 20)]
    min_lifetime_s: u64,
    /// Longest life of a client generation, in seconds.
    #[arg(long, default_value_t = 60)]
    max_lifetime_s: u64,
    /// Seconds between two server samples.
    #[arg(long, default_value_t = 5)]
    sample_every_s: u64,
    /// Seconds skipped before the first drift window (0: the drift is from the first minute).
    #[arg(long, default_value_t = 0)]
    warmup_s: u64,
    /// Fail when the RSS, fd or task drift exceeds this many percent.
    #[arg(long)]
    max_drift_pct: Option<f64>,
    /// The server binary to start (with --dev on 127.0.0.1:0) when --server is not given.
    #[arg(long, default_value = "target/release/sockline-server")]
    server_bin: PathBuf,
    /// Extra arguments for the started server. The send-id memory is kept 120 s after a
    /// client's last send (4× the 30 s replay window) instead of the default day: every client
    /// generation of the churn brings a new client id, and with a day's retention a 10-minute
    /// run only ever sees that bounded memory (`--dedupe-budget-bytes`) filling up, never the
    /// steady state a day-old server is in.
    #[arg(long, default_values_t = ["--heartbeat-ms".to_owned(), "5000".to_owned(), "--replay-age-ms".to_owned(), "30000".to_owned(), "--dedupe-retention".to_owned(), "120".to_owned()], allow_hyphen_values = true, num_args = 1..)]
    server_args: Vec<String>,
    /// A running server's address instead of starting one.
    #[arg(long, value_name = "HOST:PORT")]
    server: Option<std::net::SocketAddr>,
    /// The running server's pid, for the /proc samples.
    #[arg(long)]
    server_pid: Option<u32>,
}

fn secret_from_env(name: &str, default: String) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let random_secret = format!("{:032x}", rand::random::<u128>());
    let jwt_secret = secret_from_env("SOCKLINE_JWT_SECRET", random_secret);
    let server_key = secret_from_env("SOCKLINE_SERVER_KEY", "dev-key".to_owned());
    let (addr, pid, child) = match args.server {
        Some(addr) => (addr, args.server_pid, None),
        None => {
            let log =
                std::env::temp_dir().join(format!("sockline-soak-{}.log", std::process::id()));
            match child::spawn(
                &args.server_bin,
                &jwt_secret,
                &server_key,
                &args.server_args,
                log,
            )
            .await
            {
                Ok(child) => (child.addr, Some(child.pid), Some(child)),
                Err(e) => {
                    eprintln!("soak: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    let api = ServerApi::new(addr, server_key);
    println!(
        "soak: {} clients in {} rooms for {:?} against {addr} (pid {})",
        args.clients,
        args.rooms,
        args.duration,
        pid.map_or("unknown".to_owned(), |p| p.to_string())
    );

    let started = Instant::now();
    let (stop_tx, stop_rx) = watch::channel(false);
    let every = Duration::from_secs(args.sample_every_s.max(1));
    let sampling = tokio::spawn(sampler::run(pid, api.clone(), every, stop_rx));
    let ledger = Arc::new(Ledger::default());
    let world = Arc::new(World {
        plan: Plan {
            clients: args.clients.max(1),
            rooms: args.rooms.max(1),
            send_every: Duration::from_millis(args.send_every_ms.max(1)),
            notify_every: Duration::from_millis(args.notify_every_ms.max(1)),
            cut_every: Duration::from_secs(args.cut_every_s.max(1)),
            mass_cut_every: Duration::from_secs(args.mass_cut_every_s.max(1)),
            lifetime: (
                Duration::from_secs(args.min_lifetime_s),
                Duration::from_secs(args.max_lifetime_s.max(args.min_lifetime_s)),
            ),
            deadline: started + args.duration,
        },
        server: addr,
        api,
        jwt_secret,
        ledger: ledger.clone(),
    });
    let reports = population::run(world).await;
    stop_tx.send_replace(true);
    let samples = sampling.await.unwrap_or_default();
    let mut ok = true;
    match reports {
        Ok(reports) => {
            let totals = ledger.check(&reports);
            print_totals(&totals, ledger.published(), started.elapsed());
            ok &= totals.clean();
        }
        Err(e) => {
            eprintln!("soak: {e}");
            ok = false;
        }
    }
    let warmup = Duration::from_secs(args.warmup_s);
    ok &= print_drift(&samples, warmup, args.duration, args.max_drift_pct);
    if let Some(child) = child {
        let log = child.log.clone();
        if let Err(e) = child.stop().await {
            eprintln!("soak: stopping the server: {e}");
            ok = false;
        }
        let lines = std::fs::read_to_string(&log).map_or(0, |l| l.lines().count());
        println!(
            "server log (warnings and errors): {lines} lines in {}",
            log.display()
        );
    }
    println!("soak: {}", if ok { "PASS" } else { "FAIL" });
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn print_totals(totals: &Totals, published: usize, took: Duration) {
    println!("--- soak results after {:.0} s", took.as_secs_f64());
    println!("client generations     {}", totals.generations);
    println!("reconnects             {}", totals.reconnects);
    println!("events published       {published}");
    println!(
        "events owed / received {} / {}",
        totals.events_owed, totals.events_received
    );
    println!("sends                  {}", totals.sent);
    println!("lost                   {}", totals.lost);
    println!("duplicated             {}", totals.duplicated);
    println!("reordered              {}", totals.reordered);
    println!("seq gaps               {}", totals.seq_gaps);
    println!("unacked sends          {}", totals.unacked);
    println!("failed acks            {}", totals.ack_errors);
    println!("doubled acks           {}", totals.ack_dups);
    println!("resume failed          {}", totals.resume_failed);
    println!("fence not heard        {}", totals.unfenced);
    println!("never connected        {}", totals.never_connected);
}

/// Reads one metric from a sample.
type Metric = fn(&Sample) -> Option<u64>;

/// Prints the drift of each metric; false when one exceeds `bound`.
fn print_drift(
    samples: &[Sample],
    warmup: Duration,
    duration: Duration,
    bound: Option<f64>,
) -> bool {
    let measured = duration.saturating_sub(warmup);
    let window = if measured >= Duration::from_secs(240) {
        Duration::from_secs(60)
    } else {
        measured / 4
    };
    println!(
        "--- server drift, median of {:.0}-{:.0} s vs the last {:.0} s ({} samples)",
        warmup.as_secs_f64(),
        (warmup + window).as_secs_f64(),
        window.as_secs_f64(),
        samples.len()
    );
    let metrics: [(&str, Metric, bool); 8] = [
        ("rss (/proc)", |s| s.rss_bytes, true),
        ("open fds", |s| s.fds, true),
        // What a leak would grow: fds that are not a live WebSocket.
        (
            "fds - sockets",
            |s| Some(s.fds?.saturating_sub(s.connections?)),
            true,
        ),
        ("tasks (/health)", |s| s.tasks, true),
        ("rss (/health)", |s| s.health_rss, false),
        ("connections", |s| s.connections, false),
        ("dedupe (/health)", |s| s.dedupe_bytes, false),
        ("replay (/health)", |s| s.replay_bytes, false),
    ];
    let mut ok = true;
    for (name, metric, bounded) in metrics {
        match (
            drift(samples, warmup, window, metric),
            range(samples, metric),
        ) {
            (Some(d), Some((min, max))) => {
                let over = bounded && bound.is_some_and(|b| d.percent > b);
                ok &= !over;
                println!(
                    "{name:<16} first {:>12.0}  last {:>12.0}  drift {:>+6.1} %  (min {min}, max {max}){}",
                    d.first,
                    d.last,
                    d.percent,
                    if over { "  OVER THE BOUND" } else { "" }
                );
            }
            _ => println!("{name:<16} unavailable"),
        }
    }
    ok
}
