//! The database schema: its DDL, its version, and the migrations run on open.
//!
//! A burr database is recognised by its SQLite `application_id` ([`APPLICATION_ID`], the
//! bytes `BURR`); its schema version is SQLite's `user_version`. Opening a database runs
//! the migrations from its version to [`SCHEMA_VERSION`] in one transaction; a database
//! of a newer version is refused.

use std::path::Path;

use rusqlite::{Connection, ErrorCode, OptionalExtension};

use super::codec::sqlite_error;
use super::connection::{open_error, OpenProblem};
use crate::persistence::PersistenceError;

/// `PRAGMA application_id` of a burr database: `BURR` in ASCII.
pub(super) const APPLICATION_ID: i64 = 0x4255_5252;

/// The schema version this build writes (`PRAGMA user_version`).
pub(super) const SCHEMA_VERSION: i64 = 2;

/// The page size of a new database. Small pages keep the bytes SQLite writes per commit
/// low (each commit appends every page it dirtied to the WAL): a checkpoint of small
/// values dirties one page.
pub(super) const PAGE_SIZE: i64 = 1024;

/// `MIGRATIONS[v]` turns a database of version `v` into version `v + 1`.
const MIGRATIONS: &[&str] = &[V1, V2];

/// Version 1: applications, checkpoints, the values they set, leases.
const V1: &str = "
CREATE TABLE IF NOT EXISTS burr_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS burr_apps (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    partition_key   TEXT NOT NULL,
    app_id          TEXT NOT NULL,
    created_at_us   INTEGER NOT NULL,
    fork_parent     TEXT,
    spawning_parent TEXT,
    UNIQUE (partition_key, app_id)
);

