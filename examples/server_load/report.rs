//! What a run measured ([`Report`], written as JSON with `--json`), how it prints, and the
//! side-by-side table of several reports with ratios against the bare tokio-tungstenite server.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The label whose rows the ratios divide by.
pub(crate) const REFERENCE: &str = "bare";

/// Everything one run measured. Times in seconds (`_s`) or milliseconds (`_ms`).
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Report {
    pub label: String,
    pub proto: String,
    pub sockets: usize,
    pub servers: usize,
    /// Sockets that completed their first join.
    pub joined: usize,
    /// From the first connect to the last join, when all `sockets` joined.
    pub connect_s: Option<f64>,
    /// From the first connect to the last join that happened.
    pub connect_last_s: f64,
    /// From the last join until no frame arrived for the settle time.
    pub settle_s: f64,
    pub rss_source: String,
    pub rss_before: Option<u64>,
    pub rss_after: Option<u64>,
    /// `rss_after` of each server, when there are several (`--server-pid` or `--url` order).
    #[serde(default)]
    pub rss_after_by_server: Vec<u64>,
    /// (after − before) / joined, in bytes.
    pub rss_per_conn: Option<f64>,
    pub rounds: Vec<Round>,
    pub summary: Option<Summary>,
    pub storm: Option<Storm>,
    pub counters: BTreeMap<String, u64>,
    pub failures: BTreeMap<String, u64>,
}

/// One fan-out: latencies from just before the `POST /notify` to each socket's receipt.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Round {
    pub expected: usize,
    pub received: usize,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// Time to the last socket, when every expected socket received it.
    pub last_ms: Option<f64>,
    pub post_error: Option<String>,
    /// CPU time the server (the `--server-pid`s) and this tool used during the round.
    pub server_cpu_ms: Option<f64>,
    pub client_cpu_ms: Option<f64>,
}

/// The measured rounds together. The medians over rounds are what the table shows (one round
/// disturbed by a neighbour on a shared machine moves them little); the pooled percentiles are
/// over every receipt of every round.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Summary {
    pub rounds: usize,
    /// Rounds that reached every expected socket.
    pub complete_rounds: usize,
    /// Medians over rounds of each round's p50 and p99, and of its time to the last socket
    /// (complete rounds only).
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub last_median_ms: Option<f64>,
    /// The slowest receipt of any round.
    pub max_ms: f64,
    pub pooled_p50_ms: f64,
    pub pooled_p99_ms: f64,
}

impl Summary {
    /// Sums up `rounds`; `pooled` holds every receipt latency of them (ns), sorted.
    pub(crate) fn of(rounds: &[Round], pooled: &[u64]) -> Option<Summary> {
        let mut p50: Vec<f64> = rounds.iter().filter_map(|r| r.p50_ms).collect();
        let mut p99: Vec<f64> = rounds.iter().filter_map(|r| r.p99_ms).collect();
        let mut lasts: Vec<f64> = rounds.iter().filter_map(|r| r.last_ms).collect();
        Some(Summary {
            rounds: rounds.len(),
            complete_rounds: lasts.len(),
            p50_ms: median(&mut p50)?,
            p99_ms: median(&mut p99)?,
            last_median_ms: median(&mut lasts),
            max_ms: percentile_ms(pooled, 1.0)?,
            pooled_p50_ms: percentile_ms(pooled, 0.5)?,
            pooled_p99_ms: percentile_ms(pooled, 0.99)?,
        })
    }
}

/// The disconnect/reconnect storm.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Storm {
    pub dropped: usize,
    /// From the drop to the first `/health` answer reporting 0 connections.
    pub drain_s: Option<f64>,
    /// Slowest `/health` answer from the drop to the reconnect wave, and during the wave.
    pub health_max_drain_ms: Option<f64>,
    pub health_max_wave_ms: Option<f64>,
    pub health_samples: usize,
    pub health_failures: usize,
    /// The same for the probe listeners (`--probe-url`; absent without one).
    #[serde(default)]
    pub probe_max_drain_ms: Option<f64>,
    #[serde(default)]
    pub probe_max_wave_ms: Option<f64>,
    #[serde(default)]
    pub probe_failures: usize,
    /// Sockets back (sockline: resumed and holding every outage event).
    pub back: usize,
    /// From the start of the reconnect wave until the last socket was back, when all were.
    pub all_back_s: Option<f64>,
    pub last_back_s: Option<f64>,
    pub resumes: bool,
    pub resumed: usize,
    pub resume_refused: usize,
    pub events_posted: u32,
    /// Sockets that ended without every storm event (not back, or missed some).
    pub short_sockets: usize,
    /// Storm events missing, summed over sockets (gaps plus events a socket never got).
    pub missed: u64,
    pub duplicates: u64,
    pub retries: u64,
}

