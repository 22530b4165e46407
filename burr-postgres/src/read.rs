//! The read path: the state at a sequence id, checkpoint lists, app records, listings.
//! Used by reads (on a pooled connection) and by the writer when it needs the stored
//! state to tell what a checkpoint changed.

use burr_core::persistence::{
    AppRecord, CheckpointInfo, CodeVersion, LoadedCheckpoint, StepStatus,
};
use burr_core::state::State;
use serde_json::{Map, Value};

use crate::layout::{
    self, corrupt, parent_from_column, partition_column, partition_from_column, prefix_end,
    prior_step_from_column, time_from_micros, Conn, Failure,
};

/// The row id of an application in `burr_apps`.
pub(crate) async fn app_row(
    conn: &Conn,
    partition_key: Option<&str>,
    app_id: &str,
) -> Result<Option<i64>, tokio_postgres::Error> {
    let statement = conn
        .prepare_cached("SELECT id FROM burr_apps WHERE partition_key = $1 AND app_id = $2")
        .await?;
    conn.query_opt(&statement, &[&partition_column(partition_key), &app_id])
        .await?
        .map(|row| row.try_get(0))
        .transpose()
}

/// A checkpoint row, as stored.
pub(crate) struct CheckpointRow {
    pub(crate) sequence_id: i64,
    pub(crate) attempt: i64,
    pub(crate) position: String,
    pub(crate) status: String,
    pub(crate) prior_step: Option<String>,
    pub(crate) created_at_us: i64,
}

const CHECKPOINT_COLUMNS: &str =
    "sequence_id, attempt, position, status, prior_step, created_at_us";

fn checkpoint_row(row: &tokio_postgres::Row) -> Result<CheckpointRow, tokio_postgres::Error> {
    let position: String = row.try_get(2)?;
    let prior_step = prior_step_from_column(row.try_get(4)?, &position);
    Ok(CheckpointRow {
        sequence_id: row.try_get(0)?,
        attempt: row.try_get(1)?,
        position,
        status: row.try_get(3)?,
        prior_step,
        created_at_us: row.try_get(5)?,
    })
}

/// The checkpoint at `sequence_id` (its latest attempt), or the application's latest.
pub(crate) async fn checkpoint(
    conn: &Conn,
    app: i64,
    sequence_id: Option<i64>,
) -> Result<Option<CheckpointRow>, tokio_postgres::Error> {
    let row = match sequence_id {
        None => {
            let statement = conn
                .prepare_cached(&format!(
                    "SELECT {CHECKPOINT_COLUMNS} FROM burr_checkpoints WHERE app = $1 \
                     ORDER BY sequence_id DESC, attempt DESC LIMIT 1"
                ))
                .await?;
            conn.query_opt(&statement, &[&app]).await?
        }
        Some(seq) => {
            let statement = conn
                .prepare_cached(&format!(
                    "SELECT {CHECKPOINT_COLUMNS} FROM burr_checkpoints \
                     WHERE app = $1 AND sequence_id = $2 ORDER BY attempt DESC LIMIT 1"
                ))
                .await?;
            conn.query_opt(&statement, &[&app, &seq]).await?
        }
    };
    row.as_ref().map(checkpoint_row).transpose()
}

/// For each key of the application, its latest value row at or before `$2`: a skip scan
/// over the keys (one index probe per key), whatever the length of the history.
const VALUES_AT: &str = "
WITH RECURSIVE keys(key) AS (
    SELECT (SELECT key FROM burr_values WHERE app = $1 ORDER BY key LIMIT 1)
    UNION ALL
    SELECT (SELECT key FROM burr_values WHERE app = $1 AND key > keys.key ORDER BY key LIMIT 1)
    FROM keys WHERE keys.key IS NOT NULL
)
SELECT keys.key, v.sequence_id, v.value
FROM keys CROSS JOIN LATERAL (
    SELECT w.sequence_id, w.value FROM burr_values AS w
    WHERE w.app = $1 AND w.key = keys.key AND w.sequence_id <= $2
    ORDER BY w.sequence_id DESC LIMIT 1
) AS v
WHERE keys.key IS NOT NULL";

/// The state of application `app` (`app_id`, for errors) after step `upto`, with the
/// number of checkpoints with inline values since its latest base.
pub(crate) async fn state_at(
    conn: &Conn,
    database: &str,
    app_id: &str,
    app: i64,
    upto: i64,
) -> Result<(State, u32), Failure> {
    let since = layout::since_base(conn, database, app_id, app, upto).await?;
    let mut map = match since.base {
        Some(base) => values_at(conn, database, app_id, app, base).await?,
        None => Map::new(),
    };
    let inline = u32::try_from(since.rows.len()).unwrap_or(u32::MAX);
    for row in since.rows {
        row.apply(&mut map);
    }
    Ok((State::from_map(map), inline))
}

