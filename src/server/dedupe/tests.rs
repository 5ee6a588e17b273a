//! The §5 rule on one pair, and the bounds (window, per-user cap, budget, retention) on the index.

use super::*;

fn dedupe(budget: usize, per_user: usize) -> (Dedupe, Arc<Stats>) {
    let stats = Arc::new(Stats::default());
    let dedupe = Dedupe::new(budget, per_user, Duration::from_secs(60), stats.clone());
    (dedupe, stats)
}

fn client(name: &str) -> Scope {
    Scope::Client(name.into())
}

/// Sends `id` on the pair: `Some(ack)` when it was processed (recorded with ack `ack{id}`).
fn send(d: &Dedupe, user: &str, scope: &Scope, id: u64, now: Instant) -> Seen {
    d.with_pair(&user.into(), scope, now, |pair| {
        let seen = pair.check(id);
        if seen == Seen::New {
            pair.record(id, Some(format!("ack{id}").into()));
        }
        seen
    })
}

fn floor_of(d: &Dedupe, user: &str, scope: &Scope) -> u64 {
    let index = d.lock();
    let slot = &index.users[user].pairs[scope];
    let floor = lock_memory(&slot.cell).floor();
    floor
}

#[test]
fn a_remembered_id_is_answered_again_a_lower_new_one_processed_and_the_floor_expires() {
    let mut mem = PairMemory::default();
    assert_eq!(mem.check(10), Seen::New);
    mem.record(10, Some("ten".into()));
    mem.record(5, None);
    assert_eq!(mem.check(10), Seen::Remembered(Some("ten".into())));
    assert_eq!(mem.check(5), Seen::Remembered(None));
    assert_eq!(
        mem.check(7),
        Seen::New,
        "lower than the highest, never processed"
    );
    // The window holds the most recent WINDOW processed ids; the floor is the highest forgotten.
    for id in 100..100 + WINDOW as u64 {
        mem.record(id, None);
    }
    assert_eq!(mem.floor(), 10);
    assert_eq!(mem.check(10), Seen::Expired);
    assert_eq!(mem.check(5), Seen::Expired);
    assert_eq!(
        mem.check(7),
        Seen::Expired,
        "at or below the floor: never ok"
    );
    assert_eq!(mem.check(11), Seen::New, "above the floor, never processed");
    assert_eq!(mem.check(100), Seen::Remembered(None));
    assert_eq!(mem.acks.len(), WINDOW);
    assert_eq!(mem.bytes, WINDOW * ID_COST);
}

#[test]
fn one_pair_is_shared_by_every_session_of_a_client_and_users_are_apart() {
    let (d, _) = dedupe(usize::MAX, 16);
    let now = Instant::now();
    let c = client("abcdefghijklmnop");
    assert_eq!(send(&d, "u1", &c, 1, now), Seen::New);
    assert_eq!(
        send(&d, "u1", &c, 1, now),
        Seen::Remembered(Some("ack1".into()))
    );
    assert_eq!(send(&d, "u2", &c, 1, now), Seen::New, "another user");
    let s = Scope::Session(SessionId(7));
    assert_eq!(
        send(&d, "u1", &s, 1, now),
        Seen::New,
        "a client without an id"
    );
    d.forget_session(&"u1".into(), SessionId(7));
    assert_eq!(d.pairs(), 2);
}

#[test]
fn past_the_per_user_cap_the_least_recently_used_client_keeps_only_its_floor() {
    let (d, stats) = dedupe(usize::MAX, 2);
    let t = Instant::now();
    let (a, b, c) = (client("a"), client("b"), client("c"));
    send(&d, "u1", &a, 5, t);
    send(&d, "u1", &b, 3, t);
    send(&d, "u1", &a, 6, t);
    send(&d, "u1", &c, 1, t);
    assert_eq!(stats.dedupe_evicted.get(), 1);
    assert_eq!(floor_of(&d, "u1", &b), 3, "b was used least recently");
    assert_eq!(
        send(&d, "u1", &b, 3, t),
        Seen::Expired,
        "never processed twice"
    );
    assert_eq!(send(&d, "u1", &b, 4, t), Seen::New, "b has a window again");
    assert_eq!(
        send(&d, "u1", &a, 6, t),
        Seen::Expired,
        "a was reduced to make room for b"
    );
    // Using `a` again reduced `c` (now the least recently used), not `b`.
    assert_eq!(
        send(&d, "u1", &b, 4, t),
        Seen::Remembered(Some("ack4".into()))
    );
    assert_eq!(send(&d, "u1", &c, 1, t), Seen::Expired);
    assert_eq!(stats.dedupe_evicted.get(), 4);
    // Another user is not touched by u1's cap.
    send(&d, "u2", &a, 1, t);
    assert_eq!(
        send(&d, "u2", &a, 1, t),
        Seen::Remembered(Some("ack1".into()))
    );
}

#[test]
fn over_the_budget_the_oldest_windows_go_first_then_floors_and_the_bytes_come_back() {
    // Ten acks `ack1` … `ack10` per pair: its key, ten ids and 41 bytes of ack text.
    let per_pair = key_cost("u1", &client("p0")) + 10 * ID_COST + 41;
    let (d, stats) = dedupe(3 * per_pair, 100);
    let t = Instant::now();
    for n in 0..3 {
        for id in 1..=10 {
            send(&d, "u1", &client(&format!("p{n}")), id, t);
        }
    }
    assert_eq!(stats.dedupe_bytes.get(), 3 * per_pair);
    assert_eq!(stats.dedupe_evicted.get(), 0);
    send(&d, "u1", &client("p3"), 1, t);
    assert_eq!(stats.dedupe_evicted.get(), 1, "one window freed enough");
    assert!(stats.dedupe_bytes.get() <= 3 * per_pair);
    assert_eq!(
        send(&d, "u1", &client("p0"), 5, t),
        Seen::Expired,
        "the oldest"
    );
    assert_eq!(
        send(&d, "u1", &client("p1"), 5, t),
        Seen::Remembered(Some("ack5".into()))
    );
    assert_eq!(stats.dedupe_floors_dropped.get(), 0);
    // Floors alone over the budget: the oldest floors are dropped (the at-least-once edge).
    let (tiny, tiny_stats) = dedupe(1, 100);
    send(&tiny, "u1", &client("x"), 1, t);
    send(&tiny, "u1", &client("y"), 1, t);
    assert_eq!(tiny_stats.dedupe_floors_dropped.get(), 2);
    assert_eq!((tiny.pairs(), tiny_stats.dedupe_bytes.get()), (0, 0));
    // Retention: a minute after the last send every pair is gone, and so are its bytes.
    d.expire(t + Duration::from_secs(60));
    assert_eq!((d.pairs(), stats.dedupe_bytes.get()), (0, 0));
    assert_eq!(stats.dedupe_pairs.get(), 0);
}

#[test]
fn retention_counts_from_the_last_send_and_the_queues_stay_bounded() {
    let (d, _) = dedupe(usize::MAX, 16);
    let t0 = Instant::now();
    let c = client("c");
    for id in 1..=1_000 {
        send(&d, "u1", &c, id, t0 + Duration::from_millis(id * 30));
    }
    let last = t0 + Duration::from_millis(30_000);
    d.expire(last + Duration::from_secs(59));
    assert_eq!(
        send(&d, "u1", &c, 1_000, last),
        Seen::Remembered(Some("ack1000".into()))
    );
    d.expire(last + Duration::from_secs(60));
    assert_eq!(d.pairs(), 0);
    let index = d.lock();
    assert!(index.windows.len() <= 64 && index.floors.is_empty());
}
