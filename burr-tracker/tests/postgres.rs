//! The tracker's store on PostgreSQL (feature `postgres`): the same application tracked
//! into a SQLite file and into a real PostgreSQL database (`TestServer`) leaves the same
//! rows in both (times and row ids aside): applications with their graph and parents,
//! snapshots, steps with their inputs, results, errors and deltas, spans, attributes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use burr_core::actions::action_sync;
use burr_core::persistence::InMemoryPersister;
use burr_core::{inputs, ActionError, ApplicationBuilder, Inputs, RunOptions, State};
use burr_postgres::testing::TestServer;
use burr_tracker::{Tracker, TrackerError};
use serde_json::json;

/// Run a small application (spans, attributes, a step that fails once, a fork) tracked
/// by `tracker`.
async fn run_app(tracker: &Tracker) {
    let failed_once = Arc::new(AtomicBool::new(false));
    let persister = Arc::new(InMemoryPersister::new());
    let build = |id: &str, failed_once: Arc<AtomicBool>| {
        let load = action_sync("load", |s: State, inputs: &Inputs, ctx| {
            let _fetch = ctx.span("fetch");
            ctx.log_attribute("source", "memory");
            {
                let _parse = ctx.span("parse");
                ctx.log_attribute("words", 3_i64);
            }
            let customer = inputs.get("customer").cloned().unwrap_or(json!(null));
            s.update("items", json!(["a", "bb", "ccc"]))
                .update("customer", customer)
        })
        .writes(["items", "customer"])
        .inputs(["customer"]);
        let check = action_sync("check", move |s: State, _: &Inputs, _| {
            if !failed_once.swap(true, Ordering::SeqCst) {
                return Err(ActionError::from(std::io::Error::other("upstream down")));
            }
            Ok(s.update("checked", true))
        })
        .reads(["items"])
        .writes(["checked"]);
        ApplicationBuilder::new()
            .with_actions([load, check])
            .with_transitions([("load", "check")])
            .with_entrypoint("load")
            .with_state(State::new())
            .with_app_id(id)
            .with_partition_key("alice")
            .with_state_persister(persister.clone())
            .with_tracker(tracker.hook())
    };
    let mut app = build("order-1", Arc::clone(&failed_once))
        .build()
        .await
        .unwrap();
    app.step(inputs! {"customer": "alice@example.com"})
        .await
        .unwrap();
    assert!(app.step(Inputs::new()).await.is_err(), "check fails once");
    app.run(RunOptions::new()).await.unwrap();
    drop(app);
    let mut fork = build("order-1-fork", failed_once)
        .initialize_from(persister.clone())
        .fork_from_app_id("order-1")
        .fork_from_partition_key("alice")
        .fork_from_sequence_id(0)
        .build()
        .await
        .unwrap();
    fork.run(RunOptions::new()).await.unwrap();
    drop(fork);
    tracker.flush().unwrap();
}

/// The rows every tracker table holds, without times and row ids, in a stable order.
const ROWS: [&str; 4] = [
    "SELECT a.partition_key || '|' || a.app_id || '|' || a.graph || '|' || \
            coalesce(a.fork_parent, '-') || '|' || coalesce(a.spawning_parent, '-') \
     FROM burr_tracker_apps a ORDER BY 1",
    "SELECT a.app_id || '|' || s.sequence_id || '|' || s.state \
     FROM burr_tracker_snapshots s JOIN burr_tracker_apps a ON a.id = s.app ORDER BY 1",
    "SELECT a.app_id || '|' || s.sequence_id || '|' || s.attempt || '|' || s.action || '|' || \
            coalesce(s.status, '-') || '|' || s.inputs || '|' || coalesce(s.result, '-') || '|' || \
            coalesce(s.error, '-') || '|' || coalesce(s.delta, '-') || '|' || \
            (s.ended_at_us IS NOT NULL) \
     FROM burr_tracker_steps s JOIN burr_tracker_apps a ON a.id = s.app ORDER BY 1",
    "SELECT a.app_id || '|' || e.sequence_id || '|' || e.attempt || '|' || e.kind || '|' || \
            coalesce(e.span_id, -1) || '|' || coalesce(e.parent_span_id, -1) || '|' || \
            coalesce(e.name, '-') || '|' || coalesce(e.value, '-') \
     FROM burr_tracker_events e JOIN burr_tracker_apps a ON a.id = e.app ORDER BY 1",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tracked_application_leaves_the_same_rows_on_postgres_as_in_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("burr.db");
    let file = Tracker::open(&path).unwrap();
    run_app(&file).await;
    drop(file);

    let url = TestServer::shared().fresh_database();
    let pg = Tracker::open(&url).unwrap();
    assert!(pg.path().to_string_lossy().starts_with("postgres://"));
    run_app(&pg).await;
    drop(pg);

    let sqlite = rusqlite::Connection::open(&path).unwrap();
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    for query in ROWS {
        let in_file: Vec<String> = sqlite
            .prepare(query)
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        // SQLite prints booleans as 0/1.
        let in_pg: Vec<String> = client
            .query(query, &[])
            .await
            .unwrap()
            .iter()
            .map(|row| {
                row.get::<_, String>(0)
                    .replace("|true", "|1")
                    .replace("|false", "|0")
            })
            .collect();
        assert!(!in_file.is_empty(), "{query}");
        assert_eq!(in_pg, in_file, "{query}");
    }
    // A second tracker on the same database (another process's) goes on recording.
    let again = Tracker::open(&url).unwrap();
    again.flush().unwrap();
}

#[test]
fn a_bad_postgres_url_or_a_refused_connection_names_the_database() {
    match Tracker::open("postgres://burr:secret@127.0.0.1:1/nothing") {
        Err(error @ TrackerError::Postgres { .. }) => {
            let message = error.to_string();
            assert!(
                message.contains("postgres://burr@127.0.0.1:1/nothing"),
                "{message}"
            );
            assert!(!message.contains("secret"), "{message}");
        }
        other => panic!("expected a PostgreSQL error, got {other:?}"),
    }
    assert!(matches!(
        Tracker::open("postgres://burr@host:notaport/db"),
        Err(TrackerError::Postgres { .. })
    ));
}
