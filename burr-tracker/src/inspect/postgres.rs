//! [`PgSource`]: a PostgreSQL burr database kept connected for reading (feature
//! `postgres`), from which [`Database`](super::Database)s are opened.
//!
//! The checkpoints are read through burr-postgres's [`PostgresPersister`] (their delta
//! layout is its own), the tracker's tables with queries of their own. Nothing is
//! written: the persister is connected only to a database whose schema is current (it
//! would migrate an older one), and the tracker's tables are never created.

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use burr_core::persistence::PersistenceError;
use burr_postgres::PostgresPersister;
use tokio::runtime::Runtime;
use tokio_postgres::Client;

use crate::store::postgres::Database as Target;
use crate::store::read_postgres;
use crate::TrackerError;

/// A PostgreSQL burr database (`postgres://…`) kept connected for reading: what
/// [`Database::open`](super::Database::open) uses for a URL, and what a server that opens
/// a [`Database`](super::Database) per request keeps (with
/// [`Database::open_postgres`](super::Database::open_postgres)) so as not to connect
/// again each time. Cloning shares it.
///
/// Its connections are driven by a runtime of its own (one thread), so it is used from
/// plain threads, also from inside another runtime's blocking threads.
#[derive(Clone)]
pub struct PgSource {
    inner: Arc<Inner>,
}

struct Inner {
    /// The URL as given (with its password: the persister connects with it).
    url: String,
    target: Target,
    /// `Some` until dropped (shut down without waiting: it may be dropped on a thread
    /// of another runtime).
    runtime: Option<Runtime>,
    /// The connection for the tracker's tables (reconnected when lost).
    client: Mutex<Arc<Client>>,
    /// The checkpoints' persister, once the database has burr's checkpoint tables.
    persister: Mutex<Option<PostgresPersister>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Ok(persister) = self.persister.get_mut() {
            persister.take();
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl std::fmt::Debug for PgSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSource")
            .field("database", &self.inner.target.name)
            .finish_non_exhaustive()
    }
}

/// What a database holds, seen when a [`Database`](super::Database) is opened on it.
pub(crate) struct Parts {
    /// The checkpoints' persister, when it has burr's checkpoint tables.
    pub(crate) persister: Option<PostgresPersister>,
    /// Whether it has the tracker's tables.
    pub(crate) tracked: bool,
}

impl PgSource {
    /// Connect to the PostgreSQL database at `url` for reading.
    ///
    /// Fails with [`TrackerError::Postgres`] when the URL is malformed or the server
    /// cannot be reached, naming the database (without its password).
    pub fn connect(url: &str) -> Result<PgSource, TrackerError> {
        let target = Target::parse(url)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("burr-tracker-pg-read")
            .enable_all()
            .build()
            .map_err(|source| TrackerError::Io {
                path: target.name.clone(),
                source,
            })?;
        let connecting = {
            let target = target.clone();
            runtime.spawn(async move { target.connect_here().await })
        };
        let client = match futures::executor::block_on(connecting) {
            Ok(Ok(client)) => client,
            Ok(Err(error)) => {
                // Not dropped where it blocks: the caller may be inside another runtime.
                runtime.shutdown_background();
                return Err(error);
            }
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        };
        Ok(PgSource {
            inner: Arc::new(Inner {
                url: url.to_owned(),
                target,
                runtime: Some(runtime),
                client: Mutex::new(Arc::new(client)),
                persister: Mutex::new(None),
            }),
        })
    }

    /// The database, as its URL without the password.
    pub fn name(&self) -> &std::path::Path {
        &self.inner.target.name
    }

    pub(crate) fn target(&self) -> &Target {
        &self.inner.target
    }

    /// Run `work` on this source's runtime and wait for it (from any thread).
    pub(crate) fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> T {
        let runtime = self
            .inner
            .runtime
            .as_ref()
            .expect("the runtime lives as long as the source");
        match futures::executor::block_on(runtime.spawn(work)) {
            Ok(out) => out,
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        }
    }

