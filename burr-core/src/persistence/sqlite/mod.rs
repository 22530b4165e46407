//! [`SqlitePersister`]: checkpoints in a SQLite file, shared safely by several processes.
//!
//! The type's documentation describes its guarantees and the schema; the files here are
//! its parts, one concept each: [`open`] (options, connections, schema and migrations,
//! read-only opening), [`commit`] (group commit: the queue, its leader, the writer and
//! its transactions), [`write`] (what each write does in a transaction), [`read`] (the
//! state at a sequence id, listings), [`lease`] (one runner per app id), [`layout`]
//! (columns, inline values and their compaction).

mod checkpointer;
mod commit;
mod layout;
mod lease;
mod open;
mod read;
mod write;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::Connection;

use self::checkpointer::Checkpointer;
use self::commit::{Group, Op, Reply, Spare, Waiting, Writer};
use self::layout::{app_key, sequence_column, Failure};
use self::open::open_error;
use self::write::{GraphSet, Known, KnownStates};
use crate::persistence::ProcessIdentity;
use crate::persistence::{
    AppRecord, AppRecords, Checkpoint, CheckpointInfo, ChildListing, Clock, CodeVersion, Delete,
    History, Lease, Leases, LoadedCheckpoint, PersistenceError, Persister, Prune,
};

/// The writer's maps keyed by application, with foldhash's randomly seeded hasher:
/// std's SipHash cost more than the lookups it serves on the checkpoint path.
type AppMap<V> =
    std::collections::HashMap<crate::persistence::columns::AppKey, V, foldhash::fast::RandomState>;

pub use self::lease::LeaseStatus;
pub use self::open::{Durability, SqliteOptions};

/// Reader connections kept open for reuse.
const MAX_IDLE_READERS: usize = 8;

