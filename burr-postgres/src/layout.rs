//! How burr's records are laid out in PostgreSQL columns: keys, conversions, how a
//! failure is told apart from a refusal, and the inline values a checkpoint keeps in its
//! own row (with their compaction into `burr_values`). The layout is the SQLite
//! persister's (see [`PostgresPersister`](crate::PostgresPersister)).

use std::collections::BTreeMap;

use burr_core::ids::ParentPointer;
use burr_core::persistence::inline::{self, decode, InlineRow};
use burr_core::persistence::PersistenceError;
use burr_core::state::StateDelta;
use deadpool_postgres::ClientWrapper;
use serde_json::Value;

/// A connection with a statement cache.
pub(crate) type Conn = ClientWrapper;

pub(crate) use burr_core::persistence::columns::{
    app_key, partition_column, partition_from_column, prior_step_column, prior_step_from_column,
    sequence_column, time_from_micros, AppKey,
};

/// A row of application `app_id` that cannot be read, at sequence id `sequence_id` as
/// stored (0 for the application's own row).
pub(crate) fn corrupt(
    database: &str,
    app_id: &str,
    sequence_id: i64,
    reason: String,
) -> PersistenceError {
    PersistenceError::Corrupt {
        path: database.into(),
        app_id: app_id.to_owned(),
        sequence_id: u64::try_from(sequence_id).unwrap_or_default(),
        reason,
    }
}

/// A parent pointer column (JSON) of application `app_id` read back.
pub(crate) fn parent_from_column(
    database: &str,
    app_id: &str,
    column: Option<String>,
    which: &str,
) -> Result<Option<ParentPointer>, PersistenceError> {
    column
        .map(|json| {
            serde_json::from_str(&json).map_err(|error| {
                corrupt(
                    database,
                    app_id,
                    0,
                    format!("the application's {which} is not a valid parent pointer: {error}"),
                )
            })
        })
        .transpose()
}

/// A parent pointer as stored (JSON).
pub(crate) fn parent_json(parent: &ParentPointer) -> String {
    serde_json::json!({
        "app_id": parent.app_id,
        "partition_key": parent.partition_key,
        "sequence_id": parent.sequence_id,
    })
    .to_string()
}

/// Why an operation did not happen: the database failed (the whole transaction is rolled
/// back) or the operation was refused (it wrote nothing; the rest of the transaction goes
/// on).
#[derive(Debug)]
pub(crate) enum Failure {
    /// PostgreSQL (or the connection) failed.
    Db(tokio_postgres::Error),
    /// The operation was refused: a conflict, a lease held elsewhere, corrupt data...
    Refused(PersistenceError),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(error: tokio_postgres::Error) -> Self {
        Failure::Db(error)
    }
}

impl From<PersistenceError> for Failure {
    fn from(error: PersistenceError) -> Self {
        Failure::Refused(error)
    }
}

// --------------------------------------------------------------------------------------
// Inline values: the small values a checkpoint keeps in its own row, so that saving it
// writes one row rather than a checkpoint row plus a row per key. Bases, compaction and
// how the state at a sequence id is read are described on the persister.
// --------------------------------------------------------------------------------------

/// The largest `inline_values` a checkpoint keeps in its row, in bytes. PostgreSQL keeps
/// a row of up to ~2 kB in its page (no TOAST), so this is about how much a checkpoint
/// writes, not about pages.
pub(crate) const INLINE_MAX: usize = 512;

/// How many checkpoints with inline values an application has at most since its latest
/// base: the save that finds this many compacts them.
pub(crate) const COMPACT_AFTER: u32 = 128;

/// `delta` as an `inline_values` column, or `None` if it is larger than [`INLINE_MAX`].
pub(crate) fn encode(delta: &StateDelta) -> Option<String> {
    inline::encode(delta, INLINE_MAX)
}

/// The checkpoints of an application up to a sequence id, back to its latest base.
pub(crate) struct SinceBase {
    /// The sequence id of the latest base, if there is one.
    pub(crate) base: Option<i64>,
    /// The checkpoints after it, oldest first.
    pub(crate) rows: Vec<InlineRow>,
}

/// Rows read per query while looking for the latest base (there are at most
/// [`COMPACT_AFTER`] after it, unless a store was written otherwise).
const PAGE: i64 = COMPACT_AFTER as i64 + 2;

