//! Reading the tracker's tables back.

use std::path::Path;

use burr_core::ids::ParentPointer;
use rusqlite::{params, Connection};
use serde_json::{Map, Value};

use crate::TrackerError;

/// An application row.
#[derive(Clone, Debug)]
pub(crate) struct AppRow {
    pub(crate) id: i64,
    pub(crate) partition_key: Option<String>,
    pub(crate) app_id: String,
    pub(crate) created_at_us: i64,
    pub(crate) updated_at_us: i64,
    pub(crate) graph: String,
    pub(crate) fork_parent: Option<ParentPointer>,
    pub(crate) spawning_parent: Option<ParentPointer>,
}

/// A step row (one attempt).
#[derive(Clone, Debug)]
pub(crate) struct StepRow {
    pub(crate) sequence_id: u64,
    pub(crate) attempt: u32,
    pub(crate) action: String,
    pub(crate) started_at_us: i64,
    pub(crate) ended_at_us: Option<i64>,
    pub(crate) status: Option<String>,
    pub(crate) inputs: Map<String, Value>,
    pub(crate) result: Option<Map<String, Value>>,
    pub(crate) error: Option<Vec<String>>,
    pub(crate) delta: Option<Delta>,
}

/// What a step changed.
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub(crate) struct Delta {
    pub(crate) updated: Map<String, Value>,
    pub(crate) deleted: Vec<String>,
}

/// An event within a step.
#[derive(Clone, Debug)]
pub(crate) struct EventRow {
    pub(crate) sequence_id: u64,
    pub(crate) attempt: u32,
    pub(crate) kind: String,
    pub(crate) at_us: i64,
    pub(crate) span_id: Option<i64>,
    pub(crate) parent_span_id: Option<i64>,
    pub(crate) name: Option<String>,
    pub(crate) value: Option<Value>,
}

/// A state snapshot.
#[derive(Clone, Debug)]
pub(crate) struct SnapshotRow {
    /// `-1`: before the first step.
    pub(crate) sequence_id: i64,
    pub(crate) state: Map<String, Value>,
}

pub(crate) fn corrupt(path: &Path, app_id: &str, reason: String) -> TrackerError {
    TrackerError::Corrupt {
        path: path.to_owned(),
        app_id: app_id.to_owned(),
        reason,
    }
}

pub(crate) fn parse<T: serde::de::DeserializeOwned>(
    path: &Path,
    app_id: &str,
    what: &str,
    text: &str,
) -> Result<T, TrackerError> {
    serde_json::from_str(text)
        .map_err(|e| corrupt(path, app_id, format!("{what} is not valid: {e}")))
}

pub(crate) fn unsigned<T: TryFrom<i64>>(
    path: &Path,
    app_id: &str,
    what: &str,
    value: i64,
) -> Result<T, TrackerError> {
    T::try_from(value).map_err(|_| corrupt(path, app_id, format!("{what} {value} is out of range")))
}

/// Every tracked application.
pub(crate) fn apps(
    conn: &Connection,
    path: &Path,
    root: Option<&str>,
) -> Result<Vec<AppRow>, TrackerError> {
    let sqlite = |e| TrackerError::sqlite(path, e);
    let mut statement = conn
        .prepare(
            "SELECT id, partition_key, app_id, created_at_us, updated_at_us, graph, fork_parent, spawning_parent \
             FROM burr_tracker_apps WHERE ?1 IS NULL OR app_id = ?1 \
             OR (app_id >= ?1 || '/' AND app_id < ?1 || '0') ORDER BY id",
        )
        .map_err(sqlite)?;
    let mut rows = statement.query([root]).map_err(sqlite)?;
    let mut apps = Vec::new();
    while let Some(row) = rows.next().map_err(sqlite)? {
        let app_id: String = row.get(2).map_err(sqlite)?;
        let pointer = |index: usize, what: &str| -> Result<Option<ParentPointer>, TrackerError> {
            let text: Option<String> = row.get(index).map_err(sqlite)?;
            text.map(|t| parse(path, &app_id, what, &t)).transpose()
        };
        let partition_key: String = row.get(1).map_err(sqlite)?;
        apps.push(AppRow {
            id: row.get(0).map_err(sqlite)?,
            partition_key: (!partition_key.is_empty()).then_some(partition_key),
            created_at_us: row.get(3).map_err(sqlite)?,
            updated_at_us: row.get(4).map_err(sqlite)?,
            graph: row.get(5).map_err(sqlite)?,
            fork_parent: pointer(6, "the fork parent")?,
            spawning_parent: pointer(7, "the spawning parent")?,
            app_id,
        });
    }
    Ok(apps)
}

