//! Opening a burr database: [`SqliteOptions`], the connections and their pragmas, the
//! schema with its version and migrations, and read-only opening.

use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, MAIN_DB};

use super::checkpointer::Checkpointer;
use super::layout::sqlite_error;
use super::write::KnownStates;
use super::{Inner, SqlitePersister};
use crate::persistence::ProcessIdentity;
use crate::persistence::{Clock, PersistenceError, SystemClock};

// --------------------------------------------------------------------------------------
// [`SqliteOptions`] and [`Durability`]: how a [`SqlitePersister`](super::SqlitePersister)
// opens its file and commits.
// --------------------------------------------------------------------------------------

/// What a returned [`save`](crate::persistence::Persister::save) survives.
///
/// Both settings commit every checkpoint before `save` returns, so before the next step
/// starts, and both keep the database consistent whatever happens (SQLite's WAL is
/// atomic: a checkpoint is stored whole or not at all).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Durability {
    /// `synchronous = NORMAL`: a commit is written to the WAL file but not flushed to the
    /// disk. A saved checkpoint survives the process crashing or being killed (the
    /// operating system has the bytes); an operating system crash or a power loss may
    /// lose the checkpoints committed since the WAL was last synced (at the latest, the
    /// last WAL checkpoint), but never leaves a partial one. The default.
    #[default]
    Normal,
    /// `synchronous = FULL`: every commit is flushed to the disk (`fsync`) before `save`
    /// returns. A saved checkpoint also survives an operating system crash or a power
    /// loss, if the disk honours flushes. Each commit costs a flush (from ~0.1 ms to
    /// several ms); checkpoints of concurrently running applications share one.
    Full,
}

impl Durability {
    /// The `synchronous` pragma value.
    pub(super) fn pragma(self) -> &'static str {
        match self {
            Durability::Normal => "NORMAL",
            Durability::Full => "FULL",
        }
    }
}

/// How to open a [`SqlitePersister`].
///
/// ```
/// use std::time::Duration;
/// use burr_core::persistence::{Durability, SqliteOptions};
///
/// let options = SqliteOptions::new()
///     .durability(Durability::Full)
///     .busy_timeout(Duration::from_secs(10));
/// # let _ = options;
/// ```
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    pub(super) durability: Durability,
    pub(super) busy_timeout: Duration,
    pub(super) clock: Arc<dyn Clock>,
    /// How a read-only persister opens its connections (`None` for a writer).
    pub(super) read_only: Option<ReadOnly>,
}

/// How a read-only persister opens the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ReadOnly {
    /// `SQLITE_OPEN_READ_ONLY`: sees every committed write.
    Shared,
    /// `immutable=1`, where the directory refuses the files a shared reader of a WAL
    /// database needs: SQLite takes no locks and reads no WAL, so what it shows may be
    /// stale.
    Immutable,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            durability: Durability::Normal,
            busy_timeout: Duration::from_secs(5),
            clock: Arc::new(SystemClock),
            read_only: None,
        }
    }
}

impl SqliteOptions {
    /// The defaults: [`Durability::Normal`], a busy timeout of 5 s.
    pub fn new() -> Self {
        Self::default()
    }

    /// What a saved checkpoint survives.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// How long a write waits for another process's transaction on the same file before
    /// failing with a SQLite "database is locked" error.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// The clock leases are judged by: when a lease expires, when a save or the
    /// background renews it. Default: [`SystemClock`]. A test gives a
    /// [`ManualClock`](crate::persistence::ManualClock) and advances it rather than
    /// waiting for a lease to age.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
}

// --------------------------------------------------------------------------------------
// Opening the writer's and the readers' connections, with their pragmas.
// --------------------------------------------------------------------------------------

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 128;

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
        .map_err(|e| classify(path, e))?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(|e| classify(path, e))?;
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
    checkpointer: &Arc<Checkpointer>,
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
    let mut conn = Connection::open_with_flags(path, flags).map_err(|e| classify(path, e))?;
    // SQLite opens a file it may not write read-only, and fails only at the first write.
    if conn.is_readonly(MAIN_DB).unwrap_or(false) {
        return Err(open_error(path, OpenProblem::ReadOnly));
    }
    configure(&conn, path, options)?;
    // Another process preparing the same new file (switching it to WAL) can make SQLite
    // answer "database is locked" without waiting (the busy handler is not called when
    // the journal mode changes): try again until the busy timeout.
    let deadline = std::time::Instant::now() + options.busy_timeout;
    loop {
        match prepare(&conn, path) {
            Err(error) if is_busy(&error) && std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(2));
            }
            prepared => break prepared?,
        }
    }
    conn.pragma_update(None, "synchronous", options.durability.pragma())
        .map_err(|e| classify(path, e))?;
    checkpointer
        .install(&mut conn)
        .map_err(|e| classify(path, e))?;
    Ok(conn)
}