CREATE TABLE IF NOT EXISTS burr_checkpoints (
    app           INTEGER NOT NULL,
    sequence_id   INTEGER NOT NULL,
    attempt       INTEGER NOT NULL,
    position      TEXT NOT NULL,
    status        TEXT NOT NULL,
    prior_step    TEXT,
    created_at_us INTEGER NOT NULL,
    changed_keys  TEXT NOT NULL,
    error         TEXT,
    PRIMARY KEY (app, sequence_id, attempt)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS burr_values (
    app         INTEGER NOT NULL,
    key         TEXT NOT NULL,
    sequence_id INTEGER NOT NULL,
    value       TEXT,
    PRIMARY KEY (app, key, sequence_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS burr_leases (
    partition_key  TEXT NOT NULL,
    app_id         TEXT NOT NULL,
    holder         TEXT NOT NULL,
    host           TEXT NOT NULL,
    machine        TEXT NOT NULL,
    pid            INTEGER NOT NULL,
    pid_started    INTEGER,
    acquired_at_us INTEGER NOT NULL,
    expires_at_us  INTEGER NOT NULL,
    PRIMARY KEY (partition_key, app_id)
) WITHOUT ROWID;
";

/// Version 2: a checkpoint's small values are kept in its own row
/// ([`inline`](super::inline)). Every checkpoint of version 1 has its values in
/// `burr_values` (NULL: a base).
const V2: &str = "ALTER TABLE burr_checkpoints ADD COLUMN inline_values TEXT;";

/// Check that the database at `path` is a burr database this build can use, create or
/// migrate its schema, and switch it to WAL mode.
pub(super) fn prepare(conn: &Connection, path: &Path) -> Result<(), PersistenceError> {
    let (application_id, version) = identify(conn, path)?;
    let ours = application_id == APPLICATION_ID;
    if ours && version > SCHEMA_VERSION {
        return Err(too_new(path, version));
    }
    if !ours {
        if application_id != 0 {
            return Err(PersistenceError::NotABurrDatabase {
                path: path.to_owned(),
                reason: format!("its SQLite application id is {application_id:#x}, not burr's ({APPLICATION_ID:#x})"),
            });
        }
        let foreign = foreign_tables(conn, path)?;
        if !foreign.is_empty() {
            return Err(PersistenceError::NotABurrDatabase {
                path: path.to_owned(),
                reason: format!(
                    "it is a SQLite database of something else (tables {})",
                    foreign.join(", ")
                ),
            });
        }
        let pages: i64 = conn
            .query_row("PRAGMA page_count", [], |row| row.get(0))
            .map_err(|error| classify(path, error))?;
        if pages == 0 {
            conn.pragma_update(None, "page_size", PAGE_SIZE)
                .map_err(|error| classify(path, error))?;
        }
    }
    use_wal(conn, path)?;
    if !ours || version < SCHEMA_VERSION {
        migrate(conn, path)?;
    }
    Ok(())
}

/// The database's application id and schema version. Fails for a file that is not a
/// SQLite database.
fn identify(conn: &Connection, path: &Path) -> Result<(i64, i64), PersistenceError> {
    let read = |pragma: &str| {
        conn.query_row(pragma, [], |row| row.get::<_, i64>(0))
            .map_err(|error| classify(path, error))
    };
    Ok((read("PRAGMA application_id")?, read("PRAGMA user_version")?))
}

/// Tables that are neither SQLite's nor burr's (burr's, and the tracker's, are named
/// `burr_*`).
fn foreign_tables(conn: &Connection, path: &Path) -> Result<Vec<String>, PersistenceError> {
    let mut statement = conn
        .prepare(
            "SELECT name FROM sqlite_schema WHERE type IN ('table', 'view') \
             AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE 'burr\\_%' ESCAPE '\\' \
             ORDER BY name",
        )
        .map_err(|error| classify(path, error))?;
    let names = statement
        .query_map([], |row| row.get::<_, String>(0))
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(|error| classify(path, error))?;
    Ok(names)
}

/// Switch to WAL mode (a persistent setting of the file) if it is not on already.
fn use_wal(conn: &Connection, path: &Path) -> Result<(), PersistenceError> {
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .map_err(|error| classify(path, error))?;
    if mode.eq_ignore_ascii_case("wal") {
        return Ok(());
    }
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .map_err(|error| classify(path, error))?;
    if mode.eq_ignore_ascii_case("wal") {
        Ok(())
    } else {
        Err(open_error(path, OpenProblem::NoWal(mode)))
    }
}

/// Bring the schema to [`SCHEMA_VERSION`] in one transaction. Another process may be
/// doing the same: the version is read again under the write lock.
fn migrate(conn: &Connection, path: &Path) -> Result<(), PersistenceError> {
    let failed = |error| classify(path, error);
    conn.execute_batch("BEGIN IMMEDIATE").map_err(failed)?;
    let outcome = (|| {
        let (application_id, version) = identify(conn, path)?;
        let from = if application_id == APPLICATION_ID {
            version
        } else {
            0
        };
        if from > SCHEMA_VERSION {
            return Err(too_new(path, from));
        }
        let from = usize::try_from(from).unwrap_or_default();
        for step in MIGRATIONS.iter().skip(from) {
            conn.execute_batch(step).map_err(failed)?;
        }
        conn.pragma_update(None, "application_id", APPLICATION_ID)
            .map_err(failed)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(failed)?;
        conn.execute(
            "INSERT INTO burr_meta (key, value) VALUES ('schema_version', ?1) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [SCHEMA_VERSION.to_string()],
        )
        .map_err(failed)?;
        let created: Option<String> = conn
            .query_row(
                "SELECT value FROM burr_meta WHERE key = 'created_by'",
                [],
                |row| row.get(0),
            )
            .optional()
            .map_err(failed)?;
        if created.is_none() {
            conn.execute(
                "INSERT INTO burr_meta (key, value) VALUES ('created_by', ?1)",
                [concat!("burr-rs ", env!("CARGO_PKG_VERSION"))],
            )
            .map_err(failed)?;
        }
        conn.execute_batch("COMMIT").map_err(failed)
    })();
    if outcome.is_err() {
        // Nothing was changed; a failed rollback leaves nothing either.
        let _ = conn.execute_batch("ROLLBACK");
    }
    outcome
}

fn too_new(path: &Path, found: i64) -> PersistenceError {
    PersistenceError::SchemaTooNew {
        path: path.to_owned(),
        found,
        supported: SCHEMA_VERSION,
    }
}

/// A SQLite error met while opening: a file that is not a database, one that cannot be
/// opened (missing, read-only), or another SQLite error.
pub(super) fn classify(path: &Path, error: rusqlite::Error) -> PersistenceError {
    match error.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => PersistenceError::NotABurrDatabase {
            path: path.to_owned(),
            reason: "the file is not a SQLite database".to_owned(),
        },
        Some(ErrorCode::DatabaseCorrupt) => PersistenceError::NotABurrDatabase {
            path: path.to_owned(),
            reason: "the SQLite database is corrupt".to_owned(),
        },
        Some(
            ErrorCode::CannotOpen
            | ErrorCode::ReadOnly
            | ErrorCode::PermissionDenied
            | ErrorCode::SystemIoFailure
            | ErrorCode::DiskFull
            | ErrorCode::FileLockingProtocolFailed,
        ) => open_error(path, error),
        _ => sqlite_error(path, error),
    }
}
