//! [`Catalog`]: what a burr database holds, read without writing — its runs and its
//! top-level applications (also those started by hand, with no run queue), one page at a
//! time; a run; the backlog; run events after a point. What the HTTP API lists and
//! streams.
//!
//! It opens the file read-only and never creates tables: a database written by an
//! application with only a persister or a tracker lists its applications, one with a
//! run queue its runs too. With the `postgres` feature it reads a PostgreSQL database
//! (`postgres://…`) the same way.

#[cfg(feature = "postgres")]
mod postgres;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use burr_core::persistence::SqlitePersister;
use rusqlite::{Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::error::QueueError;
use crate::events::{EventKind, RunEvent};
use crate::queue::sqlite::ops::{self, OpError};
use crate::queue::sqlite::rows::{self, RUN_COLUMNS};
use crate::run::{now_us, Backlog, Run};

/// Most entries in one page.
pub const MAX_PAGE: u32 = 500;

/// One entry of a listing: a run of the queue, or an application started without it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "http", derive(utoipa::ToSchema))]
pub struct Listed {
    /// The run id (= app id), or the application's app id.
    pub id: String,
    /// `run` (submitted through the queue) or `app` (an application run by hand).
    pub source: String,
    /// The run's kind (runs only).
    pub kind: Option<String>,
    /// A run: `queued`, `running`, `succeeded`, `failed`, `cancelled`. An application:
    /// `running` (its lease is held), `created` (no step yet), or its last step's status
    /// (`completed`, `failed`, `cancelled`).
    pub status: String,
    /// The run's priority (runs only).
    pub priority: Option<i32>,
    /// The run's flow (runs only).
    pub flow: Option<String>,
    /// The run's attempt (runs only).
    pub attempt: Option<u32>,
    /// When it was submitted (a run) or first recorded (an application), in microseconds
    /// since the Unix epoch.
    pub created_at_us: i64,
    /// When a worker first claimed it (runs only).
    pub started_at_us: Option<i64>,
    /// When it finished (runs only).
    pub finished_at_us: Option<i64>,
    /// When it last changed.
    pub updated_at_us: i64,
    /// Child applications finished and started so far, when it spawned any.
    pub progress: Option<Progress>,
    /// The error that failed it (outermost first), when it failed.
    pub error: Option<Vec<String>>,
}

impl Listed {
    /// The entry of a run of the queue, with its children's progress.
    pub(crate) fn run(run: Run, progress: Option<Progress>) -> Listed {
        Listed {
            source: "run".to_owned(),
            kind: Some(run.kind),
            status: run.status.as_str().to_owned(),
            priority: Some(run.priority),
            flow: Some(run.flow),
            attempt: Some(run.attempt),
            created_at_us: run.submitted_at_us,
            started_at_us: run.started_at_us,
            finished_at_us: run.finished_at_us,
            updated_at_us: run.updated_at_us,
            progress,
            error: run.error,
            id: run.id,
        }
    }
}

/// Child applications of a run: finished of started so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "http", derive(utoipa::ToSchema))]
pub struct Progress {
    /// Finished.
    pub done: u64,
    /// Started so far.
    pub total: u64,
}

/// Which entries [`Catalog::list`] returns, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Only entries with this status.
    pub status: Option<String>,
    /// Only runs of this kind (leaves out applications run by hand).
    pub kind: Option<String>,
    /// Only runs of this flow (leaves out applications run by hand).
    pub flow: Option<String>,
    /// Only entries after this one (the previous page's `next_cursor`).
    pub cursor: Option<Cursor>,
    /// At most this many (default 50, at most [`MAX_PAGE`]).
    pub limit: Option<u32>,
}

/// A place in a listing: (time, id) of the last entry of a page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// Its creation time.
    pub at_us: i64,
    /// Its id.
    pub id: String,
}

impl Cursor {
    /// The cursor as text (`<time>:<id>`).
    pub fn encode(&self) -> String {
        format!("{}:{}", self.at_us, self.id)
    }

    /// The cursor written by [`Cursor::encode`].
    pub fn parse(text: &str) -> Option<Cursor> {
        let (at, id) = text.split_once(':')?;
        Some(Cursor {
            at_us: at.parse().ok()?,
            id: id.to_owned(),
        })
    }
}

