//! Group commit: how a write operation reaches the database. The callers take turns
//! holding the write connection ([`Writer`]); the one holding it commits everything
//! queued in one transaction ([`Group`]); the others wait for its answer ([`Waiting`]).
//! What each operation does inside the transaction is in [`write`](super::write).

use super::checkpointer::Checkpointer;
use super::AppMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, TryLockError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::oneshot::{self, error::TryRecvError};

use super::layout::{sqlite_error, AppKey, Failure};
use super::lease::{HeldLease, LeaseState};
use super::write::{GraphSet, KnownStates, Pending, Txn};
use crate::persistence::ProcessIdentity;
use crate::persistence::{AppRecord, Checkpoint, Clock, Lease, PersistenceError};

// --------------------------------------------------------------------------------------
// Group commit in the callers' threads: a queue of operations and a leader.
//
// A caller puts its [`Op`] on the queue, lets the other tasks of its thread run (so that
// futures polled together, such as the children of a map step, queue their operations
// too; again while they keep queueing, at most [`MAX_YIELDS`] times, as a combinator
// such as `FuturesUnordered` hands control back after polling a few; while callers come
// alone, only one in [`PROBE_EVERY`] does), then tries to take the write connection. If
// it gets it, it is the leader: it takes everything queued (its own operation included),
// runs it in one transaction, commits in its own thread, answers every operation, and
// goes on while operations are queued. If another caller holds the connection, that
// one is the leader and answers this operation in its next transaction: the caller
// waits for the answer ([`Waiting`]). So an application that checkpoints alone commits
// in its own thread, without handing its checkpoint to another thread, and the saves of
// applications running concurrently share a commit (one `fsync` with
// [`Durability::Full`](super::Durability::Full)) per round, not one each.
//
// A save whose caller has been coming alone (no company in the latest transaction, not
// a probing turn) and that finds the connection free and nothing queued skips the
// queue: it commits at once in a transaction of its own, from the borrowed checkpoint,
// and then leads whatever was queued meanwhile.
//
// No operation is left queued without a leader: a leader takes the queue once more
// after it lets the connection go if something was queued meanwhile (the callers that
// queued it found the connection taken).
//
// A thread renews the leases this persister holds in the background (every third of
// their time to live) when no save renewed them; it takes the connection like a caller.
// --------------------------------------------------------------------------------------

/// Operations committed in one transaction at most.
const MAX_BATCH: usize = 1024;

/// How many times a caller yields, at most, while other callers keep queueing
/// operations, before it tries to lead.
const MAX_YIELDS: usize = 32;

/// While callers come alone, one in this many yields all the same, to find out whether
/// others would come with it.
const PROBE_EVERY: u64 = 8;

/// The write side of a persister: the queue, the write connection, and the background
/// renewals' timer.
pub(super) struct Group {
    queue: Mutex<Vec<Op>>,
    /// Operations queued since the start (how a caller sees others queue theirs).
    pushed: AtomicU64,
    /// Writes asked for since the start, queued or not (which of them probe).
    calls: AtomicU64,
    /// Whether the latest transaction held the operations of more than one caller.
    company: AtomicBool,
    writer: Mutex<Writer>,
    waiting: Arc<Waiting>,
    /// Whether commits flush to the disk (then a leader on a multi-thread runtime lets
    /// the runtime move its other tasks to another thread while it commits).
    slow_commits: bool,
    timer: Mutex<Timer>,
    wake: Condvar,
}

/// What the renewal thread sleeps on.
#[derive(Default)]
struct Timer {
    /// Stop: the persister is gone.
    stop: bool,
    /// When the thread wakes up next (`None`: only when told), in microseconds since
    /// the Unix epoch.
    until_us: Option<i64>,
    /// A lease is due before `until_us`.
    earlier: bool,
}

impl Group {
    pub(super) fn new(writer: Writer, waiting: Arc<Waiting>, slow_commits: bool) -> Self {
        Group {
            queue: Mutex::new(Vec::new()),
            pushed: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            company: AtomicBool::new(false),
            writer: Mutex::new(writer),
            waiting,
            slow_commits,
            timer: Mutex::new(Timer::default()),
            wake: Condvar::new(),
        }
    }

