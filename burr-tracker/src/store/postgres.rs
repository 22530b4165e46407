//! The tracker's tables in a PostgreSQL database (feature `postgres`): their schema,
//! created under an advisory lock, and [`PgSink`], the writer's backend there.
//!
//! The tables and columns are those of the SQLite store (see [`schema`](super::schema)),
//! with `bigint` integers, identity row ids and names in the `"C"` collation.

use std::collections::HashMap;
use std::path::PathBuf;

use burr_core::ids::Identifiers;
use tokio::runtime::Runtime;
use tokio_postgres::{Client, Config, NoTls};

use super::redact;
use super::schema::SCHEMA_VERSION;
use super::writer::{json, Ended, Row, RowSink};
use crate::TrackerError;

/// The key of the advisory lock the tracker's migrations hold: `BURR` `TRAK`.
const MIGRATION_LOCK: i64 = 0x4255_5252_5452_414b;

const V1: &str = r#"
CREATE TABLE IF NOT EXISTS burr_tracker_apps (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    partition_key   text COLLATE "C" NOT NULL,
    app_id          text COLLATE "C" NOT NULL,
    created_at_us   bigint NOT NULL,
    updated_at_us   bigint NOT NULL,
    graph           text NOT NULL,
    fork_parent     text,
    spawning_parent text,
    UNIQUE (partition_key, app_id)
);

CREATE TABLE IF NOT EXISTS burr_tracker_snapshots (
    app         bigint NOT NULL,
    sequence_id bigint NOT NULL,
    at_us       bigint NOT NULL,
    state       text NOT NULL,
    PRIMARY KEY (app, sequence_id)
);

CREATE TABLE IF NOT EXISTS burr_tracker_steps (
    app           bigint NOT NULL,
    sequence_id   bigint NOT NULL,
    attempt       bigint NOT NULL,
    action        text NOT NULL,
    started_at_us bigint NOT NULL,
    ended_at_us   bigint,
    status        text,
    inputs        text NOT NULL,
    result        text,
    error         text,
    delta         text,
    PRIMARY KEY (app, sequence_id, attempt)
);

CREATE TABLE IF NOT EXISTS burr_tracker_events (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app            bigint NOT NULL,
    sequence_id    bigint NOT NULL,
    attempt        bigint NOT NULL,
    kind           text NOT NULL,
    at_us          bigint NOT NULL,
    span_id        bigint,
    parent_span_id bigint,
    name           text,
    value          text
);

CREATE INDEX IF NOT EXISTS burr_tracker_events_step
    ON burr_tracker_events (app, sequence_id, attempt);
"#;

/// A PostgreSQL database: its connection settings and its name as people read it (the
/// URL without the password).
#[derive(Clone)]
pub(crate) struct Database {
    pub(crate) config: Config,
    pub(crate) name: PathBuf,
}

impl Database {
    /// Parse `url`.
    pub(crate) fn parse(url: &str) -> Result<Database, TrackerError> {
        let config: Config = url.parse().map_err(|source| TrackerError::Postgres {
            database: redact(url).into(),
            operation: "parse the URL",
            source,
        })?;
        Ok(Database {
            config,
            name: redact(url).into(),
        })
    }

    /// The error of `operation`, naming the database.
    pub(crate) fn error(
        &self,
        operation: &'static str,
        source: tokio_postgres::Error,
    ) -> TrackerError {
        TrackerError::Postgres {
            database: self.name.clone(),
            operation,
            source,
        }
    }

    /// One connection, driven by a task of `runtime`.
    pub(crate) fn connect(&self, runtime: &Runtime) -> Result<Client, TrackerError> {
        runtime.block_on(self.connect_here())
    }

    /// One connection, driven by a task of the current runtime.
    pub(crate) async fn connect_here(&self) -> Result<Client, TrackerError> {
        let (client, connection) = self
            .config
            .connect(NoTls)
            .await
            .map_err(|e| self.error("connect", e))?;
        let name = self.name.clone();
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(database = %name.display(), %error, "a tracker connection ended");
            }
        });
        Ok(client)
    }
}

