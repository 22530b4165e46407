//! The queue's operations on PostgreSQL, each inside one transaction (or one read),
//! with the SQLite queue's semantics. Each write returns the events it recorded,
//! broadcast once the transaction commits.
//!
//! Where SQLite serializes writers on its file lock, PostgreSQL runs them at once:
//! claims lock the rows they look at with `FOR UPDATE SKIP LOCKED` (two workers never
//! take the same run, nor wait for each other), a concurrency key is counted under a
//! transaction-scoped advisory lock on the key (two claimers never both take its last
//! slot), and a run that changes (finish, release, cancel) is changed by one statement
//! conditioned on its attempt and holder, or read `FOR UPDATE` first.

use std::collections::HashMap;

use burr_core::error::BuilderError;
use tokio_postgres::types::ToSql;

use super::rows::{self, insert_events, RUN_COLUMNS};
use super::{Conn, OpError, OpResult, CHANNEL};
use crate::error::QueueError;
use crate::events::{EventKind, RunEvent};
use crate::run::{
    Backlog, BacklogRow, Claim, Explanation, Finish, HeartbeatReport, NewRun, Run, RunCode,
    RunFilter, RunStatus, Submitted, WorkerInfo,
};
use crate::schedule::{Schedule, ScheduleSpec};

/// What a write did: its value and the events it recorded.
pub(super) type Written<T> = (T, Vec<RunEvent>);

/// Parameters of a statement.
type Params<'a> = [&'a (dyn ToSql + Sync)];

/// The one run of `sql`, if any.
async fn one_run(conn: &Conn, sql: &str, params: &Params<'_>) -> OpResult<Option<Run>> {
    let found = rows::runs(conn, sql, params).await?.into_iter().next();
    Ok(found.transpose()?)
}

async fn select_run(conn: &Conn, run_id: &str, lock: bool) -> OpResult<Option<Run>> {
    let sql = if lock {
        format!("SELECT {RUN_COLUMNS} FROM burr_runs WHERE id = $1 FOR UPDATE")
    } else {
        format!("SELECT {RUN_COLUMNS} FROM burr_runs WHERE id = $1")
    };
    one_run(conn, &sql, &[&run_id]).await
}

fn unknown(run_id: &str) -> OpError {
    OpError::Queue(QueueError::UnknownRun {
        run_id: run_id.to_owned(),
    })
}

/// The run `run_id`, or [`QueueError::UnknownRun`].
pub(super) async fn get(conn: &Conn, run_id: &str) -> OpResult<Run> {
    select_run(conn, run_id, false)
        .await?
        .ok_or_else(|| unknown(run_id))
}

fn u32_param(value: u32) -> i64 {
    i64::from(value)
}

/// Whether `new` can be enqueued by [`submit_alone`]: no run id, idempotency key or
/// flow of the caller's (nothing to look up first).
pub(super) fn plain(new: &NewRun) -> bool {
    new.id.is_none() && new.idempotency_key.is_none() && new.flow.is_none()
}

/// A submission's optional columns: its concurrency key and limit, and the run and
/// sequence id it is forked from.
fn optional_params(new: &NewRun) -> (Option<&str>, Option<i64>, Option<&str>, Option<i64>) {
    let (key, limit) = match &new.concurrency {
        Some(c) => (Some(c.key.as_str()), Some(u32_param(c.limit))),
        None => (None, None),
    };
    let fork = new.fork.as_ref();
    let fork_run = fork.map(|f| f.run_id.as_str());
    let fork_seq = fork.map(|f| i64::try_from(f.sequence_id).unwrap_or(i64::MAX));
    (key, limit, fork_run, fork_seq)
}

/// Enqueue a [`plain`] run with one statement in autocommit mode: the run's row, its
/// `queued` event and the notification, in one round trip and one commit.
pub(super) async fn submit_alone(
    conn: &Conn,
    new: &NewRun,
    now: i64,
    instance: &str,
) -> OpResult<Written<Submitted>> {
    let id = uuid::Uuid::now_v7().to_string();
    let (key, limit, fork_run, fork_seq) = optional_params(new);
    let event = EventKind::Queued {
        kind: new.kind.clone(),
        priority: new.priority,
    };
    let data = serde_json::to_string(&event).unwrap_or_else(|_| "{}".to_owned());
    let statement = conn
        .prepare_cached(&format!(
            "WITH r AS ( \
                 INSERT INTO burr_runs (id, kind, kind_version, queue, inputs, priority, flow, \
                     flow_started_at_us, not_before_us, concurrency_key, concurrency_limit, \
                     status, attempt, max_attempts, submitted_at_us, updated_at_us, \
                     fork_run_id, fork_sequence_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $1, $7, $8, $9, $10, 'queued', 0, $11, $7, $7, \
                     $12, $13) \
                 ON CONFLICT DO NOTHING RETURNING {RUN_COLUMNS}), \
             e AS (INSERT INTO burr_run_events (run_id, at_us, kind, data) \
                 SELECT id, $7, $14, $15 FROM r RETURNING id) \
             SELECT r.*, (SELECT id FROM e), pg_notify('{CHANNEL}', $16) IS NULL FROM r"
        ))
        .await?;
    let row = conn
        .query_opt(
            &statement,
            &[
                &id,
                &new.kind,
                &u32_param(new.kind_version),
                &new.queue,
                &new.inputs.to_string(),
                &new.priority,
                &now,
                &new.not_before_us.unwrap_or(now),
                &key,
                &limit,
                &u32_param(new.max_attempts.max(1)),
                &fork_run,
                &fork_seq,
                &event.name(),
                &data,
                &instance,
            ],
        )
        .await?;
    let Some(row) = row else {
        return Err(QueueError::RunExists { run_id: id }.into());
    };
    let run = rows::run(&row)?;
    let event = RunEvent {
        id: row.try_get(rows::RUN_COLUMN_COUNT)?,
        run_id: run.id.clone(),
        at_us: now,
        kind: event,
    };
    Ok((Submitted { run, created: true }, vec![event]))
}

