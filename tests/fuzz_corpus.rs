//! Replays the fuzz corpora on stable: every file in `fuzz/corpus/<target>/` and every crash
//! ever found (`fuzz/regressions/<target>/`) through the check its fuzz target runs
//! (`sockline::fuzzing`), so CI holds them without nightly. Also writes the seed corpora from
//! the real frames in the tests (`--ignored write_seed_corpora`, see fuzz/README.md).

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

mod fuzz_seeds;

use sockline::fuzzing::script::{Script, Step};
use sockline::fuzzing::server_script::{ServerScript, ServerStep};
use sockline::fuzzing::TARGETS;

use self::fuzz_seeds::{core_scripts, is_frame, json_literals, server_scripts};

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
    server_corpus_and_regressions_pass: "server",
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
fn server_scripts_read_back_as_written() {
    for script in server_scripts(&[r#"{"type":"pong","t":1}"#.to_owned()]) {
        assert_eq!(ServerScript::parse(&script.to_bytes()), script);
    }
    for op in 0..=255u8 {
        let input = [0, op, 0, 0, 1, 1, 1];
        let mut first = ServerScript::parse(&input);
        first.steps.truncate(1);
        let written = first.to_bytes();
        assert!(written.len() > 1, "op {op} read as nothing");
        assert_eq!(written[1], op % 12, "op {op}");
        assert_eq!(written[2..], input[2..written.len()], "op {op}");
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
    let server = write_all(
        "server",
        server_scripts(&frames).iter().map(ServerScript::to_bytes),
    );
    println!("seeds: json {json}, frame {frame}, core {core}, server {server}");
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
        "server" => {
            let script = ServerScript::parse(&data);
            println!("config {:#05b}", script.config);
            for step in &script.steps {
                match step {
                    ServerStep::Text { to, text } => {
                        println!("{to} Text({:?})", String::from_utf8_lossy(text))
                    }
                    other => println!("{other:?}"),
                }
            }
        }
        _ => println!("{:?}", String::from_utf8_lossy(&data)),
    }
    check(&data);
}
