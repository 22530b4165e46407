//! The run queue's contract, on both backends: every test here runs against a real
//! SQLite file (`sqlite::…`) and a real PostgreSQL database (`postgres::…`, on
//! `burr_postgres::testing::TestServer`: a throwaway server, or `BURR_TEST_PG_URL`; no
//! server is a failure, never a skip). Submissions, typed errors that change nothing,
//! claim order, concurrency limits, kind versions, fencing, schedules, cancel, drain,
//! not-before times and events.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use burr_core::persistence::Persister;
use burr_server::{
    Claim, EventKind, Finish, PgRunQueue, QueueError, Registry, RunFilter, RunInfo, RunQueue,
    RunStatus, Runs, ScheduleSpec, SqliteRunQueue, Submission, Worker, WorkerOptions,
};
use burr_tests::runs_kinds::{Herald, Steps, Ticket};
use serde_json::json;
use tokio::sync::oneshot;

/// One contract test, instantiated for each backend.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Setup::sqlite().await).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Setup::postgres().await).await
                }
            )*
        }
    };
}

contract!(
    a_submitted_run_runs_to_success_with_its_events_in_order,
    duplicate_submissions_by_key_give_one_run,
    bad_input_gets_a_typed_error_and_changes_nothing_stored,
    a_corrupt_run_row_gives_a_typed_error_and_is_neither_claimed_nor_changed,
    claims_go_by_priority_then_flow_start_then_submission,
    an_urgent_run_behind_500_queued_starts_next_under_load,
    concurrency_limits_per_key_hold,
    concurrency_limits_hold_with_claimers_racing,
    claimers_racing_never_share_a_run,
    a_worker_claims_only_kind_versions_it_can_run,
    a_stale_worker_is_fenced_out,
    a_run_claimed_too_often_is_failed_not_claimed_again,
    a_schedule_fires_once_per_due_time_with_two_schedulers,
    cancel_stops_a_queued_run_at_once_and_a_running_one_through_its_worker,
    a_draining_worker_gives_runs_back_and_nothing_is_redone,
    a_run_is_not_claimed_before_its_time,
    a_failing_run_keeps_its_error_chain,
    a_run_whose_code_panics_fails_and_the_worker_goes_on,
    events_resume_after_an_id_in_order,
    the_scheduler_deletes_old_events_of_finished_runs_only,
    child_progress_counts_to_every_child_of_the_map_not_those_started,
    a_kind_refuses_inputs_that_parse_and_fixes_its_runs_priority,
    announcements_are_run_events_recorded_before_the_run_finishes,
    a_run_claimed_again_by_the_worker_running_it_stops_the_older_attempt,
);

/// The database under test, reached around the queue (to look at or damage its rows).
enum Db {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Db {
    /// Another handle on the same database (another scheduler, another process's view).
    async fn other(&self) -> Arc<dyn RunQueue> {
        match self {
            Db::Sqlite(path) => Arc::new(SqliteRunQueue::open(path).unwrap()),
            Db::Postgres(url) => Arc::new(PgRunQueue::connect(url).await.unwrap()),
        }
    }

    /// Every row of the queue's tables, as text: what "changes nothing stored" compares.
    async fn dump(&self) -> Vec<String> {
        const TABLES: [&str; 3] = ["burr_runs", "burr_run_events", "burr_schedules"];
        match self {
            Db::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path).unwrap();
                let mut out = Vec::new();
                for table in TABLES {
                    let mut stmt = conn.prepare(&format!("SELECT * FROM {table}")).unwrap();
                    let columns = stmt.column_count();
                    let mut rows = stmt.query([]).unwrap();
                    while let Some(row) = rows.next().unwrap() {
                        let cells: Vec<String> = (0..columns)
                            .map(|i| format!("{:?}", row.get_ref(i).unwrap()))
                            .collect();
                        out.push(format!("{table}: {}", cells.join("|")));
                    }
                }
                out
            }
            Db::Postgres(url) => {
                let client = pg(url).await;
                let mut out = Vec::new();
                for table in TABLES {
                    for row in client
                        .query(&format!("SELECT t::text FROM {table} t ORDER BY 1"), &[])
                        .await
                        .unwrap()
                    {
                        out.push(format!("{table}: {}", row.get::<_, String>(0)));
                    }
                }
                out
            }
        }
    }

    /// Make a run's stored inputs unreadable (not JSON).
    async fn corrupt_inputs(&self, run_id: &str) {
        let sql = "UPDATE burr_runs SET inputs = '{not json' WHERE id = ";
        match self {
            Db::Sqlite(path) => {
                rusqlite::Connection::open(path)
                    .unwrap()
                    .execute(&format!("{sql}?1"), [run_id])
                    .unwrap();
            }
            Db::Postgres(url) => {
                pg(url)
                    .await
                    .execute(&format!("{sql}$1"), &[&run_id])
                    .await
                    .unwrap();
            }
        }
    }

    /// How many events of `run_id` are stored.
    async fn event_count(&self, run_id: &str) -> i64 {
        let sql = "SELECT count(*) FROM burr_run_events WHERE run_id = ";
        match self {
            Db::Sqlite(path) => rusqlite::Connection::open(path)
                .unwrap()
                .query_row(&format!("{sql}?1"), [run_id], |r| r.get(0))
                .unwrap(),
            Db::Postgres(url) => pg(url)
                .await
                .query_one(&format!("{sql}$1"), &[&run_id])
                .await
                .unwrap()
                .get(0),
        }
    }

    /// Make every stored event `by_us` older.
    async fn age_events(&self, by_us: i64) {
        let sql = "UPDATE burr_run_events SET at_us = at_us - ";
        match self {
            Db::Sqlite(path) => {
                rusqlite::Connection::open(path)
                    .unwrap()
                    .execute(&format!("{sql}?1"), [by_us])
                    .unwrap();
            }
            Db::Postgres(url) => {
                pg(url)
                    .await
                    .execute(&format!("{sql}$1"), &[&by_us])
                    .await
                    .unwrap();
            }
        }
    }

    /// Lose a run's claim and everything its attempt wrote since (its application's
    /// record, lease and checkpoints): what a PostgreSQL crash leaves of a claim that had
    /// not reached the disk (claims commit without waiting for it; the attempt's first
    /// checkpoint, which does wait, would have flushed the claim with it).
    async fn lose_claim(&self, run_id: &str) {
        let sql = format!(
            "BEGIN;
             UPDATE burr_runs SET status = 'queued', attempt = 0, lease_holder = NULL,
                 lease_expires_at_us = NULL, heartbeat_at_us = NULL, started_at_us = NULL
                 WHERE id = '{run_id}';
             DELETE FROM burr_checkpoints
                 WHERE app IN (SELECT id FROM burr_apps WHERE app_id = '{run_id}');
             DELETE FROM burr_leases WHERE app_id = '{run_id}';
             DELETE FROM burr_apps WHERE app_id = '{run_id}';
             COMMIT;"
        );
        match self {
            Db::Sqlite(path) => rusqlite::Connection::open(path)
                .unwrap()
                .execute_batch(&sql)
                .unwrap(),
            Db::Postgres(url) => pg(url).await.batch_execute(&sql).await.unwrap(),
        }
    }

    /// Whether the run is still queued and never claimed.
    async fn queued_never_claimed(&self, run_id: &str) -> bool {
        let sql = "SELECT status = 'queued' AND attempt = 0 FROM burr_runs WHERE id = ";
        match self {
            Db::Sqlite(path) => rusqlite::Connection::open(path)
                .unwrap()
                .query_row(&format!("{sql}?1"), [run_id], |r| r.get(0))
                .unwrap(),
            Db::Postgres(url) => pg(url)
                .await
                .query_one(&format!("{sql}$1"), &[&run_id])
                .await
                .unwrap()
                .get(0),
        }
    }
}

