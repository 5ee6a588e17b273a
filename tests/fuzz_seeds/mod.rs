//! The seed corpora of `tests/fuzz_corpus.rs`, written from the real frames in the crate's tests:
//! the JSON texts of their raw string literals (`json`), those that are frames (`frame`), and
//! scripts that bring the core (`core`) and the server (`server`) to the states worth fuzzing
//! from and feed each frame there.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;
use sockline::fuzzing::script::{Script, Step};
use sockline::fuzzing::server_script::{ServerScript, ServerStep};

/// The JSON texts in the raw string literals of the crate's tests (`r#"…"#`; `format!`
/// templates with their placeholders filled in).
pub fn json_literals() -> BTreeSet<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut sources = Vec::new();
    let mut dirs = vec![root.join("tests"), root.join("src")];
    while let Some(dir) = dirs.pop() {
        for path in std::fs::read_dir(&dir)
            .expect("a source directory")
            .flatten()
        {
            let path = path.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                sources.push(std::fs::read_to_string(&path).expect("a source file"));
            }
        }
    }
    let mut out = BTreeSet::new();
    for source in sources {
        let mut rest = source.as_str();
        while let Some(start) = rest.find("r#\"") {
            let body = &rest[start + 3..];
            let Some(end) = body.find("\"#") else { break };
            let literal = &body[..end];
            rest = &body[end + 2..];
            for fill in ["1", "", "\"x\""] {
                let text = unformat(literal, fill);
                if serde_json::from_str::<Value>(&text).is_ok() {
                    out.insert(text);
                    break;
                }
            }
        }
    }
    out
}

/// A `format!` template as text: `{{` and `}}` unescaped, each placeholder replaced by `fill`.
fn unformat(template: &str, fill: &str) -> String {
    if !template.contains("{{") {
        return template.to_owned();
    }
    let mut out = String::new();
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('{', Some('{')) | ('}', Some('}')) => {
                chars.next();
                out.push(c);
            }
            ('{', _) => {
                for c in chars.by_ref() {
                    if c == '}' {
                        break;
                    }
                }
                out.push_str(fill);
            }
            _ => out.push(c),
        }
    }
    out
}

/// A JSON object with a string `type`: a frame (client frames and unknown types too: the decoder
/// must refuse them, and their shapes are good material for the fuzzer).
pub fn is_frame(text: &str) -> bool {
    matches!(
        serde_json::from_str::<Value>(text),
        Ok(Value::Object(map)) if map.get("type").is_some_and(Value::is_string)
    )
}

fn hello(flags: u8, expires: u8, limits: u8) -> Step {
    Step::Authenticated {
        flags,
        session: 0,
        missed: 0,
        heartbeat: 30,
        expires,
        limits,
    }
}

fn script(config: u8, steps: Vec<Step>) -> Script {
    let delays = [0u8, 3, 10, 0, 40, 0, 1, 16, 0, 5];
    Script {
        config,
        seed: 7,
        steps: steps
            .into_iter()
            .enumerate()
            .map(|(i, s)| (delays[i % delays.len()], s))
            .collect(),
    }
}

/// Scripts that reach the states worth fuzzing from: each real server frame on a live link,
/// and the scenarios the script tests walk (sends and acks, rate limits, gaps and resume, the
/// token lifecycle, disconnect with requests in flight, restored sends, page visibility).
pub fn core_scripts(frames: &[String]) -> Vec<Script> {
    use Step::*;
    let live = || vec![Connect, Token(0), Opened, hello(0, 0, 0)];
    let mut out = Vec::new();
    for frame in frames {
        let mut steps = live();
        steps.extend([
            Event(1),
            Frame(frame.as_bytes().to_vec()),
            Timeout,
            Frame(frame.as_bytes().to_vec()),
            Closed(1006),
            Timeout,
            Token(0),
            Opened,
            hello(1, 0, 0),
        ]);
        out.push(script(0, steps));
    }
    let scenarios = [
        (0, {
            let mut s = vec![
                Send(vec![]),
                Send(b"{\"text\":\"hi\"}".to_vec()),
                Send(vec![]),
            ];
            s.extend(live());
            s.extend([
                Ack {
                    id: 1,
                    code: 1,
                    retry: 0,
                },
                Ack {
                    id: 2,
                    code: 2,
                    retry: 20,
                },
                Timeout,
                Ack {
                    id: 2,
                    code: 1,
                    retry: 0,
                },
                Ack {
                    id: 3,
                    code: 6,
                    retry: 0,
                },
            ]);
            s
        }),
        (32, {
            let mut s = live();
            s.extend([Event(1), Event(1), Event(0), Event(1), Event(9), Timeout]);
            s.extend([Token(0), Opened, hello(1, 0, 0), Event(1), Timeout]);
            s
        }),
        (0, {
            let mut s = vec![Connect, Token(0), Opened, hello(0, 60, 10)];
            s.extend([
                Timeout,
                Token(2),
                Refreshed(120),
                Timeout,
                Token(0),
                AuthError(1),
            ]);
            s.extend([
                Timeout,
                Token(0),
                Opened,
                hello(0, 1, 0),
                Closed(4002),
                Timeout,
            ]);
            s
        }),
        (4, {
            let mut s = live();
            s.extend([
                Request(5),
                Join(1),
                Disconnect,
                Event(1),
                Timeout,
                Connect,
                Token(0),
            ]);
            s.extend([Opened, AuthError(0), Connect, Reconnect]);
            s
        }),
        (2, {
            let mut s = vec![
                ResumeFrom { session: 0, seq: 4 },
                RestoreSend { id: 7, owner: 2 },
                RestoreSend { id: 3, owner: 1 },
                Send(vec![]),
            ];
            s.extend(live());
            s.extend([
                Event(1),
                Ack {
                    id: 3,
                    code: 1,
                    retry: 0,
                },
            ]);
            s
        }),
        (1 | 64, {
            let mut s = vec![Env(3), Connect, Timeout, Env(2), Opened, hello(2, 0, 0)];
            s.extend([
                Env(1),
                Timeout,
                Env(0),
                Timeout,
                Opened,
                Stale { socket: 1, what: 2 },
            ]);
            s.extend([Binary, TransportError, Timeout, Ping(12), ServerError]);
            s
        }),
        (4 | 8, {
            let mut s = vec![Connect];
            for _ in 0..8 {
                s.extend([Token(1), Timeout, Token(0), Closed(1013), Timeout]);
            }
            s.extend([Token(0), Opened, Timeout, Closed(4008)]);
            s
        }),
    ];
    out.extend(
        scenarios
            .into_iter()
            .map(|(config, steps)| script(config, steps)),
    );
    out
}

