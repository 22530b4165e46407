//! Code versions on PostgreSQL: the tests of `burr-core/tests/versions.rs` (which run on
//! SQLite files) against a real PostgreSQL database (`TestServer`: a throwaway server,
//! or `BURR_TEST_PG_URL`). The record keeps the code it was built with; the same code
//! resumes; a renamed action is refused naming it with nothing stored changed; a
//! migration is applied once, recorded as a checkpoint, even across a crash right after
//! it; `check_resume` tells which applications the current code can resume.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use burr_core::actions::action_sync;
use burr_core::application::{check_resume, Verdict, MIGRATED_TO_KEY};
use burr_core::graph::GraphChange;
use burr_core::persistence::{AppRecords, Persister};
use burr_core::state::StateError;
use burr_core::{default, expr, ApplicationBuilder, Error, Inputs, State};
use burr_postgres::testing::TestServer;
use burr_postgres::PostgresPersister;

/// Version 1: `start -> count -> count (while count < 10) -> done`; `count` reads and
/// writes `count`. Version 2 renames `count` to `tally`.
fn app(version: &str, persister: Arc<PostgresPersister>) -> ApplicationBuilder {
    let counter = if version == "2" { "tally" } else { "count" };
    let start = action_sync("start", |s: State, _, _| {
        Ok::<_, StateError>(s.update("count", 0))
    })
    .writes(["count"]);
    let step = action_sync(counter, |s: State, _, _| s.increment("count", 1))
        .reads(["count"])
        .writes(["count"]);
    let done = action_sync("done", |s: State, _, _| Ok::<_, StateError>(s)).reads(["count"]);
    ApplicationBuilder::new()
        .with_actions([start, step, done])
        .with_transitions([
            ("start", counter, default()),
            (counter, counter, expr("count < 10")),
            (counter, "done", default()),
        ])
        .with_entrypoint("start")
        .with_app_id("app-1")
        .with_version(version)
        .with_state_persister(persister.clone())
        .initialize_from(persister)
}

/// A fresh database and a persister on it.
async fn fresh() -> (String, Arc<PostgresPersister>) {
    let url = TestServer::shared().fresh_database();
    let persister = Arc::new(PostgresPersister::connect(&url).await.unwrap());
    (url, persister)
}

