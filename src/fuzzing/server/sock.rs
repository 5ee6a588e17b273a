//! One client socket of the `server` check ([`Sock`]): what the script sent on it, what it
//! received ([`Log`]), and the rules its frames are held to (see the parent module's docs).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

use super::{
    send_data, Names, ATTACKER, AUTH_ERROR_CODES, BARRIER, CLOSE_CODES, EVENTS,
    REFRESH_ERROR_CODES, SECRET, VICTIM_CLIENT,
};
use crate::fuzzing::server_script::ServerStep;
use crate::protocol::{
    ClientFrame, IncomingFrame, ResumePoint, ServerFrame, MAX_FRAME_BYTES, MAX_WIRE_ID,
};
use crate::server::harness::{Client, Harness};

/// Everything a client socket received, in order, and whether it ended.
#[derive(Debug, Default)]
pub(super) struct Log {
    pub(super) msgs: Vec<Message>,
    pub(super) ended: bool,
    /// Why reading ended, when it was an error (a reset, a protocol violation).
    error: Option<String>,
}

impl Log {
    pub(super) fn texts(&self) -> impl Iterator<Item = &str> {
        self.msgs.iter().filter_map(|m| match m {
            Message::Text(t) => Some(t.as_str()),
            _ => None,
        })
    }

    fn authenticated(&self) -> bool {
        self.texts()
            .any(|t| t.contains(r#""type":"authenticated""#))
    }

    fn acks(&self) -> impl Iterator<Item = u64> + '_ {
        self.texts()
            .filter_map(|t| match IncomingFrame::decode(t, MAX_FRAME_BYTES) {
                Ok(IncomingFrame::Ack { id, .. }) => Some(id),
                _ => None,
            })
    }
}

/// What a socket's first data frame was.
#[derive(Debug, Clone, PartialEq)]
enum First {
    /// A decodable `auth`, with the user its token names when the token is valid.
    Auth(Option<&'static str>),
    /// Anything else.
    Other,
}

/// One client socket of the script, with what was sent on it.
pub(super) struct Sock {
    name: &'static str,
    sink: SplitSink<Client, Message>,
    log: Arc<Mutex<Log>>,
    news: Arc<Notify>,
    reader: JoinHandle<()>,
    first: Option<First>,
    /// Ids of the decodable `send`s after the first frame, with how many times each was sent.
    sends: BTreeMap<u64, usize>,
    /// Text frames after the first that do not decode.
    undecodable: usize,
    /// Whether the final `send` was acked (the server processed everything before it).
    drained: bool,
    /// Whether the script sent a close frame.
    client_closed: bool,
    /// Whether a decodable `refresh` was sent after the first frame (its token may be refused).
    refreshed: bool,
}

impl Sock {
    pub(super) async fn open(harness: &mut Harness, name: &'static str) -> Sock {
        let ws = match harness.connect().await {
            Ok(ws) => ws,
            Err(e) => panic!("socket {name} could not connect: {e}"),
        };
        let (sink, mut stream) = ws.split();
        let log = Arc::new(Mutex::new(Log::default()));
        let news = Arc::new(Notify::new());
        let reader = {
            let (log, news) = (log.clone(), news.clone());
            tokio::spawn(async move {
                while let Some(next) = stream.next().await {
                    match next {
                        Ok(msg) => lock(&log).msgs.push(msg),
                        Err(e) => {
                            lock(&log).error = Some(e.to_string());
                            break;
                        }
                    }
                    news.notify_waiters();
                }
                lock(&log).ended = true;
                news.notify_waiters();
            })
        };
        Sock {
            name,
            sink,
            log,
            news,
            reader,
            first: None,
            sends: BTreeMap::new(),
            undecodable: 0,
            drained: false,
            client_closed: false,
            refreshed: false,
        }
    }

    pub(super) fn log(&self) -> MutexGuard<'_, Log> {
        lock(&self.log)
    }

    /// Waits (in virtual time) until `until` holds for the log, at most `within`.
    pub(super) async fn wait(&self, until: impl Fn(&Log) -> bool, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let news = self.news.notified();
            tokio::pin!(news);
            news.as_mut().enable();
            if until(&self.log()) {
                return true;
            }
            if tokio::time::timeout_at(deadline, news).await.is_err() {
                return until(&self.log());
            }
        }
    }