/// A plain connection to a PostgreSQL database.
async fn pg(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

struct Setup {
    _dir: tempfile::TempDir,
    db: Db,
    log: PathBuf,
    queue: Arc<dyn RunQueue>,
    persister: Arc<dyn Persister>,
    runs: Runs,
    registry: Arc<Registry>,
}

impl Setup {
    async fn sqlite() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("burr.db");
        let queue = SqliteRunQueue::open(&path).unwrap();
        let persister = queue.persister();
        Self::with(dir, Db::Sqlite(path), Arc::new(queue), persister)
    }

    async fn postgres() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let url = burr_postgres::testing::TestServer::shared().fresh_database();
        let queue = PgRunQueue::connect(&url).await.unwrap();
        let persister = queue.persister();
        Self::with(dir, Db::Postgres(url), Arc::new(queue), persister)
    }

    fn with(
        dir: tempfile::TempDir,
        db: Db,
        queue: Arc<dyn RunQueue>,
        persister: Arc<dyn Persister>,
    ) -> Setup {
        let log = dir.path().join("log");
        let registry = Arc::new(
            Registry::new()
                .register(Steps {
                    log: Some(log.clone()),
                    org_limit: 2,
                    max_attempts: None,
                })
                .register(Ticket)
                .register(Herald),
        );
        let runs = Runs::new(Arc::clone(&queue), Arc::clone(&registry));
        Setup {
            _dir: dir,
            db,
            log,
            queue,
            persister,
            runs,
            registry,
        }
    }
}

/// A worker on `setup`'s queue, stopped (drained) when the sender is used or dropped.
fn start_worker(
    setup: &Setup,
    options: WorkerOptions,
) -> (
    oneshot::Sender<()>,
    tokio::task::JoinHandle<burr_server::WorkerReport>,
) {
    let worker = Worker::new(
        Arc::clone(&setup.queue),
        Arc::clone(&setup.persister),
        Arc::clone(&setup.registry),
    )
    .with_options(options);
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        worker
            .run(async {
                let _ = stopped.await;
            })
            .await
            .unwrap()
    });
    (stop, handle)
}

fn claim(worker: &str, limit: usize, ttl_ms: i64) -> Claim {
    Claim {
        worker: worker.to_owned(),
        queues: vec!["default".to_owned()],
        kinds: vec![("steps".to_owned(), 1)],
        limit,
        lease_ttl_us: ttl_ms * 1000,
    }
}

/// `(run id, sequence id)` of every logged execution.
fn executions(log: &Path) -> Vec<(String, u64)> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|line| {
            let parts: Vec<&str> = line.split(' ').collect();
            (parts[1].to_owned(), parts[2].parse().unwrap())
        })
        .collect()
}

/// Claimers racing on one database (two handles, several tasks each): `runs` runs end
/// up claimed, each by one claimer.
async fn claimers_racing_never_share_a_run(s: Setup) {
    let other = s.db.other().await;
    let mut ids = Vec::new();
    for _ in 0..200 {
        ids.push(
            s.runs
                .submit(Submission::new("steps", json!({"steps": 1})))
                .await
                .unwrap()
                .run
                .id,
        );
    }
    let mut tasks = Vec::new();
    for i in 0..8 {
        let queue = if i % 2 == 0 {
            Arc::clone(&s.queue)
        } else {
            Arc::clone(&other)
        };
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let claimed = queue
                    .claim(&claim(&format!("w{i}"), 7, 60_000))
                    .await
                    .unwrap();
                if claimed.is_empty() {
                    return mine;
                }
                mine.extend(claimed.into_iter().map(|r| r.id));
            }
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all.sort();
    ids.sort();
    assert_eq!(all, ids, "every run claimed once");
}

