//! The `server` check: the reference server's per-socket frame handler and auth, fed a
//! [`ServerScript`] on an authenticated socket (`A`, user `mallory`) and an unauthenticated one
//! (`U`), over in-memory pipes on a paused clock ([`Harness`]). After the script:
//!
//! - nothing panicked, in the check's thread or in any server task (they all run on it);
//! - every text frame the server sent decodes with both the serde
//!   [`ServerFrame`](crate::protocol::ServerFrame) and the client's
//!   [`IncomingFrame`](crate::protocol::IncomingFrame); no binary frame; every close code is one
//!   PROTOCOL.md §9 names, and a client's close is answered with a close;
//! - before `authenticated` a socket hears nothing but `auth_error`; a first frame that is not
//!   a valid `auth` is closed (4001, or 1007 / 1008 / 1009 for what the frame itself broke;
//!   an `auth` refused for its version or client id is told so first); a bad token gets
//!   `auth_error` and 4001; an `authenticated` names the token's user and never
//!   another user's session; no unauthenticated socket outlives the auth timeout; a refused
//!   `refresh` is the only `auth_error` after `authenticated`, and the socket then closes (4001);
//! - on a socket that processed everything (a final `send` was acked), every `send` that
//!   decodes got exactly one `ack` with its id, and no ack came from nowhere;
//! - the victim (another user, authenticated, one unread notification) heard nothing, kept its
//!   socket, its session, its rooms and its unread count.

mod sock;

use std::cell::Cell;
use std::sync::Once;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use self::sock::Sock;
use super::server_script::{ServerScript, ServerStep};
use crate::protocol::{ClientFrame, MAX_FRAME_BYTES, MAX_WIRE_ID};
use crate::server::harness::{Harness, SessionView};
use crate::server::ServerConfig;

const SECRET: &str = "test-secret";
const ATTACKER: &str = "mallory";
const VICTIM: &str = "victim";
const VICTIM_CLIENT: &str = "victim-client-0123456789";
/// The most virtual time a script may let pass.
const WAIT_BUDGET: Duration = Duration::from_secs(1800);
/// The id of the `send` that ends a socket's script.
const BARRIER: u64 = MAX_WIRE_ID;
/// Close codes PROTOCOL.md §9 names, and 1002 (a WebSocket protocol violation).
const CLOSE_CODES: &[u16] = &[
    1000, 1001, 1002, 1006, 1007, 1008, 1009, 1011, 1012, 1013, 4000, 4001, 4002, 4003, 4008,
];
/// The `auth_error` codes a refused `refresh` gets (PROTOCOL.md §7).
const REFRESH_ERROR_CODES: &[&str] = &["invalid_token", "expired", "user_mismatch"];
/// The `auth_error` codes PROTOCOL.md §2 and §7 name.
pub(super) const AUTH_ERROR_CODES: &[&str] = &[
    "invalid_token",
    "expired",
    "timeout",
    "unsupported_version",
    "invalid_client",
    "user_mismatch",
];

thread_local! {
    static PANICS: Cell<usize> = const { Cell::new(0) };
}

/// Counts panics per thread (then runs the hook that was there: libFuzzer's aborts).
fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.with(|p| p.set(p.get() + 1));
            previous(info);
        }));
    });
}

/// Runs the check on one input.
pub fn server(data: &[u8]) {
    let script = ServerScript::parse(data);
    count_panics();
    let before = PANICS.with(Cell::get);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => panic!("no tokio runtime: {e}"),
    };
    runtime.block_on(run(&script));
    drop(runtime);
    let panics = PANICS.with(Cell::get) - before;
    assert_eq!(panics, 0, "the server panicked ({panics} times)");
}

fn config(bits: u8) -> ServerConfig {
    let mut config = ServerConfig::for_tests();
    // Pings and the silence close are not what this check is about; every script is shorter.
    config.heartbeat = Duration::from_secs(3600);
    if bits & 1 != 0 {
        config.rate_limit = 2;
    }
    if bits & 2 != 0 {
        config.frame_rate = 20;
    }
    if bits & 4 != 0 {
        config.max_conns_per_user = 2;
    }
    config
}