    /// Save a checkpoint: as [`write`](Self::write) does, or, for a caller that has been
    /// coming alone and finds the connection free and nothing queued, at once in a
    /// transaction of its own, without copying the checkpoint into the queue or waiting
    /// for an answer.
    pub(super) async fn save(
        &self,
        checkpoint: &Checkpoint,
    ) -> Option<Result<(), PersistenceError>> {
        let yields = self.would_yield();
        if !yields {
            if let Some(mut writer) = self.try_writer() {
                if self.queue_is_empty() {
                    let saved = if self.slow_commits && on_multi_thread_runtime() {
                        tokio::task::block_in_place(|| writer.commit_save(checkpoint))
                    } else {
                        writer.commit_save(checkpoint)
                    };
                    // Whatever was queued meanwhile.
                    self.lead(writer);
                    return Some(saved);
                }
            }
        }
        let checkpoint = Box::new(checkpoint.clone());
        self.queued(|reply| Op::Save(checkpoint, reply), yields)
            .await
    }

    /// Whether a write lets the other tasks of its thread queue theirs first: while the
    /// latest transaction held several callers' operations, and one time in
    /// [`PROBE_EVERY`] otherwise (a yield costs a trip through the runtime, a few percent
    /// of a commit).
    fn would_yield(&self) -> bool {
        let call = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        self.company.load(Ordering::Relaxed) || call % PROBE_EVERY == 0
    }

    /// Queue an operation, commit it (as the leader, or in the leader's next
    /// transaction), and return its result; `None` if it was dropped unanswered.
    pub(super) async fn write<T>(
        &self,
        op: impl FnOnce(Reply<T>) -> Op,
    ) -> Option<Result<T, PersistenceError>> {
        let yields = self.would_yield();
        self.queued(op, yields).await
    }

    /// Queue `op` and see it committed; first let the other tasks of this thread queue
    /// theirs if `yields`.
    async fn queued<T>(
        &self,
        op: impl FnOnce(Reply<T>) -> Op,
        yields: bool,
    ) -> Option<Result<T, PersistenceError>> {
        let (reply, mut answer) = oneshot::channel();
        let mut pushed = self.push(op(Reply::Async(reply)));
        // Let the other futures of this thread run first: those that save (the
        // children of a map step, polled one after the other in the same task) queue
        // their operations, which go into the same transaction. A combinator may hand
        // control back to the runtime after polling a few of them (`FuturesUnordered`
        // does after two that yield), so while operations keep arriving, yield again.
        // A caller that has been coming alone (an application checkpointing by itself)
        // skips this (see `would_yield`).
        let yields = if yields { MAX_YIELDS } else { 0 };
        for _ in 0..yields {
            YieldOnce(false).await;
            match answer.try_recv() {
                Ok(result) => return Some(result),
                Err(TryRecvError::Closed) => return None,
                Err(TryRecvError::Empty) => {}
            }
            let now = self.pushed.load(Ordering::Acquire);
            if now == pushed {
                break;
            }
            pushed = now;
        }
        if let Some(writer) = self.try_writer() {
            if self.slow_commits && on_multi_thread_runtime() {
                tokio::task::block_in_place(|| self.lead(writer));
            } else {
                self.lead(writer);
            }
        }
        match answer.try_recv() {
            Ok(result) => Some(result),
            Err(TryRecvError::Closed) => None,
            Err(TryRecvError::Empty) => self.waiting.wait(answer).await,
        }
    }

    /// [`write`](Self::write) for a caller that blocks: it waits for the connection,
    /// then leads.
    pub(super) fn write_blocking<T>(
        &self,
        op: impl FnOnce(Reply<T>) -> Op,
    ) -> Option<Result<T, PersistenceError>> {
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        self.push(op(Reply::Blocking(reply)));
        self.lead(self.lock_writer());
        // Holding the connection, the leader answered every operation queued before.
        answer.try_recv().ok()
    }

