//! The queue's operations, each inside one write transaction (or one read). Each returns
//! the events it recorded, broadcast once the transaction commits.

use std::collections::HashMap;

use burr_core::error::BuilderError;
use rusqlite::{params, Connection};

use super::rows::{self, insert_event, run_columns, RUN_COLUMNS};
use crate::error::QueueError;
use crate::events::{EventKind, RunEvent};
use crate::run::{
    Backlog, BacklogRow, Claim, Explanation, Finish, HeartbeatReport, NewRun, Run, RunCode,
    RunStatus, Submitted, WorkerInfo,
};
use crate::schedule::{Schedule, ScheduleSpec};

/// What a write did: its value and the events it recorded.
pub(super) type Written<T> = (T, Vec<RunEvent>);

/// A database error of the queue, before the file name is attached.
#[derive(Debug)]
pub(crate) enum OpError {
    Sql(rusqlite::Error),
    Queue(QueueError),
}

impl From<rusqlite::Error> for OpError {
    fn from(e: rusqlite::Error) -> Self {
        OpError::Sql(e)
    }
}

impl From<QueueError> for OpError {
    fn from(e: QueueError) -> Self {
        OpError::Queue(e)
    }
}

pub(crate) type OpResult<T> = Result<T, OpError>;

fn select_run(tx: &Connection, run_id: &str) -> OpResult<Option<Run>> {
    let mut stmt = tx.prepare_cached(concat!(
        "SELECT ",
        run_columns!(),
        " FROM burr_runs WHERE id = ?1"
    ))?;
    let found = rows::runs(&mut stmt, [run_id])?.into_iter().next();
    Ok(found.transpose()?)
}

/// The run `run_id`, or [`QueueError::UnknownRun`].
pub(super) fn get(conn: &rusqlite::Connection, run_id: &str) -> OpResult<Run> {
    select_run(conn, run_id)?.ok_or_else(|| {
        OpError::Queue(QueueError::UnknownRun {
            run_id: run_id.to_owned(),
        })
    })
}

/// The run `sql` (which ends `RETURNING` [`run_columns!`]) changed, if any.
fn update_returning(
    tx: &Connection,
    sql: &'static str,
    params: impl rusqlite::Params,
) -> OpResult<Option<Run>> {
    let mut stmt = tx.prepare_cached(sql)?;
    Ok(rows::runs(&mut stmt, params)?
        .into_iter()
        .next()
        .transpose()?)
}