/// The limit of a concurrency key holds also when claimers on two handles race.
async fn concurrency_limits_hold_with_claimers_racing(s: Setup) {
    let other = s.db.other().await;
    for _ in 0..20 {
        s.runs
            .submit(Submission::new("steps", json!({"steps": 1, "org": "acme"})))
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for i in 0..6 {
        let queue = if i % 2 == 0 {
            Arc::clone(&s.queue)
        } else {
            Arc::clone(&other)
        };
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            for _ in 0..5 {
                n += queue
                    .claim(&claim(&format!("w{i}"), 3, 60_000))
                    .await
                    .unwrap()
                    .len();
            }
            n
        }));
    }
    let mut claimed = 0;
    for task in tasks {
        claimed += task.await.unwrap();
    }
    assert_eq!(claimed, 2, "at most 2 acme runs at once");
    let running = s
        .queue
        .list(&burr_server::RunFilter {
            status: Some(RunStatus::Running),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(running.len(), 2);
}

/// A worker claims only runs of the kind versions it can run: a run submitted for
/// version 2 waits for a worker that has version 2 (a rolling deploy never hands it to
/// older code), and a worker of other queues does not take it either.
async fn a_worker_claims_only_kind_versions_it_can_run(s: Setup) {
    let mut newer = s
        .runs
        .prepare(&Submission::new("steps", json!({"steps": 1})))
        .unwrap();
    newer.kind_version = 2;
    let newer = s.queue.submit(newer).await.unwrap().run;
    assert_eq!(newer.kind_version, 2);
    let old = s
        .runs
        .submit(Submission::new("steps", json!({"steps": 1})))
        .await
        .unwrap()
        .run;
    let v1 = s.queue.claim(&claim("old", 10, 60_000)).await.unwrap();
    assert_eq!(v1.iter().map(|r| &r.id).collect::<Vec<_>>(), [&old.id]);
    let mut elsewhere = claim("elsewhere", 10, 60_000);
    elsewhere.kinds = vec![("steps".into(), 2)];
    elsewhere.queues = vec!["other".into()];
    assert!(s.queue.claim(&elsewhere).await.unwrap().is_empty());
    let mut v2 = claim("new", 10, 60_000);
    v2.kinds = vec![("steps".into(), 1), ("steps".into(), 2)];
    let taken = s.queue.claim(&v2).await.unwrap();
    assert_eq!(taken.iter().map(|r| &r.id).collect::<Vec<_>>(), [&newer.id]);
    assert_eq!(taken[0].attempt, 1);
}

/// Events have increasing ids; reading after an id resumes there, for one run and for
/// all runs.
async fn events_resume_after_an_id_in_order(s: Setup) {
    let a = s
        .runs
        .submit(Submission::new("steps", json!({"steps": 1})))
        .await
        .unwrap()
        .run;
    let b = s
        .runs
        .submit(Submission::new("steps", json!({"steps": 1})))
        .await
        .unwrap()
        .run;
    s.queue.claim(&claim("w", 10, 60_000)).await.unwrap();
    s.queue
        .finish(&a.id, 1, "w", Finish::Succeeded(json!({})), None)
        .await
        .unwrap();
    // Every run's events are read only up to the oldest transaction still open on the
    // server (PostgreSQL: so that one committing late is never skipped), which may be
    // another test's for a moment: wait until the five are visible.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let all = loop {
        let all = s.queue.events(0, None, 100).await.unwrap();
        if all.len() >= 5 || std::time::Instant::now() > deadline {
            break all;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let names: Vec<(&str, &str)> = all
        .iter()
        .map(|e| (e.run_id.as_str(), e.kind.name()))
        .collect();
    assert_eq!(
        names,
        [
            (a.id.as_str(), "queued"),
            (b.id.as_str(), "queued"),
            (a.id.as_str(), "claimed"),
            (b.id.as_str(), "claimed"),
            (a.id.as_str(), "finished"),
        ]
    );
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    let after = s.queue.events(all[1].id, None, 100).await.unwrap();
    assert_eq!(after, all[2..]);
    let limited = s.queue.events(all[1].id, None, 2).await.unwrap();
    assert_eq!(limited, all[2..4]);
    let of_a = s.queue.events(all[0].id, Some(&a.id), 100).await.unwrap();
    assert_eq!(of_a, [all[2].clone(), all[4].clone()]);
}

async fn a_submitted_run_runs_to_success_with_its_events_in_order(s: Setup) {
    let submitted = s
        .runs
        .submit(Submission::new("steps", json!({"steps": 3})))
        .await
        .unwrap();
    assert!(submitted.created);
    assert_eq!(submitted.run.status, RunStatus::Queued);
    let (stop, worker) = start_worker(&s, WorkerOptions::default());
    let run = tokio::time::timeout(Duration::from_secs(20), s.runs.wait(&submitted.run.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(run.attempt, 1);
    assert_eq!(run.result, Some(json!({"action": "done", "result": {}})));
    stop.send(()).unwrap();
    let report = worker.await.unwrap();
    assert_eq!((report.claimed, report.succeeded), (1, 1));

    let events = s.queue.events(0, Some(&run.id), 100).await.unwrap();
    let names: Vec<&str> = events.iter().map(|e| e.kind.name()).collect();
    assert_eq!(
        names,
        [
            "queued",
            "claimed",
            "step_finished",
            "step_finished",
            "step_finished",
            "step_finished",
            "finished"
        ]
    );
    assert!(events.windows(2).all(|w| w[0].id < w[1].id));
    // The run keeps the code that finished it: its kind's graph's fingerprint.
    let built = burr_server::Kind::build(
        &Steps::default(),
        serde_json::from_value(run.inputs.clone()).unwrap(),
        &RunInfo::of(&run),
    )
    .unwrap()
    .current_code()
    .unwrap();
    let code = run.code.clone().expect("the run records its code");
    assert_eq!(code.fingerprint, built.code.fingerprint);
    assert_eq!(code.version, built.code.version);
    assert_eq!(
        s.queue.last_event_id().await.unwrap(),
        events.last().unwrap().id
    );
    // The checkpoints are the application's, under the run id.
    let loaded = burr_core::persistence::Persister::load(&*s.persister, None, &run.id, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(loaded.state.get::<u32>("count").unwrap(), 3);
}

async fn duplicate_submissions_by_key_give_one_run(s: Setup) {
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let runs = s.runs.clone();
        tasks.push(tokio::spawn(async move {
            runs.submit(Submission::new("steps", json!({"steps": 1})).idempotency_key("meeting-7"))
                .await
                .unwrap()
        }));
    }
    let mut ids = Vec::new();
    let mut created = 0;
    for task in tasks {
        let submitted = task.await.unwrap();
        created += usize::from(submitted.created);
        ids.push(submitted.run.id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one run for one key");
    assert_eq!(created, 1);
    assert_eq!(s.queue.list(&Default::default()).await.unwrap().len(), 1);
}

async fn bad_input_gets_a_typed_error_and_changes_nothing_stored(s: Setup) {
    let done = s
        .runs
        .submit(Submission::new("steps", json!({"steps": 1})))
        .await
        .unwrap()
        .run;
    let (stop, worker) = start_worker(&s, WorkerOptions::default());
    s.runs.wait(&done.id).await.unwrap();
    stop.send(()).unwrap();
    worker.await.unwrap();
    let before = s.db.dump().await;

    let error = s
        .runs
        .submit(Submission::new("stepz", json!({})))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, QueueError::UnknownKind { kind, known } if kind == "stepz" && known == &["herald", "steps", "ticket"]),
        "{error}"
    );
    let error = s
        .runs
        .submit(Submission::new("steps", json!({})))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, QueueError::BadInputs { field, .. } if field == "steps"),
        "{error}"
    );
    let error = s
        .runs
        .submit(Submission::new("steps", json!({"steps": "three"})))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, QueueError::BadInputs { field, .. } if field == "steps"),
        "{error}"
    );
    let error = s
        .runs
        .submit(Submission::new(
            "steps",
            json!({"steps": 1, "colour": "red"}),
        ))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("colour"), "{error}");
    let error = s
        .runs
        .submit(Submission::new("steps", json!({"steps": 1})).run_id(" padded"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, QueueError::Invalid { what: "run id", .. }),
        "{error}"
    );
    let error = s
        .runs
        .submit(Submission::new("steps", json!({"steps": 1})).run_id(done.id.clone()))
        .await
        .unwrap_err();
    assert!(matches!(error, QueueError::RunExists { .. }), "{error}");
    // An application with checkpoints, run by hand in the same database: its id cannot
    // be a run's.
    let by_hand = burr_core::actions::action_sync(
        "only",
        |state: burr_core::State, _, _: &burr_core::ApplicationContext| {
            (json!({}), state.update("n", 1))
        },
    )
    .writes(["n"]);
    let mut app = burr_core::ApplicationBuilder::new()
        .with_actions([by_hand])
        .with_transitions(Vec::<(&str, &str)>::new())
        .with_entrypoint("only")
        .with_app_id("by-hand")
        .with_state_persister(Arc::clone(&s.persister))
        .build()
        .await
        .unwrap();
    app.run(burr_core::RunOptions::new()).await.unwrap();
    drop(app);
    let error = s
        .runs
        .submit(Submission::new("steps", json!({"steps": 1})).run_id("by-hand"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, QueueError::AppExists { run_id } if run_id == "by-hand"),
        "{error}"
    );
    let error = s.queue.get("no-such-run").await.unwrap_err();
    assert!(matches!(&error, QueueError::UnknownRun { run_id } if run_id == "no-such-run"));
    let error = s.queue.cancel("no-such-run").await.unwrap_err();
    assert!(matches!(error, QueueError::UnknownRun { .. }));
    let error = s.queue.cancel(&done.id).await.unwrap_err();
    assert!(
        matches!(
            error,
            QueueError::AlreadyFinished {
                status: RunStatus::Succeeded,
                ..
            }
        ),
        "{error}"
    );
    let error = s.queue.explain("no-such-run").await.unwrap_err();
    assert!(matches!(error, QueueError::UnknownRun { .. }));
    let error = s
        .runs
        .schedule(
            "nightly",
            ScheduleSpec::Cron("not a cron".into()),
            Submission::new("steps", json!({"steps": 1})),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, QueueError::BadSchedule { name, .. } if name == "nightly"),
        "{error}"
    );
    let error = s.queue.remove_schedule("nightly").await.unwrap_err();
    assert!(matches!(error, QueueError::UnknownSchedule { .. }));

    assert_eq!(
        s.db.dump().await,
        before,
        "a refused request changed what is stored"
    );
}

