//! Code versions on PostgreSQL: the application record keeps the code it was built with,
//! so a resume under changed code is refused naming what changed, with nothing stored
//! changed, and a registered migration is applied once (as on SQLite).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use burr_core::actions::action_sync;
use burr_core::graph::GraphChange;
use burr_core::persistence::{AppRecords, Persister};
use burr_core::state::StateError;
use burr_core::{default, expr, ApplicationBuilder, Error, Inputs, State};
use burr_postgres::testing::TestServer;
use burr_postgres::PostgresPersister;

/// Version 1: `start -> count (while count < 10) -> done`; version 2 renames `count` to
/// `tally`; version 3 keeps the names and bumps `count`'s own version.
fn app(version: &str, persister: Arc<PostgresPersister>) -> ApplicationBuilder {
    let counter = if version == "2" { "tally" } else { "count" };
    let start = action_sync("start", |s: State, _, _| {
        Ok::<_, StateError>(s.update("count", 0))
    })
    .writes(["count"]);
    let step = action_sync(counter, |s: State, _, _| s.increment("count", 1))
        .reads(["count"])
        .writes(["count"])
        .version(if version == "3" { "2" } else { "1" });
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

async fn steps(app: &mut burr_core::Application, n: usize) {
    for _ in 0..n {
        app.step(Inputs::new()).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_graph_is_refused_by_name_and_a_migration_is_applied_once() {
    let url = TestServer::shared().fresh_database();
    let persister = Arc::new(PostgresPersister::connect(&url).await.unwrap());
    let mut first = app("1", persister.clone()).build().await.unwrap();
    steps(&mut first, 3).await;
    drop(first);
    let record = persister.app(None, "app-1").await.unwrap().unwrap();
    let code = record.code.expect("the record keeps the code");
    assert_eq!(code.version.as_deref(), Some("1"));
    assert_eq!(
        code.fingerprint,
        app("1", persister.clone())
            .current_code()
            .unwrap()
            .code
            .fingerprint
    );
    assert!(code.graph.is_some(), "the graph's description is kept");
    let listed = persister.list_apps().await.unwrap();
    assert_eq!(
        listed[0].code.as_ref().unwrap().fingerprint,
        code.fingerprint
    );

    // The same code resumes.
    let mut same = app("1", persister.clone()).build().await.unwrap();
    assert_eq!(same.state().get::<i64>("count").unwrap(), 2);
    steps(&mut same, 1).await;
    drop(same);
    let before = persister.load(None, "app-1", None).await.unwrap().unwrap();

    // A renamed action is refused, naming the rename; nothing stored changes.
    let error = app("2", persister.clone()).build().await.err().unwrap();
    match &error {
        Error::CodeChanged { changes, .. } => assert!(
            changes.iter().any(|c| matches!(
                c,
                GraphChange::ActionRenamed { from, to } if from == "count" && to == "tally"
            )),
            "{changes:?}"
        ),
        other => panic!("expected CodeChanged, got {other}"),
    }
    let after = persister.load(None, "app-1", None).await.unwrap().unwrap();
    assert_eq!(before, after);
    let record = persister.app(None, "app-1").await.unwrap().unwrap();
    assert_eq!(record.code.unwrap().version.as_deref(), Some("1"));

    // Version 3 changed `count` (its version): refused without a migration, resumed
    // with one from version 1, which is applied once.
    let error = app("3", persister.clone()).build().await.err().unwrap();
    assert!(matches!(error, Error::CodeChanged { .. }), "{error}");
    let applied = Arc::new(AtomicUsize::new(0));
    let migrating = |applied: Arc<AtomicUsize>| {
        app("3", persister.clone()).with_migration("1", move |state: State| {
            applied.fetch_add(1, Ordering::SeqCst);
            Ok::<State, StateError>(state)
        })
    };
    let mut migrated = migrating(applied.clone()).build().await.unwrap();
    assert_eq!(applied.load(Ordering::SeqCst), 1);
    steps(&mut migrated, 1).await;
    drop(migrated);
    let again = migrating(applied.clone()).build().await.unwrap();
    assert_eq!(applied.load(Ordering::SeqCst), 1, "never applied twice");
    assert_eq!(again.code().version.as_deref(), Some("3"));
    let record = persister.app(None, "app-1").await.unwrap().unwrap();
    assert_eq!(record.code.unwrap().version.as_deref(), Some("3"));
}