    /// Waits for `authenticated` as `user` and returns its session.
    pub(super) async fn authenticated(&self, user: &str) -> String {
        assert!(
            self.wait(Log::authenticated, Duration::from_secs(5)).await,
            "{}: no authenticated: {:?}",
            self.name,
            self.log().msgs
        );
        let log = self.log();
        let hello = log
            .texts()
            .find(|t| t.contains("authenticated"))
            .unwrap_or("");
        match IncomingFrame::decode(hello, MAX_FRAME_BYTES) {
            Ok(IncomingFrame::Authenticated {
                user_id, session, ..
            }) if user_id == user => session.into_owned(),
            other => panic!("{}: {other:?}", self.name),
        }
    }

    pub(super) async fn frame(&mut self, frame: ClientFrame) {
        self.text(frame.encode()).await;
    }

    /// Sends a text frame, noting what it was.
    async fn text(&mut self, text: String) {
        let decoded = ClientFrame::decode(&text, MAX_FRAME_BYTES);
        match (&self.first, decoded) {
            (None, Ok(ClientFrame::Auth { token, .. })) => {
                self.first = Some(First::Auth(token_user(&token)));
            }
            (None, _) => self.first = Some(First::Other),
            (Some(_), Ok(ClientFrame::Send { id, .. })) => *self.sends.entry(id).or_default() += 1,
            (Some(_), Ok(ClientFrame::Refresh { .. })) => self.refreshed = true,
            (Some(_), Ok(_)) => {}
            (Some(_), Err(_)) => self.undecodable += 1,
        }
        self.raw(Message::Text(text.into())).await;
    }

    async fn raw(&mut self, msg: Message) {
        // A socket the server closed refuses writes: that is the server's answer, not a fault.
        let _ = self.sink.send(msg).await;
    }

