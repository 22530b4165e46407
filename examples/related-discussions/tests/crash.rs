//! The example binary killed part-way (SIGKILL), then run again on the same SQLite file:
//! it publishes what an uninterrupted run publishes, and embeds only what the killed run
//! had not stored (no text embedded twice).

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_example-related-discussions");

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
