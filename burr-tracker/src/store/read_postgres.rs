//! Reading the tracker's tables back from a PostgreSQL database (feature `postgres`):
//! the rows of [`read`](super::read), with the same types and the same checks.

use std::path::Path;

use burr_core::ids::ParentPointer;
use tokio_postgres::{Client, Row};

use super::postgres::Database;
use super::read::{parse, unsigned, AppRow, EventRow, InterruptedRun, SnapshotRow, StepRow};
use crate::TrackerError;

/// What the tracker's tables of `database` hold: `None` without them, otherwise their
/// schema version (checked: a newer one is refused).
pub(crate) async fn tracker_version(
    client: &Client,
    database: &Database,
) -> Result<Option<i64>, TrackerError> {
    let failed = |e| database.error("read the tracker's schema version", e);
    let exists: bool = client
        .query_one(
            "SELECT to_regclass('burr_tracker_meta') IS NOT NULL \
             AND to_regclass('burr_tracker_apps') IS NOT NULL",
            &[],
        )
        .await
        .and_then(|row| row.try_get(0))
        .map_err(failed)?;
    if !exists {
        return Ok(None);
    }
    let text: Option<String> = client
        .query_opt(
            "SELECT value FROM burr_tracker_meta WHERE key = 'schema_version'",
            &[],
        )
        .await
        .map_err(failed)?
        .map(|row| row.try_get(0))
        .transpose()
        .map_err(failed)?;
    let Some(text) = text else {
        return Ok(None);
    };
    let found: i64 = text.parse().map_err(|_| TrackerError::Corrupt {
        path: database.name.clone(),
        app_id: String::new(),
        reason: format!("the tracker schema version `{text}` is not a number"),
    })?;
    super::schema::check_version(found, &database.name)?;
    Ok(Some(found))
}

/// Every tracked application (or only `root` and those under `root/`), by row id.
pub(crate) async fn apps(
    client: &Client,
    database: &Database,
    root: Option<&str>,
) -> Result<Vec<AppRow>, TrackerError> {
    let failed = |e| database.error("read the tracked applications", e);
    let rows = client
        .query(
            "SELECT id, partition_key, app_id, created_at_us, updated_at_us, graph, fork_parent, spawning_parent \
             FROM burr_tracker_apps WHERE $1::text IS NULL OR app_id = $1 \
             OR (app_id >= $1 || '/' AND app_id < $1 || '0') ORDER BY id",
            &[&root],
        )
        .await
        .map_err(failed)?;
    let path = database.name.as_path();
    let mut apps = Vec::with_capacity(rows.len());
    for row in rows {
        let app_id: String = row.try_get(2).map_err(failed)?;
        let pointer = |index: usize, what: &str| -> Result<Option<ParentPointer>, TrackerError> {
            let text: Option<String> = row.try_get(index).map_err(failed)?;
            text.map(|t| parse(path, &app_id, what, &t)).transpose()
        };
        let partition_key: String = row.try_get(1).map_err(failed)?;
        apps.push(AppRow {
            id: row.try_get(0).map_err(failed)?,
            partition_key: (!partition_key.is_empty()).then_some(partition_key),
            created_at_us: row.try_get(3).map_err(failed)?,
            updated_at_us: row.try_get(4).map_err(failed)?,
            graph: row.try_get(5).map_err(failed)?,
            fork_parent: pointer(6, "the fork parent")?,
            spawning_parent: pointer(7, "the spawning parent")?,
            app_id,
        });
    }
    Ok(apps)
}

/// The (sequence id, attempt) of a row's first two columns.
fn step_key(
    row: &Row,
    path: &Path,
    app_id: &str,
    failed: impl Fn(tokio_postgres::Error) -> TrackerError,
) -> Result<(u64, u32), TrackerError> {
    Ok((
        unsigned(
            path,
            app_id,
            "sequence id",
            row.try_get(0).map_err(&failed)?,
        )?,
        unsigned(path, app_id, "attempt", row.try_get(1).map_err(&failed)?)?,
    ))
}

