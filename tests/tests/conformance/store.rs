//! The scenario's persistence store (SCENARIOS.md §6.2): one in-memory persister shared by
//! every build, or a SQLite file (a PostgreSQL database) on which every build opens
//! (connects) a new persister.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burr_core::persistence::{InMemoryPersister, Persister, SqlitePersister};
use burr_postgres::testing::TestServer;
use burr_postgres::PostgresPersister;

use crate::corpus::Backend;

/// Where a scenario's checkpoints go. Empty when the scenario starts.
pub enum Store {
    /// The same persister object for every build.
    Memory(Arc<InMemoryPersister>),
    /// A fresh temporary database file.
    Sqlite {
        /// Keeps the directory (and the file) alive for the scenario.
        _dir: tempfile::TempDir,
        /// The database file.
        path: PathBuf,
    },
    /// A fresh database on the test server.
    Postgres {
        /// Its URL.
        url: String,
    },
}

impl Store {
    /// An empty store of `backend`.
    pub fn new(backend: Backend) -> Result<Store, String> {
        Ok(match backend {
            Backend::Memory => Store::Memory(Arc::new(InMemoryPersister::new())),
            Backend::Sqlite => {
                let dir = tempfile::tempdir()
                    .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
                let path = dir.path().join("burr.db");
                Store::Sqlite { _dir: dir, path }
            }
            Backend::Postgres => Store::Postgres {
                url: TestServer::try_shared()?.fresh_database(),
            },
        })
    }

    /// The persister for one build: the shared one (memory), or a new one on the same file
    /// or database (SQLite, PostgreSQL), which simulates a process restart.
    pub async fn open(&self) -> Result<Arc<dyn Persister>, String> {
        match self {
            Store::Memory(persister) => Ok(Arc::clone(persister) as Arc<dyn Persister>),
            Store::Sqlite { path, .. } => open_sqlite(path),
            Store::Postgres { url } => PostgresPersister::connect(url)
                .await
                .map(|persister| Arc::new(persister) as Arc<dyn Persister>)
                .map_err(|e| format!("cannot connect a PostgresPersister to {url}: {e}")),
        }
    }
}

fn open_sqlite(path: &Path) -> Result<Arc<dyn Persister>, String> {
    SqlitePersister::open(path)
        .map(|persister| Arc::new(persister) as Arc<dyn Persister>)
        .map_err(|e| format!("cannot open a SqlitePersister on {}: {e}", path.display()))
}
