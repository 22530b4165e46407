//! Group commit: saves (and application records) of concurrently running applications
//! share transactions and round trips.
//!
//! A save is queued; when fewer than [`writers`](crate::PostgresOptions::writers)
//! transactions are in flight, a committer task starts and takes everything queued as
//! one batch. A batch runs in one transaction on one pooled connection: its *fast* saves
//! (see [`FastSave`]) are sent together with `BEGIN` and `COMMIT` in one pipelined
//! round trip (a batch of one fast save is one statement in autocommit mode, atomic by
//! itself, unless its lease's renewal is due), and the rows of its fast saves without a
//! lease (a map step's children) are one statement; the other operations run one after another in the same transaction before
//! `COMMIT`. While a batch commits, new saves queue for the next. Each caller is answered
//! once its batch has committed.
//!
//! An operation the database fails (not one it refuses: a conflict, a lost lease) fails
//! the transaction: it alone is answered with the error and the others run again without
//! it. A batch whose connection is lost runs again on another connection (twice at most;
//! a save the lost commit did store is recognised and answered as saved); after that the
//! whole batch fails with the error. A checkpoint is stored whole or not at all: a save
//! that failed may or may not be stored (a load tells; saving it again gives a conflict
//! when it was).

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use burr_core::persistence::{micros, AppRecord, Checkpoint, PersistenceError};
use tokio::sync::{oneshot, Semaphore};
use tokio_postgres::error::SqlState;

use crate::layout::{app_key, AppKey, Conn, Failure};
use crate::write::{FastOutcome, FastSave, FastStatements, Pending, Shared, Txn};

/// The most operations committed in one transaction.
const MAX_BATCH: usize = 256;

/// A write operation the group commits.
pub(crate) enum Work {
    /// Save a checkpoint.
    Save(Box<Checkpoint>),
    /// Record an application.
    Register(Box<AppRecord>),
}

impl Work {
    /// What it does, as errors name it.
    fn operation(&self) -> &'static str {
        match self {
            Work::Save(_) => "save",
            Work::Register(_) => "record an application",
        }
    }

    fn key(&self) -> AppKey {
        match self {
            Work::Save(c) => app_key(c.partition_key.as_deref(), &c.app_id),
            Work::Register(r) => app_key(r.partition_key.as_deref(), &r.app_id),
        }
    }
}

/// An operation and where its result goes.
pub(crate) struct Op {
    work: Work,
    reply: oneshot::Sender<Result<(), PersistenceError>>,
    /// Run the careful way (its fast statement found the lease changed).
    careful: bool,
}

impl Op {
    fn answer(self, result: Result<(), PersistenceError>) {
        // The caller may have gone (a dropped future): nobody is left to tell.
        let _ = self.reply.send(result);
    }
}

/// The queue of operations and the committers that drain it.
pub(crate) struct Group {
    queue: Mutex<VecDeque<Op>>,
    writers: Arc<Semaphore>,
}