/// Whether `error` is SQLite's "database is locked".
fn is_busy(error: &PersistenceError) -> bool {
    match error {
        PersistenceError::Sqlite { source, .. } => {
            source
                .downcast_ref::<rusqlite::Error>()
                .and_then(rusqlite::Error::sqlite_error_code)
                == Some(ErrorCode::DatabaseBusy)
        }
        _ => false,
    }
}

/// A reader's connection to a database the writer has prepared. It only reads
/// (`query_only`), and in WAL mode never waits for the writer.
pub(super) fn open_reader(
    path: &Path,
    options: &SqliteOptions,
) -> Result<Connection, PersistenceError> {
    if let Some(mode) = options.read_only {
        return open_read_only_connection(path, mode, options.busy_timeout)
            .map_err(|e| classify(path, e));
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| classify(path, e))?;
    configure(&conn, path, options)?;
    conn.pragma_update(None, "query_only", true)
        .map_err(|e| classify(path, e))?;
    Ok(conn)
}

// --------------------------------------------------------------------------------------
// The database schema: its DDL, its version, and the migrations run on open.
//
// A burr database is recognised by its SQLite `application_id` ([`APPLICATION_ID`], the
// bytes `BURR`); its schema version is SQLite's `user_version`. Opening a database runs
// the migrations from its version to [`SCHEMA_VERSION`] in one transaction; a database
// of a newer version is refused.
// --------------------------------------------------------------------------------------

/// `PRAGMA application_id` of a burr database: `BURR` in ASCII.
pub(super) const APPLICATION_ID: i64 = 0x4255_5252;

/// The schema version this build writes (`PRAGMA user_version`).
pub(super) const SCHEMA_VERSION: i64 = 4;

/// The page size of a new database. Small pages keep the bytes SQLite writes per commit
/// low (each commit appends every page it dirtied to the WAL): a checkpoint of small
/// values dirties one page.
pub(super) const PAGE_SIZE: i64 = 1024;

/// `MIGRATIONS[v]` turns a database of version `v` into version `v + 1`.
const MIGRATIONS: &[&str] = &[V1, V2, V3, V4];

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
/// ([`inline`](super::layout)). Every checkpoint of version 1 has its values in
/// `burr_values` (NULL: a base).
const V2: &str = "ALTER TABLE burr_checkpoints ADD COLUMN inline_values TEXT;";

/// Version 3: the content-addressed work cache (`burr_core::cache::SqliteCache`): one
/// row per (namespace, version, input hash). A rowid table, as values (embeddings,
/// memoized results) are often larger than a page.
const V3: &str = "
CREATE TABLE IF NOT EXISTS burr_cache (
    id            INTEGER PRIMARY KEY,
    namespace     TEXT NOT NULL,
    version       TEXT NOT NULL,
    input_hash    BLOB NOT NULL,
    value         BLOB NOT NULL,
    created_at_us INTEGER NOT NULL,
    UNIQUE (namespace, version, input_hash)
);
";

/// Version 4: the code an application was last built with (its application version and
/// graph fingerprint), and each fingerprint's graph description (JSON), stored once.
const V4: &str = "
ALTER TABLE burr_apps ADD COLUMN code_version TEXT;
ALTER TABLE burr_apps ADD COLUMN fingerprint TEXT;
CREATE TABLE IF NOT EXISTS burr_graphs (
    fingerprint TEXT PRIMARY KEY,
    description TEXT NOT NULL
) WITHOUT ROWID;
";

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

/// Open `path` read-only in `mode`.
fn open_read_only_connection(
    path: &Path,
    mode: ReadOnly,
    busy_timeout: Duration,
) -> Result<Connection, rusqlite::Error> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = match mode {
        ReadOnly::Shared => Connection::open_with_flags(path, flags)?,
        ReadOnly::Immutable => {
            Connection::open_with_flags(immutable_uri(path), flags | OpenFlags::SQLITE_OPEN_URI)?
        }
    };
    conn.busy_timeout(busy_timeout)?;
    Ok(conn)
}

/// Open `path` read-only, shared if SQLite can (the first read tells: a WAL database in a
/// directory that refuses its `-shm` file cannot be), else immutable.
fn open_read_only_probed(
    path: &Path,
    busy_timeout: Duration,
) -> Result<(Connection, ReadOnly), rusqlite::Error> {
    let shared = open_read_only_connection(path, ReadOnly::Shared, busy_timeout).and_then(|conn| {
        conn.query_row("PRAGMA schema_version", [], |_| Ok(()))?;
        Ok(conn)
    });
    match shared {
        Ok(conn) => Ok((conn, ReadOnly::Shared)),
        Err(error)
            if matches!(
                error.sqlite_error_code(),
                Some(ErrorCode::CannotOpen | ErrorCode::ReadOnly | ErrorCode::PermissionDenied)
            ) =>
        {
            let conn = open_read_only_connection(path, ReadOnly::Immutable, busy_timeout)?;
            Ok((conn, ReadOnly::Immutable))
        }
        Err(error) => Err(error),
    }
}

