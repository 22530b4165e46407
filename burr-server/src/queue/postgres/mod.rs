//! [`PgRunQueue`]: the run queue in a PostgreSQL database, beside burr-postgres's
//! checkpoints, shared by the workers of several machines (feature `postgres`).
//!
//! Every write is one transaction on a pooled connection; claims lock the rows they
//! take with `FOR UPDATE SKIP LOCKED` (see [`ops`]). A transaction that changed runs
//! sends `NOTIFY burr_runs` with its commit; each queue handle keeps one connection
//! outside the pool that `LISTEN`s, and turns every notification from another handle
//! into a tick of [`changes`](RunQueue::changes) (workers claim, waiters look again) —
//! and a cancel asked elsewhere into a `cancel_requested` event of
//! [`subscribe`](RunQueue::subscribe), so that the worker running the run stops it at
//! once. When that connection is lost it is reconnected with bounded backoff, and
//! meanwhile waiters fall back to their bounded backoff polling.

pub(crate) mod ops;
pub(crate) mod rows;
pub(crate) mod schema;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use burr_core::persistence::{PersistenceError, ProcessIdentity};
use burr_postgres::{PostgresOptions, PostgresPersister};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio::sync::{broadcast, watch};
use tokio_postgres::{AsyncMessage, NoTls};

use self::ops::Written;
use super::RunQueue;
use crate::error::QueueError;
use crate::events::{EventKind, RunEvent};
use crate::run::{
    now_us, Backlog, Claim, Explanation, Finish, HeartbeatReport, NewRun, Run, RunCode, RunFilter,
    Submitted, WorkerInfo,
};
use crate::schedule::Schedule;

/// A pooled connection, as the operations use it.
pub(crate) type Conn = deadpool_postgres::ClientWrapper;

/// The channel the queue's notifications go on.
pub(crate) const CHANNEL: &str = "burr_runs";

/// Events buffered per subscriber before a slow one misses some (it can read them back
/// from the database).
const EVENT_BUFFER: usize = 4096;

/// The longest the listening connection waits before connecting again.
const MAX_RECONNECT: Duration = Duration::from_secs(5);

/// A database error of the queue, before the database and operation are attached.
#[derive(Debug)]
pub(crate) enum OpError {
    Pg(tokio_postgres::Error),
    Queue(QueueError),
}

impl From<tokio_postgres::Error> for OpError {
    fn from(e: tokio_postgres::Error) -> Self {
        OpError::Pg(e)
    }
}

impl From<QueueError> for OpError {
    fn from(e: QueueError) -> Self {
        OpError::Queue(e)
    }
}

pub(crate) type OpResult<T> = Result<T, OpError>;

/// Which database: what errors name (its URL without the password).
#[derive(Clone, Debug)]
pub(crate) struct Database {
    name: String,
}

impl Database {
    /// The error of `operation`: a refusal as it is, a database failure as
    /// [`PersistenceError::Database`] naming the database and the operation.
    fn error(&self, operation: &'static str, error: OpError) -> QueueError {
        match error {
            OpError::Queue(e) => e,
            OpError::Pg(source) => self.failed(operation, source),
        }
    }

    fn failed(
        &self,
        operation: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> QueueError {
        QueueError::Persistence(PersistenceError::Database {
            database: self.name.clone(),
            operation,
            source: Box::new(source),
        })
    }

    fn outdated(&self, tables: &'static str, found: i64, known: i64) -> QueueError {
        QueueError::SchemaOutdated {
            path: self.name.clone().into(),
            tables,
            found,
            known,
        }
    }

    /// Which database: `name`, its URL without the password.
    pub(crate) fn named(name: String) -> Database {
        Database { name }
    }

    fn too_new(&self, found: i64) -> QueueError {
        QueueError::TooNew {
            path: self.name.clone().into(),
            found,
            known: schema::SCHEMA_VERSION,
        }
    }
}

/// The run queue in a PostgreSQL database. Cloning shares it.
///
/// ```no_run
/// # async fn demo() -> Result<(), burr_server::QueueError> {
/// let queue = burr_server::PgRunQueue::connect("postgres://burr@db.internal/burr").await?;
/// let persister = queue.persister(); // the checkpoints, in the same database
/// # let _ = persister; Ok(()) }
/// ```
#[derive(Clone)]
pub struct PgRunQueue {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    pool: Pool,
    persister: Arc<PostgresPersister>,
    events: broadcast::Sender<RunEvent>,
    changes: watch::Sender<u64>,
    /// This handle, as its notifications name it (it skips its own).
    instance: String,
    listener: tokio::task::JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl std::fmt::Debug for PgRunQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgRunQueue")
            .field("database", &self.inner.db.name)
            .finish_non_exhaustive()
    }
}

