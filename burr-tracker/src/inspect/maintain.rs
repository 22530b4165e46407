//! The two operations that write to a burr database: pruning an application's old steps
//! and deleting an application, from both the checkpoints and the tracker's tables.

use std::path::Path;

use burr_core::persistence::{Persister, SqlitePersister};
use futures::executor::block_on;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde::Serialize;

use super::{state, Database};
use crate::store::read;
use crate::TrackerError;

/// What [`prune`] removed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PruneReport {
    /// The application.
    pub app_id: String,
    /// Its partition key.
    pub partition_key: Option<String>,
    /// Checkpoints removed.
    pub checkpoints_removed: usize,
    /// Tracked step attempts removed.
    pub tracked_steps_removed: usize,
}

/// What [`delete`] removed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeleteReport {
    /// The application.
    pub app_id: String,
    /// Its partition key.
    pub partition_key: Option<String>,
    /// Whether it had checkpoints.
    pub checkpoints: bool,
    /// Whether it had tracking data.
    pub tracked: bool,
}

fn open_tracker(path: &Path) -> Result<Connection, TrackerError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn =
        Connection::open_with_flags(path, flags).map_err(|e| TrackerError::sqlite(path, e))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|e| TrackerError::sqlite(path, e))?;
    Ok(conn)
}

fn tracker_row(
    conn: &Connection,
    path: &Path,
    partition_key: Option<&str>,
    app_id: &str,
) -> Result<Option<i64>, TrackerError> {
    conn.query_row(
        "SELECT id FROM burr_tracker_apps WHERE partition_key = ?1 AND app_id = ?2",
        params![partition_key.unwrap_or(""), app_id],
        |row| row.get(0),
    )
    .optional()
    .map_err(|e| TrackerError::sqlite(path, e))
}

/// Keep only the last `keep_last` steps of an application, in its checkpoints (through
/// the persister's own prune) and in the tracker's tables. The state at every kept step
/// stays readable.
pub fn prune(
    path: &Path,
    app_id: &str,
    partition_key: Option<&str>,
    keep_last: usize,
) -> Result<PruneReport, TrackerError> {
    let db = Database::open(path)?;
    let app = db.find(app_id, partition_key)?.clone();
    let pk = app.partition_key.as_deref();
    let mut report = PruneReport {
        app_id: app.app_id.clone(),
        partition_key: app.partition_key.clone(),
        checkpoints_removed: 0,
        tracked_steps_removed: 0,
    };
    if app.checkpointed {
        let persister = SqlitePersister::open(path)?;
        report.checkpoints_removed = block_on(persister.prune(pk, &app.app_id, keep_last))?;
    }
    let (Some(conn), Some(row)) = (&db.tracker, &app.tracked) else {
        return Ok(report);
    };
    let steps = read::steps(conn, path, row)?;
    let snapshots = read::snapshots(conn, path, row)?;
    let mut ids: Vec<u64> = steps.iter().map(|s| s.sequence_id).collect();
    ids.dedup();
    if ids.len() <= keep_last {
        return Ok(report);
    }
    let first_kept = ids.get(ids.len() - keep_last).copied();
    let last_removed = ids[ids.len() - keep_last - 1];
    // The state the kept steps build on, as a snapshot after the last removed step.
    let base = state::reconstruct_all(&snapshots, &steps, &[last_removed])
        .pop()
        .unwrap_or_default();
    let base_seq = i64::try_from(last_removed).unwrap_or(i64::MAX);
    let cut = first_kept.map_or(i64::MAX, |s| i64::try_from(s).unwrap_or(i64::MAX));
    let conn = open_tracker(path)?;
    let sqlite = |e| TrackerError::sqlite(path, e);
    let tx = rusqlite::Transaction::new_unchecked(&conn, rusqlite::TransactionBehavior::Immediate)
        .map_err(sqlite)?;
    tx.execute(
        "INSERT OR REPLACE INTO burr_tracker_snapshots (app, sequence_id, at_us, state) \
         VALUES (?1, ?2, (SELECT coalesce(max(ended_at_us), 0) FROM burr_tracker_steps WHERE app = ?1 AND sequence_id = ?2), ?3)",
        params![row.id, base_seq, serde_json::Value::Object(base).to_string()],
    )
    .map_err(sqlite)?;
    tx.execute(
        "DELETE FROM burr_tracker_snapshots WHERE app = ?1 AND sequence_id < ?2",
        params![row.id, base_seq],
    )
    .map_err(sqlite)?;
    report.tracked_steps_removed = tx
        .execute(
            "DELETE FROM burr_tracker_steps WHERE app = ?1 AND sequence_id < ?2",
            params![row.id, cut],
        )
        .map_err(sqlite)?;
    tx.execute(
        "DELETE FROM burr_tracker_events WHERE app = ?1 AND sequence_id < ?2",
        params![row.id, cut],
    )
    .map_err(sqlite)?;
    tx.commit().map_err(sqlite)?;
    Ok(report)
}

/// Delete an application: its checkpoints (refused by the persister while a live runner
/// holds its lease) and its tracking data. Its children are kept.
pub fn delete(
    path: &Path,
    app_id: &str,
    partition_key: Option<&str>,
) -> Result<DeleteReport, TrackerError> {
    let db = Database::open(path)?;
    let app = db.find(app_id, partition_key)?.clone();
    let pk = app.partition_key.as_deref();
    let mut report = DeleteReport {
        app_id: app.app_id.clone(),
        partition_key: app.partition_key.clone(),
        checkpoints: false,
        tracked: false,
    };
    if app.checkpointed {
        let persister = SqlitePersister::open(path)?;
        report.checkpoints = block_on(persister.delete_app(pk, &app.app_id))?;
    }
    if db.tracker.is_some() && app.tracked() {
        let conn = open_tracker(path)?;
        let sqlite = |e| TrackerError::sqlite(path, e);
        let tx =
            rusqlite::Transaction::new_unchecked(&conn, rusqlite::TransactionBehavior::Immediate)
                .map_err(sqlite)?;
        if let Some(id) = tracker_row(&tx, path, pk, &app.app_id)? {
            for table in [
                "burr_tracker_events",
                "burr_tracker_steps",
                "burr_tracker_snapshots",
            ] {
                tx.execute(&format!("DELETE FROM {table} WHERE app = ?1"), [id])
                    .map_err(sqlite)?;
            }
            tx.execute("DELETE FROM burr_tracker_apps WHERE id = ?1", [id])
                .map_err(sqlite)?;
            report.tracked = true;
        }
        tx.commit().map_err(sqlite)?;
    }
    Ok(report)
}