/// Enqueue `new` (see [`RunQueue::submit`](crate::queue::RunQueue::submit)).
pub(super) fn submit(tx: &Connection, new: &NewRun, now: i64) -> OpResult<Written<Submitted>> {
    let id = match &new.id {
        Some(id) => {
            BuilderError::check_identifier("run id", id).map_err(|e| QueueError::Invalid {
                what: "run id",
                value: id.clone(),
                problem: e.to_string(),
            })?;
            id.clone()
        }
        None => uuid::Uuid::now_v7().to_string(),
    };
    if let Some(key) = &new.idempotency_key {
        let mut stmt = tx.prepare_cached(concat!(
            "SELECT ",
            run_columns!(),
            " FROM burr_runs WHERE kind = ?1 AND idempotency_key = ?2"
        ))?;
        if let Some(existing) = rows::runs(&mut stmt, (&new.kind, key))?.into_iter().next() {
            return Ok((
                Submitted {
                    run: existing?,
                    created: false,
                },
                Vec::new(),
            ));
        }
    }
    let flow = new.flow.clone().unwrap_or_else(|| id.clone());
    let flow_started: Option<i64> = match &new.flow {
        Some(flow) => tx
            .prepare_cached("SELECT min(flow_started_at_us) FROM burr_runs WHERE flow = ?1")?
            .query_row([flow], |r| r.get(0))?,
        None => None,
    };
    let (key, limit) = match &new.concurrency {
        Some(c) => (Some(c.key.as_str()), Some(c.limit)),
        None => (None, None),
    };
    let inserted = update_returning(
        tx,
        concat!("INSERT INTO burr_runs (id, kind, kind_version, queue, inputs, priority, flow, \
             flow_started_at_us, not_before_us, idempotency_key, concurrency_key, \
             concurrency_limit, status, attempt, max_attempts, submitted_at_us, updated_at_us, \
             fork_run_id, fork_sequence_id) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 'queued', 0, ?13, ?14, ?14, ?15, ?16) \
         ON CONFLICT DO NOTHING", " RETURNING ", run_columns!()),
        params![
            id,
            new.kind,
            new.kind_version,
            new.queue,
            new.inputs.to_string(),
            new.priority,
            flow,
            flow_started.unwrap_or(now),
            new.not_before_us.unwrap_or(now),
            new.idempotency_key,
            key,
            limit,
            new.max_attempts.max(1),
            now,
            new.fork.as_ref().map(|f| f.run_id.as_str()),
            new.fork
                .as_ref()
                .map(|f| i64::try_from(f.sequence_id).unwrap_or(i64::MAX)),
        ],
    )?;
    let Some(run) = inserted else {
        return Err(QueueError::RunExists { run_id: id }.into());
    };
    // A run's first attempt starts its application afresh: an id whose application
    // already has checkpoints (in the same file) would fail then; say so now.
    if new.id.is_some() {
        let app_exists: bool = tx
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM burr_apps WHERE partition_key = '' AND app_id = ?1)",
            )?
            .query_row([&id], |r| r.get(0))?;
        if app_exists {
            return Err(QueueError::AppExists { run_id: id }.into());
        }
    }
    let event = insert_event(
        tx,
        &run.id,
        now,
        EventKind::Queued {
            kind: run.kind.clone(),
            priority: run.priority,
        },
    )?;
    Ok((Submitted { run, created: true }, vec![event]))
}

/// JSON list of `(kind@version)` for `json_each`.
fn kind_list(kinds: &[(String, u32)]) -> String {
    serde_json::to_string(
        &kinds
            .iter()
            .map(|(k, v)| format!("{k}@{v}"))
            .collect::<Vec<_>>(),
    )
    .unwrap_or_else(|_| "[]".to_owned())
}

