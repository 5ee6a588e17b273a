//! Samples the server every few seconds — RSS and open fds from `/proc/<pid>`, connections and
//! (when the server reports them) tasks and RSS from `/health` — and computes the drift from
//! the first window of the run to the last.

use std::time::Duration;

use sockline::testing::ServerApi;
use tokio::sync::watch;
use tokio::time::{interval, Instant, MissedTickBehavior};

/// One reading.
#[derive(Debug, Clone)]
pub struct Sample {
    pub at: Duration,
    /// From `/proc/<pid>/status` `VmRSS`, when the pid is known.
    pub rss_bytes: Option<u64>,
    /// Entries of `/proc/<pid>/fd`, when the pid is known.
    pub fds: Option<u64>,
    /// `/health` `tasks`, when the server reports it.
    pub tasks: Option<u64>,
    /// `/health` `rss_bytes`, when the server reports it.
    pub health_rss: Option<u64>,
    /// `/health` `connections`.
    pub connections: Option<u64>,
    /// `/health` `dedupe.bytes`: the send-id memory, kept `--dedupe-retention` per client.
    pub dedupe_bytes: Option<u64>,
    /// `/health` `replay.bytes`: what the replay buffers hold.
    pub replay_bytes: Option<u64>,
}

/// `VmRSS` of `pid` in bytes.
fn proc_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Open file descriptors of `pid`.
fn proc_fds(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn show(value: Option<u64>, unit: fn(u64) -> String) -> String {
    value.map_or_else(|| "unavailable".to_owned(), unit)
}

/// Samples every `every` until `stop` turns true, printing each line; returns the samples.
pub async fn run(
    pid: Option<u32>,
    api: ServerApi,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) -> Vec<Sample> {
    let started = Instant::now();
    let mut ticks = interval(every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut samples = Vec::new();
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.wait_for(|s| *s) => return samples,
        }
        let health = api.health().await.ok();
        let field = |name: &str| health.as_ref().and_then(|h| h[name].as_u64());
        let nested =
            |name: &str, member: &str| health.as_ref().and_then(|h| h[name][member].as_u64());
        let sample = Sample {
            at: started.elapsed(),
            rss_bytes: pid.and_then(proc_rss),
            fds: pid.and_then(proc_fds),
            tasks: field("tasks"),
            health_rss: field("rss_bytes"),
            connections: field("connections"),
            dedupe_bytes: nested("dedupe", "bytes"),
            replay_bytes: nested("replay", "bytes"),
        };
        println!(
            "sample t={:>4}s rss={} fds={} tasks={} health_rss={} connections={} dedupe={} replay={}",
            sample.at.as_secs(),
            show(sample.rss_bytes, mib),
            show(sample.fds, |n| n.to_string()),
            show(sample.tasks, |n| n.to_string()),
            show(sample.health_rss, mib),
            show(sample.connections, |n| n.to_string()),
            show(sample.dedupe_bytes, mib),
            show(sample.replay_bytes, mib),
        );
        samples.push(sample);
    }
}

/// The median of one metric over the first and over the last `window` of the run, and the
/// drift between them in percent. Medians, so the one or two samples a mass cut empties do not
/// swing a window.
#[derive(Debug, Clone, Copy)]
pub struct Drift {
    pub first: f64,
    pub last: f64,
    pub percent: f64,
}

/// The first window starts at `warmup`. `None` when the metric was never available in one of
/// the windows.
pub fn drift(
    samples: &[Sample],
    warmup: Duration,
    window: Duration,
    metric: fn(&Sample) -> Option<u64>,
) -> Option<Drift> {
    let end = samples.last()?.at;
    let median = |keep: &dyn Fn(Duration) -> bool| {
        let mut values: Vec<u64> = samples
            .iter()
            .filter(|s| keep(s.at))
            .filter_map(metric)
            .collect();
        values.sort_unstable();
        let n = values.len();
        match n {
            0 => None,
            _ if n % 2 == 1 => Some(values[n / 2] as f64),
            _ => Some((values[n / 2 - 1] + values[n / 2]) as f64 / 2.0),
        }
    };
    let first = median(&|at| at >= warmup && at <= warmup + window)?;
    let last = median(&|at| at + window >= end)?;
    let percent = if first == 0.0 {
        0.0
    } else {
        (last - first) / first * 100.0
    };
    Some(Drift {
        first,
        last,
        percent,
    })
}

/// The lowest and highest reading of a metric.
pub fn range(samples: &[Sample], metric: fn(&Sample) -> Option<u64>) -> Option<(u64, u64)> {
    let values = samples.iter().filter_map(metric);
    let min = values.clone().min()?;
    Some((min, values.max()?))
}
