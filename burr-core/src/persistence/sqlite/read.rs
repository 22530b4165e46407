//! The read path: the state at a sequence id, checkpoint lists, app records, and the
//! listing of every application. Used by the readers, and by the writer when it needs
//! the stored state to compute what a checkpoint changed.

use std::path::Path;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension};
use serde_json::{Map, Value};

use super::layout::{
    self, corrupt, parent_from_column, partition_column, partition_from_column,
    prior_step_from_column, time_from_micros, Failure, SinceBase,
};
use super::SqlitePersister;
use crate::persistence::{
    AppRecord, CheckpointInfo, CodeVersion, LoadedCheckpoint, PersistenceError, StepStatus,
};
use crate::state::State;

/// The row id of an application in `burr_apps`.
pub(super) fn app_row(
    conn: &Connection,
    partition_key: Option<&str>,
    app_id: &str,
) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT id FROM burr_apps WHERE partition_key = ?1 AND app_id = ?2")?
        .query_row((partition_column(partition_key), app_id), |row| row.get(0))
        .optional()
}

/// A checkpoint row, as stored.
pub(super) struct CheckpointRow {
    pub(super) sequence_id: i64,
    pub(super) attempt: i64,
    pub(super) position: String,
    pub(super) status: String,
    pub(super) prior_step: Option<String>,
    pub(super) created_at_us: i64,
}

const CHECKPOINT_COLUMNS: &str =
    "sequence_id, attempt, position, status, prior_step, created_at_us";