/// Claim runs (see [`RunQueue::claim`](crate::queue::RunQueue::claim)).
pub(super) fn claim(tx: &Connection, claim: &Claim, now: i64) -> OpResult<Written<Vec<Run>>> {
    let mut claimed = Vec::new();
    let mut events = Vec::new();
    if claim.limit == 0 {
        return Ok((claimed, events));
    }
    let queues = serde_json::to_string(&claim.queues).unwrap_or_else(|_| "[]".to_owned());
    let kinds = kind_list(&claim.kinds);
    let expires = now.saturating_add(claim.lease_ttl_us);
    let limit = i64::try_from(claim.limit).unwrap_or(i64::MAX);

    // Runs whose worker stopped renewing its lease: taken over with the next attempt.
    let expired: Vec<i64> = tx
        .prepare_cached(
            "SELECT seq FROM burr_runs WHERE status = 'running' AND lease_expires_at_us < ?1 \
               AND queue IN (SELECT value FROM json_each(?2)) \
               AND (kind || '@' || kind_version) IN (SELECT value FROM json_each(?3)) \
             ORDER BY priority DESC, flow_started_at_us, seq LIMIT ?4",
        )?
        .query_map(params![now, queues, kinds, limit], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for seq in expired {
        let (run_id, attempt, holder, cancel, max): (String, u32, String, bool, u32) = tx
            .prepare_cached(
                "SELECT id, attempt, coalesce(lease_holder, ''), cancel_requested, max_attempts \
                 FROM burr_runs WHERE seq = ?1",
            )?
            .query_row([seq], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?;
        events.push(insert_event(
            tx,
            &run_id,
            now,
            EventKind::AttemptFailed {
                attempt,
                error: format!("worker `{holder}` stopped renewing its lease"),
            },
        )?);
        let ended = if cancel {
            Some((RunStatus::Cancelled, None))
        } else if attempt >= max {
            Some((
                RunStatus::Failed,
                Some(vec![format!(
                    "run abandoned after {attempt} attempts (at most {max}): the last worker, `{holder}`, stopped renewing its lease"
                )]),
            ))
        } else {
            None
        };
        if let Some((status, error)) = ended {
            let error = error.map(|e| serde_json::to_string(&e).unwrap_or_default());
            tx.prepare_cached(
                "UPDATE burr_runs SET status = ?2, finished_at_us = ?3, updated_at_us = ?3, \
                     lease_holder = NULL, lease_expires_at_us = NULL, error = ?4 WHERE seq = ?1",
            )?
            .execute(params![seq, status.as_str(), now, error])?;
            events.push(insert_event(
                tx,
                &run_id,
                now,
                EventKind::Finished { status },
            )?);
            continue;
        }
        if let Some(run) = take(tx, seq, claim, expires, now, &mut events)? {
            claimed.push(run);
        }
    }

    // Queued runs, in the claim order, within their concurrency limits.
    let want = claim.limit.saturating_sub(claimed.len());
    if want == 0 {
        return Ok((claimed, events));
    }
    let mut candidates: Vec<Candidate> = Vec::new();
    for queue in &claim.queues {
        let mut stmt = tx.prepare_cached(
            "SELECT priority, flow_started_at_us, seq, concurrency_key, concurrency_limit \
             FROM burr_runs \
             WHERE status = 'queued' AND queue = ?1 AND not_before_us <= ?2 \
               AND (kind || '@' || kind_version) IN (SELECT value FROM json_each(?3)) \
             ORDER BY priority DESC, flow_started_at_us, seq LIMIT ?4",
        )?;
        let found = stmt.query_map(
            params![
                queue,
                now,
                kinds,
                i64::try_from(want * 2 + 16).unwrap_or(i64::MAX)
            ],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )?;
        for candidate in found {
            candidates.push(candidate?);
        }
    }
    candidates.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut running_with: HashMap<String, u32> = HashMap::new();
    for (_, _, seq, key, limit) in candidates {
        if claimed.len() >= claim.limit {
            break;
        }
        if let (Some(key), Some(limit)) = (&key, limit) {
            let running = match running_with.get(key) {
                Some(n) => *n,
                None => tx
                    .prepare_cached(
                        "SELECT count(*) FROM burr_runs WHERE status = 'running' AND concurrency_key = ?1",
                    )?
                    .query_row([key], |r| r.get(0))?,
            };
            if running >= limit {
                running_with.insert(key.clone(), running);
                continue;
            }
            running_with.insert(key.clone(), running + 1);
        }
        if let Some(run) = take(tx, seq, claim, expires, now, &mut events)? {
            claimed.push(run);
        }
    }
    Ok((claimed, events))
}

/// A queued run that may be claimed: priority, flow start, seq, concurrency key and limit.
type Candidate = (i32, i64, i64, Option<String>, Option<u32>);

/// Give the run at `seq` to the claiming worker, with the next attempt, and record its
/// `claimed` event. A run whose row cannot be read is left as it is and not claimed
/// (reading it names what is wrong).
fn take(
    tx: &Connection,
    seq: i64,
    claim: &Claim,
    expires: i64,
    now: i64,
    events: &mut Vec<RunEvent>,
) -> OpResult<Option<Run>> {
    // The row is read once, as the update returns it; one that cannot be read is put
    // back as it was.
    // Cached statements: parsing these again costs more than running them.
    let exec = |sql: &str| tx.prepare_cached(sql)?.execute([]).map(drop);
    exec("SAVEPOINT burr_take")?;
    let mut stmt = tx.prepare_cached(concat!(
        "UPDATE burr_runs SET status = 'running', attempt = attempt + 1, lease_holder = ?2, \
             lease_expires_at_us = ?3, heartbeat_at_us = ?4, \
             started_at_us = coalesce(started_at_us, ?4), updated_at_us = ?4 \
         WHERE seq = ?1 RETURNING ",
        run_columns!()
    ))?;
    let taken = rows::runs(&mut stmt, params![seq, claim.worker, expires, now])?
        .into_iter()
        .next();
    let run = match taken {
        Some(Err(error)) => {
            exec("ROLLBACK TO burr_take")?;
            exec("RELEASE burr_take")?;
            tracing::warn!(%error, "a run's row is corrupt: it is not claimed");
            return Ok(None);
        }
        Some(Ok(run)) => run,
        None => {
            exec("RELEASE burr_take")?;
            return Ok(None);
        }
    };
    exec("RELEASE burr_take")?;
    events.push(insert_event(
        tx,
        &run.id,
        now,
        EventKind::Claimed {
            worker: claim.worker.clone(),
            attempt: run.attempt,
        },
    )?);
    Ok(Some(run))
}

/// Why `attempt` of `worker` may not change `run_id` any more.
fn fenced(tx: &Connection, run_id: &str, attempt: u32) -> OpError {
    match select_run(tx, run_id) {
        Ok(None) => QueueError::UnknownRun {
            run_id: run_id.to_owned(),
        }
        .into(),
        Ok(Some(run)) if run.status.is_finished() && run.attempt == attempt => {
            QueueError::AlreadyFinished {
                run_id: run_id.to_owned(),
                status: run.status,
            }
            .into()
        }
        Ok(Some(run)) => QueueError::Fenced {
            run_id: run_id.to_owned(),
            attempt,
            current: run.attempt,
            holder: run.lease_holder,
        }
        .into(),
        Err(e) => e,
    }
}

/// Finish a run (see [`RunQueue::finish`](crate::queue::RunQueue::finish)).
pub(super) fn finish(
    tx: &Connection,
    run_id: &str,
    attempt: u32,
    worker: &str,
    finish: &Finish,
    code: Option<&RunCode>,
    now: i64,
) -> OpResult<Written<Run>> {
    let (status, error, result) = match finish {
        Finish::Succeeded(result) => (RunStatus::Succeeded, None, Some(result.to_string())),
        Finish::Failed(chain) => (
            RunStatus::Failed,
            Some(serde_json::to_string(chain).unwrap_or_default()),
            None,
        ),
        Finish::Cancelled => (RunStatus::Cancelled, None, None),
    };
    let updated = update_returning(
        tx,
        concat!(
            "UPDATE burr_runs SET status = ?4, finished_at_us = ?5, updated_at_us = ?5, \
             lease_holder = NULL, lease_expires_at_us = NULL, error = ?6, result = ?7, \
             code_version = coalesce(?8, code_version), fingerprint = coalesce(?9, fingerprint) \
         WHERE id = ?1 AND status = 'running' AND attempt = ?2 AND lease_holder = ?3",
            " RETURNING ",
            run_columns!()
        ),
        params![
            run_id,
            attempt,
            worker,
            status.as_str(),
            now,
            error,
            result,
            code.and_then(|c| c.version.as_deref()),
            code.map(|c| &c.fingerprint)
        ],
    )?;
    let Some(run) = updated else {
        return Err(fenced(tx, run_id, attempt));
    };
    let mut events = Vec::new();
    if let Finish::Failed(chain) = finish {
        events.push(insert_event(
            tx,
            run_id,
            now,
            EventKind::AttemptFailed {
                attempt,
                error: chain.first().cloned().unwrap_or_default(),
            },
        )?);
    }
    events.push(insert_event(
        tx,
        run_id,
        now,
        EventKind::Finished { status },
    )?);
    Ok((run, events))
}

/// Give a run back (see [`RunQueue::release`](crate::queue::RunQueue::release)).
pub(super) fn release(
    tx: &Connection,
    run_id: &str,
    attempt: u32,
    worker: &str,
    not_before: i64,
    now: i64,
) -> OpResult<Written<()>> {
    let changed = tx
        .prepare_cached(
            "UPDATE burr_runs SET status = 'queued', lease_holder = NULL, lease_expires_at_us = NULL, \
                 not_before_us = ?4, updated_at_us = ?5 \
             WHERE id = ?1 AND status = 'running' AND attempt = ?2 AND lease_holder = ?3",
        )?
        .execute(params![run_id, attempt, worker, not_before, now])?;
    if changed == 0 {
        return Err(fenced(tx, run_id, attempt));
    }
    let event = insert_event(tx, run_id, now, EventKind::Released { attempt })?;
    Ok(((), vec![event]))
}

/// Cancel a run (see [`RunQueue::cancel`](crate::queue::RunQueue::cancel)).
pub(super) fn cancel(tx: &Connection, run_id: &str, now: i64) -> OpResult<Written<Run>> {
    let run = get(tx, run_id)?;
    match run.status {
        RunStatus::Queued => {
            let run = update_returning(
        tx,
        concat!("UPDATE burr_runs SET status = 'cancelled', finished_at_us = ?2, updated_at_us = ?2 \
                 WHERE id = ?1", " RETURNING ", run_columns!()),
                params![run_id, now],
            )?
            .unwrap_or(run);
            let event = insert_event(
                tx,
                run_id,
                now,
                EventKind::Finished {
                    status: RunStatus::Cancelled,
                },
            )?;
            Ok((run, vec![event]))
        }
        RunStatus::Running if run.cancel_requested => Ok((run, Vec::new())),
        RunStatus::Running => {
            let run = update_returning(
                tx,
                concat!(
                    "UPDATE burr_runs SET cancel_requested = 1, updated_at_us = ?2 WHERE id = ?1",
                    " RETURNING ",
                    run_columns!()
                ),
                params![run_id, now],
            )?
            .unwrap_or(run);
            let event = insert_event(tx, run_id, now, EventKind::CancelRequested)?;
            Ok((run, vec![event]))
        }
        status => Err(QueueError::AlreadyFinished {
            run_id: run_id.to_owned(),
            status,
        }
        .into()),
    }
}

/// Renew a worker's leases (see [`RunQueue::heartbeat`](crate::queue::RunQueue::heartbeat)).
pub(super) fn heartbeat(
    tx: &Connection,
    info: &WorkerInfo,
    held: &[(String, u32)],
    ttl: i64,
    now: i64,
) -> OpResult<Written<HeartbeatReport>> {
    tx.prepare_cached(
        "INSERT INTO burr_workers (id, host, pid, queues, concurrency, heartbeat_at_us, machine, pid_started) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
         ON CONFLICT (id) DO UPDATE SET heartbeat_at_us = excluded.heartbeat_at_us",
    )?
    .execute(params![
        info.id,
        info.host,
        info.pid,
        serde_json::to_string(&info.queues).unwrap_or_default(),
        info.concurrency,
        now,
        info.machine,
        info.pid_started
    ])?;
    tx.prepare_cached(
        "UPDATE burr_runs SET lease_expires_at_us = ?2, heartbeat_at_us = ?3 \
         WHERE lease_holder = ?1 AND status = 'running'",
    )?
    .execute(params![info.id, now.saturating_add(ttl), now])?;
    let mut mine: HashMap<String, (u32, bool)> = HashMap::new();
    let mut stmt = tx.prepare_cached(
        "SELECT id, attempt, cancel_requested FROM burr_runs WHERE lease_holder = ?1 AND status = 'running'",
    )?;
    for row in stmt.query_map([&info.id], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))? {
        let (id, value) = row?;
        mine.insert(id, value);
    }
    let mut report = HeartbeatReport::default();
    for (id, attempt) in held {
        match mine.get(id) {
            Some((a, cancel)) if a == attempt => {
                if *cancel {
                    report.cancel.push(id.clone());
                }
            }
            _ => report.lost.push(id.clone()),
        }
    }
    Ok((report, Vec::new()))
}

/// Delete at most `limit` events of finished runs recorded before `before_us`, oldest
/// first; returns how many.
pub(super) fn prune_events(tx: &Connection, before_us: i64, limit: u64) -> OpResult<Written<u64>> {
    let deleted = tx
        .prepare_cached(
            "DELETE FROM burr_run_events WHERE id IN ( \
                 SELECT e.id FROM burr_run_events e JOIN burr_runs r ON r.id = e.run_id \
                 WHERE e.at_us < ?1 AND r.status IN ('succeeded', 'failed', 'cancelled') \
                 ORDER BY e.id LIMIT ?2)",
        )?
        .execute(params![before_us, i64::try_from(limit).unwrap_or(i64::MAX)])?;
    Ok((u64::try_from(deleted).unwrap_or(0), Vec::new()))
}

/// The workers recorded on `machine`: (id, pid, process start time).
pub(super) fn workers_on(
    conn: &Connection,
    machine: &str,
) -> OpResult<Vec<(String, i64, Option<i64>)>> {
    let mut stmt =
        conn.prepare_cached("SELECT id, pid, pid_started FROM burr_workers WHERE machine = ?1")?;
    let rows = stmt.query_map([machine], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Forget the gone workers `ids`: their runs' leases expire now. Returns whether a run
/// was concerned.
pub(super) fn reap(tx: &Connection, ids: &[String], now: i64) -> OpResult<Written<bool>> {
    let mut freed = 0;
    for id in ids {
        freed += tx
            .prepare_cached(
                "UPDATE burr_runs SET lease_expires_at_us = min(lease_expires_at_us, ?2) \
                 WHERE lease_holder = ?1 AND status = 'running'",
            )?
            .execute(params![id, now])?;
        tx.prepare_cached("DELETE FROM burr_workers WHERE id = ?1")?
            .execute([id])?;
    }
    Ok((freed > 0, Vec::new()))
}

/// The backlog (see [`RunQueue::backlog`](crate::queue::RunQueue::backlog)).
pub(crate) fn backlog(conn: &rusqlite::Connection, now: i64) -> OpResult<Backlog> {
    let mut rows_out = Vec::new();
    let mut stmt = conn.prepare_cached(
        "SELECT kind, queue, priority, status, count(*) FROM burr_runs \
         GROUP BY kind, queue, priority, status ORDER BY kind, queue, priority DESC, status",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let status: String = row.get(3)?;
        let Some(status) = RunStatus::parse(&status) else {
            continue;
        };
        rows_out.push(BacklogRow {
            kind: row.get(0)?,
            queue: row.get(1)?,
            priority: row.get(2)?,
            status,
            count: row.get::<_, i64>(4)?.try_into().unwrap_or(0),
        });
    }
    let oldest: Option<i64> = conn
        .prepare_cached(
            "SELECT min(max(submitted_at_us, not_before_us)) FROM burr_runs \
             WHERE status = 'queued' AND not_before_us <= ?1",
        )?
        .query_row([now], |r| r.get(0))?;
    Ok(Backlog {
        rows: rows_out,
        oldest_waiting_us: oldest.map_or(0, |t| now.saturating_sub(t).max(0)),
    })
}

/// Why a run waits (see [`RunQueue::explain`](crate::queue::RunQueue::explain)).
pub(super) fn explain(
    conn: &rusqlite::Connection,
    run_id: &str,
    now: i64,
) -> OpResult<Explanation> {
    let run = get(conn, run_id)?;
    let running_in_queue: i64 = conn
        .prepare_cached("SELECT count(*) FROM burr_runs WHERE status = 'running' AND queue = ?1")?
        .query_row([&run.queue], |r| r.get(0))?;
    let mut worker_slots = 0u64;
    let mut stmt = conn.prepare_cached(
        "SELECT queues, concurrency FROM burr_workers WHERE heartbeat_at_us >= ?1",
    )?;
    let fresh = now.saturating_sub(60_000_000);
    for row in stmt.query_map([fresh], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
    })? {
        let (queues, concurrency) = row?;
        let queues: Vec<String> = serde_json::from_str(&queues).unwrap_or_default();
        if queues.contains(&run.queue) {
            worker_slots += u64::try_from(concurrency).unwrap_or(0);
        }
    }
    let running_with_key = match &run.concurrency_key {
        Some(key) => Some(
            conn.prepare_cached(
                "SELECT count(*) FROM burr_runs WHERE status = 'running' AND concurrency_key = ?1",
            )?
            .query_row([key], |r| r.get::<_, i64>(0))?
            .try_into()
            .unwrap_or(0),
        ),
        None => None,
    };
    let (mut position, mut ahead) = (None, Vec::new());
    if run.status == RunStatus::Queued {
        let ahead_where = "FROM burr_runs WHERE status = 'queued' AND queue = ?1 \
                 AND not_before_us <= ?5 \
                 AND (priority > ?2 OR (priority = ?2 AND (flow_started_at_us < ?3 \
                      OR (flow_started_at_us = ?3 AND seq < ?4))))";
        let p = params![
            run.queue,
            run.priority,
            run.flow_started_at_us,
            run.seq,
            now
        ];
        let count: i64 = conn
            .prepare_cached(&format!("SELECT count(*) {ahead_where}"))?
            .query_row(p, |r| r.get(0))?;
        position = Some(u64::try_from(count).unwrap_or(0));
        let mut stmt = conn.prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} {ahead_where} ORDER BY priority DESC, flow_started_at_us, seq LIMIT 10"
            ))?;
        ahead = rows::runs(&mut stmt, p)?
            .into_iter()
            .filter_map(Result::ok)
            .collect();
    }
    Ok(Explanation::new(
        run,
        position,
        ahead,
        u64::try_from(running_in_queue).unwrap_or(0),
        worker_slots,
        running_with_key,
        now,
    ))
}