/// One page of a listing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "http", derive(utoipa::ToSchema))]
pub struct Page {
    /// The entries, newest first.
    pub runs: Vec<Listed>,
    /// Pass it as `cursor` for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// A burr database, read-only. Cloning shares it.
#[derive(Clone)]
pub struct Catalog {
    store: Store,
}

/// The database a catalog reads.
#[derive(Clone)]
enum Store {
    /// A SQLite file.
    Sqlite(Arc<Inner>),
    /// A PostgreSQL database.
    #[cfg(feature = "postgres")]
    Postgres(Arc<postgres::PgCatalog>),
}

/// A change marker of the database: [`Catalog::version`] changes when another
/// connection commits.
pub enum Watcher {
    /// SQLite's `data_version` of a connection kept for it.
    Sqlite(Connection),
    /// PostgreSQL's write-ahead log position.
    #[cfg(feature = "postgres")]
    Postgres,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Watcher")
    }
}

struct Inner {
    path: PathBuf,
    persister: SqlitePersister,
    /// Read connections not in use.
    idle: Mutex<Vec<Connection>>,
    /// The top-level applications that are not runs.
    apps: Mutex<AppsIndex>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("path", &self.path())
            .finish_non_exhaustive()
    }
}

impl Catalog {
    /// Open the burr database at `path` for reading. Fails when the file does not exist
    /// or is not a burr database.
    ///
    /// A `postgres://` URL (feature `postgres`) reads that PostgreSQL database: its
    /// applications at once, its run queue through [`Catalog::use_queue`]'s queue or,
    /// without one, a queue connected on first use (which creates the queue's tables
    /// when they are missing).
    pub fn open(path: impl AsRef<Path>) -> Result<Catalog, QueueError> {
        #[cfg(not(feature = "postgres"))]
        if crate::queue::is_postgres_url(path.as_ref()) {
            let url = path.as_ref().to_string_lossy();
            return Err(QueueError::Invalid {
                what: "database",
                value: url.split('@').next_back().unwrap_or_default().to_owned(),
                problem: "a PostgreSQL URL needs burr-server's `postgres` feature, which this program was built without".to_owned(),
            });
        }
        #[cfg(feature = "postgres")]
        if let Some(url) = path
            .as_ref()
            .to_str()
            .filter(|_| crate::queue::is_postgres_url(path.as_ref()))
        {
            return Ok(Catalog {
                store: Store::Postgres(Arc::new(postgres::PgCatalog::open(url)?)),
            });
        }
        let path = path.as_ref().to_owned();
        let persister = SqlitePersister::open_read_only(&path)?;
        let catalog = Catalog {
            store: Store::Sqlite(Arc::new(Inner {
                path,
                persister,
                idle: Mutex::new(Vec::new()),
                apps: Mutex::default(),
            })),
        };
        catalog.with_conn(|_| Ok(()))?;
        Ok(catalog)
    }

    /// Read the runs through `queue` (the server's own run queue) where the catalog
    /// would otherwise connect one of its own (PostgreSQL); a file is read directly.
    pub fn use_queue(&self, queue: Arc<dyn crate::queue::RunQueue>) {
        match &self.store {
            Store::Sqlite(_) => drop(queue),
            #[cfg(feature = "postgres")]
            Store::Postgres(pg) => pg.use_queue(queue),
        }
    }

    /// The database file (for PostgreSQL, its URL without the password).
    pub fn path(&self) -> &Path {
        match &self.store {
            Store::Sqlite(inner) => &inner.path,
            #[cfg(feature = "postgres")]
            Store::Postgres(pg) => pg.source.name(),
        }
    }

    /// Open the database for the pages about the application `app_id` and its children
    /// (burr-tracker's reader; blocking: call it on a blocking thread).
    pub fn open_app(
        &self,
        app_id: &str,
    ) -> Result<burr_tracker::inspect::Database, burr_tracker::TrackerError> {
        match &self.store {
            Store::Sqlite(inner) => burr_tracker::inspect::Database::open_app(&inner.path, app_id),
            #[cfg(feature = "postgres")]
            Store::Postgres(pg) => {
                burr_tracker::inspect::Database::open_postgres(&pg.source, Some(app_id))
            }
        }
    }

