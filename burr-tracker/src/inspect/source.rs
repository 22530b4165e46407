//! Where a [`Database`](super::Database) reads from: a SQLite file (its read-only
//! persister and a connection to the tracker's tables) or, with the `postgres` feature, a
//! PostgreSQL database. Each read goes to one or the other; the SQLite one calls the
//! row readers directly, as before there was a choice.

use std::path::Path;

use burr_core::persistence::{
    AppRecord, CheckpointInfo, History, LeaseStatus, LoadedCheckpoint, PersistenceError, Persister,
    SqlitePersister,
};
use futures::executor::block_on;
use rusqlite::Connection;

use crate::store::read::{self, AppRow, EventRow, InterruptedRun, SnapshotRow, StepRow};
use crate::TrackerError;

/// A database's checkpoints and tracker tables, opened for reading.
pub(crate) enum Source {
    /// A SQLite file.
    Sqlite {
        /// Its checkpoints, opened read-only.
        persister: SqlitePersister,
        /// The tracker's tables, when it has them.
        tracker: Option<Connection>,
    },
    /// A PostgreSQL database.
    #[cfg(feature = "postgres")]
    Postgres {
        /// The connections.
        source: super::PgSource,
        /// Its checkpoints, when it has them.
        persister: Option<burr_postgres::PostgresPersister>,
        /// Whether it has the tracker's tables.
        tracked: bool,
    },
}

#[cfg(feature = "postgres")]
macro_rules! on_tracker {
    ($source:expr, $row:expr, $reader:ident) => {{
        let source = $source.clone();
        let client = source.client()?;
        let row = $row.clone();
        $source.run(async move {
            crate::store::read_postgres::$reader(&client, source.target(), &row).await
        })
    }};
}

impl Source {
    /// Whether it has the tracker's tables.
    pub(crate) fn tracked(&self) -> bool {
        match self {
            Source::Sqlite { tracker, .. } => tracker.is_some(),
            #[cfg(feature = "postgres")]
            Source::Postgres { tracked, .. } => *tracked,
        }
    }

    /// The SQLite connection to the tracker's tables (none on PostgreSQL).
    pub(crate) fn sqlite_tracker(&self) -> Option<&Connection> {
        match self {
            Source::Sqlite { tracker, .. } => tracker.as_ref(),
            #[cfg(feature = "postgres")]
            Source::Postgres { .. } => None,
        }
    }

    /// Whether what it shows may miss the latest writes (a file read as immutable).
    pub(crate) fn may_be_stale(&self) -> bool {
        match self {
            Source::Sqlite { persister, .. } => persister.may_be_stale(),
            #[cfg(feature = "postgres")]
            Source::Postgres { .. } => false,
        }
    }

    /// The checkpointed applications (or only `root` and those under it).
    pub(crate) fn checkpointed_apps(
        &self,
        root: Option<&str>,
    ) -> Result<Vec<AppRecord>, PersistenceError> {
        match self {
            Source::Sqlite { persister, .. } => match root {
                Some(root) => persister.list_apps_under(root),
                None => persister.list_apps(),
            },
            #[cfg(feature = "postgres")]
            Source::Postgres {
                source, persister, ..
            } => {
                let Some(persister) = persister.clone() else {
                    return Ok(Vec::new());
                };
                let root = root.map(str::to_owned);
                source.run(async move {
                    match root {
                        Some(root) => persister.list_apps_under(&root).await,
                        None => persister.list_apps().await,
                    }
                })
            }
        }
    }

    /// The tracked applications (or only `root` and those under it); none without the
    /// tracker's tables.
    pub(crate) fn tracked_apps(
        &self,
        path: &Path,
        root: Option<&str>,
    ) -> Result<Vec<AppRow>, TrackerError> {
        match self {
            Source::Sqlite {
                tracker: Some(conn),
                ..
            } => read::apps(conn, path, root),
            Source::Sqlite { tracker: None, .. } => Ok(Vec::new()),
            #[cfg(feature = "postgres")]
            Source::Postgres {
                source, tracked, ..
            } => {
                if !*tracked {
                    return Ok(Vec::new());
                }
                let source = source.clone();
                let client = source.client()?;
                let root = root.map(str::to_owned);
                source.clone().run(async move {
                    crate::store::read_postgres::apps(&client, source.target(), root.as_deref())
                        .await
                })
            }
        }
    }

