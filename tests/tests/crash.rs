//! Crash and resume with real processes: SIGKILL at random moments, resume with the same
//! command, and compare with an uninterrupted run.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use burr_core::persistence::{History, Persister, SqlitePersister, StepStatus};

const CRASH_APP: &str = env!("CARGO_BIN_EXE_crash-app");
const FANOUT_APP: &str = env!("CARGO_BIN_EXE_fanout-app");

/// A small deterministic generator, seeded from the clock (the seed is printed).
struct Lcg(u64);

impl Lcg {
    fn from_clock() -> Lcg {
        let seed = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        eprintln!("random seed: {seed}");
        Lcg(seed | 1)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

fn crash_app(db: &Path, log: &Path, steps: u64) -> Command {
    let mut cmd = Command::new(CRASH_APP);
    cmd.args([
        "--db",
        db.to_str().unwrap(),
        "--app-id",
        "crashy",
        "--steps",
        &steps.to_string(),
    ])
    .args(["--log", log.to_str().unwrap()])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    cmd
}

/// The `done <seq> <action>` lines a process printed.
fn done_lines(child: &mut Child) -> Vec<(u64, String)> {
    let out = BufReader::new(child.stdout.take().unwrap());
    out.lines()
        .map_while(Result::ok)
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            (parts.next() == Some("done")).then(|| {
                (
                    parts.next().unwrap().parse().unwrap(),
                    parts.next().unwrap().to_owned(),
                )
            })
        })
        .collect()
}

/// Per sequence id, how many times an action ran.
fn executions(log: &Path) -> BTreeMap<u64, usize> {
    let mut counts = BTreeMap::new();
    for line in std::fs::read_to_string(log).unwrap_or_default().lines() {
        // A kill may cut the last line short: only whole lines count.
        if let ["ran", seq, _, _] = line.split_whitespace().collect::<Vec<_>>()[..] {
            *counts.entry(seq.parse().unwrap()).or_default() += 1;
        }
    }
    counts
}

async fn completed_steps(db: &Path, app_id: &str) -> (Vec<(u64, String)>, serde_json::Value) {
    let persister = SqlitePersister::open(db).unwrap();
    let rows = persister.list_checkpoints(None, app_id).await.unwrap();
    let completed = rows
        .iter()
        .filter(|r| r.status == StepStatus::Completed)
        .map(|r| (r.sequence_id, r.position.clone()))
        .collect();
    let state = persister
        .load(None, app_id, None)
        .await
        .unwrap()
        .unwrap()
        .state
        .to_json();
    (completed, state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_twenty_times_then_resume_matches_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    // Enough steps that the 20 kills (each within 45 ms of its process's start) come
    // before the end: a step sleeps 0.5 ms, so a process gets at most ~90 done.
    let steps = 2000;

    // The reference: one uninterrupted run.
    let (clean_db, clean_log) = (dir.path().join("clean.db"), dir.path().join("clean.log"));
    let status = crash_app(&clean_db, &clean_log, steps).status().unwrap();
    assert!(status.success());
    let (clean_steps, clean_state) = completed_steps(&clean_db, "crashy").await;
    let clean_runs = executions(&clean_log);
    assert_eq!(clean_state["count"], steps);
    assert!(
        clean_runs.values().any(|&n| n == 2),
        "the flaky step failed once, then passed"
    );

    // The same, killed at random moments and resumed with the same command each time.
    let (db, log) = (
        dir.path().join("crashed.db"),
        dir.path().join("crashed.log"),
    );
    let mut rng = Lcg::from_clock();
    let mut kills = 0;
    let mut reported_done = Vec::new();
    let started = Instant::now();
    loop {
        let mut child = crash_app(&db, &log, steps).spawn().unwrap();
        if kills < 20 {
            std::thread::sleep(Duration::from_millis(5 + rng.below(40)));
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap(); // SIGKILL
                kills += 1;
            }
        }
        reported_done.extend(done_lines(&mut child));
        let status = child.wait().unwrap();
        if status.success() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "did not finish"
        );
    }
    assert!(kills >= 20, "the app finished after {kills} kills");

    let (crashed_steps, crashed_state) = completed_steps(&db, "crashy").await;
    assert_eq!(crashed_state, clean_state, "same final state");
    assert_eq!(crashed_steps, clean_steps, "same completed steps");
    let completed: std::collections::HashSet<_> = crashed_steps.iter().cloned().collect();
    for done in &reported_done {
        assert!(
            completed.contains(done),
            "step {done:?} was reported done, then lost"
        );
    }
    // Nothing ran more often than in the clean run, but for at most the step in flight at
    // each kill.
    let runs = executions(&log);
    let extra: usize = runs
        .iter()
        .map(|(seq, n)| n.saturating_sub(clean_runs.get(seq).copied().unwrap_or(0)))
        .sum();
    assert!(extra <= kills, "{extra} re-executions for {kills} kills");
    assert_eq!(
        runs.keys().collect::<Vec<_>>(),
        clean_runs.keys().collect::<Vec<_>>()
    );
}