impl PgRunQueue {
    /// Connect to the database at `url` (`postgres://user:password@host:port/dbname`)
    /// with the default [`PostgresOptions`]: its checkpoint schema (through
    /// [`PostgresPersister`]) and its run-queue tables, created or migrated under an
    /// advisory lock.
    ///
    /// Fails with [`QueueError::Persistence`] naming the database (without its password)
    /// when the URL is malformed, the server cannot be reached or a migration fails, and
    /// [`QueueError::TooNew`] when a newer burr-server migrated its run queue.
    pub async fn connect(url: &str) -> Result<Self, QueueError> {
        Self::connect_with(url, PostgresOptions::new()).await
    }

    /// [`connect`](Self::connect) with `options`: the persister's, and the queue's own
    /// pool of [`pool_size`](PostgresOptions::pool_size) connections (so a process opens
    /// up to twice that, plus two: the persister's lease keeper and the queue's
    /// listener).
    pub async fn connect_with(url: &str, options: PostgresOptions) -> Result<Self, QueueError> {
        let persister = PostgresPersister::connect_with(url, options.clone()).await?;
        let db = Database {
            name: persister.database().to_owned(),
        };
        // The persister parsed the URL already: it cannot fail here.
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| {
            QueueError::Persistence(PersistenceError::Open {
                path: db.name.clone().into(),
                source: Box::new(e),
            })
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.get_connect_timeout());
        }
        if config.get_application_name().is_none() {
            config.application_name("burr-rs run queue");
        }
        let given = config.get_options().unwrap_or_default().to_owned();
        if !given.contains("statement_timeout") {
            let limit = format!(
                "-c statement_timeout={}",
                options.get_statement_timeout().as_millis()
            );
            let all = if given.is_empty() {
                limit
            } else {
                format!("{given} {limit}")
            };
            config.options(&all);
        }
        // The listener's first connection migrates, and LISTENs before this returns,
        // so that no change made after this returns goes unheard.
        let (client, connection) = connect(&config, &db).await?;
        let listening = listen(client, connection, &db).await?;
        schema::prepare(&listening.client, &db).await?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.get_pool_size())
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(60)))
            .create_timeout(Some(options.get_connect_timeout()))
            .build()
            .map_err(|e| db.failed("create the run queue's pool", e))?;
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let (changes, _) = watch::channel(0u64);
        let instance = uuid::Uuid::new_v4().simple().to_string();
        let listener = tokio::spawn(listener(
            config,
            db.clone(),
            listening,
            changes.clone(),
            events.clone(),
            instance.clone(),
        ));
        Ok(PgRunQueue {
            inner: Arc::new(Inner {
                db,
                pool,
                persister: Arc::new(persister),
                events,
                changes,
                instance,
                listener,
            }),
        })
    }

    /// The database, as its URL without the password.
    pub fn database(&self) -> &str {
        &self.inner.db.name
    }

    /// The checkpoints of the same database: what workers run applications with.
    pub fn persister(&self) -> Arc<PostgresPersister> {
        Arc::clone(&self.inner.persister)
    }

    async fn conn(&self, operation: &'static str) -> Result<Object, QueueError> {
        self.inner
            .pool
            .get()
            .await
            .map_err(|e| self.inner.db.failed(operation, e))
    }

    /// Run `op` in a transaction of its own. A refused operation rolls back; one that
    /// changed runs notifies the other handles with its commit; its events are broadcast
    /// after the commit.
    async fn write<T>(
        &self,
        operation: &'static str,
        op: impl AsyncFnOnce(&Conn, i64) -> OpResult<Written<T>>,
    ) -> Result<T, QueueError> {
        let db = &self.inner.db;
        let mut guard = Unfinished(Some(self.conn(operation).await?));
        let conn: &Conn = guard.0.as_ref().expect("held until the end");
        // `BEGIN` goes in the same round trip as the operation's first statements: each
        // request is sent when its future is first polled, in this order.
        let (begun, done) =
            futures::future::join(conn.batch_execute("BEGIN"), op(conn, now_us())).await;
        if let Err(e) = begun {
            // The operation's statements ran outside a transaction only if BEGIN was
            // refused, which a healthy connection never does: the connection is closed.
            return Err(db.failed(operation, e));
        }
        let (value, events) = match done {
            Ok(done) => done,
            Err(error) => {
                if conn.batch_execute("ROLLBACK").await.is_ok() {
                    guard.done();
                }
                return Err(db.error(operation, error));
            }
        };
        let of_runs = events.iter().any(|e| changes_runs(&e.kind));
        if of_runs {
            // The instance is hex: safe as a literal. Cancels name their run, which goes
            // as a parameter.
            for event in &events {
                if let EventKind::CancelRequested = event.kind {
                    let payload = format!(
                        "{} cancel {} {}",
                        self.inner.instance, event.id, event.run_id
                    );
                    conn.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload])
                        .await
                        .map_err(|e| db.failed(operation, e))?;
                }
            }
            conn.batch_execute(&format!(
                "NOTIFY {CHANNEL}, '{}'; COMMIT",
                self.inner.instance
            ))
            .await
        } else {
            conn.batch_execute("COMMIT").await
        }
        .map_err(|e| db.failed(operation, e))?;
        guard.done();
        self.announce(events);
        Ok(value)
    }

    /// Run `op` in a transaction of its own that `op` ends itself, with the statement
    /// it is given (`NOTIFY` to the other handles, then `COMMIT`) when it changed runs,
    /// so that it can send the commit in the same round trip as its last statements;
    /// otherwise as [`write`](Self::write). A refused or failed operation is rolled
    /// back.
    async fn write_committed<T>(
        &self,
        operation: &'static str,
        op: impl AsyncFnOnce(&Conn, i64, &str) -> OpResult<Written<T>>,
    ) -> Result<T, QueueError> {
        let db = &self.inner.db;
        let mut guard = Unfinished(Some(self.conn(operation).await?));
        let conn: &Conn = guard.0.as_ref().expect("held until the end");
        let notify_commit = format!("NOTIFY {CHANNEL}, '{}'; COMMIT", self.inner.instance);
        let (begun, done) = futures::future::join(
            conn.batch_execute("BEGIN"),
            op(conn, now_us(), &notify_commit),
        )
        .await;
        if let Err(e) = begun {
            return Err(db.failed(operation, e));
        }
        let (value, events) = match done {
            Ok(done) => done,
            Err(error) => {
                // Harmless when the operation's commit already ended the transaction.
                if conn.batch_execute("ROLLBACK").await.is_ok() {
                    guard.done();
                }
                return Err(db.error(operation, error));
            }
        };
        guard.done();
        self.announce(events);
        Ok(value)
    }

    /// Run `op`, a write of one statement in autocommit mode (atomic by itself), on a
    /// pooled connection: one round trip and no `BEGIN`/`COMMIT`. A statement that
    /// changes runs notifies the other handles itself (`pg_notify`, sent with its
    /// commit; `op` gets this handle's instance for the payload). Its events are
    /// broadcast once it returns.
    async fn single<T>(
        &self,
        operation: &'static str,
        op: impl AsyncFnOnce(&Conn, i64, &str) -> OpResult<Written<T>>,
    ) -> Result<T, QueueError> {
        let conn = self.conn(operation).await?;
        let (value, events) = op(&conn, now_us(), &self.inner.instance)
            .await
            .map_err(|e| self.inner.db.error(operation, e))?;
        drop(conn);
        self.announce(events);
        Ok(value)
    }

    /// Send the events of a committed write to this handle's subscribers, and wake its
    /// waiters when there were any.
    fn announce(&self, events: Vec<RunEvent>) {
        if events.is_empty() {
            return;
        }
        for event in events {
            let _ = self.inner.events.send(event);
        }
        self.inner.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Run `op` on a pooled connection, outside any transaction.
    async fn read<T>(
        &self,
        operation: &'static str,
        op: impl AsyncFnOnce(&Conn, i64) -> OpResult<T>,
    ) -> Result<T, QueueError> {
        let conn = self.conn(operation).await?;
        op(&conn, now_us())
            .await
            .map_err(|e| self.inner.db.error(operation, e))
    }
}

