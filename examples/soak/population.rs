//! The churning population: one slot per simulated user, each living through client
//! generations (connect, join, send, receive, get cut, resume, retire behind a fence), the
//! `/notify` publishers, and the chaos that cuts links through each slot's `FaultProxy`.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::random_range;
use serde_json::{json, Value};
use sockline::core::Backoff;
use sockline::native::{Client, ClientConfig, Message, Notice};
use sockline::server::mint_token;
use sockline::testing::{FaultProxy, ServerApi, StateWatch};
use tokio::sync::Notify;
use tokio::time::{sleep, sleep_until, timeout, Instant};

use super::ledger::{GenReport, Ledger, Published, Target};

/// What the population does and for how long.
#[derive(Debug, Clone)]
pub struct Plan {
    pub clients: usize,
    pub rooms: usize,
    pub send_every: Duration,
    pub notify_every: Duration,
    pub cut_every: Duration,
    pub mass_cut_every: Duration,
    pub lifetime: (Duration, Duration),
    pub deadline: Instant,
}

/// What every task shares.
pub struct World {
    pub plan: Plan,
    pub server: SocketAddr,
    pub api: ServerApi,
    pub jwt_secret: String,
    pub ledger: Arc<Ledger>,
}

/// How long a generation waits for its connect, its acks and its fence before giving up.
const PATIENCE: Duration = Duration::from_secs(30);

fn user(slot: usize) -> String {
    format!("soak-{slot}")
}

fn room_id(room: usize) -> String {
    format!("soak-{room}")
}

/// Up to `±half` of `base`, at random.
fn jittered(base: Duration) -> Duration {
    base.mul_f64(random_range(0.5..1.5))
}

/// Runs every slot until the deadline and returns every generation's report.
pub async fn run(world: Arc<World>) -> Result<Vec<GenReport>, String> {
    let mut proxies = Vec::new();
    for _ in 0..world.plan.clients {
        let proxy = FaultProxy::start(world.server)
            .await
            .map_err(|e| e.to_string())?;
        proxies.push(Arc::new(proxy));
    }
    let mut background = tokio::task::JoinSet::new();
    for (slot, proxy) in proxies.iter().enumerate() {
        background.spawn(publish(world.clone(), Target::User(slot)));
        background.spawn(chaos(world.plan.clone(), proxy.clone()));
    }
    for room in 0..world.plan.rooms {
        background.spawn(publish(world.clone(), Target::Room(room)));
    }
    background.spawn(mass_cuts(world.plan.clone(), proxies.clone()));
    let mut slots = tokio::task::JoinSet::new();
    for (slot, proxy) in proxies.iter().enumerate() {
        slots.spawn(run_slot(world.clone(), slot, proxy.clone()));
    }
    let mut reports = Vec::new();
    while let Some(done) = slots.join_next().await {
        reports.extend(done.map_err(|e| format!("a slot task failed: {e}"))?);
    }
    background.shutdown().await;
    Ok(reports)
}

/// `/notify`s `target` every `notify_every` until the deadline, one request at a time (so its
/// numbers reach the server in order), recording each in the ledger.
async fn publish(world: Arc<World>, target: Target) {
    let source = match target {
        Target::User(slot) => format!("u{slot}"),
        Target::Room(room) => format!("r{room}"),
    };
    let mut n = 0;
    while Instant::now() < world.plan.deadline {
        sleep(jittered(world.plan.notify_every)).await;
        n += 1;
        let data = json!({ "src": source, "n": n });
        let sent_at = Instant::now();
        let result = match target {
            Target::User(slot) => world.api.notify_user(&user(slot), "soak", data).await,
            Target::Room(room) => {
                let room = format!("chat:{}", room_id(room));
                world.api.notify_room(&room, "soak", data).await
            }
        };
        match result {
            Ok(_) => world.ledger.publish(Published {
                source: source.clone(),
                n,
                target,
                sent_at,
                done_at: Instant::now(),
            }),
            // Not published, so owed to nobody; say so, it should not happen.
            Err(e) => eprintln!("soak: notify {source} #{n} failed: {e}"),
        }
    }
}

/// Cuts one slot's links every `cut_every` on average; a third of the cuts come with an
/// outage (new connections refused for up to 1.5 s).
async fn chaos(plan: Plan, proxy: Arc<FaultProxy>) {
    while Instant::now() < plan.deadline {
        sleep(jittered(plan.cut_every)).await;
        proxy.cut();
        if random_range(0..3) == 0 {
            proxy.refuse(true);
            sleep(Duration::from_millis(random_range(100..1_500))).await;
            proxy.refuse(false);
        }
    }
}

