//! What the `SqlitePersister` tests share: a database file in a temporary directory,
//! checkpoints of completed and failed steps, the state stored at a sequence id, and the
//! check of a corrupt-row error.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use burr_core::persistence::{
    Checkpoint, PersistenceError, Persister, SqlitePersister, StepStatus,
};
use burr_core::State;

/// A path for a database in a new temporary directory (kept while the guard lives).
pub fn temp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("burr.db");
    (dir, path)
}

/// The checkpoint of a step of `app_id` that turned `before` into `after`.
pub fn step(app_id: &str, sequence_id: u64, before: &State, after: &State) -> Checkpoint {
    Checkpoint {
        partition_key: None,
        app_id: app_id.to_owned(),
        sequence_id,
        position: format!("action{sequence_id}"),
        status: StepStatus::Completed,
        attempt: 1,
        prior_step: Some(format!("action{sequence_id}")),
        created_at: SystemTime::now(),
        delta: after.delta_from(before),
        state: after.clone(),
        error: None,
    }
}

/// A failed attempt of a step: the state before it, no changes.
pub fn failed(app_id: &str, sequence_id: u64, attempt: u32, before: &State) -> Checkpoint {
    Checkpoint {
        status: StepStatus::Failed,
        attempt,
        prior_step: None,
        error: Some("boom".to_owned()),
        ..step(app_id, sequence_id, before, before)
    }
}

/// The state stored at `seq` (the latest when `None`); panics when there is none.
pub async fn state_at(persister: &SqlitePersister, app_id: &str, seq: Option<u64>) -> State {
    persister
        .load(None, app_id, seq)
        .await
        .expect("load")
        .expect("a stored checkpoint")
        .state
}

/// Check that `error` reports a corrupt row of `app_id` at `sequence_id` in `path`, whose
/// reason names `key`.
pub fn assert_corrupt(
    error: &PersistenceError,
    app_id: &str,
    sequence_id: u64,
    path: &Path,
    key: &str,
) {
    match error {
        PersistenceError::Corrupt {
            app_id: found,
            sequence_id: at,
            path: file,
            reason,
        } => {
            assert_eq!((found.as_str(), *at), (app_id, sequence_id));
            assert_eq!(file, path);
            assert!(reason.contains(&format!("`{key}`")), "{reason}");
        }
        other => panic!("expected a corrupt row, got {other}"),
    }
}
