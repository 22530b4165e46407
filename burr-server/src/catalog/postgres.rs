//! The catalog of a PostgreSQL database (feature `postgres`): its runs through the run
//! queue (the same rows and the same visibility rule for events as its workers), the
//! listing's order and cursor, and its top-level applications, by queries of their own;
//! the applications' pages through burr-tracker's [`PgSource`].

use std::sync::{Arc, Mutex};

use burr_core::persistence::PersistenceError;
use burr_tracker::inspect::PgSource;
use tokio::sync::OnceCell;
use tokio_postgres::{Client, NoTls};

use super::{ListQuery, Listed, Page, Progress};
use crate::error::QueueError;
use crate::events::{EventKind, RunEvent};
use crate::queue::postgres::rows::{self, RUN_COLUMNS};
use crate::queue::postgres::{schema, Database};
use crate::queue::{PgRunQueue, RunQueue};
use crate::run::{now_us, Backlog, Run};

/// A PostgreSQL database, read by the HTTP API.
pub(crate) struct PgCatalog {
    /// The URL as given (with its password: connections use it).
    url: String,
    /// The URL without its password.
    pub(crate) name: String,
    /// The applications' pages.
    pub(crate) source: PgSource,
    /// The run queue: the server's own, or one connected on first use.
    queue: OnceCell<Arc<dyn RunQueue>>,
    /// A connection for the listings (connected on first use, again when lost).
    client: Mutex<Option<Arc<Client>>>,
    /// Set once the tables were found this build's version.
    current: OnceCell<()>,
}

impl PgCatalog {
    /// Connect to `url` (the applications' reader; the rest on first use).
    pub(crate) fn open(url: &str) -> Result<PgCatalog, QueueError> {
        let source = PgSource::connect(url)?;
        Ok(PgCatalog {
            url: url.to_owned(),
            name: source.name().display().to_string(),
            source,
            queue: OnceCell::new(),
            client: Mutex::new(None),
            current: OnceCell::new(),
        })
    }

    /// Read runs through `queue` (the server's, rather than a connection of its own).
    pub(crate) fn use_queue(&self, queue: Arc<dyn RunQueue>) {
        let _ = self.queue.set(queue);
    }

    fn failed(&self, operation: &'static str, source: tokio_postgres::Error) -> QueueError {
        QueueError::Persistence(PersistenceError::Database {
            database: self.name.clone(),
            operation,
            source: Box::new(source),
        })
    }

    async fn queue(&self) -> Result<&Arc<dyn RunQueue>, QueueError> {
        self.queue
            .get_or_try_init(|| async {
                // Connecting a queue migrates older tables: a write this reader never
                // makes. It checks their versions first, reading only.
                self.current(&*self.client().await?).await?;
                let queue = PgRunQueue::connect(&self.url).await?;
                Ok::<_, QueueError>(Arc::new(queue) as Arc<dyn RunQueue>)
            })
            .await
    }

    /// Check once, by reading only, that the run queue's and checkpoints' tables are
    /// this build's: older ones are [`QueueError::SchemaOutdated`], never migrated.
    async fn current(&self, client: &Client) -> Result<(), QueueError> {
        self.current
            .get_or_try_init(|| async {
                let db = Database::named(self.name.clone());
                schema::check_current(client, &db).await
            })
            .await
            .map(|_| ())
    }