/// Nearest-rank percentile of sorted nanoseconds, in ms.
pub(crate) fn percentile_ms(sorted: &[u64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1] as f64 / 1e6)
}

pub(crate) fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => None,
        n if n % 2 == 1 => Some(values[n / 2]),
        n => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

fn ms(v: Option<f64>) -> String {
    v.map_or("–".to_owned(), |v| format!("{v:.1} ms"))
}

fn secs(v: Option<f64>) -> String {
    v.map_or("–".to_owned(), |v| format!("{v:.2} s"))
}

fn kib(v: Option<f64>) -> String {
    v.map_or("–".to_owned(), |v| format!("{:.1} KiB", v / 1024.0))
}

impl Report {
    /// Prints the run for a person.
    pub(crate) fn print(&self) {
        println!(
            "{} ({}): {} sockets on {} server(s)",
            self.label, self.proto, self.sockets, self.servers
        );
        let all = self.connect_s.map_or(
            format!(
                "NOT ALL: {} joined, the last after {:.2} s",
                self.joined, self.connect_last_s
            ),
            |s| format!("{s:.2} s"),
        );
        println!(
            "  connect + join, all {}: {all}; settled {:.2} s later",
            self.sockets, self.settle_s
        );
        println!(
            "  RSS ({}): before {}, after {}, per idle connection {}",
            self.rss_source,
            self.rss_before
                .map_or("–".into(), |b| format!("{:.1} MiB", b as f64 / 1048576.0)),
            self.rss_after
                .map_or("–".into(), |b| format!("{:.1} MiB", b as f64 / 1048576.0)),
            kib(self.rss_per_conn),
        );
        if self.rss_after_by_server.len() > 1 {
            let each: Vec<String> = self
                .rss_after_by_server
                .iter()
                .map(|b| format!("{:.1} MiB", *b as f64 / 1048576.0))
                .collect();
            println!("  RSS after, per server: {}", each.join(", "));
        }
        for (i, r) in self.rounds.iter().enumerate() {
            println!(
                "  round {i}: {}/{} received, p50 {}, p99 {}, max {}, last socket {}; CPU: server {}, load tool {}{}",
                r.received,
                r.expected,
                ms(r.p50_ms),
                ms(r.p99_ms),
                ms(r.max_ms),
                r.last_ms
                    .map_or("NOT ALL".to_owned(), |v| format!("{v:.1} ms")),
                ms(r.server_cpu_ms),
                ms(r.client_cpu_ms),
                r.post_error
                    .as_ref()
                    .map_or(String::new(), |e| format!(" (POST failed: {e})")),
            );
        }
        if let Some(s) = &self.summary {
            println!(
                "  fan-out, {} rounds ({} complete), medians over rounds: p50 {:.1} ms, p99 {:.1} ms, time to last socket {}; \
                 slowest receipt {:.1} ms; all receipts pooled: p50 {:.1} ms, p99 {:.1} ms",
                s.rounds, s.complete_rounds, s.p50_ms, s.p99_ms, ms(s.last_median_ms), s.max_ms,
                s.pooled_p50_ms, s.pooled_p99_ms
            );
        }
        if let Some(st) = &self.storm {
            println!(
                "  storm: dropped {}; server saw 0 connections after {}; /health slowest {} while draining, {} during the wave ({} samples, {} failed)",
                st.dropped, secs(st.drain_s), ms(st.health_max_drain_ms), ms(st.health_max_wave_ms),
                st.health_samples, st.health_failures
            );
            if st.probe_max_wave_ms.is_some() {
                println!(
                    "  storm: probe listener /health slowest {} while draining, {} during the wave ({} failed)",
                    ms(st.probe_max_drain_ms), ms(st.probe_max_wave_ms), st.probe_failures
                );
            }
            let what = if st.resumes {
                "resumed with every outage event"
            } else {
                "reconnected and joined"
            };
            println!(
                "  storm: {}/{} {what}; all back after {} (last back {}); resumed {}, refused {}, retries {}",
                st.back, st.dropped, secs(st.all_back_s), secs(st.last_back_s), st.resumed, st.resume_refused, st.retries
            );
            if st.resumes {
                println!(
                    "  storm: {} events posted; missed {} (on {} sockets), duplicated {}",
                    st.events_posted, st.missed, st.short_sockets, st.duplicates
                );
            }
        }
        if !self.counters.is_empty() {
            let c: Vec<String> = self
                .counters
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            println!("  counters: {}", c.join(", "));
        }
        for (reason, count) in &self.failures {
            println!("  failure ×{count}: {reason}");
        }
    }
}