/// Whether an event of this kind is one the other handles are notified of (a run's
/// status changed, or a cancel was asked): not a step's progress within a run.
fn changes_runs(kind: &EventKind) -> bool {
    !matches!(
        kind,
        EventKind::StepFinished { .. }
            | EventKind::ChildProgress { .. }
            | EventKind::Announced { .. }
    )
}

/// A pooled connection inside a transaction: dropped before [`done`](Self::done) (the
/// write's future was dropped, or its rollback failed), the connection is taken out of
/// the pool and closed, so that no transaction is left open on a pooled connection.
struct Unfinished(Option<Object>);

impl Unfinished {
    fn done(&mut self) {
        self.0 = None;
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if let Some(object) = self.0.take() {
            drop(Object::take(object));
        }
    }
}

type Connection =
    tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>;

async fn connect(
    config: &tokio_postgres::Config,
    db: &Database,
) -> Result<(tokio_postgres::Client, Connection), QueueError> {
    config.connect(NoTls).await.map_err(|e| {
        QueueError::Persistence(PersistenceError::Open {
            path: db.name.clone().into(),
            source: Box::new(e),
        })
    })
}

/// A listening connection: its client (kept, or the connection closes) and the
/// notifications its driver task forwards (closed when the connection ends).
struct Listening {
    client: tokio_postgres::Client,
    notifications: tokio::sync::mpsc::UnboundedReceiver<tokio_postgres::Notification>,
}

