//! `sockline-cli`: a JSON-lines client for harnesses and for poking a server by hand.
//!
//! stdout, one JSON object per line: `state` on every state change, `event` for every server
//! event, `ack` for every send's outcome, `error` for problems (bad stdin lines included).
//! stdin, one JSON object per line: `{"event":"message","data":{…}}` is sent (queued while not
//! connected). On stdin EOF it waits for every send's ack (or `--drain-timeout-ms`), disconnects
//! and exits 0, or 1 if sends were left unacked. When the client gives up (retries exhausted,
//! token rejected, refused) it exits 2 with the reason on stderr.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use futures::StreamExt;
use serde_json::{json, Value};
use sockline::core::{Backoff, ConnectionConfig, ConnectionState};
use sockline::native::{Client, ClientConfig, Notice, StateChange};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Notify;

/// A JSON-lines sockline client.
#[derive(Debug, Parser)]
#[command(
    version,
    about = "A JSON-lines sockline client: state, event and ack lines on stdout; one {\"event\",\"data\"} object per stdin line is sent."
)]
struct Args {
    /// The server's WebSocket URL, e.g. ws://127.0.0.1:8080/ws.
    #[arg(long)]
    url: String,
    /// The token sent in the `auth` frame (the same on every connect).
    #[arg(
        long,
        env = "SOCKLINE_TOKEN",
        hide_env_values = true,
        required_unless_present = "token_command",
        conflicts_with = "token_command"
    )]
    token: Option<String>,
    /// A command run through `sh -c` for a fresh token on every (re)connect and refresh; its
    /// stdout, trimmed, is the token (a non-zero exit or empty output is a failed fetch).
    #[arg(long, value_name = "CMD")]
    token_command: Option<String>,
    /// A room to join (repeatable).
    #[arg(long = "join", value_name = "ROOM")]
    rooms: Vec<String>,
    /// The first retry's base delay.
    #[arg(long, default_value_t = ms(defaults().backoff.initial))]
    backoff_initial_ms: u64,
    /// The cap on any retry delay.
    #[arg(long, default_value_t = ms(defaults().backoff.max))]
    backoff_max_ms: u64,
    /// Retries before giving up (0 and up; `forever` never gives up).
    #[arg(long, default_value_t = Retries(defaults().backoff.max_retries))]
    max_retries: Retries,
    /// Silence allowed beyond the server's heartbeat before the link counts as dead.
    #[arg(long, default_value_t = ms(defaults().heartbeat_grace))]
    heartbeat_grace_ms: u64,
    /// How long to wait for outstanding acks after stdin ends (the request timeout).
    #[arg(long, default_value_t = ms(defaults().request_timeout))]
    drain_timeout_ms: u64,
}

/// `--max-retries`: a count, or `forever`.
#[derive(Debug, Clone, Copy)]
struct Retries(Option<u32>);

impl std::str::FromStr for Retries {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s == "forever" {
            return Ok(Retries(None));
        }
        s.parse()
            .map(|n| Retries(Some(n)))
            .map_err(|_| format!("expected a number of retries or `forever`, got {s:?}"))
    }
}

impl std::fmt::Display for Retries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(n) => write!(f, "{n}"),
            None => f.write_str("forever"),
        }
    }
}

/// The core's defaults: the CLI repeats none of them.
fn defaults() -> ConnectionConfig {
    ConnectionConfig::new("")
}

