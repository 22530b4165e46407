//! A runner in another process, killed mid-step: while it runs, its application and the
//! children running under it are `running` and `delete` refuses them; once it is gone,
//! they are `interrupted`, and `delete` removes the application with its descendants.
//! Killed between steps, right after a completed step: `running` before, `interrupted`
//! after; an application that finished stays `completed` either way.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use burr_core::actions::action_sync;
use burr_core::parallel::{MapAction, SubGraph};
use burr_core::persistence::SqlitePersister;
use burr_core::RunOptions;
use burr_core::{ActionError, ApplicationBuilder, Inputs, State};
use burr_tracker::Tracker;
use serde_json::Value;

use common::burr_tracker;

/// The database the runner process writes (set only in that process).
const RUNNER_DB: &str = "BURR_TRACKER_TEST_RUNNER_DB";

/// The database the between-steps runner process writes (set only in that process).
const BETWEEN_DB: &str = "BURR_TRACKER_TEST_BETWEEN_DB";

/// Counts up by one per step, for ever: it never finishes.
fn endless(app_id: &str, persister: Arc<SqlitePersister>) -> ApplicationBuilder {
    let count = action_sync("count", |s: State, _: &Inputs, _| s.increment("n", 1)).writes(["n"]);
    ApplicationBuilder::new()
        .with_actions([count])
        .with_transitions([("count", "count")])
        .with_state(State::new().update("n", 0))
        .with_entrypoint("count")
        .with_app_id(app_id)
        .with_state_persister(persister)
}

/// The between-steps runner: `between` (checkpoints only, as the counter example) and
/// `between-tracked` (checkpoints and tracker) each take three steps and stop between
/// steps, with more to run; `finished` runs to its end and is kept, not dropped. Then it
/// prints `PAUSED` and sleeps with no step in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the runner process of a_runner_killed_between_steps_leaves_its_app_interrupted"]
async fn between_steps_runner_process() {
    let Some(path) = std::env::var_os(BETWEEN_DB) else {
        return;
    };
    let tracker = Tracker::open(&path).expect("tracker opens");
    let persister = Arc::new(SqlitePersister::open(&path).expect("persister opens"));
    let mut plain = endless("between", persister.clone())
        .build()
        .await
        .expect("builds");
    let mut tracked = endless("between-tracked", persister.clone())
        .with_tracker(tracker.hook())
        .build()
        .await
        .expect("builds");
    for _ in 0..3 {
        plain
            .step(Inputs::new())
            .await
            .expect("steps")
            .expect("a step");
        tracked
            .step(Inputs::new())
            .await
            .expect("steps")
            .expect("a step");
    }
    let once =
        action_sync("once", |s: State, _: &Inputs, _| s.update("done", true)).writes(["done"]);
    let mut finished = ApplicationBuilder::new()
        .with_actions([once])
        .with_entrypoint("once")
        .with_app_id("finished")
        .with_state_persister(persister)
        .build()
        .await
        .expect("builds");
    finished.run(RunOptions::new()).await.expect("runs");
    tracker.flush().expect("the tracker writes");
    println!("PAUSED");
    std::thread::sleep(Duration::from_secs(3_600));
    drop((plain, tracked, finished));
}

/// The runner: `hanging` fans out to two children that finish (step 0), then to one
/// child whose action prints `READY` once the tracker has written everything so far, and
/// never returns (step 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the runner process of a_runner_killed_mid_step_leaves_its_apps_interrupted"]
async fn runner_process() {
    let Some(path) = std::env::var_os(RUNNER_DB) else {
        return;
    };
    let tracker = Tracker::open(&path).expect("tracker opens");
    let persister = Arc::new(SqlitePersister::open(&path).expect("persister opens"));
    let flushed = tracker.clone();
    let hang = action_sync("hang", move |s: State, _: &Inputs, _| {
        flushed.flush().expect("the tracker writes");
        println!("READY");
        std::thread::sleep(Duration::from_secs(3_600));
        s
    });
    let (fan, wait) = hanging_actions(hang);
    let mut app = ApplicationBuilder::new()
        .with_actions([fan])
        .with_actions([wait])
        .with_transitions([("fan", "wait")])
        .with_entrypoint("fan")
        .with_app_id("hanging")
        .with_state_persister(persister)
        .with_tracker(tracker.hook())
        .build()
        .await
        .expect("builds");
    app.run(RunOptions::new()).await.expect("runs");
}

