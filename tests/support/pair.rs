//! A virtual-time pair for driver-level tests, without sockets or wall time (quinn-proto's
//! `Pair`, str0m's `progress`): a [`Shell`] whose actions go to a fake sink, a scripted server
//! that answers with the protocol's own serde frames, and a clock that jumps to the earliest
//! deadline. Every output the shell produces is logged with the virtual time it happened at.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::time::Duration;

use serde_json::Value;
use sockline::core::{
    Action, Connection, ConnectionConfig, Input, Instant, Payload, SocketId, StaticToken, Transport,
};
use sockline::protocol::{ClientFrame, ErrorBody, ServerFrame, MAX_FRAME_BYTES};
use sockline::shell::{Batch, Output, Shell};

/// What the scripted server does.
#[derive(Debug, Clone)]
pub struct ScriptedServer {
    /// Sockets open; when false every open fails (the server is gone).
    pub up: bool,
    /// The only token it accepts; anything else gets `auth_error {invalid_token}` and 4001.
    pub token: String,
    /// Its ping interval, told in `authenticated`.
    pub heartbeat_ms: u64,
    /// Answers nothing and never closes (a blackholed link).
    pub silent: bool,
    /// Answers every `send` with this error instead of `ok`.
    pub refuse_sends: Option<ErrorBody>,
    /// Every frame the client sent, decoded.
    pub received: Vec<ClientFrame>,
    sessions: u64,
    next_seq: u64,
}

impl Default for ScriptedServer {
    fn default() -> Self {
        ScriptedServer {
            up: true,
            token: "tok".into(),
            heartbeat_ms: 30_000,
            silent: false,
            refuse_sends: None,
            received: Vec::new(),
            sessions: 0,
            next_seq: 1,
        }
    }
}

impl ScriptedServer {
    /// The server's answers to one client frame.
    fn answer(&mut self, text: &str) -> Vec<Transport> {
        let frame =
            ClientFrame::decode(text, MAX_FRAME_BYTES).expect("the client sends valid frames");
        self.received.push(frame.clone());
        if self.silent {
            return Vec::new();
        }
        let reply = |f: ServerFrame| Transport::Frame(f.encode());
        match frame {
            ClientFrame::Auth { token, .. } if token != self.token => vec![
                reply(ServerFrame::AuthError {
                    code: "invalid_token".into(),
                    message: "the token is not valid".into(),
                }),
                Transport::Closed {
                    code: 4001,
                    reason: "the token is not valid".into(),
                },
            ],
            ClientFrame::Auth { .. } => {
                self.sessions += 1;
                self.next_seq = 1;
                vec![reply(ServerFrame::Authenticated {
                    v: 1,
                    user_id: "u1".into(),
                    session: format!("s{}", self.sessions),
                    heartbeat_ms: self.heartbeat_ms,
                    resumed: false,
                    missed: 0,
                    expires_in_ms: None,
                    limits: None,
                })]
            }
            ClientFrame::Send { id, event, .. } => {
                let (ok, data, error) = match &self.refuse_sends {
                    Some(e) => (false, None, Some(e.clone())),
                    None if event == "get_unread_count" => {
                        (true, Some(serde_json::json!({"count": 3})), None)
                    }
                    None => (true, None, None),
                };
                vec![reply(ServerFrame::Ack {
                    id,
                    ok,
                    data,
                    error,
                })]
            }
            ClientFrame::Ack { .. } | ClientFrame::Pong { .. } | ClientFrame::Refresh { .. } => {
                Vec::new()
            }
        }
    }

    /// A durable event with the session's next seq.
    pub fn event(&mut self, event: &str, data: Value) -> Transport {
        let seq = self.next_seq;
        self.next_seq += 1;
        Transport::Frame(
            ServerFrame::Event {
                seq: Some(seq),
                event: event.into(),
                data,
                ts: String::new(),
            }
            .encode(),
        )
    }
}

/// One thing the application heard, with what the tests compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// A state change: the new state's name, the cause's code, the retry delay in ms.
    State(&'static str, &'static str, Option<u64>),
    /// A server event: name and seq.
    Message(String, Option<u64>),
    /// A request settled: its tag, and its data (JSON text) or error code.
    Settled(u64, Result<Option<String>, String>),
    /// A plain send's ack: id, and its data or error code.
    Ack(u64, Result<Option<String>, String>),
    /// An error event's code.
    Error(String),
    /// `Resumed { missed }`.
    Resumed(u64),
    /// `ResumeFailed`.
    ResumeFailed,
}

fn outcome(result: Result<Option<Payload>, sockline::AckError>) -> Result<Option<String>, String> {
    result
        .map(|d| d.map(Payload::into_json))
        .map_err(|e| e.code().to_owned())
}

/// The pair: see the module docs. Requests are tagged with a `u64` resolver.
pub struct Pair {
    pub shell: Shell<u64>,
    pub server: ScriptedServer,
    pub now: Instant,
    /// `(ms, what)` in the order the application heard it.
    pub log: Vec<(u64, Heard)>,
    /// Every action the shell asked for, with its time.
    pub actions: Vec<(u64, Action)>,
    socket: Option<SocketId>,
    inbound: VecDeque<Input>,
    batch: Batch<u64>,
}