/// Enqueue `new` (see [`RunQueue::submit`](crate::queue::RunQueue::submit)).
pub(super) async fn submit(conn: &Conn, new: &NewRun, now: i64) -> OpResult<Written<Submitted>> {
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
    let by_key =
        format!("SELECT {RUN_COLUMNS} FROM burr_runs WHERE kind = $1 AND idempotency_key = $2");
    if let Some(key) = &new.idempotency_key {
        if let Some(existing) = one_run(conn, &by_key, &[&new.kind, key]).await? {
            return Ok((
                Submitted {
                    run: existing,
                    created: false,
                },
                Vec::new(),
            ));
        }
    }
    let flow = new.flow.clone().unwrap_or_else(|| id.clone());
    let flow_started: Option<i64> = match &new.flow {
        Some(flow) => {
            let statement = conn
                .prepare_cached("SELECT min(flow_started_at_us) FROM burr_runs WHERE flow = $1")
                .await?;
            conn.query_one(&statement, &[flow]).await?.try_get(0)?
        }
        None => None,
    };
    let (key, limit, fork_run, fork_seq) = optional_params(new);
    let insert = format!(
        "INSERT INTO burr_runs (id, kind, kind_version, queue, inputs, priority, flow, \
             flow_started_at_us, not_before_us, idempotency_key, concurrency_key, \
             concurrency_limit, status, attempt, max_attempts, submitted_at_us, updated_at_us, \
             fork_run_id, fork_sequence_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'queued', 0, $13, $14, $14, $15, $16) \
         ON CONFLICT DO NOTHING RETURNING {RUN_COLUMNS}"
    );
    let inserted = one_run(
        conn,
        &insert,
        &[
            &id,
            &new.kind,
            &u32_param(new.kind_version),
            &new.queue,
            &new.inputs.to_string(),
            &new.priority,
            &flow,
            &flow_started.unwrap_or(now),
            &new.not_before_us.unwrap_or(now),
            &new.idempotency_key,
            &key,
            &limit,
            &u32_param(new.max_attempts.max(1)),
            &now,
            &fork_run,
            &fork_seq,
        ],
    )
    .await?;
    let Some(run) = inserted else {
        // A run with this key committed meanwhile (the insert waited for it): that run.
        if let Some(key) = &new.idempotency_key {
            if let Some(existing) = one_run(conn, &by_key, &[&new.kind, key]).await? {
                return Ok((
                    Submitted {
                        run: existing,
                        created: false,
                    },
                    Vec::new(),
                ));
            }
        }
        return Err(QueueError::RunExists { run_id: id }.into());
    };
    // A run's first attempt starts its application afresh: an id whose application
    // already has checkpoints (in the same database) would fail then; say so now.
    if new.id.is_some() {
        let app_exists: bool = conn
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM burr_apps WHERE partition_key = '' AND app_id = $1)",
                &[&id],
            )
            .await?
            .get(0);
        if app_exists {
            return Err(QueueError::AppExists { run_id: id }.into());
        }
    }
    let events = insert_events(
        conn,
        now,
        vec![(
            run.id.clone(),
            EventKind::Queued {
                kind: run.kind.clone(),
                priority: run.priority,
            },
        )],
    )
    .await?;
    Ok((Submitted { run, created: true }, events))
}

/// `kind@version` of each pair a worker can run.
fn kind_list(kinds: &[(String, u32)]) -> Vec<String> {
    kinds.iter().map(|(k, v)| format!("{k}@{v}")).collect()
}

