//! Hub lifecycle tests: resume, caps, expiry and slow sockets, on the hub alone (no sockets).

use std::collections::VecDeque;

use super::*;
use crate::server::outbox::{Outgoing, TOO_SLOW};

fn hub() -> Hub {
    Hub::new(&ServerConfig::for_tests(), Arc::new(Stats::default()))
}

fn drain(conn: &ConnCell) -> Vec<u64> {
    let mut batch = VecDeque::new();
    conn.take(&mut batch).expect("not killed");
    batch
        .into_iter()
        .map(|item| match item {
            Outgoing::Event { seq, .. } => seq,
            Outgoing::Frame(_) => 0,
        })
        .collect()
}

#[test]
fn detached_sessions_keep_buffering_and_resume_in_order() {
    let now = Instant::now();
    let hub = hub();
    let a = hub.attach("u1", None, None, now).unwrap();
    assert_eq!(hub.notify_user("u1", "e", &Value::Null, now), 1);
    assert_eq!(drain(&a.conn), vec![1]);
    hub.detach(&a, now);
    assert_eq!(hub.notify_user("u1", "e", &Value::Null, now), 0);
    assert_eq!(hub.notify_user("u1", "e", &Value::Null, now), 0);
    let point = ResumePoint {
        session: a.session.id.to_string(),
        seq: 1,
    };
    let b = hub.attach("u1", None, Some(&point), now).unwrap();
    assert!(b.resumed);
    assert!(Arc::ptr_eq(&b.session, &a.session));
    let seqs: Vec<u64> = b.replay.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs, vec![2, 3]);
    assert_eq!(hub.stats.detached.get(), 0);
    assert_eq!(hub.stats.sockets.get(), 1);
}

#[test]
fn a_user_keeps_at_most_twice_their_socket_limit_of_detached_sessions() {
    let now = Instant::now();
    let hub = hub();
    let cap = hub.max_conns_per_user * 2;
    let mut sessions = Vec::new();
    for _ in 0..cap + 3 {
        let a = hub.attach("u1", None, None, now).unwrap();
        hub.detach(&a, now);
        sessions.push(a.session);
    }
    let other = hub.attach("u2", None, None, now).unwrap();
    hub.detach(&other, now);
    let kept: Vec<_> = sessions.iter().filter(|s| s.lock().alive).collect();
    assert_eq!(kept.len(), cap);
    assert!(!sessions[0].lock().alive, "the oldest went first");
    assert!(sessions.last().unwrap().lock().alive);
    assert_eq!(
        hub.stats.sessions.get(),
        cap + 1,
        "another user's session is untouched"
    );
    assert_eq!(hub.stats.sessions_evicted.get(), 3);
}

#[test]
fn another_users_or_expired_session_is_not_resumed() {
    let now = Instant::now();
    let hub = hub();
    let a = hub.attach("u1", None, None, now).unwrap();
    hub.detach(&a, now);
    let point = ResumePoint {
        session: a.session.id.to_string(),
        seq: 0,
    };
    let b = hub.attach("u2", None, Some(&point), now).unwrap();
    assert!(!b.resumed);
    hub.expire(now + Duration::from_secs(60));
    assert!(!a.session.lock().alive);
    let c = hub.attach("u1", None, Some(&point), now).unwrap();
    assert!(!c.resumed);
    assert_eq!(hub.stats.sockets.get(), 2);
    assert_eq!(hub.stats.sessions.get(), 2);
}

#[test]
fn a_failed_resume_leaves_the_sessions_live_socket_alone() {
    let now = Instant::now();
    let hub = hub();
    let a = hub.attach("u1", None, None, now).unwrap();
    let future = ResumePoint {
        session: a.session.id.to_string(),
        seq: 99,
    };
    let b = hub.attach("u1", None, Some(&future), now).unwrap();
    assert!(!b.resumed);
    assert!(!Arc::ptr_eq(&a.session, &b.session));
    assert!(
        a.conn.kill_order().is_none(),
        "nothing was resumed, so nothing was taken over"
    );
    assert_eq!(hub.notify_user("u1", "e", &Value::Null, now), 2);
    assert_eq!(drain(&a.conn), vec![1]);
}

#[test]
fn a_full_socket_queue_closes_the_socket_but_not_the_session() {
    let now = Instant::now();
    let hub = hub();
    let a = hub.attach("u1", None, None, now).unwrap();
    for _ in 0..crate::server::outbox::QUEUE_FRAMES {
        assert_eq!(hub.notify_user("u1", "e", &Value::Null, now), 1);
    }
    assert_eq!(hub.notify_user("u1", "e", &Value::Null, now), 0);
    let mut batch = VecDeque::new();
    assert_eq!(a.conn.take(&mut batch), Err(TOO_SLOW));
    hub.detach(&a, now);
    assert_eq!(hub.stats.sockets.get(), 0);
    assert_eq!(hub.stats.sessions.get(), 1, "the session stays for resume");
    let point = ResumePoint {
        session: a.session.id.to_string(),
        seq: 0,
    };
    let b = hub.attach("u1", None, Some(&point), now).unwrap();
    assert!(b.resumed);
    assert_eq!(b.replay.len(), crate::server::outbox::QUEUE_FRAMES + 1);
}

#[test]
fn dropping_every_session_returns_every_counter_to_zero() {
    let now = Instant::now();
    let hub = hub();
    for n in 0..20u64 {
        let a = hub.attach(&format!("u{}", n % 3), None, None, now).unwrap();
        hub.rooms.join("chat:1", &a.session);
        a.session
            .lock()
            .rooms
            .push(hub.rooms.get("chat:1").unwrap());
        hub.deliver_room("chat:1", "e", &Value::Null, None, now);
        hub.detach(&a, now);
    }
    hub.expire(now + Duration::from_secs(60));
    let stats = &hub.stats;
    assert_eq!(
        (
            stats.sessions.get(),
            stats.detached.get(),
            stats.sockets.get(),
            stats.users.get(),
            stats.rooms.get(),
            stats.user_rooms.get(),
            stats.replay_entries.get(),
            stats.replay_bytes.get(),
        ),
        (0, 0, 0, 0, 0, 0, 0, 0)
    );
}
