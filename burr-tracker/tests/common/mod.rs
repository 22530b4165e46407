//! The database the CLI and export tests read: made by a small real application (SQLite
//! persister and tracker in one file) with spans and attributes, a step that fails and is
//! retried, a fan-out to 12 children, and a fork. Its times are then set to fixed values
//! so that outputs are stable.

#![allow(dead_code)]

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use burr_core::actions::action_sync;
use burr_core::parallel::{MapAction, SubGraph};
use burr_core::persistence::SqlitePersister;
use burr_core::RunOptions;
use burr_core::{inputs, ActionError, ApplicationBuilder, Inputs, State};
use burr_tracker::Tracker;
use rusqlite::Connection;
use serde_json::json;

/// The main application's id and partition key.
pub const APP: &str = "order-1";
/// The fork's id.
pub const FORK: &str = "order-1-fork";
/// The partition key of both.
pub const PARTITION: &str = "alice";
/// The words the fan-out maps over (one child each).
pub const WORDS: [&str; 12] = [
    "apple",
    "banana",
    "cherry",
    "date",
    "elderberry",
    "fig",
    "grape",
    "honeydew",
    "kiwi",
    "lemon",
    "mango",
    "nectarine",
];

#[derive(Debug)]
struct Upstream;

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection reset by peer")
    }
}

impl std::error::Error for Upstream {}

#[derive(Debug)]
struct CheckFailed(Upstream);

impl fmt::Display for CheckFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("inventory check failed")
    }
}

impl std::error::Error for CheckFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

fn graph_builder(failed_once: Arc<AtomicBool>) -> ApplicationBuilder {
    let load = action_sync("load", |s: State, inputs: &Inputs, ctx| {
        let _fetch = ctx.span("fetch");
        ctx.log_attribute("source", "memory");
        {
            let _parse = ctx.span("parse");
            ctx.log_attribute("words", WORDS.len() as i64);
        }
        let customer = inputs.get("customer").cloned().unwrap_or(json!(null));
        s.update("items", json!(WORDS)).update("customer", customer)
    })
    .writes(["items", "customer"])
    .inputs(["customer"]);
    let check = action_sync("check", move |s: State, _: &Inputs, ctx| {
        ctx.log_attribute("attempt", i64::from(ctx.attempt()));
        if !failed_once.swap(true, Ordering::SeqCst) {
            return Err(ActionError::from(CheckFailed(Upstream)));
        }
        Ok(s.update("checked", true))
    })
    .reads(["items"])
    .writes(["checked"]);
    let measure = action_sync("measure", |s: State, _: &Inputs, _| {
        let text: String = s.get("text")?;
        Ok::<_, burr_core::state::StateError>(s.update("length", text.chars().count()))
    })
    .reads(["text"])
    .writes(["length"]);
    let lengths = MapAction::states(
        "lengths",
        SubGraph::action(measure),
        |s: &State, _: &Inputs| {
            let words: Vec<String> = s.get("items")?;
            Ok::<_, burr_core::ActionError>(
                words
                    .into_iter()
                    .map(|w| State::new().update("text", w))
                    .collect(),
            )
        },
    )
    .reduce(|state, children| {
        let lengths: Vec<i64> = children
            .iter()
            .map(|c| c.get("length"))
            .collect::<Result<_, _>>()?;
        Ok::<_, burr_core::ActionError>(state.update("lengths", lengths))
    })
    .reads(["items"])
    .writes(["lengths"]);
    let total = action_sync("total", |s: State, _: &Inputs, _| {
        let lengths: Vec<i64> = s.get("lengths")?;
        Ok::<_, burr_core::state::StateError>(
            s.update("total", lengths.iter().sum::<i64>())
                .wipe(burr_core::state::Wipe::delete(["items"])),
        )
    })
    .reads(["lengths", "items"])
    .writes(["total"]);
    ApplicationBuilder::new()
        .with_actions([load, check])
        .with_actions([lengths])
        .with_actions([total])
        .with_transitions([
            ("load", "check"),
            ("check", "lengths"),
            ("lengths", "total"),
        ])
}

/// Build the database in `dir`; its path.
pub async fn build_database(dir: &Path) -> PathBuf {
    let path = dir.join("burr.db");
    let tracker = Tracker::open(&path).expect("tracker opens");
    let persister = Arc::new(SqlitePersister::open(&path).expect("persister opens"));
    record(tracker, persister).await;
    fix_times(&path);
    path
}