/// Cuts every link at once every `mass_cut_every`: the whole population reconnects together.
async fn mass_cuts(plan: Plan, proxies: Vec<Arc<FaultProxy>>) {
    loop {
        sleep(plan.mass_cut_every).await;
        if Instant::now() >= plan.deadline {
            return;
        }
        println!("soak: cutting all {} links at once", proxies.len());
        for proxy in &proxies {
            proxy.cut();
        }
    }
}

async fn run_slot(world: Arc<World>, slot: usize, proxy: Arc<FaultProxy>) -> Vec<GenReport> {
    let mut reports = Vec::new();
    let mut generation = 0;
    while Instant::now() < world.plan.deadline {
        generation += 1;
        reports.push(live(&world, slot, generation, &proxy).await);
    }
    reports
}

/// What one generation's listeners record.
#[derive(Default)]
struct Books {
    received: Vec<(String, u64)>,
    last_seq: u64,
    seq_gaps: u64,
    /// Send id → (n, when `send` was called), until its ack.
    pending: HashMap<u64, (u64, Instant)>,
    acked_ids: HashSet<u64>,
    acked: u64,
    ack_errors: u64,
    ack_dups: u64,
    resume_failed: u64,
}

struct Shared {
    books: Mutex<Books>,
    fence: Notify,
    room_fence: Notify,
}

impl Shared {
    fn books(&self) -> MutexGuard<'_, Books> {
        self.books.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `(source, n)` of a soak event: `soak {src, n}` from a publisher, `new_message` whose text is
/// `SOURCE#N` from a client.
fn soak_item(message: &Message, data: &Value) -> Option<(String, u64)> {
    match message.event.as_str() {
        "soak" => Some((data["src"].as_str()?.to_owned(), data["n"].as_u64()?)),
        "new_message" => {
            let (source, n) = data["text"].as_str()?.split_once('#')?;
            Some((source.to_owned(), n.parse().ok()?))
        }
        _ => None,
    }
}

/// Whether `data` names this slot and generation.
fn is_mine(data: &Value, slot: usize, generation: u64) -> bool {
    data["slot"].as_u64() == Some(slot as u64) && data["gen"].as_u64() == Some(generation)
}

/// One generation: a fresh `Client` (a new session for the slot's user), from start to retire.
async fn live(world: &World, slot: usize, generation: u64, proxy: &FaultProxy) -> GenReport {
    let plan = &world.plan;
    let room = slot % plan.rooms;
    let source = format!("c{slot}.{generation}");
    let ttl = plan.deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(3600);
    let config = ClientConfig::new(
        proxy.ws_url(),
        mint_token(&world.jwt_secret, &user(slot), ttl),
    )
    .room(format!("chat:{}", room_id(room)))
    .outbox(100_000, 64 * 1024 * 1024)
    .backoff(Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(2),
        max_retries: None,
        ..Backoff::default()
    });
    let client = Client::new(config);
    let shared = Arc::new(Shared {
        books: Mutex::default(),
        fence: Notify::new(),
        room_fence: Notify::new(),
    });
    let sink = shared.clone();
    let _events = client.on_any(move |message| {
        let data = message.data.to_value();
        let mut books = sink.books();
        // Volatile events carry no seq; every other one follows the last.
        if let Some(seq) = message.seq {
            if books.last_seq != 0 && seq != books.last_seq + 1 {
                books.seq_gaps += 1;
            }
            books.last_seq = seq;
        }
        if let Some(item) = soak_item(message, &data) {
            books.received.push(item);
        } else if message.event == "soak_fence" && is_mine(&data, slot, generation) {
            sink.fence.notify_one();
        } else if message.event == "soak_room_fence" && is_mine(&data, slot, generation) {
            sink.room_fence.notify_one();
        }
    });
    let sink = shared.clone();
    let ledger = world.ledger.clone();
    let acked_source = source.clone();
    let _notices = client.on_notice(move |notice| {
        let mut books = sink.books();
        match notice {
            Notice::Ack { id, result } => match books.pending.remove(&id.0) {
                Some((n, sent_at)) => {
                    books.acked_ids.insert(id.0);
                    match result {
                        Ok(_) => {
                            books.acked += 1;
                            ledger.publish(Published {
                                source: acked_source.clone(),
                                n,
                                target: Target::Room(room),
                                sent_at,
                                done_at: Instant::now(),
                            });
                        }
                        Err(error) => {
                            books.ack_errors += 1;
                            eprintln!("soak: {acked_source} #{n} failed: {error}");
                        }
                    }
                }
                None if books.acked_ids.contains(&id.0) => books.ack_dups += 1,
                None => {}
            },
            Notice::ResumeFailed => books.resume_failed += 1,
            _ => {}
        }
    });
    let mut states = StateWatch::new(&client);
    client.start();

