//! Read-only access for inspection tools (the `burr-tracker` CLI): open an existing
//! database without ever writing to it, list every application it holds, and tell
//! whether a live runner holds an application's lease.

use std::io;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};

use super::codec::{app_key, now_micros, parent_from_column, partition_from_column};
use super::connection::open_error;
use super::known::KnownStates;
use super::lease::{self, ProcessIdentity};
use super::schema::{self, APPLICATION_ID, SCHEMA_VERSION};
use super::{Inner, SqliteOptions, SqlitePersister};
use crate::persistence::{AppRecord, PersistenceError};

impl SqlitePersister {
    /// Open the existing burr database at `path` for reading only: the file is opened
    /// with `SQLITE_OPEN_READ_ONLY`, and is never created, migrated or written.
    ///
    /// The read methods ([`load`](crate::persistence::Persister::load), the listings,
    /// [`list_apps`](Self::list_apps)) work as usual; the write methods (`save`,
    /// `register_app`, `delete_app`, `prune`, leases) fail with
    /// [`PersistenceError::Closed`].
    ///
    /// Fails with [`PersistenceError::Open`] when the file does not exist or cannot be
    /// read, [`PersistenceError::NotABurrDatabase`] when it is something else (or a burr
    /// database of an older schema, which [`open`](Self::open) migrates),
    /// [`PersistenceError::SchemaTooNew`] when a newer burr-rs wrote it.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Self, PersistenceError> {
        let path = path.as_ref().to_owned();
        if !path.is_file() {
            let problem = if path.exists() {
                io::Error::new(io::ErrorKind::InvalidInput, "it is not a file")
            } else {
                io::Error::new(io::ErrorKind::NotFound, "no such file")
            };
            return Err(open_error(&path, problem));
        }
        let options = SqliteOptions::default();
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn =
            Connection::open_with_flags(&path, flags).map_err(|e| schema::classify(&path, e))?;
        conn.busy_timeout(options.busy_timeout)
            .map_err(|e| schema::classify(&path, e))?;
        let read = |pragma: &str| {
            conn.query_row(pragma, [], |row| row.get::<_, i64>(0))
                .map_err(|e| schema::classify(&path, e))
        };
        let (application_id, version) =
            (read("PRAGMA application_id")?, read("PRAGMA user_version")?);
        if application_id != APPLICATION_ID {
            let reason = if application_id == 0 {
                "it holds no burr checkpoints (its SQLite application id is not burr's)".to_owned()
            } else {
                format!("its SQLite application id is {application_id:#x}, not burr's ({APPLICATION_ID:#x})")
            };
            return Err(PersistenceError::NotABurrDatabase { path, reason });
        }
        if version > SCHEMA_VERSION {
            return Err(PersistenceError::SchemaTooNew {
                path,
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if version < SCHEMA_VERSION {
            return Err(PersistenceError::NotABurrDatabase {
                path,
                reason: format!(
                    "its schema version {version} is older than this build reads ({SCHEMA_VERSION}); \
                     open it once with SqlitePersister::open to migrate it"
                ),
            });
        }
        conn.set_prepared_statement_cache_capacity(16);
        Ok(SqlitePersister {
            inner: Arc::new(Inner {
                path,
                options,
                group: None,
                renewals: None,
                readers: Mutex::new(vec![conn]),
                known: Arc::new(Mutex::new(KnownStates::default())),
                me: Arc::new(ProcessIdentity::current()),
                instance: String::new(),
                leases_taken: AtomicU64::new(0),
            }),
        })
    }

    /// Every application stored, of every partition key, newest first (the order they
    /// were first recorded in).
    pub fn list_apps(&self) -> Result<Vec<AppRecord>, PersistenceError> {
        let path = self.inner.path.clone();
        self.read(|conn| {
            let mut statement = conn.prepare_cached(
                "SELECT partition_key, app_id, created_at_us, fork_parent, spawning_parent \
                 FROM burr_apps ORDER BY id DESC",
            )?;
            let mut rows = statement.query([])?;
            let mut apps = Vec::new();
            while let Some(row) = rows.next()? {
                let partition_key: String = row.get(0)?;
                let app_id: String = row.get(1)?;
                let parent = |column, which| parent_from_column(&path, &app_id, column, which);
                let fork_parent = parent(row.get(3)?, "fork parent")?;
                let spawning_parent = parent(row.get(4)?, "spawning parent")?;
                apps.push(AppRecord {
                    partition_key: partition_from_column(&partition_key),
                    app_id,
                    created_at_us: row.get(2)?,
                    fork_parent,
                    spawning_parent,
                });
            }
            Ok(apps)
        })
    }

    /// Who runs the application now: the holder of its lease (`pid 4242 on host (lease
    /// …)`) while a live runner holds it; `None` when none does: no lease is stored (its
    /// runner finished, dropped it or gave it back), or the lease has expired, or its
    /// holder ran on this machine and its process is gone. Judged as
    /// [`acquire_lease`](crate::persistence::Persister::acquire_lease) judges it, so a
    /// runner that crashed mid-step is seen as gone at once on its own machine, and
    /// after the lease's time to live elsewhere.
    ///
    /// Child applications run under their root's lease (they take none): ask about the
    /// root.
    pub fn live_lease_holder(
        &self,
        partition_key: Option<&str>,
        app_id: &str,
    ) -> Result<Option<String>, PersistenceError> {
        let key = app_key(partition_key, app_id);
        let me = &self.inner.me;
        self.read(|conn| Ok(lease::live_holder(conn, me, &key, None, now_micros())?))
    }
}
