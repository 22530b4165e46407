//! What only the PostgreSQL run queue has: wake-ups across handles by LISTEN/NOTIFY,
//! its schema version, errors that name the database, and the CLI's verbs on a
//! `postgres://` URL. (The queue's contract, shared with SQLite, is in `runs.rs`.)

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use burr_postgres::testing::{run_sql, TestServer};
use burr_server::{Claim, EventKind, PgRunQueue, QueueError, Registry, RunQueue, Runs, Submission};
use burr_tests::runs_kinds::Steps;
use serde_json::json;

const APP: &str = env!("CARGO_BIN_EXE_runs-app");

fn runs(queue: &PgRunQueue) -> Runs {
    Runs::new(
        Arc::new(queue.clone()),
        Arc::new(Registry::new().register(Steps::default())),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_in_one_handle_wakes_another_and_a_cancel_reaches_its_worker() {
    let url = TestServer::shared().fresh_database();
    let (a, b) = (
        PgRunQueue::connect(&url).await.unwrap(),
        PgRunQueue::connect(&url).await.unwrap(),
    );
    let mut changes = b.changes();
    changes.borrow_and_update();
    let mut events = b.subscribe();
    let run = runs(&a)
        .submit(Submission::new("steps", json!({"steps": 1})))
        .await
        .unwrap()
        .run;
    tokio::time::timeout(Duration::from_secs(5), changes.changed())
        .await
        .expect("the other handle is woken by NOTIFY")
        .unwrap();
    let claimed = b
        .claim(&Claim {
            worker: "w".into(),
            queues: vec!["default".into()],
            kinds: vec![("steps".into(), 1)],
            limit: 1,
            lease_ttl_us: 60_000_000,
        })
        .await
        .unwrap();
    assert_eq!(claimed[0].id, run.id);
    a.cancel(&run.id).await.unwrap();
    let asked = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let event = events.recv().await.unwrap();
            if matches!(event.kind, EventKind::CancelRequested) {
                return event;
            }
        }
    })
    .await
    .expect("the cancel reaches the other handle's subscribers");
    assert_eq!(asked.run_id, run.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_queue_of_a_newer_version_is_refused_by_name() {
    let url = TestServer::shared().fresh_database();
    drop(PgRunQueue::connect(&url).await.unwrap());
    run_sql(
        &url,
        "UPDATE burr_runs_meta SET value = '99' WHERE key = 'schema_version'",
    )
    .unwrap();
    let error = PgRunQueue::connect(&url).await.unwrap_err();
    assert!(
        matches!(
            error,
            QueueError::TooNew {
                found: 99,
                known: 2,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("burr_test_"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_is_named_without_its_password() {
    let error = PgRunQueue::connect("postgres://burr:secret@127.0.0.1:1/runs?connect_timeout=2")
        .await
        .unwrap_err();
    let text = burr_server::cli::CliError::from(error).to_string();
    assert!(text.contains("127.0.0.1:1/runs"), "{text}");
    assert!(!text.contains("secret"), "{text}");
}

#[test]
fn the_cli_verbs_work_on_a_postgres_url() {
    let url = TestServer::shared().fresh_database();
    let cli = |args: &[&str]| {
        Command::new(APP)
            .args(["--db", &url])
            .args(args)
            .output()
            .unwrap()
    };
    let mut worker = Command::new(APP)
        .args(["--db", &url, "worker", "--lease-ttl", "2s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = cli(&[
        "submit",
        "steps",
        "--inputs",
        r#"{"steps": 2}"#,
        "--wait",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(run["status"], "succeeded");
    let id = run["id"].as_str().unwrap();
    let out = cli(&["show", id, "--json"]);
    assert!(out.status.success());
    let out = cli(&["runs", "--json"]);
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.len(), 1);
    let out = cli(&["watch", id, "--json"]);
    assert!(String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap()
        .contains("\"finished\""));
    let out = cli(&["backlog", "--json"]);
    assert!(out.status.success());
    let out = cli(&["explain", id]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("succeeded"));
    let out = cli(&[
        "schedules",
        "add",
        "nightly",
        "--kind",
        "steps",
        "--inputs",
        r#"{"steps": 1}"#,
        "--cron",
        "0 3 * * *",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&["schedules", "--json"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("nightly"));
    let out = cli(&["cancel", id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already succeeded"));
    // (`serve` on PostgreSQL: tests/tests/http_postgres.rs.)
    Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .unwrap();
    assert!(worker.wait().unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_run_is_taken_back_at_once_not_after_its_lease() {
    use burr_server::RunStatus;
    use burr_tests::processes::{sigterm, until_status, worker_with_ttl};
    let url = TestServer::shared().fresh_database();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let queue = PgRunQueue::connect(&url).await.unwrap();
    let run = runs(&queue)
        .submit(Submission::new(
            "steps",
            json!({"steps": 2, "sleep_ms": 1500}),
        ))
        .await
        .unwrap()
        .run;
    // A lease of a minute: without knowing the worker is gone, the run would wait that.
    let mut first = worker_with_ttl(APP, &url, &log, "60s", &[]);
    until_status(&queue, &run.id, RunStatus::Running, Duration::from_secs(20)).await;
    first.kill().unwrap();
    first.wait().unwrap();
    let mut second = worker_with_ttl(APP, &url, &log, "60s", &[]);
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
async fn a_queue_operation_blocked_by_a_lock_fails_with_the_statement_timeout() {
    use burr_core::persistence::PersistenceError;
    use burr_postgres::PostgresOptions;
    let url = TestServer::shared().fresh_database();
    let queue = PgRunQueue::connect_with(
        &url,
        PostgresOptions::new().statement_timeout(Duration::from_millis(500)),
    )
    .await
    .unwrap();
    let runs = runs(&queue);
    let queued = runs
        .submit(Submission::new("steps", json!({"steps": 1})))
        .await
        .unwrap()
        .run;
    let holder_url = url.clone();
    let holder = std::thread::spawn(move || {
        run_sql(
            &holder_url,
            "BEGIN; LOCK TABLE burr_runs IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(6); COMMIT;",
        )
    });
    // Give the other session time to take its lock.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let claim = Claim {
        worker: "w".into(),
        queues: vec!["default".into()],
        kinds: vec![("steps".into(), 1)],
        limit: 1,
        lease_ttl_us: 60_000_000,
    };
    let started = std::time::Instant::now();
    let blocked = [
        (
            "submit a run",
            runs.submit(Submission::new("steps", json!({"steps": 2})))
                .await
                .map(|_| ()),
        ),
        ("claim runs", queue.claim(&claim).await.map(|_| ())),
        ("read a run", queue.get(&queued.id).await.map(|_| ())),
    ];
    let took = started.elapsed();
    for (operation, outcome) in blocked {
        let error = outcome.expect_err("the lock is held for 6 s: the operation cannot succeed");
        let text = format!("{error}: {:?}", std::error::Error::source(&error));
        assert!(
            matches!(
                &error,
                QueueError::Persistence(PersistenceError::Database { operation: op, .. })
                    if *op == operation
            ),
            "{operation}: {text}"
        );
        assert!(text.contains("statement timeout"), "{operation}: {text}");
        assert!(text.contains("burr_test_"), "names the database: {text}");
    }
    assert!(
        took < Duration::from_secs(4),
        "three operations, each stopped after 500 ms, took {took:?}"
    );
    holder.join().unwrap().unwrap();
    // Nothing was half-applied, and the queue's connections still work.
    let all = queue.list(&Default::default()).await.unwrap();
    assert_eq!(
        all.iter().map(|r| &r.id).collect::<Vec<_>>(),
        [&queued.id],
        "the timed-out submit left no run"
    );
    assert_eq!(queue.claim(&claim).await.unwrap()[0].id, queued.id);
}