/// Drive `connection`, forwarding its notifications, and `LISTEN` on it.
async fn listen(
    client: tokio_postgres::Client,
    mut connection: Connection,
    db: &Database,
) -> Result<Listening, QueueError> {
    let (tx, notifications) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(message) = futures::future::poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::debug!(%error, "the run queue's listening connection ended");
                    return;
                }
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(|e| db.failed("listen for run queue changes", e))?;
    Ok(Listening {
        client,
        notifications,
    })
}

/// Turn notifications into changes and cancel events; connect again (with bounded
/// backoff) when the connection is lost, ticking `changes` so that waiters look again
/// for what they may have missed meanwhile.
async fn listener(
    config: tokio_postgres::Config,
    db: Database,
    first: Listening,
    changes: watch::Sender<u64>,
    events: broadcast::Sender<RunEvent>,
    instance: String,
) {
    let mut listening = Some(first);
    let mut pause = Duration::from_millis(50);
    loop {
        if let Some(mut current) = listening.take() {
            pause = Duration::from_millis(50);
            while let Some(first) = current.notifications.recv().await {
                let mut tick = false;
                let mut next = Some(first);
                // A burst of notifications is one tick.
                while let Some(n) = next {
                    let mut parts = n.payload().splitn(4, ' ');
                    if parts.next() != Some(instance.as_str()) {
                        tick = true;
                        if let (Some("cancel"), Some(id), Some(run_id)) =
                            (parts.next(), parts.next(), parts.next())
                        {
                            let _ = events.send(RunEvent {
                                id: id.parse().unwrap_or_default(),
                                run_id: run_id.to_owned(),
                                at_us: now_us(),
                                kind: EventKind::CancelRequested,
                            });
                        }
                    }
                    next = current.notifications.try_recv().ok();
                }
                if tick {
                    changes.send_modify(|n| *n = n.wrapping_add(1));
                }
            }
            tracing::warn!(database = %db.name, "lost the run queue's listening connection: reconnecting");
            changes.send_modify(|n| *n = n.wrapping_add(1));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_RECONNECT);
        match connect(&config, &db).await {
            Ok((client, connection)) => match listen(client, connection, &db).await {
                Ok(l) => {
                    listening = Some(l);
                    // Changes made while nobody listened: look again.
                    changes.send_modify(|n| *n = n.wrapping_add(1));
                }
                Err(error) => tracing::debug!(%error, "could not listen again"),
            },
            Err(error) => tracing::debug!(%error, "could not connect the listener again"),
        }
    }
}

#[async_trait]
impl RunQueue for PgRunQueue {
    async fn submit(&self, run: NewRun) -> Result<Submitted, QueueError> {
        if ops::plain(&run) {
            return self
                .single("submit a run", async |c, now, me| {
                    ops::submit_alone(c, &run, now, me).await
                })
                .await;
        }
        self.write("submit a run", async |c, now| {
            ops::submit(c, &run, now).await
        })
        .await
    }

    async fn get(&self, run_id: &str) -> Result<Run, QueueError> {
        self.read("read a run", async |c, _| ops::get(c, run_id).await)
            .await
    }

    async fn list(&self, filter: &RunFilter) -> Result<Vec<Run>, QueueError> {
        self.read("list runs", async |c, _| ops::list(c, filter).await)
            .await
    }

    async fn claim(&self, claim: &Claim) -> Result<Vec<Run>, QueueError> {
        self.write_committed("claim runs", async |c, now, notify_commit| {
            ops::claim(c, claim, now, notify_commit).await
        })
        .await
    }