/// Add or replace a schedule.
pub(super) fn put_schedule(tx: &Connection, schedule: &Schedule) -> OpResult<Written<()>> {
    tx.prepare_cached(
        "INSERT INTO burr_schedules (name, spec, run, next_due_us, last_fired_us) \
         VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, run = excluded.run, \
             next_due_us = excluded.next_due_us",
    )?
    .execute(params![
        schedule.name,
        serde_json::to_string(&schedule.spec).unwrap_or_default(),
        serde_json::to_string(&schedule.run).unwrap_or_default(),
        schedule.next_due_us,
        schedule.last_fired_us,
    ])?;
    Ok(((), Vec::new()))
}

/// The schedules, by name.
pub(super) fn schedules(conn: &rusqlite::Connection) -> OpResult<Vec<Schedule>> {
    let mut stmt = conn.prepare_cached(
        "SELECT name, spec, run, next_due_us, last_fired_us FROM burr_schedules ORDER BY name",
    )?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(rows::schedule(row)?);
    }
    Ok(out)
}

/// Remove a schedule.
pub(super) fn remove_schedule(tx: &Connection, name: &str) -> OpResult<Written<()>> {
    let removed = tx
        .prepare_cached("DELETE FROM burr_schedules WHERE name = ?1")?
        .execute([name])?;
    if removed == 0 {
        return Err(QueueError::UnknownSchedule {
            name: name.to_owned(),
        }
        .into());
    }
    Ok(((), Vec::new()))
}