/// Scripts for the server: each real frame from the tests as the first frame of `U` and on the
/// live `A`, and the situations the server's own tests walk: every event with every kind of data,
/// each token and resume point, a takeover, the rate limit, the frame budget, the per-user socket
/// cap, the auth timeout, binary and non-UTF-8 frames, pings before auth, `/notify` fan-out.
pub fn server_scripts(frames: &[String]) -> Vec<ServerScript> {
    use ServerStep::*;
    let script = |config, steps| ServerScript { config, steps };
    let mut out = Vec::new();
    for frame in frames {
        let text = || frame.as_bytes().to_vec();
        out.push(script(
            0,
            vec![
                Text {
                    to: 1,
                    text: text(),
                },
                Text {
                    to: 0,
                    text: text(),
                },
            ],
        ));
    }
    let mut sends = Vec::new();
    for event in 0..12u8 {
        for arg in [
            0, 6, 12, 18, 24, 30, 36, 42, 1, 7, 13, 2, 8, 14, 20, 3, 4, 5, 11, 17,
        ] {
            sends.push(Send {
                to: 0,
                id: event * 20 + arg % 20 + 1,
                event,
                arg,
            });
        }
    }
    out.push(script(0, sends));
    let mut auths = Vec::new();
    for token in 0..9u8 {
        for (resume, client) in [
            (0, 0),
            (0, 1),
            (0, 2),
            (0, 3),
            (1, 1),
            (2, 0),
            (3, 1),
            (4, 1),
            (5, 0),
        ] {
            auths.extend([
                Reopen,
                Auth {
                    to: 1,
                    token,
                    resume,
                    client,
                },
                Send {
                    to: 1,
                    id: 1,
                    event: 7,
                    arg: 0,
                },
            ]);
        }
    }
    out.push(script(0, auths));
    out.extend([
        script(
            0,
            vec![
                Auth {
                    to: 1,
                    token: 0,
                    resume: 3,
                    client: 1,
                },
                Send {
                    to: 0,
                    id: 1,
                    event: 2,
                    arg: 1,
                },
                Send {
                    to: 1,
                    id: 1,
                    event: 2,
                    arg: 1,
                },
                Send {
                    to: 1,
                    id: 1,
                    event: 2,
                    arg: 1,
                },
            ],
        ),
        script(
            0,
            vec![
                Auth {
                    to: 1,
                    token: 0,
                    resume: 1,
                    client: 3,
                },
                Send {
                    to: 1,
                    id: 2,
                    event: 0,
                    arg: 18,
                },
                Send {
                    to: 1,
                    id: 3,
                    event: 5,
                    arg: 2,
                },
            ],
        ),
        script(
            1,
            (1..12)
                .map(|id| Send {
                    to: 0,
                    id,
                    event: 7,
                    arg: 0,
                })
                .collect(),
        ),
        script(2, (0..30).map(|t| Pong { to: 0, t }).collect()),
        script(
            4,
            vec![
                Auth {
                    to: 1,
                    token: 0,
                    resume: 0,
                    client: 1,
                },
                Reopen,
                Auth {
                    to: 1,
                    token: 0,
                    resume: 0,
                    client: 0,
                },
            ],
        ),
        script(
            0,
            vec![
                Wait(16),
                Wait(30),
                Send {
                    to: 0,
                    id: 9,
                    event: 7,
                    arg: 0,
                },
            ],
        ),
        script(
            0,
            vec![
                Binary {
                    to: 0,
                    data: b"{}".to_vec(),
                },
                BadUtf8 { to: 0 },
                Binary {
                    to: 1,
                    data: vec![0],
                },
                Reopen,
                BadUtf8 { to: 1 },
            ],
        ),
        script(0, {
            let mut s: Vec<ServerStep> = (0..9)
                .map(|what| Control {
                    to: 1,
                    what: what * 3,
                })
                .collect();
            s.extend([
                Auth {
                    to: 1,
                    token: 0,
                    resume: 0,
                    client: 0,
                },
                Control { to: 0, what: 2 },
            ]);
            s
        }),
        script(
            0,
            vec![
                Send {
                    to: 0,
                    id: 1,
                    event: 0,
                    arg: 0,
                },
                Notify(0),
                Notify(1),
                Notify(2),
                Notify(3),
                Ack { to: 0, seq: 1 },
                Ack { to: 0, seq: 0 },
                Ack { to: 0, seq: 255 },
                Refresh { to: 0, token: 0 },
                Refresh { to: 0, token: 2 },
                Auth {
                    to: 0,
                    token: 0,
                    resume: 0,
                    client: 0,
                },
            ],
        ),
    ]);
    out
}