/// The median of `f` over `reports`.
fn med(reports: &[&Report], f: impl Fn(&Report) -> Option<f64>) -> Option<f64> {
    let mut values: Vec<f64> = reports.iter().filter_map(|r| f(r)).collect();
    median(&mut values)
}

fn ratio(value: Option<f64>, reference: Option<f64>) -> String {
    match (value, reference) {
        (Some(v), Some(r)) if r > 0.0 => format!("{:.2}×", v / r),
        _ => "–".to_owned(),
    }
}

const NOTES: &str = "
joined: sockets that connected and joined within the connect deadline (median over runs); the
  rounds and the storm run on those.
RSS/conn: (server RSS after - before) / sockets joined. Latencies run from just before
  POST /notify to each socket's read of the event; p50, p99 and last (time to the last socket)
  are medians over the measured rounds; max is the slowest receipt of any round.
xbare: ratio to the bare tokio-tungstenite server at the same N (medians over runs).
Storm: drain = from the drop until /health reports 0 connections; health drain/wave = the
  slowest /health answer (a new connection each, every 20 ms, from a thread of the load tool's
  own) while the server drains, and
  while the sockets reconnect (on loopback that includes waiting in the accept queue behind
  the reconnecting sockets, and the load tool's own handshake work); probe drain/wave = the
  same on sockline-server's probe listener (--health-addr: /health on a thread of its own;
  – for servers without one); all back = from the wave's
  start until every socket is back (sockline: resumed, holding every event posted during the
  outage); missed/dup = storm events missed / duplicated, summed over sockets.";