/// Claim runs (see [`RunQueue::claim`](crate::queue::RunQueue::claim)), and end the
/// transaction: with `notify_commit` (which notifies the other handles and commits)
/// when it changed runs, sent in the same round trip as its last statements, else with
/// `COMMIT`.
///
/// A claim commits without waiting for the disk (`synchronous_commit` off for its
/// transaction alone): what it changed is durable with the next durable commit after
/// it (the write-ahead log is flushed in order), at the latest the run's first
/// checkpoint, its release or its finish, before anything depends on it durably. A
/// crash of the server before then leaves the run as it was before the claim (queued,
/// or running under its expired lease), to be claimed again: the stale attempt is
/// fenced by its holder (the worker's id: another worker's claim names another holder;
/// the same worker, claiming a run it still runs, stops the older attempt) and by its
/// application's lease, whose holder is unique to each lease taken.
pub(super) async fn claim(
    conn: &Conn,
    claim: &Claim,
    now: i64,
    notify_commit: &str,
) -> OpResult<Written<Vec<Run>>> {
    let mut claimed: Vec<Run> = Vec::new();
    let mut events: Vec<(String, EventKind)> = Vec::new();
    if claim.limit == 0 || claim.queues.is_empty() || claim.kinds.is_empty() {
        conn.batch_execute("COMMIT").await?;
        return Ok((claimed, Vec::new()));
    }
    let kinds = kind_list(&claim.kinds);
    let expires = now.saturating_add(claim.lease_ttl_us);
    let limit = i64::try_from(claim.limit).unwrap_or(i64::MAX);

    let ready = format!(
        "SELECT {RUN_COLUMNS} FROM burr_runs \
         WHERE status = 'queued' AND queue = $1 AND not_before_us <= $2 \
           AND (kind || '@' || kind_version) = ANY($3) AND seq <> ALL($4) \
         ORDER BY priority DESC, flow_started_at_us, seq LIMIT $5 FOR UPDATE SKIP LOCKED"
    );
    // Runs whose worker stopped renewing its lease (taken over with the next attempt),
    // and the first look at each queue's queued runs (for as many as the claim wants:
    // fewer are taken when runs are taken over), in one round trip.
    let nothing_seen: Vec<i64> = Vec::new();
    let (expired, first_look) = futures::future::join(
        rows::runs(
            conn,
            &format!(
                "SELECT {RUN_COLUMNS} FROM burr_runs WHERE status = 'running' AND lease_expires_at_us < $1 \
                   AND queue = ANY($2) AND (kind || '@' || kind_version) = ANY($3) \
                 ORDER BY priority DESC, flow_started_at_us, seq LIMIT $4 FOR UPDATE SKIP LOCKED"
            ),
            &[&now, &claim.queues, &kinds, &limit],
        ),
        futures::future::join_all(claim.queues.iter().map(|queue| async {
            rows::runs(conn, &ready, &[queue, &now, &kinds, &nothing_seen, &limit]).await
        })),
    )
    .await;
    let expired = expired?;
    let mut first_look = Some(first_look);
    let mut take: Vec<Run> = Vec::new();
    for run in expired {
        let run = match run {
            Ok(run) => run,
            Err(error) => {
                tracing::warn!(%error, "a run's row is corrupt: it is not taken over");
                continue;
            }
        };
        let holder = run.lease_holder.clone().unwrap_or_default();
        let (attempt, max) = (run.attempt, run.max_attempts);
        events.push((
            run.id.clone(),
            EventKind::AttemptFailed {
                attempt,
                error: format!("worker `{holder}` stopped renewing its lease"),
            },
        ));
        let ended = if run.cancel_requested {
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
            let statement = conn
                .prepare_cached(
                    "UPDATE burr_runs SET status = $2, finished_at_us = $3, updated_at_us = $3, \
                         lease_holder = NULL, lease_expires_at_us = NULL, error = $4 WHERE seq = $1",
                )
                .await?;
            conn.execute(&statement, &[&run.seq, &status.as_str(), &now, &error])
                .await?;
            events.push((run.id.clone(), EventKind::Finished { status }));
            continue;
        }
        take.push(run);
    }

    // Queued runs, in the claim order, within their concurrency limits. The rows looked
    // at are locked (others skip them); a round whose runs some limit held back looks
    // further, a few times at most.
    let mut running_with: HashMap<String, u32> = HashMap::new();
    // Every queued run looked at: taken, or passed over (held back, or corrupt). The
    // rows this transaction locked are not skipped by its own next look: it skips them.
    let mut seen: Vec<i64> = Vec::new();
    for _round in 0..4 {
        let want = claim.limit.saturating_sub(take.len());
        if want == 0 {
            break;
        }
        let want_param = i64::try_from(want).unwrap_or(i64::MAX);
        let mut candidates = Vec::new();
        let mut full = false;
        let looks = match first_look.take() {
            Some(looks) => looks,
            None => {
                let mut looks = Vec::with_capacity(claim.queues.len());
                for queue in &claim.queues {
                    looks.push(
                        rows::runs(conn, &ready, &[queue, &now, &kinds, &seen, &want_param]).await,
                    );
                }
                looks
            }
        };
        for found in looks {
            let found = found?;
            full |= found.len() >= want;
            for run in found {
                match run {
                    Ok(run) => candidates.push(run),
                    Err(error) => {
                        tracing::warn!(%error, "a run's row is corrupt: it is not claimed");
                        if let QueueError::CorruptRun { run_id, .. } = &error {
                            seen.extend(seq_of(conn, run_id).await?);
                        }
                    }
                }
            }
        }
        candidates.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then(a.flow_started_at_us.cmp(&b.flow_started_at_us))
                .then(a.seq.cmp(&b.seq))
        });
        let mut held_back = false;
        seen.extend(candidates.iter().map(|r| r.seq));
        for run in candidates {
            if take.len() >= claim.limit {
                break;
            }
            if let (Some(key), Some(limit)) = (&run.concurrency_key, run.concurrency_limit) {
                let running = match running_with.get(key) {
                    Some(n) => *n,
                    None => running_with_key(conn, key).await?,
                };
                if running >= limit {
                    running_with.insert(key.clone(), running);
                    held_back = true;
                    continue;
                }
                running_with.insert(key.clone(), running + 1);
            }
            take.push(run);
        }
        if !held_back || !full {
            break;
        }
    }
    if !take.is_empty() {
        let seqs: Vec<i64> = take.iter().map(|r| r.seq).collect();
        let statement = conn
            .prepare_cached(
                "UPDATE burr_runs SET status = 'running', attempt = attempt + 1, lease_holder = $2, \
                     lease_expires_at_us = $3, heartbeat_at_us = $4, \
                     started_at_us = coalesce(started_at_us, $4), updated_at_us = $4 \
                 WHERE seq = ANY($1)",
            )
            .await?;
        let mut claimed_events = Vec::with_capacity(take.len());
        for run in &take {
            claimed_events.push((
                run.id.clone(),
                EventKind::Claimed {
                    worker: claim.worker.clone(),
                    attempt: run.attempt + 1,
                },
            ));
        }
        events.extend(claimed_events);
        // The update, the events and the commit in one round trip (the rows are locked:
        // the update changes exactly them). Each request is sent when its future is first
        // polled, in this order: the statements are prepared first, so that none waits
        // for a round trip of its own. A statement that fails aborts the transaction
        // (the commit then rolls it back), and its error is returned.
        conn.prepare_cached(rows::INSERT_EVENTS).await?;
        let unsynced = format!("SET LOCAL synchronous_commit = off; {notify_commit}");
        let (updated, recorded, committed) = futures::future::join3(
            conn.execute(&statement, &[&seqs, &claim.worker, &expires, &now]),
            insert_events(conn, now, std::mem::take(&mut events)),
            conn.batch_execute(&unsynced),
        )
        .await;
        updated?;
        let recorded = recorded?;
        committed?;
        for mut run in take {
            // The row as the update left it (it is locked: nobody else changed it).
            run.status = RunStatus::Running;
            run.attempt += 1;
            run.lease_holder = Some(claim.worker.clone());
            run.lease_expires_at_us = Some(expires);
            run.heartbeat_at_us = Some(now);
            run.started_at_us.get_or_insert(now);
            run.updated_at_us = now;
            claimed.push(run);
        }
        return Ok((claimed, recorded));
    }
    let events = insert_events(conn, now, events).await?;
    if events.is_empty() {
        conn.batch_execute("COMMIT").await?;
    } else {
        conn.batch_execute(&format!(
            "SET LOCAL synchronous_commit = off; {notify_commit}"
        ))
        .await?;
    }
    Ok((claimed, events))
}

