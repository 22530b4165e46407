//! What the `SqlitePersister` tests share: a database file in a temporary directory,
//! checkpoints of completed and failed steps, the state stored at a sequence id, and the
//! check of a corrupt-row error.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use burr_core::persistence::{PersistenceError, Persister, SqlitePersister};
use burr_core::State;

/// A path for a database in a new temporary directory (kept while the guard lives).
pub fn temp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("burr.db");
    (dir, path)
}

// The checkpoints of a completed step and of a failed attempt: burr-core's own
// `testing` module has them (the conformance suite builds on them too).
pub use burr_core::testing::{failed, step};

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
