//! [`PostgresPersister`]: the type, how it connects, and its [`Persister`] and capability
//! implementations (each a thin layer over [`read`](crate::read), [`write`](crate::write)
//! and [`commit`](crate::commit)).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use burr_core::persistence::{
    AppRecord, AppRecords, Checkpoint, CheckpointInfo, ChildListing, Delete, History, Lease,
    LeaseStatus, Leases, LoadedCheckpoint, PersistenceError, Persister, Prune,
};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::commit::{Group, Work};
use crate::database::Target;
use crate::keeper::{Keeper, Request};
use crate::layout::{app_key, sequence_column, Conn, Failure};
use crate::lease;
use crate::options::PostgresOptions;
use crate::record::Recorder;
use crate::write::{Known, KnownStates, Pending, Shared, Txn};
use crate::{read, schema};
use burr_core::persistence::ProcessIdentity;

/// A [`Persister`] that keeps checkpoints in a PostgreSQL database, shared by the
/// processes of several machines. Cloning shares the pool and what the persister
/// remembers.
///
/// # Guarantees
///
/// The SQLite persister's, over a network:
///
/// - **Every step is saved before the next starts.** [`save`](Persister::save) returns
///   once the checkpoint's transaction has committed, with the server's durability
///   (`synchronous_commit`: on by default, a commit is flushed to the server's disk).
///   A checkpoint is stored whole or not at all, also when the connection is cut or the
///   server crashes mid-commit. A batch whose connection is lost runs again on another
///   connection (twice at most), and a save that the lost commit did store is recognised
///   and answered as saved; a save that still fails gives [`PersistenceError::Database`]
///   and may or may not be stored: [`load`](Persister::load) tells (saving it again then
///   gives [`PersistenceError::Conflict`] if it was).
/// - **A checkpoint costs what changed.** One row with the values the step set or
///   deleted when they are small (up to [`INLINE_MAX_BYTES`](Self::INLINE_MAX_BYTES) of
///   JSON), else one more row per key; a value no step touches is stored once.
/// - **Group commit, pipelined.** The saves of applications running at once share
///   transactions: a batch of saves that need no read is one round trip (`BEGIN`, the
///   saves, `COMMIT` sent together; the rows of saves without a lease, such as a map
///   step's children, in one `INSERT`), and a save alone is one statement (an `INSERT`
///   that also checks the lease). The records of new applications starting at once are
///   one statement too.
/// - **One runner per app id**, across machines: [`acquire_lease`](Leases::acquire_lease)
///   fails with [`PersistenceError::AppLocked`] while a live runner holds the lease; it
///   is renewed by saves and in the background, and free once it expires (or, on the
///   same machine, once its holder's process is gone). A save is *fenced*: its statement
///   checks that the lease is still this holder's (holder and attempt), so a runner that
///   lost its lease (it stalled past the lease's time to live and another took over) is
///   refused with [`PersistenceError::LeaseLost`], never writes over the new runner.
/// - **Errors name the database** (its URL without the password) and what was being
///   done ([`PersistenceError::Database`]); a failed load changes nothing.
///
/// # Schema (version 3)
///
/// The tables of the SQLite persister, with the same columns and meaning (see
/// [`SqlitePersister`](burr_core::persistence::SqlitePersister)): `burr_meta`
/// (`schema_version`, `created_by`), `burr_apps` (with `code_version` and
/// `fingerprint`: the code it was last built with), `burr_graphs` (each fingerprint's
/// graph description), `burr_cache` (the work cache: [`PgCache`](crate::PgCache)),
/// `burr_checkpoints`, `burr_values`, `burr_leases` (with an `attempt` column: how many
/// runners took the lease). Names and keys use the `"C"` collation.
/// [`connect`](Self::connect) migrates the schema under
/// an advisory lock ([`migrate`](crate::migrate) does it alone); a database of a newer
/// schema is refused ([`PersistenceError::SchemaTooNew`]).
///
/// # Example
///
/// ```no_run
/// use std::sync::Arc;
/// use burr_postgres::PostgresPersister;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let persister = Arc::new(PostgresPersister::connect("postgres://burr@db.internal/burr").await?);
/// // ApplicationBuilder::new()...with_state_persister(persister.clone()).initialize_from(persister)
/// # let _ = persister;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct PostgresPersister {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    pool: Pool,
    group: Arc<Group>,
    recorder: Arc<Recorder>,
    keeper: Keeper,
    /// Makes holder strings unique: this persister and a counter.
    instance: String,
    leases_taken: AtomicU64,
}

