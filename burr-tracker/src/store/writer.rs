//! The writer thread: it owns the tracker's connection and writes the queued events in
//! batches, one short transaction each.
//!
//! Events are turned into rows (serialized) before the transaction starts, so the write
//! lock — shared with the checkpoints' writer when both use one file — is held only for
//! the inserts. A batch commits when [`COMMIT_INTERVAL`] has passed since its first event,
//! when it reaches [`MAX_BATCH`] events, on [`Message::Flush`], and when the tracker is
//! dropped.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use burr_core::ids::Identifiers;

use burr_core::state::StateDelta;
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{Map, Value};

use super::event::{Event, EventKind, Message, Within};
use crate::time::micros;

/// How long events wait before they are committed (unless flushed). Short, so that each
/// transaction is short: when the checkpoints share the file, the persister waits for the
/// tracker's write lock (SQLite's busy wait sleeps at least 1 ms), and many short
/// transactions cost it less than few long ones.
pub const COMMIT_INTERVAL: Duration = Duration::from_millis(10);

/// The most events one transaction writes.
pub const MAX_BATCH: usize = 20_000;

/// Where a [`Writer`]'s batches go: one transaction of rows each. The SQLite file
/// ([`SqliteSink`]) or, with the `postgres` feature, a PostgreSQL database
/// (`store::postgres::PgSink`).
pub(crate) trait RowSink: Send {
    /// Write `rows` in one transaction, all or none. `apps` caches the row ids of the
    /// applications seen (to fill in and to use); the caller empties it on a failure.
    fn write(
        &mut self,
        rows: &[Row],
        apps: &mut HashMap<Identifiers, i64>,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>>;
}

/// The tracker's tables in a SQLite file.
pub(crate) struct SqliteSink {
    pub(crate) conn: Connection,
}

/// Writes the tracker's rows.
pub(crate) struct Writer {
    pub(crate) sink: Box<dyn RowSink>,
    /// The database (a file, or a URL without its password), for messages.
    pub(crate) path: PathBuf,
    /// Row ids of the applications seen.
    pub(crate) apps: HashMap<Identifiers, i64>,
    /// Per application, the (sequence id, attempt) of its latest step start: events within
    /// a step carry only its sequence id.
    pub(crate) current: HashMap<Identifiers, (u64, u32)>,
    /// The first failure since the last flush.
    pub(crate) failure: Option<String>,
}

/// One row (or upsert) to write, serialized.
pub(crate) enum Row {
    App {
        ids: Identifiers,
        at_us: i64,
        graph: String,
        fork_parent: Option<String>,
        spawning_parent: Option<String>,
        snapshot_seq: i64,
        state: String,
    },
    StepStart {
        ids: Identifiers,
        seq: i64,
        attempt: u32,
        action: String,
        at_us: i64,
        inputs: String,
        /// The step's end, when it came in the same batch.
        end: Option<Ended>,
    },
    StepEnd {
        ids: Identifiers,
        seq: i64,
        attempt: u32,
        action: String,
        started_us: i64,
        end: Ended,
    },
    Within {
        ids: Identifiers,
        seq: i64,
        attempt: u32,
        kind: &'static str,
        at_us: i64,
        span_id: Option<i64>,
        parent_span_id: Option<i64>,
        name: Option<String>,
        value: Option<String>,
    },
}

impl Row {
    pub(crate) fn ids(&self) -> &Identifiers {
        match self {
            Row::App { ids, .. }
            | Row::StepStart { ids, .. }
            | Row::StepEnd { ids, .. }
            | Row::Within { ids, .. } => ids,
        }
    }

