//! The soak's books: every event published (who sent it, to whom, between which instants), every
//! client generation's receipts, and the check that finds what was lost, doubled or reordered.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use tokio::time::Instant;

/// Where an event goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// `/notify` to the user of slot `n`.
    User(usize),
    /// `/notify` to room `chat:soak-n`, or a client's `message` there.
    Room(usize),
}

/// One event that reached the server: `source`'s `n`-th, processed between `sent_at` (the
/// request or `send()` began) and `done_at` (its 202 or ack came back).
#[derive(Debug, Clone)]
pub struct Published {
    pub source: String,
    pub n: u64,
    pub target: Target,
    pub sent_at: Instant,
    pub done_at: Instant,
}

/// What one client generation (one `Client`, one session) saw during its life.
#[derive(Debug, Clone)]
pub struct GenReport {
    pub slot: usize,
    pub room: usize,
    /// When it was connected and in its room: events published after this are owed to it.
    pub accept_start: Option<Instant>,
    /// When it stopped counting: events done before this are owed to it.
    pub retire_start: Instant,
    /// `(source, n)` of every soak event received, in order.
    pub received: Vec<(String, u64)>,
    /// Session sequence numbers that skipped (`seq` ≠ previous + 1).
    pub seq_gaps: u64,
    /// Sends handed to `Client::send`.
    pub sent: u64,
    /// Of those, acked `ok`.
    pub acked: u64,
    /// Acks with an error.
    pub ack_errors: u64,
    /// Acks that arrived a second time for the same id.
    pub ack_dups: u64,
    /// `resume_failed` notices: the session was lost.
    pub resume_failed: u64,
    /// Whether the closing fence arrived (everything owed before it had its chance).
    pub fenced: bool,
    /// Reconnects of this client.
    pub reconnects: u64,
}

/// What the check found, summed over every generation.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Totals {
    pub generations: u64,
    pub reconnects: u64,
    pub events_owed: u64,
    pub events_received: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub seq_gaps: u64,
    pub sent: u64,
    pub unacked: u64,
    pub ack_errors: u64,
    pub ack_dups: u64,
    pub resume_failed: u64,
    pub unfenced: u64,
    pub never_connected: u64,
}

impl Totals {
    /// Whether every count that must be zero is.
    pub fn clean(&self) -> bool {
        self.lost == 0
            && self.duplicated == 0
            && self.reordered == 0
            && self.seq_gaps == 0
            && self.unacked == 0
            && self.ack_errors == 0
            && self.ack_dups == 0
            && self.resume_failed == 0
            && self.unfenced == 0
            && self.never_connected == 0
    }
}

/// Everything published, appended by the notifiers and the clients' ack listeners.
#[derive(Debug, Default)]
pub struct Ledger {
    published: Mutex<Vec<Published>>,
}

impl Ledger {
    pub fn publish(&self, entry: Published) {
        self.published
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(entry);
    }

    pub fn published(&self) -> usize {
        self.published
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Checks every generation against what was published in its window.
    pub fn check(&self, reports: &[GenReport]) -> Totals {
        let published = self.published.lock().unwrap_or_else(|p| p.into_inner());
        let mut by_target: HashMap<Target, Vec<&Published>> = HashMap::new();
        for entry in published.iter() {
            by_target.entry(entry.target).or_default().push(entry);
        }
        let mut totals = Totals::default();
        for report in reports {
            totals.generations += 1;
            totals.reconnects += report.reconnects;
            totals.seq_gaps += report.seq_gaps;
            totals.sent += report.sent;
            totals.unacked += report.sent - report.acked - report.ack_errors;
            totals.ack_errors += report.ack_errors;
            totals.ack_dups += report.ack_dups;
            totals.resume_failed += report.resume_failed;
            totals.unfenced += u64::from(!report.fenced);
            totals.events_received += report.received.len() as u64;
            let (duplicated, reordered) = order_faults(&report.received);
            totals.duplicated += duplicated;
            totals.reordered += reordered;
            let Some(accept_start) = report.accept_start else {
                totals.never_connected += 1;
                continue;
            };
            let got: HashSet<(&str, u64)> = report
                .received
                .iter()
                .map(|(s, n)| (s.as_str(), *n))
                .collect();
            for target in [Target::User(report.slot), Target::Room(report.room)] {
                for entry in by_target.get(&target).into_iter().flatten() {
                    if entry.sent_at >= accept_start && entry.done_at <= report.retire_start {
                        totals.events_owed += 1;
                        if !got.contains(&(entry.source.as_str(), entry.n)) {
                            totals.lost += 1;
                        }
                    }
                }
            }
        }
        totals
    }
}

/// (duplicates, reorderings) in one receipt log: the same `(source, n)` twice, or an `n` below
/// one already seen from the same source.
fn order_faults(received: &[(String, u64)]) -> (u64, u64) {
    let mut seen = HashSet::new();
    let mut highest: HashMap<&str, u64> = HashMap::new();
    let (mut duplicated, mut reordered) = (0, 0);
    for (source, n) in received {
        if !seen.insert((source.as_str(), *n)) {
            duplicated += 1;
            continue;
        }
        let top = highest.entry(source.as_str()).or_insert(0);
        if *n < *top {
            reordered += 1;
        } else {
            *top = *n;
        }
    }
    (duplicated, reordered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_and_reorderings_are_counted_apart() {
        let log = |items: &[(&str, u64)]| -> Vec<(String, u64)> {
            items.iter().map(|(s, n)| (s.to_string(), *n)).collect()
        };
        assert_eq!(order_faults(&log(&[("a", 1), ("b", 1), ("a", 2)])), (0, 0));
        assert_eq!(order_faults(&log(&[("a", 1), ("a", 1)])), (1, 0));
        assert_eq!(order_faults(&log(&[("a", 2), ("a", 1)])), (0, 1));
    }
}
