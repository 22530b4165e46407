//! The example binary killed part-way (SIGKILL), then run again on the same SQLite file:
//! finished discussions are not embedded again, half-done ones resume where they stopped.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use burr_core::persistence::{Persister, SqlitePersister, StepStatus};

const BIN: &str = env!("CARGO_BIN_EXE_example-related-discussions");

fn example(db: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("--db").arg(db).args(["--meeting", "m1"]);
    cmd
}

/// Each child of meeting m1 stored in `db`, by discussion id: its last position and status.
async fn children(db: &Path) -> BTreeMap<String, (String, StepStatus)> {
    let store = SqlitePersister::open(db).unwrap();
    let mut out = BTreeMap::new();
    for app_id in store.list_app_ids(Some("platform")).await.unwrap() {
        let Some(key) = app_id.strip_prefix("meeting-m1/1/") else {
            continue;
        };
        if let Some(last) = store.load(Some("platform"), &app_id, None).await.unwrap() {
            out.insert(key.to_owned(), (last.position, last.status));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_run_then_resumed_never_re_embeds_a_finished_discussion() {
    common::require_model_files();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("burr.db");

    // One child step at a time, each embedding followed by a pause, so the kill lands
    // with discussions finished, one in flight, and some not started.
    let mut first = example(&db)
        .args(["--executor-concurrency", "1", "--pause-ms", "150"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen = BTreeSet::new();
    let mut lines = BufReader::new(first.stderr.take().unwrap()).lines();
    while seen.len() < 3 {
        let line = lines
            .next()
            .expect("the example stopped before relating 3 discussions")
            .unwrap();
        if let Some(rest) = line.strip_prefix("related m1/") {
            seen.insert(rest.split(' ').next().unwrap().to_owned());
        }
    }
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();

    let stored = children(&db).await;
    eprintln!("after the kill: {stored:?}");
    let finished: BTreeSet<String> = stored
        .iter()
        .filter(|(_, (position, status))| position == "rerank" && *status == StepStatus::Completed)
        .map(|(k, _)| k.clone())
        .collect();
    let embedded_only: BTreeSet<String> = stored
        .iter()
        .filter(|(_, (position, status))| position != "rerank" && *status == StepStatus::Completed)
        .map(|(k, _)| k.clone())
        .collect();
    assert!(
        seen.is_subset(&finished),
        "reported {seen:?}, stored {stored:?}"
    );
    assert!(
        finished.len() < 8,
        "the kill came after the end: {stored:?}"
    );

    let second = example(&db).args(["--json", "--quiet"]).output().unwrap();
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    let by_discussion = &report["embeddings"]["by_discussion"];
    assert_eq!(
        report["embeddings"]["past"], 0,
        "past discussions were stored"
    );
    let meeting = &report["meetings"][0];
    let all: Vec<String> = meeting["discussions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(all.len(), 8);
    for id in &all {
        let count = by_discussion[format!("m1/{id}")].as_u64().unwrap_or(0);
        let expected = if finished.contains(id) {
            0 // finished before the kill: loaded, not embedded
        } else if embedded_only.contains(id) {
            1 // resumed after `embed`: only the rerank's embedding
        } else {
            2 // in flight or not started
        };
        assert_eq!(
            count,
            expected,
            "discussion {id}: stored {:?}",
            stored.get(id)
        );
    }
    let related = |id: &str| {
        meeting["discussions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == id)
            .map(|d| d["related"][0]["id"].clone())
    };
    assert_eq!(related("d1"), Some(serde_json::json!("p01")));
    for d in meeting["discussions"].as_array().unwrap() {
        assert!(!d["related"].as_array().unwrap().is_empty(), "{d}");
    }
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
