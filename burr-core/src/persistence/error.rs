//! [`PersistenceError`]: what can go wrong saving or loading checkpoints.

use std::path::PathBuf;

/// An error from a persister. Each names the file, app id or sequence id involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PersistenceError {
    /// The database could not be opened or created.
    #[error("cannot open burr database `{path}`")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The file is not a burr database (or is corrupt).
    #[error("`{path}` is not a burr database: {reason}")]
    NotABurrDatabase {
        /// The file.
        path: PathBuf,
        /// What was found.
        reason: String,
    },
    /// The database was written by a newer burr-rs.
    #[error("`{path}` has schema version {found}, newer than this burr-rs supports ({supported}): upgrade burr-rs")]
    SchemaTooNew {
        /// The file.
        path: PathBuf,
        /// The version found.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// A stored row could not be read back.
    #[error(
        "corrupt checkpoint for app `{app_id}` at sequence id {sequence_id} in `{path}`: {reason}"
    )]
    Corrupt {
        /// The file (empty for in-memory persisters).
        path: PathBuf,
        /// The application.
        app_id: String,
        /// The sequence id.
        sequence_id: u64,
        /// What was wrong.
        reason: String,
    },
    /// No application with this id is stored.
    #[error("no application `{app_id}` (partition key {partition_key:?}) is stored")]
    UnknownApp {
        /// The partition key.
        partition_key: Option<String>,
        /// The application.
        app_id: String,
    },
    /// The application has no checkpoint at this sequence id.
    #[error("application `{app_id}` has no checkpoint at sequence id {sequence_id}")]
    UnknownSequenceId {
        /// The application.
        app_id: String,
        /// The sequence id asked for.
        sequence_id: u64,
    },
    /// A checkpoint with the same (partition key, app id, sequence id, attempt) exists.
    #[error("a checkpoint of app `{app_id}` at sequence id {sequence_id} (attempt {attempt}) is already stored")]
    Conflict {
        /// The application.
        app_id: String,
        /// The sequence id.
        sequence_id: u64,
        /// The attempt.
        attempt: u32,
    },
    /// Another runner holds the application's lease.
    #[error("application `{app_id}` is already running (lease held by {holder}); wait for it to finish or stop it")]
    AppLocked {
        /// The application.
        app_id: String,
        /// Who holds the lease.
        holder: String,
    },
    /// This runner's lease was taken over (it expired while the runner was idle).
    #[error("the lease on application `{app_id}` was lost to {holder}: another runner took over")]
    LeaseLost {
        /// The application.
        app_id: String,
        /// The new holder.
        holder: String,
    },
    /// A SQLite error.
    #[error("SQLite error on `{path}`")]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A checkpoint would go before the latest stored one: an application cannot be
    /// rewound in place (fork it into a new app id instead).
    #[error("cannot save app `{app_id}` at sequence id {sequence_id} in `{path}`: sequence id {latest} is already stored (rewinding an application in place is not supported: fork it into a new app id)")]
    OutOfOrder {
        /// The file.
        path: PathBuf,
        /// The application.
        app_id: String,
        /// The sequence id of the checkpoint refused.
        sequence_id: u64,
        /// The latest sequence id stored.
        latest: u64,
    },
    /// A sequence id too large to store (SQLite integers are signed 64-bit).
    #[error("sequence id {sequence_id} of app `{app_id}` is too large to store (the largest is 2^63 - 1)")]
    SequenceIdTooLarge {
        /// The application.
        app_id: String,
        /// The sequence id.
        sequence_id: u64,
    },
    /// The persister does not have a capability a caller needs (see
    /// [`Persister`](super::Persister)'s `as_*` methods).
    #[error("this persister does not support {capability}")]
    Unsupported {
        /// The optional trait it lacks: `Leases`, `Prune`, `Delete`...
        capability: &'static str,
    },
    /// A database server (PostgreSQL) failed an operation, or the connection to it did:
    /// names the database and what was being done. Whether a failed write was applied is
    /// told by the store's documentation (a PostgreSQL checkpoint is stored whole or not
    /// at all).
    #[error("{operation} failed on database `{database}`")]
    Database {
        /// The database, as its URL without the password.
        database: String,
        /// What was being done: `save`, `load`, `migrate`...
        operation: &'static str,
        /// The server's or the connection's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The persister's writer has stopped (the process is shutting down).
    #[error("the persister for `{path}` has shut down")]
    Closed {
        /// The file.
        path: PathBuf,
    },
}
