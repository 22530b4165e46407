//! Bad input and faults: malformed URLs, refused connections, unknown databases, schemas
//! from the future, ten processes migrating at once, backends killed mid-run, and a
//! runner whose lease was taken over.

use std::sync::Arc;
use std::time::Duration;

use burr_core::persistence::{
    Checkpoint, Leases, ManualClock, PersistenceError, Persister, StepStatus,
};
use burr_core::state::State;
use burr_core::testing::step;
use burr_postgres::testing::{run_sql, TestServer};
use burr_postgres::{migrate, PostgresOptions, PostgresPersister, SCHEMA_VERSION};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[tokio::test]
async fn a_malformed_url_is_an_open_error_without_its_password() {
    let error = PostgresPersister::connect("postgres://burr:hunter2@localhost:notaport/db")
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, PersistenceError::Open { .. }), "{text}");
    assert!(text.contains("localhost:notaport/db"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    let error = PostgresPersister::connect("not a url at all")
        .await
        .unwrap_err();
    assert!(matches!(error, PersistenceError::Open { .. }), "{error}");
}

#[tokio::test]
async fn a_refused_connection_is_an_open_error_naming_the_database() {
    let port = free_port();
    let url = format!("postgres://burr:hunter2@127.0.0.1:{port}/runs");
    let error = PostgresPersister::connect(&url).await.unwrap_err();
    let text = format!("{error}: {:?}", std::error::Error::source(&error));
    match &error {
        PersistenceError::Open { path, .. } => {
            assert_eq!(
                path.display().to_string(),
                format!("postgres://burr@127.0.0.1:{port}/runs")
            );
        }
        other => panic!("expected Open, got {other}"),
    }
    assert!(!text.contains("hunter2"), "{text}");
    let error = migrate(&url).await.unwrap_err();
    assert!(matches!(error, PersistenceError::Open { .. }), "{error}");
}

#[tokio::test]
async fn an_unknown_database_is_an_open_error() {
    let server = TestServer::shared();
    let url = server.fresh_database();
    let missing = format!("{}_missing", url);
    let error = PostgresPersister::connect(&missing).await.unwrap_err();
    assert!(
        matches!(&error, PersistenceError::Open { path, .. } if path.display().to_string().ends_with("_missing")),
        "{error}"
    );
}

#[tokio::test]
async fn a_database_of_a_newer_schema_is_refused() {
    let url = TestServer::shared().fresh_database();
    assert_eq!(migrate(&url).await.unwrap(), 0, "a new database had none");
    assert_eq!(migrate(&url).await.unwrap(), SCHEMA_VERSION);
    run_sql(
        &url,
        "UPDATE burr_meta SET value = '99' WHERE key = 'schema_version'",
    )
    .unwrap();
    let error = PostgresPersister::connect(&url).await.unwrap_err();
    match error {
        PersistenceError::SchemaTooNew {
            found, supported, ..
        } => assert_eq!((found, supported), (99, SCHEMA_VERSION)),
        other => panic!("expected SchemaTooNew, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_processes_connecting_at_once_migrate_once() {
    let url = TestServer::shared().fresh_database();
    // Ten connections migrating at once: as many processes starting would.
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PostgresPersister::connect(&url).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().expect("every connect succeeds");
    }
    let persister = PostgresPersister::connect(&url).await.unwrap();
    let s = State::new().update("n", 1);
    persister
        .save(&step("app", 0, &State::new(), &s))
        .await
        .unwrap();
    assert_eq!(migrate(&url).await.unwrap(), SCHEMA_VERSION);
}

/// The state after step `seq` of the killed-backend test: a counter, and at every fifth
/// step a value too large to keep inline (so the checkpoint writes several rows).
fn state_after(seq: u64) -> State {
    let mut state = State::new().update("count", seq);
    let big_at = seq - seq % 5;
    state = state.update("big", format!("{big_at}:{}", "x".repeat(4_000)));
    state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_killed_mid_run_gives_typed_errors_and_no_half_checkpoint() {
    let server = TestServer::shared();
    let url = server.fresh_database();
    let database = url.rsplit('/').next().unwrap().to_owned();
    let persister = Arc::new(PostgresPersister::connect(&url).await.unwrap());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Kill every backend of the database but the killer's, again and again.
    let killer = {
        let (admin, stop) = (server.admin_url(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut kills = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let sql = format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = '{database}' AND pid <> pg_backend_pid()"
                );
                if run_sql(&admin, &sql).is_ok() {
                    kills += 1;
                }
                std::thread::sleep(Duration::from_millis(7));
            }
            kills
        })
    };
    let apps = 4;
    let steps = 60u64;
    let mut tasks = Vec::new();
    for a in 0..apps {
        let persister = Arc::clone(&persister);
        tasks.push(tokio::spawn(async move {
            let app = format!("app-{a}");
            let (mut errors, mut conflicts) = (0, 0);
            let mut before = State::new();
            for seq in 0..steps {
                let after = state_after(seq);
                let checkpoint = step(&app, seq, &before, &after);
                let mut tries = 0;
                loop {
                    match persister.save(&checkpoint).await {
                        Ok(()) => break,
                        // Stored by a commit whose answer was lost: retrying finds it.
                        Err(PersistenceError::Conflict { .. }) => {
                            conflicts += 1;
                            break;
                        }
                        Err(PersistenceError::Database {
                            database,
                            operation,
                            ..
                        }) => {
                            assert!(database.starts_with("postgres://"), "{database}");
                            assert_eq!(operation, "save");
                            errors += 1;
                            tries += 1;
                            assert!(tries < 200, "the save of {app} at {seq} never got through");
                            tokio::time::sleep(Duration::from_millis(2)).await;
                        }
                        Err(other) => panic!("an untyped failure: {other}"),
                    }
                }
                before = after;
            }
            (errors, conflicts)
        }));
    }
    let mut errors = 0;
    for task in tasks {
        let (e, _) = task.await.expect("a writer panicked");
        errors += e;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let kills = killer.join().unwrap();
    assert!(kills > 10, "the killer ran {kills} times");
    // Most losses are absorbed by the persister's own retry on another connection; what
    // is left surfaces as a typed error.
    eprintln!("{errors} saves failed with a typed error and were retried");

    // A new process: every checkpoint is there, whole.
    let reconnected = PostgresPersister::connect(&url).await.unwrap();
    for a in 0..apps {
        let app = format!("app-{a}");
        for seq in 0..steps {
            let loaded = reconnected
                .load(None, &app, Some(seq))
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{app} at {seq} is missing"));
            assert_eq!(loaded.state, state_after(seq), "{app} at {seq}");
            assert_eq!(loaded.status, StepStatus::Completed);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runner_whose_lease_was_taken_over_is_refused() {
    let url = TestServer::shared().fresh_database();
    let clock = Arc::new(ManualClock::new());
    let stale = PostgresPersister::connect(&url).await.unwrap();
    let later = PostgresPersister::connect_with(
        &url,
        PostgresOptions::new().clock(Arc::clone(&clock) as _),
    )
    .await
    .unwrap();
    let ttl = Duration::from_secs(30);
    let first = stale.acquire_lease(None, "app", ttl).await.unwrap();
    let s0 = State::new().update("n", 0);
    stale
        .save(&step("app", 0, &State::new(), &s0))
        .await
        .unwrap();
    // The first runner stalls past its lease's time to live: another takes over.
    assert!(matches!(
        later.acquire_lease(None, "app", ttl).await,
        Err(PersistenceError::AppLocked { .. })
    ));
    clock.advance(Duration::from_secs(60));
    let second = later.acquire_lease(None, "app", ttl).await.unwrap();
    later.load(None, "app", None).await.unwrap();
    let s1 = s0.update("n", 1);
    later.save(&step("app", 1, &s0, &s1)).await.unwrap();
    // The stale runner wakes up and saves: refused, whatever its own clock says.
    let s1_stale = s0.update("n", 100);
    let refused = stale
        .save(&step("app", 1, &s0, &s1_stale))
        .await
        .unwrap_err();
    match &refused {
        PersistenceError::LeaseLost { app_id, holder } => {
            assert_eq!((app_id.as_str(), holder), ("app", &second.holder));
        }
        other => panic!("expected LeaseLost, got {other}"),
    }
    let s2_stale = s1_stale.update("n", 101);
    let refused = stale
        .save(&Checkpoint {
            attempt: 1,
            ..step("app", 2, &s1_stale, &s2_stale)
        })
        .await
        .unwrap_err();
    assert!(
        matches!(refused, PersistenceError::LeaseLost { .. }),
        "{refused}"
    );
    let loaded = later.load(None, "app", None).await.unwrap().unwrap();
    assert_eq!((loaded.sequence_id, loaded.state), (1, s1));
    // Its lease given back, the stale runner's release leaves the new holder's alone.
    stale.release_lease(&first).unwrap();
    assert_eq!(
        later.live_lease_holder(None, "app").await.unwrap(),
        Some(second.holder.clone())
    );
    later.release_lease_async(&second).await.unwrap();
    assert_eq!(later.live_lease_holder(None, "app").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_lives_while_its_holder_saves_nothing_and_frees_when_it_goes() {
    let url = TestServer::shared().fresh_database();
    let holder = PostgresPersister::connect(&url).await.unwrap();
    let other = PostgresPersister::connect(&url).await.unwrap();
    let ttl = Duration::from_millis(600);
    let lease = holder.acquire_lease(None, "idle", ttl).await.unwrap();
    // Three times its time to live without a save: renewed in the background.
    tokio::time::sleep(ttl * 3).await;
    assert_eq!(
        other.live_lease_holder(None, "idle").await.unwrap(),
        Some(lease.holder.clone())
    );
    assert!(matches!(
        other.acquire_lease(None, "idle", ttl).await,
        Err(PersistenceError::AppLocked { .. })
    ));
    // Its holder gone (dropped without giving it back): free once it expires.
    drop(holder);
    tokio::time::sleep(ttl * 2).await;
    other.acquire_lease(None, "idle", ttl).await.unwrap();
}

#[tokio::test]
async fn a_read_only_database_refuses_saves_with_a_typed_error_and_still_loads() {
    let server = TestServer::shared();
    let url = server.fresh_database();
    let name = url.rsplit('/').next().unwrap().to_owned();
    let writer = PostgresPersister::connect(&url).await.unwrap();
    let s0 = State::new().update("n", 0);
    writer
        .save(&step("app", 0, &State::new(), &s0))
        .await
        .unwrap();
    // As a hot standby (or a database set read-only) would be for new sessions.
    run_sql(
        &server.admin_url(),
        &format!("ALTER DATABASE {name} SET default_transaction_read_only = on"),
    )
    .unwrap();
    let reader = PostgresPersister::connect(&url).await.unwrap();
    for app in ["app", "new-app"] {
        let error = reader
            .save(&step(app, 1, &s0, &s0.update("n", 1)))
            .await
            .unwrap_err();
        match &error {
            PersistenceError::Database {
                database,
                operation,
                source,
            } => {
                assert!(database.ends_with(&format!("/{name}")), "{database}");
                assert_eq!(*operation, "save");
                assert!(
                    format!("{source:?}").contains("read-only transaction"),
                    "{source:?}"
                );
            }
            other => panic!("expected a Database error, got {other}"),
        }
    }
    let loaded = reader.load(None, "app", None).await.unwrap().unwrap();
    assert_eq!((loaded.sequence_id, loaded.state), (0, s0));
}

#[tokio::test]
async fn a_statement_blocked_by_another_connections_lock_is_an_error_not_a_hang() {
    let server = TestServer::shared();
    let url = server.fresh_database();
    let persister = PostgresPersister::connect_with(
        &url,
        PostgresOptions::new().statement_timeout(Duration::from_millis(500)),
    )
    .await
    .unwrap();
    let holder_url = url.clone();
    let holder = std::thread::spawn(move || {
        run_sql(
            &holder_url,
            "BEGIN; LOCK TABLE burr_apps, burr_checkpoints, burr_values IN ACCESS EXCLUSIVE MODE; \
             SELECT pg_sleep(8); COMMIT;",
        )
    });
    // Give the other connection time to take its lock.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let started = std::time::Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(6), persister.load(None, "app", None))
        .await
        .expect("a load blocked by a lock must fail, not hang");
    let error = outcome.expect_err("the lock is held for 8 s: the load cannot succeed");
    let text = format!("{error}: {:?}", std::error::Error::source(&error));
    assert!(
        matches!(
            error,
            PersistenceError::Database {
                operation: "load",
                ..
            }
        ),
        "{text}"
    );
    assert!(text.contains("statement timeout"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(5), "{text}");
    holder.join().unwrap().unwrap();
}
