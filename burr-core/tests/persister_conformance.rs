//! The built-in stores run the conformance suite (`burr_core::testing`): SQLite (with
//! corrupt rows) and the in-memory store, each with every capability.

use std::sync::Mutex;

use burr_core::persistence::{InMemoryPersister, SqlitePersister};
use burr_core::testing::Conformance;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_passes_the_conformance_suite() {
    let dirs = Mutex::new(Vec::new());
    let report = Conformance::new(move || {
        let dir = tempfile::tempdir().expect("temp dir");
        let persister = SqlitePersister::open(dir.path().join("burr.db")).expect("open");
        dirs.lock().unwrap().push(dir);
        persister
    })
    .corrupt_with(|persister: &SqlitePersister, app_id, sequence_id| {
        let conn = rusqlite::Connection::open(persister.path()).unwrap();
        let changed = conn
            .execute(
                "UPDATE burr_checkpoints SET status = 'exploded' WHERE sequence_id = ?2 \
                 AND app = (SELECT id FROM burr_apps WHERE app_id = ?1)",
                (app_id, sequence_id as i64),
            )
            .unwrap();
        assert_eq!(changed, 1);
    })
    .run()
    .await;
    assert!(report.skipped.is_empty(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_in_memory_store_passes_the_conformance_suite() {
    let report = Conformance::new(InMemoryPersister::new).run().await;
    // It keeps rows as values: nothing to corrupt.
    assert_eq!(report.skipped, ["corrupt_rows_give_typed_errors"]);
}