/// What the script can name, made before it runs.
struct Names {
    tokens: Vec<String>,
    victim_session: String,
    attacker_session: String,
}

fn token(secret: &str, claims: &Value, algorithm: jsonwebtoken::Algorithm) -> String {
    match jsonwebtoken::encode(
        &jsonwebtoken::Header::new(algorithm),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    ) {
        Ok(token) => token,
        Err(e) => panic!("signing a token: {e}"),
    }
}

fn tokens() -> Vec<String> {
    use jsonwebtoken::Algorithm::{HS256, HS512};
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let valid = |user: &str| json!({"sub": user, "exp": now + 3600});
    vec![
        token(SECRET, &valid(ATTACKER), HS256),
        token(SECRET, &json!({"sub": ATTACKER, "exp": now - 100}), HS256),
        token("not-the-secret", &valid(VICTIM), HS256),
        token(SECRET, &valid(""), HS256),
        token(SECRET, &json!({"sub": ATTACKER}), HS256),
        token(SECRET, &valid(ATTACKER), HS512),
        token(
            SECRET,
            &json!({"sub": VICTIM, "exp": now + 3600, "nbf": now + 3000}),
            HS256,
        ),
        "not.a.jwt".to_owned(),
        String::new(),
    ]
}

async fn run(script: &ServerScript) {
    let config = config(script.config);
    let auth_timeout = config.auth_timeout;
    let mut harness = Harness::new(config);
    let tokens = tokens();

    // The victim: authenticated, one unread notification delivered as seq 1.
    let mut victim = Sock::open(&mut harness, "victim").await;
    let victim_token = token(
        SECRET,
        &json!({"sub": VICTIM, "exp": SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) + 3600}),
        jsonwebtoken::Algorithm::HS256,
    );
    victim
        .frame(ClientFrame::Auth {
            v: 1,
            token: victim_token,
            client: Some(VICTIM_CLIENT.into()),
            resume: None,
        })
        .await;
    let victim_session = victim.authenticated(VICTIM).await;
    harness.notify_user(
        VICTIM,
        "new_notification",
        &json!({"id": "n-victim", "title": "t"}),
    );
    assert!(
        victim
            .wait(|log| log.texts().count() == 2, Duration::from_secs(5))
            .await
    );
    let victim_view = harness.sessions(VICTIM);
    assert_eq!(harness.unread_count(VICTIM), 1);

    let mut a = Sock::open(&mut harness, "A").await;
    a.frame(ClientFrame::Auth {
        v: 1,
        token: tokens[0].clone(),
        client: Some("mallory-client-0123456789".into()),
        resume: None,
    })
    .await;
    let attacker_session = a.authenticated(ATTACKER).await;
    let names = Names {
        tokens,
        victim_session,
        attacker_session,
    };
    let mut u = Sock::open(&mut harness, "U").await;
    let mut done_u = Vec::new();
    let mut waited = Duration::ZERO;

    for step in &script.steps {
        match step {
            ServerStep::Wait(d) => {
                // At most half an hour in all: the victim is silent, and the server rightly
                // closes a socket silent for two heartbeats (two hours here).
                let d = u64::from(*d);
                let wait = Duration::from_millis(d * d * 4).min(WAIT_BUDGET.saturating_sub(waited));
                waited += wait;
                tokio::time::sleep(wait).await;
            }
            ServerStep::Notify(n) => notify(&harness, *n),
            ServerStep::Reopen => {
                let old = std::mem::replace(&mut u, Sock::open(&mut harness, "U").await);
                done_u.push(old.finish(auth_timeout).await);
            }
            step => {
                let to = match step {
                    ServerStep::Text { to, .. }
                    | ServerStep::Binary { to, .. }
                    | ServerStep::Send { to, .. }
                    | ServerStep::Auth { to, .. }
                    | ServerStep::Ack { to, .. }
                    | ServerStep::Pong { to, .. }
                    | ServerStep::Refresh { to, .. }
                    | ServerStep::BadUtf8 { to }
                    | ServerStep::Control { to, .. } => *to,
                    _ => 0,
                };
                let sock = if to % 2 == 0 { &mut a } else { &mut u };
                sock.step(step, &names).await;
            }
        }
        // Let the server take each frame in before the next.
        tokio::task::yield_now().await;
    }

    let mut ended = vec![a.finish(auth_timeout).await, u.finish(auth_timeout).await];
    ended.append(&mut done_u);
    for sock in &ended {
        sock.check(&names);
    }
    check_victim(&harness, &mut victim, &victim_view).await;
    harness.stop();
}