/// A config for the pair: the scripted server's token, fixed jitter seed.
pub fn pair_config() -> ConnectionConfig {
    let mut config = ConnectionConfig::new("ws://pair.invalid/ws");
    config.token = Some(StaticToken::new("tok"));
    config.seed = 11;
    config
}

impl Pair {
    /// A pair at t = 0, not connected yet.
    pub fn new(config: ConnectionConfig) -> Self {
        Pair {
            shell: Shell::new(Connection::new(config, Instant::ZERO)),
            server: ScriptedServer::default(),
            now: Instant::ZERO,
            log: Vec::new(),
            actions: Vec::new(),
            socket: None,
            inbound: VecDeque::new(),
            batch: Batch::default(),
        }
    }

    /// Runs `f` on the connection at the current time, then settles.
    pub fn command<T>(&mut self, f: impl FnOnce(&mut Connection, Instant) -> T) -> T {
        let now = self.now;
        let out = f(self.shell.conn_mut(), now);
        self.settle();
        out
    }

    /// A request tagged `tag`; the refusal's code if it was not taken.
    pub fn request(
        &mut self,
        tag: u64,
        event: &str,
        timeout: Option<Duration>,
    ) -> Result<(), String> {
        let now = self.now;
        let queued = self
            .shell
            .request(now, event, &Payload::null(), timeout, tag)
            .map(|_| ())
            .map_err(|(e, _)| e.code().to_owned());
        self.settle();
        queued
    }

    /// Delivers `transport` from the server on the current socket, then settles.
    pub fn server_sends(&mut self, transport: Transport) {
        if let Some(socket) = self.socket {
            self.inbound.push_back(Input::Transport(socket, transport));
        }
        self.settle();
    }

    /// Drains the shell and answers its actions until nothing is left at this instant.
    pub fn settle(&mut self) {
        loop {
            self.shell.drain(self.now, &mut self.batch);
            let batch = std::mem::take(&mut self.batch);
            for action in &batch.actions {
                self.perform(action.clone());
            }
            for output in batch.outputs {
                self.hear(output);
            }
            let was_empty = batch.actions.is_empty();
            self.batch = Batch::default();
            match self.inbound.pop_front() {
                Some(input) => self.shell.conn_mut().handle_input(self.now, input),
                None if was_empty => return,
                None => {}
            }
        }
    }

    /// Lets `ms` of virtual time pass, firing every deadline on the way.
    pub fn run_for(&mut self, ms: u64) {
        let end = Instant::from_millis(self.now.as_millis() + ms);
        self.settle();
        while let Some(at) = self.shell.conn().poll_timeout().filter(|at| *at <= end) {
            self.now = at.max(self.now);
            self.shell.conn_mut().handle_input(self.now, Input::Timeout);
            self.settle();
        }
        self.now = end;
    }

    /// The logged outputs, without times.
    pub fn heard(&self) -> Vec<Heard> {
        self.log.iter().map(|(_, h)| h.clone()).collect()
    }

    /// The states entered, with their causes and retry delays.
    pub fn states(&self) -> Vec<(&'static str, &'static str, Option<u64>)> {
        self.log
            .iter()
            .filter_map(|(_, h)| match h {
                Heard::State(s, c, r) => Some((*s, *c, *r)),
                _ => None,
            })
            .collect()
    }

    fn perform(&mut self, action: Action) {
        self.actions.push((self.now.as_millis(), action.clone()));
        match action {
            Action::OpenSocket { socket, .. } => {
                if self.server.up {
                    self.socket = Some(socket);
                    self.inbound
                        .push_back(Input::Transport(socket, Transport::Opened));
                } else {
                    let refused = Transport::Error("connection refused".into());
                    self.inbound.push_back(Input::Transport(socket, refused));
                }
            }
            Action::SendFrame { socket, text } => {
                for reply in self.server.answer(&text) {
                    self.inbound.push_back(Input::Transport(socket, reply));
                }
            }
            Action::CloseSocket { socket, .. } => {
                if self.socket == Some(socket) {
                    self.socket = None;
                }
            }
            Action::FetchToken { request } => {
                let token = Ok(self.server.token.clone());
                self.inbound.push_back(Input::TokenFetched(request, token));
            }
            other => panic!("an action the pair does not know: {other:?}"),
        }
    }

    fn hear(&mut self, output: Output<u64>) {
        let heard = match output {
            Output::State(view) => Heard::State(
                view.to.name(),
                view.cause.code(),
                view.retry_in.map(|d| d.as_millis() as u64),
            ),
            Output::Message { event, seq, .. } => Heard::Message(event, seq),
            Output::Settle {
                resolver, result, ..
            } => Heard::Settled(resolver, outcome(result)),
            Output::Ack { id, result } => Heard::Ack(id.0, outcome(result)),
            Output::Error(e) => Heard::Error(e.code().to_owned()),
            Output::Resumed { missed } => Heard::Resumed(missed),
            Output::ResumeFailed => Heard::ResumeFailed,
            other => panic!("an output the pair does not know: {other:?}"),
        };
        self.log.push((self.now.as_millis(), heard));
    }
}
