//! One load socket's life — connect, handshake, join, idle reading with sockline's ack batching,
//! the storm's abortive drop and its reconnect (resuming on sockline) — and the [`Board`] that
//! every socket writes its receipt times and counts to.
//!
//! A socket is one task holding one `WebSocketStream` with a 4 KiB read buffer and no write
//! buffer, so 10,000 of them stay small next to the server they measure.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use sockline::core::Backoff;
use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::time::{sleep, sleep_until, timeout};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::args::{Proto, Target};
use super::wire::{self, Incoming};

/// How long each handshake step (TCP, WebSocket upgrade, auth + join) may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// sockline's ack batching, as the SDK does it (`ConnectionConfig::ack_delay`, `ack_batch`).
const ACK_DELAY: Duration = Duration::from_millis(200);
const ACK_BATCH: u64 = 32;

type Ws = WebSocketStream<TcpStream>;

/// What the coordinator tells every socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Stay connected and read.
    Live,
    /// Drop the TCP connection now, with a reset.
    Drop,
    /// Reconnect (with the backoff's first delay) and resume.
    Reconnect,
    /// The run is over.
    Stop,
}

/// What every socket needs to know, shared.
pub(crate) struct Plan {
    pub proto: Proto,
    pub targets: Vec<Target>,
    pub room: String,
    /// One token per socket (sockline); empty for the peers.
    pub tokens: Vec<String>,
    pub backoff: Backoff,
    pub seed: u64,
}

/// Where sockets report. Times are nanoseconds since `t0`, plus one (0 means "not yet").
pub(crate) struct Board {
    t0: Instant,
    n: usize,
    rounds: usize,
    round_at: Box<[AtomicU64]>,
    round_got: Box<[AtomicUsize]>,
    pub round_dups: AtomicU64,
    /// Text frames received, all sockets.
    pub frames: AtomicU64,
    /// Sockets that completed their first join.
    pub joined: AtomicUsize,
    /// When the latest first join happened.
    pub last_join: AtomicU64,
    /// Sockets whose first connect failed.
    pub first_failed: AtomicUsize,
    /// Cleared at the connect deadline: a socket that joins later gives up instead.
    pub connecting: AtomicBool,
    /// Sockets live right now.
    pub alive: AtomicUsize,
    failures: Mutex<BTreeMap<String, u64>>,
    /// Storm: how many outage events a resumed socket must hold to count as back.
    pub outage_events: AtomicU32,
    back_at: Box<[AtomicU64]>,
    pub back: AtomicUsize,
    /// The sockets the storm dropped.
    stormed: Box<[AtomicBool]>,
    storm_next: Box<[AtomicU32]>,
    pub storm_missed: AtomicU64,
    pub storm_dups: AtomicU64,
    pub resumed: AtomicUsize,
    pub resume_refused: AtomicUsize,
    pub retries: AtomicU64,
    pub seq_gaps: AtomicU64,
    pub seq_dups: AtomicU64,
    pub server_errors: AtomicU64,
}

fn atomics<T: Default>(len: usize) -> Box<[T]> {
    (0..len).map(|_| T::default()).collect()
}

impl Board {
    pub(crate) fn new(n: usize, rounds: usize) -> Board {
        Board {
            t0: Instant::now(),
            n,
            rounds,
            round_at: atomics(n * rounds),
            round_got: atomics(rounds),
            round_dups: AtomicU64::new(0),
            frames: AtomicU64::new(0),
            joined: AtomicUsize::new(0),
            last_join: AtomicU64::new(0),
            first_failed: AtomicUsize::new(0),
            connecting: AtomicBool::new(true),
            alive: AtomicUsize::new(0),
            failures: Mutex::new(BTreeMap::new()),
            outage_events: AtomicU32::new(0),
            back_at: atomics(n),
            stormed: atomics(n),
            back: AtomicUsize::new(0),
            storm_next: atomics(n),
            storm_missed: AtomicU64::new(0),
            storm_dups: AtomicU64::new(0),
            resumed: AtomicUsize::new(0),
            resume_refused: AtomicUsize::new(0),
            retries: AtomicU64::new(0),
            seq_gaps: AtomicU64::new(0),
            seq_dups: AtomicU64::new(0),
            server_errors: AtomicU64::new(0),
        }
    }

