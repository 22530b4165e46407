//! The checkpoints `prune` and `delete` change: a SQLite file's persister (opened for
//! writing), or a PostgreSQL database's (the one its reader connected), behind the few
//! calls they make.

use std::path::Path;
use std::time::Duration;

use burr_core::persistence::{
    CheckpointInfo, Delete, History, Lease, Leases, PersistenceError, Prune, SqlitePersister,
};
use futures::executor::block_on;

use super::super::source::Source;
use super::super::Database;
use crate::TrackerError;

/// A persister that writes.
pub(super) enum Checkpoints {
    /// A file's.
    Sqlite(SqlitePersister),
    /// A PostgreSQL database's, with the source whose runtime drives it.
    #[cfg(feature = "postgres")]
    Postgres(super::super::PgSource, burr_postgres::PostgresPersister),
}

impl Checkpoints {
    /// The persister of `db` (at `path`), opened for writing; `None` when it has no
    /// checkpoints.
    pub(super) fn open(path: &Path, db: &Database) -> Result<Option<Checkpoints>, TrackerError> {
        match &db.source {
            Source::Sqlite { .. } => Ok(Some(Checkpoints::Sqlite(SqlitePersister::open(path)?))),
            #[cfg(feature = "postgres")]
            Source::Postgres {
                source, persister, ..
            } => Ok(persister
                .clone()
                .map(|persister| Checkpoints::Postgres(source.clone(), persister))),
        }
    }

    pub(super) fn acquire_lease(
        &self,
        partition_key: Option<&str>,
        app_id: &str,
        ttl: Duration,
    ) -> Result<Lease, PersistenceError> {
        match self {
            Checkpoints::Sqlite(persister) => {
                block_on(persister.acquire_lease(partition_key, app_id, ttl))
            }
            #[cfg(feature = "postgres")]
            Checkpoints::Postgres(source, persister) => {
                let persister = persister.clone();
                let (key, id) = (partition_key.map(str::to_owned), app_id.to_owned());
                source.run(async move { persister.acquire_lease(key.as_deref(), &id, ttl).await })
            }
        }
    }

    pub(super) fn release_lease(&self, lease: &Lease) -> Result<(), PersistenceError> {
        match self {
            Checkpoints::Sqlite(persister) => persister.release_lease(lease),
            #[cfg(feature = "postgres")]
            Checkpoints::Postgres(source, persister) => {
                let (persister, lease) = (persister.clone(), lease.clone());
                source.run(async move { persister.release_lease_async(&lease).await })
            }
        }
    }

    pub(super) fn list_checkpoints(
        &self,
        partition_key: Option<&str>,
        app_id: &str,
    ) -> Result<Vec<CheckpointInfo>, PersistenceError> {
        match self {
            Checkpoints::Sqlite(persister) => {
                block_on(persister.list_checkpoints(partition_key, app_id))
            }
            #[cfg(feature = "postgres")]
            Checkpoints::Postgres(source, persister) => {
                let persister = persister.clone();
                let (key, id) = (partition_key.map(str::to_owned), app_id.to_owned());
                source.run(async move { persister.list_checkpoints(key.as_deref(), &id).await })
            }
        }
    }

    pub(super) fn prune(
        &self,
        partition_key: Option<&str>,
        app_id: &str,
        keep_last: usize,
    ) -> Result<usize, PersistenceError> {
        match self {
            Checkpoints::Sqlite(persister) => {
                block_on(persister.prune(partition_key, app_id, keep_last))
            }
            #[cfg(feature = "postgres")]
            Checkpoints::Postgres(source, persister) => {
                let persister = persister.clone();
                let (key, id) = (partition_key.map(str::to_owned), app_id.to_owned());
                source.run(async move { persister.prune(key.as_deref(), &id, keep_last).await })
            }
        }
    }

    pub(super) fn delete_app(
        &self,
        partition_key: Option<&str>,
        app_id: &str,
    ) -> Result<bool, PersistenceError> {
        match self {
            Checkpoints::Sqlite(persister) => block_on(persister.delete_app(partition_key, app_id)),
            #[cfg(feature = "postgres")]
            Checkpoints::Postgres(source, persister) => {
                let persister = persister.clone();
                let (key, id) = (partition_key.map(str::to_owned), app_id.to_owned());
                source.run(async move { persister.delete_app(key.as_deref(), &id).await })
            }
        }
    }
}
