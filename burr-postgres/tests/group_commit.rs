//! Group commit: the saves of applications running at once share transactions, and every
//! one of them is stored.

use std::sync::Arc;
use std::time::Duration;

use burr_core::persistence::{PersistenceError, Persister};
use burr_core::state::State;
use burr_core::testing::step;
use burr_postgres::testing::TestServer;
use burr_postgres::PostgresPersister;
mod common;
use common::transactions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_applications_share_transactions() {
    let url = TestServer::shared().fresh_database();
    let persister = Arc::new(PostgresPersister::connect(&url).await.unwrap());
    let before = transactions(&url).await;
    let (apps, steps) = (50, 10u64);
    let tasks: Vec<_> = (0..apps)
        .map(|a| {
            let persister = Arc::clone(&persister);
            tokio::spawn(async move {
                let app = format!("app-{a}");
                let mut state = State::new().update("app", a);
                for seq in 0..steps {
                    let next = state.update("seq", seq);
                    persister
                        .save(&step(&app, seq, &state, &next))
                        .await
                        .unwrap();
                    state = next;
                }
                state
            })
        })
        .collect();
    let mut finals = Vec::new();
    for task in tasks {
        finals.push(task.await.unwrap());
    }
    for (a, state) in finals.iter().enumerate() {
        let loaded = persister
            .load(None, &format!("app-{a}"), None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((loaded.sequence_id, &loaded.state), (steps - 1, state));
    }
    // Its backends exit, and report their counts.
    drop(persister);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let used = transactions(&url).await - before;
    let saves = apps as i64 * steps as i64;
    eprintln!("{saves} saves in {used} transactions");
    // At least 1.5 saves per transaction (about 3.5 on a debug build, 10 on a release
    // one, where callers queue faster than commits go).
    assert!(
        used * 3 <= saves * 2,
        "{saves} saves took {used} transactions: they were not grouped"
    );
}

/// A persister on `url` that has saved the first checkpoint (`seq` 0) of `app-0` ..
/// `app-{apps - 1}`, and that state. Each application's first save makes it known: its
/// next saves need no read, and those of applications without a lease share one
/// statement.
async fn known_apps(url: &str, apps: usize) -> (Arc<PostgresPersister>, State) {
    let persister = Arc::new(PostgresPersister::connect(url).await.unwrap());
    let first = State::new().update("seq", 0);
    for a in 0..apps {
        persister
            .save(&step(&format!("app-{a}"), 0, &State::new(), &first))
            .await
            .unwrap();
    }
    (persister, first)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_the_database_refuses_fails_that_save_only() {
    let url = TestServer::shared().fresh_database();
    let apps = 40;
    let (persister, first) = known_apps(&url, apps).await;
    let tasks: Vec<_> = (0..apps)
        .map(|a| {
            let persister = Arc::clone(&persister);
            let first = first.clone();
            tokio::spawn(async move {
                let mut checkpoint = step(&format!("app-{a}"), 1, &first, &first.update("seq", 1));
                if a == 13 {
                    // PostgreSQL's text cannot hold a NUL: the server refuses this row.
                    checkpoint.position = "bad\0position".to_owned();
                }
                persister.save(&checkpoint).await
            })
        })
        .collect();
    for (a, task) in tasks.into_iter().enumerate() {
        let saved = task.await.unwrap();
        let loaded = persister
            .load(None, &format!("app-{a}"), None)
            .await
            .unwrap()
            .unwrap();
        if a == 13 {
            assert!(
                matches!(saved, Err(PersistenceError::Database { .. })),
                "{saved:?}"
            );
            assert_eq!(
                loaded.sequence_id, 0,
                "nothing of the refused save is stored"
            );
        } else {
            saved.unwrap_or_else(|error| panic!("app-{a}'s save failed with the bad one: {error}"));
            assert_eq!(
                (loaded.sequence_id, loaded.state.get::<i64>("seq").unwrap()),
                (1, 1)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_stored_already_is_a_conflict_for_that_save_only() {
    let url = TestServer::shared().fresh_database();
    let apps = 30;
    let (persister, first) = known_apps(&url, apps).await;
    // Another persister stores app-7's next checkpoint: this one still knows seq 0, so
    // its save of seq 1 is planned without a read, in the shared statement.
    let other = PostgresPersister::connect(&url).await.unwrap();
    other.load(None, "app-7", None).await.unwrap().unwrap();
    other
        .save(&step("app-7", 1, &first, &first.update("seq", 100)))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..apps)
        .map(|a| {
            let persister = Arc::clone(&persister);
            let first = first.clone();
            tokio::spawn(async move {
                let checkpoint = step(&format!("app-{a}"), 1, &first, &first.update("seq", 1));
                persister.save(&checkpoint).await
            })
        })
        .collect();
    for (a, task) in tasks.into_iter().enumerate() {
        let saved = task.await.unwrap();
        let loaded = persister
            .load(None, &format!("app-{a}"), None)
            .await
            .unwrap()
            .unwrap();
        if a == 7 {
            assert!(
                matches!(
                    saved,
                    Err(PersistenceError::Conflict { sequence_id: 1, .. })
                ),
                "{saved:?}"
            );
            assert_eq!(
                loaded.state.get::<i64>("seq").unwrap(),
                100,
                "the stored one stays"
            );
        } else {
            saved.unwrap_or_else(|error| panic!("app-{a}'s save failed with app-7's: {error}"));
            assert_eq!(loaded.state.get::<i64>("seq").unwrap(), 1);
        }
    }
}