/// The [`CHECKPOINT_COLUMNS`] of `row`, from column `at` on.
fn checkpoint_row(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<CheckpointRow> {
    let position: String = row.get(at + 2)?;
    let prior_step = prior_step_from_column(row.get(at + 4)?, &position);
    Ok(CheckpointRow {
        sequence_id: row.get(at)?,
        attempt: row.get(at + 1)?,
        position,
        status: row.get(at + 3)?,
        prior_step,
        created_at_us: row.get(at + 5)?,
    })
}

/// The checkpoint at `sequence_id` (its latest attempt), or the application's latest.
pub(super) fn checkpoint(
    conn: &Connection,
    app: i64,
    sequence_id: Option<i64>,
) -> rusqlite::Result<Option<CheckpointRow>> {
    match sequence_id {
        None => conn
            .prepare_cached(&format!(
                "SELECT {CHECKPOINT_COLUMNS} FROM burr_checkpoints WHERE app = ?1 \
                 ORDER BY sequence_id DESC, attempt DESC LIMIT 1"
            ))?
            .query_row([app], |row| checkpoint_row(row, 0))
            .optional(),
        Some(seq) => conn
            .prepare_cached(&format!(
                "SELECT {CHECKPOINT_COLUMNS} FROM burr_checkpoints WHERE app = ?1 AND sequence_id = ?2 \
                 ORDER BY attempt DESC LIMIT 1"
            ))?
            .query_row([app, seq], |row| checkpoint_row(row, 0))
            .optional(),
    }
}

/// For each key of the application, its latest value row at or before `upto`: a skip
/// scan over the keys (one index seek per key), whatever the length of the history.
const VALUES_AT: &str = "
WITH RECURSIVE keys(key) AS (
    SELECT (SELECT key FROM burr_values WHERE app = ?1 ORDER BY key LIMIT 1)
    UNION ALL
    SELECT (SELECT key FROM burr_values WHERE app = ?1 AND key > keys.key ORDER BY key LIMIT 1)
    FROM keys WHERE keys.key IS NOT NULL
)
SELECT keys.key, v.sequence_id, v.value
FROM keys JOIN burr_values AS v ON v.app = ?1 AND v.key = keys.key AND v.sequence_id = (
    SELECT MAX(w.sequence_id) FROM burr_values AS w
    WHERE w.app = ?1 AND w.key = keys.key AND w.sequence_id <= ?2
)
WHERE keys.key IS NOT NULL";

/// The state of application `app` (`app_id`, for errors) after step `upto`: the state of
/// its latest [base](super::layout) at or before it, with the inline values of the
/// checkpoints after the base applied. With the number of those checkpoints.
pub(super) fn state_at(
    conn: &Connection,
    path: &Path,
    app_id: &str,
    app: i64,
    upto: i64,
) -> Result<(State, u32), Failure> {
    let since = layout::since_base(conn, path, app_id, app, upto)?;
    state_since(conn, path, app_id, app, since)
}

/// The state of application `app` (`app_id`, for errors) after the last of `since`'s
/// checkpoints: its base's values with their inline values applied. With the number of
/// those checkpoints.
fn state_since(
    conn: &Connection,
    path: &Path,
    app_id: &str,
    app: i64,
    since: SinceBase,
) -> Result<(State, u32), Failure> {
    let mut map = match since.base {
        Some(base) => values_at(conn, path, app_id, app, base)?,
        None => Map::new(),
    };
    let inline = u32::try_from(since.rows.len()).unwrap_or(u32::MAX);
    for row in since.rows {
        row.apply(&mut map);
    }
    Ok((State::from_map(map), inline))
}

/// The values of application `app` at base `base`: every key's latest `burr_values` row
/// at or before it, deleted keys left out.
fn values_at(
    conn: &Connection,
    path: &Path,
    app_id: &str,
    app: i64,
    base: i64,
) -> Result<Map<String, Value>, Failure> {
    let mut statement = conn.prepare_cached(VALUES_AT)?;
    let mut rows = statement.query([app, base])?;
    let mut map = Map::new();
    while let Some(row) = rows.next()? {
        let key: String = row.get(0)?;
        let sequence_id: i64 = row.get(1)?;
        let corrupt = |reason| Failure::from(corrupt(path, app_id, sequence_id, reason));
        let value = match row.get_ref(2)? {
            ValueRef::Null => continue,
            ValueRef::Text(text) => serde_json::from_slice::<Value>(text).map_err(|error| {
                corrupt(format!(
                    "the value of key `{key}` is not valid JSON: {error}"
                ))
            })?,
            other => {
                return Err(corrupt(format!(
                    "the value of key `{key}` is not JSON text (found a {})",
                    other.data_type()
                )))
            }
        };
        map.insert(key, value);
    }
    Ok(map)
}

/// The full state at `sequence_id` (the latest when `None`) of an application, with the
/// number of checkpoints with [inline](super::layout) values since its latest base.
pub(super) fn load(
    conn: &Connection,
    path: &Path,
    partition_key: Option<&str>,
    app_id: &str,
    sequence_id: Option<i64>,
) -> Result<Option<(LoadedCheckpoint, u32)>, Failure> {
    // One statement finds the application, its checkpoint and the checkpoints back to
    // its latest base (a resume compiles it, and a resume is timed from process start):
    // the checkpoint at (or the latest before) the sequence id asked for, then the
    // earlier ones, newest first.
    let mut statement = conn.prepare_cached(&format!(
        "SELECT app, {CHECKPOINT_COLUMNS}, inline_values FROM burr_checkpoints \
         WHERE app = (SELECT id FROM burr_apps WHERE partition_key = ?1 AND app_id = ?2) \
           AND sequence_id <= ?3 \
         ORDER BY sequence_id DESC, attempt DESC"
    ))?;
    let mut rows = statement.query((
        partition_column(partition_key),
        app_id,
        sequence_id.unwrap_or(i64::MAX),
    ))?;
    let Some(first) = rows.next()? else {
        return Ok(None);
    };
    let app: i64 = first.get(0)?;
    let row = checkpoint_row(first, 1)?;
    if sequence_id.is_some_and(|seq| seq != row.sequence_id) {
        return Ok(None);
    }
    let mut since = SinceBase::new();
    let mut next = Some(first);
    while let Some(found) = next {
        if since.take(
            path,
            app_id,
            found.get(1)?,
            found.get(2)?,
            found.get_ref(7)?,
        )? {
            break;
        }
        next = rows.next()?;
    }
    since.rows.reverse();
    drop(rows);
    drop(statement);
    let corrupt = |reason| corrupt(path, app_id, row.sequence_id, reason);
    let status = StepStatus::parse(&row.status)
        .ok_or_else(|| corrupt(format!("unknown status `{}`", row.status)))?;
    let attempt = u32::try_from(row.attempt)
        .map_err(|_| corrupt(format!("attempt {} is out of range", row.attempt)))?;
    let seq = u64::try_from(row.sequence_id)
        .map_err(|_| corrupt(format!("sequence id {} is negative", row.sequence_id)))?;
    let (state, inline) = state_since(conn, path, app_id, app, since)?;
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
pub(super) fn app_ids(
    conn: &Connection,
    partition_key: Option<&str>,
) -> rusqlite::Result<Vec<String>> {
    conn.prepare_cached("SELECT app_id FROM burr_apps WHERE partition_key = ?1 ORDER BY id DESC")?
        .query_map([partition_column(partition_key)], |row| row.get(0))?
        .collect()
}

/// The app ids under `partition_key` that start with `prefix`: a range of the
/// (`partition_key`, `app_id`) index, from `prefix` to the first string after every
/// string starting with it.
pub(super) fn app_ids_with_prefix(
    conn: &Connection,
    partition_key: Option<&str>,
    prefix: &str,
) -> rusqlite::Result<Vec<String>> {
    let partition = partition_column(partition_key);
    match prefix_end(prefix) {
        Some(end) => conn
            .prepare_cached(
                "SELECT app_id FROM burr_apps \
                 WHERE partition_key = ?1 AND app_id >= ?2 AND app_id < ?3",
            )?
            .query_map((partition, prefix, end), |row| row.get(0))?
            .collect(),
        None => conn
            .prepare_cached(
                "SELECT app_id FROM burr_apps WHERE partition_key = ?1 AND app_id >= ?2",
            )?
            .query_map((partition, prefix), |row| row.get(0))?
            .collect(),
    }
}

/// The least string greater than every string starting with `prefix` (SQLite compares
/// text byte by byte, which for UTF-8 is code point order), or `None` when there is no
/// such string (an empty prefix, or one of only `char::MAX`).
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match u32::from(last) + 1 {
            0xD800 => Some('\u{E000}'),
            code => char::from_u32(code),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// An application's checkpoints in (sequence id, attempt) order.
pub(super) fn checkpoints(
    conn: &Connection,
    path: &Path,
    partition_key: Option<&str>,
    app_id: &str,
) -> Result<Vec<CheckpointInfo>, Failure> {
    let Some(app) = app_row(conn, partition_key, app_id)? else {
        return Ok(Vec::new());
    };
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {CHECKPOINT_COLUMNS}, changed_keys, error, inline_values FROM burr_checkpoints WHERE app = ?1 \
         ORDER BY sequence_id, attempt"
    ))?;
    let mut rows = statement.query([app])?;
    let mut infos = Vec::new();
    while let Some(row) = rows.next()? {
        let stored = checkpoint_row(row, 0)?;
        let changed_keys: String = row.get(6)?;
        let error: Option<String> = row.get(7)?;
        let corrupt = |reason| corrupt(path, app_id, stored.sequence_id, reason);
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
                // The keys of its inline values.
                let inline: Option<String> = row.get(8)?;
                crate::persistence::inline::keys(inline.unwrap_or_default().as_bytes())
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

/// The application's record.
pub(super) fn app_record(
    conn: &Connection,
    path: &Path,
    partition_key: Option<&str>,
    app_id: &str,
) -> Result<Option<AppRecord>, Failure> {
    let row = conn
        .prepare_cached(
            "SELECT a.partition_key, a.created_at_us, a.fork_parent, a.spawning_parent, \
                    a.code_version, a.fingerprint, g.description \
             FROM burr_apps AS a LEFT JOIN burr_graphs AS g ON g.fingerprint = a.fingerprint \
             WHERE a.partition_key = ?1 AND a.app_id = ?2",
        )?
        .query_row((partition_column(partition_key), app_id), |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, Option<String>>(2)?,
                row.get::<_, Option<String>>(3)?,
                row.get::<_, Option<String>>(4)?,
                row.get::<_, Option<String>>(5)?,
                row.get::<_, Option<String>>(6)?,
            ))
        })
        .optional()?;
    let Some((
        stored_key,
        created_at_us,
        fork_parent,
        spawning_parent,
        version,
        fingerprint,
        graph,
    )) = row
    else {
        return Ok(None);
    };
    let parent = |column, which| parent_from_column(path, app_id, column, which);
    let graph = match graph {
        None => None,
        Some(json) => {
            Some(
                serde_json::from_str(&json).map_err(|error| PersistenceError::Corrupt {
                    path: path.to_owned(),
                    app_id: app_id.to_owned(),
                    sequence_id: 0,
                    reason: format!("its graph description cannot be read: {error}"),
                })?,
            )
        }
    };
    Ok(Some(AppRecord {
        partition_key: partition_from_column(&stored_key),
        app_id: app_id.to_owned(),
        created_at_us,
        fork_parent: parent(fork_parent, "fork parent")?,
        spawning_parent: parent(spawning_parent, "spawning parent")?,
        code: fingerprint.map(|fingerprint| CodeVersion {
            version,
            fingerprint,
            graph,
        }),
    }))
}