impl std::fmt::Debug for PostgresPersister {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresPersister")
            .field("database", &self.inner.shared.target.name)
            .finish_non_exhaustive()
    }
}

impl PostgresPersister {
    /// Connect to the database at `url` (`postgres://user:password@host:port/dbname`)
    /// with the default [`PostgresOptions`], creating or migrating burr's schema.
    ///
    /// Fails with [`PersistenceError::Open`] when the URL is malformed or the server
    /// cannot be reached (refused, unknown host, bad credentials, no such database),
    /// [`PersistenceError::SchemaTooNew`] when a newer burr-rs migrated the database,
    /// [`PersistenceError::Database`] when migrating fails. Each names the database
    /// without its password.
    pub async fn connect(url: &str) -> Result<Self, PersistenceError> {
        Self::connect_with(url, PostgresOptions::default()).await
    }

    /// Connect to the database at `url` with `options`.
    pub async fn connect_with(
        url: &str,
        options: PostgresOptions,
    ) -> Result<Self, PersistenceError> {
        let mut target = Target::parse(url)?;
        if target.config.get_connect_timeout().is_none() {
            target.config.connect_timeout(options.connect_timeout);
        }
        if target.config.get_application_name().is_none() {
            target.config.application_name("burr-rs");
        }
        let given = target.config.get_options().unwrap_or_default().to_owned();
        if !given.contains("statement_timeout") {
            let limit = format!(
                "-c statement_timeout={}",
                options.statement_timeout.as_millis()
            );
            let all = if given.is_empty() {
                limit
            } else {
                format!("{given} {limit}")
            };
            target.config.options(&all);
        }
        let client = schema::connect_one(&target).await?;
        schema::prepare(&client, &target).await?;
        drop(client);
        let manager = Manager::from_config(
            target.config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(60)))
            .create_timeout(Some(options.connect_timeout))
            .build()
            .map_err(|error| target.open_error(error))?;
        let shared = Arc::new(Shared {
            target,
            me: ProcessIdentity::current(),
            clock: Arc::clone(&options.clock),
            known: Mutex::new(KnownStates::default()),
            apps: Mutex::new(HashMap::new()),
            leases: Mutex::new(HashMap::new()),
            graphs: Mutex::new(Default::default()),
        });
        let keeper =
            Keeper::start(Arc::clone(&shared)).map_err(|error| shared.target.open_error(error))?;
        let instance = uuid::Uuid::new_v4().simple().to_string();
        Ok(PostgresPersister {
            inner: Arc::new(Inner {
                group: Arc::new(Group::new(options.writers)),
                recorder: Arc::new(Recorder::new()),
                shared,
                pool,
                keeper,
                instance: instance[..12].to_owned(),
                leases_taken: AtomicU64::new(0),
            }),
        })
    }

    /// The database, as its URL without the password.
    pub fn database(&self) -> &str {
        &self.inner.shared.target.name
    }

    /// The schema version this build reads and writes.
    pub const SCHEMA_VERSION: i64 = schema::SCHEMA_VERSION;

    /// The most bytes of JSON a checkpoint keeps in its own row (`inline_values`); a
    /// checkpoint whose changes are larger writes them to `burr_values`.
    pub const INLINE_MAX_BYTES: usize = crate::layout::INLINE_MAX;

    /// How many checkpoints with inline values may follow an application's latest base
    /// before they are compacted: the most rows a load reads back.
    pub const COMPACT_AFTER: u32 = crate::layout::COMPACT_AFTER;

    fn target(&self) -> &Target {
        &self.inner.shared.target
    }

    /// A pooled connection, for `operation`.
    async fn conn(
        &self,
        operation: &'static str,
    ) -> Result<deadpool_postgres::Object, PersistenceError> {
        self.inner
            .pool
            .get()
            .await
            .map_err(|error| self.target().error(operation, error))
    }

    /// A pooled connection, for `operation` (for the other stores in the database:
    /// [`PgCache`](crate::PgCache)).
    pub(crate) async fn pooled(
        &self,
        operation: &'static str,
    ) -> Result<deadpool_postgres::Object, PersistenceError> {
        self.conn(operation).await
    }

    /// [`PersistenceError::Database`] naming this database and `operation`.
    pub(crate) fn database_error(
        &self,
        operation: &'static str,
        error: tokio_postgres::Error,
    ) -> PersistenceError {
        self.target().error(operation, error)
    }

    /// Now, in microseconds since the Unix epoch, by the persister's clock.
    pub(crate) fn now_micros(&self) -> i64 {
        self.inner.shared.clock.now_micros()
    }

    /// Run `read` on a pooled connection.
    async fn read<T>(
        &self,
        operation: &'static str,
        read: impl AsyncFnOnce(&Conn) -> Result<T, Failure>,
    ) -> Result<T, PersistenceError> {
        let conn = self.conn(operation).await?;
        read(&conn).await.map_err(|failure| match failure {
            Failure::Db(error) => self.target().error(operation, error),
            Failure::Refused(error) => error,
        })
    }

    /// Run `work` in a transaction of its own on a pooled connection, and keep what it
    /// changed in the persister's memory once it commits.
    async fn write<T>(
        &self,
        operation: &'static str,
        work: impl AsyncFnOnce(&mut Txn<'_>) -> Result<T, Failure>,
    ) -> Result<T, PersistenceError> {
        let conn = self.conn(operation).await?;
        let shared = &*self.inner.shared;
        let fail = |error| shared.target.error(operation, error);
        conn.batch_execute("BEGIN").await.map_err(fail)?;
        let mut pending = Pending::default();
        let mut txn = Txn {
            conn: &conn,
            shared,
            now_us: shared.clock.now_micros(),
            pending: &mut pending,
        };
        let result = work(&mut txn).await;
        let result = match result {
            Ok(value) => match conn.batch_execute("COMMIT").await {
                Ok(()) => {
                    shared.keep(&mut pending);
                    Ok(value)
                }
                Err(error) => Err(fail(error)),
            },
            Err(failure) => {
                // Failed or refused: nothing it did is kept.
                let _ = conn.batch_execute("ROLLBACK").await;
                match failure {
                    Failure::Db(error) => Err(fail(error)),
                    Failure::Refused(error) => Err(error),
                }
            }
        };
        result
    }

    /// Run `work`, one statement in autocommit mode (atomic by itself) whose commit
    /// does not wait for the write-ahead log to reach the disk (the statement sets
    /// `synchronous_commit` off for its own transaction: its `set_config` condition), on a
    /// pooled connection, and keep what it changed in the persister's memory once it
    /// returns: one round trip, no flush.
    ///
    /// Only for rows that a runner writes before its first checkpoint and that the
    /// checkpoint's own durable commit makes durable with it (the write-ahead log is
    /// flushed in order): a new application's lease and record. A crash of the server
    /// before that commit loses them together with anything that depended on them: the
    /// runner's saves name its lease's holder (unique to the lease taken), so they are
    /// refused once another runner took the lease, and a resumed application records
    /// itself again. Nothing a caller was told is stored is lost.
    async fn write_unsynced<T>(
        &self,
        operation: &'static str,
        work: impl AsyncFnOnce(&mut Txn<'_>) -> Result<T, Failure>,
    ) -> Result<T, PersistenceError> {
        let conn = self.conn(operation).await?;
        let shared = &*self.inner.shared;
        let mut pending = Pending::default();
        let mut txn = Txn {
            conn: &conn,
            shared,
            now_us: shared.clock.now_micros(),
            pending: &mut pending,
        };
        match work(&mut txn).await {
            Ok(value) => {
                shared.keep(&mut pending);
                Ok(value)
            }
            Err(Failure::Db(error)) => Err(shared.target.error(operation, error)),
            Err(Failure::Refused(error)) => Err(error),
        }
    }

    /// Every application stored, of every partition key, newest first.
    pub async fn list_apps(&self) -> Result<Vec<AppRecord>, PersistenceError> {
        let database = self.database().to_owned();
        self.read("list applications", async |conn| {
            read::apps(conn, &database, None).await
        })
        .await
    }

    /// The application `app_id` and the applications under it (ids under `<app_id>/`:
    /// its children), of every partition key, newest first: what a page about one
    /// application reads (as
    /// [`SqlitePersister::list_apps_under`](burr_core::persistence::SqlitePersister::list_apps_under)).
    pub async fn list_apps_under(&self, app_id: &str) -> Result<Vec<AppRecord>, PersistenceError> {
        let database = self.database().to_owned();
        self.read("list applications", async |conn| {
            read::apps(conn, &database, Some(app_id)).await
        })
        .await
    }

    /// Where the application's lease stands (see
    /// [`SqlitePersister::lease_status`](burr_core::persistence::SqlitePersister::lease_status)).
    pub async fn lease_status(
        &self,
        partition_key: Option<&str>,
        app_id: &str,
    ) -> Result<LeaseStatus, PersistenceError> {
        let key = app_key(partition_key, app_id);
        let shared = Arc::clone(&self.inner.shared);
        self.read("read a lease", async |conn| {
            Ok(lease::standing(conn, &shared.me, &key, shared.clock.now_micros()).await?)
        })
        .await
    }

    /// Who runs the application now: the holder of its lease while a live runner holds
    /// it, `None` otherwise.
    pub async fn live_lease_holder(
        &self,
        partition_key: Option<&str>,
        app_id: &str,
    ) -> Result<Option<String>, PersistenceError> {
        Ok(match self.lease_status(partition_key, app_id).await? {
            LeaseStatus::Held { holder } => Some(holder),
            _ => None,
        })
    }
}

#[async_trait]
impl Persister for PostgresPersister {
    async fn save(&self, checkpoint: &Checkpoint) -> Result<(), PersistenceError> {
        sequence_column(&checkpoint.app_id, checkpoint.sequence_id)?;
        self.inner
            .group
            .submit(
                &self.inner.shared,
                &self.inner.pool,
                Work::Save(Box::new(checkpoint.clone())),
            )
            .await
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
        let database = self.database().to_owned();
        let loaded = self
            .read("load", async |conn| {
                // One snapshot for the several queries of a load.
                conn.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await?;
                let loaded = read::load(conn, &database, partition_key, app_id, seq).await;
                let _ = conn.batch_execute("COMMIT").await;
                loaded
            })
            .await?;
        Ok(loaded.map(|(row, inline)| {
            // The application resuming from this state shares it: its next checkpoint is
            // diffed against it.
            if let Ok(sequence_id) = i64::try_from(row.sequence_id) {
                self.inner.shared.known().insert(
                    app_key(partition_key, app_id),
                    Known {
                        sequence_id,
                        attempt: row.attempt,
                        status: row.status,
                        state: row.state.clone(),
                        inline,
                    },
                );
            }
            row
        }))
    }

    async fn list_app_ids(
        &self,
        partition_key: Option<&str>,
    ) -> Result<Vec<String>, PersistenceError> {
        self.read("list app ids", async |conn| {
            Ok(read::app_ids(conn, partition_key).await?)
        })
        .await
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
impl AppRecords for PostgresPersister {
    async fn register_app(&self, app: &AppRecord) -> Result<(), PersistenceError> {
        // An application this persister does not know is first tried as a new row,
        // batched with the other new applications' records (see `record`): nothing to
        // read first, nothing to order it after (its saves wait for it), durable with its
        // first checkpoint; otherwise with the group.
        let known = self
            .inner
            .shared
            .apps()
            .contains_key(&app_key(app.partition_key.as_deref(), &app.app_id));
        if !known
            && self
                .inner
                .recorder
                .submit(&self.inner.shared, &self.inner.pool, app)
                .await?
        {
            return Ok(());
        }
        self.inner
            .group
            .submit(
                &self.inner.shared,
                &self.inner.pool,
                Work::Register(Box::new(app.clone())),
            )
            .await
    }

    async fn app(
        &self,
        partition_key: Option<&str>,
        app_id: &str,
    ) -> Result<Option<AppRecord>, PersistenceError> {
        let database = self.database().to_owned();
        self.read("read an application record", async |conn| {
            read::app_record(conn, &database, partition_key, app_id).await
        })
        .await
    }

    async fn list_apps(&self) -> Result<Vec<AppRecord>, PersistenceError> {
        PostgresPersister::list_apps(self).await
    }
}

#[async_trait]
impl ChildListing for PostgresPersister {
    async fn list_app_ids_with_prefix(
        &self,
        partition_key: Option<&str>,
        prefix: &str,
    ) -> Result<Vec<String>, PersistenceError> {
        self.read("list child applications", async |conn| {
            Ok(read::app_ids_with_prefix(conn, partition_key, prefix).await?)
        })
        .await
    }
}

#[async_trait]
impl History for PostgresPersister {
    async fn list_checkpoints(
        &self,
        partition_key: Option<&str>,
        app_id: &str,
    ) -> Result<Vec<CheckpointInfo>, PersistenceError> {
        let database = self.database().to_owned();
        self.read("list checkpoints", async |conn| {
            read::checkpoints(conn, &database, partition_key, app_id).await
        })
        .await
    }
}

#[async_trait]
impl Delete for PostgresPersister {
    async fn delete_app(
        &self,
        partition_key: Option<&str>,
        app_id: &str,
    ) -> Result<bool, PersistenceError> {
        let key = app_key(partition_key, app_id);
        self.write("delete an application", async |txn| txn.delete(&key).await)
            .await
    }
}

#[async_trait]
impl Prune for PostgresPersister {
    async fn prune(
        &self,
        partition_key: Option<&str>,
        app_id: &str,
        keep_last: usize,
    ) -> Result<usize, PersistenceError> {
        let key = app_key(partition_key, app_id);
        self.write("prune", async |txn| txn.prune(&key, keep_last).await)
            .await
    }
}

#[async_trait]
impl Leases for PostgresPersister {
    async fn acquire_lease(
        &self,
        partition_key: Option<&str>,
        app_id: &str,
        ttl: Duration,
    ) -> Result<Lease, PersistenceError> {
        let me = &self.inner.shared.me;
        let holder = format!(
            "pid {} on {} (lease {}-{})",
            me.pid,
            me.host,
            self.inner.instance,
            self.inner.leases_taken.fetch_add(1, Ordering::Relaxed)
        );
        let ttl_us = i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX);
        let key = app_key(partition_key, app_id);
        // A new application's lease (no row yet) in one statement, durable with the
        // application's first checkpoint (see `write_unsynced`); otherwise the lease is
        // read and taken in a transaction.
        let taken = self
            .write_unsynced("take a lease", async |txn| {
                txn.acquire_new(&key, &holder, ttl_us).await
            })
            .await?;
        if !taken {
            self.write("take a lease", async |txn| {
                txn.acquire(&key, &holder, ttl_us).await
            })
            .await?;
        }
        self.inner.keeper.send(Request::Wake);
        Ok(Lease {
            partition_key: partition_key.map(str::to_owned),
            app_id: app_id.to_owned(),
            holder,
        })
    }

    /// Blocks until the lease's row is deleted, by the persister's own thread and
    /// connection (so it may be called from async code of any runtime, or none).
    fn release_lease(&self, lease: &Lease) -> Result<(), PersistenceError> {
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        if !self
            .inner
            .keeper
            .send(Request::Release(lease.clone(), reply))
        {
            return Err(self.target().closed());
        }
        answer
            .recv()
            .unwrap_or_else(|_| Err(self.target().closed()))
    }

    async fn release_lease_async(&self, lease: &Lease) -> Result<(), PersistenceError> {
        let key = app_key(lease.partition_key.as_deref(), &lease.app_id);
        let conn = self.conn("release a lease").await?;
        let release = async {
            let statement = conn.prepare_cached(lease::RELEASE).await?;
            conn.execute(&statement, &[&key.0, &key.1, &lease.holder])
                .await
        }
        .await;
        release.map_err(|error| self.target().error("release a lease", error))?;
        self.inner.shared.forget_lease(&key, &lease.holder);
        Ok(())
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use std::time::Duration;

    use burr_core::persistence::{AppRecord, AppRecords, CodeVersion, Leases, PersistenceError};

    use super::PostgresPersister;
    use crate::testing::TestServer;
    use crate::PostgresOptions;

    /// `synchronous_commit` on the persister's (only) connection, as the next commit on
    /// it would use it.
    async fn synchronous_commit(persister: &PostgresPersister) -> String {
        let conn = persister.conn("test").await.unwrap();
        conn.query_one("SHOW synchronous_commit", &[])
            .await
            .unwrap()
            .get(0)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_new_lease_and_record_commit_unsynced_and_leave_the_connection_synchronous() {
        let url = TestServer::shared().fresh_database();
        let options = PostgresOptions::new().pool_size(1);
        let persister = PostgresPersister::connect_with(&url, options.clone())
            .await
            .unwrap();
        let lease = persister
            .acquire_lease(None, "fresh", Duration::from_secs(30))
            .await
            .unwrap();
        // The statement turned synchronous commit off for its own transaction only:
        // the checkpoints committed next on this connection wait for the disk.
        assert_eq!(synchronous_commit(&persister).await, "on");
        let record = AppRecord {
            partition_key: None,
            app_id: "fresh".to_owned(),
            created_at_us: 7,
            fork_parent: None,
            spawning_parent: None,
            code: Some(CodeVersion {
                version: Some("v1".to_owned()),
                fingerprint: "f1".to_owned(),
                graph: None,
            }),
        };
        persister.register_app(&record).await.unwrap();
        assert_eq!(synchronous_commit(&persister).await, "on");
        let stored = persister.app(None, "fresh").await.unwrap().unwrap();
        assert_eq!(stored.created_at_us, 7);
        assert_eq!(stored.code.as_ref().unwrap().fingerprint, "f1");

        // The fast path never takes a lease whose row exists: another runner is refused
        // while this one holds it, and gets it once it is given back.
        let other = PostgresPersister::connect_with(&url, options)
            .await
            .unwrap();
        let refused = other
            .acquire_lease(None, "fresh", Duration::from_secs(30))
            .await
            .unwrap_err();
        assert!(
            matches!(refused, PersistenceError::AppLocked { .. }),
            "{refused}"
        );
        persister.release_lease_async(&lease).await.unwrap();
        other
            .acquire_lease(None, "fresh", Duration::from_secs(30))
            .await
            .unwrap();
        // Recording a known application again changes its code, as before.
        let again = AppRecord {
            code: Some(CodeVersion {
                version: Some("v2".to_owned()),
                fingerprint: "f2".to_owned(),
                graph: None,
            }),
            ..record
        };
        other.register_app(&again).await.unwrap();
        let stored = persister.app(None, "fresh").await.unwrap().unwrap();
        assert_eq!(stored.code.unwrap().fingerprint, "f2");
    }
}