/// Runners started together on one app id: one runs it; every other is refused at once
/// with "already running" (or, had it started after the first finished, would load the
/// finished application and run nothing). No step runs twice.
#[test]
fn four_processes_started_together_on_one_app_id_exactly_one_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (db, log) = (dir.path().join("four.db"), dir.path().join("four.log"));
    // Create the database first so every process opens an existing file.
    drop(SqlitePersister::open(&db).unwrap());
    let started: Vec<Child> = (0..4)
        .map(|_| crash_app(&db, &log, 300).spawn().unwrap())
        .collect();
    let outputs: Vec<_> = started
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let ran: Vec<_> = outputs.iter().filter(|o| !o.stdout.is_empty()).collect();
    assert_eq!(ran.len(), 1, "exactly one ran steps");
    assert!(ran[0].status.success(), "the runner finished");
    let done = String::from_utf8_lossy(&ran[0].stdout);
    assert!(done.lines().any(|l| l.ends_with(" done")), "{done}");
    for other in outputs.iter().filter(|o| o.stdout.is_empty()) {
        let stderr = String::from_utf8_lossy(&other.stderr);
        let refused = !other.status.success()
            && stderr.contains("crashy")
            && stderr.contains("already running");
        assert!(refused || other.status.success(), "{stderr}");
    }
    // Every run of an action (sequence id, action, attempt) happened once.
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let unique: std::collections::BTreeSet<&str> = lines.iter().copied().collect();
    assert_eq!(lines.len(), unique.len(), "a step ran twice");
    // ... and every step the runner checkpointed was run by it, once per attempt.
    assert_eq!(executions(&log).len(), done.lines().count());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_killed_mid_fan_out_resumes_without_rerunning_finished_children() {
    let dir = tempfile::tempdir().unwrap();
    let items = 60;
    let run = |db: &Path, log: &Path| {
        let mut cmd = Command::new(FANOUT_APP);
        cmd.args([
            "--db",
            db.to_str().unwrap(),
            "--app-id",
            "meeting",
            "--items",
            &items.to_string(),
        ])
        .args(["--log", log.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        cmd
    };
    let (clean_db, clean_log) = (dir.path().join("clean.db"), dir.path().join("clean.log"));
    let clean = run(&clean_db, &clean_log).output().unwrap();
    assert!(
        clean.status.success(),
        "{}",
        String::from_utf8_lossy(&clean.stderr)
    );

    let (db, log) = (dir.path().join("fan.db"), dir.path().join("fan.log"));
    let mut child = run(&db, &log).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    // Kill once a good part of the children have run.
    while std::fs::read_to_string(&log)
        .map(|l| l.lines().count())
        .unwrap_or(0)
        < items / 3
    {
        assert!(Instant::now() < deadline, "children never started");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    // Which children had finished (a completed checkpoint) when the parent died.
    let persister = Arc::new(SqlitePersister::open(&db).unwrap());
    let mut finished_before = Vec::new();
    for i in 0..items {
        let id = burr_core::parallel::child_app_id("meeting", 0, &format!("item-{i}"));
        let rows = persister.list_checkpoints(None, &id).await.unwrap();
        if rows.iter().any(|r| r.status == StepStatus::Completed) {
            finished_before.push(id);
        }
    }
    drop(persister);
    assert!(
        !finished_before.is_empty() && finished_before.len() < items,
        "killed mid-fan-out"
    );

    let resumed = run(&db, &log).output().unwrap();
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    assert_eq!(
        resumed.stdout, clean.stdout,
        "the reduce equals an uninterrupted run's"
    );

    let mut runs: HashMap<String, usize> = HashMap::new();
    for line in std::fs::read_to_string(&log).unwrap().lines() {
        *runs
            .entry(line.trim_start_matches("ran ").to_owned())
            .or_default() += 1;
    }
    assert_eq!(runs.len(), items, "every child ran");
    for id in &finished_before {
        assert_eq!(runs[id], 1, "{id} finished before the crash and ran again");
    }
    let reruns = runs.values().filter(|&&n| n > 1).count();
    // In flight at the kill: the children (a window of 4 per executor slot, 4 slots) that
    // had run their action but whose checkpoint was not committed yet.
    assert!(
        reruns <= 16,
        "only children in flight at the kill ran twice ({reruns}): {runs:?}"
    );
}

#[test]
fn a_process_killed_during_a_retry_backoff_resumes_the_schedule_from_the_stored_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let (db, log) = (dir.path().join("retry.db"), dir.path().join("retry.log"));
    let start = |db: &Path, log: &Path| {
        Command::new(env!("CARGO_BIN_EXE_retry-app"))
            .args(["--db", db.to_str().unwrap(), "--log", log.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // The first attempt fails and is checkpointed; the process then waits a second to
    // retry, and is killed while it waits.
    let mut first = start(&db, &log);
    let mut out = BufReader::new(first.stdout.take().unwrap()).lines();
    let line = out.next().expect("a line").unwrap();
    assert_eq!(line, "failed 1");
    first.kill().unwrap();
    first.wait().unwrap();

    // The restarted process goes on with attempt 2 (not 1 again), then 3 succeeds.
    let second = start(&db, &log).wait_with_output().unwrap();
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let stdout = String::from_utf8_lossy(&second.stdout);
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["failed 2", "succeeded"]
    );
    let runs = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        runs.lines().collect::<Vec<_>>(),
        ["ran 1", "ran 2", "ran 3"]
    );
}

const MIGRATE_APP: &str = env!("CARGO_BIN_EXE_migrate-app");

/// `migrate-app` under code `version`, running `steps` steps.
fn migrate_app(db: &Path, log: &Path, version: &str, steps: u64) -> Command {
    let mut cmd = Command::new(MIGRATE_APP);
    cmd.args(["--db", db.to_str().unwrap(), "--version", version])
        .args([
            "--steps",
            &steps.to_string(),
            "--log",
            log.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// The `count <value>` a finished `migrate-app` printed.
fn printed_count(output: std::process::Output) -> i64 {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or_default().to_owned();
    line.strip_prefix("count ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {stdout:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_is_applied_once_when_the_process_is_killed_right_after_it() {
    use burr_core::persistence::AppRecords;
    let dir = tempfile::tempdir().unwrap();
    let (db, log) = (
        dir.path().join("burr.db"),
        dir.path().join("migrations.log"),
    );

    // Version 1 counts to 3 and stops (the application is unfinished).
    let v1 = migrate_app(&db, &log, "1", 3).output().unwrap();
    assert_eq!(printed_count(v1), 3);

    // Version 2 migrates (3 -> 30); the process is killed once the migration's
    // checkpoint is saved, before the application's record takes version 2.
    let mut killed = migrate_app(&db, &log, "2", 1)
        .arg("--stop-after-migration")
        .spawn()
        .unwrap();
    let mut out = BufReader::new(killed.stdout.take().unwrap()).lines();
    assert_eq!(out.next().expect("a line").unwrap(), "migration saved");
    killed.kill().unwrap();
    killed.wait().unwrap();
    {
        let persister = SqlitePersister::open(&db).unwrap();
        let record = persister.app(None, "counter").await.unwrap().unwrap();
        assert_eq!(
            record.code.unwrap().version.as_deref(),
            Some("1"),
            "killed before the record took the new code"
        );
        let latest = persister
            .load(None, "counter", None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (
                latest.sequence_id,
                latest.state.get::<i64>("count").unwrap()
            ),
            (3, 30)
        );
    }

    // Restarted under version 2: the stored migration is not applied again; the next step
    // adds 10 to the migrated count.
    let resumed = migrate_app(&db, &log, "2", 1).output().unwrap();
    assert_eq!(printed_count(resumed), 40);
    assert_eq!(
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .collect::<Vec<_>>(),
        ["migrated"],
        "the migration ran exactly once"
    );
    let again = migrate_app(&db, &log, "2", 1).output().unwrap();
    assert_eq!(printed_count(again), 50);
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 1);
}