    fn sqlite(&self) -> &Arc<Inner> {
        match &self.store {
            Store::Sqlite(inner) => inner,
            #[cfg(feature = "postgres")]
            Store::Postgres(_) => unreachable!("only the SQLite catalog has connections"),
        }
    }

    /// Run `f` on a read connection (taken from the idle ones, or opened).
    fn with_conn<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, OpError>,
    ) -> Result<T, QueueError> {
        let inner = self.sqlite();
        let conn = inner.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match conn {
            Some(conn) => conn,
            None => inner
                .persister
                .read_only_connection()
                .map_err(QueueError::from)?,
        };
        let out = f(&conn);
        inner
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(conn);
        out.map_err(|error| match error {
            OpError::Queue(e) => e,
            OpError::Sql(source) => QueueError::Database {
                path: inner.path.clone(),
                source,
            },
        })
    }

    /// Run `f` on a read connection on tokio's blocking threads.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, OpError> + Send + 'static,
    ) -> Result<T, QueueError> {
        let catalog = self.clone();
        match tokio::task::spawn_blocking(move || catalog.with_conn(f)).await {
            Ok(out) => out,
            Err(join) => std::panic::resume_unwind(join.into_panic()),
        }
    }

    /// A page of runs and top-level applications, newest first.
    pub async fn list(&self, query: ListQuery) -> Result<Page, QueueError> {
        #[cfg(feature = "postgres")]
        if let Store::Postgres(pg) = &self.store {
            return pg.list(query).await;
        }
        let catalog = self.clone();
        self.read(move |conn| list(conn, &catalog.sqlite().apps, &query))
            .await
    }

    /// The run `run_id` of the queue, `None` when the queue has none (or the database has
    /// no queue).
    pub async fn run(&self, run_id: &str) -> Result<Option<Run>, QueueError> {
        #[cfg(feature = "postgres")]
        if let Store::Postgres(pg) = &self.store {
            return pg.run(run_id).await;
        }
        let run_id = run_id.to_owned();
        self.read(move |conn| {
            if !has_table(conn, "burr_runs")? {
                return Ok(None);
            }
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM burr_runs WHERE id = ?1"
            ))?;
            let found = rows::runs(&mut stmt, [&run_id])?.into_iter().next();
            Ok(found.transpose()?)
        })
        .await
    }

    /// The queue's backlog (empty when the database has no queue).
    pub async fn backlog(&self) -> Result<Backlog, QueueError> {
        #[cfg(feature = "postgres")]
        if let Store::Postgres(pg) = &self.store {
            return pg.backlog().await;
        }
        self.read(|conn| {
            if !has_table(conn, "burr_runs")? {
                return Ok(Backlog::default());
            }
            ops::backlog(conn, now_us())
        })
        .await
    }

    /// Up to `limit` run events after event `after` (of `run_id` only, when given), in
    /// order.
    pub async fn events_after(
        &self,
        after: i64,
        run_id: Option<String>,
        limit: u32,
    ) -> Result<Vec<RunEvent>, QueueError> {
        #[cfg(feature = "postgres")]
        if let Store::Postgres(pg) = &self.store {
            return pg.events_after(after, run_id, limit).await;
        }
        self.read(move |conn| {
            if !has_table(conn, "burr_run_events")? {
                return Ok(Vec::new());
            }
            // Two statements, so that one run's events are read through its index.
            let mut stmt = match run_id {
                Some(_) => conn.prepare_cached(
                    "SELECT id, run_id, at_us, data FROM burr_run_events \
                     WHERE run_id = ?2 AND id > ?1 ORDER BY id LIMIT ?3",
                )?,
                None => conn.prepare_cached(
                    "SELECT id, run_id, at_us, data FROM burr_run_events \
                     WHERE id > ?1 AND ?2 IS NULL ORDER BY id LIMIT ?3",
                )?,
            };
            let mut found = stmt.query((after, run_id, limit))?;
            let mut out = Vec::new();
            while let Some(row) = found.next()? {
                if let Some(event) = rows::event(row)? {
                    out.push(event);
                }
            }
            Ok(out)
        })
        .await
    }

    /// The id of the last run event stored (0: none).
    pub async fn last_event_id(&self) -> Result<i64, QueueError> {
        #[cfg(feature = "postgres")]
        if let Store::Postgres(pg) = &self.store {
            return pg.last_event_id().await;
        }
        self.read(|conn| {
            if !has_table(conn, "burr_run_events")? {
                return Ok(0);
            }
            Ok(conn
                .prepare_cached("SELECT coalesce(max(id), 0) FROM burr_run_events")?
                .query_row([], |r| r.get(0))?)
        })
        .await
    }

    /// A number that changes whenever another connection commits to the database (SQLite's
    /// `data_version` of one connection kept for it).
    pub fn data_version(&self, conn: &Connection) -> Result<i64, QueueError> {
        conn.query_row("PRAGMA data_version", [], |r| r.get(0))
            .map_err(|source| QueueError::Database {
                path: self.path().to_owned(),
                source,
            })
    }

    /// A connection of its own, for [`Catalog::data_version`] (which compares commits
    /// seen by one connection). A file only: see [`Catalog::watcher`].
    pub fn watch_connection(&self) -> Result<Connection, QueueError> {
        match &self.store {
            Store::Sqlite(inner) => inner
                .persister
                .read_only_connection()
                .map_err(QueueError::from),
            #[cfg(feature = "postgres")]
            Store::Postgres(pg) => Err(QueueError::Persistence(
                burr_core::persistence::PersistenceError::NotABurrDatabase {
                    path: pg.source.name().to_owned(),
                    reason: "a PostgreSQL database has no SQLite connection: use Catalog::watcher"
                        .to_owned(),
                },
            )),
        }
    }

    /// What [`Catalog::version`] compares commits with.
    pub fn watcher(&self) -> Result<Watcher, QueueError> {
        match &self.store {
            Store::Sqlite(_) => Ok(Watcher::Sqlite(self.watch_connection()?)),
            #[cfg(feature = "postgres")]
            Store::Postgres(_) => Ok(Watcher::Postgres),
        }
    }

    /// A number that changes whenever another connection commits to the database: for
    /// a file, [`data_version`](Catalog::data_version) of the watcher's connection; for
    /// PostgreSQL, the position of its write-ahead log (one cheap query).
    pub async fn version(&self, watcher: &mut Watcher) -> Result<i64, QueueError> {
        match (watcher, &self.store) {
            (Watcher::Sqlite(conn), _) => self.data_version(conn),
            #[cfg(feature = "postgres")]
            (Watcher::Postgres, Store::Postgres(pg)) => pg.version().await,
            #[cfg(feature = "postgres")]
            (Watcher::Postgres, Store::Sqlite(_)) => Ok(0),
        }
    }
}

