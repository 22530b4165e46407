//! How rows are laid out: column conversions, the values a checkpoint keeps in its own
//! row (inline values), and their compaction into bases. The layout is described with
//! the schema, on [`SqlitePersister`].

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension};
use serde_json::Value;

use crate::ids::ParentPointer;
use crate::persistence::inline::{self, decode, InlineRow};
use crate::persistence::PersistenceError;
use crate::state::StateDelta;

// --------------------------------------------------------------------------------------
// Conversions between burr's records and SQLite columns, and how failures are told apart.
// --------------------------------------------------------------------------------------

pub(super) use crate::persistence::columns::{
    app_key, partition_column, partition_from_column, prior_step_column, prior_step_from_column,
    sequence_column, time_from_micros, AppKey,
};

/// A SQLite error on `path`.
pub(super) fn sqlite_error(path: &Path, error: rusqlite::Error) -> PersistenceError {
    PersistenceError::Sqlite {
        path: path.to_owned(),
        source: Box::new(error),
    }
}

/// A row of application `app_id` in `path` that cannot be read: at sequence id
/// `sequence_id` as stored (0 for the application's own row).
pub(super) fn corrupt(
    path: &Path,
    app_id: &str,
    sequence_id: i64,
    reason: String,
) -> PersistenceError {
    PersistenceError::Corrupt {
        path: path.to_owned(),
        app_id: app_id.to_owned(),
        sequence_id: u64::try_from(sequence_id).unwrap_or_default(),
        reason,
    }
}

/// A parent pointer column (JSON) of application `app_id` read back; `which` names it
/// in errors.
pub(super) fn parent_from_column(
    path: &Path,
    app_id: &str,
    column: Option<String>,
    which: &str,
) -> Result<Option<ParentPointer>, PersistenceError> {
    column
        .map(|json| {
            serde_json::from_str(&json).map_err(|error| {
                corrupt(
                    path,
                    app_id,
                    0,
                    format!("the application's {which} is not a valid parent pointer: {error}"),
                )
            })
        })
        .transpose()
}

/// Whether `error` is a primary key (or unique) constraint violation.
pub(super) fn is_constraint_violation(error: &rusqlite::Error) -> bool {
    error.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation)
}

/// Why an operation did not happen: the database failed (the whole transaction is rolled
/// back) or the operation was refused (nothing it would write was written; the rest of
/// the transaction goes on).
#[derive(Debug)]
pub(super) enum Failure {
    /// SQLite failed.
    Sqlite(rusqlite::Error),
    /// The operation was refused: a conflict, a lease held elsewhere, corrupt data...
    Refused(PersistenceError),
}

impl From<rusqlite::Error> for Failure {
    fn from(error: rusqlite::Error) -> Self {
        Failure::Sqlite(error)
    }
}

impl From<PersistenceError> for Failure {
    fn from(error: PersistenceError) -> Self {
        Failure::Refused(error)
    }
}

impl Failure {
    /// The error to report, naming `path`.
    pub(super) fn into_error(self, path: &Path) -> PersistenceError {
        match self {
            Failure::Sqlite(error) => sqlite_error(path, error),
            Failure::Refused(error) => error,
        }
    }
}

// --------------------------------------------------------------------------------------
// Inline values: the small values a checkpoint keeps in its own row, so that saving it
// writes one row (with 1 KiB pages, usually one page) rather than a checkpoint row plus
// a row per key in another B-tree. The layout (bases, compaction, how the state at a
// sequence id is read) is described with the schema, on
// [`SqlitePersister`].
//
// Why it is exact: a `burr_values` row is only written at a base's sequence id, with the
// key's value at that base, and every key changed since the base before it gets one
// (a compaction covers every checkpoint since the latest base); so the rows at or before
// a base are its state. And the checkpoints after the latest base are read backwards
// until a base, so none is missed.
// --------------------------------------------------------------------------------------

/// The largest `inline_values` a checkpoint keeps in its row, in bytes. With the 1 KiB
/// pages of a new database, a row of up to about 230 bytes fits in its B-tree page.
pub(super) const INLINE_MAX: usize = 128;

/// How many checkpoints with inline values an application has at most since its latest
/// base: the save that finds this many compacts them.
pub(super) const COMPACT_AFTER: u32 = 128;

/// `delta` as an `inline_values` column, or `None` if it is larger than [`INLINE_MAX`].
pub(super) fn encode(delta: &StateDelta) -> Option<String> {
    inline::encode(delta, INLINE_MAX)
}

/// The checkpoints of an application up to a sequence id, back to its latest base.
pub(super) struct SinceBase {
    /// The sequence id of the latest base, if there is one.
    pub(super) base: Option<i64>,
    /// The checkpoints after it, oldest first.
    pub(super) rows: Vec<InlineRow>,
}

/// The latest base of application `app` (`app_id`, for errors) at or before sequence id
/// `upto`, and the checkpoints after it up to `upto`.
pub(super) fn since_base(
    conn: &Connection,
    path: &Path,
    app_id: &str,
    app: i64,
    upto: i64,
) -> Result<SinceBase, Failure> {
    let mut statement = conn.prepare_cached(
        "SELECT sequence_id, attempt, inline_values FROM burr_checkpoints \
         WHERE app = ?1 AND sequence_id <= ?2 ORDER BY sequence_id DESC, attempt DESC",
    )?;
    let mut found = statement.query((app, upto))?;
    let mut since = SinceBase::new();
    while let Some(row) = found.next()? {
        if since.take(path, app_id, row.get(0)?, row.get(1)?, row.get_ref(2)?)? {
            break;
        }
    }
    since.rows.reverse();
    Ok(since)
}