    async fn heartbeat(
        &self,
        info: &WorkerInfo,
        held: &[(String, u32)],
        lease_ttl_us: i64,
    ) -> Result<HeartbeatReport, QueueError> {
        self.write("renew run leases", async |c, now| {
            ops::heartbeat(c, info, held, lease_ttl_us, now).await
        })
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
        self.single("finish a run", async |c, now, me| {
            ops::finish(c, run_id, attempt, worker, &finish, code, now, me).await
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
        self.write("release a run", async |c, now| {
            ops::release(c, run_id, attempt, worker, not_before_us, now).await
        })
        .await
    }

    async fn cancel(&self, run_id: &str) -> Result<Run, QueueError> {
        self.write("cancel a run", async |c, now| {
            ops::cancel(c, run_id, now).await
        })
        .await
    }

    async fn backlog(&self) -> Result<Backlog, QueueError> {
        self.read("read the backlog", async |c, now| {
            ops::backlog(c, now).await
        })
        .await
    }

    async fn explain(&self, run_id: &str) -> Result<Explanation, QueueError> {
        self.read("explain a run", async |c, now| {
            ops::explain(c, run_id, now).await
        })
        .await
    }

    async fn put_schedule(&self, schedule: &Schedule) -> Result<(), QueueError> {
        self.write("add a schedule", async |c, _| {
            ops::put_schedule(c, schedule).await
        })
        .await?;
        // The schedulers (here and elsewhere) look at the new due time.
        self.notify_all("add a schedule").await
    }

    async fn schedules(&self) -> Result<Vec<Schedule>, QueueError> {
        self.read("list schedules", async |c, _| ops::schedules(c).await)
            .await
    }

    async fn remove_schedule(&self, name: &str) -> Result<(), QueueError> {
        self.write("remove a schedule", async |c, _| {
            ops::remove_schedule(c, name).await
        })
        .await
    }

    async fn fire_due(&self, now_us: i64) -> Result<Vec<Run>, QueueError> {
        self.write("fire schedules", async |c, _| {
            ops::fire_due(c, now_us).await
        })
        .await
    }

    async fn record(&self, events: Vec<(String, EventKind)>) -> Result<(), QueueError> {
        if events.is_empty() {
            return Ok(());
        }
        if events.iter().all(|(_, kind)| !changes_runs(kind)) {
            // Nothing to notify: one statement in autocommit mode.
            return self
                .single("record run events", async |c, now, _| {
                    ops::record(c, events, now).await
                })
                .await;
        }
        self.write("record run events", async |c, now| {
            ops::record(c, events, now).await
        })
        .await
    }

    async fn events(
        &self,
        after_id: i64,
        run_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RunEvent>, QueueError> {
        self.read("read run events", async |c, _| {
            ops::events(c, after_id, run_id, limit).await
        })
        .await
    }

    async fn reap(&self, me: &ProcessIdentity) -> Result<Vec<String>, QueueError> {
        if me.machine.is_empty() {
            return Ok(Vec::new());
        }
        let workers = self
            .read("list the workers of this machine", async |c, _| {
                ops::workers_on(c, &me.machine).await
            })
            .await?;
        let gone: Vec<String> = workers
            .into_iter()
            .filter(|(_, pid, started)| me.outlived(&me.machine, *pid, *started))
            .map(|(id, _, _)| id)
            .collect();
        if gone.is_empty() {
            return Ok(gone);
        }
        let freed = self
            .write("take back the runs of gone workers", async |c, now| {
                ops::reap(c, &gone, now).await
            })
            .await?;
        if freed {
            // The runs are claimable now: wake the workers, here and elsewhere.
            self.notify_all("take back the runs of gone workers")
                .await?;
        }
        Ok(gone)
    }

    async fn prune_events(&self, before_us: i64) -> Result<u64, QueueError> {
        // In batches, each its own short transaction.
        const BATCH: i64 = 5_000;
        let mut total = 0;
        loop {
            let deleted = self
                .write("delete old run events", async |c, _| {
                    ops::prune_events(c, before_us, BATCH).await
                })
                .await?;
            total += deleted;
            if deleted < BATCH.unsigned_abs() {
                return Ok(total);
            }
        }
    }

    async fn last_event_id(&self) -> Result<i64, QueueError> {
        self.read("read the newest run event id", async |c, _| {
            Ok(c.query_one(
                "SELECT coalesce(max(id), 0)::bigint FROM burr_run_events",
                &[],
            )
            .await?
            .get(0))
        })
        .await
    }

    fn subscribe(&self) -> broadcast::Receiver<RunEvent> {
        self.inner.events.subscribe()
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }
}

impl PgRunQueue {
    /// Tick every handle's changes (this one's at once, the others' by a notification).
    async fn notify_all(&self, operation: &'static str) -> Result<(), QueueError> {
        self.inner.changes.send_modify(|n| *n = n.wrapping_add(1));
        let conn = self.conn(operation).await?;
        conn.batch_execute(&format!("NOTIFY {CHANNEL}, '{}'", self.inner.instance))
            .await
            .map_err(|e| self.inner.db.failed(operation, e))
    }
}