/// A [`Persister`] that keeps checkpoints in a SQLite file, shared safely by several
/// processes. Cloning shares the file, the write connection and the readers.
///
/// # Guarantees
///
/// - **Every step is saved before the next starts.** [`save`](Persister::save) returns
///   once the checkpoint's transaction has committed. What a committed checkpoint
///   survives is the [`Durability`]: a process crash with [`Durability::Normal`] (the
///   default, `synchronous = NORMAL`), also an operating system crash or a power loss
///   with [`Durability::Full`] (`synchronous = FULL`, an `fsync` per commit). Either way
///   a checkpoint is stored whole or not at all.
/// - **A checkpoint costs what changed.** A step writes one row: the checkpoint, with
///   the values it set or deleted in it when they are small (up to
///   [`INLINE_MAX_BYTES`](Self::INLINE_MAX_BYTES) of JSON), else one more row per key; a value no step touches is stored once, however large.
///   [`load`](Persister::load) rebuilds the exact state at any sequence id.
/// - **One writer, group commit.** One write connection, taken in turns by the callers:
///   a caller that finds it free (after letting the other tasks of its thread run,
///   until they stop queueing saves) commits its save in its own thread (an application
///   checkpointing alone never waits for another thread), together with the saves of
///   every other application of the process queued meanwhile; a caller that finds it
///   taken has its save committed in the holder's next transaction, which commits once
///   for all. A caller waiting for another's commit polls for it when it is the only
///   one waiting (up to about twice the recent commit time, at most 1 ms) rather than
///   sleeping, as being woken up costs as much as the commit. The commit runs on the
///   calling thread (on a multi-thread tokio runtime with [`Durability::Full`], inside
///   [`block_in_place`](tokio::task::block_in_place), so the runtime's other tasks move
///   elsewhere while it flushes).
/// - **Readers are never blocked by the writer**: the file is in WAL mode and reads use
///   their own connections (a read that finds none idle and the write connection free
///   runs on it rather than open one: a resume's load, the first read of its process,
///   does not pay for a connection). Several processes may use the same file at once; their
///   writers take turns (each waits up to the busy timeout, 5 s by default).
/// - **One runner per app id**, across processes: [`acquire_lease`](Leases::acquire_lease)
///   fails with [`PersistenceError::AppLocked`] while a live runner holds the app's
///   lease. The lease is renewed by saves and, while its holder lives, in the background;
///   it is free once it expires (its holder stopped renewing it: crashed, hung, or on a
///   machine that went away) or, on the same machine, as soon as its holder's process
///   has exited. A crashed run can be resumed without clean-up.
/// - **Errors name the file** (and the app id and sequence id where they apply); a
///   failed load changes nothing.
///
/// # Schema (version 4)
///
/// A burr database has SQLite `application_id` `0x42555252` (`BURR`) and its schema
/// version in `user_version` (also in `burr_meta`). Opening a database migrates it to the
/// current version; a database written by a newer burr-rs is refused
/// ([`PersistenceError::SchemaTooNew`]), and so is a file that is not a burr database
/// ([`PersistenceError::NotABurrDatabase`]: not SQLite, or holding tables other than
/// `burr_*` ones). New files use 1 KiB pages ([`PAGE_SIZE`](Self::PAGE_SIZE)): every
/// commit appends each page it dirtied to the WAL, and a checkpoint of small values
/// dirties one.
///
/// | table | one row per | columns |
/// |---|---|---|
/// | `burr_meta` | setting | `key`, `value`: `schema_version`, `created_by` |
/// | `burr_apps` | application | `id` (row id, never reused), `partition_key` (`''` for none), `app_id`, `created_at_us`, `fork_parent` and `spawning_parent` (JSON parent pointers), `code_version` and `fingerprint` (the code it was last built with) |
/// | `burr_graphs` | graph fingerprint | `fingerprint`, `description` (the graph's JSON description) |
/// | `burr_checkpoints` | saved step (every attempt) | `app` (`burr_apps.id`), `sequence_id`, `attempt`, `position` (the action), `status` (`completed`, `failed`, `cancelled`), `prior_step` (`''`: the same as `position`), `created_at_us`, `changed_keys` (JSON list; `''`: the keys of `inline_values`), `error`, `inline_values` (see below); key (`app`, `sequence_id`, `attempt`) |
/// | `burr_values` | key set or deleted at a base | `app`, `key`, `sequence_id`, `value` (JSON text; NULL: deleted); key (`app`, `key`, `sequence_id`) |
/// | `burr_leases` | running application | `partition_key`, `app_id`, `holder`, `host`, `machine`, `pid`, `pid_started`, `acquired_at_us`, `expires_at_us` |
/// | `burr_cache` | cached piece of work (`burr_core::cache::SqliteCache`) | `id`, `namespace` (what computed it), `version` (its version), `input_hash` (32 bytes: SHA-256 of what went in), `value` (bytes), `created_at_us`; unique (`namespace`, `version`, `input_hash`) |
///
/// Times are microseconds since the Unix epoch. A step stores, at its sequence id, the
/// values of its state that differ from the state stored before it: what the step
/// changed, plus whatever the application changed outside a step (its initial state, a
/// fork's state, `override_state_values`). So a failed step, whose state is the state
/// before it, usually stores none. A retry of a failed step keeps its sequence id, with
/// the next attempt.
///
/// Where those values go:
///
/// - When their JSON is small ([`INLINE_MAX_BYTES`](Self::INLINE_MAX_BYTES) at most,
///   together), in the checkpoint's own row:
///   `inline_values` is a JSON array with `["key", value]` for a key set and `["key"]`
///   for a key deleted.
/// - Otherwise in `burr_values`, one row per key, and `inline_values` is NULL. Such a
///   checkpoint is a *base*: for each key, its `burr_values` row with the greatest
///   `sequence_id` at or before the base's is its value there, unless that row is a
///   deletion.
/// - Once [`COMPACT_AFTER`](Self::COMPACT_AFTER) checkpoints with inline values follow the
///   latest base (and before a
///   checkpoint writes to `burr_values`, and before a prune), they are *compacted*: each
///   key they changed gets one `burr_values` row, its last value, at the sequence id of
///   the latest of them, whose `inline_values` becomes NULL: a base.
///
/// The state at sequence id `s` is the state of the latest base at or before `s`, with
/// the inline values of the checkpoints after it up to `s` applied in (sequence id,
/// attempt) order: one indexed query per key and at most
/// [`COMPACT_AFTER`](Self::COMPACT_AFTER) rows read.
///
/// [`prune`](Prune::prune) makes the oldest kept checkpoint a base, moves the values
/// it needs to its sequence id and deletes older rows, so every kept checkpoint still
/// loads.
///
/// # Limits
///
/// - An empty partition key is the same as none.
/// - An application cannot be rewound in place: a checkpoint before the latest stored
///   one is refused ([`PersistenceError::OutOfOrder`]); fork it into a new app id.
/// - Deleting a running application from another process (not this persister) is not
///   detected by the runner; [`delete_app`](Delete::delete_app) refuses it while the
///   application's lease is held by a live runner.
/// - Reads (`load`, the listings) run on the calling thread: they are short (an indexed
///   query per key of the state), but a state of many megabytes takes milliseconds to
///   parse.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use burr_core::actions::action_sync;
/// use burr_core::persistence::SqlitePersister;
/// use burr_core::{expr, ApplicationBuilder, Inputs, State};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let path = dir.path().join("burr.db");
/// let counter = |persister: Arc<SqlitePersister>| {
///     let increment = action_sync("increment", |s: State, _, _| s.increment("count", 1))
///         .reads(["count"])
///         .writes(["count"]);
///     ApplicationBuilder::new()
///         .with_actions([increment])
///         .with_transitions([("increment", "increment", expr("count < 10"))])
///         .with_app_id("my-counter")
///         .with_state(State::new().update("count", 0))
///         .with_entrypoint("increment")
///         .with_state_persister(persister.clone())
///         .initialize_from(persister)
/// };
///
/// let persister = Arc::new(SqlitePersister::open(&path)?);
/// let mut app = counter(persister).build().await?;
/// app.step(Inputs::new()).await?;
/// app.step(Inputs::new()).await?;
/// drop(app); // or the process dies
///
/// // Later, maybe in another process: the application resumes after its last step.
/// let mut app = counter(Arc::new(SqlitePersister::open(&path)?)).build().await?;
/// assert_eq!(app.sequence_id(), Some(1));
/// assert_eq!(app.state().get::<i64>("count")?, 2);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SqlitePersister {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    options: SqliteOptions,
    /// The write side (`None` for a read-only persister).
    group: Option<Arc<Group>>,
    /// The thread that renews leases in the background.
    renewals: Option<JoinHandle<()>>,
    /// The thread that checkpoints the WAL in the background, and its signal.
    checkpoints: Option<(Arc<Checkpointer>, JoinHandle<()>)>,
    readers: Mutex<Vec<Connection>>,
    known: Arc<Mutex<KnownStates>>,
    /// Graph fingerprints the writer knows are in `burr_graphs`.
    graphs: Arc<Mutex<GraphSet>>,
    /// What leases are judged by.
    clock: Arc<dyn Clock>,
    me: Arc<ProcessIdentity>,
    /// Makes holder strings unique: this persister and a counter.
    instance: String,
    leases_taken: AtomicU64,
}