/// Whether the database has the table `name`.
fn has_table(conn: &Connection, name: &str) -> Result<bool, OpError> {
    Ok(conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1)",
        )?
        .query_row([name], |r| r.get(0))?)
}

fn list(conn: &Connection, index: &Mutex<AppsIndex>, query: &ListQuery) -> Result<Page, OpError> {
    let limit = query.limit.unwrap_or(50).clamp(1, MAX_PAGE);
    let fetch = i64::from(limit) + 1;
    let (after_at, after_id) = match &query.cursor {
        Some(c) => (c.at_us, c.id.clone()),
        None => (i64::MAX, String::new()),
    };
    let has_runs = has_table(conn, "burr_runs")?;
    let mut entries: Vec<Listed> = Vec::new();
    if has_runs {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {RUN_COLUMNS} FROM burr_runs \
             WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR kind = ?2) \
             AND (?3 IS NULL OR flow = ?3) \
             AND (submitted_at_us < ?4 OR (submitted_at_us = ?4 AND (?5 = '' OR id < ?5))) \
             ORDER BY submitted_at_us DESC, id DESC LIMIT ?6"
        ))?;
        let found = rows::runs(
            &mut stmt,
            (
                &query.status,
                &query.kind,
                &query.flow,
                after_at,
                &after_id,
                fetch,
            ),
        )?;
        for run in found {
            let run = run?;
            let progress = progress(conn, &run.id)?;
            entries.push(Listed::run(run, progress));
        }
    }
    if query.kind.is_none() && query.flow.is_none() {
        entries.extend(apps(
            conn, index, query, has_runs, after_at, &after_id, fetch,
        )?);
    }
    Ok(page(entries, limit))
}

