//! The writer: the write connection and what this persister remembers of what it
//! wrote, and how it commits a batch of operations in one transaction. The callers take
//! turns running it ([`group`](super::group)).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::codec::{now_micros, sqlite_error, AppKey, Failure};
use super::known::KnownStates;
use super::lease::{HeldLease, LeaseState, ProcessIdentity};
use super::store::{Pending, Txn};
use super::wait::Waiting;
use crate::persistence::{AppRecord, Checkpoint, Lease, PersistenceError};

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
    /// Take a lease for a holder, with a time to live in microseconds.
    Acquire {
        key: AppKey,
        holder: String,
        ttl_us: i64,
        reply: Reply<()>,
    },
    /// Give a lease back.
    Release(Lease, Reply<()>),
    /// Delete an application.
    Delete(AppKey, Reply<bool>),
    /// Prune an application's checkpoints, keeping the last N.
    Prune(AppKey, usize, Reply<usize>),
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
                | Op::Release(_, reply),
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
            | Op::Release(_, reply) => reply.send(Err(error)),
            Op::Delete(_, reply) => reply.send(Err(error)),
            Op::Prune(_, _, reply) => reply.send(Err(error)),
        }
    }

    /// Run the operation in `txn`. `Err` is a SQLite failure that aborts the transaction;
    /// a refused operation is an `Ok` outcome holding its error.
    fn run(&self, txn: &mut Txn<'_>) -> rusqlite::Result<Outcome> {
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
                ..
            } => Outcome::Unit(split(txn.acquire(key, holder, *ttl_us))?),
            Op::Release(lease, _) => Outcome::Unit(split(txn.release(lease))?),
            Op::Delete(key, _) => Outcome::Bool(split(txn.delete(key))?),
            Op::Prune(key, keep_last, _) => Outcome::Count(split(txn.prune(key, *keep_last))?),
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
    pub(super) apps: HashMap<AppKey, i64>,
    pub(super) leases: HashMap<AppKey, HeldLease>,
    /// The earliest background renewal due of the leases taken or renewed since
    /// [`take_new_lease_due`](Self::take_new_lease_due), in microseconds since the Unix
    /// epoch.
    pub(super) new_lease_due: Option<i64>,
    /// Buffers kept from one transaction to the next.
    pub(super) spare: Spare,
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
        let now = now_micros();
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
    }

    /// Run `ops` in one transaction: their outcomes go to `outcomes`, what the
    /// transaction changed in this persister's memory to `pending` (both empty before).
    fn transaction(
        &self,
        ops: &[Op],
        pending: &mut Pending,
        outcomes: &mut Vec<Outcome>,
    ) -> Result<(), BatchError> {
        self.in_transaction(pending, |txn| {
            for (index, op) in ops.iter().enumerate() {
                outcomes.push(op.run(txn).map_err(|e| BatchError::Op(index, e))?);
            }
            Ok(())
        })
    }

    /// Save one checkpoint in a transaction of its own, without queueing it (see
    /// [`Group::save`](super::group::Group::save)).
    pub(super) fn commit_save(&mut self, checkpoint: &Checkpoint) -> Result<(), PersistenceError> {
        let mut pending = std::mem::take(&mut self.spare.pending);
        let started = Instant::now();
        let mut saved = Ok(());
        let done = self.in_transaction(&mut pending, |txn| {
            match txn.save(checkpoint) {
                Ok(()) => {}
                Err(Failure::Refused(error)) => saved = Err(error),
                Err(Failure::Sqlite(error)) => return Err(BatchError::Op(0, error)),
            }
            Ok(())
        });
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
        let mut txn = Txn {
            conn: &self.conn,
            path: &self.path,
            me: &self.me,
            known: &self.known,
            apps: &self.apps,
            leases: &self.leases,
            now_us: now_micros(),
            pending,
        };
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
