//! [`SqliteRunQueue`]: the run queue in a burr SQLite file, beside the checkpoints.
//!
//! Writes run in `BEGIN IMMEDIATE` transactions on one connection (several processes
//! share the file through SQLite's lock and busy timeout); reads on another. Every
//! operation runs on tokio's blocking threads.

pub(crate) mod ops;
pub(crate) mod rows;
pub(crate) mod schema;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use burr_core::persistence::{ProcessIdentity, SqliteOptions, SqlitePersister};
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{broadcast, watch};

use self::ops::{OpError, OpResult, Written};
use super::RunQueue;
use crate::error::QueueError;
use crate::events::{EventKind, RunEvent};
use crate::run::{
    now_us, Backlog, Claim, Explanation, Finish, HeartbeatReport, NewRun, Run, RunCode, RunFilter,
    Submitted, WorkerInfo,
};
use crate::schedule::Schedule;
use crate::wake::Wake;

/// How long a write waits for another process's transaction on the file.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Events deleted per transaction by [`RunQueue::prune_events`].
const PRUNE_BATCH: u64 = 5_000;

/// Events buffered per subscriber before a slow one misses some (it can read them back
/// from the database).
const EVENT_BUFFER: usize = 4096;

/// The run queue in a SQLite file. Cloning shares it.
///
/// ```no_run
/// # async fn demo() -> Result<(), burr_server::QueueError> {
/// let queue = burr_server::SqliteRunQueue::open("burr.db")?;
/// let persister = queue.persister(); // the checkpoints, in the same file
/// # let _ = persister; Ok(()) }
/// ```
#[derive(Clone)]
pub struct SqliteRunQueue {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    reader: Mutex<Connection>,
    persister: Arc<SqlitePersister>,
    events: broadcast::Sender<RunEvent>,
    wake: Arc<Wake>,
}

