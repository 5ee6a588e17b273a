//! Replays the fuzz corpora on stable: every file in `fuzz/corpus/<target>/` and every crash
//! ever found (`fuzz/regressions/<target>/`) through the check its fuzz target runs
//! (`sockline::fuzzing`), so CI holds them without nightly. Also writes the seed corpora from
//! the real frames in the tests (`--ignored write_seed_corpora`, see fuzz/README.md).

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use serde_json::Value;
use sockline::fuzzing::script::{Script, Step};
use sockline::fuzzing::TARGETS;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("a readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Runs every corpus file and regression of `name` through its check; all failures at once.
fn replay(name: &str) {
    let Some((_, check)) = TARGETS.iter().find(|(n, _)| *n == name) else {
        panic!("no check named {name}");
    };
    let corpus = files(&fuzz_dir().join("corpus").join(name));
    assert!(
        !corpus.is_empty(),
        "fuzz/corpus/{name}/ is empty or missing"
    );
    let regressions = files(&fuzz_dir().join("regressions").join(name));
    let mut failures = Vec::new();
    for path in corpus.iter().chain(&regressions) {
        let data = std::fs::read(path).expect("a readable corpus file");
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| check(&data))) {
            failures.push(format!("{}: {}", path.display(), panic_message(&*payload)));
        }
    }
    println!(
        "{name}: {} corpus files, {} regressions replayed",
        corpus.len(),
        regressions.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// One test per target, so they replay in parallel.
macro_rules! replays {
    ($($test:ident: $name:literal),* $(,)?) => {
        const REPLAYED: &[&str] = &[$($name),*];
        $(
            #[test]
            fn $test() {
                replay($name);
            }
        )*
    };
}

replays! {
    frame_corpus_and_regressions_pass: "frame",
    json_corpus_and_regressions_pass: "json",
    core_corpus_and_regressions_pass: "core",
}

#[test]
fn corpora_and_targets_name_the_same_checks() {
    let known: BTreeSet<&str> = TARGETS.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        known,
        REPLAYED.iter().copied().collect(),
        "a check without a replay test, or a replay test without a check"
    );
    for (name, _) in TARGETS {
        let target = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        let source = std::fs::read_to_string(&target).expect("a fuzz target per check");
        assert!(
            source.contains(&format!("sockline::fuzzing::{name}(")),
            "{} does not run sockline::fuzzing::{name}",
            target.display()
        );
    }
    // A corpus for a target that is not replayed would be dead weight.
    for kind in ["corpus", "regressions"] {
        for entry in
            std::fs::read_dir(fuzz_dir().join(kind)).expect("fuzz/corpus, fuzz/regressions")
        {
            let name = entry.expect("a readable directory entry").file_name();
            let name = name.to_string_lossy();
            assert!(
                known.contains(name.as_ref()),
                "fuzz/{kind}/{name} has no check"
            );
        }
    }
}

#[test]
fn core_scripts_read_back_as_written() {
    for script in core_scripts(&[r#"{"type":"ping","t":1}"#.to_owned()]) {
        assert_eq!(Script::parse(&script.to_bytes()), script);
    }
    // Every op byte reads as a step when its arguments are there (the longest takes six
    // bytes), which writes back as the bytes it was read from (the op byte modulo the op
    // count); a step cut short by the end of the input is dropped.
    for op in 0..=255u8 {
        let input = [0, 0, 0, op, 0, 1, 1, 1, 1, 1];
        let mut first = Script::parse(&input);
        first.steps.truncate(1);
        let written = first.to_bytes();
        assert!(written.len() > 3, "op {op} read as nothing");
        assert_eq!(written[3], op % 25, "op {op}");
        assert_eq!(written[4..], input[4..written.len()], "op {op}");
    }
    assert_eq!(Script::parse(&[0, 0, 9, 15, 1]).steps, []);
}

// ---- the seed corpora ---------------------------------------------------------------------

/// The JSON texts in the raw string literals of the crate's tests (`r#"…"#`; `format!`
/// templates with their placeholders filled in).
fn json_literals() -> BTreeSet<String> {
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
fn is_frame(text: &str) -> bool {
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
fn core_scripts(frames: &[String]) -> Vec<Script> {
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

/// A stable file name for `data` (FNV-1a), as libFuzzer names its files by content.
fn name(data: &[u8]) -> String {
    let hash = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("seed-{hash:016x}")
}

fn write_all(target: &str, inputs: impl IntoIterator<Item = Vec<u8>>) -> usize {
    let dir = fuzz_dir().join("corpus").join(target);
    std::fs::create_dir_all(&dir).expect("a corpus directory");
    let mut n = 0;
    for data in inputs {
        std::fs::write(dir.join(name(&data)), &data).expect("a corpus file");
        n += 1;
    }
    n
}

#[test]
#[ignore = "writes fuzz/corpus/*/seed-*: run by hand (fuzz/README.md)"]
fn write_seed_corpora() {
    let literals = json_literals();
    let frames: Vec<String> = literals.iter().filter(|t| is_frame(t)).cloned().collect();
    let json = write_all("json", literals.iter().map(|t| t.as_bytes().to_vec()));
    let frame = write_all("frame", frames.iter().map(|t| t.as_bytes().to_vec()));
    let core = write_all("core", core_scripts(&frames).iter().map(Script::to_bytes));
    println!("seeds: json {json}, frame {frame}, core {core}");
}

/// Runs one input by hand: `FUZZ_TARGET=core FUZZ_INPUT=fuzz/artifacts/core/crash-… cargo test
/// --features fuzzing --test fuzz_corpus -- --ignored run_one --nocapture` (a `core` input is
/// printed as the script it decodes to first).
#[test]
#[ignore = "runs the input named by FUZZ_TARGET and FUZZ_INPUT"]
fn run_one() {
    let target = std::env::var("FUZZ_TARGET").expect("FUZZ_TARGET: frame, json or core");
    let path = std::env::var("FUZZ_INPUT").expect("FUZZ_INPUT: a file");
    let data = std::fs::read(&path).expect("a readable input");
    let Some((_, check)) = TARGETS.iter().find(|(name, _)| *name == target) else {
        panic!("no check named {target}");
    };
    match target.as_str() {
        "core" => {
            let script = Script::parse(&data);
            println!("config {:#010b}, seed {}", script.config, script.seed);
            for (delay, step) in &script.steps {
                let step = match step {
                    Step::Send(b) => format!("Send({:?})", String::from_utf8_lossy(b)),
                    Step::Frame(b) => format!("Frame({:?})", String::from_utf8_lossy(b)),
                    other => format!("{other:?}"),
                };
                println!("+{:>6} ms  {step}", u64::from(*delay).pow(2) * 4);
            }
        }
        _ => println!("{:?}", String::from_utf8_lossy(&data)),
    }
    check(&data);
}
