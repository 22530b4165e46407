//! Code versions: graph fingerprints stored in the application record, the resume guard
//! (same code resumes; changed code is refused naming what changed, with nothing stored
//! changed; a registered migration is applied once), on real SQLite files.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use burr_core::actions::action_sync;
use burr_core::application::MIGRATED_TO_KEY;
use burr_core::graph::GraphChange;
use burr_core::persistence::{AppRecords, SqlitePersister};
use burr_core::state::StateError;
use burr_core::{default, expr, ApplicationBuilder, Error, Inputs, State};

/// Version 1: `start -> count -> count (while count < 10) -> done`; `count` reads and
/// writes `count`. Version 2 renames `count` to `tally`.
fn app(version: &str, persister: Arc<SqlitePersister>) -> ApplicationBuilder {
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

/// Every row of the tables that hold applications, checkpoints and their values.
fn dump(path: &std::path::Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut out = Vec::new();
    for table in [
        "burr_apps",
        "burr_checkpoints",
        "burr_values",
        "burr_graphs",
    ] {
        let mut statement = conn
            .prepare(&format!("SELECT * FROM {table} ORDER BY 1, 2"))
            .unwrap();
        let columns = statement.column_count();
        let rows = statement
            .query_map([], |row| {
                let mut text = format!("{table}:");
                for i in 0..columns {
                    let value: rusqlite::types::Value = row.get(i)?;
                    text.push_str(&format!(" {value:?}"));
                }
                Ok(text)
            })
            .unwrap();
        out.extend(rows.map(Result::unwrap));
    }
    out
}

async fn run_steps(app: &mut burr_core::Application, n: usize) {
    for _ in 0..n {
        app.step(Inputs::new()).await.unwrap();
    }
}

#[tokio::test]
async fn the_fingerprint_ignores_declaration_order_and_sees_every_declared_change() {
    let dir = tempfile::tempdir().unwrap();
    let persister = Arc::new(SqlitePersister::open(dir.path().join("a.db")).unwrap());
    let a = app("1", persister.clone()).build().await.unwrap();
    let fingerprint = a.code().fingerprint.clone();
    assert_eq!(fingerprint.len(), 64);
    drop(a);
    // The same graph with its actions listed in another order.
    let x = || {
        action_sync("x", |s: State, _, _| Ok::<_, StateError>(s))
            .reads(["k"])
            .writes(["k"])
    };
    let y = || action_sync("y", |s: State, _, _| Ok::<_, StateError>(s)).reads(["k"]);
    let graph = |actions: Vec<burr_core::actions::FnAction>| {
        burr_core::graph::Graph::builder()
            .with_actions(actions)
            .with_transitions([("x", "y", expr("k > 1")), ("x", "x", default())])
            .build()
            .unwrap()
    };
    let one = graph(vec![x(), y()]).fingerprint("x");
    assert_eq!(one, graph(vec![y(), x()]).fingerprint("x"));
    assert_ne!(
        one,
        graph(vec![x(), y()]).fingerprint("y"),
        "the entrypoint counts"
    );
    let versioned = burr_core::graph::Graph::builder()
        .with_actions([x().version("2"), y()])
        .with_transitions([("x", "y", expr("k > 1")), ("x", "x", default())])
        .build()
        .unwrap();
    assert_ne!(
        one,
        versioned.fingerprint("x"),
        "an action's version counts"
    );
    let condition = burr_core::graph::Graph::builder()
        .with_actions([x(), y()])
        .with_transitions([("x", "y", expr("k > 2")), ("x", "x", default())])
        .build()
        .unwrap();
    assert_ne!(
        one,
        condition.fingerprint("x"),
        "a condition's source counts"
    );
    let reads = burr_core::graph::Graph::builder()
        .with_actions([x(), y().reads(["k", "other"])])
        .with_transitions([("x", "y", expr("k > 1")), ("x", "x", default())])
        .build()
        .unwrap();
    assert_ne!(one, reads.fingerprint("x"), "reads count");
    // Another process computes the same fingerprint.
    if let Ok(expected) = std::env::var("BURR_EXPECT_FINGERPRINT") {
        assert_eq!(one, expected);
        return;
    }
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "the_fingerprint_ignores_declaration_order_and_sees_every_declared_change",
        ])
        .env("BURR_EXPECT_FINGERPRINT", &one)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "another process computed another fingerprint: {}",
        String::from_utf8_lossy(&status.stdout)
    );
}