fn ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Writes one JSON line to stdout (locked, so lines never interleave).
fn emit(line: Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn state_line(change: &StateChange) -> Value {
    let mut line = json!({ "type": "state", "state": change.to.name() });
    if let ConnectionState::Connecting { attempt }
    | ConnectionState::Authenticating { attempt }
    | ConnectionState::Reconnecting { attempt, .. } = &change.to
    {
        line["attempt"] = json!(attempt);
    }
    if let Some(delay) = change.retry_in {
        line["delay_ms"] = json!(ms(delay));
    }
    line["cause"] = json!(change.cause.code());
    line["reason"] = json!(change.cause.to_string());
    if let ConnectionState::Connected { session } = &change.to {
        line["session"] = json!(session);
    }
    line
}

#[tokio::main]
async fn main() {
    let code = run().await;
    // Exit at once: tokio's stdin reader sits on a blocking thread the runtime would otherwise
    // wait for until the next line (or EOF) arrives.
    std::process::exit(code);
}

async fn run() -> i32 {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = Args::parse();
    // clap requires exactly one of --token and --token-command.
    let config = match (args.token.clone(), args.token_command.clone()) {
        (None, Some(command)) => {
            ClientConfig::with_token_provider(&args.url, move || run_token_command(command.clone()))
        }
        (token, _) => ClientConfig::new(&args.url, token.unwrap_or_default()),
    };
    let mut config = config
        .backoff(Backoff {
            initial: Duration::from_millis(args.backoff_initial_ms),
            max: Duration::from_millis(args.backoff_max_ms),
            max_retries: args.max_retries.0,
            ..Backoff::default()
        })
        .heartbeat_grace(Duration::from_millis(args.heartbeat_grace_ms));
    for room in &args.rooms {
        config = config.room(room);
    }

    // Subscribe before starting: the first state change (`connecting`) is not missed.
    let client = Client::new(config);
    let mut states = client.states();
    let unacked: Arc<Mutex<BTreeSet<u64>>> = Arc::default();
    let _events = client.on_any(|m| {
        emit(json!({"type": "event", "event": m.event, "seq": m.seq, "data": m.data.to_value()}));
    });
    // Signalled whenever an ack empties the unacked set, so the drain waits without polling.
    let all_acked = Arc::new(Notify::new());
    let (settled, notify) = (unacked.clone(), all_acked.clone());
    let _notices = client.on_notice(move |notice| match notice {
        Notice::Ack { id, result } => {
            let mut pending = settled.lock().unwrap_or_else(|p| p.into_inner());
            if pending.remove(&id.0) && pending.is_empty() {
                notify.notify_one();
            }
            drop(pending);
            match result {
                Ok(data) => {
                    let mut line = json!({"type": "ack", "id": id.0, "ok": true});
                    if let Some(data) = data {
                        line["data"] = data.clone();
                    }
                    emit(line);
                }
                Err(error) => emit(json!({
                    "type": "ack", "id": id.0, "ok": false,
                    "error": {"code": error.code(), "message": error.to_string()},
                })),
            }
        }
        Notice::Error(error) => {
            emit(json!({"type": "error", "code": error.code(), "message": error.to_string()}));
        }
        Notice::Resumed { missed } => emit(json!({"type": "resumed", "missed": missed})),
        Notice::ResumeFailed => emit(json!({"type": "resume_failed"})),
        _ => {}
    });

    client.start();
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            change = states.next() => {
                if gave_up(change) {
                    return 2;
                }
            }
            line = stdin.next_line() => match line {
                Ok(Some(line)) => send_line(&client, &unacked, &line),
                Ok(None) => break,
                Err(error) => {
                    emit(json!({"type": "error", "code": "stdin", "message": error.to_string()}));
                    break;
                }
            },
        }
    }

    // stdin ended: drain the outbox, then leave.
    let drain = tokio::time::sleep(Duration::from_millis(args.drain_timeout_ms));
    tokio::pin!(drain);
    while !unacked.lock().unwrap_or_else(|p| p.into_inner()).is_empty() {
        tokio::select! {
            change = states.next() => {
                if gave_up(change) {
                    return 2;
                }
            }
            () = all_acked.notified() => {}
            () = &mut drain => break,
        }
    }
    let left = unacked.lock().unwrap_or_else(|p| p.into_inner()).len();
    client.disconnect().await;
    while let Some(Some(change)) = futures::FutureExt::now_or_never(states.next()) {
        emit(state_line(&change));
    }
    if left > 0 {
        eprintln!("sockline-cli: {left} send(s) left unacked after the drain timeout");
        return 1;
    }
    0
}

/// Runs `command` through `sh -c`; its trimmed stdout is the token.
async fn run_token_command(command: String) -> Result<String, String> {
    let output = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&command)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .await
        .map_err(|e| format!("--token-command could not run: {e}"))?;
    if !output.status.success() {
        return Err(format!("--token-command exited with {}", output.status));
    }
    let token = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if token.is_empty() {
        return Err("--token-command printed no token".to_owned());
    }
    Ok(token)
}

/// Prints a state change; whether the client gave up (or the stream ended), with the reason on
/// stderr.
fn gave_up(change: Option<StateChange>) -> bool {
    let Some(change) = change else {
        eprintln!("sockline-cli: the client stopped");
        return true;
    };
    emit(state_line(&change));
    if let ConnectionState::Disconnected { reason } = &change.to {
        eprintln!("sockline-cli: gave up: {reason}");
        return true;
    }
    false
}

fn send_line(client: &Client, unacked: &Mutex<BTreeSet<u64>>, line: &str) {
    if line.trim().is_empty() {
        return;
    }
    let parsed: Result<Value, _> = serde_json::from_str(line);
    let (event, data) = match parsed {
        Ok(Value::Object(mut map)) => match map.remove("event") {
            Some(Value::String(event)) => (event, map.remove("data").unwrap_or(Value::Null)),
            _ => {
                emit(
                    json!({"type": "error", "code": "bad_line", "message": "missing string field `event`", "line": line}),
                );
                return;
            }
        },
        Ok(_) => {
            emit(
                json!({"type": "error", "code": "bad_line", "message": "expected a JSON object", "line": line}),
            );
            return;
        }
        Err(error) => {
            emit(
                json!({"type": "error", "code": "bad_line", "message": error.to_string(), "line": line}),
            );
            return;
        }
    };
    // Hold the set while sending so the ack cannot be handled before the id is recorded.
    let mut pending = unacked.lock().unwrap_or_else(|p| p.into_inner());
    match client.send(&event, data) {
        Ok(id) => {
            pending.insert(id.0);
        }
        Err(error) => emit(
            json!({"type": "error", "code": error.code(), "message": error.to_string(), "line": line}),
        ),
    }
}