    let accept_start = match states.wait_for("connected", PATIENCE).await {
        Ok(()) => join_fence(world, &shared, slot, generation, room).await,
        Err(e) => {
            eprintln!("soak: {source} never connected: {e}");
            None
        }
    };
    let end = plan.deadline.min(
        Instant::now()
            + Duration::from_secs_f64(random_range(
                plan.lifetime.0.as_secs_f64()..=plan.lifetime.1.as_secs_f64(),
            )),
    );
    let mut sent = 0;
    if accept_start.is_some() {
        let chat_id = room_id(room);
        loop {
            let next = Instant::now() + jittered(plan.send_every);
            if next >= end {
                break;
            }
            sleep_until(next).await;
            let n = sent + 1;
            let text = format!("{source}#{n}");
            // Held across `send` so its ack cannot be handled before it is pending.
            let mut books = shared.books();
            match client.send("message", json!({ "chat_id": chat_id, "text": text })) {
                Ok(id) => {
                    books.pending.insert(id.0, (n, Instant::now()));
                    sent = n;
                }
                Err(e) => eprintln!("soak: {source} send refused: {e}"),
            }
        }
    }
    sleep_until(end).await;
    let retire_start = Instant::now();

    // Every send acked, then a fence through the user's own stream: once it arrives, every
    // event the server had for this session before it has arrived too.
    let acked = timeout(PATIENCE, async {
        while !shared.books().pending.is_empty() {
            sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    if acked.is_err() {
        eprintln!(
            "soak: {source} still has {} sends unacked",
            shared.books().pending.len()
        );
    }
    let fenced = accept_start.is_some() && fence(world, &shared, slot, generation).await;
    if accept_start.is_some() && !fenced {
        eprintln!(
            "soak: {source} fence did not arrive within {PATIENCE:?} ({:?})",
            client.state()
        );
    }
    let reconnects = client.stats().reconnects;
    client.disconnect().await;
    let books = shared.books();
    GenReport {
        slot,
        room,
        accept_start,
        retire_start,
        received: books.received.clone(),
        seq_gaps: books.seq_gaps,
        sent,
        acked: books.acked,
        ack_errors: books.ack_errors,
        ack_dups: books.ack_dups,
        resume_failed: books.resume_failed,
        fenced,
        reconnects,
    }
}

/// Notifies the room until this generation hears its own fence there: from then on it is
/// connected and in the room, and every event published is owed to it.
async fn join_fence(
    world: &World,
    shared: &Shared,
    slot: usize,
    generation: u64,
    room: usize,
) -> Option<Instant> {
    let until = Instant::now() + PATIENCE;
    let room_name = format!("chat:{}", room_id(room));
    let mut k = 0;
    while Instant::now() < until {
        k += 1;
        let data = json!({ "slot": slot, "gen": generation, "k": k });
        if let Err(e) = world
            .api
            .notify_room(&room_name, "soak_room_fence", data)
            .await
        {
            eprintln!("soak: room fence failed: {e}");
        }
        if timeout(Duration::from_millis(300), shared.room_fence.notified())
            .await
            .is_ok()
        {
            return Some(Instant::now());
        }
    }
    eprintln!("soak: c{slot}.{generation} never heard its room fence");
    None
}

/// Sends the closing fence to the slot's user and waits for it.
async fn fence(world: &World, shared: &Shared, slot: usize, generation: u64) -> bool {
    let data = json!({ "slot": slot, "gen": generation });
    if let Err(e) = world.api.notify_user(&user(slot), "soak_fence", data).await {
        eprintln!("soak: fence for c{slot}.{generation} failed: {e}");
        return false;
    }
    timeout(PATIENCE, shared.fence.notified()).await.is_ok()
}