async fn a_corrupt_run_row_gives_a_typed_error_and_is_neither_claimed_nor_changed(s: Setup) {
    let bad = s
        .runs
        .submit(Submission::new("steps", json!({"steps": 1})).priority(9))
        .await
        .unwrap()
        .run;
    let good = s
        .runs
        .submit(Submission::new("steps", json!({"steps": 1})))
        .await
        .unwrap()
        .run;
    s.db.corrupt_inputs(&bad.id).await;
    let before = s.db.dump().await;
    let error = s.queue.get(&bad.id).await.unwrap_err();
    match &error {
        QueueError::CorruptRun { run_id, problem } => {
            assert_eq!(run_id, &bad.id);
            assert!(problem.contains("inputs"), "{problem}");
        }
        other => panic!("expected CorruptRun, got {other}"),
    }
    assert_eq!(s.db.dump().await, before);
    // A listing leaves it out and shows the others.
    let listed = s.queue.list(&RunFilter::default()).await.unwrap();
    assert_eq!(listed.iter().map(|r| &r.id).collect::<Vec<_>>(), [&good.id]);
    // The corrupt run is skipped, the others are claimed.
    let claimed = s.queue.claim(&claim("w", 10, 10_000)).await.unwrap();
    assert_eq!(
        claimed.iter().map(|r| &r.id).collect::<Vec<_>>(),
        [&good.id]
    );
    assert!(s.db.queued_never_claimed(&bad.id).await);
}

