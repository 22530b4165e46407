//! Reading and writing rows on PostgreSQL: runs, events, schedules.

use serde_json::Value;
use tokio_postgres::Row;

use super::{Conn, OpResult};
use crate::error::QueueError;
use crate::events::{EventKind, RunEvent};
use crate::run::{ForkSource, Run, RunCode, RunStatus};
use crate::schedule::{Schedule, ScheduleSpec};

/// The columns of a run, in the order [`run`] reads them (the SQLite queue's).
pub(crate) const RUN_COLUMNS: &str = "id, seq, kind, kind_version, queue, inputs, priority, flow, \
    flow_started_at_us, not_before_us, idempotency_key, concurrency_key, concurrency_limit, \
    status, attempt, max_attempts, lease_holder, lease_expires_at_us, heartbeat_at_us, \
    cancel_requested, submitted_at_us, started_at_us, finished_at_us, updated_at_us, error, \
    result, fork_run_id, fork_sequence_id, code_version, fingerprint";

/// How many columns [`RUN_COLUMNS`] names: a statement's own columns come after them.
pub(crate) const RUN_COLUMN_COUNT: usize = 30;

/// A run from a row of [`RUN_COLUMNS`]; a row that cannot be read is
/// [`QueueError::CorruptRun`] naming the column.
pub(crate) fn run(row: &Row) -> Result<Run, QueueError> {
    let run_id: String = row.try_get(0).unwrap_or_else(|_| "?".to_owned());
    let corrupt = |column: &str, problem: String| QueueError::CorruptRun {
        run_id: run_id.clone(),
        problem: format!("column `{column}`: {problem}"),
    };
    macro_rules! col {
        ($index:expr, $name:expr) => {
            row.try_get($index)
                .map_err(|e| corrupt($name, e.to_string()))?
        };
    }
    let json = |column: &str, text: Option<String>| -> Result<Option<Value>, QueueError> {
        text.map(|t| serde_json::from_str(&t).map_err(|e| corrupt(column, e.to_string())))
            .transpose()
    };
    let count = |column: &str, value: i64| {
        u32::try_from(value).map_err(|_| corrupt(column, format!("{value} is out of range")))
    };
    let status: String = col!(13, "status");
    let status = RunStatus::parse(&status)
        .ok_or_else(|| corrupt("status", format!("unknown status `{status}`")))?;
    let inputs: String = col!(5, "inputs");
    let error = json("error", col!(24, "error"))?
        .map(|v| {
            serde_json::from_value::<Vec<String>>(v).map_err(|e| corrupt("error", e.to_string()))
        })
        .transpose()?;
    let limit: Option<i64> = col!(12, "concurrency_limit");
    let fork_run: Option<String> = col!(26, "fork_run_id");
    let fork_seq: Option<i64> = col!(27, "fork_sequence_id");
    let fork = match (fork_run, fork_seq) {
        (Some(run_id), Some(seq)) => Some(ForkSource {
            run_id,
            sequence_id: u64::try_from(seq)
                .map_err(|_| corrupt("fork_sequence_id", format!("{seq} is negative")))?,
        }),
        _ => None,
    };
    Ok(Run {
        seq: col!(1, "seq"),
        kind: col!(2, "kind"),
        kind_version: count("kind_version", col!(3, "kind_version"))?,
        queue: col!(4, "queue"),
        inputs: json("inputs", Some(inputs))?.unwrap_or(Value::Null),
        priority: col!(6, "priority"),
        flow: col!(7, "flow"),
        flow_started_at_us: col!(8, "flow_started_at_us"),
        not_before_us: col!(9, "not_before_us"),
        idempotency_key: col!(10, "idempotency_key"),
        concurrency_key: col!(11, "concurrency_key"),
        concurrency_limit: limit.map(|l| count("concurrency_limit", l)).transpose()?,
        status,
        attempt: count("attempt", col!(14, "attempt"))?,
        max_attempts: count("max_attempts", col!(15, "max_attempts"))?,
        lease_holder: col!(16, "lease_holder"),
        lease_expires_at_us: col!(17, "lease_expires_at_us"),
        heartbeat_at_us: col!(18, "heartbeat_at_us"),
        cancel_requested: col!(19, "cancel_requested"),
        submitted_at_us: col!(20, "submitted_at_us"),
        started_at_us: col!(21, "started_at_us"),
        finished_at_us: col!(22, "finished_at_us"),
        updated_at_us: col!(23, "updated_at_us"),
        error,
        result: json("result", col!(25, "result"))?,
        fork,
        code: {
            let version: Option<String> = col!(28, "code_version");
            let fingerprint: Option<String> = col!(29, "fingerprint");
            fingerprint.map(|fingerprint| RunCode {
                version,
                fingerprint,
            })
        },
        id: run_id,
    })
}