/// An application's steps, in (sequence id, attempt) order.
pub(crate) fn steps(
    conn: &Connection,
    path: &Path,
    app: &AppRow,
) -> Result<Vec<StepRow>, TrackerError> {
    let sqlite = |e| TrackerError::sqlite(path, e);
    let id = &app.app_id;
    let mut statement = conn
        .prepare_cached(
            "SELECT sequence_id, attempt, action, started_at_us, ended_at_us, status, inputs, result, error, delta \
             FROM burr_tracker_steps WHERE app = ?1 ORDER BY sequence_id, attempt",
        )
        .map_err(sqlite)?;
    let mut rows = statement.query([app.id]).map_err(sqlite)?;
    let mut steps = Vec::new();
    while let Some(row) = rows.next().map_err(sqlite)? {
        let text = |index: usize| -> Result<Option<String>, TrackerError> {
            row.get(index).map_err(sqlite)
        };
        let inputs: String = row.get(6).map_err(sqlite)?;
        steps.push(StepRow {
            sequence_id: unsigned(path, id, "sequence id", row.get(0).map_err(sqlite)?)?,
            attempt: unsigned(path, id, "attempt", row.get(1).map_err(sqlite)?)?,
            action: row.get(2).map_err(sqlite)?,
            started_at_us: row.get(3).map_err(sqlite)?,
            ended_at_us: row.get(4).map_err(sqlite)?,
            status: text(5)?,
            inputs: parse(path, id, "a step's inputs", &inputs)?,
            result: text(7)?
                .map(|t| parse(path, id, "a step's result", &t))
                .transpose()?,
            error: text(8)?
                .map(|t| parse(path, id, "a step's error", &t))
                .transpose()?,
            delta: text(9)?
                .map(|t| parse(path, id, "a step's state change", &t))
                .transpose()?,
        });
    }
    Ok(steps)
}

/// A run of a step that a dead process left unfinished and a later run replaced.
pub(crate) struct InterruptedRun {
    pub(crate) sequence_id: u64,
    pub(crate) attempt: u32,
    pub(crate) action: String,
    pub(crate) started_at_us: i64,
    pub(crate) inputs: Value,
}

/// The interrupted runs of an application's steps, oldest first.
pub(crate) fn interrupted_runs(
    conn: &Connection,
    path: &Path,
    app: &AppRow,
) -> Result<Vec<InterruptedRun>, TrackerError> {
    let sqlite = |e| TrackerError::sqlite(path, e);
    let id = &app.app_id;
    let mut statement = conn
        .prepare_cached(
            "SELECT sequence_id, attempt, name, at_us, value FROM burr_tracker_events \
             WHERE app = ?1 AND kind = 'interrupted_run' ORDER BY id",
        )
        .map_err(sqlite)?;
    let mut rows = statement.query([app.id]).map_err(sqlite)?;
    let mut runs = Vec::new();
    while let Some(row) = rows.next().map_err(sqlite)? {
        let inputs: Option<String> = row.get(4).map_err(sqlite)?;
        runs.push(InterruptedRun {
            sequence_id: unsigned(path, id, "sequence id", row.get(0).map_err(sqlite)?)?,
            attempt: unsigned(path, id, "attempt", row.get(1).map_err(sqlite)?)?,
            action: row
                .get::<_, Option<String>>(2)
                .map_err(sqlite)?
                .unwrap_or_default(),
            started_at_us: row.get(3).map_err(sqlite)?,
            inputs: inputs
                .map(|t| parse(path, id, "a step's inputs", &t))
                .transpose()?
                .unwrap_or(Value::Null),
        });
    }
    Ok(runs)
}

/// The events within an application's steps, in the order they were recorded.
pub(crate) fn events(
    conn: &Connection,
    path: &Path,
    app: &AppRow,
) -> Result<Vec<EventRow>, TrackerError> {
    let sqlite = |e| TrackerError::sqlite(path, e);
    let id = &app.app_id;
    let mut statement = conn
        .prepare_cached(
            "SELECT sequence_id, attempt, kind, at_us, span_id, parent_span_id, name, value \
             FROM burr_tracker_events WHERE app = ?1 ORDER BY id",
        )
        .map_err(sqlite)?;
    let mut rows = statement.query([app.id]).map_err(sqlite)?;
    let mut events = Vec::new();
    while let Some(row) = rows.next().map_err(sqlite)? {
        let value: Option<String> = row.get(7).map_err(sqlite)?;
        events.push(EventRow {
            sequence_id: unsigned(path, id, "sequence id", row.get(0).map_err(sqlite)?)?,
            attempt: unsigned(path, id, "attempt", row.get(1).map_err(sqlite)?)?,
            kind: row.get(2).map_err(sqlite)?,
            at_us: row.get(3).map_err(sqlite)?,
            span_id: row.get(4).map_err(sqlite)?,
            parent_span_id: row.get(5).map_err(sqlite)?,
            name: row.get(6).map_err(sqlite)?,
            value: value
                .map(|t| parse(path, id, "an event's value", &t))
                .transpose()?,
        });
    }
    Ok(events)
}

/// An application's state snapshots, in sequence id order.
pub(crate) fn snapshots(
    conn: &Connection,
    path: &Path,
    app: &AppRow,
) -> Result<Vec<SnapshotRow>, TrackerError> {
    let sqlite = |e| TrackerError::sqlite(path, e);
    let mut statement = conn
        .prepare_cached("SELECT sequence_id, state FROM burr_tracker_snapshots WHERE app = ?1 ORDER BY sequence_id")
        .map_err(sqlite)?;
    let mut rows = statement.query(params![app.id]).map_err(sqlite)?;
    let mut snapshots = Vec::new();
    while let Some(row) = rows.next().map_err(sqlite)? {
        let state: String = row.get(1).map_err(sqlite)?;
        snapshots.push(SnapshotRow {
            sequence_id: row.get(0).map_err(sqlite)?,
            state: parse(path, &app.app_id, "a state snapshot", &state)?,
        });
    }
    Ok(snapshots)
}
