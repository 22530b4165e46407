//! The run queue's tables, beside the checkpoints in a burr database, and their version.
//!
//! | table | one row per | what |
//! |---|---|---|
//! | `burr_runs_meta` | setting | `schema_version` |
//! | `burr_runs` | run | see [`Run`](crate::Run): identity, kind, inputs, order (priority, flow start, `seq`), status, attempt, lease, times, error, result, fork source (`fork_run_id`, `fork_sequence_id`) and the code its latest attempt ran (`code_version`, `fingerprint`) |
//! | `burr_run_events` | event | `id` (the stream order), `run_id`, `at_us`, `kind`, `data` (JSON [`EventKind`](crate::EventKind)) |
//! | `burr_schedules` | schedule | `name`, `spec`, `run` (JSON), `next_due_us`, `last_fired_us` |
//! | `burr_workers` | worker | `id`, `host`, `pid`, `queues`, `concurrency`, `heartbeat_at_us`, `machine`, `pid_started` |

use std::path::Path;

use rusqlite::{Connection, OptionalExtension};

use crate::error::QueueError;

/// The run-queue schema version this build writes.
pub(crate) const SCHEMA_VERSION: i64 = 4;

/// `MIGRATIONS[v]` turns version `v` into `v + 1`.
const MIGRATIONS: &[&str] = &[V1, V2, V3, V4];

/// The code each run's latest attempt built its application under.
const V4: &str = "
ALTER TABLE burr_runs ADD COLUMN code_version TEXT;
ALTER TABLE burr_runs ADD COLUMN fingerprint TEXT;
";

/// Who a worker's process is (its machine and process start time), so that a worker on
/// the same machine takes the runs of a killed one back at once.
const V3: &str = "
ALTER TABLE burr_workers ADD COLUMN machine TEXT NOT NULL DEFAULT '';
ALTER TABLE burr_workers ADD COLUMN pid_started INTEGER;
CREATE INDEX IF NOT EXISTS burr_workers_machine ON burr_workers (machine);
";

/// Reruns (the run and step a run was forked from), and listing by submission time.
const V2: &str = "
ALTER TABLE burr_runs ADD COLUMN fork_run_id TEXT;
ALTER TABLE burr_runs ADD COLUMN fork_sequence_id INTEGER;
CREATE INDEX IF NOT EXISTS burr_runs_submitted ON burr_runs (submitted_at_us, id);
";

const V1: &str = "
CREATE TABLE IF NOT EXISTS burr_runs (
    seq                 INTEGER PRIMARY KEY AUTOINCREMENT,
    id                  TEXT NOT NULL UNIQUE,
    kind                TEXT NOT NULL,
    kind_version        INTEGER NOT NULL,
    queue               TEXT NOT NULL,
    inputs              TEXT NOT NULL,
    priority            INTEGER NOT NULL,
    flow                TEXT NOT NULL,
    flow_started_at_us  INTEGER NOT NULL,
    not_before_us       INTEGER NOT NULL,
    idempotency_key     TEXT,
    concurrency_key     TEXT,
    concurrency_limit   INTEGER,
    status              TEXT NOT NULL,
    attempt             INTEGER NOT NULL DEFAULT 0,
    max_attempts        INTEGER NOT NULL,
    lease_holder        TEXT,
    lease_expires_at_us INTEGER,
    heartbeat_at_us     INTEGER,
    cancel_requested    INTEGER NOT NULL DEFAULT 0,
    submitted_at_us     INTEGER NOT NULL,
    started_at_us       INTEGER,
    finished_at_us      INTEGER,
    updated_at_us       INTEGER NOT NULL,
    error               TEXT,
    result              TEXT,
    UNIQUE (kind, idempotency_key)
);
CREATE INDEX IF NOT EXISTS burr_runs_ready
    ON burr_runs (queue, priority DESC, flow_started_at_us, seq) WHERE status = 'queued';
CREATE INDEX IF NOT EXISTS burr_runs_leases
    ON burr_runs (lease_expires_at_us) WHERE status = 'running';
CREATE INDEX IF NOT EXISTS burr_runs_holder
    ON burr_runs (lease_holder) WHERE status = 'running';
CREATE INDEX IF NOT EXISTS burr_runs_limited
    ON burr_runs (concurrency_key) WHERE status = 'running' AND concurrency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS burr_runs_flow ON burr_runs (flow);

CREATE TABLE IF NOT EXISTS burr_run_events (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    at_us  INTEGER NOT NULL,
    kind   TEXT NOT NULL,
    data   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS burr_run_events_run ON burr_run_events (run_id, id);

CREATE TABLE IF NOT EXISTS burr_schedules (
    name          TEXT PRIMARY KEY,
    spec          TEXT NOT NULL,
    run           TEXT NOT NULL,
    next_due_us   INTEGER NOT NULL,
    last_fired_us INTEGER
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS burr_workers (
    id              TEXT PRIMARY KEY,
    host            TEXT NOT NULL,
    pid             INTEGER NOT NULL,
    queues          TEXT NOT NULL,
    concurrency     INTEGER NOT NULL,
    heartbeat_at_us INTEGER NOT NULL
) WITHOUT ROWID;
";

/// Create or migrate the run-queue tables of the database at `path` (whose checkpoint
/// schema the persister has prepared).
pub(super) fn prepare(conn: &mut Connection, path: &Path) -> Result<(), QueueError> {
    let db = |source| QueueError::Database {
        path: path.to_owned(),
        source,
    };
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(db)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS burr_runs_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;",
    )
    .map_err(db)?;
    let found: Option<String> = tx
        .query_row(
            "SELECT value FROM burr_runs_meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(db)?;
    let version = match found {
        None => 0,
        Some(text) => text.parse::<i64>().map_err(|_| QueueError::TooNew {
            path: path.to_owned(),
            found: -1,
            known: SCHEMA_VERSION,
        })?,
    };
    if version > SCHEMA_VERSION {
        return Err(QueueError::TooNew {
            path: path.to_owned(),
            found: version,
            known: SCHEMA_VERSION,
        });
    }
    for migration in &MIGRATIONS[usize::try_from(version).unwrap_or(0)..] {
        tx.execute_batch(migration).map_err(db)?;
    }
    tx.execute(
        "INSERT INTO burr_runs_meta (key, value) VALUES ('schema_version', ?1) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [SCHEMA_VERSION.to_string()],
    )
    .map_err(db)?;
    tx.commit().map_err(db)
}