    /// Queue `op`; the number of operations queued so far, this one included.
    fn push(&self, op: Op) -> u64 {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(op);
        self.pushed.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Move the next batch of queued operations to `batch` (empty before; left empty
    /// when none are queued). The queue takes `batch`'s buffer in exchange, so that
    /// neither allocates again.
    fn take_batch(&self, batch: &mut Vec<Op>) {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if queue.len() <= MAX_BATCH {
            std::mem::swap(&mut *queue, batch);
        } else {
            batch.extend(queue.drain(..MAX_BATCH));
        }
    }

    fn queue_is_empty(&self) -> bool {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    /// Run `read` on the write connection if no one holds it (else give `read` back): a
    /// read that finds no idle reader need not open one (opening a connection, and
    /// parsing the schema on it, costs more than most reads; a resume's load is the
    /// first read of its process). Then lead what was queued meanwhile, as after a
    /// commit: those who queued it found the connection taken.
    pub(super) fn read_idle<T, F>(&self, read: F) -> Result<T, F>
    where
        F: FnOnce(&Connection) -> T,
    {
        let Some(writer) = self.try_writer() else {
            return Err(read);
        };
        let result = read(&writer.conn);
        if !writer.conn.is_autocommit() {
            // A read left its transaction open: end it, as the writer expects none.
            let _ = writer.conn.execute_batch("ROLLBACK");
        }
        if self.slow_commits && on_multi_thread_runtime() {
            tokio::task::block_in_place(|| self.lead(writer));
        } else {
            self.lead(writer);
        }
        Ok(result)
    }

    /// The write connection, if no one holds it.
    fn try_writer(&self) -> Option<MutexGuard<'_, Writer>> {
        match self.writer.try_lock() {
            Ok(writer) => Some(writer),
            Err(TryLockError::Poisoned(poisoned)) => Some(self.recover(poisoned.into_inner())),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    fn lock_writer(&self) -> MutexGuard<'_, Writer> {
        self.writer
            .lock()
            .unwrap_or_else(|poisoned| self.recover(poisoned.into_inner()))
    }

    /// The connection after a leader panicked while holding it: its transaction, if
    /// one was open, is rolled back (what it would have changed was not remembered).
    fn recover<'a>(&self, writer: MutexGuard<'a, Writer>) -> MutexGuard<'a, Writer> {
        if !writer.conn.is_autocommit() {
            let _ = writer.conn.execute_batch("ROLLBACK");
        }
        self.writer.clear_poison();
        writer
    }

    /// As the leader, commit what is queued until nothing is; let the connection go,
    /// and lead again if something was queued meanwhile and no one else leads.
    fn lead<'a>(&'a self, mut writer: MutexGuard<'a, Writer>) {
        loop {
            let mut batch = std::mem::take(&mut writer.spare.batch);
            loop {
                self.take_batch(&mut batch);
                if batch.is_empty() {
                    break;
                }
                self.company.store(batch.len() > 1, Ordering::Relaxed);
                writer.commit(&mut batch);
            }
            writer.spare.batch = batch;
            let due = writer.take_new_lease_due();
            drop(writer);
            if let Some(due) = due {
                self.renewal_due(due);
            }
            if self.queue_is_empty() {
                return;
            }
            match self.try_writer() {
                Some(next) => writer = next,
                None => return,
            }
        }
    }

    /// Wake the renewal thread if a lease is due before it would wake up.
    fn renewal_due(&self, due_us: i64) {
        let mut timer = self.timer.lock().unwrap_or_else(|p| p.into_inner());
        if timer.until_us.is_none_or(|until| due_us < until) {
            timer.earlier = true;
            self.wake.notify_one();
        }
    }

    /// Stop the renewal thread.
    pub(super) fn stop(&self) {
        self.timer.lock().unwrap_or_else(|p| p.into_inner()).stop = true;
        self.wake.notify_one();
    }

    /// The renewal thread: renew the leases due, sleep until the next one is, until
    /// [`stop`](Self::stop).
    pub(super) fn renew_in_background(&self) {
        // A new persister holds no lease: nothing to renew until one is taken (which
        // wakes this thread). So it does not contend for the writer while the first
        // application opens (takes its lease, loads, registers).
        let mut started = false;
        loop {
            // While the next renewal is computed, any lease taken is news.
            self.timer
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .until_us = None;
            let (wait, next_us) = if !std::mem::replace(&mut started, true) {
                (None, None)
            } else {
                let mut writer = self.lock_writer();
                // An empty transaction renews what is due (and does nothing otherwise).
                writer.commit(&mut Vec::new());
                let wait = writer.next_renewal_in();
                let now = writer.clock.now_micros();
                self.lead(writer);
                let next_us = wait
                    .map(|w| now.saturating_add(i64::try_from(w.as_micros()).unwrap_or(i64::MAX)));
                (wait, next_us)
            };
            let deadline = wait.map(|w| Instant::now() + w);
            let mut timer = self.timer.lock().unwrap_or_else(|p| p.into_inner());
            timer.until_us = next_us;
            loop {
                if timer.stop {
                    return;
                }
                if timer.earlier {
                    timer.earlier = false;
                    break;
                }
                match deadline {
                    None => timer = self.wake.wait(timer).unwrap_or_else(|p| p.into_inner()),
                    Some(deadline) => {
                        let left = deadline.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            break;
                        }
                        timer = self
                            .wake
                            .wait_timeout(timer, left.max(Duration::from_micros(100)))
                            .unwrap_or_else(|p| p.into_inner())
                            .0;
                    }
                }
            }
        }
    }
}