    pub(super) async fn step(&mut self, step: &ServerStep, names: &Names) {
        match step {
            ServerStep::Text { text, .. } => {
                self.text(String::from_utf8_lossy(text).into_owned()).await
            }
            ServerStep::Binary { data, .. } => {
                self.first.get_or_insert(First::Other);
                self.raw(Message::Binary(data.clone().into())).await;
            }
            ServerStep::Send { id, event, arg, .. } => {
                self.frame(ClientFrame::Send {
                    id: u64::from(*id),
                    event: EVENTS[usize::from(*event) % EVENTS.len()].into(),
                    data: send_data(*arg),
                })
                .await
            }
            ServerStep::Auth {
                token,
                resume,
                client,
                ..
            } => {
                let resume = match resume % 6 {
                    0 => None,
                    1 => Some((names.victim_session.clone(), 1)),
                    2 => Some((names.victim_session.clone(), 0)),
                    3 => Some((names.attacker_session.clone(), 0)),
                    4 => Some((names.attacker_session.clone(), 9)),
                    _ => Some(("0123456789abcdef0123456789abcdef".to_owned(), 0)),
                };
                let client = [None, Some("mallory-client-0123456789"), Some("short")]
                    .get(usize::from(client % 4))
                    .copied()
                    .unwrap_or(Some(VICTIM_CLIENT));
                // A malformed client id is sent as written (serde would refuse to decode it,
                // not to encode it).
                self.frame(ClientFrame::Auth {
                    v: 1,
                    token: names.tokens[usize::from(*token) % names.tokens.len()].clone(),
                    client: client.map(str::to_owned),
                    resume: resume.map(|(session, seq)| ResumePoint { session, seq }),
                })
                .await
            }
            ServerStep::Ack { seq, .. } => {
                let seq = if *seq == 255 {
                    MAX_WIRE_ID + 1
                } else {
                    u64::from(*seq)
                };
                self.frame(ClientFrame::Ack { seq }).await
            }
            ServerStep::Pong { t, .. } => {
                let t = u64::from(*t) * 7_000_000_000_000;
                self.frame(ClientFrame::Pong { t }).await
            }
            ServerStep::Refresh { token, .. } => {
                let token = names.tokens[usize::from(*token) % names.tokens.len()].clone();
                self.frame(ClientFrame::Refresh { token }).await
            }
            ServerStep::BadUtf8 { .. } => {
                self.first.get_or_insert(First::Other);
                let frame =
                    Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true);
                self.raw(Message::Frame(frame)).await;
            }
            ServerStep::Control { what, .. } => {
                let msg = match what % 3 {
                    0 => Message::Ping(vec![*what].into()),
                    1 => Message::Pong(vec![*what].into()),
                    _ => {
                        self.client_closed = true;
                        Message::Close(None)
                    }
                };
                self.raw(msg).await;
            }
            ServerStep::Wait(_) | ServerStep::Notify(_) | ServerStep::Reopen => {}
        }
    }

    /// Ends the script on this socket: an authenticated socket gets a final `send` and is waited
    /// on until its ack (or its end); an unauthenticated one until the server closes it.
    pub(super) async fn finish(mut self, auth_timeout: Duration) -> Sock {
        // Every socket either authenticates or is closed by the auth timeout.
        let settled = self
            .wait(
                |log: &Log| log.ended || log.authenticated(),
                auth_timeout * 3,
            )
            .await;
        assert!(
            settled,
            "{}: an unauthenticated socket outlived the auth timeout: {:?}",
            self.name,
            self.log().msgs
        );
        let live = {
            let log = self.log();
            log.authenticated() && !log.ended
        };
        if live {
            // Counted like any send (the script may have used its id too).
            self.frame(ClientFrame::Send {
                id: BARRIER,
                event: "get_unread_count".into(),
                data: Value::Null,
            })
            .await;
            let sent = self.sends[&BARRIER];
            let acked = move |log: &Log| log.acks().filter(|id| *id == BARRIER).count() >= sent;
            self.wait(|log: &Log| log.ended || acked(log), Duration::from_secs(30))
                .await;
            let drained = acked(&self.log());
            self.drained = drained;
        }
        self.reader.abort();
        self
    }

    /// The frames this socket received, against the rules in the module docs.
    pub(super) fn check(&self, names: &Names) {
        let log = self.log();
        let name = self.name;
        let mut authenticated = None;
        let mut refused = false;
        for msg in &log.msgs {
            match msg {
                Message::Text(text) => {
                    assert!(!refused, "{name}: {text:?} after a refused refresh");
                    let frame = match ServerFrame::decode(text, MAX_FRAME_BYTES) {
                        Ok(frame) => frame,
                        Err(e) => {
                            panic!("{name}: the server sent {text:?}, which does not decode: {e}")
                        }
                    };
                    if let Err(e) = IncomingFrame::decode(text, MAX_FRAME_BYTES) {
                        panic!("{name}: the server sent {text:?}, which the client refuses: {e}");
                    }
                    match frame {
                        ServerFrame::Authenticated { .. } => {
                            assert!(authenticated.is_none(), "{name}: authenticated twice");
                            authenticated = Some(frame);
                        }
                        // A refused `refresh` (PROTOCOL.md §7) is the one auth_error after
                        // authenticated; the socket then closes with 4001.
                        ServerFrame::AuthError { code, .. } if authenticated.is_some() => {
                            assert!(
                                self.refreshed && REFRESH_ERROR_CODES.contains(&code.as_str()),
                                "{name}: auth_error {code} after authenticated"
                            );
                            refused = true;
                        }
                        ServerFrame::AuthError { code, .. } => assert!(
                            AUTH_ERROR_CODES.contains(&code.as_str()),
                            "{name}: auth_error {code}"
                        ),
                        other => assert!(
                            authenticated.is_some(),
                            "{name}: {other:?} before authenticated"
                        ),
                    }
                }
                Message::Binary(b) => panic!("{name}: the server sent a binary frame: {b:?}"),
                Message::Close(Some(close)) => {
                    let code = u16::from(close.code);
                    assert!(CLOSE_CODES.contains(&code), "{name}: close code {code}");
                }
                _ => {}
            }
        }
        let close = log.msgs.iter().find_map(|m| match m {
            Message::Close(Some(close)) => Some(u16::from(close.code)),
            _ => None,
        });
        let timed_out = log.texts().any(|t| {
            matches!(
                IncomingFrame::decode(t, MAX_FRAME_BYTES),
                Ok(IncomingFrame::AuthError { code, .. }) if code == "timeout"
            )
        });
        if self.client_closed {
            // RFC 6455 §5.5.1: a close is answered with a close (unless one was sent already).
            assert!(
                log.msgs.iter().any(|m| matches!(m, Message::Close(_))),
                "{name}: a close frame not answered: {:?} ({:?})",
                log.msgs,
                log.error
            );
        }
        match (&self.first, &authenticated) {
            (
                _,
                Some(ServerFrame::Authenticated {
                    user_id,
                    session,
                    resumed,
                    ..
                }),
            ) => {
                assert_eq!(
                    self.first,
                    Some(First::Auth(Some(ATTACKER))),
                    "{name}: authenticated by a frame that is not a valid auth: {authenticated:?}"
                );
                assert_eq!(user_id, ATTACKER, "{name}: authenticated as another user");
                assert_ne!(
                    session, &names.victim_session,
                    "{name}: got the victim's session"
                );
                // Session ids are 128 random bits: the only one of mallory's the script can name
                // is `A`'s first. (Not "one mallory still has at the end": a session resumed
                // here may be evicted later, once detached beyond the per-user cap.)
                if *resumed {
                    assert_eq!(
                        session, &names.attacker_session,
                        "{name}: resumed a session the script could not name"
                    );
                }
            }
            // The client closed first: whatever it sent next is not answered.
            (_, None) if self.client_closed => {}
            // The auth deadline passed before the first frame arrived (a step may wait).
            (_, None) if timed_out => assert_eq!(
                (log.texts().count(), close),
                (1, Some(4000)),
                "{name}: an auth timeout: {:?}",
                log.msgs
            ),
            // An `auth` the server reads but refuses for its version or client id is told
            // why (PROTOCOL.md §2); anything else is closed without a word.
            (Some(First::Other), None) => assert!(
                (log.texts().count() == 0 && matches!(close, Some(4001 | 1007 | 1008 | 1009)))
                    || (log.texts().count() == 1
                        && close == Some(4001)
                        && log.texts().all(|t| {
                            matches!(
                                IncomingFrame::decode(t, MAX_FRAME_BYTES),
                                Ok(IncomingFrame::AuthError { code, .. })
                                    if code == "invalid_client" || code == "unsupported_version"
                            )
                        })),
                "{name}: a first frame other than auth: {:?} ({:?})",
                log.msgs,
                log.error
            ),
            (Some(First::Auth(None)), None) => {
                // 1008: pings before it used up the pre-auth frame budget.
                let seen = (log.texts().count(), close);
                assert!(
                    seen == (1, Some(4001)) || seen == (0, Some(1008)),
                    "{name}: a bad token: {:?}",
                    log.msgs
                );
            }
            _ => {}
        }
        if refused && !self.client_closed {
            assert_eq!(
                close,
                Some(4001),
                "{name}: a refused refresh: {:?}",
                log.msgs
            );
        }
        if self.drained {
            // Everything before the final send was processed, in order.
            let mut acks: BTreeMap<u64, usize> = BTreeMap::new();
            for id in log.acks() {
                *acks.entry(id).or_default() += 1;
            }
            // (A frame that does not decode but starts like a send may be acked under the id
            // it starts with, so the client can settle it: one more ack for that id at most.)
            for (id, sent) in &self.sends {
                let got = acks.get(id).copied().unwrap_or(0);
                assert!(
                    (*sent..=sent + self.undecodable).contains(&got),
                    "{name}: {got} acks for {sent} sends of id {id}: {acks:?}"
                );
            }
            let decodable: usize = self.sends.values().sum();
            let total: usize = acks.values().sum();
            assert!(
                total <= decodable + self.undecodable,
                "{name}: {total} acks for {decodable} sends and {} undecodable frames",
                self.undecodable
            );
        }
    }
}

fn lock(log: &Mutex<Log>) -> MutexGuard<'_, Log> {
    log.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The user a token of [`tokens`] authenticates, if any.
fn token_user(token: &str) -> Option<&'static str> {
    crate::server::harness::verify(SECRET, token)
        .ok()
        .filter(|verified| verified.user == ATTACKER)
        .map(|_| ATTACKER)
}