#[tokio::test]
async fn the_record_keeps_the_code_and_the_same_code_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("burr.db");
    let persister = Arc::new(SqlitePersister::open(&path).unwrap());
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

    let reopened = Arc::new(SqlitePersister::open(&path).unwrap());
    let mut resumed = app("1", reopened).build().await.unwrap();
    assert_eq!(resumed.state().get::<i64>("count").unwrap(), 2);
    run_steps(&mut resumed, 1).await;
    assert_eq!(resumed.state().get::<i64>("count").unwrap(), 3);
}

#[tokio::test]
async fn a_renamed_action_is_refused_naming_the_rename_and_nothing_stored_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("burr.db");
    let persister = Arc::new(SqlitePersister::open(&path).unwrap());
    let mut first = app("1", persister.clone()).build().await.unwrap();
    run_steps(&mut first, 3).await;
    drop(first);
    drop(persister);
    let before = dump(&path);

    let persister = Arc::new(SqlitePersister::open(&path).unwrap());
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
            assert!(
                changes.contains(&GraphChange::PositionMissing {
                    position: "count".into()
                }),
                "{changes:?}"
            );
        }
        other => panic!("expected CodeChanged, got {other:?}"),
    }
    let message = error.to_string();
    assert!(
        message.contains("action `count` was renamed to `tally`"),
        "{message}"
    );
    assert!(message.contains("with_migration(\"1\""), "{message}");
    drop(persister);
    assert_eq!(
        dump(&path),
        before,
        "a refused resume changes nothing stored"
    );
}

#[tokio::test]
async fn a_new_action_the_position_cannot_reach_is_compatible() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("burr.db");
    let persister = Arc::new(SqlitePersister::open(&path).unwrap());
    let mut first = app("1", persister.clone()).build().await.unwrap();
    run_steps(&mut first, 3).await;
    drop(first);
    // Version 1b: an extra action, reachable only from `start` (already left behind).
    let extra = action_sync("audit", |s: State, _, _| Ok::<_, StateError>(s)).reads(["count"]);
    let mut resumed = app("1b", persister.clone())
        .with_actions([extra])
        .with_transitions([("audit", "done", default())])
        .build()
        .await
        .unwrap();
    assert_eq!(resumed.state().get::<i64>("count").unwrap(), 2);
    // The record names the code the application now runs (a resume under the same code
    // writes no record; this one must).
    let code = persister.app(None, "app-1").await.unwrap().unwrap().code;
    let code = code.expect("the record keeps the code");
    assert_eq!(code.version.as_deref(), Some("1b"));
    assert_eq!(code.fingerprint, resumed.code().fingerprint);
    run_steps(&mut resumed, 1).await;
    drop(resumed);
    // But a new transition out of the position's action is not.
    let changed = action_sync("audit", |s: State, _, _| Ok::<_, StateError>(s)).reads(["count"]);
    let refused = app("1c", persister.clone())
        .with_actions([changed])
        .with_transitions([("count", "audit", expr("count > 100"))])
        .build()
        .await;
    match refused {
        Err(Error::CodeChanged { changes, .. }) => assert!(
            changes.iter().any(
                |c| matches!(c, GraphChange::TransitionsChanged { from, .. } if from == "count")
            ),
            "{changes:?}"
        ),
        Err(other) => panic!("expected CodeChanged, got {other:?}"),
        Ok(_) => panic!("a new transition out of the position must be refused"),
    }
}