    /// The connection for the tracker's tables, connected again when it was lost.
    pub(crate) fn client(&self) -> Result<Arc<Client>, TrackerError> {
        let mut client = self.inner.client.lock().unwrap_or_else(|p| p.into_inner());
        if client.is_closed() {
            let target = self.inner.target.clone();
            *client = Arc::new(self.run(async move { target.connect_here().await })?);
        }
        Ok(Arc::clone(&client))
    }

    /// Look at what the database holds now: burr's checkpoint tables (their persister,
    /// connected the first time they are seen) and the tracker's tables.
    ///
    /// Fails when it holds neither, or either was written by a newer burr-rs; a
    /// checkpoint schema older than this build reads is refused too (connecting would
    /// migrate it: a worker, or `burr_postgres::migrate`, does that).
    pub(crate) fn parts(&self) -> Result<Parts, TrackerError> {
        let client = self.client()?;
        let source = self.clone();
        let (checkpoints, tracked) = self.run(async move {
            let target = source.target();
            let checkpoints = checkpoint_version(&client, target).await?;
            let tracked = read_postgres::tracker_version(&client, target)
                .await?
                .is_some();
            Ok::<_, TrackerError>((checkpoints, tracked))
        })?;
        let name = || self.inner.target.name.clone();
        let persister = match checkpoints {
            None => None,
            Some(found) if found > PostgresPersister::SCHEMA_VERSION => {
                return Err(PersistenceError::SchemaTooNew {
                    path: name(),
                    found,
                    supported: PostgresPersister::SCHEMA_VERSION,
                }
                .into())
            }
            Some(found) if found < PostgresPersister::SCHEMA_VERSION => {
                return Err(PersistenceError::NotABurrDatabase {
                    path: name(),
                    reason: format!(
                        "its schema version {found} is older than this build reads ({}); \
                         a worker (or `burr_postgres::migrate`) migrates it",
                        PostgresPersister::SCHEMA_VERSION
                    ),
                }
                .into())
            }
            Some(_) => Some(self.persister()?),
        };
        if persister.is_none() && !tracked {
            return Err(PersistenceError::NotABurrDatabase {
                path: name(),
                reason: "it holds neither burr's checkpoints nor the tracker's tables".to_owned(),
            }
            .into());
        }
        Ok(Parts { persister, tracked })
    }

    /// The checkpoints' persister, connected on first use.
    fn persister(&self) -> Result<PostgresPersister, TrackerError> {
        let mut slot = self
            .inner
            .persister
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(persister) = &*slot {
            return Ok(persister.clone());
        }
        let url = self.inner.url.clone();
        let persister = self.run(async move { PostgresPersister::connect(&url).await })?;
        *slot = Some(persister.clone());
        Ok(persister)
    }
}

/// The schema version of burr's checkpoint tables, `None` without them.
async fn checkpoint_version(client: &Client, target: &Target) -> Result<Option<i64>, TrackerError> {
    let failed = |e| target.error("read the schema version", e);
    let exists: bool = client
        .query_one("SELECT to_regclass('burr_meta') IS NOT NULL", &[])
        .await
        .and_then(|row| row.try_get(0))
        .map_err(failed)?;
    if !exists {
        return Ok(None);
    }
    let text: Option<String> = client
        .query_opt(
            "SELECT value FROM burr_meta WHERE key = 'schema_version'",
            &[],
        )
        .await
        .map_err(failed)?
        .map(|row| row.try_get(0))
        .transpose()
        .map_err(failed)?;
    let Some(text) = text else {
        return Ok(None);
    };
    text.parse().map(Some).map_err(|_| {
        PersistenceError::NotABurrDatabase {
            path: PathBuf::from(&target.name),
            reason: format!("its burr_meta schema_version is `{text}`, not a number"),
        }
        .into()
    })
}