    /// A tracked application's steps.
    pub(crate) fn steps(&self, path: &Path, row: &AppRow) -> Result<Vec<StepRow>, TrackerError> {
        match self {
            Source::Sqlite {
                tracker: Some(conn),
                ..
            } => read::steps(conn, path, row),
            Source::Sqlite { tracker: None, .. } => Ok(Vec::new()),
            #[cfg(feature = "postgres")]
            Source::Postgres { source, .. } => on_tracker!(source, row, steps),
        }
    }

    /// A tracked application's interrupted runs.
    pub(crate) fn interrupted_runs(
        &self,
        path: &Path,
        row: &AppRow,
    ) -> Result<Vec<InterruptedRun>, TrackerError> {
        match self {
            Source::Sqlite {
                tracker: Some(conn),
                ..
            } => read::interrupted_runs(conn, path, row),
            Source::Sqlite { tracker: None, .. } => Ok(Vec::new()),
            #[cfg(feature = "postgres")]
            Source::Postgres { source, .. } => on_tracker!(source, row, interrupted_runs),
        }
    }

    /// A tracked application's events.
    pub(crate) fn events(&self, path: &Path, row: &AppRow) -> Result<Vec<EventRow>, TrackerError> {
        match self {
            Source::Sqlite {
                tracker: Some(conn),
                ..
            } => read::events(conn, path, row),
            Source::Sqlite { tracker: None, .. } => Ok(Vec::new()),
            #[cfg(feature = "postgres")]
            Source::Postgres { source, .. } => on_tracker!(source, row, events),
        }
    }

    /// A tracked application's state snapshots.
    pub(crate) fn snapshots(
        &self,
        path: &Path,
        row: &AppRow,
    ) -> Result<Vec<SnapshotRow>, TrackerError> {
        match self {
            Source::Sqlite {
                tracker: Some(conn),
                ..
            } => read::snapshots(conn, path, row),
            Source::Sqlite { tracker: None, .. } => Ok(Vec::new()),
            #[cfg(feature = "postgres")]
            Source::Postgres { source, .. } => on_tracker!(source, row, snapshots),
        }
    }

    /// The checkpoint of an application at `seq` (its latest when `None`).
    pub(crate) fn load(
        &self,
        partition_key: Option<&str>,
        app_id: &str,
        seq: Option<u64>,
    ) -> Result<Option<LoadedCheckpoint>, PersistenceError> {
        match self {
            Source::Sqlite { persister, .. } => {
                block_on(persister.load(partition_key, app_id, seq))
            }
            #[cfg(feature = "postgres")]
            Source::Postgres {
                source, persister, ..
            } => {
                let Some(persister) = persister.clone() else {
                    return Ok(None);
                };
                let (key, id) = (partition_key.map(str::to_owned), app_id.to_owned());
                source.run(async move { persister.load(key.as_deref(), &id, seq).await })
            }
        }
    }

    /// An application's checkpoints.
    pub(crate) fn list_checkpoints(
        &self,
        partition_key: Option<&str>,
        app_id: &str,
    ) -> Result<Vec<CheckpointInfo>, PersistenceError> {
        match self {
            Source::Sqlite { persister, .. } => {
                block_on(persister.list_checkpoints(partition_key, app_id))
            }
            #[cfg(feature = "postgres")]
            Source::Postgres {
                source, persister, ..
            } => {
                let Some(persister) = persister.clone() else {
                    return Ok(Vec::new());
                };
                let (key, id) = (partition_key.map(str::to_owned), app_id.to_owned());
                source.run(async move { persister.list_checkpoints(key.as_deref(), &id).await })
            }
        }
    }

    /// Where an application's lease stands.
    pub(crate) fn lease_status(
        &self,
        partition_key: Option<&str>,
        app_id: &str,
    ) -> Result<LeaseStatus, PersistenceError> {
        match self {
            Source::Sqlite { persister, .. } => persister.lease_status(partition_key, app_id),
            #[cfg(feature = "postgres")]
            Source::Postgres {
                source, persister, ..
            } => {
                let Some(persister) = persister.clone() else {
                    return Ok(LeaseStatus::Free);
                };
                let (key, id) = (partition_key.map(str::to_owned), app_id.to_owned());
                source.run(async move { persister.lease_status(key.as_deref(), &id).await })
            }
        }
    }
}