#[tokio::test]
async fn a_migration_is_applied_once_and_recorded_as_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("burr.db");
    let persister = Arc::new(SqlitePersister::open(&path).unwrap());
    let mut first = app("1", persister.clone()).build().await.unwrap();
    run_steps(&mut first, 3).await; // start, count, count: count = 2, sequence id 2
    drop(first);

    let applied = Arc::new(AtomicUsize::new(0));
    // Version 2: `count` counts in tens (its version changed); a migration scales the
    // stored count.
    let v2 = |persister: Arc<SqlitePersister>, applied: Arc<AtomicUsize>| {
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
    };
    // Without the migration, refused (the action's version changed).
    let refused = ApplicationBuilder::new()
        .with_actions([
            action_sync("start", |s: State, _, _| Ok::<_, StateError>(s)).writes(["count"]),
            action_sync("count", |s: State, _, _| Ok::<_, StateError>(s))
                .reads(["count"])
                .writes(["count"])
                .version("2"),
        ])
        .with_transitions([("start", "count", default()), ("count", "count", default())])
        .with_entrypoint("start")
        .with_app_id("app-1")
        .initialize_from(persister.clone())
        .build()
        .await;
    assert!(matches!(refused, Err(Error::CodeChanged { .. })));
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
    // Stored: the migrated state at sequence id 3, the record now under version 2.
    let loaded = burr_core::persistence::Persister::load(&*persister, None, "app-1", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((loaded.sequence_id, loaded.position.as_str()), (3, "count"));
    assert_eq!(loaded.state.get::<i64>("count").unwrap(), 20);
    let record = persister.app(None, "app-1").await.unwrap().unwrap();
    assert_eq!(record.code.unwrap().version.as_deref(), Some("2"));

    // The process dies after the migration's checkpoint but before its record is
    // updated: the record is put back under version 1 as it would have stayed.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let old: String = conn
        .query_row("SELECT fingerprint FROM burr_graphs WHERE description LIKE '%\"count\"%' AND description NOT LIKE '%\"version\":\"2\"%'", [], |r| r.get(0))
        .unwrap();
    conn.execute(
        "UPDATE burr_apps SET code_version = '1', fingerprint = ?1 WHERE app_id = 'app-1'",
        [&old],
    )
    .unwrap();
    drop(conn);
    let reopened = Arc::new(SqlitePersister::open(&path).unwrap());
    let mut again = v2(reopened.clone(), applied.clone()).build().await.unwrap();
    assert_eq!(applied.load(Ordering::SeqCst), 1, "never applied twice");
    assert_eq!(again.state().get::<i64>("count").unwrap(), 20);
    assert!(again.state().get_value(MIGRATED_TO_KEY).is_some());
    run_steps(&mut again, 1).await;
    assert_eq!(again.state().get::<i64>("count").unwrap(), 30);
    assert_eq!(again.sequence_id(), Some(4));
}

#[tokio::test]
async fn check_tells_which_stored_applications_the_current_code_can_resume() {
    use burr_core::application::{check_resume, Verdict};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("burr.db");
    let persister = Arc::new(SqlitePersister::open(&path).unwrap());
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
    let records = persister.list_apps().unwrap();
    assert_eq!(records.len(), 3);
    let record = |id: &str| records.iter().find(|r| r.app_id == id).unwrap().clone();

    // `a` under the same code: resumable, unfinished.
    let a = check_resume(&*persister, &record("a"), Ok(&v1))
        .await
        .unwrap();
    assert_eq!(a.verdict, Verdict::SameCode);
    assert!(a.can_resume && !a.finished);
    assert_eq!(
        (a.sequence_id, a.position.as_deref()),
        (Some(2), Some("count"))
    );
    // `b` under version 2 (renamed): refused, naming the rename.
    let b = check_resume(&*persister, &record("b"), Ok(&v2))
        .await
        .unwrap();
    assert!(!b.can_resume);
    assert_eq!(b.stored_version.as_deref(), Some("1"));
    assert_eq!(b.current_version.as_deref(), Some("2"));
    assert!(
        b.verdict
            .explain()
            .contains("action `count` was renamed to `tally`"),
        "{}",
        b.verdict.explain()
    );
    // ... unless a migration from version 1 is registered.
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
    // `c` ran to its end: finished, whatever the code.
    let c = check_resume(&*persister, &record("c"), Ok(&v1))
        .await
        .unwrap();
    assert!(c.finished, "{c:?}");
    let c = check_resume(&*persister, &record("c"), Ok(&v2))
        .await
        .unwrap();
    assert!(c.finished, "{c:?}");
    // No code for it at all.
    let unknown = check_resume(&*persister, &record("a"), Err("no kind `x`".into()))
        .await
        .unwrap();
    assert!(!unknown.can_resume);
    assert_eq!(unknown.verdict.explain(), "no kind `x`");
}