fn notify(harness: &Harness, n: u8) {
    let data = json!({"id": format!("n-{n}"), "title": "t", "chat_id": "1", "text": "x"});
    match n % 4 {
        0 => harness.notify_user(ATTACKER, "new_notification", &data),
        1 => harness.notify_user(ATTACKER, "unread_count_update", &json!({"count": n})),
        2 => harness.notify_room("chat:1", "new_message", &data),
        _ => harness.notify_room("chat:2", "conversation_update", &data),
    };
}

/// The victim heard nothing, and kept its socket, session, rooms and unread count.
async fn check_victim(harness: &Harness, victim: &mut Sock, view: &[SessionView]) {
    assert_eq!(
        harness.sessions(VICTIM),
        view,
        "the victim's sessions changed"
    );
    assert_eq!(
        harness.unread_count(VICTIM),
        1,
        "the victim's unread count changed"
    );
    victim
        .frame(ClientFrame::Send {
            id: 1,
            event: "get_unread_count".into(),
            data: Value::Null,
        })
        .await;
    assert!(
        victim
            .wait(|log| log.texts().count() >= 3, Duration::from_secs(5))
            .await,
        "the victim's socket does not answer: {:?}",
        victim.log().msgs
    );
    let log = victim.log();
    let frames: Vec<Value> = log
        .texts()
        .map(|t| serde_json::from_str(t).unwrap_or(Value::Null))
        .collect();
    assert!(!log.ended, "the victim's socket closed: {:?}", log.msgs);
    assert_eq!(frames.len(), 3, "the victim heard more: {frames:?}");
    assert_eq!(frames[1]["data"]["id"], "n-victim", "{frames:?}");
    assert_eq!(
        (
            &frames[2]["type"],
            &frames[2]["id"],
            &frames[2]["data"]["count"]
        ),
        (&json!("ack"), &json!(1), &json!(1)),
        "{frames:?}"
    );
}

const EVENTS: &[&str] = &[
    "join_room",
    "leave_room",
    "message",
    "typing_start",
    "typing_stop",
    "mark_notification_read",
    "delete_notification",
    "get_unread_count",
    "get_room_members",
    "presence",
    "nope",
    "",
];

/// The data of a scripted `send`: `arg % 6` picks the shape, `arg / 6` the value.
fn send_data(arg: u8) -> Value {
    const ROOMS: &[&str] = &[
        "chat:1",
        "chat:2",
        "user:mallory",
        "user:victim",
        "user:",
        "chat:",
        "lobby",
        "",
    ];
    const IDS: &[&str] = &["n-victim", "n-0", "", "1", "victim"];
    let k = usize::from(arg / 6);
    match arg % 6 {
        0 => json!({ "room": ROOMS[k % ROOMS.len()] }),
        1 => {
            let text = match k % 3 {
                0 => "hi".to_owned(),
                1 => String::new(),
                _ => "x".repeat(MAX_FRAME_BYTES - 200),
            };
            let chat = ["1", "2", "", "victim"][k % 4];
            json!({ "chat_id": chat, "text": text })
        }
        2 => json!({ "id": IDS[k % IDS.len()] }),
        3 => {
            let chat = ["1", "2", ""][k % 3];
            json!({ "chat_id": chat })
        }
        4 => json!({ "room": "chat:".to_owned() + &"r".repeat(120 + k) }),
        _ => [Value::Null, json!([]), json!({"room": 7}), json!("x")][k % 4].clone(),
    }
}