/// The values of application `app` at base `base`, deleted keys left out.
async fn values_at(
    conn: &Conn,
    database: &str,
    app_id: &str,
    app: i64,
    base: i64,
) -> Result<Map<String, Value>, Failure> {
    let statement = conn.prepare_cached(VALUES_AT).await?;
    let rows = conn.query(&statement, &[&app, &base]).await?;
    let mut map = Map::new();
    for row in rows {
        let key: String = row.try_get(0)?;
        let sequence_id: i64 = row.try_get(1)?;
        let Some(text) = row.try_get::<_, Option<&str>>(2)? else {
            continue;
        };
        let value = serde_json::from_str::<Value>(text).map_err(|error| {
            corrupt(
                database,
                app_id,
                sequence_id,
                format!("the value of key `{key}` is not valid JSON: {error}"),
            )
        })?;
        map.insert(key, value);
    }
    Ok(map)
}

/// The full state at `sequence_id` (the latest when `None`) of an application, with the
/// number of checkpoints with inline values since its latest base.
pub(crate) async fn load(
    conn: &Conn,
    database: &str,
    partition_key: Option<&str>,
    app_id: &str,
    sequence_id: Option<i64>,
) -> Result<Option<(LoadedCheckpoint, u32)>, Failure> {
    let Some(app) = app_row(conn, partition_key, app_id).await? else {
        return Ok(None);
    };
    let Some(row) = checkpoint(conn, app, sequence_id).await? else {
        return Ok(None);
    };
    let corrupt = |reason| corrupt(database, app_id, row.sequence_id, reason);
    let status = StepStatus::parse(&row.status)
        .ok_or_else(|| corrupt(format!("unknown status `{}`", row.status)))?;
    let attempt = u32::try_from(row.attempt)
        .map_err(|_| corrupt(format!("attempt {} is out of range", row.attempt)))?;
    let seq = u64::try_from(row.sequence_id)
        .map_err(|_| corrupt(format!("sequence id {} is negative", row.sequence_id)))?;
    let (state, inline) = state_at(conn, database, app_id, app, row.sequence_id).await?;
    let loaded = LoadedCheckpoint {
        partition_key: partition_key.filter(|pk| !pk.is_empty()).map(str::to_owned),
        app_id: app_id.to_owned(),
        sequence_id: seq,
        position: row.position,
        status,
        attempt,
        prior_step: row.prior_step,
        created_at: time_from_micros(row.created_at_us),
        state,
    };
    Ok(Some((loaded, inline)))
}

/// The app ids under `partition_key`, newest first.
pub(crate) async fn app_ids(
    conn: &Conn,
    partition_key: Option<&str>,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let statement = conn
        .prepare_cached("SELECT app_id FROM burr_apps WHERE partition_key = $1 ORDER BY id DESC")
        .await?;
    conn.query(&statement, &[&partition_column(partition_key)])
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect()
}

/// The app ids under `partition_key` that start with `prefix`: a range of the
/// (`partition_key`, `app_id`) index.
pub(crate) async fn app_ids_with_prefix(
    conn: &Conn,
    partition_key: Option<&str>,
    prefix: &str,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let partition = partition_column(partition_key);
    let rows = match prefix_end(prefix) {
        Some(end) => {
            let statement = conn
                .prepare_cached(
                    "SELECT app_id FROM burr_apps \
                     WHERE partition_key = $1 AND app_id >= $2 AND app_id < $3",
                )
                .await?;
            conn.query(&statement, &[&partition, &prefix, &end]).await?
        }
        None => {
            let statement = conn
                .prepare_cached(
                    "SELECT app_id FROM burr_apps WHERE partition_key = $1 AND app_id >= $2",
                )
                .await?;
            conn.query(&statement, &[&partition, &prefix]).await?
        }
    };
    rows.iter().map(|row| row.try_get(0)).collect()
}