    /// `at` as a board time.
    pub(crate) fn stamp(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.t0).as_nanos()).unwrap_or(u64::MAX - 1) + 1
    }

    fn record_round(&self, round: u32, socket: usize, at: Instant) {
        let round = round as usize;
        if round >= self.rounds {
            return;
        }
        let slot = &self.round_at[round * self.n + socket];
        if slot
            .compare_exchange(0, self.stamp(at), Relaxed, Relaxed)
            .is_ok()
        {
            self.round_got[round].fetch_add(1, Relaxed);
        } else {
            self.round_dups.fetch_add(1, Relaxed);
        }
    }

    /// How many sockets have received `round`.
    pub(crate) fn round_count(&self, round: usize) -> usize {
        self.round_got[round].load(Relaxed)
    }

    /// The receipt latencies of `round`, in nanoseconds after `posted` (a board time).
    pub(crate) fn round_latencies(&self, round: usize, posted: u64) -> Vec<u64> {
        self.round_at[round * self.n..(round + 1) * self.n]
            .iter()
            .map(|slot| slot.load(Relaxed))
            .filter(|&at| at != 0)
            .map(|at| at.saturating_sub(posted))
            .collect()
    }

    /// Storm: the latest time a socket came back, and how many did.
    pub(crate) fn last_back(&self) -> Option<u64> {
        self.back_at
            .iter()
            .map(|t| t.load(Relaxed))
            .filter(|&t| t != 0)
            .max()
    }

    /// Storm: the dropped sockets whose next expected storm event is below `total`, and the
    /// events they lack.
    pub(crate) fn storm_short(&self, total: u32) -> (usize, u64) {
        self.storm_next
            .iter()
            .zip(self.stormed.iter())
            .filter(|(_, stormed)| stormed.load(Relaxed))
            .map(|(k, _)| k.load(Relaxed))
            .filter(|&k| k < total)
            .fold((0, 0), |(sockets, events), k| {
                (sockets + 1, events + u64::from(total - k))
            })
    }

    pub(crate) fn fail(&self, reason: impl Into<String>) {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        *failures.entry(reason.into()).or_default() += 1;
    }

    pub(crate) fn failures(&self) -> BTreeMap<String, u64> {
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// How a connection ended.
enum End {
    /// Told to drop.
    Drop,
    /// Told to stop.
    Stop,
    /// Never got to live (a retry may help).
    Failed(String),
    /// Was live, then the server or the network ended it.
    Lost(String),
}

/// One socket's state across its connections.
struct Sock {
    idx: usize,
    plan: Arc<Plan>,
    board: Arc<Board>,
    client: String,
    session: Option<String>,
    last_seq: u64,
    acked: u64,
    /// The id of the join in flight (sockline), and the next send id: per client, never reused.
    join_id: u64,
    next_id: u64,
    storm_next: u32,
    /// Storm events this socket missed.
    missed: u64,
    /// Whether this connection is a storm reconnect, whether it resumed, and whether it has
    /// counted as back.
    reconnecting: bool,
    resumed: bool,
    back: bool,
}

/// Runs socket `idx` until [`Phase::Stop`]. The first connect holds a `gate` permit until joined.
pub(crate) async fn run(
    idx: usize,
    plan: Arc<Plan>,
    board: Arc<Board>,
    mut control: watch::Receiver<Phase>,
    gate: Arc<Semaphore>,
) {
    let mut sock = Sock {
        idx,
        client: format!("bench-{:016x}{idx:x}", plan.seed ^ rand::random::<u64>()),
        plan,
        board,
        session: None,
        last_seq: 0,
        acked: 0,
        join_id: 0,
        next_id: 1,
        storm_next: 0,
        missed: 0,
        reconnecting: false,
        resumed: false,
        back: false,
    };
    let Ok(permit) = gate.acquire_owned().await else {
        // The gate closes at the connect deadline.
        return sock
            .board
            .fail("connect: not started before the connect deadline");
    };
    let end = sock.connect(&mut control, Some(permit)).await;
    if matches!(end, End::Failed(_)) {
        sock.board.first_failed.fetch_add(1, Relaxed);
    }
    // Only a socket the storm dropped reconnects; one the server closed or that never joined
    // stays down (and is reported), so the storm's sockets are exactly the live ones.
    match end {
        End::Stop => return,
        End::Drop => {}
        End::Failed(reason) => return sock.board.fail(format!("connect: {reason}")),
        End::Lost(reason) => return sock.board.fail(format!("lost: {reason}")),
    }
    loop {
        if control.changed().await.is_err() {
            return;
        }
        match *control.borrow_and_update() {
            Phase::Stop => return,
            Phase::Reconnect => break,
            Phase::Live | Phase::Drop => {}
        }
    }
    sock.reconnecting = true;
    match sock.reconnect(&mut control).await {
        End::Stop | End::Drop => {}
        End::Failed(reason) => sock.board.fail(format!("storm reconnect: {reason}")),
        End::Lost(reason) => sock.board.fail(format!("lost after the storm: {reason}")),
    }
}

/// One SplitMix64 step: the same jitter source the core uses.
fn splitmix(state: u64) -> u64 {
    let mut z = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Sock {
    /// Reconnects with the SDK's backoff: retry n waits `Backoff::delay(n)`, up to `max_retries`.
    async fn reconnect(&mut self, control: &mut watch::Receiver<Phase>) -> End {
        let backoff = self.plan.backoff.clone();
        let mut random = self.plan.seed ^ (self.idx as u64).wrapping_mul(0x9E37_79B9);
        let mut last = String::new();
        for retry in 1..=backoff.max_retries.unwrap_or(u32::MAX).max(1) {
            random = splitmix(random);
            let wake = tokio::time::Instant::now() + backoff.sample(retry, random);
            loop {
                tokio::select! {
                    _ = sleep_until(wake) => break,
                    changed = control.changed() => {
                        if changed.is_err() || *control.borrow_and_update() == Phase::Stop {
                            return End::Stop;
                        }
                    }
                }
            }
            match self.connect(control, None).await {
                End::Failed(reason) => {
                    self.board.retries.fetch_add(1, Relaxed);
                    last = reason;
                }
                end => return end,
            }
        }
        End::Failed(format!(
            "gave up reconnecting after {} retries: {last}",
            backoff.max_retries.unwrap_or(u32::MAX)
        ))
    }

    /// Opens one connection and drives it to its end.
    async fn connect(
        &mut self,
        control: &mut watch::Receiver<Phase>,
        permit: Option<OwnedSemaphorePermit>,
    ) -> End {
        match self.open().await {
            Ok(ws) => self.drive(ws, control, permit).await,
            Err(reason) => End::Failed(reason),
        }
    }

    async fn open(&self) -> Result<Ws, String> {
        let target = &self.plan.targets[self.idx % self.plan.targets.len()];
        let tcp = timeout(STEP_TIMEOUT, TcpStream::connect(target.addr))
            .await
            .map_err(|_| "TCP connect timed out".to_owned())?
            .map_err(|e| format!("TCP connect: {}", e.kind()))?;
        let _ = tcp.set_nodelay(true);
        // Every close of ours is abortive (RST): the storm's drop is, and a run's end leaves no
        // TIME_WAIT sockets behind to crowd the next run's ports.
        let _ = tcp.set_zero_linger();
        let config = WebSocketConfig::default()
            .read_buffer_size(4 * 1024)
            .write_buffer_size(0);
        let upgrade =
            tokio_tungstenite::client_async_with_config(target.ws_url.as_str(), tcp, Some(config));
        let (ws, _) = timeout(STEP_TIMEOUT, upgrade)
            .await
            .map_err(|_| "WebSocket upgrade timed out".to_owned())?
            .map_err(|e| format!("WebSocket upgrade: {e}"))?;
        Ok(ws)
    }

    /// Handshake, join, then read until told to drop or stop, or the connection ends.
    async fn drive(
        &mut self,
        mut ws: Ws,
        control: &mut watch::Receiver<Phase>,
        mut permit: Option<OwnedSemaphorePermit>,
    ) -> End {
        let proto = self.plan.proto;
        let mut live = false;
        let mut ack_armed = false;
        let handshake = sleep(STEP_TIMEOUT);
        let ack_timer = sleep(Duration::ZERO);
        tokio::pin!(handshake, ack_timer);
        let token = self.plan.tokens.get(self.idx).map_or("", String::as_str);
        let resume = if self.reconnecting {
            self.session.as_deref().map(|s| (s, self.last_seq))
        } else {
            None
        };
        let resuming = resume.is_some();
        if let Some(hello) = wire::hello(proto, &self.plan.room, token, &self.client, resume) {
            if let Err(e) = ws.send(Message::text(hello)).await {
                return End::Failed(format!("send hello: {e}"));
            }
        }
        loop {
            let incoming = tokio::select! {
                biased;
                changed = control.changed() => {
                    let phase = if changed.is_err() { Phase::Stop } else { *control.borrow_and_update() };
                    match phase {
                        Phase::Drop => {
                            if live {
                                self.board.stormed[self.idx].store(true, Relaxed);
                            }
                            return self.ended(live, End::Drop);
                        }
                        Phase::Stop => return self.ended(live, End::Stop),
                        Phase::Live | Phase::Reconnect => continue,
                    }
                }
                _ = &mut handshake, if !live => return End::Failed("no auth/join answer in 10 s".to_owned()),
                _ = &mut ack_timer, if ack_armed => {
                    ack_armed = false;
                    self.acked = self.last_seq;
                    if let Err(e) = ws.send(Message::text(wire::ack(self.last_seq))).await {
                        return self.ended(live, End::Lost(format!("send: {e}")));
                    }
                    continue;
                }
                msg = ws.next() => match msg {
                    Some(Ok(Message::Text(text))) => {
                        self.board.frames.fetch_add(1, Relaxed);
                        wire::decode(proto, text.as_str())
                    }
                    Some(Ok(Message::Close(frame))) => {
                        let code = frame.map_or("none".to_owned(), |f| u16::from(f.code).to_string());
                        return self.ended(live, End::Lost(format!("closed by the server ({code})")));
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return self.ended(live, End::Lost(format!("read: {e}"))),
                    None => return self.ended(live, End::Lost("closed".to_owned())),
                },
            };
            let now = Instant::now();
            let mut reply = None;
            match incoming {
                Incoming::Event { seq, mark } => {
                    if let Some(seq) = seq {
                        if seq <= self.last_seq {
                            // A resend of a seq already seen: the SDK drops it, so does this.
                            self.board.seq_dups.fetch_add(1, Relaxed);
                            continue;
                        }
                        if seq > self.last_seq + 1 {
                            self.board
                                .seq_gaps
                                .fetch_add(seq - self.last_seq - 1, Relaxed);
                        }
                        self.last_seq = seq;
                        if self.last_seq - self.acked >= ACK_BATCH {
                            self.acked = self.last_seq;
                            ack_armed = false;
                            reply = Some(wire::ack(self.last_seq));
                        } else if !ack_armed {
                            ack_armed = true;
                            ack_timer.as_mut().reset((now + ACK_DELAY).into());
                        }
                    }
                    if let Some(mark) = mark {
                        if let Some(round) = mark.round {
                            self.board.record_round(round, self.idx, now);
                        }
                        if let Some(k) = mark.storm {
                            self.on_storm_event(k);
                        }
                    }
                }
                Incoming::Authenticated { session, resumed } => {
                    self.resumed = resuming && resumed;
                    if self.resumed {
                        self.board.resumed.fetch_add(1, Relaxed);
                        live = true;
                    } else {
                        if resuming {
                            self.board.resume_refused.fetch_add(1, Relaxed);
                        }
                        self.last_seq = 0;
                        self.acked = 0;
                        reply = Some(self.join_frame());
                    }
                    self.session = Some(session);
                }
                Incoming::Joined => live = true,
                Incoming::Ack { id, ok, error } if id == self.join_id => {
                    if !ok {
                        return self.ended(live, End::Failed(format!("join refused: {error}")));
                    }
                    live = true;
                }
                Incoming::Ack { .. } => {}
                Incoming::EioOpen => reply = Some(wire::SIO_CONNECT.to_owned()),
                Incoming::SioConnected => reply = Some(self.join_frame()),
                Incoming::Reply(text) => reply = Some(text),
                Incoming::Refused(reason) => return self.ended(live, End::Failed(reason)),
                Incoming::Error(_) => {
                    self.board.server_errors.fetch_add(1, Relaxed);
                }
                Incoming::Other => {}
            }
            if live && permit.is_some() && !self.board.connecting.load(Relaxed) {
                return End::Failed("joined after the connect deadline".to_owned());
            }
            if live {
                self.on_live(now, &mut permit);
            }
            if let Some(text) = reply {
                if let Err(e) = ws.send(Message::text(text)).await {
                    return self.ended(live, End::Lost(format!("send: {e}")));
                }
            }
        }
    }

    /// The join, as a new send.
    fn join_frame(&mut self) -> String {
        self.join_id = self.next_id;
        self.next_id += 1;
        wire::join(self.plan.proto, &self.plan.room, self.join_id)
    }

    /// Counts a first join (releasing the connect permit) or a storm return.
    fn on_live(&mut self, now: Instant, permit: &mut Option<OwnedSemaphorePermit>) {
        if permit.take().is_some() {
            self.board.joined.fetch_add(1, Relaxed);
            self.board.alive.fetch_add(1, Relaxed);
            self.board
                .last_join
                .fetch_max(self.board.stamp(now), Relaxed);
            return;
        }
        if !self.reconnecting || self.back {
            return;
        }
        let whole = self.resumed
            && self.missed == 0
            && self.storm_next >= self.board.outage_events.load(Relaxed);
        if !self.plan.proto.resumes() || whole {
            self.back = true;
            self.board.alive.fetch_add(1, Relaxed);
            self.board.back.fetch_add(1, Relaxed);
            self.board.back_at[self.idx].store(self.board.stamp(now), Relaxed);
        }
    }

    /// A connection ends: a live one stops counting as alive.
    fn ended(&mut self, live: bool, end: End) -> End {
        let counted = live && (!self.reconnecting || self.back);
        if counted {
            self.board.alive.fetch_sub(1, Relaxed);
        }
        match end {
            // Before live, a lost connection is a failed attempt.
            End::Lost(reason) if !live => End::Failed(reason),
            end => end,
        }
    }

    /// Checks storm event `k` against the next one expected: each exactly once, in order.
    fn on_storm_event(&mut self, k: u32) {
        if k == self.storm_next {
            self.storm_next += 1;
        } else if k < self.storm_next {
            self.board.storm_dups.fetch_add(1, Relaxed);
        } else {
            self.missed += u64::from(k - self.storm_next);
            self.board
                .storm_missed
                .fetch_add(u64::from(k - self.storm_next), Relaxed);
            self.storm_next = k + 1;
        }
        self.board.storm_next[self.idx].store(self.storm_next, Relaxed);
    }
}