async fn claims_go_by_priority_then_flow_start_then_submission(s: Setup) {
    let mut backlog = Vec::new();
    for i in 0..500 {
        let flow = format!("meeting-{}", i % 5);
        backlog.push(
            s.runs
                .submit(Submission::new("steps", json!({"steps": 1})).flow(flow))
                .await
                .unwrap()
                .run,
        );
    }
    let urgent = s
        .runs
        .submit(Submission::new("steps", json!({"steps": 1})).priority(10))
        .await
        .unwrap()
        .run;
    // A later run of an early flow goes before runs of later flows.
    let early_flow = s
        .runs
        .submit(Submission::new("steps", json!({"steps": 1})).flow("meeting-0"))
        .await
        .unwrap()
        .run;
    assert_eq!(early_flow.flow_started_at_us, backlog[0].flow_started_at_us);
    let explained = s.queue.explain(&urgent.id).await.unwrap();
    assert_eq!(explained.position, Some(0));
    let explained = s.queue.explain(&backlog[1].id).await.unwrap();
    assert!(explained.position.unwrap() >= 2, "{explained:?}");

    let first = s.queue.claim(&claim("w", 1, 10_000)).await.unwrap();
    assert_eq!(first[0].id, urgent.id);
    let next = s.queue.claim(&claim("w", 200, 10_000)).await.unwrap();
    let position = next.iter().position(|r| r.id == early_flow.id).unwrap();
    assert!(
        position < 101,
        "meeting-0's late run is claimed with its flow, at {position}"
    );
    assert_eq!(next[0].id, backlog[0].id);
}

async fn an_urgent_run_behind_500_queued_starts_next_under_load(s: Setup) {
    for _ in 0..500 {
        s.runs
            .submit(Submission::new("steps", json!({"steps": 1, "sleep_ms": 5})))
            .await
            .unwrap();
    }
    let (stop, worker) = start_worker(
        &s,
        WorkerOptions {
            concurrency: 2,
            ..Default::default()
        },
    );
    // Let the worker get going, then submit the urgent run.
    let mut events = s.queue.subscribe();
    let mut started = 0;
    while started < 6 {
        if let EventKind::Claimed { .. } = events.recv().await.unwrap().kind {
            started += 1;
        }
    }
    let urgent = s
        .runs
        .submit(Submission::new("steps", json!({"steps": 1, "sleep_ms": 5})).priority(10))
        .await
        .unwrap()
        .run;
    let mut claimed_since = 0;
    loop {
        let event = events.recv().await.unwrap();
        if let EventKind::Claimed { .. } = event.kind {
            if event.run_id == urgent.id {
                break;
            }
            if event.at_us >= urgent.submitted_at_us {
                claimed_since += 1;
            }
        }
    }
    stop.send(()).unwrap();
    worker.await.unwrap();
    // At most the slots free at that instant went to others first.
    assert!(
        claimed_since <= 2,
        "{claimed_since} runs started before the urgent one"
    );
}

async fn concurrency_limits_per_key_hold(s: Setup) {
    for _ in 0..5 {
        s.runs
            .submit(Submission::new("steps", json!({"steps": 1, "org": "acme"})))
            .await
            .unwrap();
    }
    s.runs
        .submit(Submission::new("steps", json!({"steps": 1, "org": "beta"})))
        .await
        .unwrap();
    s.runs
        .submit(Submission::new("steps", json!({"steps": 1})))
        .await
        .unwrap();
    let claimed = s.queue.claim(&claim("w", 10, 10_000)).await.unwrap();
    let orgs: Vec<Option<String>> = claimed.iter().map(|r| r.concurrency_key.clone()).collect();
    assert_eq!(
        orgs.iter()
            .filter(|o| o.as_deref() == Some("org:acme"))
            .count(),
        2
    );
    assert_eq!(
        orgs.iter()
            .filter(|o| o.as_deref() == Some("org:beta"))
            .count(),
        1
    );
    assert_eq!(orgs.iter().filter(|o| o.is_none()).count(), 1);
    let queued_acme = s
        .queue
        .list(&Default::default())
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.status == RunStatus::Queued)
        .unwrap();
    let explained = s.queue.explain(&queued_acme.id).await.unwrap();
    assert_eq!(explained.running_with_key, Some(2));
    assert!(
        explained.reasons.iter().any(|r| r.contains("org:acme")),
        "{:?}",
        explained.reasons
    );
    assert!(s
        .queue
        .claim(&claim("w", 10, 10_000))
        .await
        .unwrap()
        .is_empty());
    // One finishes: the next acme run may start.
    let acme = claimed
        .iter()
        .find(|r| r.concurrency_key.as_deref() == Some("org:acme"))
        .unwrap();
    s.queue
        .finish(&acme.id, 1, "w", Finish::Succeeded(json!({})), None)
        .await
        .unwrap();
    assert_eq!(
        s.queue.claim(&claim("w", 10, 10_000)).await.unwrap().len(),
        1
    );
}