/// A connection of its own (to look at or change rows around the persister).
async fn sql(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// Every row of the tables that hold applications, checkpoints and their values.
async fn dump(url: &str) -> Vec<String> {
    let client = sql(url).await;
    let mut out = Vec::new();
    for table in [
        "burr_apps",
        "burr_checkpoints",
        "burr_values",
        "burr_graphs",
    ] {
        let rows = client
            .query(&format!("SELECT t::text FROM {table} AS t ORDER BY 1"), &[])
            .await
            .unwrap();
        out.extend(
            rows.iter()
                .map(|row| format!("{table}: {}", row.get::<_, String>(0))),
        );
    }
    out
}

async fn run_steps(app: &mut burr_core::Application, n: usize) {
    for _ in 0..n {
        app.step(Inputs::new()).await.unwrap();
    }
}

#[tokio::test]
async fn the_record_keeps_the_code_and_the_same_code_resumes() {
    let (url, persister) = fresh().await;
    let mut first = app("1", persister.clone()).build().await.unwrap();
    run_steps(&mut first, 3).await;
    let fingerprint = first.code().fingerprint.clone();
    drop(first);
    let record = persister.app(None, "app-1").await.unwrap().unwrap();
    let code = record.code.expect("the record keeps the code");
    assert_eq!(code.version.as_deref(), Some("1"));
    assert_eq!(code.fingerprint, fingerprint);
    let graph = code.graph.expect("and the graph's description");
    assert_eq!(graph.fingerprint(), fingerprint);
    assert!(graph.action("count").is_some());
    // A listing has the version and fingerprint (not the graph).
    let listed = persister.list_apps().await.unwrap();
    let listed = listed[0].code.as_ref().unwrap();
    assert_eq!(
        (listed.version.as_deref(), listed.fingerprint.as_str()),
        (Some("1"), fingerprint.as_str())
    );

    let reopened = Arc::new(PostgresPersister::connect(&url).await.unwrap());
    let mut resumed = app("1", reopened).build().await.unwrap();
    assert_eq!(resumed.state().get::<i64>("count").unwrap(), 2);
    run_steps(&mut resumed, 1).await;
    assert_eq!(resumed.state().get::<i64>("count").unwrap(), 3);
}

#[tokio::test]
async fn a_renamed_action_is_refused_naming_the_rename_and_nothing_stored_changes() {
    let (url, persister) = fresh().await;
    let mut first = app("1", persister.clone()).build().await.unwrap();
    run_steps(&mut first, 3).await;
    drop(first);
    drop(persister);
    let before = dump(&url).await;

    let persister = Arc::new(PostgresPersister::connect(&url).await.unwrap());
    let error = match app("2", persister.clone()).build().await {
        Err(error) => error,
        Ok(_) => panic!("a resume under a renamed action must be refused"),
    };
    match &error {
        Error::CodeChanged {
            app_id,
            stored_version,
            current_version,
            changes,
        } => {
            assert_eq!(app_id, "app-1");
            assert_eq!(stored_version.as_deref(), Some("1"));
            assert_eq!(current_version.as_deref(), Some("2"));
            assert!(
                changes.contains(&GraphChange::ActionRenamed {
                    from: "count".into(),
                    to: "tally".into()
                }),
                "{changes:?}"
            );
        }
        other => panic!("expected CodeChanged, got {other:?}"),
    }
    assert!(
        error
            .to_string()
            .contains("action `count` was renamed to `tally`"),
        "{error}"
    );
    drop(persister);
    assert_eq!(
        dump(&url).await,
        before,
        "a refused resume changes nothing stored"
    );
}

/// Version 2 of the application: `count` counts in tens; a migration from version 1
/// scales the stored count (counting its applications in `applied`).
fn v2(persister: Arc<PostgresPersister>, applied: Arc<AtomicUsize>) -> ApplicationBuilder {
    let start = action_sync("start", |s: State, _, _| {
        Ok::<_, StateError>(s.update("count", 0))
    })
    .writes(["count"]);
    let count = action_sync("count", |s: State, _, _| s.increment("count", 10))
        .reads(["count"])
        .writes(["count"])
        .version("2");
    let done = action_sync("done", |s: State, _, _| Ok::<_, StateError>(s)).reads(["count"]);
    ApplicationBuilder::new()
        .with_actions([start, count, done])
        .with_transitions([
            ("start", "count", default()),
            ("count", "count", expr("count < 100")),
            ("count", "done", default()),
        ])
        .with_entrypoint("start")
        .with_app_id("app-1")
        .with_version("2")
        .with_state_persister(persister.clone())
        .initialize_from(persister)
        .with_migration("1", move |state: State| {
            applied.fetch_add(1, Ordering::SeqCst);
            let count: i64 = state.get("count")?;
            Ok::<_, StateError>(state.update("count", count * 10))
        })
}

#[tokio::test]
async fn a_migration_is_applied_once_and_recorded_as_a_checkpoint() {
    let (url, persister) = fresh().await;
    let mut first = app("1", persister.clone()).build().await.unwrap();
    run_steps(&mut first, 3).await; // start, count, count: count = 2, sequence id 2
    drop(first);
    let v1_fingerprint = persister
        .app(None, "app-1")
        .await
        .unwrap()
        .unwrap()
        .code
        .unwrap()
        .fingerprint;

    let applied = Arc::new(AtomicUsize::new(0));
    let resumed = v2(persister.clone(), applied.clone())
        .build()
        .await
        .unwrap();
    assert_eq!(applied.load(Ordering::SeqCst), 1);
    assert_eq!(resumed.state().get::<i64>("count").unwrap(), 20);
    assert_eq!(
        resumed.sequence_id(),
        Some(3),
        "the migration is a checkpoint of its own"
    );
    drop(resumed);
    let loaded = Persister::load(&*persister, None, "app-1", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((loaded.sequence_id, loaded.position.as_str()), (3, "count"));
    assert_eq!(loaded.state.get::<i64>("count").unwrap(), 20);
    let record = persister.app(None, "app-1").await.unwrap().unwrap();
    assert_eq!(record.code.unwrap().version.as_deref(), Some("2"));
    drop(persister);

    // The process dies after the migration's checkpoint but before its record is
    // updated: the record is put back under version 1 as it would have stayed.
    sql(&url)
        .await
        .execute(
            "UPDATE burr_apps SET code_version = '1', fingerprint = $1 WHERE app_id = 'app-1'",
            &[&v1_fingerprint],
        )
        .await
        .unwrap();
    let reopened = Arc::new(PostgresPersister::connect(&url).await.unwrap());
    let mut again = v2(reopened, applied.clone()).build().await.unwrap();
    assert_eq!(applied.load(Ordering::SeqCst), 1, "never applied twice");
    assert_eq!(again.state().get::<i64>("count").unwrap(), 20);
    assert!(again.state().get_value(MIGRATED_TO_KEY).is_some());
    run_steps(&mut again, 1).await;
    assert_eq!(again.state().get::<i64>("count").unwrap(), 30);
    assert_eq!(again.sequence_id(), Some(4));
}

#[tokio::test]
async fn check_tells_which_stored_applications_the_current_code_can_resume() {
    let (_url, persister) = fresh().await;
    for id in ["a", "b", "c"] {
        let mut started = app("1", persister.clone())
            .with_app_id(id)
            .build()
            .await
            .unwrap();
        if id == "c" {
            started
                .run(burr_core::RunOptions::new().halt_after(["done"]))
                .await
                .unwrap();
        } else {
            run_steps(&mut started, 3).await;
        }
    }
    let v1 = app("1", persister.clone()).current_code().unwrap();
    let v2 = app("2", persister.clone()).current_code().unwrap();
    let v2_migrating = app("2", persister.clone())
        .with_migration("1", Ok::<State, StateError>)
        .current_code()
        .unwrap();
    let records = persister.list_apps().await.unwrap();
    assert_eq!(records.len(), 3);
    let record = |id: &str| records.iter().find(|r| r.app_id == id).unwrap().clone();

    let a = check_resume(&*persister, &record("a"), Ok(&v1))
        .await
        .unwrap();
    assert_eq!(a.verdict, Verdict::SameCode);
    assert!(a.can_resume && !a.finished);
    assert_eq!(
        (a.sequence_id, a.position.as_deref()),
        (Some(2), Some("count"))
    );
    let b = check_resume(&*persister, &record("b"), Ok(&v2))
        .await
        .unwrap();
    assert!(!b.can_resume);
    assert_eq!(b.stored_version.as_deref(), Some("1"));
    assert!(
        b.verdict
            .explain()
            .contains("action `count` was renamed to `tally`"),
        "{}",
        b.verdict.explain()
    );
    let b = check_resume(&*persister, &record("b"), Ok(&v2_migrating))
        .await
        .unwrap();
    assert_eq!(
        b.verdict,
        Verdict::Migration {
            from_version: "1".into()
        }
    );
    assert!(b.can_resume);
    let c = check_resume(&*persister, &record("c"), Ok(&v2))
        .await
        .unwrap();
    assert!(c.finished, "{c:?}");
}

#[tokio::test]
async fn a_version_1_database_is_migrated_to_keep_code() {
    // A database made by a build of schema version 1 (no code columns) gets them on
    // connect, its applications kept (without code), and records code from then on.
    let url = TestServer::shared().fresh_database();
    let client = sql(&url).await;
    client
        .batch_execute(
            "CREATE TABLE burr_meta (key text PRIMARY KEY, value text NOT NULL); \
             INSERT INTO burr_meta VALUES ('schema_version', '1'); \
             CREATE TABLE burr_apps (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
                 partition_key text COLLATE \"C\" NOT NULL, app_id text COLLATE \"C\" NOT NULL, \
                 created_at_us bigint NOT NULL, fork_parent text, spawning_parent text, \
                 UNIQUE (partition_key, app_id)); \
             INSERT INTO burr_apps (partition_key, app_id, created_at_us) VALUES ('', 'old', 1);",
        )
        .await
        .unwrap();
    // The other version-1 tables, as that build made them.
    client
        .batch_execute(
            "CREATE TABLE burr_checkpoints (app bigint NOT NULL, sequence_id bigint NOT NULL, \
                 attempt bigint NOT NULL, position text NOT NULL, status text NOT NULL, \
                 prior_step text, created_at_us bigint NOT NULL, changed_keys text NOT NULL, \
                 error text, inline_values text, PRIMARY KEY (app, sequence_id, attempt)); \
             CREATE TABLE burr_values (app bigint NOT NULL, key text COLLATE \"C\" NOT NULL, \
                 sequence_id bigint NOT NULL, value text, PRIMARY KEY (app, key, sequence_id)); \
             CREATE TABLE burr_leases (partition_key text COLLATE \"C\" NOT NULL, \
                 app_id text COLLATE \"C\" NOT NULL, holder text NOT NULL, attempt bigint NOT NULL, \
                 host text NOT NULL, machine text NOT NULL, pid bigint NOT NULL, pid_started bigint, \
                 acquired_at_us bigint NOT NULL, expires_at_us bigint NOT NULL, \
                 PRIMARY KEY (partition_key, app_id));",
        )
        .await
        .unwrap();
    let persister = Arc::new(PostgresPersister::connect(&url).await.unwrap());
    let old = persister.app(None, "old").await.unwrap().unwrap();
    assert_eq!((old.created_at_us, old.code), (1, None));
    let mut first = app("1", persister.clone()).build().await.unwrap();
    run_steps(&mut first, 1).await;
    let record = persister.app(None, "app-1").await.unwrap().unwrap();
    assert_eq!(record.code.unwrap().version.as_deref(), Some("1"));
    let version: String = client
        .query_one(
            "SELECT value FROM burr_meta WHERE key = 'schema_version'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(version, burr_postgres::SCHEMA_VERSION.to_string());
}