/// Whether the caller runs on a multi-thread tokio runtime, where
/// [`block_in_place`](tokio::task::block_in_place) is allowed.
fn on_multi_thread_runtime() -> bool {
    Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread)
}

/// Returns `Pending` once (waking its task at once), then `Ready`: the caller's task,
/// and the other tasks of its thread, get to run before it goes on.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

// --------------------------------------------------------------------------------------
// How a caller waits for another caller's commit (see [`Group`]): briefly
// on the CPU when it is the only one waiting and commits are quick, asleep otherwise.
//
// Waking a sleeping thread costs tens of microseconds, as much as a commit with
// `synchronous = NORMAL` (~20 µs). So a caller that is the only one waiting polls for
// its answer (yielding the CPU between polls) for up to about twice the recent commit
// time before it sleeps. When commits are slow (over 0.5 ms: flushes to a slow disk)
// waking up costs little in comparison, and nobody polls. When several callers wait
// (concurrent applications), none polls: their task threads stay free to run other
// tasks, and their saves share a commit.
// --------------------------------------------------------------------------------------

/// The longest a caller polls before it sleeps.
const MAX_POLL: Duration = Duration::from_millis(1);

/// Commits slower than this on average are waited for asleep.
const SLOW_COMMIT: Duration = Duration::from_micros(500);

/// Commit times and waiting callers.
#[derive(Debug, Default)]
pub(super) struct Waiting {
    /// Recent commit time in microseconds (an exponential moving average, 1/8 per commit).
    commit_us: AtomicU64,
    /// Callers waiting for an answer.
    waiting: AtomicUsize,
}

impl Waiting {
    /// A transaction took `took`.
    pub(super) fn record(&self, took: Duration) {
        let took = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
        let average = self.commit_us.load(Ordering::Relaxed);
        let average = if average == 0 {
            took
        } else {
            average.saturating_mul(7).saturating_add(took) / 8
        };
        self.commit_us.store(average, Ordering::Relaxed);
    }

    /// Wait for `answer`; `None` when it was dropped unanswered.
    pub(super) async fn wait<T>(&self, mut answer: oneshot::Receiver<T>) -> Option<T> {
        let alone = self.waiting.fetch_add(1, Ordering::AcqRel) == 0;
        let _waiting = Counted(&self.waiting);
        let average = Duration::from_micros(self.commit_us.load(Ordering::Relaxed));
        if alone && average <= SLOW_COMMIT {
            let until = Instant::now() + (2 * average + Duration::from_micros(20)).min(MAX_POLL);
            loop {
                match answer.try_recv() {
                    Ok(value) => return Some(value),
                    Err(TryRecvError::Closed) => return None,
                    Err(TryRecvError::Empty) if Instant::now() < until => std::thread::yield_now(),
                    Err(TryRecvError::Empty) => break,
                }
            }
        }
        answer.await.ok()
    }
}

/// Counts a waiting caller until it stops waiting (answered, or its future dropped).
struct Counted<'a>(&'a AtomicUsize);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

// --------------------------------------------------------------------------------------
// The writer: the write connection and what this persister remembers of what it
// wrote, and how it commits a batch of operations in one transaction. The callers take
// turns running it ([`Group`]).
// --------------------------------------------------------------------------------------

/// Application row ids remembered before the table is emptied.
const MAX_APP_ROWS: usize = 100_000;

/// Where the result of an operation goes.
pub(super) enum Reply<T> {
    /// To an async caller.
    Async(oneshot::Sender<Result<T, PersistenceError>>),
    /// To a caller blocked on it.
    Blocking(std::sync::mpsc::SyncSender<Result<T, PersistenceError>>),
}

