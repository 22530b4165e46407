//! [`open`]: a burr database by its name, a SQLite file or a PostgreSQL URL, as every
//! `--db` takes it.

use std::path::Path;
use std::sync::Arc;

use burr_core::persistence::Persister;

use super::{RunQueue, SqliteRunQueue};
use crate::error::QueueError;

/// A burr database opened by [`open`]: its run queue and its checkpoints.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Backend {
    /// A SQLite file (checkpoints, run queue and tracker in one file).
    Sqlite(SqliteRunQueue),
    /// A PostgreSQL database (feature `postgres`).
    #[cfg(feature = "postgres")]
    Postgres(super::PgRunQueue),
}

impl Backend {
    /// The run queue.
    pub fn queue(&self) -> Arc<dyn RunQueue> {
        match self {
            Backend::Sqlite(q) => Arc::new(q.clone()),
            #[cfg(feature = "postgres")]
            Backend::Postgres(q) => Arc::new(q.clone()),
        }
    }

    /// The checkpoints of the same database: what workers run applications with.
    pub fn persister(&self) -> Arc<dyn Persister> {
        match self {
            Backend::Sqlite(q) => q.persister(),
            #[cfg(feature = "postgres")]
            Backend::Postgres(q) => q.persister(),
        }
    }

    /// The work cache of the same database (memoized steps, stored embeddings):
    /// [`SqliteCache`](burr_core::cache::SqliteCache) in the file, or
    /// [`PgCache`](burr_postgres::PgCache) in the PostgreSQL database.
    pub fn cache(&self) -> burr_core::cache::Cache {
        match self {
            Backend::Sqlite(q) => burr_core::cache::Cache::new(
                burr_core::cache::SqliteCache::from_persister(&q.persister()),
            ),
            #[cfg(feature = "postgres")]
            Backend::Postgres(q) => {
                burr_core::cache::Cache::new(burr_postgres::PgCache::from_persister(&q.persister()))
            }
        }
    }

    /// The schema versions this build writes, which the database is at once opened:
    /// (checkpoints, run queue).
    pub fn schema_versions(&self) -> (i64, i64) {
        match self {
            Backend::Sqlite(_) => (
                burr_core::persistence::SqlitePersister::SCHEMA_VERSION,
                super::sqlite::schema::SCHEMA_VERSION,
            ),
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => (
                burr_postgres::SCHEMA_VERSION,
                super::postgres::schema::SCHEMA_VERSION,
            ),
        }
    }

    /// The database as people read it: the file's path, or the URL without its
    /// password.
    pub fn name(&self) -> String {
        match self {
            Backend::Sqlite(q) => q.path().display().to_string(),
            #[cfg(feature = "postgres")]
            Backend::Postgres(q) => q.database().to_owned(),
        }
    }

    /// The SQLite file, when it is one (the tracker and the HTTP catalog read it).
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Backend::Sqlite(q) => Some(q.path()),
            #[cfg(feature = "postgres")]
            Backend::Postgres(_) => None,
        }
    }
}

/// Whether `db` names a PostgreSQL database (`postgres://…` or `postgresql://…`)
/// rather than a SQLite file.
pub fn is_postgres_url(db: &Path) -> bool {
    db.to_str()
        .is_some_and(|s| s.starts_with("postgres://") || s.starts_with("postgresql://"))
}

/// Open the burr database `db`: a `postgres://user:password@host:port/dbname` URL is a
/// PostgreSQL database ([`PgRunQueue`](super::PgRunQueue), feature `postgres`; without
/// it, [`QueueError::Invalid`] saying so), anything else a SQLite file
/// ([`SqliteRunQueue`], created when missing). Either is migrated to this build's schema.
///
/// ```no_run
/// # async fn demo() -> Result<(), burr_server::QueueError> {
/// let db = burr_server::open("burr.db").await?; // or "postgres://burr@db.internal/burr"
/// let (queue, persister) = (db.queue(), db.persister());
/// # let _ = (queue, persister); Ok(()) }
/// ```
pub async fn open(db: impl AsRef<Path>) -> Result<Backend, QueueError> {
    let db = db.as_ref();
    if is_postgres_url(db) {
        let url = db.to_str().unwrap_or_default();
        #[cfg(feature = "postgres")]
        return Ok(Backend::Postgres(super::PgRunQueue::connect(url).await?));
        #[cfg(not(feature = "postgres"))]
        return Err(QueueError::Invalid {
            what: "database",
            value: url.split('@').next_back().unwrap_or_default().to_owned(),
            problem: "a PostgreSQL URL needs burr-server's `postgres` feature, which this program was built without".to_owned(),
        });
    }
    Ok(Backend::Sqlite(SqliteRunQueue::open(db)?))
}
