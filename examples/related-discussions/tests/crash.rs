//! The example binary killed part-way (SIGKILL), then run again on the same SQLite file:
//! it publishes what an uninterrupted run publishes, and embeds only what the killed run
//! had not stored (no text embedded twice).

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_related-discussions");

fn example(db: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/data/sample.json");
    cmd.arg("--db")
        .arg(db)
        .args(["--data", sample, "--meeting", "m1"]);
    cmd
}

/// Each discussion's related ids, from the JSON report.
fn related(report: &serde_json::Value) -> Vec<(String, Vec<String>)> {
    report["meetings"][0]["discussions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let ids = d["related"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_owned())
                .collect();
            (d["id"].as_str().unwrap().to_owned(), ids)
        })
        .collect()
}

fn json_run(db: &Path) -> serde_json::Value {
    let out = example(db).args(["--json", "--quiet"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "one JSON line: {stdout}");
    serde_json::from_str(&stdout).unwrap()
}

#[test]
fn killed_mid_run_then_resumed_publishes_the_same_and_embeds_nothing_twice() {
    common::require_model_files();
    let dir = tempfile::tempdir().unwrap();

    // Uninterrupted, for comparison.
    let clean_db = dir.path().join("clean.db");
    let clean = json_run(&clean_db);
    let needed = common::stored_vectors(&clean_db);
    assert_eq!(clean["embedded"].as_u64().unwrap() as usize, needed);

    // One child step at a time with a pause after each, so the kill lands with
    // discussions related, one in flight, and some not started.
    let db = dir.path().join("burr.db");
    let mut first = example(&db)
        .args([
            "--executor-concurrency",
            "1",
            "--pause-ms",
            "100",
            "--verbose",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen = 0;
    let mut lines = BufReader::new(first.stderr.take().unwrap()).lines();
    while seen < 3 {
        let line = lines
            .next()
            .expect("the example stopped before relating 3 discussions")
            .unwrap();
        if line.starts_with("related m1/") {
            seen += 1;
        }
    }
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let stored = common::stored_vectors(&db);
    assert!(stored < needed, "the kill came after the end");

    let second = json_run(&db);
    eprintln!(
        "stored before {stored}, embedded after {}, stored after {}, needed {needed}",
        second["embedded"],
        common::stored_vectors(&db)
    );
    assert_eq!(
        stored + second["embedded"].as_u64().unwrap() as usize,
        needed,
        "the resumed run embedded exactly what the killed one had not stored"
    );
    assert_eq!(common::stored_vectors(&db), needed);
    let reranked = second["reranked"].as_u64().unwrap();
    assert!(
        reranked <= 5,
        "at least 3 were related before the kill: {reranked}"
    );
    assert_eq!(related(&second), related(&clean));
}

#[test]
fn without_the_model_files_the_example_says_how_to_get_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("burr.db");
    let unset = example(&db)
        .env_remove("ORT_DYLIB_PATH")
        .env("FASTEMBED_MODEL_DIR", dir.path())
        .output()
        .unwrap();
    assert!(!unset.status.success());
    let stderr = String::from_utf8_lossy(&unset.stderr);
    assert!(
        stderr.contains("ORT_DYLIB_PATH is not set: run scripts/fetch-models.sh"),
        "{stderr}"
    );
    assert!(
        !stderr.contains('\x1b'),
        "no colour codes off a terminal: {stderr}"
    );

    let missing = dir.path().join("libonnxruntime.so");
    let wrong = example(&db)
        .env("ORT_DYLIB_PATH", &missing)
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        stderr.contains(&format!(
            "ORT_DYLIB_PATH={} does not exist",
            missing.display()
        )),
        "{stderr}"
    );
    assert!(!db.exists(), "nothing was written before the model loaded");
}

/// A small seeded generator (xorshift), so the kill moments are reproducible.
struct Moments(u64);

impl Moments {
    fn next_ms(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

/// Every meeting of the first sample (21 discussions, 40 past), killed (SIGKILL) at 10
/// seeded random moments after its meetings started, resumed each time: the last run
/// publishes what an uninterrupted run publishes, what is stored only grows, and the
/// texts embedded by the last run are exactly those no killed run had stored.
#[test]
fn killed_at_ten_random_moments_then_resumed_publishes_the_same() {
    common::require_model_files();
    let seed: u64 = std::env::var("KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_2026);
    eprintln!("kill moments seed {seed} (KILL_SEED={seed} repeats them)");
    let mut moments = Moments(seed | 1);
    let dir = tempfile::tempdir().unwrap();
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/data/sample.json");
    let every = |db: &Path| {
        let mut cmd = Command::new(BIN);
        cmd.arg("--db").arg(db).args(["--data", sample]);
        cmd
    };
    let all_related = |report: &serde_json::Value| -> Vec<String> {
        report["meetings"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|m| m["discussions"].as_array().unwrap().clone())
            .map(|d| format!("{}: {}", d["id"], d["related"]))
            .collect()
    };
    let json = |cmd: &mut Command| -> serde_json::Value {
        let out = cmd.args(["--json", "--quiet"]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str(String::from_utf8(out.stdout).unwrap().trim()).unwrap()
    };

    let clean_db = dir.path().join("clean.db");
    let clean = json(&mut every(&clean_db));
    let needed = common::stored_vectors(&clean_db);

    let db = dir.path().join("burr.db");
    let mut stored = 0;
    let mut mid_run = 0;
    for kill in 1..=10 {
        let mut child = every(&db)
            .args(["--executor-concurrency", "2", "--pause-ms", "40"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The meetings start once the model is loaded: the moment is counted from there.
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let started = lines
            .by_ref()
            .map_while(Result::ok)
            .any(|l| l.contains(" meetings, "));
        let after = moments.next_ms(1000);
        std::thread::sleep(std::time::Duration::from_millis(after));
        let exited = child.try_wait().unwrap().is_some();
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let now = common::stored_vectors(&db);
        eprintln!(
            "kill {kill}: {after} ms after the start, stored {stored} -> {now}{}",
            if exited { " (it had finished)" } else { "" }
        );
        assert!(started || exited, "kill {kill}: the run never started");
        assert!(now >= stored, "what is stored never shrinks");
        if !exited && now < needed {
            mid_run += 1;
        }
        stored = now;
    }
    assert!(mid_run >= 3, "at least 3 kills landed mid-run: {mid_run}");

    let last = json(&mut every(&db));
    let embedded = last["embedded"].as_u64().unwrap() as usize;
    eprintln!("resumed: embedded {embedded}, stored before {stored}, needed {needed}");
    assert_eq!(stored + embedded, needed, "no text embedded twice");
    assert_eq!(common::stored_vectors(&db), needed);
    assert_eq!(all_related(&last), all_related(&clean));
}
