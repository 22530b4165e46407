//! The two operations that write to a burr database: pruning an application's old steps
//! and deleting an application with its descendants, from both the checkpoints and the
//! tracker's tables.

mod checkpoints;
#[cfg(feature = "postgres")]
mod postgres;

use std::path::Path;
use std::time::Duration;

use burr_core::persistence::{Lease, PersistenceError};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde::Serialize;

use self::checkpoints::Checkpoints;
#[cfg(feature = "postgres")]
use super::source::Source;
use super::{state, App, Database};
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
    /// Whether nothing was removed: the counts are what a prune would remove.
    pub dry_run: bool,
}

/// How [`prune`] goes about it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PruneOptions {
    /// Remove every checkpoint when `keep_last` is 0 (refused otherwise: the next run
    /// would start over).
    pub all: bool,
    /// Count what would be removed, and remove nothing.
    pub dry_run: bool,
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
    /// How many applications it spawned, recursively, were deleted with it.
    pub descendants: usize,
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
    options: PruneOptions,
) -> Result<PruneReport, TrackerError> {
    let db = Database::open(path)?;
    let app = db.find(app_id, partition_key)?.clone();
    if keep_last == 0 && !options.all {
        return Err(TrackerError::PruneEverything {
            app_id: app.app_id.clone(),
        });
    }
    let report = PruneReport {
        app_id: app.app_id.clone(),
        partition_key: app.partition_key.clone(),
        checkpoints_removed: 0,
        tracked_steps_removed: 0,
        dry_run: options.dry_run,
    };
    // Like `delete`: refused while a live runner holds the application's (or its root's)
    // lease, which is held while pruning.
    let (owner_key, owner_id, persisted) = db.lease_owner(&app);
    let persister = if persisted || app.checkpointed {
        Checkpoints::open(path, &db)?
    } else {
        None
    };
    let lease = hold_lease(persister.as_ref(), owner_key.as_deref(), &owner_id).map_err(
        |held| match held {
            Held::By(holder) => TrackerError::PruneRunning {
                app_id: app.app_id.clone(),
                running: owner_id.clone(),
                holder,
            },
            Held::Failed(error) => error,
        },
    )?;
    let outcome = prune_held(
        path,
        &db,
        &app,
        keep_last,
        options,
        persister.as_ref(),
        report,
    );
    if let (Some(persister), Some(lease)) = (&persister, lease) {
        if let Err(error) = persister.release_lease(&lease) {
            tracing::warn!(app_id = %lease.app_id, %error, "could not give back the lease taken to prune");
        }
    }
    outcome
}