/// `hanging`'s actions: `fan` runs two quick children, then `wait` runs one child of
/// `hang`.
fn hanging_actions(hang: burr_core::actions::FnAction) -> (MapAction, MapAction) {
    let quick =
        action_sync("quick", |s: State, _: &Inputs, _| s.update("done", true)).writes(["done"]);
    let fan = MapAction::states("fan", SubGraph::action(quick), |_: &State, _: &Inputs| {
        Ok::<_, ActionError>(vec![State::new(), State::new()])
    })
    .reduce(|state, _| Ok::<_, ActionError>(state.update("fanned", true)))
    .writes(["fanned"]);
    let wait = MapAction::states("wait", SubGraph::action(hang), |_: &State, _: &Inputs| {
        Ok::<_, ActionError>(vec![State::new()])
    })
    .reduce(|state, _| Ok::<_, ActionError>(state.update("waited", true)))
    .writes(["waited"]);
    (fan, wait)
}

/// Start the runner process on `db` and wait until it hangs in its step.
fn start_runner(db: &Path) -> Runner {
    start("runner_process", RUNNER_DB, db, "READY")
}

/// Run the ignored test `test` of this binary as a process, with `env` set to `db`, and
/// wait until it prints `signal`.
fn start(test: &str, env: &str, db: &Path, signal: &str) -> Runner {
    let mut runner = Runner(
        Command::new(std::env::current_exe().expect("the test binary"))
            .args(["--exact", test, "--ignored", "--nocapture"])
            .env(env, db)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the runner starts"),
    );
    let stdout = runner.0.stdout.take().expect("its stdout");
    let ready = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|line| line == signal);
    assert!(ready, "the runner printed {signal}");
    runner
}

/// The runner process, killed (SIGKILL) when dropped.
struct Runner(Child);