/// The runs of `sql` (selecting [`RUN_COLUMNS`]), each read or its error.
pub(super) async fn runs(
    conn: &Conn,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> OpResult<Vec<Result<Run, QueueError>>> {
    let statement = conn.prepare_cached(sql).await?;
    Ok(conn
        .query(&statement, params)
        .await?
        .iter()
        .map(run)
        .collect())
}

/// The statement of [`insert_events`].
pub(super) const INSERT_EVENTS: &str = "INSERT INTO burr_run_events (run_id, at_us, kind, data) \
     SELECT r, $2, k, d FROM unnest($1::text[], $3::text[], $4::text[]) \
         WITH ORDINALITY AS e(r, k, d, n) ORDER BY n \
     RETURNING id";

/// Insert events (one statement), in order; they are broadcast after the commit.
pub(super) async fn insert_events(
    conn: &Conn,
    at_us: i64,
    events: Vec<(String, EventKind)>,
) -> OpResult<Vec<RunEvent>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let mut run_ids = Vec::with_capacity(events.len());
    let mut kinds = Vec::with_capacity(events.len());
    let mut data = Vec::with_capacity(events.len());
    for (run_id, kind) in &events {
        run_ids.push(run_id.as_str());
        kinds.push(kind.name());
        data.push(serde_json::to_string(kind).unwrap_or_else(|_| "{}".to_owned()));
    }
    let statement = conn.prepare_cached(INSERT_EVENTS).await?;
    let mut ids: Vec<i64> = conn
        .query(&statement, &[&run_ids, &at_us, &kinds, &data])
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    // Ids are drawn in insertion order: ascending is the order given.
    ids.sort_unstable();
    Ok(ids
        .into_iter()
        .zip(events)
        .map(|(id, (run_id, kind))| RunEvent {
            id,
            run_id,
            at_us,
            kind,
        })
        .collect())
}

/// An event from `id, run_id, at_us, data`; an unreadable one is skipped (`None`).
pub(super) fn event(row: &Row) -> OpResult<Option<RunEvent>> {
    let data: String = row.try_get(3)?;
    let Ok(kind) = serde_json::from_str::<EventKind>(&data) else {
        return Ok(None);
    };
    Ok(Some(RunEvent {
        id: row.try_get(0)?,
        run_id: row.try_get(1)?,
        at_us: row.try_get(2)?,
        kind,
    }))
}

/// A schedule from `name, spec, run, next_due_us, last_fired_us`.
pub(super) fn schedule(row: &Row) -> Result<Schedule, QueueError> {
    let name: String = row.try_get(0).unwrap_or_default();
    let bad = |problem: String| QueueError::BadSchedule {
        name: name.clone(),
        problem: format!("corrupt row: {problem}"),
    };
    let spec: String = row.try_get(1).map_err(|e| bad(e.to_string()))?;
    let run: String = row.try_get(2).map_err(|e| bad(e.to_string()))?;
    Ok(Schedule {
        spec: serde_json::from_str::<ScheduleSpec>(&spec).map_err(|e| bad(e.to_string()))?,
        run: serde_json::from_str(&run).map_err(|e| bad(e.to_string()))?,
        next_due_us: row.try_get(3).map_err(|e| bad(e.to_string()))?,
        last_fired_us: row.try_get(4).map_err(|e| bad(e.to_string()))?,
        name: name.clone(),
    })
}