/// Prints one table of `files` (reports): a row per (N, label), medians over repeated runs,
/// ratios against the [`REFERENCE`] row of the same N.
pub(crate) fn print_table(files: &[PathBuf]) -> Result<(), String> {
    let mut reports = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let report: Report =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
        reports.push(report);
    }
    let mut order: Vec<(usize, String)> = Vec::new();
    for r in &reports {
        let key = (r.sockets, r.label.clone());
        if !order.contains(&key) {
            order.push(key);
        }
    }
    // By N, then sockline, the reference, the Node peers, anything else.
    let rank = |label: &str| {
        ["sockline", REFERENCE, "ws", "socketio"]
            .iter()
            .position(|l| *l == label)
            .unwrap_or(4)
    };
    order.sort_by(|(n1, l1), (n2, l2)| (n1, rank(l1), l1).cmp(&(n2, rank(l2), l2)));
    let header = [
        "N",
        "server",
        "runs",
        "joined",
        "RSS/conn",
        "×bare",
        "connect",
        "p50",
        "p99",
        "×bare",
        "max",
        "last",
        "×bare",
        "drain",
        "health drain/wave",
        "probe drain/wave",
        "all back",
        "missed/dup",
    ];
    let mut rows = vec![header.iter().map(|h| h.to_string()).collect::<Vec<_>>()];
    for (n, label) in &order {
        let runs: Vec<&Report> = reports
            .iter()
            .filter(|r| r.sockets == *n && &r.label == label)
            .collect();
        let refs: Vec<&Report> = reports
            .iter()
            .filter(|r| r.sockets == *n && r.label == REFERENCE)
            .collect();
        let rss = |r: &Report| r.rss_per_conn;
        let p99 = |r: &Report| r.summary.as_ref().map(|s| s.p99_ms);
        let last = |r: &Report| r.summary.as_ref().and_then(|s| s.last_median_ms);
        let storm = |r: &Report| r.storm.clone();
        let storms: Vec<Storm> = runs.iter().filter_map(|r| storm(r)).collect();
        let health = {
            let drain = med(&runs, |r| r.storm.as_ref()?.health_max_drain_ms);
            let wave = med(&runs, |r| r.storm.as_ref()?.health_max_wave_ms);
            let f = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.0}"));
            format!("{} / {} ms", f(drain), f(wave))
        };
        let probe = {
            let drain = med(&runs, |r| r.storm.as_ref()?.probe_max_drain_ms);
            let wave = med(&runs, |r| r.storm.as_ref()?.probe_max_wave_ms);
            match (drain, wave) {
                (None, None) => "–".to_owned(),
                _ => {
                    let f = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.0}"));
                    format!("{} / {} ms", f(drain), f(wave))
                }
            }
        };
        let missed = if storms.is_empty() {
            "–".to_owned()
        } else if storms.iter().all(|s| s.resumes) {
            let m: u64 = storms.iter().map(|s| s.missed).max().unwrap_or(0);
            let d: u64 = storms.iter().map(|s| s.duplicates).max().unwrap_or(0);
            format!("{m}/{d}")
        } else {
            "no resume".to_owned()
        };
        let connect = {
            let all = runs.iter().all(|r| r.connect_s.is_some());
            let v = med(&runs, |r| Some(r.connect_s.unwrap_or(r.connect_last_s)));
            if all {
                secs(v)
            } else {
                format!("{} (NOT ALL)", secs(v))
            }
        };
        let all_back = {
            let all = runs
                .iter()
                .all(|r| r.storm.as_ref().is_some_and(|s| s.all_back_s.is_some()));
            let v = med(&runs, |r| {
                r.storm
                    .as_ref()
                    .and_then(|s| s.all_back_s.or(s.last_back_s))
            });
            match (storms.is_empty(), all) {
                (true, _) => "–".to_owned(),
                (false, true) => secs(v),
                (false, false) => format!("{} (NOT ALL)", secs(v)),
            }
        };
        rows.push(vec![
            n.to_string(),
            label.clone(),
            runs.len().to_string(),
            med(&runs, |r| Some(r.joined as f64)).map_or("–".to_owned(), |j| format!("{j:.0}")),
            kib(med(&runs, rss)),
            ratio(med(&runs, rss), med(&refs, rss)),
            connect,
            ms(med(&runs, |r| r.summary.as_ref().map(|s| s.p50_ms))),
            ms(med(&runs, p99)),
            ratio(med(&runs, p99), med(&refs, p99)),
            ms(med(&runs, |r| r.summary.as_ref().map(|s| s.max_ms))),
            ms(med(&runs, last)),
            ratio(med(&runs, last), med(&refs, last)),
            secs(med(&runs, |r| r.storm.as_ref().and_then(|s| s.drain_s))),
            health,
            probe,
            all_back,
            missed,
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            rows.iter()
                .map(|row| row[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (cell, w))| {
                if c == 1 {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        println!("{}", cells.join("  "));
        if i == 0 {
            println!(
                "{}",
                widths
                    .iter()
                    .map(|w| "-".repeat(*w))
                    .collect::<Vec<_>>()
                    .join("  ")
            );
        }
    }
    println!("{NOTES}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles_and_medians() {
        let ns: Vec<u64> = (1..=100).map(|i| i * 1_000_000).collect();
        assert_eq!(percentile_ms(&ns, 0.5), Some(50.0));
        assert_eq!(percentile_ms(&ns, 0.99), Some(99.0));
        assert_eq!(percentile_ms(&ns, 1.0), Some(100.0));
        assert_eq!(percentile_ms(&[7_000_000], 0.99), Some(7.0));
        // Nearest rank rounds up: p99 of 10 samples is the 10th, p50 of 3 the 2nd.
        assert_eq!(percentile_ms(&ns[..10], 0.99), Some(10.0));
        assert_eq!(percentile_ms(&ns[..3], 0.5), Some(2.0));
        assert_eq!(percentile_ms(&[], 0.5), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }
}
