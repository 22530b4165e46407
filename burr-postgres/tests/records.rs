//! New applications' records are batched: the records of applications that start at once
//! (a map step's children) share statements; a record the database refuses fails that
//! application alone; an application recorded but never checkpointed (its runner died
//! between the two) runs from its start when it is resumed.

use std::sync::Arc;
use std::time::Duration;

use burr_core::actions::action_sync;
use burr_core::graph::GraphDescription;
use burr_core::ids::ParentPointer;
use burr_core::persistence::{AppRecord, AppRecords, CodeVersion, PersistenceError, Persister};
use burr_core::{ApplicationBuilder, Inputs, State};
use burr_postgres::testing::TestServer;
use burr_postgres::PostgresPersister;
mod common;
use common::transactions;

/// The record of child `i` of `parent` (sequence 3), built with the code of fingerprint `fingerprint`.
fn child(i: usize, fingerprint: &str) -> AppRecord {
    let graph = GraphDescription {
        entrypoint: "only".to_owned(),
        actions: Vec::new(),
        transitions: Vec::new(),
    };
    AppRecord {
        partition_key: None,
        app_id: format!("parent/{i}"),
        created_at_us: 1_000 + i as i64,
        fork_parent: None,
        spawning_parent: Some(ParentPointer {
            app_id: "parent".to_owned(),
            partition_key: None,
            sequence_id: Some(3),
        }),
        code: Some(CodeVersion {
            version: Some("v1".to_owned()),
            fingerprint: fingerprint.to_owned(),
            graph: Some(graph),
        }),
    }
}

/// Record every one of `records` at once, each from a task of its own.
async fn record_all(
    persister: &Arc<PostgresPersister>,
    records: Vec<AppRecord>,
) -> Vec<Result<(), PersistenceError>> {
    let tasks: Vec<_> = records
        .into_iter()
        .map(|record| {
            let persister = Arc::clone(persister);
            tokio::spawn(async move { persister.register_app(&record).await })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_applications_recorded_at_once_share_statements() {
    let url = TestServer::shared().fresh_database();
    let persister = Arc::new(PostgresPersister::connect(&url).await.unwrap());
    let before = transactions(&url).await;
    let n = 200;
    let results = record_all(&persister, (0..n).map(|i| child(i, "fp-a")).collect()).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    for i in [0, 77, n - 1] {
        let stored = persister
            .app(None, &format!("parent/{i}"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.created_at_us, 1_000 + i as i64);
        assert_eq!(stored.spawning_parent.unwrap().sequence_id, Some(3));
        let code = stored.code.unwrap();
        assert_eq!(
            (code.version.as_deref(), code.fingerprint.as_str()),
            (Some("v1"), "fp-a")
        );
        assert!(code.graph.is_some(), "the graph's description is stored");
    }
    let ids = persister.list_apps_under("parent").await.unwrap();
    assert_eq!(ids.len(), n);
    // Its backends exit, and report their counts.
    drop(persister);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let used = transactions(&url).await - before;
    eprintln!("{n} records in {used} transactions");
    // One statement each would be 200 (plus the reads above).
    assert!(
        used * 4 <= n as i64,
        "{n} records took {used} transactions: they were not batched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_the_database_refuses_fails_that_application_only() {
    let url = TestServer::shared().fresh_database();
    let persister = Arc::new(PostgresPersister::connect(&url).await.unwrap());
    let mut records: Vec<AppRecord> = (0..40).map(|i| child(i, "fp-b")).collect();
    // PostgreSQL's text cannot hold a NUL: the server refuses this record's row.
    records[17].app_id = "parent/bad\0id".to_owned();
    let results = record_all(&persister, records).await;
    for (i, result) in results.iter().enumerate() {
        match (i, result) {
            (17, Err(PersistenceError::Database { .. })) => {}
            (17, other) => panic!("the bad record gave {other:?}"),
            (_, Ok(())) => {}
            (i, Err(error)) => panic!("record {i} failed with the bad one: {error}"),
        }
    }
    assert_eq!(persister.list_apps_under("parent").await.unwrap().len(), 39);
    // The good ones are known: their first saves follow their records.
    persister
        .save(&burr_core::testing::step(
            "parent/3",
            0,
            &State::new(),
            &State::new().update("x", 1),
        ))
        .await
        .unwrap();
    let loaded = persister
        .load(None, "parent/3", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(loaded.state.get::<i64>("x").unwrap(), 1);
}

/// `count` then `done`, resumable from `persister`.
fn counter(persister: Arc<PostgresPersister>, app_id: &str) -> ApplicationBuilder {
    let count = action_sync("count", |s: State, _, _| s.increment("n", 1))
        .reads(["n"])
        .writes(["n"]);
    let done =
        action_sync("done", |s: State, _, _| Ok::<_, burr_core::ActionError>(s)).reads(["n"]);
    ApplicationBuilder::new()
        .with_actions([count, done])
        .with_transitions([("count", "done", burr_core::default())])
        .with_entrypoint("count")
        .with_state(State::new().update("n", 0))
        .with_app_id(app_id)
        .with_state_persister(persister.clone())
        .initialize_from(persister)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_recorded_and_never_checkpointed_resumes_from_its_start() {
    let url = TestServer::shared().fresh_database();
    // The first runner records its applications, then dies before any checkpoint.
    let first = Arc::new(PostgresPersister::connect(&url).await.unwrap());
    let results = record_all(&first, (0..20).map(|i| child(i, "fp-c")).collect()).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    drop(first);

    // Another runner resumes them: nothing to load, so each starts from its entrypoint,
    // runs once, and its record stays one row with its spawning parent.
    let second = Arc::new(PostgresPersister::connect(&url).await.unwrap());
    for i in [0, 19] {
        let app_id = format!("parent/{i}");
        let mut app = counter(Arc::clone(&second), &app_id).build().await.unwrap();
        assert_eq!(app.state().get::<i64>("n").unwrap(), 0);
        app.step(Inputs::new()).await.unwrap().unwrap();
        app.step(Inputs::new()).await.unwrap().unwrap();
        let loaded = second.load(None, &app_id, None).await.unwrap().unwrap();
        assert_eq!(
            (
                loaded.position.as_str(),
                loaded.state.get::<i64>("n").unwrap()
            ),
            ("done", 1)
        );
        let record = second.app(None, &app_id).await.unwrap().unwrap();
        assert_eq!(record.created_at_us, 1_000 + i as i64, "recorded once");
        assert_eq!(record.spawning_parent.unwrap().app_id, "parent");
    }
    assert_eq!(second.list_apps_under("parent").await.unwrap().len(), 20);
}
