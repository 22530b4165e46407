//! [`TrackerError`]: what can go wrong recording, reading or exporting tracking data.

use std::path::PathBuf;

use burr_core::persistence::PersistenceError;

/// An error of the tracker, the inspection API or the export. Each names the file, the
/// application or the sequence id involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrackerError {
    /// The database file does not exist.
    #[error("no database at `{path}`")]
    MissingDatabase {
        /// The file.
        path: PathBuf,
    },
    /// Opening or reading the checkpoints (through burr-core's persister) failed: the file
    /// is not a burr database, a newer burr-rs wrote it, a row is corrupt...
    #[error(transparent)]
    Persistence(#[from] PersistenceError),
    /// A SQLite error on the tracker's tables.
    #[error("SQLite error on `{path}`: {source}")]
    Sqlite {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: rusqlite::Error,
    },
    /// A PostgreSQL error on the tracker's tables (feature `postgres`).
    #[cfg(feature = "postgres")]
    #[error("PostgreSQL error on {database} ({operation}): {source}", database = database.display())]
    Postgres {
        /// The database (its URL without the password).
        database: PathBuf,
        /// What was being done.
        operation: &'static str,
        /// The error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A `postgres://` URL given to a burr-tracker built without its `postgres` feature.
    #[error("`{url}` is a PostgreSQL database: this build of burr-tracker has no PostgreSQL support (feature `postgres`)")]
    NoPostgresSupport {
        /// The URL, without its password.
        url: String,
    },
    /// The tracker's tables were written by a newer burr-tracker.
    #[error("`{path}` has tracker schema version {found}, newer than this burr-tracker supports ({supported}): upgrade burr-tracker")]
    SchemaTooNew {
        /// The file.
        path: PathBuf,
        /// The version found.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// A stored tracking row could not be read back.
    #[error("corrupt tracking data for app `{app_id}` in `{path}`: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The application.
        app_id: String,
        /// What was wrong.
        reason: String,
    },
    /// The tracker's background writer could not write some events.
    #[error("the tracker could not write to `{path}`: {message}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The first failure since the last flush.
        message: String,
    },
    /// The tracker's background writer has stopped.
    #[error("the tracker for `{path}` has shut down")]
    Closed {
        /// The file.
        path: PathBuf,
    },
    /// No application with this id is stored.
    #[error(
        "no application `{app_id}`{} in `{path}`",
        partition_note(partition_key)
    )]
    UnknownApp {
        /// The file.
        path: PathBuf,
        /// The application.
        app_id: String,
        /// The partition key asked for, if one was.
        partition_key: Option<String>,
    },
    /// The app id is stored under several partition keys.
    #[error("application `{app_id}` exists under several partition keys ({}): pick one with --partition-key", keys.join(", "))]
    AmbiguousApp {
        /// The application.
        app_id: String,
        /// The partition keys (`(none)` for none).
        keys: Vec<String>,
    },
    /// The application took no step with this sequence id.
    #[error(
        "application `{app_id}` has no step with sequence id {sequence_id} (its steps: {known})"
    )]
    UnknownSequenceId {
        /// The application.
        app_id: String,
        /// The sequence id asked for.
        sequence_id: u64,
        /// The sequence ids it has, summarised.
        known: String,
    },
    /// The application has taken no step yet.
    #[error("application `{app_id}` has taken no step yet")]
    NoSteps {
        /// The application.
        app_id: String,
    },
    /// A state key asked for is not in the state.
    #[error("application `{app_id}` has no state key `{key}` at sequence id {sequence_id}")]
    UnknownKey {
        /// The application.
        app_id: String,
        /// The key.
        key: String,
        /// The sequence id.
        sequence_id: u64,
    },
    /// The application was not recorded by a tracker, so its graph is unknown.
    #[error("application `{app_id}` was not run with a tracker: its graph is not recorded")]
    NotTracked {
        /// The application.
        app_id: String,
    },
    /// `delete` refused: a live runner runs the application (or the root it runs
    /// under). Nothing was deleted.
    #[error(
        "cannot delete application `{app_id}`: {}; nothing was deleted",
        running_note(app_id, running, holder)
    )]
    Running {
        /// The application asked for.
        app_id: String,
        /// The application whose lease is held: `app_id` itself, or the root of its
        /// spawning parents, whose lease it runs under.
        running: String,
        /// Who holds the lease.
        holder: String,
    },
    /// `prune` refused: a live runner runs the application (or the root it runs under).
    /// Nothing was pruned.
    #[error(
        "cannot prune application `{app_id}`: {}; nothing was pruned",
        running_note(app_id, running, holder)
    )]
    PruneRunning {
        /// The application asked for.
        app_id: String,
        /// The application whose lease is held.
        running: String,
        /// Who holds the lease.
        holder: String,
    },
    /// `prune --keep-last 0` without `--all`: it would remove every checkpoint, and the
    /// application's next run would start over.
    #[error("pruning every checkpoint of application `{app_id}` makes its next run start over from the beginning: give --all to do that; nothing was pruned")]
    PruneEverything {
        /// The application.
        app_id: String,
    },
    /// `delete` stopped part-way: the database failed after some applications were
    /// deleted. What remains is still a tree under the application (none is left
    /// without its spawning parent): running the command again finishes it.
    #[error("deleting application `{app_id}` stopped part-way ({deleted} of {total} applications deleted), run it again to finish: {source}")]
    DeleteIncomplete {
        /// The application asked for.
        app_id: String,
        /// The applications (it and its descendants) fully deleted.
        deleted: usize,
        /// The applications to delete.
        total: usize,
        /// What failed.
        #[source]
        source: Box<TrackerError>,
    },
    /// A Burr UI project name Burr would refuse.
    #[error("invalid project name `{project}`: use letters, digits, `_`, `-` and `:`")]
    InvalidProject {
        /// The name.
        project: String,
    },
    /// Writing the export failed.
    #[error("cannot write `{path}`: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

fn partition_note(partition_key: &Option<String>) -> String {
    match partition_key {
        Some(key) => format!(" (partition key `{key}`)"),
        None => String::new(),
    }
}

fn running_note(app_id: &str, running: &str, holder: &str) -> String {
    if app_id == running {
        format!("it is running (lease held by {holder})")
    } else {
        format!("its root application `{running}` is running (lease held by {holder})")
    }
}

impl TrackerError {
    /// [`TrackerError::NoPostgresSupport`] for `url`, whose credentials are left out.
    #[cfg_attr(feature = "postgres", allow(dead_code))]
    pub(crate) fn no_postgres(url: &str) -> Self {
        let url = match url.split_once('@') {
            Some((_, host)) => format!("postgres://…@{host}"),
            None => url.to_owned(),
        };
        TrackerError::NoPostgresSupport { url }
    }

    pub(crate) fn sqlite(path: &std::path::Path, source: rusqlite::Error) -> Self {
        TrackerError::Sqlite {
            path: path.to_owned(),
            source,
        }
    }
}