impl<T> Reply<T> {
    fn send(self, result: Result<T, PersistenceError>) {
        // The caller may have gone (a dropped future): nobody is left to tell.
        match self {
            Reply::Async(sender) => {
                let _ = sender.send(result);
            }
            Reply::Blocking(sender) => {
                let _ = sender.send(result);
            }
        }
    }
}

/// A write operation and where its result goes.
pub(super) enum Op {
    /// Save a checkpoint.
    Save(Box<Checkpoint>, Reply<()>),
    /// Record an application.
    Register(Box<AppRecord>, Reply<()>),
    /// Take a lease for a holder, with a time to live in microseconds; then, once it is
    /// taken, record the application (when given).
    Acquire {
        key: AppKey,
        holder: String,
        ttl_us: i64,
        record: Option<Box<AppRecord>>,
        reply: Reply<()>,
    },
    /// Give a lease back.
    Release(Lease, Reply<()>),
    /// Delete an application.
    Delete(AppKey, Reply<bool>),
    /// Prune an application's checkpoints, keeping the last N.
    Prune(AppKey, usize, Reply<usize>),
    /// Work of another store in the same file (see
    /// [`SqlitePersister::write_with`](super::SqlitePersister::write_with)).
    Custom(super::CustomWork, Reply<()>),
}

/// The result of an operation that ran.
enum Outcome {
    Unit(Result<(), PersistenceError>),
    Bool(Result<bool, PersistenceError>),
    Count(Result<usize, PersistenceError>),
}

impl Op {
    fn reply(self, outcome: Outcome) {
        match (self, outcome) {
            (
                Op::Save(_, reply)
                | Op::Register(_, reply)
                | Op::Acquire { reply, .. }
                | Op::Release(_, reply)
                | Op::Custom(_, reply),
                Outcome::Unit(result),
            ) => reply.send(result),
            (Op::Delete(_, reply), Outcome::Bool(result)) => reply.send(result),
            (Op::Prune(_, _, reply), Outcome::Count(result)) => reply.send(result),
            // `run` gives each operation its own kind of outcome: this does not happen,
            // and the caller would see the writer as closed.
            _ => {}
        }
    }

    fn fail(self, error: PersistenceError) {
        match self {
            Op::Save(_, reply)
            | Op::Register(_, reply)
            | Op::Acquire { reply, .. }
            | Op::Release(_, reply)
            | Op::Custom(_, reply) => reply.send(Err(error)),
            Op::Delete(_, reply) => reply.send(Err(error)),
            Op::Prune(_, _, reply) => reply.send(Err(error)),
        }
    }

    /// Run the operation in `txn`. `Err` is a SQLite failure that aborts the transaction;
    /// a refused operation is an `Ok` outcome holding its error.
    fn run(&mut self, txn: &mut Txn<'_>) -> rusqlite::Result<Outcome> {
        fn split<T>(result: Result<T, Failure>) -> rusqlite::Result<Result<T, PersistenceError>> {
            match result {
                Ok(value) => Ok(Ok(value)),
                Err(Failure::Refused(error)) => Ok(Err(error)),
                Err(Failure::Sqlite(error)) => Err(error),
            }
        }
        Ok(match self {
            Op::Save(checkpoint, _) => Outcome::Unit(split(txn.save(checkpoint))?),
            Op::Register(record, _) => Outcome::Unit(split(txn.register(record))?),
            Op::Acquire {
                key,
                holder,
                ttl_us,
                record,
                ..
            } => Outcome::Unit(split(txn.acquire(key, holder, *ttl_us).and_then(
                |()| match record {
                    Some(record) => txn.register(record),
                    None => Ok(()),
                },
            ))?),
            Op::Release(lease, _) => Outcome::Unit(split(txn.release(lease))?),
            Op::Delete(key, _) => Outcome::Bool(split(txn.delete(key))?),
            Op::Prune(key, keep_last, _) => Outcome::Count(split(txn.prune(key, *keep_last))?),
            Op::Custom(work, _) => {
                work(txn.conn, txn.now_us)?;
                Outcome::Unit(Ok(()))
            }
        })
    }
}

/// Why a transaction failed.
enum BatchError {
    /// Operation `index` failed: it alone is answered with the error, the others retried.
    Op(usize, rusqlite::Error),
    /// The transaction itself (begin, commit, lease renewals) failed: every operation
    /// is answered with the error.
    Transaction(rusqlite::Error),
}

