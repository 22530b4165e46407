//! How a SQL store writes an application's identity, a checkpoint's prior step, sequence
//! ids and times in its columns — shared by the SQLite and PostgreSQL persisters, for any
//! store that keeps the same layout.

use std::time::{Duration, SystemTime};

use crate::persistence::PersistenceError;

/// An application as keyed in memory: (partition key as stored, app id).
pub type AppKey = (String, String);

/// The key of an application; no partition key is stored as the empty string.
pub fn app_key(partition_key: Option<&str>, app_id: &str) -> AppKey {
    (
        partition_column(partition_key).to_owned(),
        app_id.to_owned(),
    )
}

/// A partition key as stored: `None` is the empty string.
pub fn partition_column(partition_key: Option<&str>) -> &str {
    partition_key.unwrap_or("")
}

/// A stored partition key read back: the empty string is `None`.
pub fn partition_from_column(column: &str) -> Option<String> {
    (!column.is_empty()).then(|| column.to_owned())
}

/// A checkpoint's prior step as stored: `''` when it is the checkpoint's own position
/// (as for every completed step), which saves the row a copy of the action's name.
pub fn prior_step_column<'a>(prior_step: Option<&'a str>, position: &str) -> Option<&'a str> {
    prior_step.map(|prior| if prior == position { "" } else { prior })
}

/// A stored prior step read back (see [`prior_step_column`]).
pub fn prior_step_from_column(column: Option<String>, position: &str) -> Option<String> {
    column.map(|prior| {
        if prior.is_empty() {
            position.to_owned()
        } else {
            prior
        }
    })
}

/// A sequence id as stored in a signed 64-bit integer column; one too large is
/// [`PersistenceError::SequenceIdTooLarge`] naming the application.
pub fn sequence_column(app_id: &str, sequence_id: u64) -> Result<i64, PersistenceError> {
    i64::try_from(sequence_id).map_err(|_| PersistenceError::SequenceIdTooLarge {
        app_id: app_id.to_owned(),
        sequence_id,
    })
}

/// A time stored as microseconds since the Unix epoch (see
/// [`micros`](crate::persistence::micros)), read back.
pub fn time_from_micros(micros: i64) -> SystemTime {
    let offset = Duration::from_micros(micros.unsigned_abs());
    let time = if micros >= 0 {
        SystemTime::UNIX_EPOCH.checked_add(offset)
    } else {
        SystemTime::UNIX_EPOCH.checked_sub(offset)
    };
    time.unwrap_or(SystemTime::UNIX_EPOCH)
}