/// An application's checkpoints in (sequence id, attempt) order.
pub(crate) async fn checkpoints(
    conn: &Conn,
    database: &str,
    partition_key: Option<&str>,
    app_id: &str,
) -> Result<Vec<CheckpointInfo>, Failure> {
    let Some(app) = app_row(conn, partition_key, app_id).await? else {
        return Ok(Vec::new());
    };
    let statement = conn
        .prepare_cached(&format!(
            "SELECT {CHECKPOINT_COLUMNS}, changed_keys, error, inline_values \
             FROM burr_checkpoints WHERE app = $1 ORDER BY sequence_id, attempt"
        ))
        .await?;
    let rows = conn.query(&statement, &[&app]).await?;
    let mut infos = Vec::with_capacity(rows.len());
    for row in &rows {
        let stored = checkpoint_row(row)?;
        let changed_keys: String = row.try_get(6)?;
        let error: Option<String> = row.try_get(7)?;
        let corrupt = |reason| corrupt(database, app_id, stored.sequence_id, reason);
        infos.push(CheckpointInfo {
            sequence_id: u64::try_from(stored.sequence_id)
                .map_err(|_| corrupt(format!("sequence id {} is negative", stored.sequence_id)))?,
            status: StepStatus::parse(&stored.status)
                .ok_or_else(|| corrupt(format!("unknown status `{}`", stored.status)))?,
            attempt: u32::try_from(stored.attempt)
                .map_err(|_| corrupt(format!("attempt {} is out of range", stored.attempt)))?,
            position: stored.position,
            prior_step: stored.prior_step,
            created_at_us: stored.created_at_us,
            changed_keys: if changed_keys.is_empty() {
                let inline: Option<&str> = row.try_get(8)?;
                burr_core::persistence::inline::keys(inline.unwrap_or_default().as_bytes())
                    .map_err(corrupt)?
            } else {
                serde_json::from_str(&changed_keys).map_err(|e| {
                    corrupt(format!(
                        "its changed keys are not a JSON list of strings: {e}"
                    ))
                })?
            },
            error,
        });
    }
    Ok(infos)
}

/// An application's record made from a `burr_apps` row of (partition key, app id,
/// created_at_us, fork_parent, spawning_parent, code_version, fingerprint) and, when
/// selected, its graph's description.
fn app_record_from(database: &str, row: &tokio_postgres::Row) -> Result<AppRecord, Failure> {
    let partition_key: String = row.try_get(0)?;
    let app_id: String = row.try_get(1)?;
    let parent = |column, which| parent_from_column(database, &app_id, column, which);
    let fork_parent = parent(row.try_get(3)?, "fork parent")?;
    let spawning_parent = parent(row.try_get(4)?, "spawning parent")?;
    let version: Option<String> = row.try_get(5)?;
    let fingerprint: Option<String> = row.try_get(6)?;
    let graph = match row.columns().len() > 7 {
        true => row.try_get::<_, Option<String>>(7)?,
        false => None,
    };
    let graph = graph
        .map(|json| {
            serde_json::from_str(&json).map_err(|error| {
                corrupt(
                    database,
                    &app_id,
                    0,
                    format!("its graph description cannot be read: {error}"),
                )
            })
        })
        .transpose()?;
    Ok(AppRecord {
        partition_key: partition_from_column(&partition_key),
        created_at_us: row.try_get(2)?,
        app_id,
        fork_parent,
        spawning_parent,
        code: fingerprint.map(|fingerprint| CodeVersion {
            version,
            fingerprint,
            graph,
        }),
    })
}

/// The application's record.
pub(crate) async fn app_record(
    conn: &Conn,
    database: &str,
    partition_key: Option<&str>,
    app_id: &str,
) -> Result<Option<AppRecord>, Failure> {
    let statement = conn
        .prepare_cached(
            "SELECT a.partition_key, a.app_id, a.created_at_us, a.fork_parent, \
                    a.spawning_parent, a.code_version, a.fingerprint, g.description \
             FROM burr_apps AS a LEFT JOIN burr_graphs AS g ON g.fingerprint = a.fingerprint \
             WHERE a.partition_key = $1 AND a.app_id = $2",
        )
        .await?;
    let row = conn
        .query_opt(&statement, &[&partition_column(partition_key), &app_id])
        .await?;
    row.map(|row| app_record_from(database, &row)).transpose()
}

/// Every application stored (or only `root` and the applications under `root/`), newest
/// first.
pub(crate) async fn apps(
    conn: &Conn,
    database: &str,
    root: Option<&str>,
) -> Result<Vec<AppRecord>, Failure> {
    let statement = conn
        .prepare_cached(
            "SELECT partition_key, app_id, created_at_us, fork_parent, spawning_parent, \
                    code_version, fingerprint \
             FROM burr_apps WHERE $1::text IS NULL OR app_id = $1 \
             OR (app_id >= $1 || '/' AND app_id < $1 || '0') ORDER BY id DESC",
        )
        .await?;
    let rows = conn.query(&statement, &[&root]).await?;
    rows.iter()
        .map(|row| app_record_from(database, row))
        .collect()
}