/// The write connection and what this persister remembers of what it wrote.
pub(super) struct Writer {
    pub(super) waiting: Arc<Waiting>,
    pub(super) conn: Connection,
    pub(super) path: PathBuf,
    pub(super) me: Arc<ProcessIdentity>,
    pub(super) known: Arc<Mutex<KnownStates>>,
    /// What leases are judged by.
    pub(super) clock: Arc<dyn Clock>,
    pub(super) apps: AppMap<i64>,
    pub(super) leases: AppMap<HeldLease>,
    /// Graph fingerprints known to be in `burr_graphs` (shared with the persister, whose
    /// `register_app` then need not copy a known graph's description).
    pub(super) graphs: Arc<Mutex<GraphSet>>,
    /// The earliest background renewal due of the leases taken or renewed since
    /// [`take_new_lease_due`](Self::take_new_lease_due), in microseconds since the Unix
    /// epoch.
    pub(super) new_lease_due: Option<i64>,
    /// Buffers kept from one transaction to the next.
    pub(super) spare: Spare,
    /// The WAL checkpoints' signal (the writer copies the last frames of one).
    pub(super) checkpointer: Arc<Checkpointer>,
}

/// The buffers a transaction fills, kept empty between transactions so that a commit
/// allocates none.
#[derive(Default)]
pub(super) struct Spare {
    /// A batch of operations (taken by the leader).
    pub(super) batch: Vec<Op>,
    pending: Pending,
    outcomes: Vec<Outcome>,
}

impl Writer {
    /// How long until an active lease is due for renewal in the background.
    pub(super) fn next_renewal_in(&self) -> Option<Duration> {
        let now = self.clock.now_micros();
        self.leases
            .values()
            .filter(|h| h.state == LeaseState::Active)
            .map(|h| (h.renewed_at_us + h.background_after_us() - now).max(0))
            .min()
            .map(|us| Duration::from_micros(u64::try_from(us).unwrap_or_default()))
    }

    /// Run `ops` in one transaction and answer each, leaving `ops` empty (its capacity
    /// is kept for the next batch). A failing operation is answered with its error and
    /// the others run again without it.
    pub(super) fn commit(&mut self, ops: &mut Vec<Op>) {
        if ops.is_empty() && self.next_renewal_in().is_none_or(|wait| !wait.is_zero()) {
            return;
        }
        // The buffers of the previous transaction, emptied, are filled again.
        let mut pending = std::mem::take(&mut self.spare.pending);
        let mut outcomes = std::mem::take(&mut self.spare.outcomes);
        loop {
            let started = Instant::now();
            let done = self.transaction(ops, &mut pending, &mut outcomes);
            self.waiting.record(started.elapsed());
            match done {
                Ok(()) => {
                    self.keep(&mut pending);
                    for (op, outcome) in ops.drain(..).zip(outcomes.drain(..)) {
                        op.reply(outcome);
                    }
                    break;
                }
                Err(BatchError::Op(index, error)) => {
                    ops.remove(index).fail(sqlite_error(&self.path, error));
                    pending.clear();
                    outcomes.clear();
                    if ops.is_empty() {
                        break;
                    }
                }
                Err(BatchError::Transaction(error)) => {
                    tracing::warn!(path = %self.path.display(), %error, "a checkpoint transaction failed");
                    let error = Arc::new(error);
                    for op in ops.drain(..) {
                        op.fail(PersistenceError::Sqlite {
                            path: self.path.clone(),
                            source: Box::new(SharedError(Arc::clone(&error))),
                        });
                    }
                    pending.clear();
                    outcomes.clear();
                    break;
                }
            }
        }
        self.spare.pending = pending;
        self.spare.outcomes = outcomes;
        self.checkpointer.catch_up(&self.conn);
    }

    /// Run `ops` in one transaction: their outcomes go to `outcomes`, what the
    /// transaction changed in this persister's memory to `pending` (both empty before).
    fn transaction(
        &self,
        ops: &mut [Op],
        pending: &mut Pending,
        outcomes: &mut Vec<Outcome>,
    ) -> Result<(), BatchError> {
        self.in_transaction(pending, |txn| {
            for (index, op) in ops.iter_mut().enumerate() {
                outcomes.push(op.run(txn).map_err(|e| BatchError::Op(index, e))?);
            }
            Ok(())
        })
    }

