//! Conversions between burr's records and SQLite columns, and how failures are told apart.

use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::ids::ParentPointer;
use crate::persistence::PersistenceError;

/// An application as keyed in memory: (partition key as stored, app id).
pub(super) type AppKey = (String, String);

/// The key of an application; no partition key is stored as the empty string.
pub(super) fn app_key(partition_key: Option<&str>, app_id: &str) -> AppKey {
    (
        partition_column(partition_key).to_owned(),
        app_id.to_owned(),
    )
}

/// A partition key as stored: `None` is the empty string.
pub(super) fn partition_column(partition_key: Option<&str>) -> &str {
    partition_key.unwrap_or("")
}

/// A stored partition key read back: the empty string is `None`.
pub(super) fn partition_from_column(column: &str) -> Option<String> {
    (!column.is_empty()).then(|| column.to_owned())
}

/// A checkpoint's prior step as stored: `''` when it is the checkpoint's own position
/// (as for every completed step), which saves the row a copy of the action's name.
pub(super) fn prior_step_column<'a>(
    prior_step: Option<&'a str>,
    position: &str,
) -> Option<&'a str> {
    prior_step.map(|prior| if prior == position { "" } else { prior })
}

/// A stored prior step read back (see [`prior_step_column`]).
pub(super) fn prior_step_from_column(column: Option<String>, position: &str) -> Option<String> {
    column.map(|prior| {
        if prior.is_empty() {
            position.to_owned()
        } else {
            prior
        }
    })
}

/// A sequence id as stored (SQLite integers are signed 64-bit).
pub(super) fn sequence_column(app_id: &str, sequence_id: u64) -> Result<i64, PersistenceError> {
    i64::try_from(sequence_id).map_err(|_| PersistenceError::SequenceIdTooLarge {
        app_id: app_id.to_owned(),
        sequence_id,
    })
}

/// A time stored as microseconds since the Unix epoch, read back.
pub(super) fn time_from_micros(micros: i64) -> SystemTime {
    let offset = Duration::from_micros(micros.unsigned_abs());
    let time = if micros >= 0 {
        SystemTime::UNIX_EPOCH.checked_add(offset)
    } else {
        SystemTime::UNIX_EPOCH.checked_sub(offset)
    };
    time.unwrap_or(SystemTime::UNIX_EPOCH)
}

/// Now, in microseconds since the Unix epoch.
pub(super) fn now_micros() -> i64 {
    crate::persistence::micros(SystemTime::now())
}

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