impl SinceBase {
    /// Nothing read yet.
    pub(super) fn new() -> Self {
        SinceBase {
            base: None,
            rows: Vec::new(),
        }
    }

    /// Take the next checkpoint read backwards (`sequence_id`, `attempt`, its
    /// `inline_values` column): the base (NULL: `true`, stop reading), or one more
    /// checkpoint after it. [`since_base`] reverses the rows once done, as must any
    /// other reader.
    pub(super) fn take(
        &mut self,
        path: &Path,
        app_id: &str,
        sequence_id: i64,
        attempt: i64,
        inline_values: ValueRef<'_>,
    ) -> Result<bool, Failure> {
        let corrupt = |reason| Failure::from(corrupt(path, app_id, sequence_id, reason));
        let text = match inline_values {
            ValueRef::Null => {
                self.base = Some(sequence_id);
                return Ok(true);
            }
            ValueRef::Text(text) => text,
            other => {
                return Err(corrupt(format!(
                    "its inline values are not JSON text (found a {})",
                    other.data_type()
                )))
            }
        };
        self.rows.push(InlineRow {
            sequence_id,
            attempt,
            entries: decode(text).map_err(corrupt)?,
        });
        Ok(false)
    }
}

/// Compact application `app`'s checkpoints with inline values up to sequence id `upto`:
/// write each changed key's last value at the latest one's sequence id, and make that
/// checkpoint a base.
pub(super) fn compact(
    conn: &Connection,
    path: &Path,
    app_id: &str,
    app: i64,
    upto: i64,
) -> Result<(), Failure> {
    let since = since_base(conn, path, app_id, app, upto)?;
    let Some(latest) = since.rows.last() else {
        return Ok(());
    };
    let (sequence_id, attempt) = (latest.sequence_id, latest.attempt);
    let latest_keys = keys_json(latest.entries.iter().map(|(key, _)| key.as_str()));
    let mut last: BTreeMap<String, Option<Value>> = BTreeMap::new();
    for row in since.rows {
        last.extend(row.entries);
    }
    make_base(
        conn,
        app,
        (sequence_id, attempt),
        &latest_keys,
        last.iter()
            .map(|(key, value)| (key.as_str(), value.as_ref())),
    )
}

/// [`compact`] when the caller knows what it would read: the latest checkpoint
/// (`latest`, which has inline values unless it is a base already) and each key the
/// checkpoints since the base set or deleted, with its value in the state stored at the
/// latest one (`None`: deleted). Reads only the latest checkpoint's own keys.
pub(super) fn compact_known<'a>(
    conn: &Connection,
    path: &Path,
    app_id: &str,
    app: i64,
    latest: (i64, u32),
    changed: impl Iterator<Item = (&'a str, Option<&'a Value>)>,
) -> Result<(), Failure> {
    let text: Option<Option<String>> = conn
        .prepare_cached(
            "SELECT inline_values FROM burr_checkpoints \
             WHERE app = ?1 AND sequence_id = ?2 AND attempt = ?3",
        )?
        .query_row((app, latest.0, latest.1), |row| row.get(0))
        .optional()?;
    let Some(Some(text)) = text else {
        // A base already (or nothing stored): nothing to compact.
        return Ok(());
    };
    let corrupt = |reason| Failure::from(corrupt(path, app_id, latest.0, reason));
    let entries = decode(text.as_bytes()).map_err(corrupt)?;
    let latest_keys = keys_json(entries.iter().map(|(key, _)| key.as_str()));
    make_base(
        conn,
        app,
        (latest.0, i64::from(latest.1)),
        &latest_keys,
        changed,
    )
}

/// A JSON list of `keys`.
fn keys_json<'a>(keys: impl Iterator<Item = &'a str>) -> String {
    let keys: Vec<&str> = keys.collect();
    serde_json::to_string(&keys).unwrap_or_else(|_| "[]".to_owned())
}

/// Write `values` (each key's value at `latest`, `None` when deleted) as value rows at
/// `latest`'s sequence id, and make that checkpoint a base whose changed keys, if it
/// kept them as "the keys of its inline values", are `latest_keys`.
fn make_base<'a>(
    conn: &Connection,
    app: i64,
    latest: (i64, i64),
    latest_keys: &str,
    values: impl Iterator<Item = (&'a str, Option<&'a Value>)>,
) -> Result<(), Failure> {
    let (sequence_id, attempt) = latest;
    let mut upsert = conn.prepare_cached(
        "INSERT INTO burr_values (app, key, sequence_id, value) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (app, key, sequence_id) DO UPDATE SET value = excluded.value",
    )?;
    for (key, value) in values {
        upsert.execute((app, key, sequence_id, value.map(Value::to_string)))?;
    }
    conn.prepare_cached(
        "UPDATE burr_checkpoints SET inline_values = NULL, \
         changed_keys = CASE changed_keys WHEN '' THEN ?4 ELSE changed_keys END \
         WHERE app = ?1 AND sequence_id = ?2 AND attempt = ?3",
    )?
    .execute((app, sequence_id, attempt, latest_keys))?;
    Ok(())
}