impl Drop for Runner {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn json_of(db: &Path, args: &[&str]) -> Value {
    let output = burr_tracker(db, args);
    assert!(
        output.status.success(),
        "burr-tracker {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON")
}

fn error_of(db: &Path, args: &[&str]) -> String {
    let output = burr_tracker(db, args);
    assert_eq!(output.status.code(), Some(1), "burr-tracker {args:?} fails");
    String::from_utf8(output.stderr).expect("UTF-8")
}

/// Each application's status, by app id.
fn statuses(db: &Path) -> Vec<(String, String)> {
    let apps = json_of(db, &["apps", "--json"]);
    let mut out: Vec<(String, String)> = apps["apps"]
        .as_array()
        .expect("apps")
        .iter()
        .map(|a| {
            (
                a["app_id"].as_str().expect("an id").to_owned(),
                a["status"].as_str().expect("a status").to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

fn expected(root: &str, waiting_child: &str) -> Vec<(String, String)> {
    [
        ("hanging", root),
        ("hanging/0/0", "completed"),
        ("hanging/0/1", "completed"),
        ("hanging/1/0", waiting_child),
    ]
    .iter()
    .map(|(a, s)| (a.to_string(), s.to_string()))
    .collect()
}

#[test]
fn a_runner_killed_mid_step_leaves_its_apps_interrupted() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("burr.db");
    let runner = start_runner(&db);

    // Running: the root holds its lease, the children run under it.
    assert_eq!(statuses(&db), expected("running", "running"));
    let refused = error_of(&db, &["delete", "hanging"]);
    let pid = format!("lease held by pid {} on ", runner.0.id());
    assert!(
        refused.starts_with("error: cannot delete application `hanging`: it is running (")
            && refused.contains(&pid)
            && refused.ends_with("; nothing was deleted\n"),
        "{refused}"
    );
    let refused = error_of(&db, &["delete", "hanging/0/1"]);
    assert!(
        refused.contains("its root application `hanging` is running (") && refused.contains(&pid),
        "{refused}"
    );
    assert_eq!(statuses(&db).len(), 4, "nothing was deleted");
    let refused = error_of(&db, &["prune", "hanging", "--keep-last", "1"]);
    assert!(
        refused.starts_with("error: cannot prune application `hanging`: it is running (")
            && refused.ends_with("; nothing was pruned\n"),
        "{refused}"
    );

    // Killed mid-step: nothing runs them any more.
    drop(runner);
    assert_eq!(statuses(&db), expected("interrupted", "interrupted"));
    let show = json_of(&db, &["show", "hanging", "--json"]);
    assert_eq!(show["status"], "interrupted");
    let last = show["steps"]
        .as_array()
        .and_then(|s| s.last())
        .expect("steps");
    assert_eq!(
        (&last["action"], &last["status"]),
        (&"wait".into(), &"interrupted".into())
    );
    let interrupted = json_of(&db, &["apps", "--status", "interrupted", "--json"]);
    assert_eq!(interrupted["total"], 2);
    assert_eq!(
        json_of(&db, &["apps", "--status", "running", "--json"])["total"],
        0
    );

    // Deleted with its descendants.
    let report = json_of(&db, &["delete", "hanging", "--json"]);
    assert_eq!(report["descendants"], 3);
    assert_eq!(
        (&report["checkpoints"], &report["tracked"]),
        (&true.into(), &true.into())
    );
    assert_eq!(statuses(&db), []);
    // The lease `delete` held while it worked is given back.
    let leases: i64 = rusqlite::Connection::open(&db)
        .and_then(|c| c.query_row("SELECT count(*) FROM burr_leases", [], |r| r.get(0)))
        .expect("reads");
    assert_eq!(leases, 0);
}

#[test]
fn a_runner_killed_between_steps_leaves_its_app_interrupted() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("burr.db");
    let runner = start("between_steps_runner_process", BETWEEN_DB, &db, "PAUSED");
    let between = |root: &str| -> Vec<(String, String)> {
        [
            ("between", root),
            ("between-tracked", root),
            ("finished", "completed"),
        ]
        .iter()
        .map(|(a, s)| (a.to_string(), s.to_string()))
        .collect()
    };
    // Alive, between steps (the last one completed): running. Finished, though its runner
    // keeps it: completed.
    assert_eq!(statuses(&db), between("running"));
    let show = json_of(&db, &["show", "between", "--json"]);
    assert_eq!(show["status"], "running");
    let steps = show["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 3);
    assert!(steps.iter().all(|s| s["status"] == "completed"), "{show}");

    // Killed between steps, right after a completed step.
    drop(runner);
    assert_eq!(statuses(&db), between("interrupted"));
    let show = json_of(&db, &["show", "between-tracked", "--json"]);
    assert_eq!(show["status"], "interrupted");
    let interrupted = json_of(&db, &["apps", "--status", "interrupted", "--json"]);
    assert_eq!(interrupted["total"], 2);
    let completed = json_of(&db, &["apps", "--status", "completed", "--json"]);
    assert_eq!(completed["total"], 1);
    assert_eq!(completed["apps"][0]["app_id"], "finished");
    // The table says the same.
    let table = String::from_utf8(burr_tracker(&db, &["apps"]).stdout).expect("UTF-8");
    let row = table
        .lines()
        .find(|l| l.starts_with("between "))
        .expect("a row for `between`");
    assert!(row.contains(" interrupted "), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_a_crash_cut_short_stays_in_the_history_after_the_resume() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("burr.db");
    let runner = start_runner(&db);
    drop(runner);

    // Resumed here, with a `hang` that returns at once: `wait` runs again and completes.
    let tracker = Tracker::open(&db).expect("tracker opens");
    let persister = Arc::new(SqlitePersister::open(&db).expect("persister opens"));
    let hang = action_sync("hang", |s: State, _: &Inputs, _| s);
    let (fan, wait) = hanging_actions(hang);
    let mut app = ApplicationBuilder::new()
        .with_actions([fan])
        .with_actions([wait])
        .with_transitions([("fan", "wait")])
        .with_entrypoint("fan")
        .with_app_id("hanging")
        .with_state_persister(persister.clone())
        .initialize_from(persister)
        .with_tracker(tracker.hook())
        .build()
        .await
        .expect("builds");
    app.run(RunOptions::new()).await.expect("runs");
    drop(app);
    tracker.flush().expect("the tracker writes");

    let runs = |app: &str| -> Vec<(u64, u64, String, String)> {
        json_of(&db, &["show", app, "--json"])["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .map(|s| {
                (
                    s["sequence_id"].as_u64().expect("a sequence id"),
                    s["attempt"].as_u64().expect("an attempt"),
                    s["action"].as_str().expect("an action").to_owned(),
                    s["status"].as_str().expect("a status").to_owned(),
                )
            })
            .collect()
    };
    let expected = |rows: &[(u64, u64, &str, &str)]| -> Vec<(u64, u64, String, String)> {
        rows.iter()
            .map(|(q, a, n, s)| (*q, *a, n.to_string(), s.to_string()))
            .collect()
    };
    assert_eq!(
        runs("hanging"),
        expected(&[
            (0, 1, "fan", "completed"),
            (1, 1, "wait", "interrupted"),
            (1, 1, "wait", "completed"),
        ])
    );
    assert_eq!(
        runs("hanging/1/0"),
        expected(&[(0, 1, "hang", "interrupted"), (0, 1, "hang", "completed")])
    );
}
