//! Group commit in the callers' threads: a queue of operations and a leader.
//!
//! A caller puts its [`Op`] on the queue, lets the other tasks of its thread run (so that
//! futures polled together, such as the children of a map step, queue their operations
//! too; again while they keep queueing, at most [`MAX_YIELDS`] times, as a combinator
//! such as `FuturesUnordered` hands control back after polling a few; while callers come
//! alone, only one in [`PROBE_EVERY`] does), then tries to take the write connection. If
//! it gets it, it is the leader: it takes everything queued (its own operation included),
//! runs it in one transaction, commits in its own thread, answers every operation, and
//! goes on while operations are queued. If another caller holds the connection, that
//! one is the leader and answers this operation in its next transaction: the caller
//! waits for the answer ([`Waiting`]). So an application that checkpoints alone commits
//! in its own thread, without handing its checkpoint to another thread, and the saves of
//! applications running concurrently share a commit (one `fsync` with
//! [`Durability::Full`](super::Durability::Full)) per round, not one each.
//!
//! A save whose caller has been coming alone (no company in the latest transaction, not
//! a probing turn) and that finds the connection free and nothing queued skips the
//! queue: it commits at once in a transaction of its own, from the borrowed checkpoint,
//! and then leads whatever was queued meanwhile.
//!
//! No operation is left queued without a leader: a leader takes the queue once more
//! after it lets the connection go if something was queued meanwhile (the callers that
//! queued it found the connection taken).
//!
//! A thread renews the leases this persister holds in the background (every third of
//! their time to live) when no save renewed them; it takes the connection like a caller.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, TryLockError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::oneshot::{self, error::TryRecvError};

use super::wait::Waiting;
use super::writer::{Op, Reply, Writer};
use crate::persistence::Checkpoint;
use crate::persistence::PersistenceError;

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
        loop {
            // While the next renewal is computed, any lease taken is news.
            self.timer
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .until_us = None;
            let (wait, next_us) = {
                let mut writer = self.lock_writer();
                // An empty transaction renews what is due (and does nothing otherwise).
                writer.commit(&mut Vec::new());
                let wait = writer.next_renewal_in();
                self.lead(writer);
                let now = super::codec::now_micros();
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