/// The latest base of application `app` at or before sequence id `upto`, and the
/// checkpoints after it up to `upto`.
pub(crate) async fn since_base(
    conn: &Conn,
    database: &str,
    app_id: &str,
    app: i64,
    upto: i64,
) -> Result<SinceBase, Failure> {
    let first = conn
        .prepare_cached(
            "SELECT sequence_id, attempt, inline_values FROM burr_checkpoints \
             WHERE app = $1 AND sequence_id <= $2 \
             ORDER BY sequence_id DESC, attempt DESC LIMIT $3",
        )
        .await?;
    let next = conn
        .prepare_cached(
            "SELECT sequence_id, attempt, inline_values FROM burr_checkpoints \
             WHERE app = $1 AND (sequence_id, attempt) < ($2, $3) \
             ORDER BY sequence_id DESC, attempt DESC LIMIT $4",
        )
        .await?;
    let mut since = SinceBase {
        base: None,
        rows: Vec::new(),
    };
    let mut rows = conn.query(&first, &[&app, &upto, &PAGE]).await?;
    'pages: loop {
        let full = rows.len() as i64 == PAGE;
        let mut last = None;
        for row in &rows {
            let sequence_id: i64 = row.try_get(0)?;
            let attempt: i64 = row.try_get(1)?;
            last = Some((sequence_id, attempt));
            let Some(text) = row.try_get::<_, Option<&str>>(2)? else {
                since.base = Some(sequence_id);
                break 'pages;
            };
            let entries = decode(text.as_bytes())
                .map_err(|reason| corrupt(database, app_id, sequence_id, reason))?;
            since.rows.push(InlineRow {
                sequence_id,
                attempt,
                entries,
            });
        }
        match last {
            Some((sequence_id, attempt)) if full => {
                rows = conn
                    .query(&next, &[&app, &sequence_id, &attempt, &PAGE])
                    .await?;
            }
            _ => break,
        }
    }
    since.rows.reverse();
    Ok(since)
}

/// The statement that writes a key's value (NULL: deleted) at a sequence id, replacing
/// one already there.
pub(crate) const UPSERT_VALUE: &str =
    "INSERT INTO burr_values (app, key, sequence_id, value) VALUES ($1, $2, $3, $4) \
     ON CONFLICT (app, key, sequence_id) DO UPDATE SET value = excluded.value";

/// Compact application `app`'s checkpoints with inline values up to sequence id `upto`:
/// write each changed key's last value at the latest one's sequence id, and make that
/// checkpoint a base.
pub(crate) async fn compact(
    conn: &Conn,
    database: &str,
    app_id: &str,
    app: i64,
    upto: i64,
) -> Result<(), Failure> {
    let since = since_base(conn, database, app_id, app, upto).await?;
    let Some(latest) = since.rows.last() else {
        return Ok(());
    };
    let (sequence_id, attempt) = (latest.sequence_id, latest.attempt);
    let latest_keys: Vec<&str> = latest.entries.iter().map(|(key, _)| key.as_str()).collect();
    let latest_keys = serde_json::to_string(&latest_keys).unwrap_or_else(|_| "[]".to_owned());
    let mut last: BTreeMap<String, Option<Value>> = BTreeMap::new();
    for row in since.rows {
        last.extend(row.entries);
    }
    let upsert = conn.prepare_cached(UPSERT_VALUE).await?;
    let writes = last.iter().map(|(key, value)| {
        let value = value.as_ref().map(Value::to_string);
        let upsert = &upsert;
        async move {
            conn.execute(upsert, &[&app, key, &sequence_id, &value])
                .await
        }
    });
    futures::future::try_join_all(writes).await?;
    let base = conn
        .prepare_cached(
            "UPDATE burr_checkpoints SET inline_values = NULL, \
             changed_keys = CASE changed_keys WHEN '' THEN $4 ELSE changed_keys END \
             WHERE app = $1 AND sequence_id = $2 AND attempt = $3",
        )
        .await?;
    conn.execute(&base, &[&app, &sequence_id, &attempt, &latest_keys])
        .await?;
    Ok(())
}

/// The least string greater than every string starting with `prefix` (in code point
/// order, which is the `"C"` collation's order for UTF-8), or `None` when there is none.
pub(crate) fn prefix_end(prefix: &str) -> Option<String> {
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

#[cfg(test)]
mod tests_layout {
    use super::*;

    #[test]
    fn the_end_of_a_prefix_is_its_last_character_plus_one() {
        assert_eq!(prefix_end("app/3/").as_deref(), Some("app/30"));
        assert_eq!(prefix_end("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_end(""), None);
    }
}