/// Create (or check) the tracker's tables, under an advisory lock so that processes
/// starting at once take turns. A database of a newer tracker schema is refused.
pub(crate) fn prepare(
    client: &Client,
    runtime: &Runtime,
    database: &Database,
) -> Result<(), TrackerError> {
    runtime.block_on(async {
        let failed = |e| database.error("create the tracker's tables", e);
        client.batch_execute("BEGIN").await.map_err(failed)?;
        let outcome = async {
            client
                .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .await
                .map_err(failed)?;
            client
                .batch_execute(
                    "CREATE TABLE IF NOT EXISTS burr_tracker_meta \
                     (key text PRIMARY KEY, value text NOT NULL)",
                )
                .await
                .map_err(failed)?;
            let found = client
                .query_opt(
                    "SELECT value FROM burr_tracker_meta WHERE key = 'schema_version'",
                    &[],
                )
                .await
                .map_err(failed)?
                .map(|row| row.get::<_, String>(0));
            if let Some(text) = found {
                let found: i64 = text.parse().map_err(|_| TrackerError::Corrupt {
                    path: database.name.clone(),
                    app_id: String::new(),
                    reason: format!("the tracker schema version `{text}` is not a number"),
                })?;
                super::schema::check_version(found, &database.name)?;
            }
            client.batch_execute(V1).await.map_err(failed)?;
            client
                .execute(
                    "INSERT INTO burr_tracker_meta (key, value) VALUES ('schema_version', $1) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    &[&SCHEMA_VERSION.to_string()],
                )
                .await
                .map_err(failed)?;
            client.batch_execute("COMMIT").await.map_err(failed)
        }
        .await;
        if outcome.is_err() {
            let _ = client.batch_execute("ROLLBACK").await;
        }
        outcome
    })
}