    /// Save one checkpoint in a transaction of its own, without queueing it (see
    /// [`Group::save`](Group::save)).
    pub(super) fn commit_save(&mut self, checkpoint: &Checkpoint) -> Result<(), PersistenceError> {
        let mut pending = std::mem::take(&mut self.spare.pending);
        let started = Instant::now();
        let mut saved = Ok(());
        // A refused save is its caller's answer (what else the transaction did
        // commits); a failed one fails the transaction.
        let mut settle = |result| match result {
            Ok(()) => Ok(()),
            Err(Failure::Refused(error)) => {
                saved = Err(error);
                Ok(())
            }
            Err(Failure::Sqlite(error)) => Err(BatchError::Op(0, error)),
        };
        // Most saves write one row: that statement needs no transaction around it.
        let done = match self.txn(&mut pending).save_alone(checkpoint) {
            Some(result) => settle(result),
            None => self.in_transaction(&mut pending, |txn| settle(txn.save(checkpoint))),
        };
        self.waiting.record(started.elapsed());
        let result = match done {
            Ok(()) => {
                self.keep(&mut pending);
                saved
            }
            Err(BatchError::Op(_, error) | BatchError::Transaction(error)) => {
                pending.clear();
                Err(sqlite_error(&self.path, error))
            }
        };
        self.spare.pending = pending;
        self.checkpointer.catch_up(&self.conn);
        result
    }

    /// Run `body` in a write transaction (with the background lease renewals due), and
    /// commit; roll back if anything failed.
    fn in_transaction(
        &self,
        pending: &mut Pending,
        body: impl FnOnce(&mut Txn<'_>) -> Result<(), BatchError>,
    ) -> Result<(), BatchError> {
        let execute = |sql: &str| {
            self.conn
                .prepare_cached(sql)
                .and_then(|mut s| s.execute([]))
        };
        execute("BEGIN IMMEDIATE").map_err(BatchError::Transaction)?;
        let mut txn = self.txn(pending);
        let done = (|| {
            txn.renew_due().map_err(BatchError::Transaction)?;
            body(&mut txn)?;
            execute("COMMIT").map(drop).map_err(BatchError::Transaction)
        })();
        if done.is_err() {
            // SQLite may have rolled back already (then this fails harmlessly).
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        done
    }

    /// A transaction's view of this writer, its changes going to `pending`.
    fn txn<'a>(&'a self, pending: &'a mut Pending) -> Txn<'a> {
        Txn {
            conn: &self.conn,
            path: &self.path,
            me: &self.me,
            known: &self.known,
            apps: &self.apps,
            leases: &self.leases,
            graphs: &self.graphs,
            now_us: self.clock.now_micros(),
            pending,
        }
    }

    /// The earliest background renewal due of the leases taken or renewed since the last
    /// call.
    pub(super) fn take_new_lease_due(&mut self) -> Option<i64> {
        self.new_lease_due.take()
    }

    /// Remember what a committed transaction changed (leaving `pending` empty).
    fn keep(&mut self, pending: &mut Pending) {
        if self.apps.len() + pending.apps.len() > MAX_APP_ROWS {
            self.apps.clear();
        }
        for (key, id) in pending.apps.drain() {
            match id {
                Some(id) => self.apps.insert(key, id),
                None => self.apps.remove(&key),
            };
        }
        if !pending.graphs.is_empty() {
            let mut graphs = self.graphs.lock().unwrap_or_else(|p| p.into_inner());
            if graphs.len() + pending.graphs.len() > MAX_APP_ROWS {
                graphs.clear();
            }
            graphs.extend(pending.graphs.drain(..));
        }
        for (key, held) in pending.leases.drain() {
            match held {
                Some(held) => {
                    if held.state == LeaseState::Active {
                        let due = held.renewed_at_us + held.background_after_us();
                        self.new_lease_due = Some(self.new_lease_due.map_or(due, |d| d.min(due)));
                    }
                    self.leases.insert(key, held)
                }
                None => self.leases.remove(&key),
            };
        }
        if !pending.known.is_empty() {
            let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
            for (key, entry) in pending.known.drain() {
                match entry {
                    Some(entry) => known.insert(key, entry),
                    None => known.remove(&key),
                }
            }
        }
    }
}

/// A SQLite error that failed a whole transaction, shared by the errors of each of its
/// operations.
#[derive(Debug)]
struct SharedError(Arc<rusqlite::Error>);

impl std::fmt::Display for SharedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SharedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&*self.0)
    }
}
