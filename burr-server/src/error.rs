//! What can go wrong with runs: one typed error, naming the run, kind, field or file.

use std::path::PathBuf;

use crate::run::RunStatus;

/// An error of the run queue, a worker or a submission.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// No run has this id.
    #[error("unknown run `{run_id}`")]
    UnknownRun {
        /// The id asked for.
        run_id: String,
    },
    /// A run id that is already taken (by a run of another idempotency key).
    #[error("run `{run_id}` already exists")]
    RunExists {
        /// The id.
        run_id: String,
    },
    /// A run id naming an application that already has checkpoints (run by hand, or by
    /// another tool): a run starts its application afresh and resumes only its own.
    #[error("run id `{run_id}` names an application that already has checkpoints; choose another id (or rerun a run from one of its steps)")]
    AppExists {
        /// The id.
        run_id: String,
    },
    /// No kind has this name in the registry.
    #[error("unknown kind `{kind}` (known kinds: {})", known.join(", "))]
    UnknownKind {
        /// The name given.
        kind: String,
        /// The kinds the registry has.
        known: Vec<String>,
    },
    /// The inputs do not match the kind's input type.
    #[error("inputs of kind `{kind}`: `{field}`: {message}")]
    BadInputs {
        /// The kind.
        kind: String,
        /// Where in the inputs (`.` for the whole object, `meeting.id`, `items[3]`).
        field: String,
        /// What is wrong there.
        message: String,
    },
    /// A value given to the queue that makes no sense.
    #[error("invalid {what} `{value}`: {problem}")]
    Invalid {
        /// What it is (`run id`, `priority`, `concurrency limit`...).
        what: &'static str,
        /// The value.
        value: String,
        /// Why it is refused.
        problem: String,
    },
    /// Cancel (or another change) of a run that is over.
    #[error("run `{run_id}` is already {status}")]
    AlreadyFinished {
        /// The run.
        run_id: String,
        /// How it ended.
        status: RunStatus,
    },
    /// A worker whose lease was taken over tried to write: its attempt is stale.
    #[error("run `{run_id}`: attempt {attempt} is fenced out (the run is at attempt {current}, {})", holder.as_deref().map_or("held by no worker".to_owned(), |h| format!("held by `{h}`")))]
    Fenced {
        /// The run.
        run_id: String,
        /// The stale attempt.
        attempt: u32,
        /// The run's attempt now.
        current: u32,
        /// Who holds it now.
        holder: Option<String>,
    },
    /// A stored run row that cannot be read; the row is left as it is.
    #[error("run `{run_id}`: corrupt row: {problem}")]
    CorruptRun {
        /// The run.
        run_id: String,
        /// What is wrong with it.
        problem: String,
    },
    /// No schedule has this name.
    #[error("unknown schedule `{name}`")]
    UnknownSchedule {
        /// The name given.
        name: String,
    },
    /// A schedule's interval or cron expression that cannot be used.
    #[error("schedule `{name}`: {problem}")]
    BadSchedule {
        /// The schedule.
        name: String,
        /// What is wrong.
        problem: String,
    },
    /// The database failed.
    #[error("run queue database `{}`", path.display())]
    Database {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The database was written by a newer burr-server.
    #[error("run queue database `{}` has run-queue schema version {found}; this build knows versions up to {known}: upgrade burr-server", path.display())]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// The version found.
        found: i64,
        /// The newest version this build knows.
        known: i64,
    },
    /// A reader that never writes (a read-only server, `burr ui`) found tables older
    /// than this build's: it does not migrate them, and reads nothing through them.
    #[error("database `{}` has {tables} schema version {found}, older than this build's {known}; a read-only reader does not migrate it: run `migrate` (or start a worker) with this build first", path.display())]
    SchemaOutdated {
        /// The database (a URL without its password).
        path: PathBuf,
        /// Whose tables: `run-queue` or `checkpoint`.
        tables: &'static str,
        /// The version found (0: none recorded; -1: not a number).
        found: i64,
        /// The version this build reads and writes.
        known: i64,
    },
    /// Checkpoints or the application failed outside a run (opening the persister).
    #[error(transparent)]
    Persistence(#[from] burr_core::persistence::PersistenceError),
    /// The tracker could not be opened.
    #[error(transparent)]
    Tracker(#[from] burr_tracker::TrackerError),
    /// A blocking database task was lost (the runtime is shutting down).
    #[error("the run queue's database task stopped: {0}")]
    TaskStopped(String),
}