/// Run the applications with `persister` and `tracker` (then dropped, so that what they
/// hold is written).
pub async fn record(tracker: Tracker, persister: Arc<dyn burr_core::persistence::Persister>) {
    let failed_once = Arc::new(AtomicBool::new(false));
    {
        let mut app = graph_builder(Arc::clone(&failed_once))
            .with_state(State::new().update("customer", json!(null)))
            .with_entrypoint("load")
            .with_app_id(APP)
            .with_partition_key(PARTITION)
            .with_state_persister(persister.clone())
            .with_tracker(tracker.hook())
            .build()
            .await
            .expect("app builds");
        let inputs = inputs! {"customer": "alice@example.com"};
        app.step(inputs.clone()).await.expect("load runs");
        let failed = app.step(Inputs::new()).await;
        assert!(failed.is_err(), "check fails the first time");
        app.run(RunOptions::new().inputs(inputs))
            .await
            .expect("the rest runs");
    }
    {
        let mut fork = graph_builder(failed_once)
            .with_state(State::new())
            .with_entrypoint("load")
            .initialize_from(persister.clone())
            .fork_from_app_id(APP)
            .fork_from_partition_key(PARTITION)
            .fork_from_sequence_id(0)
            .with_app_id(FORK)
            .with_partition_key(PARTITION)
            .with_state_persister(persister.clone())
            .with_tracker(tracker.hook())
            .build()
            .await
            .expect("fork builds");
        fork.run(RunOptions::new().halt_after(["check"]))
            .await
            .expect("the fork runs");
    }
    tracker.flush().expect("tracking is written");
    drop(tracker);
    drop(persister);
}

/// 2025-01-01T00:00:00Z.
pub const T0: i64 = 1_735_689_600_000_000;

/// Set every stored time to a value derived from what it belongs to: applications are
/// created one second apart in app id order, step attempt `a` of sequence id `s` starts
/// at `T0 + 100 s + s s + (a - 1) × 100 ms` and lasts 1.234 ms (the children's, 0.5 ms
/// more), events are 10 µs apart within their step.
pub fn fix_times(path: &Path) {
    let conn = Connection::open(path).expect("opens");
    let sql = format!(
        "
        CREATE TEMP TABLE ranks AS
            SELECT partition_key, app_id, row_number() OVER (ORDER BY app_id) AS rank
            FROM (SELECT partition_key, app_id FROM burr_apps
                  UNION SELECT partition_key, app_id FROM burr_tracker_apps);
        UPDATE burr_apps SET created_at_us = {T0} + 1000000 * (SELECT rank FROM ranks r
            WHERE r.partition_key = burr_apps.partition_key AND r.app_id = burr_apps.app_id);
        UPDATE burr_tracker_apps SET created_at_us = {T0} + 1000000 * (SELECT rank FROM ranks r
            WHERE r.partition_key = burr_tracker_apps.partition_key AND r.app_id = burr_tracker_apps.app_id);
        UPDATE burr_tracker_steps SET
            started_at_us = {T0} + 100000000 + 1000000 * sequence_id + 100000 * (attempt - 1)
                + 500 * (SELECT instr(app_id, '/') > 0 FROM burr_tracker_apps a WHERE a.id = app),
            ended_at_us = CASE WHEN ended_at_us IS NULL THEN NULL ELSE
                {T0} + 100000000 + 1000000 * sequence_id + 100000 * (attempt - 1) + 1234
                + 500 * (SELECT instr(app_id, '/') > 0 FROM burr_tracker_apps a WHERE a.id = app) END;
        UPDATE burr_checkpoints SET created_at_us =
            {T0} + 100000000 + 1000000 * sequence_id + 100000 * (attempt - 1) + 1234
            + 500 * (SELECT instr(app_id, '/') > 0 FROM burr_apps a WHERE a.id = app);
        UPDATE burr_tracker_events SET at_us = (SELECT started_at_us FROM burr_tracker_steps s
            WHERE s.app = burr_tracker_events.app AND s.sequence_id = burr_tracker_events.sequence_id
            AND s.attempt = burr_tracker_events.attempt)
            + 10 * (SELECT count(*) FROM burr_tracker_events e WHERE e.app = burr_tracker_events.app
                    AND e.sequence_id = burr_tracker_events.sequence_id AND e.id <= burr_tracker_events.id);
        -- Whether and how long a child waited for an executor slot depends on the machine.
        DELETE FROM burr_tracker_events WHERE name = 'burr.waited_us';
        UPDATE burr_tracker_snapshots SET at_us = (SELECT created_at_us FROM burr_tracker_apps a WHERE a.id = app);
        UPDATE burr_tracker_apps SET updated_at_us = max(created_at_us,
            coalesce((SELECT max(ended_at_us) FROM burr_tracker_steps s WHERE s.app = burr_tracker_apps.id), 0));
        DROP TABLE ranks;
        "
    );
    conn.execute_batch(&sql).expect("times are fixed");
}

/// Run the `burr-tracker` CLI on `db` with `args` (`BURR_DB` unset).
pub fn burr_tracker(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_burr-tracker"))
        .arg("--db")
        .arg(db)
        .args(args)
        .env_remove("BURR_DB")
        .output()
        .expect("burr-tracker runs")
}
