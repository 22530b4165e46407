//! [`load_attempt`]: the checkpoint of one attempt at a step, with the state it left.

use std::time::{Duration, UNIX_EPOCH};

use super::{LoadedCheckpoint, PersistenceError, Persister, StepStatus};

/// The checkpoint of attempt `attempt` at `sequence_id`, with the state that attempt left:
/// after a completed attempt, the step's new state; after a failed or cancelled one, the
/// state before the step (a failed step's writes are not applied). `None` when no such
/// attempt is stored.
///
/// Needs the store's [`History`](super::History). The state a failed attempt of the
/// *first* step left is the application's initial state, which the store keeps only while
/// no attempt of that step has completed; after that it is
/// [`PersistenceError::Unsupported`].
pub async fn load_attempt(
    store: &dyn Persister,
    partition_key: Option<&str>,
    app_id: &str,
    sequence_id: u64,
    attempt: u32,
) -> Result<Option<LoadedCheckpoint>, PersistenceError> {
    let history = store.as_history().ok_or(PersistenceError::Unsupported {
        capability: "History",
    })?;
    let rows = history.list_checkpoints(partition_key, app_id).await?;
    let Some(row) = rows
        .into_iter()
        .find(|r| r.sequence_id == sequence_id && r.attempt == attempt)
    else {
        return Ok(None);
    };
    let at = match (row.status, sequence_id) {
        (StepStatus::Completed, seq) => Some(seq),
        (_, 0) => None,
        (_, seq) => Some(seq - 1),
    };
    let state = match at {
        Some(seq) => store.load(partition_key, app_id, Some(seq)).await?,
        // The first step's attempts: the latest keeps the initial state while unfinished.
        None => match store.load(partition_key, app_id, Some(0)).await? {
            Some(latest) if latest.status != StepStatus::Completed => Some(latest),
            _ => {
                return Err(PersistenceError::Unsupported {
                    capability: "History (the initial state, once the first step completed)",
                })
            }
        },
    };
    let Some(state) = state.map(|loaded| loaded.state) else {
        return Ok(None);
    };
    Ok(Some(LoadedCheckpoint {
        partition_key: partition_key.map(str::to_owned),
        app_id: app_id.to_owned(),
        sequence_id,
        position: row.position,
        status: row.status,
        attempt,
        prior_step: row.prior_step,
        created_at: UNIX_EPOCH
            + Duration::from_micros(u64::try_from(row.created_at_us).unwrap_or(0)),
        state,
    }))
}