/// Work run in the writer's transaction ([`SqlitePersister::write_with`]).
type CustomWork = Box<dyn FnMut(&Connection, i64) -> rusqlite::Result<()> + Send>;

impl std::fmt::Debug for SqlitePersister {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlitePersister")
            .field("path", &self.inner.path)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl SqlitePersister {
    /// Open (or create) the burr database at `path` with the default [`SqliteOptions`].
    ///
    /// Fails with [`PersistenceError::Open`] when the file cannot be opened or created
    /// (a missing or read-only directory), [`PersistenceError::NotABurrDatabase`] when it
    /// is something else, [`PersistenceError::SchemaTooNew`] when a newer burr-rs wrote it.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, PersistenceError> {
        Self::open_with(path, SqliteOptions::default())
    }

    /// Open (or create) the burr database at `path` with `options`.
    pub fn open_with(
        path: impl AsRef<Path>,
        options: SqliteOptions,
    ) -> Result<Self, PersistenceError> {
        let path = path.as_ref().to_owned();
        let checkpointer = Arc::new(Checkpointer::default());
        let conn = open::open_writer(&path, &options, &checkpointer)?;
        let known = Arc::new(Mutex::new(KnownStates::default()));
        let graphs = Arc::new(Mutex::new(GraphSet::default()));
        let me = Arc::new(ProcessIdentity::current());
        let waiting = Arc::new(Waiting::default());
        let writer = Writer {
            waiting: Arc::clone(&waiting),
            conn,
            path: path.clone(),
            me: Arc::clone(&me),
            known: Arc::clone(&known),
            clock: Arc::clone(&options.clock),
            apps: AppMap::default(),
            leases: AppMap::default(),
            graphs: Arc::clone(&graphs),
            new_lease_due: None,
            spare: Spare::default(),
            checkpointer: Arc::clone(&checkpointer),
        };
        let group = Arc::new(Group::new(
            writer,
            waiting,
            options.durability == Durability::Full,
        ));
        let renewing = Arc::clone(&group);
        let renewals = std::thread::Builder::new()
            .name("burr-sqlite-leases".to_owned())
            .spawn(move || renewing.renew_in_background())
            .map_err(|error| open_error(&path, error))?;
        let checkpoints = {
            let (checkpointer, file) = (Arc::clone(&checkpointer), path.clone());
            std::thread::Builder::new()
                .name("burr-sqlite-checkpoints".to_owned())
                .spawn(move || checkpointer.run(&file))
                .map_err(|error| open_error(&path, error))?
        };
        let instance = uuid::Uuid::new_v4().simple().to_string();
        Ok(SqlitePersister {
            inner: Arc::new(Inner {
                path,
                clock: Arc::clone(&options.clock),
                options,
                group: Some(group),
                renewals: Some(renewals),
                checkpoints: Some((checkpointer, checkpoints)),
                readers: Mutex::new(Vec::new()),
                known,
                graphs,
                me,
                instance: instance[..12].to_owned(),
                leases_taken: AtomicU64::new(0),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The schema version this build reads and writes.
    pub const SCHEMA_VERSION: i64 = open::SCHEMA_VERSION;

    /// The page size of the databases this build creates, in bytes (SQLite's default is
    /// 4,096). A commit appends every page it dirtied to the WAL; a checkpoint of small
    /// values dirties one.
    pub const PAGE_SIZE: i64 = open::PAGE_SIZE;

    /// The number of WAL frames (pages) after which the WAL is folded back into the
    /// database (as `PRAGMA wal_autocheckpoint`, whose default is 1,000), by a thread of
    /// the persister rather than by the commit that crossed it: commits do not pay for
    /// checkpoints. Should that thread fall behind (eight times this many frames), the
    /// commit checkpoints itself, so the WAL stays bounded.
    pub const WAL_AUTOCHECKPOINT: i64 = checkpointer::WAL_AUTOCHECKPOINT;

    /// The most bytes of JSON a checkpoint keeps in its own row (`inline_values`); a
    /// checkpoint whose changes are larger writes them to `burr_values` (see the schema).
    pub const INLINE_MAX_BYTES: usize = layout::INLINE_MAX;

    /// How many checkpoints with inline values may follow an application's latest base
    /// before they are compacted (see the schema): the most rows a load reads back.
    pub const COMPACT_AFTER: u32 = layout::COMPACT_AFTER;

    fn closed(&self) -> PersistenceError {
        PersistenceError::Closed {
            path: self.inner.path.clone(),
        }
    }

    /// Run `work` in the writer's transaction, committed with the checkpoints of the
    /// applications saving at the same time (one commit for all): how another store
    /// kept in the same file (burr-server's run queue) writes without contending with
    /// the checkpoints for SQLite's write lock.
    ///
    /// `work` gets the connection, inside an open transaction, and the transaction's
    /// time (microseconds since the Unix epoch). It may run more than once (when another
    /// operation of the batch fails, the batch runs again without it): the value of its
    /// last run is returned. An `Err` fails this operation alone and its writes are
    /// rolled back; `work` must not commit or roll back the transaction itself.
    pub async fn write_with<T, F>(&self, mut work: F) -> Result<T, PersistenceError>
    where
        T: Send + 'static,
        F: FnMut(&Connection, i64) -> rusqlite::Result<T> + Send + 'static,
    {
        let slot = Arc::new(Mutex::new(None));
        let kept = Arc::clone(&slot);
        let custom: CustomWork = Box::new(move |conn, now| {
            let value = work(conn, now)?;
            *kept.lock().unwrap_or_else(|p| p.into_inner()) = Some(value);
            Ok(())
        });
        self.write(|reply| Op::Custom(custom, reply)).await?;
        let value = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
        value.ok_or_else(|| self.closed())
    }

    /// Run `read` on one of this persister's reader connections (kept open between
    /// calls): how another store kept in the same file (the work cache) reads without
    /// opening a connection each time. The connection only reads (`query_only`); in WAL
    /// mode it never waits for the writer. `read` runs on the calling thread.
    pub fn read_with<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, PersistenceError> {
        self.read_on_reader(|conn| Ok(read(conn)?))
    }

    /// The write side; [`PersistenceError::Closed`] for a read-only persister.
    fn group(&self) -> Result<&Group, PersistenceError> {
        self.inner.group.as_deref().ok_or_else(|| self.closed())
    }

    /// Commit an operation (see [`commit`]) and return its result.
    async fn write<T>(&self, op: impl FnOnce(Reply<T>) -> Op) -> Result<T, PersistenceError> {
        self.group()?.write(op).await.ok_or_else(|| self.closed())?
    }

    /// Run `read` on a reader connection kept from an earlier read, else on the write
    /// connection if it is free (see [`Group::read_idle`]), else on a new reader.
    fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, Failure>,
    ) -> Result<T, PersistenceError> {
        let idle = self.lock_readers().pop();
        if let Some(conn) = idle {
            return self.read_and_keep(conn, read);
        }
        let read = match &self.inner.group {
            Some(group) => match group.read_idle(read) {
                Ok(result) => return result.map_err(|f| f.into_error(&self.inner.path)),
                Err(read) => read,
            },
            None => read,
        };
        self.read_on_reader(read)
    }

    /// Run `read` on a reader connection (one kept from an earlier read, or a new one):
    /// never the write connection.
    fn read_on_reader<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, Failure>,
    ) -> Result<T, PersistenceError> {
        let idle = self.lock_readers().pop();
        let conn = match idle {
            Some(conn) => conn,
            None => open::open_reader(&self.inner.path, &self.inner.options)?,
        };
        self.read_and_keep(conn, read)
    }

    /// Run `read` on reader connection `conn`, then keep it for the next read.
    fn read_and_keep<T>(
        &self,
        conn: Connection,
        read: impl FnOnce(&Connection) -> Result<T, Failure>,
    ) -> Result<T, PersistenceError> {
        let result = read(&conn).map_err(|failure| failure.into_error(&self.inner.path));
        if conn.is_autocommit() {
            let mut readers = self.lock_readers();
            if readers.len() < MAX_IDLE_READERS {
                readers.push(conn);
            }
        }
        result
    }

    fn lock_readers(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        self.inner.readers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Nothing is left queued: every operation was committed before its call returned
        // (lease releases included). The renewal thread stops.
        if let Some(group) = self.group.take() {
            group.stop();
        }
        if let Some(renewals) = self.renewals.take() {
            if renewals.join().is_err() {
                tracing::error!(path = %self.path.display(), "the SQLite lease renewal thread panicked");
            }
        }
        if let Some((checkpointer, thread)) = self.checkpoints.take() {
            checkpointer.stop();
            if thread.join().is_err() {
                tracing::error!(path = %self.path.display(), "the SQLite WAL checkpoint thread panicked");
            }
        }
    }
}

#[async_trait]
impl Persister for SqlitePersister {
    async fn save(&self, checkpoint: &Checkpoint) -> Result<(), PersistenceError> {
        self.group()?
            .save(checkpoint)
            .await
            .ok_or_else(|| self.closed())?
    }

    async fn load(
        &self,
        partition_key: Option<&str>,
        app_id: &str,
        sequence_id: Option<u64>,
    ) -> Result<Option<LoadedCheckpoint>, PersistenceError> {
        let seq = sequence_id
            .map(|s| sequence_column(app_id, s))
            .transpose()?;
        let path = self.inner.path.clone();
        let loaded = self.read(|conn| {
            conn.execute_batch("BEGIN")?;
            let loaded = read::load(conn, &path, partition_key, app_id, seq);
            let _ = conn.execute_batch("COMMIT");
            loaded
        })?;
        let loaded = loaded.map(|(row, inline)| {
            // The application resuming from this state shares it: its next checkpoint
            // is diffed against it (overridden values included).
            if let Ok(sequence_id) = i64::try_from(row.sequence_id) {
                self.inner
                    .known
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(
                        app_key(partition_key, app_id),
                        Known {
                            sequence_id,
                            attempt: row.attempt,
                            status: row.status,
                            state: row.state.clone(),
                            inline,
                            changed: None,
                        },
                    );
            }
            row
        });
        Ok(loaded)
    }

    async fn list_app_ids(
        &self,
        partition_key: Option<&str>,
    ) -> Result<Vec<String>, PersistenceError> {
        self.read(|conn| Ok(read::app_ids(conn, partition_key)?))
    }

    fn as_leases(&self) -> Option<&dyn Leases> {
        Some(self)
    }

    fn as_app_records(&self) -> Option<&dyn AppRecords> {
        Some(self)
    }

    fn as_child_listing(&self) -> Option<&dyn ChildListing> {
        Some(self)
    }

    fn as_history(&self) -> Option<&dyn History> {
        Some(self)
    }

    fn as_prune(&self) -> Option<&dyn Prune> {
        Some(self)
    }

    fn as_delete(&self) -> Option<&dyn Delete> {
        Some(self)
    }
}

#[async_trait]
impl AppRecords for SqlitePersister {
    async fn register_app(&self, app: &AppRecord) -> Result<(), PersistenceError> {
        // The writer needs a graph's description only if it has not stored it yet: the
        // children of a map step, which share one, are not each copied with it.
        let code = app.code.as_ref().map(|code| {
            let stored = code.graph.is_some()
                && self
                    .inner
                    .graphs
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .contains(&code.fingerprint);
            CodeVersion {
                version: code.version.clone(),
                fingerprint: code.fingerprint.clone(),
                graph: if stored { None } else { code.graph.clone() },
            }
        });
        let record = Box::new(AppRecord {
            partition_key: app.partition_key.clone(),
            app_id: app.app_id.clone(),
            created_at_us: app.created_at_us,
            fork_parent: app.fork_parent.clone(),
            spawning_parent: app.spawning_parent.clone(),
            code,
        });
        self.write(|reply| Op::Register(record, reply)).await
    }

    async fn app(
        &self,
        partition_key: Option<&str>,
        app_id: &str,
    ) -> Result<Option<AppRecord>, PersistenceError> {
        let path = self.inner.path.clone();
        self.read(|conn| read::app_record(conn, &path, partition_key, app_id))
    }

    async fn list_apps(&self) -> Result<Vec<AppRecord>, PersistenceError> {
        SqlitePersister::list_apps(self)
    }
}

#[async_trait]
impl ChildListing for SqlitePersister {
    async fn list_app_ids_with_prefix(
        &self,
        partition_key: Option<&str>,
        prefix: &str,
    ) -> Result<Vec<String>, PersistenceError> {
        self.read(|conn| Ok(read::app_ids_with_prefix(conn, partition_key, prefix)?))
    }
}

#[async_trait]
impl History for SqlitePersister {
    async fn list_checkpoints(
        &self,
        partition_key: Option<&str>,
        app_id: &str,
    ) -> Result<Vec<CheckpointInfo>, PersistenceError> {
        let path = self.inner.path.clone();
        self.read(|conn| read::checkpoints(conn, &path, partition_key, app_id))
    }
}

#[async_trait]
impl Delete for SqlitePersister {
    async fn delete_app(
        &self,
        partition_key: Option<&str>,
        app_id: &str,
    ) -> Result<bool, PersistenceError> {
        let key = app_key(partition_key, app_id);
        self.write(|reply| Op::Delete(key, reply)).await
    }
}

#[async_trait]
impl Prune for SqlitePersister {
    async fn prune(
        &self,
        partition_key: Option<&str>,
        app_id: &str,
        keep_last: usize,
    ) -> Result<usize, PersistenceError> {
        let key = app_key(partition_key, app_id);
        self.write(|reply| Op::Prune(key, keep_last, reply)).await
    }
}

impl SqlitePersister {
    /// Take the lease on an application, then record it (`record`), in one write.
    async fn acquire(
        &self,
        partition_key: Option<&str>,
        app_id: &str,
        ttl: Duration,
        record: Option<Box<AppRecord>>,
    ) -> Result<Lease, PersistenceError> {
        let me = &self.inner.me;
        let holder = format!(
            "pid {} on {} (lease {}-{})",
            me.pid,
            me.host,
            self.inner.instance,
            self.inner.leases_taken.fetch_add(1, Ordering::Relaxed)
        );
        let ttl_us = i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX);
        let key = app_key(partition_key, app_id);
        let taken = holder.clone();
        self.write(|reply| Op::Acquire {
            key,
            holder: taken,
            ttl_us,
            record,
            reply,
        })
        .await?;
        Ok(Lease {
            partition_key: partition_key.map(str::to_owned),
            app_id: app_id.to_owned(),
            holder,
        })
    }
}

#[async_trait]
impl Leases for SqlitePersister {
    async fn acquire_lease(
        &self,
        partition_key: Option<&str>,
        app_id: &str,
        ttl: Duration,
    ) -> Result<Lease, PersistenceError> {
        self.acquire(partition_key, app_id, ttl, None).await
    }

    async fn acquire_lease_registering(
        &self,
        partition_key: Option<&str>,
        app_id: &str,
        ttl: Duration,
        record: &AppRecord,
    ) -> Result<(Lease, bool), PersistenceError> {
        let lease = self
            .acquire(partition_key, app_id, ttl, Some(Box::new(record.clone())))
            .await?;
        Ok((lease, true))
    }

    /// Blocks until the lease's row is deleted (typically microseconds; at worst the
    /// busy timeout, when another process holds the write lock).
    fn release_lease(&self, lease: &Lease) -> Result<(), PersistenceError> {
        self.group()?
            .write_blocking(|reply| Op::Release(lease.clone(), reply))
            .ok_or_else(|| self.closed())?
    }

    async fn release_lease_async(&self, lease: &Lease) -> Result<(), PersistenceError> {
        let lease = lease.clone();
        self.write(|reply| Op::Release(lease, reply)).await
    }
}