#[tokio::test]
async fn children_of_a_map_action_record_their_sub_graphs_code() {
    use burr_core::actions::ActionError;
    use burr_core::parallel::{ChildPersister, MapAction, SubGraph};
    let dir = tempfile::tempdir().unwrap();
    let persister = Arc::new(SqlitePersister::open(dir.path().join("burr.db")).unwrap());
    let measure = |name: &str, times: usize| {
        action_sync(name, move |s: State, _, _| {
            let text: String = s.get("text")?;
            Ok::<_, ActionError>(s.update("length", times * text.len()))
        })
        .reads(["text"])
        .writes(["length"])
    };
    let subgraphs = vec![
        SubGraph::action(measure("length", 1)),
        SubGraph::action(measure("double", 2)),
    ];
    let map = MapAction::actions_and_states("lengths", subgraphs, |_: &State, _: &Inputs| {
        Ok::<_, ActionError>(
            ["a", "bb", "ccc"]
                .map(|t| State::new().update("text", t))
                .to_vec(),
        )
    })
    .reduce(|state: State, children: Vec<State>| {
        Ok::<_, ActionError>(state.update("children", children.len()))
    })
    .writes(["children"])
    .persister(ChildPersister::Cascade);
    let mut parent = ApplicationBuilder::new()
        .with_actions([map])
        .with_entrypoint("lengths")
        .with_app_id("parent")
        .with_state_persister(persister.clone())
        .build()
        .await
        .unwrap();
    parent.step(Inputs::new()).await.unwrap();
    assert_eq!(parent.state().get::<i64>("children").unwrap(), 6);

    // Each child records the code of the sub-graph it ran: the fingerprint a builder of
    // that graph computes (the same for the three children of each sub-graph).
    let records = persister.list_apps_under("parent").unwrap();
    let mut fingerprints = std::collections::BTreeMap::<String, Vec<String>>::new();
    for child in records.iter().filter(|r| r.app_id != "parent") {
        let record = persister.app(None, &child.app_id).await.unwrap().unwrap();
        let code = record.code.expect("a child's code is recorded");
        let entrypoint = code.graph.as_ref().unwrap().entrypoint.clone();
        fingerprints
            .entry(entrypoint)
            .or_default()
            .push(code.fingerprint);
    }
    assert_eq!(
        fingerprints.keys().collect::<Vec<_>>(),
        ["double", "length"]
    );
    for (entrypoint, prints) in &fingerprints {
        assert_eq!(prints.len(), 3);
        let times = if entrypoint == "length" { 1 } else { 2 };
        let built = ApplicationBuilder::new()
            .with_actions([measure(entrypoint, times)])
            .with_entrypoint(entrypoint.as_str())
            .current_code()
            .unwrap();
        assert!(
            prints.iter().all(|p| *p == built.code.fingerprint),
            "{entrypoint}: {prints:?}"
        );
    }
}

#[tokio::test]
async fn a_new_application_is_recorded_with_its_lease_and_not_when_the_lease_is_refused() {
    use burr_core::persistence::PersistenceError;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("burr.db");
    let first = Arc::new(SqlitePersister::open(&path).unwrap());
    let new_app = |version: &str, persister: Arc<SqlitePersister>| {
        let step = action_sync("count", |s: State, _, _| s.increment("count", 1))
            .reads(["count"])
            .writes(["count"]);
        ApplicationBuilder::new()
            .with_actions([step])
            .with_transitions([("count", "count", default())])
            .with_entrypoint("count")
            .with_state(State::new().update("count", 0))
            .with_app_id("app-1")
            .with_version(version)
            .with_state_persister(persister)
    };
    // Built (its lease taken): its record is there at once, with its code.
    let running = new_app("1", first.clone()).build().await.unwrap();
    let record = first.app(None, "app-1").await.unwrap().unwrap();
    assert_eq!(record.code.unwrap().version.as_deref(), Some("1"));

    // Another runner of the same app id is refused the lease, and records nothing.
    let other = Arc::new(SqlitePersister::open(&path).unwrap());
    let refused = new_app("2", other.clone()).build().await.err().unwrap();
    assert!(
        matches!(
            &refused,
            Error::Persistence {
                source: PersistenceError::AppLocked { .. },
                ..
            }
        ),
        "{refused}"
    );
    let record = other.app(None, "app-1").await.unwrap().unwrap();
    assert_eq!(record.code.unwrap().version.as_deref(), Some("1"));
    drop(running);
}

/// `Graph::fingerprint` hashes the graph without building its description first; it
/// must give what the description's fingerprint gives (the one stored in application
/// records), for names declared unsorted or twice, versions, optional inputs and
/// conditions — and the value itself must not change between builds, or every stored
/// application would look changed.
#[test]
fn the_fingerprint_hashed_from_the_graph_is_its_descriptions() {
    let x = action_sync("x", |s: State, _, _| Ok::<_, StateError>(s))
        .reads(["k", "b", "k", "a"])
        .writes(["k"])
        .inputs(["z", "y"])
        .optional_inputs(["w"])
        .version("3");
    let y = action_sync("y", |s: State, _, _| Ok::<_, StateError>(s)).reads(["k"]);
    let graph = burr_core::graph::Graph::builder()
        .with_actions([y, x])
        .with_transitions([("x", "y", expr("k > 1")), ("x", "x", default())])
        .build()
        .unwrap();
    for entrypoint in ["x", "y"] {
        assert_eq!(
            graph.fingerprint(entrypoint),
            graph.describe(entrypoint).fingerprint(),
            "entrypoint {entrypoint}"
        );
    }
    assert_eq!(
        graph.fingerprint("x"),
        "6605b0f49557038bfc4467ccb46501cc0695a3def591d8a15ac3a172551673a2",
        "the fingerprint of a graph changed: stored applications would not resume"
    );
}
