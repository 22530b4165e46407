//! The run queue across real processes: worker processes of the `runs-app` binary killed
//! with SIGKILL and stopped with SIGTERM on one SQLite file, and the CLI's verbs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use burr_core::persistence::Persister;
use burr_server::{RunFilter, RunQueue, RunStatus, Runs, SqliteRunQueue, Submission};
use burr_tests::runs_kinds::Steps;
use serde_json::json;

use burr_tests::processes::{sigterm, until_status};

const APP: &str = env!("CARGO_BIN_EXE_runs-app");

fn worker(db: &Path, log: &Path, extra: &[&str]) -> Child {
    worker_with_ttl(db, log, "1s", extra)
}

fn worker_with_ttl(db: &Path, log: &Path, lease_ttl: &str, extra: &[&str]) -> Child {
    burr_tests::processes::worker_with_ttl(APP, db, log, lease_ttl, extra)
}

fn runs_of(db: &Path) -> (SqliteRunQueue, Runs) {
    let queue = SqliteRunQueue::open(db).unwrap();
    let registry = Arc::new(burr_server::Registry::new().register(Steps::default()));
    let runs = Runs::new(Arc::new(queue.clone()), registry);
    (queue, runs)
}

/// Executions per (run, sequence id): the pids that ran each.
fn executions(log: &Path) -> HashMap<(String, u64), Vec<String>> {
    let mut out: HashMap<(String, u64), Vec<String>> = HashMap::new();
    for line in std::fs::read_to_string(log).unwrap_or_default().lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        out.entry((parts[1].to_owned(), parts[2].parse().unwrap()))
            .or_default()
            .push(parts[4].to_owned());
    }
    out
}