async fn a_stale_worker_is_fenced_out(s: Setup) {
    let run = s
        .runs
        .submit(Submission::new("steps", json!({"steps": 1})))
        .await
        .unwrap()
        .run;
    let a = s.queue.claim(&claim("worker-a", 1, 500)).await.unwrap();
    assert_eq!(
        (a[0].attempt, a[0].lease_holder.as_deref()),
        (1, Some("worker-a"))
    );
    // Not expired yet: nobody else gets it.
    assert!(s
        .queue
        .claim(&claim("worker-b", 1, 50))
        .await
        .unwrap()
        .is_empty());
    tokio::time::sleep(Duration::from_millis(600)).await;
    let b = s.queue.claim(&claim("worker-b", 1, 10_000)).await.unwrap();
    assert_eq!((b[0].id.as_str(), b[0].attempt), (run.id.as_str(), 2));

    let error = s
        .queue
        .finish(&run.id, 1, "worker-a", Finish::Succeeded(json!({})), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, QueueError::Fenced { attempt: 1, current: 2, holder: Some(h), .. } if h == "worker-b"),
        "{error}"
    );
    let error = s
        .queue
        .release(&run.id, 1, "worker-a", 0)
        .await
        .unwrap_err();
    assert!(matches!(error, QueueError::Fenced { .. }), "{error}");
    let info = burr_server::WorkerInfo {
        id: "worker-a".into(),
        host: "h".into(),
        pid: 1,
        machine: String::new(),
        pid_started: None,
        queues: vec!["default".into()],
        concurrency: 1,
        heartbeat_at_us: 0,
    };
    let report = s
        .queue
        .heartbeat(&info, &[(run.id.clone(), 1)], 10_000_000)
        .await
        .unwrap();
    assert_eq!(report.lost, std::slice::from_ref(&run.id));
    let finished = s
        .queue
        .finish(
            &run.id,
            2,
            "worker-b",
            Finish::Succeeded(json!({"ok": 1})),
            None,
        )
        .await
        .unwrap();
    assert_eq!(finished.status, RunStatus::Succeeded);
    let events: Vec<String> = s
        .queue
        .events(0, Some(&run.id), 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.kind.name().to_owned())
        .collect();
    assert_eq!(
        events,
        ["queued", "claimed", "attempt_failed", "claimed", "finished"]
    );
}