/// [`prune`], with the application's lease held.
fn prune_held(
    path: &Path,
    db: &Database,
    app: &App,
    keep_last: usize,
    options: PruneOptions,
    persister: Option<&Checkpoints>,
    mut report: PruneReport,
) -> Result<PruneReport, TrackerError> {
    let pk = app.partition_key.as_deref();
    if let (true, Some(persister)) = (app.checkpointed, persister) {
        report.checkpoints_removed = if options.dry_run {
            let rows = persister.list_checkpoints(pk, &app.app_id)?;
            rows.len().saturating_sub(keep_last)
        } else {
            persister.prune(pk, &app.app_id, keep_last)?
        };
    }
    let (true, Some(row)) = (db.source.tracked(), &app.tracked) else {
        return Ok(report);
    };
    let steps = db.source.steps(path, row)?;
    let snapshots = db.source.snapshots(path, row)?;
    let mut ids: Vec<u64> = steps.iter().map(|s| s.sequence_id).collect();
    ids.dedup();
    if ids.len() <= keep_last {
        return Ok(report);
    }
    let first_kept = ids.get(ids.len() - keep_last).copied();
    let last_removed = ids[ids.len() - keep_last - 1];
    if options.dry_run {
        report.tracked_steps_removed = steps
            .iter()
            .filter(|s| first_kept.is_none_or(|kept| s.sequence_id < kept))
            .count();
        return Ok(report);
    }
    // The state the kept steps build on, as a snapshot after the last removed step.
    let base = state::reconstruct_all(&snapshots, &steps, &[last_removed])
        .pop()
        .unwrap_or_default();
    let base_seq = i64::try_from(last_removed).unwrap_or(i64::MAX);
    let cut = first_kept.map_or(i64::MAX, |s| i64::try_from(s).unwrap_or(i64::MAX));
    #[cfg(feature = "postgres")]
    if let Source::Postgres { source, .. } = &db.source {
        let base = serde_json::Value::Object(base).to_string();
        report.tracked_steps_removed = postgres::prune(source, row.id, base_seq, base, cut)?;
        return Ok(report);
    }
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

/// Why [`hold_lease`] did not get the lease.
enum Held {
    /// A live runner holds it.
    By(String),
    /// The database failed.
    Failed(TrackerError),
}

/// Take the lease of the application `owner_id` (which `prune` or `delete` works under),
/// when there is a persister to take it from.
fn hold_lease(
    persister: Option<&Checkpoints>,
    owner_key: Option<&str>,
    owner_id: &str,
) -> Result<Option<Lease>, Held> {
    let Some(persister) = persister else {
        return Ok(None);
    };
    match persister.acquire_lease(owner_key, owner_id, DELETE_LEASE_TTL) {
        Ok(lease) => Ok(Some(lease)),
        Err(PersistenceError::AppLocked { holder, .. }) => Err(Held::By(holder)),
        Err(error) => Err(Held::Failed(error.into())),
    }
}

/// How long `delete` holds the lease of the application it deletes under (renewed in the
/// background while it works; given back when it is done).
const DELETE_LEASE_TTL: Duration = Duration::from_secs(60);

/// Delete an application and every application it spawned, recursively: their
/// checkpoints and their tracking data. Forks of it are kept (they are applications of
/// their own).
///
/// Refused with [`TrackerError::Running`], deleting nothing, while a live runner runs it:
/// `delete` first takes the lease of the application it runs under (itself, or the
/// root of its spawning parents, whose lease its children run under), so that no runner
/// starts while it deletes. Then it deletes the tracking data of them all in one
/// transaction, then their checkpoints, children before parents. Should the database
/// fail part-way ([`TrackerError::DeleteIncomplete`]), what remains is still a tree under
/// the application, and deleting it again finishes the work.
///
/// An application run without a persister has no lease: nothing tells whether it runs.
pub fn delete(
    path: &Path,
    app_id: &str,
    partition_key: Option<&str>,
) -> Result<DeleteReport, TrackerError> {
    let db = Database::open(path)?;
    let app = db.find(app_id, partition_key)?;
    let apps = db.with_descendants(app);
    let (owner_key, owner_id, persisted) = db.lease_owner(app);
    let persister = if persisted || apps.iter().any(|a| a.checkpointed) {
        Checkpoints::open(path, &db)?
    } else {
        None
    };
    let lease = hold_lease(persister.as_ref(), owner_key.as_deref(), &owner_id).map_err(
        |held| match held {
            Held::By(holder) => TrackerError::Running {
                app_id: app.app_id.clone(),
                running: owner_id.clone(),
                holder,
            },
            Held::Failed(error) => error,
        },
    )?;
    let outcome = delete_all(path, &db, &apps, persister.as_ref());
    if let (Some(persister), Some(lease)) = (&persister, lease) {
        if let Err(error) = persister.release_lease(&lease) {
            tracing::warn!(app_id = %lease.app_id, %error, "could not give back the lease taken to delete");
        }
    }
    let (checkpoints, tracked) = outcome?;
    Ok(DeleteReport {
        app_id: app.app_id.clone(),
        partition_key: app.partition_key.clone(),
        checkpoints,
        tracked,
        descendants: apps.len().saturating_sub(1),
    })
}

/// Delete `apps` (children before parents, the application asked for last): the
/// tracking data of them all in one transaction, then the checkpoints of each. Whether
/// the last one had checkpoints, and tracking data.
fn delete_all(
    path: &Path,
    db: &Database,
    apps: &[&App],
    persister: Option<&Checkpoints>,
) -> Result<(bool, bool), TrackerError> {
    let Some(target) = apps.last() else {
        return Ok((false, false));
    };
    let mut tracked = false;
    // Whether anything was deleted yet (a failure after that is reported as such).
    let mut changed = false;
    #[cfg(feature = "postgres")]
    if let (Source::Postgres { source, .. }, true) = (&db.source, apps.iter().any(|a| a.tracked()))
    {
        let tracked_apps: Vec<&App> = apps.iter().copied().filter(|a| a.tracked()).collect();
        let keys = tracked_apps
            .iter()
            .map(|a| (a.partition_key.clone(), a.app_id.clone()))
            .collect();
        for (app, existed) in tracked_apps.iter().zip(postgres::delete(source, keys)?) {
            if existed {
                tracked |= std::ptr::eq(*app, *target);
                changed = true;
            }
        }
    }
    if db.source.sqlite_tracker().is_some() && apps.iter().any(|a| a.tracked()) {
        let conn = open_tracker(path)?;
        let sqlite = |e| TrackerError::sqlite(path, e);
        let tx =
            rusqlite::Transaction::new_unchecked(&conn, rusqlite::TransactionBehavior::Immediate)
                .map_err(sqlite)?;
        for app in apps.iter().filter(|a| a.tracked()) {
            let pk = app.partition_key.as_deref();
            let Some(id) = tracker_row(&tx, path, pk, &app.app_id)? else {
                continue;
            };
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
            tracked |= std::ptr::eq(*app, *target);
            changed = true;
        }
        tx.commit().map_err(sqlite)?;
    }
    let mut checkpoints = false;
    if let Some(persister) = persister {
        for (i, app) in apps.iter().enumerate() {
            if !app.checkpointed {
                continue;
            }
            let deleted = persister.delete_app(app.partition_key.as_deref(), &app.app_id);
            match deleted {
                Ok(existed) => {
                    changed = true;
                    if std::ptr::eq(*app, *target) {
                        checkpoints = existed;
                    }
                }
                Err(error) if !changed => return Err(error.into()),
                Err(error) => {
                    // Those before it, and those only the tracker knew.
                    let gone = apps
                        .iter()
                        .enumerate()
                        .filter(|(j, a)| *j < i || !a.checkpointed)
                        .count();
                    return Err(TrackerError::DeleteIncomplete {
                        app_id: target.app_id.clone(),
                        deleted: gone,
                        total: apps.len(),
                        source: Box::new(error.into()),
                    });
                }
            }
        }
    }
    Ok((checkpoints, tracked))
}