/// The `seq` of a run (for a corrupt row, to pass it over).
async fn seq_of(conn: &Conn, run_id: &str) -> OpResult<Option<i64>> {
    let statement = conn
        .prepare_cached("SELECT seq FROM burr_runs WHERE id = $1")
        .await?;
    Ok(match conn.query_opt(&statement, &[&run_id]).await? {
        Some(row) => Some(row.try_get(0)?),
        None => None,
    })
}

/// Runs with concurrency key `key` running now, counted under a transaction-scoped
/// advisory lock on the key; `u32::MAX` (no slot) when another claimer holds that lock
/// (it is deciding about the key's slots now: the run waits for the next claim).
async fn running_with_key(conn: &Conn, key: &str) -> OpResult<u32> {
    let statement = conn
        .prepare_cached("SELECT pg_try_advisory_xact_lock(hashtextextended($1, 7297))")
        .await?;
    let locked: bool = conn.query_one(&statement, &[&key]).await?.try_get(0)?;
    if !locked {
        return Ok(u32::MAX);
    }
    let statement = conn
        .prepare_cached(
            "SELECT count(*) FROM burr_runs WHERE status = 'running' AND concurrency_key = $1",
        )
        .await?;
    let count: i64 = conn.query_one(&statement, &[&key]).await?.try_get(0)?;
    Ok(u32::try_from(count).unwrap_or(u32::MAX))
}

