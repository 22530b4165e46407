//! Opening the writer's and the readers' connections, with their pragmas.

use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, MAIN_DB};

use super::options::SqliteOptions;
use super::schema;
use crate::persistence::PersistenceError;

/// WAL frames (pages) after which a commit checkpoints the WAL into the database
/// (SQLite's default is 1,000). A checkpoint costs two flushes, so the WAL may grow to
/// ~2 MiB (with 1 KiB pages) between them; that much at most is what the first process
/// to open the file after a crash reads to recover it (~2 ms).
pub(super) const WAL_AUTOCHECKPOINT: i64 = 2_000;

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 64;

/// Settings of every connection: the busy timeout, a statement cache, and SQLite's query
/// planner stability guarantee. Without it, SQLite (3.54, built with `STAT4`) recompiles
/// a prepared statement whenever a parameter compared to an indexed column gets a new
/// value, which made the queries behind `load` cost a compilation each.
fn configure(
    conn: &Connection,
    path: &Path,
    options: &SqliteOptions,
) -> Result<(), PersistenceError> {
    conn.busy_timeout(options.busy_timeout)
        .map_err(|e| schema::classify(path, e))?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(|e| schema::classify(path, e))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(())
}

/// Why a database could not be opened, beyond SQLite's own errors.
#[derive(Debug, thiserror::Error)]
pub(super) enum OpenProblem {
    /// The file's directory does not exist.
    #[error("directory `{0}` does not exist")]
    MissingDirectory(PathBuf),
    /// SQLite refused WAL mode.
    #[error("cannot switch the database to WAL mode (it stays in `{0}` mode)")]
    NoWal(String),
    /// The file may be read but not written.
    #[error("the file is read-only")]
    ReadOnly,
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
    // Create the file here rather than let SQLite do it: SQLite reports any failure as
    // "unable to open database file", the operating system says why (permission
    // denied, read-only file system...). An empty file is a new database to SQLite.
    // (`:memory:` is SQLite's name for no file: it is refused below, as it has no WAL.)
    if path != Path::new(":memory:") {
        match OpenOptions::new().write(true).create_new(true).open(path) {
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(open_error(path, error)),
        }
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| schema::classify(path, e))?;
    // SQLite opens a file it may not write read-only, and fails only at the first write.
    if conn.is_readonly(MAIN_DB).unwrap_or(false) {
        return Err(open_error(path, OpenProblem::ReadOnly));
    }
    configure(&conn, path, options)?;
    schema::prepare(&conn, path)?;
    conn.pragma_update(None, "synchronous", options.durability.pragma())
        .map_err(|e| schema::classify(path, e))?;
    conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT)
        .map_err(|e| schema::classify(path, e))?;
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
    configure(&conn, path, options)?;
    conn.pragma_update(None, "query_only", true)
        .map_err(|e| schema::classify(path, e))?;
    Ok(conn)
}