/// Fire the due schedules: one run per due time (its idempotency key names the due time,
/// so a second scheduler racing for the same due time gets the same run).
pub(super) fn fire_due(tx: &Connection, now: i64) -> OpResult<Written<Vec<Run>>> {
    let due: Vec<Schedule> = {
        let mut stmt = tx.prepare_cached(
            "SELECT name, spec, run, next_due_us, last_fired_us FROM burr_schedules \
             WHERE next_due_us <= ?1 ORDER BY next_due_us",
        )?;
        let mut rows = stmt.query([now])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(rows::schedule(row)?);
        }
        out
    };
    let mut fired = Vec::new();
    let mut events = Vec::new();
    for schedule in due {
        // An interval keeps its cadence (due + k × interval, the first after now), also
        // when the scheduler fired late or was down; a missed due time fires once.
        let next = match schedule.spec {
            ScheduleSpec::EverySeconds(seconds) if seconds > 0 => {
                let step = i64::try_from(seconds)
                    .unwrap_or(i64::MAX / 2_000_000)
                    .saturating_mul(1_000_000);
                let behind = now.saturating_sub(schedule.next_due_us).max(0);
                schedule
                    .next_due_us
                    .saturating_add((behind / step + 1).saturating_mul(step))
            }
            _ => schedule.spec.next_after(&schedule.name, now)?,
        };
        let moved = tx
            .prepare_cached(
                "UPDATE burr_schedules SET next_due_us = ?2, last_fired_us = ?3 \
                 WHERE name = ?1 AND next_due_us = ?3",
            )?
            .execute(params![schedule.name, next, schedule.next_due_us])?;
        if moved == 0 {
            continue;
        }
        let mut run = schedule.run.clone();
        run.id = None;
        run.idempotency_key = Some(format!(
            "schedule:{}:{}",
            schedule.name, schedule.next_due_us
        ));
        let (submitted, mut recorded) = submit(tx, &run, now)?;
        events.append(&mut recorded);
        if submitted.created {
            fired.push(submitted.run);
        }
    }
    Ok((fired, events))
}