/// The page of `entries` (runs and applications, each kind newest first): merged newest
/// first, at most `limit`, with the cursor of the next page when there is more.
fn page(mut entries: Vec<Listed>, limit: u32) -> Page {
    entries.sort_by(|a, b| {
        b.created_at_us
            .cmp(&a.created_at_us)
            .then_with(|| b.id.cmp(&a.id))
    });
    entries.dedup_by(|a, b| a.id == b.id);
    let more = entries.len() > limit as usize;
    entries.truncate(limit as usize);
    let next_cursor = more.then(|| entries.last()).flatten().map(|last| {
        Cursor {
            at_us: last.created_at_us,
            id: last.id.clone(),
        }
        .encode()
    });
    Page {
        runs: entries,
        next_cursor,
    }
}

/// The latest child progress of a run.
fn progress(conn: &Connection, run_id: &str) -> Result<Option<Progress>, OpError> {
    let data: Option<String> = conn
        .prepare_cached(
            "SELECT data FROM burr_run_events WHERE run_id = ?1 AND kind = 'child_progress' \
             ORDER BY id DESC LIMIT 1",
        )?
        .query_row([run_id], |r| r.get(0))
        .optional()?;
    Ok(data
        .and_then(|d| serde_json::from_str::<EventKind>(&d).ok())
        .and_then(|kind| match kind {
            EventKind::ChildProgress { done, total } => Some(Progress { done, total }),
            _ => None,
        }))
}

/// Where a top-level application that is not a run is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stored {
    /// In `burr_apps` (checkpointed), by row id.
    Checkpointed(i64),
    /// Only in `burr_tracker_apps`, by row id.
    Tracked(i64),
}

/// The top-level applications that are not runs, newest first, read incrementally: each
/// listing reads only the application rows added since the last (a database of 100,000
/// runs is not scanned again at every page).
#[derive(Debug, Default)]
pub(crate) struct AppsIndex {
    /// The last row id read of `burr_apps` and of `burr_tracker_apps`.
    last_checkpointed: i64,
    last_tracked: i64,
    /// (created, app id, where), sorted newest first.
    entries: Vec<(i64, String, Stored)>,
}

impl AppsIndex {
    /// Read the application rows added since the last call.
    fn refresh(&mut self, conn: &Connection, has_runs: bool) -> Result<(), OpError> {
        let not_a_run = |alias: &str| {
            if has_runs {
                format!("AND NOT EXISTS (SELECT 1 FROM burr_runs r WHERE r.id = {alias}.app_id)")
            } else {
                String::new()
            }
        };
        let mut added = false;
        if has_table(conn, "burr_apps")? {
            let sql = format!(
                "SELECT a.id, a.created_at_us, a.app_id FROM burr_apps a \
                 WHERE a.id > ?1 AND a.id <= ?2 AND a.spawning_parent IS NULL {} ORDER BY a.id",
                not_a_run("a")
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            // Up to the last row now: rows added meanwhile are read next time.
            let upto: i64 = conn
                .prepare_cached("SELECT coalesce(max(id), 0) FROM burr_apps")?
                .query_row([], |r| r.get(0))?;
            let mut rows = stmt.query([self.last_checkpointed, upto])?;
            while let Some(row) = rows.next()? {
                let rowid: i64 = row.get(0)?;
                self.entries
                    .push((row.get(1)?, row.get(2)?, Stored::Checkpointed(rowid)));
                added = true;
            }
            self.last_checkpointed = upto;
        }
        if has_table(conn, "burr_tracker_apps")? {
            let not_checkpointed = if has_table(conn, "burr_apps")? {
                "AND NOT EXISTS (SELECT 1 FROM burr_apps p WHERE p.app_id = t.app_id \
                 AND p.partition_key = t.partition_key)"
            } else {
                ""
            };
            let sql = format!(
                "SELECT t.id, t.created_at_us, t.app_id FROM burr_tracker_apps t \
                 WHERE t.id > ?1 AND t.id <= ?2 AND t.spawning_parent IS NULL {not_checkpointed} {} ORDER BY t.id",
                not_a_run("t")
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            // Up to the last row now: rows added meanwhile are read next time.
            let upto: i64 = conn
                .prepare_cached("SELECT coalesce(max(id), 0) FROM burr_tracker_apps")?
                .query_row([], |r| r.get(0))?;
            let mut rows = stmt.query([self.last_tracked, upto])?;
            while let Some(row) = rows.next()? {
                let rowid: i64 = row.get(0)?;
                self.entries
                    .push((row.get(1)?, row.get(2)?, Stored::Tracked(rowid)));
                added = true;
            }
            self.last_tracked = upto;
        }
        if added {
            self.entries
                .sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.cmp(&a.1)));
        }
        Ok(())
    }
}