impl SqlitePersister {
    /// Every application stored, of every partition key, newest first (the order they
    /// were first recorded in).
    pub fn list_apps(&self) -> Result<Vec<AppRecord>, PersistenceError> {
        self.list_apps_where(None)
    }

    /// The application `app_id` and those whose ids start with `<app_id>/` (its child
    /// applications, and theirs), of every partition key, newest first.
    pub fn list_apps_under(&self, app_id: &str) -> Result<Vec<AppRecord>, PersistenceError> {
        self.list_apps_where(Some(app_id))
    }

    fn list_apps_where(&self, root: Option<&str>) -> Result<Vec<AppRecord>, PersistenceError> {
        let path = self.inner.path.clone();
        self.read(|conn| {
            let mut statement = conn.prepare_cached(
                "SELECT partition_key, app_id, created_at_us, fork_parent, spawning_parent, \
                        code_version, fingerprint \
                 FROM burr_apps WHERE ?1 IS NULL OR app_id = ?1 \
                 OR (app_id >= ?1 || '/' AND app_id < ?1 || '0') ORDER BY id DESC",
            )?;
            let mut rows = statement.query([root])?;
            let mut apps = Vec::new();
            while let Some(row) = rows.next()? {
                let partition_key: String = row.get(0)?;
                let app_id: String = row.get(1)?;
                let parent = |column, which| parent_from_column(&path, &app_id, column, which);
                let fork_parent = parent(row.get(3)?, "fork parent")?;
                let spawning_parent = parent(row.get(4)?, "spawning parent")?;
                let version: Option<String> = row.get(5)?;
                let fingerprint: Option<String> = row.get(6)?;
                apps.push(AppRecord {
                    partition_key: partition_from_column(&partition_key),
                    app_id,
                    created_at_us: row.get(2)?,
                    fork_parent,
                    spawning_parent,
                    // Without the graph: `app` reads it for one application.
                    code: fingerprint.map(|fingerprint| CodeVersion {
                        version,
                        fingerprint,
                        graph: None,
                    }),
                });
            }
            Ok(apps)
        })
    }
}

#[cfg(test)]
mod tests_load {
    use super::prefix_end;

    #[test]
    fn the_end_of_a_prefix_is_its_last_character_plus_one() {
        assert_eq!(prefix_end("app/3/").as_deref(), Some("app/30"));
        assert_eq!(prefix_end("é").as_deref(), Some("ê"));
        assert_eq!(prefix_end("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_end("\u{10FFFF}"), None);
        assert_eq!(prefix_end(""), None);
    }
}