    pub(crate) fn at_us(&self) -> i64 {
        match self {
            Row::App { at_us, .. } | Row::Within { at_us, .. } => *at_us,
            Row::StepStart { at_us, end, .. } => end.as_ref().map_or(*at_us, |e| e.at_us),
            Row::StepEnd { end, .. } => end.at_us,
        }
    }
}

/// The end of a step, serialized.
pub(crate) struct Ended {
    pub(crate) status: &'static str,
    pub(crate) at_us: i64,
    pub(crate) result: Option<String>,
    pub(crate) error: Option<String>,
    pub(crate) delta: String,
}

/// A sequence id as stored (SQLite integers are signed).
fn seq_column(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

pub(crate) fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

/// A delta as `{"updated": {key: value}, "deleted": [key]}`.
pub(crate) fn delta_json(delta: &StateDelta) -> String {
    let updated: Map<String, Value> = delta
        .updated
        .iter()
        .map(|(k, v)| (k.to_string(), Value::clone(v)))
        .collect();
    let deleted: Vec<&str> = delta.deleted.iter().map(|k| &**k).collect();
    json(&serde_json::json!({ "updated": updated, "deleted": deleted }))
}

impl Writer {
    /// Write what arrives on `queue` until every sender is gone.
    pub(crate) fn run(mut self, queue: Receiver<Message>) {
        let mut batch: Vec<Event> = Vec::new();
        let mut deadline: Option<Instant> = None;
        loop {
            let message = match deadline {
                None => match queue.recv() {
                    Ok(message) => message,
                    Err(_) => break,
                },
                Some(at) => {
                    match queue.recv_timeout(at.saturating_duration_since(Instant::now())) {
                        Ok(message) => message,
                        Err(RecvTimeoutError::Timeout) => {
                            self.write(std::mem::take(&mut batch));
                            deadline = None;
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
            };
            match message {
                Message::Event(event) => {
                    batch.push(event);
                    deadline.get_or_insert_with(|| Instant::now() + COMMIT_INTERVAL);
                    if batch.len() >= MAX_BATCH {
                        self.write(std::mem::take(&mut batch));
                        deadline = None;
                    }
                }
                Message::Flush(reply) => {
                    self.write(std::mem::take(&mut batch));
                    deadline = None;
                    let _ = reply.send(self.failure.take());
                }
            }
        }
        self.write(batch);
    }

    /// Serialize and write a batch in one transaction. A failure is logged and kept for
    /// the next flush; the batch is lost.
    fn write(&mut self, batch: Vec<Event>) {
        if batch.is_empty() {
            return;
        }
        let mut rows: Vec<Row> = Vec::with_capacity(batch.len());
        // A step's start and end in one batch become one row.
        let mut started: HashMap<(Identifiers, i64, u32), usize> = HashMap::new();
        for event in batch {
            match self.row(event) {
                Row::StepEnd {
                    ids,
                    seq,
                    attempt,
                    action,
                    started_us,
                    end,
                } => match started.remove(&(ids.clone(), seq, attempt)) {
                    Some(index) => {
                        if let Some(Row::StepStart { end: slot, .. }) = rows.get_mut(index) {
                            *slot = Some(end);
                        }
                    }
                    None => rows.push(Row::StepEnd {
                        ids,
                        seq,
                        attempt,
                        action,
                        started_us,
                        end,
                    }),
                },
                row => {
                    if let Row::StepStart {
                        ids, seq, attempt, ..
                    } = &row
                    {
                        started.insert((ids.clone(), *seq, *attempt), rows.len());
                    }
                    rows.push(row);
                }
            }
        }
        if let Err(error) = self.sink.write(&rows, &mut self.apps) {
            self.apps.clear();
            let message = format!("{} events lost: {error}", rows.len());
            tracing::error!(path = %self.path.display(), %message, "the tracker could not write");
            self.failure.get_or_insert(message);
        }
    }

    fn row(&mut self, event: Event) -> Row {
        let Event { ids, at, kind } = event;
        let at_us = micros(at);
        match kind {
            EventKind::Created(created) => Row::App {
                ids,
                at_us,
                graph: json(&created.graph),
                fork_parent: created.fork_parent.as_ref().map(json),
                spawning_parent: created.spawning_parent.as_ref().map(json),
                snapshot_seq: created.sequence_id.map_or(-1, seq_column),
                state: json(&created.state.to_json()),
            },
            EventKind::StepStart {
                sequence_id,
                attempt,
                action,
                inputs,
            } => {
                self.current.insert(ids.clone(), (sequence_id, attempt));
                Row::StepStart {
                    ids,
                    seq: seq_column(sequence_id),
                    attempt,
                    action,
                    at_us,
                    inputs: json(&inputs),
                    end: None,
                }
            }
            EventKind::StepEnd(end) => Row::StepEnd {
                ids,
                seq: seq_column(end.sequence_id),
                attempt: end.attempt,
                action: end.action,
                started_us: micros(end.started_at),
                end: Ended {
                    status: end.status.as_str(),
                    at_us,
                    result: end.result.as_ref().map(json),
                    error: end.error.as_ref().map(json),
                    delta: delta_json(&end.delta),
                },
            },
            EventKind::Within { sequence_id, event } => {
                let attempt = match self.current.get(&ids) {
                    Some(&(seq, attempt)) if seq == sequence_id => attempt,
                    _ => 1,
                };
                let id = |span: u64| i64::try_from(span).unwrap_or(i64::MAX);
                let kind = event.kind();
                let (span_id, parent_span_id, name, value) = match event {
                    Within::SpanStart {
                        span_id,
                        parent_span_id,
                        name,
                    } => (Some(id(span_id)), parent_span_id.map(id), Some(name), None),
                    Within::SpanEnd { span_id } => (Some(id(span_id)), None, None, None),
                    Within::Attribute {
                        span_id,
                        key,
                        value,
                    } => (span_id.map(id), None, Some(key), Some(json(&value))),
                    Within::StreamStart | Within::StreamFirstItem => (None, None, None, None),
                    Within::StreamEnd { items, dropped } => (
                        None,
                        None,
                        None,
                        Some(json(
                            &serde_json::json!({ "items": items, "dropped": dropped }),
                        )),
                    ),
                };
                Row::Within {
                    ids,
                    seq: seq_column(sequence_id),
                    attempt,
                    kind,
                    at_us,
                    span_id,
                    parent_span_id,
                    name,
                    value,
                }
            }
        }
    }
}

impl RowSink for SqliteSink {
    fn write(
        &mut self,
        rows: &[Row],
        apps: &mut HashMap<Identifiers, i64>,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        Ok(self.transaction(rows, apps)?)
    }
}

impl SqliteSink {
    fn transaction(
        &mut self,
        rows: &[Row],
        apps: &mut HashMap<Identifiers, i64>,
    ) -> rusqlite::Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
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
                        .prepare_cached(
                            "INSERT INTO burr_tracker_apps \
                             (partition_key, app_id, created_at_us, updated_at_us, graph, fork_parent, spawning_parent) \
                             VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6) \
                             ON CONFLICT (partition_key, app_id) DO UPDATE SET graph = excluded.graph, \
                             fork_parent = coalesce(excluded.fork_parent, fork_parent), \
                             spawning_parent = coalesce(excluded.spawning_parent, spawning_parent) \
                             RETURNING id",
                        )?
                        .query_row(
                            params![
                                ids.partition_key().unwrap_or(""),
                                &*ids.app_id,
                                at_us,
                                graph,
                                fork_parent,
                                spawning_parent
                            ],
                            |r| r.get(0),
                        )?;
                    tx.prepare_cached(
                        "INSERT OR REPLACE INTO burr_tracker_snapshots (app, sequence_id, at_us, state) \
                         VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![app, snapshot_seq, at_us, state])?;
                    apps.insert(ids.clone(), app);
                    app
                }
                other => {
                    let app = Self::app_row(&tx, apps, other.ids(), other.at_us())?;
                    Self::write_step_row(&tx, app, other)?;
                    app
                }
            };
            let latest = touched.entry(app).or_insert(i64::MIN);
            *latest = (*latest).max(row.at_us());
        }
        for (app, at_us) in touched {
            tx.prepare_cached(
                "UPDATE burr_tracker_apps SET updated_at_us = max(updated_at_us, ?2) WHERE id = ?1",
            )?
            .execute(params![app, at_us])?;
        }
        tx.commit()
    }

    /// The row id of an application, recording it (without a graph) if its creation was
    /// not seen.
    fn app_row(
        tx: &Connection,
        apps: &mut HashMap<Identifiers, i64>,
        ids: &Identifiers,
        at_us: i64,
    ) -> rusqlite::Result<i64> {
        if let Some(&app) = apps.get(ids) {
            return Ok(app);
        }
        let pk = ids.partition_key().unwrap_or("");
        let found: Option<i64> = tx
            .prepare_cached(
                "SELECT id FROM burr_tracker_apps WHERE partition_key = ?1 AND app_id = ?2",
            )?
            .query_row(params![pk, &*ids.app_id], |r| r.get(0))
            .optional()?;
        let app = match found {
            Some(app) => app,
            None => tx
                .prepare_cached(
                    "INSERT INTO burr_tracker_apps \
                     (partition_key, app_id, created_at_us, updated_at_us, graph) \
                     VALUES (?1, ?2, ?3, ?3, ?4) RETURNING id",
                )?
                .query_row(
                    params![
                        pk,
                        &*ids.app_id,
                        at_us,
                        json(&crate::GraphRecord::default())
                    ],
                    |r| r.get(0),
                )?,
        };
        apps.insert(ids.clone(), app);
        Ok(app)
    }

    fn write_step_row(tx: &Connection, app: i64, row: &Row) -> rusqlite::Result<()> {
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
                Self::keep_interrupted(tx, app, *seq, *attempt)?;
                match end {
                None => tx
                    .prepare_cached(
                        "INSERT INTO burr_tracker_steps (app, sequence_id, attempt, action, started_at_us, inputs) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                         ON CONFLICT (app, sequence_id, attempt) DO UPDATE SET action = excluded.action, \
                         started_at_us = excluded.started_at_us, inputs = excluded.inputs",
                    )?
                    .execute(params![app, seq, attempt, action, at_us, inputs])
                    .map(drop),
                Some(end) => Self::write_end(tx, app, *seq, *attempt, action, *at_us, inputs, end),
                }
            }
            Row::StepEnd {
                seq,
                attempt,
                action,
                started_us,
                end,
                ..
            } => Self::write_end(tx, app, *seq, *attempt, action, *started_us, "{}", end),
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
                .prepare_cached(
                    "INSERT INTO burr_tracker_events \
                     (app, sequence_id, attempt, kind, at_us, span_id, parent_span_id, name, value) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?
                .execute(params![app, seq, attempt, kind, at_us, span_id, parent_span_id, name, value])
                .map(drop),
        }
    }

    /// A step's whole row (an end whose start was written earlier updates it).
    /// A step starts again at a (sequence id, attempt) whose earlier run never ended: that
    /// run's process died before the step's checkpoint. Keep it, as an `interrupted_run`
    /// event, so that the history still shows it once the new run replaces the row.
    fn keep_interrupted(tx: &Connection, app: i64, seq: i64, attempt: u32) -> rusqlite::Result<()> {
        tx.prepare_cached(
            "INSERT INTO burr_tracker_events (app, sequence_id, attempt, kind, at_us, name, value) \
             SELECT app, sequence_id, attempt, 'interrupted_run', started_at_us, action, inputs \
             FROM burr_tracker_steps \
             WHERE app = ?1 AND sequence_id = ?2 AND attempt = ?3 AND ended_at_us IS NULL",
        )?
        .execute(params![app, seq, attempt])
        .map(drop)
    }

    #[allow(clippy::too_many_arguments)]
    #[allow(clippy::too_many_arguments)]
    fn write_end(
        tx: &Connection,
        app: i64,
        seq: i64,
        attempt: u32,
        action: &str,
        started_us: i64,
        inputs: &str,
        end: &Ended,
    ) -> rusqlite::Result<()> {
        tx.prepare_cached(
            "INSERT INTO burr_tracker_steps \
             (app, sequence_id, attempt, action, started_at_us, ended_at_us, status, inputs, result, error, delta) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
             ON CONFLICT (app, sequence_id, attempt) DO UPDATE SET ended_at_us = excluded.ended_at_us, \
             status = excluded.status, result = excluded.result, error = excluded.error, delta = excluded.delta",
        )?
        .execute(params![
            app,
            seq,
            attempt,
            action,
            started_us,
            end.at_us,
            end.status,
            inputs,
            end.result,
            end.error,
            end.delta
        ])
        .map(drop)
    }
}