/// Why `attempt` may not change `run_id` any more.
async fn fenced(conn: &Conn, run_id: &str, attempt: u32) -> OpError {
    match select_run(conn, run_id, false).await {
        Ok(None) => unknown(run_id),
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

/// Finish a run (see [`RunQueue::finish`](crate::queue::RunQueue::finish)): one
/// statement in autocommit mode (the run's row, its events and the notification in one
/// round trip and one commit), conditioned on the attempt and its holder.
#[allow(clippy::too_many_arguments)]
pub(super) async fn finish(
    conn: &Conn,
    run_id: &str,
    attempt: u32,
    worker: &str,
    finish: &Finish,
    code: Option<&RunCode>,
    now: i64,
    instance: &str,
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
    let mut events = Vec::new();
    if let Finish::Failed(chain) = finish {
        events.push(EventKind::AttemptFailed {
            attempt,
            error: chain.first().cloned().unwrap_or_default(),
        });
    }
    events.push(EventKind::Finished { status });
    let kinds: Vec<&str> = events.iter().map(EventKind::name).collect();
    let data: Vec<String> = events
        .iter()
        .map(|kind| serde_json::to_string(kind).unwrap_or_else(|_| "{}".to_owned()))
        .collect();
    let statement = conn
        .prepare_cached(&format!(
            "WITH u AS ( \
                 UPDATE burr_runs SET status = $4, finished_at_us = $5, updated_at_us = $5, \
                     lease_holder = NULL, lease_expires_at_us = NULL, error = $6, result = $7, \
                     code_version = coalesce($8, code_version), \
                     fingerprint = coalesce($9, fingerprint) \
                 WHERE id = $1 AND status = 'running' AND attempt = $2 AND lease_holder = $3 \
                 RETURNING {RUN_COLUMNS}), \
             e AS (INSERT INTO burr_run_events (run_id, at_us, kind, data) \
                 SELECT u.id, $5, x.k, x.d FROM u, \
                     unnest($10::text[], $11::text[]) WITH ORDINALITY AS x(k, d, n) \
                 ORDER BY x.n RETURNING id) \
             SELECT u.*, ARRAY(SELECT id FROM e ORDER BY id), \
                 pg_notify('{CHANNEL}', $12) IS NULL FROM u"
        ))
        .await?;
    let (version, fingerprint) = (
        code.and_then(|c| c.version.as_deref()),
        code.map(|c| c.fingerprint.as_str()),
    );
    let row = conn
        .query_opt(
            &statement,
            &[
                &run_id,
                &u32_param(attempt),
                &worker,
                &status.as_str(),
                &now,
                &error,
                &result,
                &version,
                &fingerprint,
                &kinds,
                &data,
                &instance,
            ],
        )
        .await?;
    let Some(row) = row else {
        return Err(fenced(conn, run_id, attempt).await);
    };
    let run = rows::run(&row)?;
    let ids: Vec<i64> = row.try_get(rows::RUN_COLUMN_COUNT)?;
    let events = ids
        .into_iter()
        .zip(events)
        .map(|(id, kind)| RunEvent {
            id,
            run_id: run_id.to_owned(),
            at_us: now,
            kind,
        })
        .collect();
    Ok((run, events))
}

/// Give a run back (see [`RunQueue::release`](crate::queue::RunQueue::release)).
pub(super) async fn release(
    conn: &Conn,
    run_id: &str,
    attempt: u32,
    worker: &str,
    not_before: i64,
    now: i64,
) -> OpResult<Written<()>> {
    let statement = conn
        .prepare_cached(
            "UPDATE burr_runs SET status = 'queued', lease_holder = NULL, lease_expires_at_us = NULL, \
                 not_before_us = $4, updated_at_us = $5 \
             WHERE id = $1 AND status = 'running' AND attempt = $2 AND lease_holder = $3",
        )
        .await?;
    let changed = conn
        .execute(
            &statement,
            &[&run_id, &u32_param(attempt), &worker, &not_before, &now],
        )
        .await?;
    if changed == 0 {
        return Err(fenced(conn, run_id, attempt).await);
    }
    let events = insert_events(
        conn,
        now,
        vec![(run_id.to_owned(), EventKind::Released { attempt })],
    )
    .await?;
    Ok(((), events))
}

/// Cancel a run (see [`RunQueue::cancel`](crate::queue::RunQueue::cancel)).
pub(super) async fn cancel(conn: &Conn, run_id: &str, now: i64) -> OpResult<Written<Run>> {
    // Locked: a claim cannot take it between the read and the update.
    let run = select_run(conn, run_id, true)
        .await?
        .ok_or_else(|| unknown(run_id))?;
    match run.status {
        RunStatus::Queued => {
            let sql = format!(
                "UPDATE burr_runs SET status = 'cancelled', finished_at_us = $2, updated_at_us = $2 \
                 WHERE id = $1 RETURNING {RUN_COLUMNS}"
            );
            let run = one_run(conn, &sql, &[&run_id, &now]).await?.unwrap_or(run);
            let events = insert_events(
                conn,
                now,
                vec![(
                    run_id.to_owned(),
                    EventKind::Finished {
                        status: RunStatus::Cancelled,
                    },
                )],
            )
            .await?;
            Ok((run, events))
        }
        RunStatus::Running if run.cancel_requested => Ok((run, Vec::new())),
        RunStatus::Running => {
            let sql = format!(
                "UPDATE burr_runs SET cancel_requested = true, updated_at_us = $2 WHERE id = $1 \
                 RETURNING {RUN_COLUMNS}"
            );
            let run = one_run(conn, &sql, &[&run_id, &now]).await?.unwrap_or(run);
            let events = insert_events(
                conn,
                now,
                vec![(run_id.to_owned(), EventKind::CancelRequested)],
            )
            .await?;
            Ok((run, events))
        }
        status => Err(QueueError::AlreadyFinished {
            run_id: run_id.to_owned(),
            status,
        }
        .into()),
    }
}

/// Renew a worker's leases (see [`RunQueue::heartbeat`](crate::queue::RunQueue::heartbeat)).
pub(super) async fn heartbeat(
    conn: &Conn,
    info: &WorkerInfo,
    held: &[(String, u32)],
    ttl: i64,
    now: i64,
) -> OpResult<Written<HeartbeatReport>> {
    let statement = conn
        .prepare_cached(
            "INSERT INTO burr_workers \
                 (id, host, pid, queues, concurrency, heartbeat_at_us, machine, pid_started) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (id) DO UPDATE SET heartbeat_at_us = excluded.heartbeat_at_us",
        )
        .await?;
    conn.execute(
        &statement,
        &[
            &info.id,
            &info.host,
            &i64::from(info.pid),
            &serde_json::to_string(&info.queues).unwrap_or_default(),
            &i64::from(info.concurrency),
            &now,
            &info.machine,
            &info.pid_started,
        ],
    )
    .await?;
    let statement = conn
        .prepare_cached(
            "UPDATE burr_runs SET lease_expires_at_us = $2, heartbeat_at_us = $3 \
             WHERE lease_holder = $1 AND status = 'running' \
             RETURNING id, attempt, cancel_requested",
        )
        .await?;
    let mut mine: HashMap<String, (i64, bool)> = HashMap::new();
    for row in conn
        .query(&statement, &[&info.id, &now.saturating_add(ttl), &now])
        .await?
    {
        mine.insert(row.try_get(0)?, (row.try_get(1)?, row.try_get(2)?));
    }
    let mut report = HeartbeatReport::default();
    for (id, attempt) in held {
        match mine.get(id) {
            Some((a, cancel)) if *a == i64::from(*attempt) => {
                if *cancel {
                    report.cancel.push(id.clone());
                }
            }
            _ => report.lost.push(id.clone()),
        }
    }
    Ok((report, Vec::new()))
}

/// The backlog (see [`RunQueue::backlog`](crate::queue::RunQueue::backlog)).
pub(super) async fn backlog(conn: &Conn, now: i64) -> OpResult<Backlog> {
    let statement = conn
        .prepare_cached(
            "SELECT kind, queue, priority, status, count(*) FROM burr_runs \
             GROUP BY kind, queue, priority, status ORDER BY kind, queue, priority DESC, status",
        )
        .await?;
    let mut rows_out = Vec::new();
    for row in conn.query(&statement, &[]).await? {
        let status: String = row.try_get(3)?;
        let Some(status) = RunStatus::parse(&status) else {
            continue;
        };
        rows_out.push(BacklogRow {
            kind: row.try_get(0)?,
            queue: row.try_get(1)?,
            priority: row.try_get(2)?,
            status,
            count: row.try_get::<_, i64>(4)?.try_into().unwrap_or(0),
        });
    }
    let statement = conn
        .prepare_cached(
            "SELECT min(greatest(submitted_at_us, not_before_us)) FROM burr_runs \
             WHERE status = 'queued' AND not_before_us <= $1",
        )
        .await?;
    let oldest: Option<i64> = conn.query_one(&statement, &[&now]).await?.try_get(0)?;
    Ok(Backlog {
        rows: rows_out,
        oldest_waiting_us: oldest.map_or(0, |t| now.saturating_sub(t).max(0)),
    })
}

async fn count(conn: &Conn, sql: &str, params: &Params<'_>) -> OpResult<i64> {
    let statement = conn.prepare_cached(sql).await?;
    Ok(conn.query_one(&statement, params).await?.try_get(0)?)
}

/// Why a run waits (see [`RunQueue::explain`](crate::queue::RunQueue::explain)).
pub(super) async fn explain(conn: &Conn, run_id: &str, now: i64) -> OpResult<Explanation> {
    let run = get(conn, run_id).await?;
    let running_in_queue = count(
        conn,
        "SELECT count(*) FROM burr_runs WHERE status = 'running' AND queue = $1",
        &[&run.queue],
    )
    .await?;
    let mut worker_slots = 0u64;
    let statement = conn
        .prepare_cached("SELECT queues, concurrency FROM burr_workers WHERE heartbeat_at_us >= $1")
        .await?;
    let fresh = now.saturating_sub(60_000_000);
    for row in conn.query(&statement, &[&fresh]).await? {
        let queues: String = row.try_get(0)?;
        let concurrency: i64 = row.try_get(1)?;
        let queues: Vec<String> = serde_json::from_str(&queues).unwrap_or_default();
        if queues.contains(&run.queue) {
            worker_slots += u64::try_from(concurrency).unwrap_or(0);
        }
    }
    let running_with_key = match &run.concurrency_key {
        Some(key) => Some(
            u64::try_from(
                count(
                    conn,
                    "SELECT count(*) FROM burr_runs WHERE status = 'running' AND concurrency_key = $1",
                    &[key],
                )
                .await?,
            )
            .unwrap_or(0),
        ),
        None => None,
    };
    let (mut position, mut ahead) = (None, Vec::new());
    if run.status == RunStatus::Queued {
        let ahead_where = "FROM burr_runs WHERE status = 'queued' AND queue = $1 \
                 AND not_before_us <= $5 \
                 AND (priority > $2 OR (priority = $2 AND (flow_started_at_us < $3 \
                      OR (flow_started_at_us = $3 AND seq < $4))))";
        let p: [&(dyn ToSql + Sync); 5] = [
            &run.queue,
            &run.priority,
            &run.flow_started_at_us,
            &run.seq,
            &now,
        ];
        let n = count(conn, &format!("SELECT count(*) {ahead_where}"), &p).await?;
        position = Some(u64::try_from(n).unwrap_or(0));
        ahead = rows::runs(
                conn,
                &format!(
                    "SELECT {RUN_COLUMNS} {ahead_where} ORDER BY priority DESC, flow_started_at_us, seq LIMIT 10"
                ),
                &p,
            )
            .await?
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
pub(super) async fn put_schedule(conn: &Conn, schedule: &Schedule) -> OpResult<Written<()>> {
    let statement = conn
        .prepare_cached(
            "INSERT INTO burr_schedules (name, spec, run, next_due_us, last_fired_us) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, run = excluded.run, \
                 next_due_us = excluded.next_due_us",
        )
        .await?;
    conn.execute(
        &statement,
        &[
            &schedule.name,
            &serde_json::to_string(&schedule.spec).unwrap_or_default(),
            &serde_json::to_string(&schedule.run).unwrap_or_default(),
            &schedule.next_due_us,
            &schedule.last_fired_us,
        ],
    )
    .await?;
    Ok(((), Vec::new()))
}

/// The schedules, by name.
pub(super) async fn schedules(conn: &Conn) -> OpResult<Vec<Schedule>> {
    let statement = conn
        .prepare_cached(
            "SELECT name, spec, run, next_due_us, last_fired_us FROM burr_schedules ORDER BY name",
        )
        .await?;
    let mut out = Vec::new();
    for row in conn.query(&statement, &[]).await? {
        out.push(rows::schedule(&row)?);
    }
    Ok(out)
}

/// Remove a schedule.
pub(super) async fn remove_schedule(conn: &Conn, name: &str) -> OpResult<Written<()>> {
    let statement = conn
        .prepare_cached("DELETE FROM burr_schedules WHERE name = $1")
        .await?;
    if conn.execute(&statement, &[&name]).await? == 0 {
        return Err(QueueError::UnknownSchedule {
            name: name.to_owned(),
        }
        .into());
    }
    Ok(((), Vec::new()))
}

/// Fire the due schedules: one run per due time. A schedule another scheduler is firing
/// now is locked: skipped here. Its due time moves only from the value read (compare and
/// set), and its run's idempotency key names the due time, so a due time fires once.
pub(super) async fn fire_due(conn: &Conn, now: i64) -> OpResult<Written<Vec<Run>>> {
    let statement = conn
        .prepare_cached(
            "SELECT name, spec, run, next_due_us, last_fired_us FROM burr_schedules \
             WHERE next_due_us <= $1 ORDER BY next_due_us FOR UPDATE SKIP LOCKED",
        )
        .await?;
    let mut due = Vec::new();
    for row in conn.query(&statement, &[&now]).await? {
        due.push(rows::schedule(&row)?);
    }
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
        let statement = conn
            .prepare_cached(
                "UPDATE burr_schedules SET next_due_us = $2, last_fired_us = $3 \
                 WHERE name = $1 AND next_due_us = $3",
            )
            .await?;
        let moved = conn
            .execute(&statement, &[&schedule.name, &next, &schedule.next_due_us])
            .await?;
        if moved == 0 {
            continue;
        }
        let mut run = schedule.run.clone();
        run.id = None;
        run.idempotency_key = Some(format!(
            "schedule:{}:{}",
            schedule.name, schedule.next_due_us
        ));
        let (submitted, mut recorded) = Box::pin(submit(conn, &run, now)).await?;
        events.append(&mut recorded);
        if submitted.created {
            fired.push(submitted.run);
        }
    }
    Ok((fired, events))
}

/// Stored events after `after`, oldest first. Following every run's events (no
/// `run_id`), only those of transactions older than every transaction still running are
/// returned: event ids are drawn before their transactions commit, so a later id can
/// become visible first, and a reader resuming after it would skip the earlier one.
pub(super) async fn events(
    conn: &Conn,
    after: i64,
    run_id: Option<&str>,
    limit: u32,
) -> OpResult<Vec<RunEvent>> {
    let limit = i64::from(limit);
    let found = match run_id {
        Some(run_id) => {
            let statement = conn
                .prepare_cached(
                    "SELECT id, run_id, at_us, data FROM burr_run_events \
                     WHERE run_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                )
                .await?;
            conn.query(&statement, &[&run_id, &after, &limit]).await?
        }
        None => {
            let statement = conn
                .prepare_cached(
                    "SELECT id, run_id, at_us, data FROM burr_run_events \
                     WHERE id > $1 AND tx < pg_snapshot_xmin(pg_current_snapshot()) \
                     ORDER BY id LIMIT $2",
                )
                .await?;
            conn.query(&statement, &[&after, &limit]).await?
        }
    };
    let mut out = Vec::with_capacity(found.len());
    for row in &found {
        if let Some(event) = rows::event(row)? {
            out.push(event);
        }
    }
    Ok(out)
}

/// Record events that change no run.
pub(super) async fn record(
    conn: &Conn,
    events: Vec<(String, EventKind)>,
    now: i64,
) -> OpResult<Written<()>> {
    Ok(((), insert_events(conn, now, events).await?))
}

/// Runs by filter, newest first.
pub(super) async fn list(conn: &Conn, filter: &RunFilter) -> OpResult<Vec<Run>> {
    let mut sql = format!("SELECT {RUN_COLUMNS} FROM burr_runs WHERE true");
    let status = filter.status.map(RunStatus::as_str);
    let limit = i64::from(filter.limit.unwrap_or(100));
    let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
    if let Some(status) = &status {
        params.push(status);
        sql.push_str(&format!(" AND status = ${}", params.len()));
    }
    if let Some(kind) = &filter.kind {
        params.push(kind);
        sql.push_str(&format!(" AND kind = ${}", params.len()));
    }
    if let Some(flow) = &filter.flow {
        params.push(flow);
        sql.push_str(&format!(" AND flow = ${}", params.len()));
    }
    if let Some(before) = &filter.before_seq {
        params.push(before);
        sql.push_str(&format!(" AND seq < ${}", params.len()));
    }
    params.push(&limit);
    sql.push_str(&format!(" ORDER BY seq DESC LIMIT ${}", params.len()));
    let found = rows::runs(conn, &sql, &params).await?;
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

/// Delete at most `limit` events of finished runs recorded before `before_us`, oldest
/// first; returns how many.
pub(super) async fn prune_events(
    conn: &Conn,
    before_us: i64,
    limit: i64,
) -> OpResult<Written<u64>> {
    let deleted = conn
        .execute(
            "DELETE FROM burr_run_events WHERE id IN ( \
                 SELECT e.id FROM burr_run_events e JOIN burr_runs r ON r.id = e.run_id \
                 WHERE e.at_us < $1 AND r.status IN ('succeeded', 'failed', 'cancelled') \
                 ORDER BY e.id LIMIT $2)",
            &[&before_us, &limit],
        )
        .await?;
    Ok((deleted, Vec::new()))
}

/// The workers recorded on `machine`: id, pid and process start time.
pub(super) async fn workers_on(
    conn: &Conn,
    machine: &str,
) -> OpResult<Vec<(String, i64, Option<i64>)>> {
    let statement = conn
        .prepare_cached("SELECT id, pid, pid_started FROM burr_workers WHERE machine = $1")
        .await?;
    let mut out = Vec::new();
    for row in conn.query(&statement, &[&machine]).await? {
        out.push((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?));
    }
    Ok(out)
}

/// Forget the gone workers `ids`: their runs' leases expire now. Returns whether a run
/// was concerned.
pub(super) async fn reap(conn: &Conn, ids: &[String], now: i64) -> OpResult<Written<bool>> {
    let expire = conn
        .prepare_cached(
            "UPDATE burr_runs SET lease_expires_at_us = least(lease_expires_at_us, $2) \
             WHERE lease_holder = $1 AND status = 'running'",
        )
        .await?;
    let forget = conn
        .prepare_cached("DELETE FROM burr_workers WHERE id = $1")
        .await?;
    let mut freed = 0;
    for id in ids {
        freed += conn.execute(&expire, &[id, &now]).await?;
        conn.execute(&forget, &[id]).await?;
    }
    Ok((freed > 0, Vec::new()))
}