/// The `file:` URI of `path` with `immutable=1` (`%`, `?` and `#` escaped).
fn immutable_uri(path: &Path) -> String {
    let mut uri = String::from("file:");
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => uri.push_str("%25"),
            '?' => uri.push_str("%3f"),
            '#' => uri.push_str("%23"),
            c => uri.push(c),
        }
    }
    uri.push_str("?immutable=1");
    uri
}

// --------------------------------------------------------------------------------------
// Read-only access for inspection tools (the `burr-tracker` CLI): open an existing
// database without ever writing to it, list every application it holds, and tell
// whether a live runner holds an application's lease.
// --------------------------------------------------------------------------------------

impl SqlitePersister {
    /// Open the existing burr database at `path` for reading only: the file is opened
    /// with `SQLITE_OPEN_READ_ONLY`, and is never created, migrated or written.
    ///
    /// The read methods ([`load`](crate::persistence::Persister::load), the listings,
    /// [`list_apps`](Self::list_apps)) work as usual; the write methods (`save`,
    /// `register_app`, `delete_app`, `prune`, leases) fail with
    /// [`PersistenceError::Closed`].
    ///
    /// Fails with [`PersistenceError::Open`] when the file does not exist or cannot be
    /// read, [`PersistenceError::NotABurrDatabase`] when it is something else (or a burr
    /// database of an older schema, which [`open`](Self::open) migrates),
    /// [`PersistenceError::SchemaTooNew`] when a newer burr-rs wrote it.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Self, PersistenceError> {
        let path = path.as_ref().to_owned();
        if !path.is_file() {
            let problem = if path.exists() {
                io::Error::new(io::ErrorKind::InvalidInput, "it is not a file")
            } else {
                io::Error::new(io::ErrorKind::NotFound, "no such file")
            };
            return Err(open_error(&path, problem));
        }
        let mut options = SqliteOptions::default();
        let (conn, mode) =
            open_read_only_probed(&path, options.busy_timeout).map_err(|e| classify(&path, e))?;
        options.read_only = Some(mode);
        let read = |pragma: &str| {
            conn.query_row(pragma, [], |row| row.get::<_, i64>(0))
                .map_err(|e| classify(&path, e))
        };
        let (application_id, version) =
            (read("PRAGMA application_id")?, read("PRAGMA user_version")?);
        if application_id != APPLICATION_ID {
            let reason = if application_id == 0 {
                "it holds no burr checkpoints (its SQLite application id is not burr's)".to_owned()
            } else {
                format!("its SQLite application id is {application_id:#x}, not burr's ({APPLICATION_ID:#x})")
            };
            return Err(PersistenceError::NotABurrDatabase { path, reason });
        }
        if version > SCHEMA_VERSION {
            return Err(PersistenceError::SchemaTooNew {
                path,
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if version < SCHEMA_VERSION {
            return Err(PersistenceError::NotABurrDatabase {
                path,
                reason: format!(
                    "its schema version {version} is older than this build reads ({SCHEMA_VERSION}); \
                     open it once with SqlitePersister::open to migrate it"
                ),
            });
        }
        conn.set_prepared_statement_cache_capacity(16);
        Ok(SqlitePersister {
            inner: Arc::new(Inner {
                path,
                clock: Arc::clone(&options.clock),
                options,
                group: None,
                renewals: None,
                checkpoints: None,
                readers: Mutex::new(vec![conn]),
                known: Arc::new(Mutex::new(KnownStates::default())),
                graphs: Arc::default(),
                me: Arc::new(ProcessIdentity::current()),
                instance: String::new(),
                leases_taken: AtomicU64::new(0),
            }),
        })
    }

    /// Whether this read-only persister reads the file as immutable: its directory
    /// refused the files SQLite needs to share a WAL database with writers, so it takes no
    /// locks and reads no WAL, and what it shows may miss the latest writes.
    pub fn may_be_stale(&self) -> bool {
        self.inner.options.read_only == Some(ReadOnly::Immutable)
    }

    /// A read-only connection to this persister's file (for a tool that reads tables of
    /// its own from the same file), opened as a read-only persister's readers are:
    /// immutable when [`may_be_stale`](Self::may_be_stale), else shared.
    pub fn read_only_connection(&self) -> Result<Connection, PersistenceError> {
        let mode = self.inner.options.read_only.unwrap_or(ReadOnly::Shared);
        let path = &self.inner.path;
        open_read_only_connection(path, mode, self.inner.options.busy_timeout)
            .map_err(|e| classify(path, e))
    }
}