/// The writer's backend on PostgreSQL: its own connection (reconnected after a lost
/// one), driven by a single-threaded runtime on the writer's thread.
pub(crate) struct PgSink {
    pub(crate) runtime: Runtime,
    pub(crate) client: Client,
    pub(crate) database: Database,
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

impl RowSink for PgSink {
    fn write(&mut self, rows: &[Row], apps: &mut HashMap<Identifiers, i64>) -> Result<(), Failure> {
        if self.client.is_closed() {
            self.client = self.database.connect(&self.runtime)?;
        }
        let client = &self.client;
        self.runtime.block_on(async {
            client.batch_execute("BEGIN").await?;
            let outcome = transaction(client, rows, apps).await;
            match outcome {
                Ok(()) => Ok(client.batch_execute("COMMIT").await?),
                Err(error) => {
                    let _ = client.batch_execute("ROLLBACK").await;
                    Err(error.into())
                }
            }
        })
    }
}

async fn transaction(
    tx: &Client,
    rows: &[Row],
    apps: &mut HashMap<Identifiers, i64>,
) -> Result<(), tokio_postgres::Error> {
    let mut touched: HashMap<i64, i64> = HashMap::new();
    for row in rows {
        let app = match row {
            Row::App {
                ids,
                at_us,
                graph,
                fork_parent,
                spawning_parent,
                snapshot_seq,
                state,
            } => {
                let app: i64 = tx
                    .query_one(
                        "INSERT INTO burr_tracker_apps \
                         (partition_key, app_id, created_at_us, updated_at_us, graph, fork_parent, spawning_parent) \
                         VALUES ($1, $2, $3, $3, $4, $5, $6) \
                         ON CONFLICT (partition_key, app_id) DO UPDATE SET graph = excluded.graph, \
                         fork_parent = coalesce(excluded.fork_parent, burr_tracker_apps.fork_parent), \
                         spawning_parent = coalesce(excluded.spawning_parent, burr_tracker_apps.spawning_parent) \
                         RETURNING id",
                        &[
                            &ids.partition_key().unwrap_or(""),
                            &&*ids.app_id,
                            at_us,
                            graph,
                            fork_parent,
                            spawning_parent,
                        ],
                    )
                    .await?
                    .get(0);
                tx.execute(
                    "INSERT INTO burr_tracker_snapshots (app, sequence_id, at_us, state) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (app, sequence_id) \
                     DO UPDATE SET at_us = excluded.at_us, state = excluded.state",
                    &[&app, snapshot_seq, at_us, state],
                )
                .await?;
                apps.insert(ids.clone(), app);
                app
            }
            other => {
                let app = app_row(tx, apps, other.ids(), other.at_us()).await?;
                write_step_row(tx, app, other).await?;
                app
            }
        };
        let latest = touched.entry(app).or_insert(i64::MIN);
        *latest = (*latest).max(row.at_us());
    }
    for (app, at_us) in touched {
        tx.execute(
            "UPDATE burr_tracker_apps SET updated_at_us = greatest(updated_at_us, $2) WHERE id = $1",
            &[&app, &at_us],
        )
        .await?;
    }
    Ok(())
}

/// The row id of an application, recording it (without a graph) if its creation was not
/// seen.
async fn app_row(
    tx: &Client,
    apps: &mut HashMap<Identifiers, i64>,
    ids: &Identifiers,
    at_us: i64,
) -> Result<i64, tokio_postgres::Error> {
    if let Some(&app) = apps.get(ids) {
        return Ok(app);
    }
    let pk = ids.partition_key().unwrap_or("");
    let app: i64 = tx
        .query_one(
            "WITH made AS ( \
                 INSERT INTO burr_tracker_apps \
                 (partition_key, app_id, created_at_us, updated_at_us, graph) \
                 VALUES ($1, $2, $3, $3, $4) \
                 ON CONFLICT (partition_key, app_id) DO NOTHING RETURNING id) \
             SELECT id FROM made UNION ALL \
             SELECT id FROM burr_tracker_apps WHERE partition_key = $1 AND app_id = $2 \
             LIMIT 1",
            &[
                &pk,
                &&*ids.app_id,
                &at_us,
                &json(&crate::GraphRecord::default()),
            ],
        )
        .await?
        .get(0);
    apps.insert(ids.clone(), app);
    Ok(app)
}

async fn write_step_row(tx: &Client, app: i64, row: &Row) -> Result<(), tokio_postgres::Error> {
    match row {
        Row::App { .. } => Ok(()),
        Row::StepStart {
            seq,
            attempt,
            action,
            at_us,
            inputs,
            end,
            ..
        } => {
            let attempt = i64::from(*attempt);
            // A step started again whose earlier run never ended: keep that run as an
            // `interrupted_run` event (as the SQLite store does).
            tx.execute(
                "INSERT INTO burr_tracker_events (app, sequence_id, attempt, kind, at_us, name, value) \
                 SELECT app, sequence_id, attempt, 'interrupted_run', started_at_us, action, inputs \
                 FROM burr_tracker_steps \
                 WHERE app = $1 AND sequence_id = $2 AND attempt = $3 AND ended_at_us IS NULL",
                &[&app, seq, &attempt],
            )
            .await?;
            match end {
                None => tx
                    .execute(
                        "INSERT INTO burr_tracker_steps (app, sequence_id, attempt, action, started_at_us, inputs) \
                         VALUES ($1, $2, $3, $4, $5, $6) \
                         ON CONFLICT (app, sequence_id, attempt) DO UPDATE SET action = excluded.action, \
                         started_at_us = excluded.started_at_us, inputs = excluded.inputs",
                        &[&app, seq, &attempt, action, at_us, inputs],
                    )
                    .await
                    .map(drop),
                Some(end) => write_end(tx, app, *seq, attempt, action, *at_us, inputs, end).await,
            }
        }
        Row::StepEnd {
            seq,
            attempt,
            action,
            started_us,
            end,
            ..
        } => {
            write_end(
                tx,
                app,
                *seq,
                i64::from(*attempt),
                action,
                *started_us,
                "{}",
                end,
            )
            .await
        }
        Row::Within {
            seq,
            attempt,
            kind,
            at_us,
            span_id,
            parent_span_id,
            name,
            value,
            ..
        } => tx
            .execute(
                "INSERT INTO burr_tracker_events \
                 (app, sequence_id, attempt, kind, at_us, span_id, parent_span_id, name, value) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[
                    &app,
                    seq,
                    &i64::from(*attempt),
                    kind,
                    at_us,
                    span_id,
                    parent_span_id,
                    name,
                    value,
                ],
            )
            .await
            .map(drop),
    }
}

/// A step's whole row (an end whose start was written earlier updates it).
#[allow(clippy::too_many_arguments)]
async fn write_end(
    tx: &Client,
    app: i64,
    seq: i64,
    attempt: i64,
    action: &str,
    started_us: i64,
    inputs: &str,
    end: &Ended,
) -> Result<(), tokio_postgres::Error> {
    tx.execute(
        "INSERT INTO burr_tracker_steps \
         (app, sequence_id, attempt, action, started_at_us, ended_at_us, status, inputs, result, error, delta) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (app, sequence_id, attempt) DO UPDATE SET ended_at_us = excluded.ended_at_us, \
         status = excluded.status, result = excluded.result, error = excluded.error, delta = excluded.delta",
        &[
            &app,
            &seq,
            &attempt,
            &action,
            &started_us,
            &end.at_us,
            &end.status,
            &inputs,
            &end.result,
            &end.error,
            &end.delta,
        ],
    )
    .await
    .map(drop)
}
