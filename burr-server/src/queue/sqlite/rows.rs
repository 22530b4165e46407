//! Reading and writing rows: runs, events, schedules.

use rusqlite::types::ValueRef;
use rusqlite::{Connection, Row};
use serde_json::Value;

use crate::error::QueueError;
use crate::events::{EventKind, RunEvent};
use crate::run::{ForkSource, Run, RunCode, RunStatus};
use crate::schedule::{Schedule, ScheduleSpec};

/// The columns of a run, in the order [`run`] reads them, as a literal (for `concat!`:
/// statements built at compile time, not formatted at every call).
macro_rules! run_columns {
    () => {
        "id, seq, kind, kind_version, queue, inputs, priority, flow, \
         flow_started_at_us, not_before_us, idempotency_key, concurrency_key, concurrency_limit, \
         status, attempt, max_attempts, lease_holder, lease_expires_at_us, heartbeat_at_us, \
         cancel_requested, submitted_at_us, started_at_us, finished_at_us, updated_at_us, error, \
         result, fork_run_id, fork_sequence_id, code_version, fingerprint"
    };
}
pub(crate) use run_columns;

/// The columns of a run, in the order [`run`] reads them.
pub(crate) const RUN_COLUMNS: &str = run_columns!();

/// A run from a row of [`RUN_COLUMNS`]; a row that cannot be read is
/// [`QueueError::CorruptRun`] naming the column.
pub(crate) fn run(row: &Row<'_>) -> Result<Run, QueueError> {
    let run_id = match row.get_ref(0) {
        Ok(ValueRef::Text(text)) => String::from_utf8_lossy(text).into_owned(),
        Ok(other) => format!("{other:?}"),
        Err(_) => "?".to_owned(),
    };
    let corrupt = |column: &str, problem: String| QueueError::CorruptRun {
        run_id: run_id.clone(),
        problem: format!("column `{column}`: {problem}"),
    };
    macro_rules! col {
        ($index:expr, $name:expr) => {
            row.get($index).map_err(|e| corrupt($name, e.to_string()))?
        };
    }
    let json = |column: &str, text: Option<String>| -> Result<Option<Value>, QueueError> {
        text.map(|t| serde_json::from_str(&t).map_err(|e| corrupt(column, e.to_string())))
            .transpose()
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
    let count = |column: &str, value: i64| {
        u32::try_from(value).map_err(|_| corrupt(column, format!("{value} is out of range")))
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
        concurrency_limit: col!(12, "concurrency_limit"),
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
        fork: {
            let fork_run: Option<String> = col!(26, "fork_run_id");
            let fork_seq: Option<i64> = col!(27, "fork_sequence_id");
            match (fork_run, fork_seq) {
                (Some(run_id), Some(seq)) => Some(ForkSource {
                    run_id,
                    sequence_id: u64::try_from(seq)
                        .map_err(|_| corrupt("fork_sequence_id", format!("{seq} is negative")))?,
                }),
                _ => None,
            }
        },
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

/// Runs from a query over [`RUN_COLUMNS`].
pub(crate) fn runs(
    stmt: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
) -> Result<Vec<Result<Run, QueueError>>, rusqlite::Error> {
    let mut rows = stmt.query(params)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(run(row));
    }
    Ok(out)
}

/// Insert an event; it is broadcast after the commit.
pub(super) fn insert_event(
    tx: &Connection,
    run_id: &str,
    at_us: i64,
    kind: EventKind,
) -> Result<RunEvent, rusqlite::Error> {
    let data = serde_json::to_string(&kind).unwrap_or_else(|_| "{}".to_owned());
    let id = tx
        .prepare_cached(
            "INSERT INTO burr_run_events (run_id, at_us, kind, data) VALUES (?1, ?2, ?3, ?4) RETURNING id",
        )?
        .query_row((run_id, at_us, kind.name(), data), |r| r.get(0))?;
    Ok(RunEvent {
        id,
        run_id: run_id.to_owned(),
        at_us,
        kind,
    })
}

/// An event from `id, run_id, at_us, data`; an unreadable one is skipped by the caller.
pub(crate) fn event(row: &Row<'_>) -> rusqlite::Result<Option<RunEvent>> {
    let data: String = row.get(3)?;
    serde_json::from_str::<EventKind>(&data)
        .ok()
        .map(|kind| -> rusqlite::Result<RunEvent> {
            Ok(RunEvent {
                id: row.get(0)?,
                run_id: row.get(1)?,
                at_us: row.get(2)?,
                kind,
            })
        })
        .transpose()
}

/// A schedule from `name, spec, run, next_due_us, last_fired_us`.
pub(super) fn schedule(row: &Row<'_>) -> Result<Schedule, QueueError> {
    let name: String = row.get(0).unwrap_or_default();
    let bad = |problem: String| QueueError::BadSchedule {
        name: name.clone(),
        problem: format!("corrupt row: {problem}"),
    };
    let spec: String = row.get(1).map_err(|e| bad(e.to_string()))?;
    let run: String = row.get(2).map_err(|e| bad(e.to_string()))?;
    Ok(Schedule {
        spec: serde_json::from_str::<ScheduleSpec>(&spec).map_err(|e| bad(e.to_string()))?,
        run: serde_json::from_str(&run).map_err(|e| bad(e.to_string()))?,
        next_due_us: row.get(3).map_err(|e| bad(e.to_string()))?,
        last_fired_us: row.get(4).map_err(|e| bad(e.to_string()))?,
        name: name.clone(),
    })
}