    async fn client(&self) -> Result<Arc<Client>, QueueError> {
        let held = self
            .client
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(client) = held.filter(|c| !c.is_closed()) {
            return Ok(client);
        }
        let (client, connection) = self
            .url
            .parse::<tokio_postgres::Config>()
            .map_err(|e| self.failed("parse the URL", e))?
            .connect(NoTls)
            .await
            .map_err(|e| self.failed("connect", e))?;
        let name = self.name.clone();
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(database = %name, %error, "a catalog connection ended");
            }
        });
        let client = Arc::new(client);
        *self.client.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::clone(&client));
        Ok(client)
    }

    /// Which of `names` are tables of the database.
    async fn tables(&self, client: &Client, names: &[&str]) -> Result<Vec<bool>, QueueError> {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let row = client
            .query_one(
                "SELECT array_agg(to_regclass(n) IS NOT NULL ORDER BY i) \
                 FROM unnest($1::text[]) WITH ORDINALITY AS t(n, i)",
                &[&names],
            )
            .await
            .map_err(|e| self.failed("look for the tables", e))?;
        Ok(row.get(0))
    }

    async fn has_runs(&self) -> Result<bool, QueueError> {
        let client = self.client().await?;
        Ok(self.tables(&client, &["burr_runs"]).await?[0])
    }

    /// The run `run_id`, `None` when there is none.
    pub(crate) async fn run(&self, run_id: &str) -> Result<Option<Run>, QueueError> {
        if !self.has_runs().await? {
            return Ok(None);
        }
        match self.queue().await?.get(run_id).await {
            Ok(run) => Ok(Some(run)),
            Err(QueueError::UnknownRun { .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The queue's backlog (empty without a queue).
    pub(crate) async fn backlog(&self) -> Result<Backlog, QueueError> {
        if !self.has_runs().await? {
            return Ok(Backlog::default());
        }
        self.queue().await?.backlog().await
    }

    /// Run events after `after` (of `run_id` only, when given).
    pub(crate) async fn events_after(
        &self,
        after: i64,
        run_id: Option<String>,
        limit: u32,
    ) -> Result<Vec<RunEvent>, QueueError> {
        if !self.has_runs().await? {
            return Ok(Vec::new());
        }
        self.queue()
            .await?
            .events(after, run_id.as_deref(), limit)
            .await
    }

    /// The id of the last run event (0: none).
    pub(crate) async fn last_event_id(&self) -> Result<i64, QueueError> {
        if !self.has_runs().await? {
            return Ok(0);
        }
        self.queue().await?.last_event_id().await
    }

    /// A number that changes whenever something is written to the database: the
    /// position of its write-ahead log (the replayed one on a replica).
    pub(crate) async fn version(&self) -> Result<i64, QueueError> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT ((CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() \
                 ELSE pg_current_wal_lsn() END) - '0/0'::pg_lsn)::bigint",
                &[],
            )
            .await
            .map_err(|e| self.failed("read the write-ahead log position", e))?;
        Ok(row.get::<_, Option<i64>>(0).unwrap_or_default())
    }

    /// A page of runs and top-level applications, newest first (as
    /// [`Catalog::list`](super::Catalog::list) on a file).
    pub(crate) async fn list(&self, query: ListQuery) -> Result<Page, QueueError> {
        let limit = query.limit.unwrap_or(50).clamp(1, super::MAX_PAGE);
        let fetch = i64::from(limit) + 1;
        let (after_at, after_id) = match &query.cursor {
            Some(c) => (c.at_us, c.id.clone()),
            None => (i64::MAX, String::new()),
        };
        let client = self.client().await?;
        let found = self
            .tables(
                &client,
                &[
                    "burr_runs",
                    "burr_apps",
                    "burr_tracker_apps",
                    "burr_run_events",
                ],
            )
            .await?;
        let (has_runs, has_apps, has_tracked, has_events) =
            (found[0], found[1], found[2], found[3]);
        let mut entries: Vec<Listed> = Vec::new();
        if has_runs {
            self.current(&client).await?;
            let rows = client
                .query(
                    &format!(
                        "SELECT {RUN_COLUMNS} FROM burr_runs \
                         WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR kind = $2) \
                         AND ($3::text IS NULL OR flow = $3) \
                         AND (submitted_at_us < $4 OR (submitted_at_us = $4 AND ($5 = '' OR id < $5 COLLATE \"C\"))) \
                         ORDER BY submitted_at_us DESC, id COLLATE \"C\" DESC LIMIT $6"
                    ),
                    &[
                        &query.status,
                        &query.kind,
                        &query.flow,
                        &after_at,
                        &after_id,
                        &fetch,
                    ],
                )
                .await
                .map_err(|e| self.failed("list runs", e))?;
            for row in rows {
                let run = match rows::run(&row) {
                    Ok(run) => run,
                    // Unreadable (the error names the run and the column).
                    Err(error) => {
                        tracing::warn!(%error, "a run is left out of the listing");
                        continue;
                    }
                };
                let progress = if has_events {
                    self.progress(&client, &run.id).await?
                } else {
                    None
                };
                entries.push(Listed::run(run, progress));
            }
        }
        if query.kind.is_none() && query.flow.is_none() {
            let apps = self
                .apps(
                    &client,
                    [has_runs, has_apps, has_tracked],
                    &query,
                    (after_at, &after_id),
                    fetch,
                )
                .await?;
            entries.extend(apps);
        }
        Ok(super::page(entries, limit))
    }

    /// The latest child progress of a run.
    async fn progress(
        &self,
        client: &Client,
        run_id: &str,
    ) -> Result<Option<Progress>, QueueError> {
        let data: Option<String> = client
            .query_opt(
                "SELECT data FROM burr_run_events WHERE run_id = $1 AND kind = 'child_progress' \
                 ORDER BY id DESC LIMIT 1",
                &[&run_id],
            )
            .await
            .map_err(|e| self.failed("read a run's progress", e))?
            .map(|row| row.get(0));
        Ok(data
            .and_then(|d| serde_json::from_str::<EventKind>(&d).ok())
            .and_then(|kind| match kind {
                EventKind::ChildProgress { done, total } => Some(Progress { done, total }),
                _ => None,
            }))
    }

    /// Top-level applications that are not runs, after the cursor, with their status:
    /// checkpointed ones from their last checkpoint and lease, tracked-only ones from
    /// their last tracked step.
    async fn apps(
        &self,
        client: &Client,
        [has_runs, has_apps, has_tracked]: [bool; 3],
        query: &ListQuery,
        (after_at, after_id): (i64, &str),
        fetch: i64,
    ) -> Result<Vec<Listed>, QueueError> {
        let not_a_run = |alias: &str| {
            if has_runs {
                format!("AND NOT EXISTS (SELECT 1 FROM burr_runs r WHERE r.id = {alias}.app_id)")
            } else {
                String::new()
            }
        };
        let mut parts = Vec::new();
        if has_apps {
            parts.push(format!(
                "SELECT a.app_id, a.created_at_us, \
                   CASE WHEN EXISTS (SELECT 1 FROM burr_leases l WHERE l.partition_key = a.partition_key \
                        AND l.app_id = a.app_id AND l.expires_at_us > $1) THEN 'running' \
                   ELSE coalesce((SELECT c.status FROM burr_checkpoints c WHERE c.app = a.id \
                        ORDER BY c.sequence_id DESC, c.attempt DESC LIMIT 1), 'created') END AS status, \
                   coalesce((SELECT max(c.created_at_us) FROM burr_checkpoints c WHERE c.app = a.id), \
                        a.created_at_us) AS updated \
                 FROM burr_apps a WHERE a.spawning_parent IS NULL {}",
                not_a_run("a")
            ));
        }
        if has_tracked {
            let not_checkpointed = if has_apps {
                "AND NOT EXISTS (SELECT 1 FROM burr_apps p WHERE p.app_id = t.app_id \
                 AND p.partition_key = t.partition_key)"
            } else {
                ""
            };
            parts.push(format!(
                "SELECT t.app_id, t.created_at_us, \
                   coalesce((SELECT coalesce(s.status, 'running') FROM burr_tracker_steps s \
                       WHERE s.app = t.id ORDER BY s.sequence_id DESC, s.attempt DESC LIMIT 1), 'created'), \
                   t.updated_at_us \
                 FROM burr_tracker_apps t WHERE t.spawning_parent IS NULL {not_checkpointed} {}",
                not_a_run("t")
            ));
        }
        if parts.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT app_id, created_at_us, status, updated FROM ({}) AS x(app_id, created_at_us, status, updated) \
             WHERE $1::bigint IS NOT NULL AND ($2::text IS NULL OR status = $2) \
             AND (created_at_us < $3 OR (created_at_us = $3 AND ($4 = '' OR app_id < $4 COLLATE \"C\"))) \
             ORDER BY created_at_us DESC, app_id COLLATE \"C\" DESC LIMIT $5",
            parts.join(" UNION ALL ")
        );
        let rows = client
            .query(
                &sql,
                &[&now_us(), &query.status, &after_at, &after_id, &fetch],
            )
            .await
            .map_err(|e| self.failed("list applications", e))?;
        Ok(rows
            .iter()
            .map(|row| Listed {
                id: row.get(0),
                source: "app".to_owned(),
                kind: None,
                status: row.get(2),
                priority: None,
                flow: None,
                attempt: None,
                created_at_us: row.get(1),
                started_at_us: None,
                finished_at_us: None,
                updated_at_us: row.get(3),
                progress: None,
                error: None,
            })
            .collect())
    }
}
