//! Opening the writer's and the readers' connections, with their pragmas.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use super::options::SqliteOptions;
use super::schema;
use crate::persistence::PersistenceError;

/// WAL frames (pages) after which a commit checkpoints the WAL into the database
/// (SQLite's default is 1,000). With 1 KiB pages the WAL stays under ~4 MiB, so the
/// recovery a process runs after a crash reads at most that much.
const WAL_AUTOCHECKPOINT: i64 = 4_000;

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 64;

/// Why a database could not be opened, beyond SQLite's own errors.
#[derive(Debug, thiserror::Error)]
pub(super) enum OpenProblem {
    /// The file's directory does not exist.
    #[error("directory `{0}` does not exist")]
    MissingDirectory(PathBuf),
    /// SQLite refused WAL mode.
    #[error("cannot switch the database to WAL mode (it stays in `{0}` mode)")]
    NoWal(String),
}

/// [`PersistenceError::Open`] for `path`.
pub(super) fn open_error(
    path: &Path,
    source: impl std::error::Error + Send + Sync + 'static,
) -> PersistenceError {
    PersistenceError::Open {
        path: path.to_owned(),
        source: Box::new(source),
    }
}

/// The writer's connection: creates the file if needed, checks it is a burr database,
/// migrates its schema, and sets the durability.
pub(super) fn open_writer(
    path: &Path,
    options: &SqliteOptions,
) -> Result<Connection, PersistenceError> {
    if let Some(directory) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !directory.is_dir() {
            return Err(open_error(
                path,
                OpenProblem::MissingDirectory(directory.to_owned()),
            ));
        }
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| schema::classify(path, e))?;
    conn.busy_timeout(options.busy_timeout)
        .map_err(|e| schema::classify(path, e))?;
    schema::prepare(&conn, path)?;
    conn.pragma_update(None, "synchronous", options.durability.pragma())
        .map_err(|e| schema::classify(path, e))?;
    conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT)
        .map_err(|e| schema::classify(path, e))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// A reader's connection to a database the writer has prepared. It only reads
/// (`query_only`), and in WAL mode never waits for the writer.
pub(super) fn open_reader(
    path: &Path,
    options: &SqliteOptions,
) -> Result<Connection, PersistenceError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| schema::classify(path, e))?;
    conn.busy_timeout(options.busy_timeout)
        .map_err(|e| schema::classify(path, e))?;
    conn.pragma_update(None, "query_only", true)
        .map_err(|e| schema::classify(path, e))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}
