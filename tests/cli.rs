//! `sockline-cli` as a harness uses it: JSON lines in, JSON lines out, exit codes 0 / 1 / 2.
#![cfg(all(feature = "server", feature = "cli"))]

mod support;

use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use sockline::server::ServerConfig;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::timeout;

use support::{start_server, token};

fn cli(url: &str, token: &str, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_sockline-cli"))
        .args(["--url", url, "--token", token, "--backoff-initial-ms", "20"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("sockline-cli starts")
}

/// Reads stdout lines until `stop` says so; returns them all.
async fn read_until(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    mut stop: impl FnMut(&Value) -> bool,
) -> Vec<Value> {
    let mut seen = Vec::new();
    let result = timeout(Duration::from_secs(10), async {
        while let Some(line) = lines.next_line().await.expect("stdout") {
            let value: Value = serde_json::from_str(&line).expect("every stdout line is JSON");
            let done = stop(&value);
            seen.push(value);
            if done {
                return;
            }
        }
    })
    .await;
    assert!(result.is_ok(), "timed out; saw {seen:#?}");
    seen
}

#[tokio::test]
async fn sends_from_stdin_are_acked_events_printed_and_eof_exits_zero() {
    let server = start_server(ServerConfig::for_tests()).await;
    let url = format!("ws://{}/ws", server.local_addr());
    let mut child = cli(&url, &token("alice"), &["--join", "chat:3"]);
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();

    let start = read_until(&mut lines, |v| v["state"] == "connected").await;
    let states: Vec<&str> = start.iter().filter_map(|v| v["state"].as_str()).collect();
    assert_eq!(states, ["connecting", "authenticating", "connected"]);
    assert_eq!(start[0]["attempt"], 0);

    stdin
        .write_all(b"{\"event\":\"message\",\"data\":{\"chat_id\":\"3\",\"text\":\"hi\"}}\nnot json\n{\"data\":1}\n")
        .await
        .unwrap();
    let mut acks = 0;
    let mut errors = 0;
    let mut event = None;
    read_until(&mut lines, |v| {
        match v["type"].as_str() {
            Some("ack") => acks += 1,
            Some("error") => errors += 1,
            Some("event") => event = Some(v.clone()),
            _ => {}
        }
        acks == 1 && errors == 2 && event.is_some()
    })
    .await;
    let event = event.unwrap();
    assert_eq!(event["event"], "new_message");
    assert_eq!(event["data"]["text"], "hi");
    assert!(event["seq"].as_u64().unwrap() >= 1);

    drop(stdin);
    let rest = read_until(&mut lines, |v| v["state"] == "disconnected").await;
    assert_eq!(rest.last().unwrap()["state"], "disconnected");
    let status = timeout(Duration::from_secs(5), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    server.shutdown().await;
}

#[tokio::test]
async fn retries_exhausted_exits_two_with_the_reason_on_stderr() {
    let server = start_server(ServerConfig::for_tests()).await;
    let url = format!("ws://{}/ws", server.local_addr());
    server.abort();
    let mut child = cli(&url, &token("alice"), &["--max-retries", "2"]);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let seen = read_until(&mut lines, |v| v["state"] == "disconnected").await;
    let retries: Vec<&Value> = seen
        .iter()
        .filter(|v| v["state"] == "reconnecting")
        .collect();
    assert_eq!(retries.len(), 2);
    assert_eq!(retries[1]["attempt"], 2);
    assert!(retries[0]["delay_ms"].as_u64().unwrap() <= 20);
    assert!(retries[0]["reason"]
        .as_str()
        .unwrap()
        .contains("socket error"));
    let output = timeout(Duration::from_secs(5), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("gave up after 2 retries"), "{stderr}");
}

#[tokio::test]
async fn unacked_sends_after_the_drain_timeout_exit_one() {
    let server = start_server(ServerConfig::for_tests()).await;
    let url = format!("ws://{}/ws", server.local_addr());
    server.abort();
    let mut child = cli(
        &url,
        &token("alice"),
        &["--max-retries", "1000", "--drain-timeout-ms", "300"],
    );
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(
            json!({"event": "message", "data": {"chat_id": "1", "text": "x"}})
                .to_string()
                .as_bytes(),
        )
        .await
        .unwrap();
    stdin.write_all(b"\n").await.unwrap();
    drop(stdin);
    let output = timeout(Duration::from_secs(5), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("1 send(s) left unacked"));
}

#[tokio::test]
async fn a_rejected_token_exits_two() {
    let server = start_server(ServerConfig::for_tests()).await;
    let url = format!("ws://{}/ws", server.local_addr());
    let mut child = cli(&url, "bad-token", &[]);
    // Keep stdin open: the exit must come from the rejection, not from EOF.
    let _stdin = child.stdin.take();
    let output = timeout(Duration::from_secs(5), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(r#""state":"disconnected""#), "{stdout}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("authentication rejected"));
    server.shutdown().await;
}

#[tokio::test]
async fn token_command_is_run_for_every_connect_and_its_failure_is_retried() {
    let server = start_server(ServerConfig::for_tests()).await;
    let url = format!("ws://{}/ws", server.local_addr());
    let dir = std::env::temp_dir().join(format!("sockline-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let runs = dir.join("runs");
    // Fails the first time (no token), then prints the token; every run is counted.
    let command = format!(
        r#"echo run >> {runs}; [ "$(wc -l < {runs})" -ge 2 ] && printf '  %s\n' "$T""#,
        runs = runs.display()
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_sockline-cli"))
        .args(["--url", &url, "--token-command", &command])
        .args(["--backoff-initial-ms", "20"])
        .env("T", token("cmd-user"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("sockline-cli starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let seen = read_until(&mut lines, |v| v["state"] == "connected").await;
    let failed: Vec<&Value> = seen
        .iter()
        .filter(|v| v["state"] == "reconnecting")
        .collect();
    assert_eq!(failed.len(), 1, "{seen:#?}");
    assert_eq!(failed[0]["cause"], "token_fetch_failed");
    assert!(failed[0]["reason"]
        .as_str()
        .unwrap()
        .contains("--token-command"));
    assert_eq!(std::fs::read_to_string(&runs).unwrap().lines().count(), 2);
    drop(child);
    let _ = std::fs::remove_dir_all(&dir);
    server.shutdown().await;
}