impl Group {
    /// A group with at most `writers` transactions in flight.
    pub(crate) fn new(writers: usize) -> Group {
        Group {
            queue: Mutex::new(VecDeque::new()),
            writers: Arc::new(Semaphore::new(writers.max(1))),
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Op>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Commit `work` with whatever else is queued, and return its result.
    pub(crate) async fn submit(
        self: &Arc<Self>,
        shared: &Arc<Shared>,
        pool: &deadpool_postgres::Pool,
        work: Work,
    ) -> Result<(), PersistenceError> {
        let (reply, answer) = oneshot::channel();
        self.queue().push_back(Op {
            work,
            reply,
            careful: false,
        });
        self.start_committer(shared, pool);
        answer.await.unwrap_or_else(|_| Err(shared.target.closed()))
    }

    /// Start a committer task if a writer is free (one that is running takes what was
    /// just queued otherwise).
    fn start_committer(self: &Arc<Self>, shared: &Arc<Shared>, pool: &deadpool_postgres::Pool) {
        let Ok(permit) = Arc::clone(&self.writers).try_acquire_owned() else {
            return;
        };
        let (group, shared, pool) = (Arc::clone(self), Arc::clone(shared), pool.clone());
        // A task of its own: a caller whose future is dropped does not stop the commit
        // of the others' saves.
        tokio::spawn(async move {
            let mut permit = permit;
            loop {
                loop {
                    let batch: Vec<Op> = {
                        let mut queue = group.queue();
                        let n = queue.len().min(MAX_BATCH);
                        queue.drain(..n).collect()
                    };
                    if batch.is_empty() {
                        break;
                    }
                    commit(&shared, &pool, batch).await;
                }
                drop(permit);
                // A save queued after the queue was found empty, while the permit was
                // still held, is taken here (or by the committer holding it now).
                if group.queue().is_empty() {
                    return;
                }
                match Arc::clone(&group.writers).try_acquire_owned() {
                    Ok(again) => permit = again,
                    Err(_) => return,
                }
            }
        });
    }
}

/// How many times a batch whose connection was lost runs again on another.
const RETRIES_AFTER_LOST_CONNECTION: u32 = 2;

/// Commit `batch` and answer each operation. A batch whose connection is lost (the
/// server ended the backend, the network dropped) runs again on another connection; a
/// save that the lost commit did store is recognised then (its row is this very
/// checkpoint) and answered as saved.
async fn commit(shared: &Shared, pool: &deadpool_postgres::Pool, mut batch: Vec<Op>) {
    let fail_all = |batch: &mut Vec<Op>, error: Arc<dyn std::error::Error + Send + Sync>| {
        for op in batch.drain(..) {
            let operation = op.work.operation();
            op.answer(Err(shared
                .target
                .error(operation, SharedError(Arc::clone(&error)))));
        }
    };
    let mut retrying = false;
    let mut single_rows = false;
    let mut retries = RETRIES_AFTER_LOST_CONNECTION;
    while !batch.is_empty() {
        let conn = match pool.get().await {
            Ok(conn) => conn,
            Err(error) => {
                fail_all(&mut batch, Arc::new(error));
                return;
            }
        };
        let mut pending = Pending::default();
        while !batch.is_empty() {
            let flushing = shared.graphs_to_flush();
            let done = transaction(
                shared,
                &conn,
                &mut batch,
                &mut pending,
                retrying,
                single_rows,
            )
            .await;
            shared.graphs_flushed(flushing, matches!(done, Ok(true)));
            if done.is_err() {
                // End the transaction if one is open (harmless when none is, or when the
                // connection is gone).
                let _ = conn.batch_execute("ROLLBACK").await;
            }
            match done {
                Ok(_) => {}
                Err(BatchError::Op(index, error)) => {
                    pending.clear();
                    let op = batch.remove(index);
                    let operation = op.work.operation();
                    op.answer(Err(shared.target.error(operation, error)));
                }
                Err(BatchError::Rows(error)) => {
                    // Which save's row the database refused is not known: each runs as a
                    // statement of its own from now on, so that it alone fails.
                    pending.clear();
                    tracing::debug!(database = %shared.target.name, %error, "a statement of several checkpoints failed: saving each alone");
                    single_rows = true;
                }
                Err(BatchError::Transaction(error)) if is_lost(&error) && retries > 0 => {
                    pending.clear();
                    tracing::debug!(database = %shared.target.name, %error, "a checkpoint transaction lost its connection: running it again");
                    retries -= 1;
                    retrying = true;
                    break;
                }
                Err(BatchError::Transaction(error)) => {
                    pending.clear();
                    tracing::warn!(database = %shared.target.name, %error, "a checkpoint transaction failed");
                    fail_all(&mut batch, Arc::new(error));
                }
            }
        }
    }
}

/// Whether the stored checkpoint at `checkpoint`'s (sequence id, attempt) is that very
/// checkpoint (same action, status, time and error): what a commit whose answer was lost
/// left.
async fn stored_is(conn: &Conn, checkpoint: &Checkpoint) -> Result<bool, tokio_postgres::Error> {
    let statement = conn
        .prepare_cached(
            "SELECT c.position, c.status, c.created_at_us, c.error \
             FROM burr_checkpoints AS c JOIN burr_apps AS a ON a.id = c.app \
             WHERE a.partition_key = $1 AND a.app_id = $2 AND c.sequence_id = $3 AND c.attempt = $4",
        )
        .await?;
    let key = app_key(checkpoint.partition_key.as_deref(), &checkpoint.app_id);
    let seq = i64::try_from(checkpoint.sequence_id).unwrap_or(i64::MAX);
    let row = conn
        .query_opt(
            &statement,
            &[&key.0, &key.1, &seq, &i64::from(checkpoint.attempt)],
        )
        .await?;
    Ok(row.is_some_and(|row| {
        row.try_get::<_, &str>(0).ok() == Some(checkpoint.position.as_str())
            && row.try_get::<_, &str>(1).ok() == Some(checkpoint.status.as_str())
            && row.try_get::<_, i64>(2).ok() == Some(micros(checkpoint.created_at))
            && row.try_get::<_, Option<&str>>(3).ok() == Some(checkpoint.error.as_deref())
    }))
}

/// Why a transaction failed.
enum BatchError {
    /// Operation `index` failed: it alone is answered with the error, the others retried.
    Op(usize, tokio_postgres::Error),
    /// The transaction itself (begin, commit, the connection) failed.
    Transaction(tokio_postgres::Error),
    /// The statement of several fast saves' rows failed: the batch runs again with a
    /// statement for each, to find which.
    Rows(tokio_postgres::Error),
}

/// Run the operations of `batch` in one transaction. On success, the operations answered
/// are removed from `batch`; those left (fast saves that found their lease changed) run
/// again, the careful way. The fast saves without a lease share one statement unless
/// `single_rows`. Returns whether a checkpoint's row was written (so the commit, durable,
/// flushed the log).
async fn transaction(
    shared: &Shared,
    conn: &Conn,
    batch: &mut Vec<Op>,
    pending: &mut Pending,
    retrying: bool,
    single_rows: bool,
) -> Result<bool, BatchError> {
    let now_us = shared.clock.now_micros();
    // Plan: a save is fast when it needs no read and no earlier operation of the batch is
    // about the same application (so that the operations of one application keep their
    // order).
    let mut seen: HashSet<AppKey> = HashSet::new();
    let mut fast: Vec<(usize, FastSave)> = Vec::new();
    let mut careful: Vec<usize> = Vec::new();
    for (index, op) in batch.iter().enumerate() {
        let first = seen.insert(op.work.key());
        let plan = match &op.work {
            Work::Save(checkpoint) if first && !op.careful => {
                FastSave::plan(shared, checkpoint, now_us)
            }
            _ => None,
        };
        match plan {
            Some(plan) => fast.push((index, plan)),
            None => careful.push(index),
        }
    }
    let transaction_error = |e| BatchError::Transaction(e);
    let statements = if fast.is_empty() {
        None
    } else {
        Some(
            FastStatements::prepare(conn)
                .await
                .map_err(transaction_error)?,
        )
    };
    let begin = conn
        .prepare_cached("BEGIN")
        .await
        .map_err(transaction_error)?;
    let commit = conn
        .prepare_cached("COMMIT")
        .await
        .map_err(transaction_error)?;
    // A lone fast save is sent alone, in autocommit mode (atomic by itself), unless it
    // renews its lease too.
    let alone = careful.is_empty() && fast.len() == 1 && !fast[0].1.renews();
    let pipelined_commit = careful.is_empty();
    // COMMIT, sent with the fast saves when nothing else is to run after them.
    let send_commit = || async {
        if pipelined_commit {
            Some(conn.execute(&commit, &[]).await)
        } else {
            None
        }
    };

    // The fast saves, with BEGIN (and COMMIT when nothing else is to run), in one round
    // trip: each request is sent when its future is first polled, in this order.
    let checkpoint_of = |index: usize| match &batch[index].work {
        Work::Save(checkpoint) => checkpoint.as_ref(),
        Work::Register(_) => unreachable!("only saves are planned fast"),
    };
    let mut outcomes: Vec<bool> = Vec::new();
    let mut began = false;
    // The fast saves without a lease (a map step's children) are one statement.
    let shared_rows =
        !alone && !single_rows && fast.iter().filter(|(_, p)| !p.fenced()).count() >= 2;
    if let (Some(statements), true) = (&statements, shared_rows) {
        let rows: Vec<(&FastSave, &Checkpoint)> = fast
            .iter()
            .filter(|(_, plan)| !plan.fenced())
            .map(|(index, plan)| (plan, checkpoint_of(*index)))
            .collect();
        let rows_request = FastSave::run_rows(conn, statements, &rows);
        let fenced_requests = futures::future::join_all(
            fast.iter()
                .filter(|(_, plan)| plan.fenced())
                .map(|(index, plan)| plan.run(conn, statements, checkpoint_of(*index))),
        );
        let begin_request = conn.execute(&begin, &[]);
        let commit_request = send_commit();
        let (begun, (inserted, fenced), committed) = futures::future::join3(
            begin_request,
            futures::future::join(rows_request, fenced_requests),
            commit_request,
        )
        .await;
        began = true;
        begun.map_err(transaction_error)?;
        let mut inserted = match inserted {
            Ok(inserted) => inserted.into_iter(),
            Err(error)
                if is_lost(&error)
                    || error.code() == Some(&SqlState::IN_FAILED_SQL_TRANSACTION) =>
            {
                return Err(BatchError::Transaction(error))
            }
            Err(error) => return Err(BatchError::Rows(error)),
        };
        let mut fenced = fenced.into_iter();
        let saved: Vec<Result<bool, tokio_postgres::Error>> = fast
            .iter()
            .map(|(_, plan)| {
                let next = if plan.fenced() {
                    fenced.next()
                } else {
                    inserted.next().map(Ok)
                };
                // As many outcomes as saves of each kind.
                next.unwrap_or(Ok(false))
            })
            .collect();
        outcomes = check_fast(&fast, saved)?;
        if let Some(committed) = committed {
            committed.map_err(transaction_error)?;
        }
    } else if let Some(statements) = &statements {
        let saves = futures::future::join_all(
            fast.iter()
                .map(|(index, plan)| plan.run(conn, statements, checkpoint_of(*index))),
        );
        if alone {
            outcomes = check_fast(&fast, saves.await)?;
        } else {
            let begin_request = conn.execute(&begin, &[]);
            let commit_request = send_commit();
            let (begun, saved, committed) =
                futures::future::join3(begin_request, saves, commit_request).await;
            began = true;
            begun.map_err(transaction_error)?;
            // A statement that failed aborted the transaction: find the culprit first.
            outcomes = check_fast(&fast, saved)?;
            if let Some(committed) = committed {
                committed.map_err(transaction_error)?;
            }
        }
    }

    // The other operations, one after another in the same transaction.
    let mut careful_results: Vec<(usize, Result<(), PersistenceError>)> = Vec::new();
    if !careful.is_empty() {
        if !began {
            conn.execute(&begin, &[]).await.map_err(transaction_error)?;
        }
        let done = async {
            let mut txn = Txn {
                conn,
                shared,
                now_us,
                pending: &mut *pending,
            };
            for &index in &careful {
                let result = match &batch[index].work {
                    Work::Save(checkpoint) => txn.save(checkpoint).await,
                    Work::Register(record) => txn.register(record).await,
                };
                match result {
                    Ok(()) => careful_results.push((index, Ok(()))),
                    Err(Failure::Refused(error)) => careful_results.push((index, Err(error))),
                    Err(Failure::Db(error)) => {
                        return Err(if is_lost(&error) {
                            BatchError::Transaction(error)
                        } else {
                            BatchError::Op(index, error)
                        })
                    }
                }
            }
            conn.execute(&commit, &[])
                .await
                .map(drop)
                .map_err(transaction_error)
        }
        .await;
        done?;
    }

    // Committed: remember, then answer.
    let mut answers: Vec<(usize, Result<(), PersistenceError>)> = careful_results;
    let mut again: Vec<usize> = Vec::new();
    let mut wrote = false;
    for ((index, plan), inserted) in fast.into_iter().zip(outcomes) {
        let checkpoint = checkpoint_of(index);
        let outcome = if inserted {
            FastOutcome::Saved
        } else {
            // Rare: read why (after the commit, which it does not change).
            match plan.refused(conn).await {
                Ok(outcome) => outcome,
                Err(error) => {
                    answers.push((index, Err(shared.target.error("save", error))));
                    continue;
                }
            }
        };
        match outcome {
            FastOutcome::Saved => {
                wrote = true;
                let renewed = plan.renews();
                plan.saved(renewed, now_us, shared, pending);
                answers.push((index, Ok(())));
            }
            FastOutcome::Conflict => answers.push((
                index,
                Err(PersistenceError::Conflict {
                    app_id: checkpoint.app_id.clone(),
                    sequence_id: checkpoint.sequence_id,
                    attempt: checkpoint.attempt,
                }),
            )),
            FastOutcome::LeaseChanged => again.push(index),
        }
    }
    if retrying {
        // A conflict may be this very checkpoint, stored by the commit whose answer the
        // lost connection took: then it is saved (and its state read back by the next
        // save, which is not known to follow it).
        for (index, result) in &mut answers {
            let (Err(PersistenceError::Conflict { .. }), Work::Save(checkpoint)) =
                (&*result, &batch[*index].work)
            else {
                continue;
            };
            if stored_is(conn, checkpoint).await.unwrap_or(false) {
                let key = app_key(checkpoint.partition_key.as_deref(), &checkpoint.app_id);
                pending.known.insert(key, None);
                *result = Ok(());
            }
        }
    }
    shared.keep(pending);
    let mut slots: Vec<Option<Op>> = batch.drain(..).map(Some).collect();
    for (index, result) in answers {
        if let Some(op) = slots[index].take() {
            op.answer(result);
        }
    }
    for index in again {
        if let Some(mut op) = slots[index].take() {
            op.careful = true;
            batch.push(op);
        }
    }
    Ok(wrote)
}

/// Whether each fast save inserted its row, or the batch's error: the first fast save that
/// failed (the others failed because it aborted the transaction), or the connection.
fn check_fast(
    fast: &[(usize, FastSave)],
    outcomes: Vec<Result<bool, tokio_postgres::Error>>,
) -> Result<Vec<bool>, BatchError> {
    let mut aborted = None;
    let mut culprit = None;
    let mut ok = Vec::with_capacity(outcomes.len());
    for ((index, _), outcome) in fast.iter().zip(outcomes) {
        match outcome {
            Ok(outcome) => ok.push(outcome),
            Err(error) if is_lost(&error) => return Err(BatchError::Transaction(error)),
            Err(error) if error.code() == Some(&SqlState::IN_FAILED_SQL_TRANSACTION) => {
                aborted.get_or_insert(error);
            }
            Err(error) => {
                culprit.get_or_insert((*index, error));
            }
        }
    }
    match (culprit, aborted) {
        (Some((index, error)), _) => Err(BatchError::Op(index, error)),
        (None, Some(error)) => Err(BatchError::Transaction(error)),
        (None, None) => Ok(ok),
    }
}

/// Whether `error` lost the connection (or the server ended the session), so that
/// nothing more can run on it.
pub(crate) fn is_lost(error: &tokio_postgres::Error) -> bool {
    error.is_closed()
        || matches!(
            error.code(),
            Some(c) if *c == SqlState::ADMIN_SHUTDOWN
                || *c == SqlState::CRASH_SHUTDOWN
                || *c == SqlState::CANNOT_CONNECT_NOW
        )
}

/// An error that failed a whole batch, shared by the errors of each of its operations.
#[derive(Debug)]
pub(crate) struct SharedError<E: ?Sized>(pub(crate) Arc<E>);

impl<E: std::fmt::Display + ?Sized> std::fmt::Display for SharedError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<E: std::error::Error + ?Sized> std::error::Error for SharedError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}