/// Stored events after `after`.
pub(super) fn events(
    conn: &rusqlite::Connection,
    after: i64,
    run_id: Option<&str>,
    limit: u32,
) -> OpResult<Vec<RunEvent>> {
    let mut out = Vec::new();
    let mut push = |row: &rusqlite::Row<'_>| -> rusqlite::Result<()> {
        if let Some(event) = rows::event(row)? {
            out.push(event);
        }
        Ok(())
    };
    match run_id {
        Some(run_id) => {
            let mut stmt = conn.prepare_cached(
                "SELECT id, run_id, at_us, data FROM burr_run_events \
                 WHERE run_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
            )?;
            let mut rows = stmt.query(params![run_id, after, limit])?;
            while let Some(row) = rows.next()? {
                push(row)?;
            }
        }
        None => {
            let mut stmt = conn.prepare_cached(
                "SELECT id, run_id, at_us, data FROM burr_run_events WHERE id > ?1 ORDER BY id LIMIT ?2",
            )?;
            let mut rows = stmt.query(params![after, limit])?;
            while let Some(row) = rows.next()? {
                push(row)?;
            }
        }
    }
    Ok(out)
}

/// Record events that change no run.
pub(super) fn record(
    tx: &Connection,
    events: &[(String, EventKind)],
    now: i64,
) -> OpResult<Written<()>> {
    let mut out = Vec::with_capacity(events.len());
    for (run_id, kind) in events {
        out.push(insert_event(tx, run_id, now, kind.clone())?);
    }
    Ok(((), out))
}

