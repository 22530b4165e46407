//! The tracker's tables, kept beside the checkpoints in a burr database, and their version.
//!
//! | table | one row per | columns |
//! |---|---|---|
//! | `burr_tracker_meta` | setting | `key`, `value`: `schema_version` |
//! | `burr_tracker_apps` | application | `id`, `partition_key` (`''` for none), `app_id`, `created_at_us`, `updated_at_us`, `graph` (JSON [`GraphRecord`](crate::GraphRecord), with the entrypoint), `fork_parent`, `spawning_parent` (JSON parent pointers) |
//! | `burr_tracker_snapshots` | application build | `app`, `sequence_id` (the step the state follows; `-1` before the first), `at_us`, `state` (JSON object) |
//! | `burr_tracker_steps` | step attempt | `app`, `sequence_id`, `attempt`, `action`, `started_at_us`, `ended_at_us`, `status` (NULL while running), `inputs`, `result`, `error` (JSON list: the error and its causes), `delta` (JSON `{"updated": {..}, "deleted": [..]}`) |
//! | `burr_tracker_events` | span start or end, attribute, stream event | `id`, `app`, `sequence_id`, `attempt`, `kind`, `at_us`, `span_id`, `parent_span_id`, `name`, `value` (JSON) |
//!
//! The state after step `s` is the latest snapshot at or before `s`, with the deltas of
//! the completed steps after it applied in order.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension};

use crate::TrackerError;

/// The tracker schema version this build writes.
pub(crate) const SCHEMA_VERSION: i64 = 1;

const V1: &str = "
CREATE TABLE IF NOT EXISTS burr_tracker_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS burr_tracker_apps (
    id              INTEGER PRIMARY KEY,
    partition_key   TEXT NOT NULL,
    app_id          TEXT NOT NULL,
    created_at_us   INTEGER NOT NULL,
    updated_at_us   INTEGER NOT NULL,
    graph           TEXT NOT NULL,
    fork_parent     TEXT,
    spawning_parent TEXT,
    UNIQUE (partition_key, app_id)
);

CREATE TABLE IF NOT EXISTS burr_tracker_snapshots (
    app         INTEGER NOT NULL,
    sequence_id INTEGER NOT NULL,
    at_us       INTEGER NOT NULL,
    state       TEXT NOT NULL,
    PRIMARY KEY (app, sequence_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS burr_tracker_steps (
    app           INTEGER NOT NULL,
    sequence_id   INTEGER NOT NULL,
    attempt       INTEGER NOT NULL,
    action        TEXT NOT NULL,
    started_at_us INTEGER NOT NULL,
    ended_at_us   INTEGER,
    status        TEXT,
    inputs        TEXT NOT NULL,
    result        TEXT,
    error         TEXT,
    delta         TEXT,
    PRIMARY KEY (app, sequence_id, attempt)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS burr_tracker_events (
    id             INTEGER PRIMARY KEY,
    app            INTEGER NOT NULL,
    sequence_id    INTEGER NOT NULL,
    attempt        INTEGER NOT NULL,
    kind           TEXT NOT NULL,
    at_us          INTEGER NOT NULL,
    span_id        INTEGER,
    parent_span_id INTEGER,
    name           TEXT,
    value          TEXT
);

CREATE INDEX IF NOT EXISTS burr_tracker_events_step
    ON burr_tracker_events (app, sequence_id, attempt);
";

/// The tracker schema version stored in the database, `None` when it has no tracker
/// tables.
pub(crate) fn stored_version(conn: &Connection, path: &Path) -> Result<Option<i64>, TrackerError> {
    let failed = |e| TrackerError::sqlite(path, e);
    let exists: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'burr_tracker_meta')",
            [],
            |row| row.get(0),
        )
        .map_err(failed)?;
    if !exists {
        return Ok(None);
    }
    let version: Option<String> = conn
        .query_row(
            "SELECT value FROM burr_tracker_meta WHERE key = 'schema_version'",
            [],
            |row| row.get(0),
        )
        .optional()
        .map_err(failed)?;
    match version {
        None => Ok(None),
        Some(text) => text.parse().map(Some).map_err(|_| TrackerError::Corrupt {
            path: path.to_owned(),
            app_id: String::new(),
            reason: format!("the tracker schema version `{text}` is not a number"),
        }),
    }
}

/// Refuse a schema newer than this build's.
pub(crate) fn check_version(found: i64, path: &Path) -> Result<(), TrackerError> {
    if found > SCHEMA_VERSION {
        return Err(TrackerError::SchemaTooNew {
            path: path.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(())
}

/// Create (or bring up to date) the tracker's tables, in one transaction.
pub(crate) fn prepare(conn: &Connection, path: &Path) -> Result<(), TrackerError> {
    if let Some(found) = stored_version(conn, path)? {
        check_version(found, path)?;
        if found == SCHEMA_VERSION {
            return Ok(());
        }
    }
    let failed = |e| TrackerError::sqlite(path, e);
    conn.execute_batch("BEGIN IMMEDIATE").map_err(failed)?;
    let outcome = (|| {
        // Another process may have created them meanwhile: read the version again.
        if let Some(found) = stored_version(conn, path)? {
            check_version(found, path)?;
        }
        conn.execute_batch(V1).map_err(failed)?;
        conn.execute(
            "INSERT INTO burr_tracker_meta (key, value) VALUES ('schema_version', ?1) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [SCHEMA_VERSION.to_string()],
        )
        .map_err(failed)?;
        conn.execute_batch("COMMIT").map_err(failed)
    })();
    if outcome.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    outcome
}