/// Top-level applications that are not runs, after the cursor: checkpointed ones (status
/// from the last checkpoint and the lease), tracked-only ones (status from the last
/// tracked step).
fn apps(
    conn: &Connection,
    index: &Mutex<AppsIndex>,
    query: &ListQuery,
    has_runs: bool,
    after_at: i64,
    after_id: &str,
    fetch: i64,
) -> Result<Vec<Listed>, OpError> {
    let mut index = index.lock().unwrap_or_else(|p| p.into_inner());
    index.refresh(conn, has_runs)?;
    let mut out = Vec::new();
    let now = now_us();
    for (created, app_id, stored) in &index.entries {
        if out.len() as i64 >= fetch {
            break;
        }
        if *created > after_at
            || (*created == after_at && (after_id.is_empty() || app_id.as_str() >= after_id))
        {
            continue;
        }
        // Deleted since it was read, or not top-level after all: left out.
        let found: Option<(String, i64)> = match stored {
            Stored::Checkpointed(rowid) => conn
                .prepare_cached(
                    "SELECT CASE WHEN EXISTS (SELECT 1 FROM burr_leases l WHERE l.partition_key = a.partition_key \
                            AND l.app_id = a.app_id AND l.expires_at_us > ?2) THEN 'running' \
                       ELSE coalesce((SELECT c.status FROM burr_checkpoints c WHERE c.app = a.id \
                            ORDER BY c.sequence_id DESC, c.attempt DESC LIMIT 1), 'created') END, \
                     coalesce((SELECT max(c.created_at_us) FROM burr_checkpoints c WHERE c.app = a.id), \
                            a.created_at_us) \
                     FROM burr_apps a WHERE a.id = ?1",
                )?
                .query_row((rowid, now), |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?,
            Stored::Tracked(rowid) => conn
                .prepare_cached(
                    "SELECT coalesce((SELECT coalesce(s.status, 'running') FROM burr_tracker_steps s \
                       WHERE s.app = t.id ORDER BY s.sequence_id DESC, s.attempt DESC LIMIT 1), 'created'), \
                     t.updated_at_us FROM burr_tracker_apps t WHERE t.id = ?1",
                )?
                .query_row([rowid], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?,
        };
        let Some((status, updated_at_us)) = found else {
            continue;
        };
        if query.status.as_ref().is_some_and(|s| *s != status) {
            continue;
        }
        out.push(Listed {
            id: app_id.clone(),
            source: "app".to_owned(),
            kind: None,
            status,
            priority: None,
            flow: None,
            attempt: None,
            created_at_us: *created,
            started_at_us: None,
            finished_at_us: None,
            updated_at_us,
            progress: None,
            error: None,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::Cursor;

    #[test]
    fn cursors_round_trip_and_bad_ones_are_refused() {
        let cursor = Cursor {
            at_us: 17,
            id: "meeting:7/3/x".into(),
        };
        assert_eq!(Cursor::parse(&cursor.encode()), Some(cursor));
        assert_eq!(Cursor::parse("x:1"), None);
        assert_eq!(Cursor::parse("12"), None);
    }

    #[cfg(not(feature = "postgres"))]
    #[test]
    fn a_postgres_url_without_the_feature_says_so_without_the_password() {
        let error = super::Catalog::open("postgres://burr:secret@db.internal/burr").unwrap_err();
        let message = error.to_string();
        assert!(message.contains("`postgres` feature"), "{message}");
        assert!(!message.contains("secret"), "{message}");
    }
}