/// Runs by filter, newest first.
pub(super) fn list(
    conn: &rusqlite::Connection,
    filter: &crate::run::RunFilter,
) -> OpResult<Vec<Run>> {
    let mut sql = format!("SELECT {RUN_COLUMNS} FROM burr_runs WHERE 1");
    let mut values: Vec<rusqlite::types::Value> = Vec::new();
    if let Some(status) = filter.status {
        values.push(status.as_str().to_owned().into());
        sql.push_str(&format!(" AND status = ?{}", values.len()));
    }
    if let Some(kind) = &filter.kind {
        values.push(kind.clone().into());
        sql.push_str(&format!(" AND kind = ?{}", values.len()));
    }
    if let Some(flow) = &filter.flow {
        values.push(flow.clone().into());
        sql.push_str(&format!(" AND flow = ?{}", values.len()));
    }
    if let Some(before) = filter.before_seq {
        values.push(before.into());
        sql.push_str(&format!(" AND seq < ?{}", values.len()));
    }
    values.push(i64::from(filter.limit.unwrap_or(100)).into());
    sql.push_str(&format!(" ORDER BY seq DESC LIMIT ?{}", values.len()));
    let mut stmt = conn.prepare_cached(&sql)?;
    let found = rows::runs(&mut stmt, rusqlite::params_from_iter(values))?;
    // One unreadable row does not hide the others: it is left out of the listing (and
    // logged, naming it); `get` gives its error.
    Ok(found
        .into_iter()
        .filter_map(|run| {
            run.map_err(|error| tracing::warn!(%error, "a run is left out of the listing"))
                .ok()
        })
        .collect())
}