async fn all_finished(queue: &SqliteRunQueue, total: u64, limit: Duration) {
    let started = Instant::now();
    loop {
        let backlog = queue.backlog().await.unwrap();
        let finished: u64 = backlog
            .rows
            .iter()
            .filter(|r| r.status.is_finished())
            .map(|r| r.count)
            .sum();
        if finished == total {
            return;
        }
        assert!(
            started.elapsed() < limit,
            "not finished after {limit:?}: {backlog:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A small deterministic generator (no crate needed for 20 numbers).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_runs_survive_twenty_sigkills_of_three_workers() {
    let dir = tempfile::tempdir().unwrap();
    let (db, log) = (dir.path().join("burr.db"), dir.path().join("log"));
    let queue = SqliteRunQueue::open(&db).unwrap();
    // A run may be hit by every kill (its worker killed, the next one too...): allow as
    // many attempts as kills, so that "every run succeeds" tests resumption, not luck.
    let steps = Steps {
        max_attempts: Some(21),
        ..Steps::default()
    };
    let registry = Arc::new(burr_server::Registry::new().register(steps));
    let runs = Runs::new(Arc::new(queue.clone()), registry);
    for i in 0..1000 {
        let submission = Submission::new("steps", json!({"steps": 3, "sleep_ms": 30}))
            .idempotency_key(format!("job-{i}"))
            .flow(format!("meeting-{}", i % 10));
        runs.submit(submission).await.unwrap();
    }
    // Submitting a key again gives the same run: still 1,000.
    runs.submit(Submission::new("steps", json!({"steps": 3})).idempotency_key("job-0"))
        .await
        .unwrap();

    let mut workers: Vec<Child> = (0..3).map(|_| worker(&db, &log, &[])).collect();
    let mut random = Lcg(7);
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(80 + random.next(80))).await;
        let victim = usize::try_from(random.next(3)).unwrap();
        workers[victim].kill().unwrap();
        workers[victim].wait().unwrap();
        workers[victim] = worker(&db, &log, &[]);
    }
    all_finished(&queue, 1000, Duration::from_secs(240)).await;
    for w in &workers {
        sigterm(w);
    }
    for mut w in workers {
        assert!(w.wait().unwrap().success(), "a drained worker exits 0");
    }

    let all = queue
        .list(&RunFilter {
            limit: Some(2000),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 1000);
    let not_succeeded: Vec<_> = all
        .iter()
        .filter(|r| r.status != RunStatus::Succeeded)
        .map(|r| (&r.id, r.status, r.attempt, &r.error))
        .collect();
    assert!(
        not_succeeded.is_empty(),
        "every run succeeded: {not_succeeded:?}"
    );
    assert!(all
        .iter()
        .all(|r| r.lease_holder.is_none() && r.lease_expires_at_us.is_none()));
    let taken_over = all.iter().filter(|r| r.attempt > 1).count();
    assert!(taken_over > 0, "the kills hit running runs");

    // No step whose checkpoint committed ran again: one checkpoint per step, each the
    // first attempt (a re-run would add an attempt or be refused as a conflict).
    let persister = queue.persister();
    let history = persister.as_history().unwrap();
    for run in &all {
        let checkpoints = history.list_checkpoints(None, &run.id).await.unwrap();
        let seqs: Vec<(u64, u32)> = checkpoints
            .iter()
            .map(|c| (c.sequence_id, c.attempt))
            .collect();
        assert_eq!(seqs, [(0, 1), (1, 1), (2, 1), (3, 1)], "run {}", run.id);
    }
    // A step ran twice only when its worker was killed before its checkpoint: by
    // another process, never twice in one.
    let executed = executions(&log);
    let mut repeated = 0;
    for (step, pids) in &executed {
        let mut distinct = pids.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(
            distinct.len(),
            pids.len(),
            "step {step:?} ran twice in one process: {pids:?}"
        );
        repeated += pids.len() - 1;
    }
    assert!(
        repeated <= 20 * 16,
        "{repeated} repeated steps for 20 kills"
    );
    assert_eq!(executed.len(), 3000, "every work step ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_run_is_taken_back_at_once_not_after_its_lease() {
    let dir = tempfile::tempdir().unwrap();
    let (db, log) = (dir.path().join("burr.db"), dir.path().join("log"));
    let (queue, runs) = runs_of(&db);
    let run = runs
        .submit(Submission::new(
            "steps",
            json!({"steps": 2, "sleep_ms": 1500}),
        ))
        .await
        .unwrap()
        .run;
    // A lease of a minute: without knowing the worker is gone, the run would wait that.
    let mut first = worker_with_ttl(&db, &log, "60s", &[]);
    until_status(&queue, &run.id, RunStatus::Running, Duration::from_secs(20)).await;
    first.kill().unwrap();
    first.wait().unwrap();
    let mut second = worker_with_ttl(&db, &log, "60s", &[]);
    let took = until_status(
        &queue,
        &run.id,
        RunStatus::Succeeded,
        Duration::from_secs(20),
    )
    .await;
    let done = queue.get(&run.id).await.unwrap();
    assert_eq!(done.attempt, 2, "the second worker took it over: {done:?}");
    assert!(took < Duration::from_secs(20), "{took:?}");
    sigterm(&second);
    assert!(second.wait().unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_from_another_process_stops_a_running_run_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (db, log) = (dir.path().join("burr.db"), dir.path().join("log"));
    let (queue, runs) = runs_of(&db);
    let run = runs
        .submit(Submission::new(
            "steps",
            json!({"steps": 1, "sleep_ms": 60000}),
        ))
        .await
        .unwrap()
        .run;
    // Heartbeats every 20 s: the cancel must not wait for one.
    let mut worker = worker_with_ttl(&db, &log, "60s", &[]);
    until_status(&queue, &run.id, RunStatus::Running, Duration::from_secs(20)).await;
    // Let the step start sleeping.
    tokio::time::sleep(Duration::from_millis(200)).await;
    queue.cancel(&run.id).await.unwrap();
    let took = until_status(
        &queue,
        &run.id,
        RunStatus::Cancelled,
        Duration::from_secs(5),
    )
    .await;
    assert!(took < Duration::from_secs(5), "{took:?}");
    sigterm(&worker);
    assert!(worker.wait().unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigterm_mid_run_drains_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (db, log) = (dir.path().join("burr.db"), dir.path().join("log"));
    let (queue, runs) = runs_of(&db);
    let mut ids = Vec::new();
    for _ in 0..4 {
        let submitted = runs
            .submit(Submission::new(
                "steps",
                json!({"steps": 10, "sleep_ms": 50}),
            ))
            .await
            .unwrap();
        ids.push(submitted.run.id);
    }
    let mut first = worker(&db, &log, &[]);
    let started = Instant::now();
    while executions(&log).len() < 8 {
        assert!(started.elapsed() < Duration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sigterm(&first);
    assert!(first.wait().unwrap().success(), "a drained worker exits 0");
    for id in &ids {
        let run = queue.get(id).await.unwrap();
        assert!(
            matches!(run.status, RunStatus::Queued | RunStatus::Succeeded),
            "{id}: {}",
            run.status
        );
        assert!(run.lease_holder.is_none());
    }
    let mut second = worker(&db, &log, &[]);
    all_finished(&queue, 4, Duration::from_secs(60)).await;
    sigterm(&second);
    assert!(second.wait().unwrap().success());
    for id in &ids {
        assert_eq!(queue.get(id).await.unwrap().status, RunStatus::Succeeded);
    }
    let executed = executions(&log);
    assert_eq!(executed.len(), 40);
    assert!(
        executed.values().all(|pids| pids.len() == 1),
        "a drained step was redone"
    );
}

fn cli(db: &Path, args: &[&str]) -> std::process::Output {
    Command::new(APP)
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_cli_submits_waits_and_explains_errors_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let db: PathBuf = dir.path().join("burr.db");
    let log = dir.path().join("log");
    let mut w = worker(&db, &log, &[]);

    let out = cli(
        &db,
        &[
            "submit",
            "steps",
            "--inputs",
            r#"{"steps": 2}"#,
            "--wait",
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(run["status"], "succeeded");
    assert_eq!(run["result"]["action"], "done");

    let out = cli(
        &db,
        &[
            "submit",
            "steps",
            "--inputs",
            r#"{"steps": 2, "fail_at": 1}"#,
            "--wait",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("failed") && stderr.contains("work 1 fails on purpose"),
        "{stderr}"
    );

    let out = cli(&db, &["submit", "steps", "--inputs", r#"{"steps": "x"}"#]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("`steps`"), "{stderr}");

    let out = cli(&db, &["show", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown run `nope`"));

    let out = cli(&db, &["runs", "--json"]);
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.len(), 2);
    let out = cli(&db, &["backlog", "--json"]);
    let backlog: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(backlog["rows"].as_array().unwrap().len(), 2);
    let id = listed[0]["id"].as_str().unwrap();
    let out = cli(&db, &["watch", id, "--json"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().last().unwrap().contains("\"finished\""),
        "{text}"
    );

    sigterm(&w);
    assert!(w.wait().unwrap().success());
}