impl std::fmt::Debug for SqliteRunQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteRunQueue")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl SqliteRunQueue {
    /// Open (or create) the burr database at `path`: its checkpoint schema (through
    /// [`SqlitePersister`]) and its run-queue tables, migrated to this build's version.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, QueueError> {
        Self::open_with(path, SqliteOptions::new())
    }

    /// [`open`](Self::open) with the persister's options (durability, busy timeout).
    pub fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, QueueError> {
        let path = path.as_ref().to_owned();
        let persister = Arc::new(SqlitePersister::open_with(&path, options)?);
        let db = |source| QueueError::Database {
            path: path.clone(),
            source,
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut writer = Connection::open_with_flags(&path, flags).map_err(db)?;
        writer.busy_timeout(BUSY_TIMEOUT).map_err(db)?;
        writer
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(db)?;
        writer.set_prepared_statement_cache_capacity(64);
        schema::prepare(&mut writer, &path)?;
        let reader = Connection::open_with_flags(&path, flags).map_err(db)?;
        reader.busy_timeout(BUSY_TIMEOUT).map_err(db)?;
        reader.pragma_update(None, "query_only", true).map_err(db)?;
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        Ok(SqliteRunQueue {
            inner: Arc::new(Inner {
                wake: Wake::open(&path),
                path,
                reader: Mutex::new(reader),
                persister,
                events,
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The checkpoints of the same file: what workers run applications with.
    pub fn persister(&self) -> Arc<SqlitePersister> {
        Arc::clone(&self.inner.persister)
    }

    fn error(&self, error: OpError) -> QueueError {
        match error {
            OpError::Queue(e) => e,
            OpError::Sql(source) => QueueError::Database {
                path: self.inner.path.clone(),
                source,
            },
        }
    }

    /// Run `op` in the persister's write transaction (committed with the checkpoints
    /// being saved at the same time), inside a savepoint: an operation that is refused
    /// leaves nothing behind. Its events are broadcast after the commit.
    async fn write<T, F>(&self, op: F) -> Result<T, QueueError>
    where
        T: Send + 'static,
        F: Fn(&Connection, i64) -> OpResult<Written<T>> + Send + 'static,
    {
        let done = self
            .inner
            .persister
            .write_with(move |conn, now| {
                // Cached statements: parsing these again costs more than running them.
                let run = |sql: &str| conn.prepare_cached(sql)?.execute([]).map(drop);
                run("SAVEPOINT burr_run_queue")?;
                let result = op(conn, now);
                match &result {
                    Err(OpError::Sql(_)) => {}
                    Err(OpError::Queue(_)) => {
                        run("ROLLBACK TO burr_run_queue")?;
                        run("RELEASE burr_run_queue")?;
                    }
                    Ok(_) => run("RELEASE burr_run_queue")?,
                }
                match result {
                    Err(OpError::Sql(error)) => Err(error),
                    other => Ok(other),
                }
            })
            .await?;
        let (value, events) = done.map_err(|e| self.error(e))?;
        if !events.is_empty() {
            // Steps and progress (`record`) concern watchers, which look again on their
            // own; changes of runs wake the other processes too.
            let of_runs = events.iter().any(|e| {
                !matches!(
                    e.kind,
                    EventKind::StepFinished { .. }
                        | EventKind::ChildProgress { .. }
                        | EventKind::Announced { .. }
                )
            });
            let cancel = events
                .iter()
                .any(|e| matches!(e.kind, EventKind::CancelRequested));
            for event in events {
                let _ = self.inner.events.send(event);
            }
            if cancel {
                self.inner.wake.ring_cancel();
            } else if of_runs {
                self.inner.wake.ring();
            } else {
                self.inner.wake.ring_local();
            }
        }
        Ok(value)
    }

    /// Run `op` on the reader connection.
    async fn read<T, F>(&self, op: F) -> Result<T, QueueError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, i64) -> OpResult<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let conn = inner.reader.lock().unwrap_or_else(|p| p.into_inner());
            op(&conn, now_us())
        })
        .await
        .map_err(|e| QueueError::TaskStopped(e.to_string()))?
        .map_err(|e| self.error(e))
    }
}

#[async_trait]
impl RunQueue for SqliteRunQueue {
    async fn submit(&self, run: NewRun) -> Result<Submitted, QueueError> {
        self.write(move |tx, now| ops::submit(tx, &run, now)).await
    }

    async fn get(&self, run_id: &str) -> Result<Run, QueueError> {
        let run_id = run_id.to_owned();
        self.read(move |conn, _| ops::get(conn, &run_id)).await
    }

    async fn list(&self, filter: &RunFilter) -> Result<Vec<Run>, QueueError> {
        let filter = filter.clone();
        self.read(move |conn, _| ops::list(conn, &filter)).await
    }

    async fn claim(&self, claim: &Claim) -> Result<Vec<Run>, QueueError> {
        let claim = claim.clone();
        self.write(move |tx, now| ops::claim(tx, &claim, now)).await
    }

    async fn heartbeat(
        &self,
        info: &WorkerInfo,
        held: &[(String, u32)],
        lease_ttl_us: i64,
    ) -> Result<HeartbeatReport, QueueError> {
        let (info, held) = (info.clone(), held.to_vec());
        self.write(move |tx, now| ops::heartbeat(tx, &info, &held, lease_ttl_us, now))
            .await
    }

    async fn finish(
        &self,
        run_id: &str,
        attempt: u32,
        worker: &str,
        finish: Finish,
        code: Option<&RunCode>,
    ) -> Result<Run, QueueError> {
        let (run_id, worker, code) = (run_id.to_owned(), worker.to_owned(), code.cloned());
        self.write(move |tx, now| {
            ops::finish(tx, &run_id, attempt, &worker, &finish, code.as_ref(), now)
        })
        .await
    }

    async fn release(
        &self,
        run_id: &str,
        attempt: u32,
        worker: &str,
        not_before_us: i64,
    ) -> Result<(), QueueError> {
        let (run_id, worker) = (run_id.to_owned(), worker.to_owned());
        self.write(move |tx, now| ops::release(tx, &run_id, attempt, &worker, not_before_us, now))
            .await
    }

    async fn cancel(&self, run_id: &str) -> Result<Run, QueueError> {
        let run_id = run_id.to_owned();
        self.write(move |tx, now| ops::cancel(tx, &run_id, now))
            .await
    }

    async fn backlog(&self) -> Result<Backlog, QueueError> {
        self.read(ops::backlog).await
    }

    async fn explain(&self, run_id: &str) -> Result<Explanation, QueueError> {
        let run_id = run_id.to_owned();
        self.read(move |conn, now| ops::explain(conn, &run_id, now))
            .await
    }

    async fn put_schedule(&self, schedule: &Schedule) -> Result<(), QueueError> {
        let schedule = schedule.clone();
        self.write(move |tx, _| ops::put_schedule(tx, &schedule))
            .await?;
        self.inner.wake.ring();
        Ok(())
    }

    async fn schedules(&self) -> Result<Vec<Schedule>, QueueError> {
        self.read(|conn, _| ops::schedules(conn)).await
    }

    async fn remove_schedule(&self, name: &str) -> Result<(), QueueError> {
        let name = name.to_owned();
        self.write(move |tx, _| ops::remove_schedule(tx, &name))
            .await
    }

    async fn fire_due(&self, now_us: i64) -> Result<Vec<Run>, QueueError> {
        self.write(move |tx, _| ops::fire_due(tx, now_us)).await
    }

    async fn record(&self, events: Vec<(String, EventKind)>) -> Result<(), QueueError> {
        if events.is_empty() {
            return Ok(());
        }
        self.write(move |tx, now| ops::record(tx, &events, now))
            .await
    }

    async fn events(
        &self,
        after_id: i64,
        run_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RunEvent>, QueueError> {
        let run_id = run_id.map(str::to_owned);
        self.read(move |conn, _| ops::events(conn, after_id, run_id.as_deref(), limit))
            .await
    }

    async fn last_event_id(&self) -> Result<i64, QueueError> {
        self.read(|conn, _| {
            Ok(conn
                .prepare_cached("SELECT coalesce(max(id), 0) FROM burr_run_events")?
                .query_row([], |r| r.get(0))?)
        })
        .await
    }

    fn subscribe(&self) -> broadcast::Receiver<RunEvent> {
        self.inner.events.subscribe()
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.inner.wake.subscribe()
    }

    async fn prune_events(&self, before_us: i64) -> Result<u64, QueueError> {
        let mut total = 0;
        // In batches, each its own short transaction, so checkpoints are not held up.
        loop {
            let deleted = self
                .write(move |tx, _| ops::prune_events(tx, before_us, PRUNE_BATCH))
                .await?;
            total += deleted;
            if deleted < PRUNE_BATCH {
                return Ok(total);
            }
        }
    }

    async fn reap(&self, me: &ProcessIdentity) -> Result<Vec<String>, QueueError> {
        if me.machine.is_empty() {
            return Ok(Vec::new());
        }
        let machine = me.machine.clone();
        let workers = self
            .read(move |conn, _| ops::workers_on(conn, &machine))
            .await?;
        let gone: Vec<String> = workers
            .into_iter()
            .filter(|(_, pid, started)| me.outlived(&me.machine, *pid, *started))
            .map(|(id, _, _)| id)
            .collect();
        if gone.is_empty() {
            return Ok(gone);
        }
        let ids = gone.clone();
        let freed = self.write(move |tx, now| ops::reap(tx, &ids, now)).await?;
        if freed {
            self.inner.wake.ring();
        }
        Ok(gone)
    }

    fn cancels(&self) -> watch::Receiver<u64> {
        self.inner.wake.subscribe_cancels()
    }
}