async fn a_run_claimed_too_often_is_failed_not_claimed_again(s: Setup) {
    let run = s
        .runs
        .submit(Submission::new("steps", json!({"steps": 1})))
        .await
        .unwrap()
        .run;
    assert_eq!(run.max_attempts, 5);
    for attempt in 1..=5 {
        let claimed = s.queue.claim(&claim("w", 1, 1)).await.unwrap();
        assert_eq!(claimed[0].attempt, attempt);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(s.queue.claim(&claim("w", 1, 1)).await.unwrap().is_empty());
    let run = s.queue.get(&run.id).await.unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert!(run.error.unwrap()[0].contains("abandoned after 5 attempts"));
}

async fn a_schedule_fires_once_per_due_time_with_two_schedulers(s: Setup) {
    let other = s.db.other().await;
    let schedule = s
        .runs
        .schedule(
            "every-minute",
            ScheduleSpec::EverySeconds(60),
            Submission::new("steps", json!({"steps": 1})),
        )
        .await
        .unwrap();
    let due = schedule.next_due_us;
    assert!(
        s.queue.fire_due(due - 1).await.unwrap().is_empty(),
        "not due yet"
    );
    let (a, b) = tokio::join!(s.queue.fire_due(due), other.fire_due(due));
    let fired = a.unwrap().len() + b.unwrap().len();
    assert_eq!(fired, 1);
    assert!(
        s.queue.fire_due(due + 1).await.unwrap().is_empty(),
        "fired once for this due time"
    );
    let schedules = s.queue.schedules().await.unwrap();
    assert_eq!(schedules[0].last_fired_us, Some(due));
    let next = schedules[0].next_due_us;
    assert_eq!(next, due + 60_000_000);
    // Fired late (two and a half intervals after its due time): once, and the cadence
    // is kept.
    let late = next + 150_000_000;
    let (a, b) = tokio::join!(other.fire_due(late), s.queue.fire_due(late));
    assert_eq!(a.unwrap().len() + b.unwrap().len(), 1);
    assert_eq!(
        s.queue.schedules().await.unwrap()[0].next_due_us,
        next + 180_000_000
    );
    assert_eq!(s.queue.list(&Default::default()).await.unwrap().len(), 2);

    let cron = s
        .runs
        .schedule(
            "five",
            ScheduleSpec::Cron("*/5 * * * *".into()),
            Submission::new("steps", json!({"steps": 1})),
        )
        .await
        .unwrap();
    assert_eq!(
        cron.next_due_us % 300_000_000,
        0,
        "on a five-minute boundary"
    );
    s.queue.remove_schedule("five").await.unwrap();
    assert_eq!(s.queue.schedules().await.unwrap().len(), 1);
}

async fn cancel_stops_a_queued_run_at_once_and_a_running_one_through_its_worker(s: Setup) {
    let queued = s
        .runs
        .submit(Submission::new("steps", json!({"steps": 1})).not_before_us(i64::MAX / 2))
        .await
        .unwrap()
        .run;
    let cancelled = s.queue.cancel(&queued.id).await.unwrap();
    assert_eq!(cancelled.status, RunStatus::Cancelled);

    let long = s
        .runs
        .submit(Submission::new(
            "steps",
            json!({"steps": 1000, "sleep_ms": 20}),
        ))
        .await
        .unwrap()
        .run;
    let (stop, worker) = start_worker(&s, WorkerOptions::default());
    let mut events = s.queue.subscribe();
    loop {
        let event = events.recv().await.unwrap();
        if event.run_id == long.id && matches!(event.kind, EventKind::StepFinished { .. }) {
            break;
        }
    }
    let asked = s.queue.cancel(&long.id).await.unwrap();
    assert!(asked.cancel_requested);
    let run = tokio::time::timeout(Duration::from_secs(10), s.runs.wait(&long.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.status, RunStatus::Cancelled);
    assert!(executions(&s.log).len() < 50);
    stop.send(()).unwrap();
    let report = worker.await.unwrap();
    assert_eq!(report.cancelled, 1);
}

async fn a_draining_worker_gives_runs_back_and_nothing_is_redone(s: Setup) {
    let run = s
        .runs
        .submit(Submission::new(
            "steps",
            json!({"steps": 6, "sleep_ms": 60}),
        ))
        .await
        .unwrap()
        .run;
    let (stop, worker) = start_worker(&s, WorkerOptions::default());
    let mut events = s.queue.subscribe();
    let mut steps = 0;
    while steps < 2 {
        if let EventKind::StepFinished { .. } = events.recv().await.unwrap().kind {
            steps += 1;
        }
    }
    stop.send(()).unwrap();
    let report = worker.await.unwrap();
    assert_eq!(report.released, 1);
    let released = s.queue.get(&run.id).await.unwrap();
    assert_eq!(released.status, RunStatus::Queued);
    assert_eq!(released.lease_holder, None);

    let (stop, worker) = start_worker(&s, WorkerOptions::default());
    let finished = s.runs.wait(&run.id).await.unwrap();
    assert_eq!(
        (finished.status, finished.attempt),
        (RunStatus::Succeeded, 2)
    );
    stop.send(()).unwrap();
    worker.await.unwrap();
    let mut seen = executions(&s.log);
    assert_eq!(seen.len(), 6, "each work step ran once: {seen:?}");
    seen.dedup();
    assert_eq!(seen.len(), 6);
}

/// A claim the database lost hands the run out again, here to the worker still running
/// it, under the same attempt number: the worker stops its older task, which writes
/// nothing more, and the run finishes once, succeeded. Only the step the older task was
/// in runs twice (it had checkpointed nothing).
async fn a_run_claimed_again_by_the_worker_running_it_stops_the_older_attempt(s: Setup) {
    let run = s
        .runs
        .submit(Submission::new(
            "steps",
            json!({"steps": 3, "sleep_ms": 400}),
        ))
        .await
        .unwrap()
        .run;
    let mut events = s.queue.subscribe();
    let (stop, worker) = start_worker(&s, WorkerOptions::default());
    while !matches!(events.recv().await.unwrap().kind, EventKind::Claimed { .. }) {}
    // In its first step (logged as it starts), before its first checkpoint.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(executions(&s.log).len(), 1);
    s.db.lose_claim(&run.id).await;
    let finished = s.runs.wait(&run.id).await.unwrap();
    assert_eq!(
        (finished.status, finished.attempt, finished.error.as_ref()),
        (RunStatus::Succeeded, 1, None),
        "{finished:?}"
    );
    stop.send(()).unwrap();
    let report = worker.await.unwrap();
    assert_eq!(report.claimed, 2, "{report:?}");
    // The first work step ran twice (the older task's run of it was stopped before its
    // checkpoint), every other once.
    let steps: Vec<u64> = executions(&s.log).into_iter().map(|(_, seq)| seq).collect();
    assert_eq!(steps, [0, 0, 1, 2], "{steps:?}");
}

async fn a_run_is_not_claimed_before_its_time(s: Setup) {
    let at = burr_server::now_us() + 1_000_000;
    let run = s
        .runs
        .submit(Submission::new("steps", json!({"steps": 1})).not_before_us(at))
        .await
        .unwrap()
        .run;
    assert!(s
        .queue
        .claim(&claim("w", 1, 10_000))
        .await
        .unwrap()
        .is_empty());
    let explained = s.queue.explain(&run.id).await.unwrap();
    assert!(
        explained.reasons[0].contains("scheduled"),
        "{:?}",
        explained.reasons
    );
    tokio::time::sleep(Duration::from_millis(1_050)).await;
    assert_eq!(
        s.queue.claim(&claim("w", 1, 10_000)).await.unwrap()[0].id,
        run.id
    );
    let backlog = s.queue.backlog().await.unwrap();
    assert_eq!(backlog.rows.len(), 1);
    assert_eq!(
        (backlog.rows[0].status, backlog.rows[0].count),
        (RunStatus::Running, 1)
    );
}

async fn a_failing_run_keeps_its_error_chain(s: Setup) {
    let run = s
        .runs
        .submit(Submission::new("steps", json!({"steps": 3, "fail_at": 2})))
        .await
        .unwrap()
        .run;
    let (stop, worker) = start_worker(&s, WorkerOptions::default());
    let run = s.runs.wait(&run.id).await.unwrap();
    stop.send(()).unwrap();
    worker.await.unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    let error = run.error.unwrap().join(": ");
    assert!(error.contains("work 2 fails on purpose"), "{error}");
    let events = s.queue.events(0, Some(&run.id), 100).await.unwrap();
    assert!(events.iter().any(
        |e| matches!(&e.kind, EventKind::AttemptFailed { error, .. } if error.contains("work"))
    ));
}

async fn a_run_whose_code_panics_fails_and_the_worker_goes_on(s: Setup) {
    let bad = s
        .runs
        .submit(Submission::new("steps", json!({"steps": 2, "panic_at": 2})))
        .await
        .unwrap()
        .run;
    let good = s
        .runs
        .submit(Submission::new("steps", json!({"steps": 2})))
        .await
        .unwrap()
        .run;
    let (stop, worker) = start_worker(&s, WorkerOptions::default());
    let bad = tokio::time::timeout(Duration::from_secs(20), s.runs.wait(&bad.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bad.status, RunStatus::Failed);
    let error = bad.error.unwrap().join(": ");
    assert!(error.contains("panics on purpose"), "{error}");
    assert_eq!(bad.lease_holder, None);
    let good = s.runs.wait(&good.id).await.unwrap();
    assert_eq!(good.status, RunStatus::Succeeded);
    stop.send(()).unwrap();
    worker.await.unwrap();
}

/// The scheduler deletes the events of runs finished longer ago than the retention, and
/// keeps runs and the events of runs still waiting.
async fn the_scheduler_deletes_old_events_of_finished_runs_only(s: Setup) {
    let finished = s
        .runs
        .submit(Submission::new("steps", json!({"steps": 1})))
        .await
        .unwrap()
        .run;
    let (stop, worker) = start_worker(
        &s,
        WorkerOptions {
            scheduler: false,
            ..Default::default()
        },
    );
    s.runs.wait(&finished.id).await.unwrap();
    stop.send(()).unwrap();
    worker.await.unwrap();
    let waiting = s
        .runs
        .submit(Submission::new("steps", json!({"steps": 1})).not_before_us(i64::MAX / 2))
        .await
        .unwrap()
        .run;
    assert!(s.db.event_count(&finished.id).await >= 4);
    assert_eq!(s.db.event_count(&waiting.id).await, 1);
    // Both runs' events are now two days old.
    s.db.age_events(2 * 24 * 3600 * 1_000_000).await;
    // A retention of three days keeps them; one of a day deletes the finished run's.
    let (stop, worker) = start_worker(
        &s,
        WorkerOptions {
            event_retention: Some(Duration::from_secs(3 * 24 * 3600)),
            ..Default::default()
        },
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.send(()).unwrap();
    worker.await.unwrap();
    assert!(s.db.event_count(&finished.id).await >= 4);
    let (stop, worker) = start_worker(
        &s,
        WorkerOptions {
            event_retention: Some(Duration::from_secs(24 * 3600)),
            ..Default::default()
        },
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while s.db.event_count(&finished.id).await > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "old events were not deleted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send(()).unwrap();
    worker.await.unwrap();
    assert_eq!(
        s.queue.get(&finished.id).await.unwrap().status,
        RunStatus::Succeeded
    );
    assert_eq!(s.db.event_count(&waiting.id).await, 1);
    assert_eq!(s.queue.prune_events(i64::MAX).await.unwrap(), 0);
}

/// Child progress counts to every child of the map action, not to the children started
/// so far (they start a window at a time).
async fn child_progress_counts_to_every_child_of_the_map_not_those_started(s: Setup) {
    let registry = Arc::new(Registry::new().register(burr_tests::runs_kinds::Batch));
    let runs = Runs::new(Arc::clone(&s.queue), Arc::clone(&registry));
    let run = runs
        .submit(Submission::new(
            "batch",
            json!({"items": 300, "child_ms": 1}),
        ))
        .await
        .unwrap()
        .run;
    let worker = Worker::new(Arc::clone(&s.queue), Arc::clone(&s.persister), registry);
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(worker.run(async {
        let _ = stopped.await;
    }));
    let done = tokio::time::timeout(Duration::from_secs(60), runs.wait(&run.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.status, RunStatus::Succeeded, "{done:?}");
    stop.send(()).unwrap();
    handle.await.unwrap().unwrap();
    let progress: Vec<(u64, u64)> = s
        .queue
        .events(0, Some(&run.id), 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::ChildProgress { done, total } => Some((done, total)),
            _ => None,
        })
        .collect();
    assert!(!progress.is_empty());
    assert!(
        progress.iter().all(|&(_, total)| total == 300),
        "every report counts to 300: {progress:?}"
    );
    assert_eq!(progress.last(), Some(&(300, 300)));
}

async fn a_kind_refuses_inputs_that_parse_and_fixes_its_runs_priority(s: Setup) {
    // Parses, but the kind refuses it: a typed error naming the field; nothing stored.
    let error = s
        .runs
        .submit(Submission::new("ticket", json!({"level": "urgent"})))
        .await
        .unwrap_err();
    match &error {
        QueueError::BadInputs {
            kind,
            field,
            message,
        } => {
            assert_eq!((kind.as_str(), field.as_str()), ("ticket", "level"));
            assert!(message.contains("urgent"), "{message}");
        }
        other => panic!("expected BadInputs, got {other:?}"),
    }
    assert!(s.queue.list(&Default::default()).await.unwrap().is_empty());
    // `high` takes the kind's priority over the submission's; `low` keeps the submission's.
    let high = s
        .runs
        .submit(Submission::new("ticket", json!({"level": "high"})).priority(-5))
        .await
        .unwrap()
        .run;
    let low = s
        .runs
        .submit(Submission::new("ticket", json!({"level": "low"})).priority(3))
        .await
        .unwrap()
        .run;
    assert_eq!((high.priority, low.priority), (100, 3));
}

async fn announcements_are_run_events_recorded_before_the_run_finishes(s: Setup) {
    let submitted = s
        .runs
        .submit(Submission::new("herald", json!({})))
        .await
        .unwrap();
    let (stop, worker) = start_worker(&s, WorkerOptions::default());
    let run = tokio::time::timeout(Duration::from_secs(20), s.runs.wait(&submitted.run.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    stop.send(()).unwrap();
    worker.await.unwrap();
    let events = s.queue.events(0, Some(&run.id), 100).await.unwrap();
    let announced: Vec<(String, String, serde_json::Value)> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Announced { app_id, name, data } => {
                Some((app_id.clone(), name.clone(), data.clone()))
            }
            _ => None,
        })
        .collect();
    let expected: Vec<_> = (1..=3)
        .map(|n| (run.id.clone(), "count".to_owned(), json!({ "count": n })))
        .collect();
    assert_eq!(announced, expected, "one per shout step, in order");
    let position = |name: &str| events.iter().position(|e| e.kind.name() == name).unwrap();
    let last_announced = events
        .iter()
        .rposition(|e| e.kind.name() == "announced")
        .unwrap();
    assert!(position("claimed") < position("announced"));
    assert!(last_announced < position("finished"), "{events:?}");
    // The application had the run's announcer as a resource.
    let loaded = burr_core::persistence::Persister::load(&*s.persister, None, &run.id, None)
        .await
        .unwrap()
        .unwrap();
    assert!(loaded.state.get::<bool>("recording").unwrap());
}