/// An application's steps, in (sequence id, attempt) order.
pub(crate) async fn steps(
    client: &Client,
    database: &Database,
    app: &AppRow,
) -> Result<Vec<StepRow>, TrackerError> {
    let failed = |e| database.error("read an application's steps", e);
    let rows = client
        .query(
            "SELECT sequence_id, attempt, action, started_at_us, ended_at_us, status, inputs, result, error, delta \
             FROM burr_tracker_steps WHERE app = $1 ORDER BY sequence_id, attempt",
            &[&app.id],
        )
        .await
        .map_err(failed)?;
    let (path, id) = (database.name.as_path(), app.app_id.as_str());
    let mut steps = Vec::with_capacity(rows.len());
    for row in rows {
        let text = |index: usize| -> Result<Option<String>, TrackerError> {
            row.try_get(index).map_err(failed)
        };
        let (sequence_id, attempt) = step_key(&row, path, id, failed)?;
        let inputs: String = row.try_get(6).map_err(failed)?;
        steps.push(StepRow {
            sequence_id,
            attempt,
            action: row.try_get(2).map_err(failed)?,
            started_at_us: row.try_get(3).map_err(failed)?,
            ended_at_us: row.try_get(4).map_err(failed)?,
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

/// The interrupted runs of an application's steps, oldest first.
pub(crate) async fn interrupted_runs(
    client: &Client,
    database: &Database,
    app: &AppRow,
) -> Result<Vec<InterruptedRun>, TrackerError> {
    let failed = |e| database.error("read an application's interrupted runs", e);
    let rows = client
        .query(
            "SELECT sequence_id, attempt, name, at_us, value FROM burr_tracker_events \
             WHERE app = $1 AND kind = 'interrupted_run' ORDER BY id",
            &[&app.id],
        )
        .await
        .map_err(failed)?;
    let (path, id) = (database.name.as_path(), app.app_id.as_str());
    let mut runs = Vec::with_capacity(rows.len());
    for row in rows {
        let (sequence_id, attempt) = step_key(&row, path, id, failed)?;
        let inputs: Option<String> = row.try_get(4).map_err(failed)?;
        runs.push(InterruptedRun {
            sequence_id,
            attempt,
            action: row
                .try_get::<_, Option<String>>(2)
                .map_err(failed)?
                .unwrap_or_default(),
            started_at_us: row.try_get(3).map_err(failed)?,
            inputs: inputs
                .map(|t| parse(path, id, "a step's inputs", &t))
                .transpose()?
                .unwrap_or(serde_json::Value::Null),
        });
    }
    Ok(runs)
}

/// The events within an application's steps, in the order they were recorded.
pub(crate) async fn events(
    client: &Client,
    database: &Database,
    app: &AppRow,
) -> Result<Vec<EventRow>, TrackerError> {
    let failed = |e| database.error("read an application's events", e);
    let rows = client
        .query(
            "SELECT sequence_id, attempt, kind, at_us, span_id, parent_span_id, name, value \
             FROM burr_tracker_events WHERE app = $1 ORDER BY id",
            &[&app.id],
        )
        .await
        .map_err(failed)?;
    let (path, id) = (database.name.as_path(), app.app_id.as_str());
    let mut events = Vec::with_capacity(rows.len());
    for row in rows {
        let (sequence_id, attempt) = step_key(&row, path, id, failed)?;
        let value: Option<String> = row.try_get(7).map_err(failed)?;
        events.push(EventRow {
            sequence_id,
            attempt,
            kind: row.try_get(2).map_err(failed)?,
            at_us: row.try_get(3).map_err(failed)?,
            span_id: row.try_get(4).map_err(failed)?,
            parent_span_id: row.try_get(5).map_err(failed)?,
            name: row.try_get(6).map_err(failed)?,
            value: value
                .map(|t| parse(path, id, "an event's value", &t))
                .transpose()?,
        });
    }
    Ok(events)
}

/// An application's state snapshots, in sequence id order.
pub(crate) async fn snapshots(
    client: &Client,
    database: &Database,
    app: &AppRow,
) -> Result<Vec<SnapshotRow>, TrackerError> {
    let failed = |e| database.error("read an application's state snapshots", e);
    let rows = client
        .query(
            "SELECT sequence_id, state FROM burr_tracker_snapshots WHERE app = $1 ORDER BY sequence_id",
            &[&app.id],
        )
        .await
        .map_err(failed)?;
    let mut snapshots = Vec::with_capacity(rows.len());
    for row in rows {
        let state: String = row.try_get(1).map_err(failed)?;
        snapshots.push(SnapshotRow {
            sequence_id: row.try_get(0).map_err(failed)?,
            state: parse(&database.name, &app.app_id, "a state snapshot", &state)?,
        });
    }
    Ok(snapshots)
}
