//! `SqlitePersister` on real files: round trips, failures and retries, listings, pruning,
//! bad files and rows, leases across persisters, concurrency, and resuming applications.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use burr_core::actions::action_sync;
use burr_core::ids::ParentPointer;
use burr_core::persistence::{
    AppRecord, AppRecords, Checkpoint, ChildListing, Delete, Durability, History, LeaseStatus,
    Leases, ManualClock, PersistenceError, Persister, Prune, SqliteOptions, SqlitePersister,
    StepStatus,
};
use burr_core::{ApplicationBuilder, Error, Inputs, State};
use serde_json::json;

mod common;
use common::{assert_corrupt, failed, state_at, step, temp};

/// Save steps applying `changes` in turn, from `start`; returns every state after a step.
async fn save_steps(
    persister: &SqlitePersister,
    app_id: &str,
    start: State,
    changes: &[&dyn Fn(&State) -> State],
) -> Vec<State> {
    let mut states = Vec::new();
    let mut state = start;
    for (seq, change) in changes.iter().enumerate() {
        let next = change(&state);
        persister
            .save(&step(app_id, seq as u64, &state, &next))
            .await
            .expect("save");
        states.push(next.clone());
        state = next;
    }
    states
}

#[tokio::test]
async fn every_sequence_id_loads_its_exact_state_after_reopening() {
    let (_dir, path) = temp();
    let persister = SqlitePersister::open(&path).unwrap();
    let start = State::new().update("keep", json!({"nested": [1, 2, 3]}));
    let states = save_steps(
        &persister,
        "app",
        start,
        &[
            &|s| s.update("a", 1).update("b", "x"),
            &|s| s.update("a", 2),
            &|s| s.without(["a"]),
            &|s| s.update("b", json!(null)).update("c", json!([true])),
            &|s| s.update("a", "back"),
        ],
    )
    .await;
    drop(persister);

    // A new persister on the same file: a restarted process.
    let reopened = SqlitePersister::open(&path).unwrap();
    for (seq, expected) in states.iter().enumerate() {
        let loaded = reopened
            .load(None, "app", Some(seq as u64))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(loaded.state, *expected, "state at sequence id {seq}");
        assert_eq!(loaded.sequence_id, seq as u64);
        assert_eq!(loaded.position, format!("action{seq}"));
        assert_eq!(loaded.status, StepStatus::Completed);
    }
    // The first state holds the key no step touched; deletion and re-creation show.
    assert_eq!(
        states[0].get_value("keep"),
        Some(&json!({"nested": [1, 2, 3]}))
    );
    assert!(!state_at(&reopened, "app", Some(2)).await.contains("a"));
    let latest = reopened.load(None, "app", None).await.unwrap().unwrap();
    assert_eq!(latest.sequence_id, 4);
    assert_eq!(latest.state, states[4]);
    assert!(reopened
        .load(None, "app", Some(99))
        .await
        .unwrap()
        .is_none());
    assert!(reopened.load(None, "nobody", None).await.unwrap().is_none());
}

#[tokio::test]
async fn a_large_untouched_value_is_stored_once() {
    let (_dir, path) = temp();
    let persister = SqlitePersister::open(&path).unwrap();
    let big = "x".repeat(1_000_000);
    let mut state = State::new().update("big", big.clone()).update("count", 0);
    for seq in 0..50u64 {
        let next = state.update("count", seq + 1);
        persister
            .save(&step("big", seq, &state, &next))
            .await
            .unwrap();
        state = next;
    }
    let loaded = state_at(&persister, "big", Some(49)).await;
    assert_eq!(loaded.get::<String>("big").unwrap().len(), 1_000_000);
    assert_eq!(loaded.get::<u64>("count").unwrap(), 50);
    drop(persister); // the last connection folds the WAL into the file
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(
        size < 2_000_000,
        "the file holds {size} bytes after 50 steps"
    );
    let reopened = SqlitePersister::open(&path).unwrap();
    assert_eq!(
        state_at(&reopened, "big", Some(0))
            .await
            .get::<String>("big")
            .unwrap(),
        big
    );
}

#[tokio::test]
async fn failed_steps_are_saved_and_retries_count_attempts() {
    let (_dir, path) = temp();
    let persister = SqlitePersister::open(&path).unwrap();
    let s0 = State::new().update("count", 1);
    persister
        .save(&step("app", 0, &State::new(), &s0))
        .await
        .unwrap();
    persister.save(&failed("app", 1, 1, &s0)).await.unwrap();

    let loaded = persister.load(None, "app", None).await.unwrap().unwrap();
    assert_eq!(
        (loaded.sequence_id, loaded.attempt, loaded.status),
        (1, 1, StepStatus::Failed)
    );
    assert_eq!(loaded.state, s0, "a failed step holds the state before it");

    persister.save(&failed("app", 1, 2, &s0)).await.unwrap();
    let s1 = s0.update("count", 2);
    let retry = Checkpoint {
        attempt: 3,
        ..step("app", 1, &s0, &s1)
    };
    persister.save(&retry).await.unwrap();
    let loaded = persister.load(None, "app", Some(1)).await.unwrap().unwrap();
    assert_eq!((loaded.attempt, loaded.status), (3, StepStatus::Completed));
    assert_eq!(loaded.state, s1);

    let rows = persister.list_checkpoints(None, "app").await.unwrap();
    let summary: Vec<_> = rows
        .iter()
        .map(|r| (r.sequence_id, r.attempt, r.status))
        .collect();
    assert_eq!(
        summary,
        [
            (0, 1, StepStatus::Completed),
            (1, 1, StepStatus::Failed),
            (1, 2, StepStatus::Failed),
            (1, 3, StepStatus::Completed),
        ]
    );
    assert_eq!(rows[1].error.as_deref(), Some("boom"));
    assert_eq!(rows[3].changed_keys, ["count"]);

    // The same (sequence id, attempt) again is a conflict, and a second completion of a
    // completed step too.
    let again = persister.save(&retry).await.unwrap_err();
    assert!(
        matches!(
            again,
            PersistenceError::Conflict {
                sequence_id: 1,
                attempt: 3,
                ..
            }
        ),
        "{again}"
    );
    let other = Checkpoint {
        attempt: 4,
        ..retry.clone()
    };
    let again = persister.save(&other).await.unwrap_err();
    assert!(
        matches!(again, PersistenceError::Conflict { sequence_id: 1, .. }),
        "{again}"
    );
    assert_eq!(
        persister.list_checkpoints(None, "app").await.unwrap().len(),
        4
    );
}

#[tokio::test]
async fn the_first_failed_step_of_a_new_app_keeps_its_starting_state() {
    let (_dir, path) = temp();
    let persister = SqlitePersister::open(&path).unwrap();
    let start = State::new().update("question", "why?");
    persister
        .save(&failed("fresh", 0, 1, &start))
        .await
        .unwrap();
    drop(persister);
    let reopened = SqlitePersister::open(&path).unwrap();
    let loaded = reopened.load(None, "fresh", None).await.unwrap().unwrap();
    assert_eq!(loaded.status, StepStatus::Failed);
    assert_eq!(loaded.state, start);
    // The retry (by another persister: no memory of the first attempt) completes it.
    let done = start.update("answer", 42);
    let retry = Checkpoint {
        attempt: 2,
        ..step("fresh", 0, &start, &done)
    };
    reopened.save(&retry).await.unwrap();
    assert_eq!(state_at(&reopened, "fresh", Some(0)).await, done);
}

#[tokio::test]
async fn a_checkpoint_not_following_a_known_one_is_compared_with_the_stored_state() {
    let (_dir, path) = temp();
    let first = SqlitePersister::open(&path).unwrap();
    let s0 = State::new().update("a", 1).update("b", 2);
    first
        .save(&step("app", 0, &State::new(), &s0))
        .await
        .unwrap();
    drop(first);
    // Another persister saves the next step with a delta that misses a change made
    // outside any step ("c" added, "b" removed): the stored state must still be exact.
    let second = SqlitePersister::open(&path).unwrap();
    let outside = s0.update("c", 3).without(["b"]);
    let s1 = outside.update("a", 10);
    second.save(&step("app", 1, &outside, &s1)).await.unwrap();
    assert_eq!(state_at(&second, "app", Some(1)).await, s1);
    assert_eq!(state_at(&second, "app", Some(0)).await, s0);
    // Going back before the latest stored step is refused.
    let back = second.save(&step("app", 0, &s0, &s0)).await;
    assert!(
        matches!(back, Err(PersistenceError::Conflict { .. })),
        "{back:?}"
    );
    let third = SqlitePersister::open(&path).unwrap();
    let stale = Checkpoint {
        attempt: 2,
        ..step("app", 0, &s0, &s0)
    };
    let refused = third.save(&stale).await.unwrap_err();
    assert!(
        matches!(
            &refused,
            PersistenceError::OutOfOrder {
                sequence_id: 0,
                latest: 1,
                ..
            }
        ),
        "{refused}"
    );
    assert!(refused.to_string().contains("burr.db"), "{refused}");
}

#[tokio::test]
async fn a_step_from_a_state_unrelated_to_the_stored_one_is_stored_exactly() {
    let (_dir, path) = temp();
    let persister = SqlitePersister::open(&path).unwrap();
    let states = save_steps(
        &persister,
        "app",
        State::new(),
        &[&|s| s.update("a", 1).update("b", 2)],
    )
    .await;
    // A new application on the same app id, built from its own state rather than loaded,
    // whose delta (a snapshot of that state) names no deletion.
    let fresh = State::new().update("c", 3);
    let cp = Checkpoint {
        delta: burr_core::state::StateDelta::snapshot(&fresh),
        ..step("app", 1, &fresh, &fresh)
    };
    persister.save(&cp).await.unwrap();
    assert_eq!(state_at(&persister, "app", Some(1)).await, fresh);
    assert_eq!(state_at(&persister, "app", Some(0)).await, states[0]);
}

#[tokio::test]
async fn a_retry_by_another_persister_replaces_what_its_failed_attempt_stored() {
    let (_dir, path) = temp();
    let first = SqlitePersister::open(&path).unwrap();
    let s0 = State::new().update("x", 1);
    first
        .save(&step("app", 0, &State::new(), &s0))
        .await
        .unwrap();
    // A failed step whose starting state differs from the stored one (values overridden
    // before it): the difference is stored with it.
    let overridden = s0.update("x", 2);
    first.save(&failed("app", 1, 1, &overridden)).await.unwrap();
    assert_eq!(state_at(&first, "app", Some(1)).await, overridden);
    drop(first);
    // Another process retries it from yet another state.
    let second = SqlitePersister::open(&path).unwrap();
    let done = s0.update("y", 1);
    let retry = Checkpoint {
        attempt: 2,
        ..step("app", 1, &s0, &done)
    };
    second.save(&retry).await.unwrap();
    assert_eq!(state_at(&second, "app", Some(1)).await, done);
}

#[tokio::test]
async fn prior_steps_round_trip_whether_or_not_they_are_the_position() {
    let (_dir, path) = temp();
    let persister = SqlitePersister::open(&path).unwrap();
    let state = State::new().update("a", 1);
    let cases: [(&str, StepStatus, Option<&str>); 4] = [
        ("load", StepStatus::Failed, None),
        ("load", StepStatus::Completed, Some("load")),
        ("load", StepStatus::Failed, Some("load")),
        ("check", StepStatus::Failed, Some("load")),
    ];
    for (seq, (position, status, prior)) in cases.iter().enumerate() {
        persister
            .save(&Checkpoint {
                position: (*position).to_owned(),
                status: *status,
                prior_step: prior.map(str::to_owned),
                ..step("app", seq as u64, &state, &state)
            })
            .await
            .unwrap();
    }
    let listed = persister.list_checkpoints(None, "app").await.unwrap();
    for (seq, (position, _, prior)) in cases.iter().enumerate() {
        assert_eq!(listed[seq].position, *position);
        assert_eq!(listed[seq].prior_step.as_deref(), *prior, "at {seq}");
        let loaded = persister
            .load(None, "app", Some(seq as u64))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(loaded.prior_step.as_deref(), *prior, "loaded at {seq}");
    }
}

#[tokio::test]
async fn app_ids_are_listed_newest_first_per_partition_key() {
    let (_dir, path) = temp();
    let persister = SqlitePersister::open(&path).unwrap();
    let record = |pk: Option<&str>, id: &str| AppRecord {
        partition_key: pk.map(str::to_owned),
        app_id: id.to_owned(),
        created_at_us: 1,
        fork_parent: None,
        spawning_parent: None,
        code: None,
    };
    persister
        .register_app(&record(None, "first"))
        .await
        .unwrap();
    persister
        .register_app(&record(Some("alice"), "a1"))
        .await
        .unwrap();
    persister
        .register_app(&record(None, "second"))
        .await
        .unwrap();
    persister
        .register_app(&record(Some("alice"), "a2"))
        .await
        .unwrap();
    persister
        .register_app(&record(None, "first"))
        .await
        .unwrap(); // again: no change
    let mut cp = step("third", 0, &State::new(), &State::new().update("x", 1));
    persister.save(&cp).await.unwrap(); // saving records an unknown app
    cp.partition_key = Some("alice".to_owned());
    cp.app_id = "a3".to_owned();
    persister.save(&cp).await.unwrap();

    assert_eq!(
        persister.list_app_ids(None).await.unwrap(),
        ["third", "second", "first"]
    );
    assert_eq!(
        persister.list_app_ids(Some("alice")).await.unwrap(),
        ["a3", "a2", "a1"]
    );
    assert!(persister
        .list_app_ids(Some("bob"))
        .await
        .unwrap()
        .is_empty());
    // The same app id under another partition key is another application.
    assert!(persister
        .load(Some("alice"), "third", None)
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        state_at(&persister, "third", None)
            .await
            .get::<i64>("x")
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn app_ids_are_listed_by_prefix_per_partition_key() {
    let (_dir, path) = temp();
    let persister = SqlitePersister::open(&path).unwrap();
    let record = |pk: Option<&str>, id: &str| AppRecord {
        partition_key: pk.map(str::to_owned),
        app_id: id.to_owned(),
        created_at_us: 1,
        fork_parent: None,
        spawning_parent: None,
        code: None,
    };
    for id in [
        "p/1/a",
        "p/1/b%2Fc",
        "p/1",
        "p/10/x",
        "p/1/é",
        "p/10",
        "q/1/a",
        "é1",
        "ê",
        "\u{10FFFF}x",
    ] {
        persister.register_app(&record(None, id)).await.unwrap();
    }
    persister
        .register_app(&record(Some("alice"), "p/1/z"))
        .await
        .unwrap();
    let listed = |pk: Option<&'static str>, prefix: &'static str| {
        let persister = persister.clone();
        async move {
            let mut ids = persister
                .list_app_ids_with_prefix(pk, prefix)
                .await
                .unwrap();
            ids.sort();
            ids
        }
    };
    assert_eq!(listed(None, "p/1/").await, ["p/1/a", "p/1/b%2Fc", "p/1/é"]);
    assert_eq!(listed(Some("alice"), "p/1/").await, ["p/1/z"]);
    assert_eq!(listed(None, "é").await, ["é1"]);
    assert_eq!(listed(None, "\u{10FFFF}").await, ["\u{10FFFF}x"]);
    assert!(listed(Some("bob"), "p/").await.is_empty());
    assert_eq!(listed(Some("alice"), "").await, ["p/1/z"]);
}

#[tokio::test]
async fn app_records_keep_their_parent_pointers() {
    let (_dir, path) = temp();
    let persister = SqlitePersister::open(&path).unwrap();
    let parent = ParentPointer {
        app_id: "root".to_owned(),
        partition_key: Some("pk".to_owned()),
        sequence_id: Some(7),
    };
    let record = AppRecord {
        partition_key: Some("pk".to_owned()),
        app_id: "child".to_owned(),
        created_at_us: 1_700_000_000_123_456,
        fork_parent: None,
        spawning_parent: Some(parent.clone()),
        code: None,
    };
    persister.register_app(&record).await.unwrap();
    let fork = AppRecord {
        fork_parent: Some(ParentPointer {
            sequence_id: None,
            ..parent
        }),
        spawning_parent: None,
        code: None,
        created_at_us: 5,
        ..record.clone()
    };
    persister.register_app(&fork).await.unwrap();
    let stored = persister.app(Some("pk"), "child").await.unwrap().unwrap();
    assert_eq!(
        stored.created_at_us, record.created_at_us,
        "the first record stays"
    );
    assert_eq!(stored.spawning_parent, record.spawning_parent);
    assert_eq!(
        stored.fork_parent, fork.fork_parent,
        "a missing pointer is filled in"
    );
    assert!(persister.app(None, "child").await.unwrap().is_none());
}

#[tokio::test]
async fn checkpoint_listings_keep_sub_second_times() {
    let (_dir, path) = temp();
    let persister = SqlitePersister::open(&path).unwrap();
    let at = SystemTime::UNIX_EPOCH + Duration::from_micros(1_700_000_000_654_321);
    let cp = Checkpoint {
        created_at: at,
        ..step(
            "app",
            0,
            &State::new(),
            &State::new().update("k", 1).update("j", 2),
        )
    };
    persister.save(&cp).await.unwrap();
    let rows = persister.list_checkpoints(None, "app").await.unwrap();
    assert_eq!(rows[0].created_at_us, 1_700_000_000_654_321);
    assert_eq!(rows[0].changed_keys, ["j", "k"]);
    assert_eq!(rows[0].prior_step.as_deref(), Some("action0"));
    let loaded = persister.load(None, "app", None).await.unwrap().unwrap();
    assert_eq!(loaded.created_at, at);
    assert!(persister
        .list_checkpoints(None, "nobody")
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn delete_removes_an_app_and_nothing_else() {
    let (_dir, path) = temp();
    let persister = SqlitePersister::open(&path).unwrap();
    for app in ["gone", "kept"] {
        save_steps(
            &persister,
            app,
            State::new(),
            &[&|s| s.update("v", 1), &|s| s.update("v", 2)],
        )
        .await;
    }
    assert!(persister.delete_app(None, "gone").await.unwrap());
    assert!(!persister.delete_app(None, "gone").await.unwrap());
    assert!(persister.load(None, "gone", None).await.unwrap().is_none());
    assert!(persister
        .list_checkpoints(None, "gone")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(persister.list_app_ids(None).await.unwrap(), ["kept"]);
    assert_eq!(
        state_at(&persister, "kept", None)
            .await
            .get::<i64>("v")
            .unwrap(),
        2
    );
    // The id can be used again from scratch.
    save_steps(&persister, "gone", State::new(), &[&|s| s.update("w", 1)]).await;
    assert_eq!(
        state_at(&persister, "gone", None).await,
        State::new().update("w", 1)
    );
}

#[tokio::test]
async fn prune_keeps_the_last_checkpoints_loadable() {
    let (_dir, path) = temp();
    let persister = SqlitePersister::open(&path).unwrap();
    let start = State::new()
        .update("untouched", "forever")
        .update("doomed", 0);
    let states = save_steps(
        &persister,
        "app",
        start,
        &[
            &|s| s.update("a", 1),
            &|s| s.update("b", 1).without(["doomed"]),
            &|s| s.update("a", 2),
            &|s| s.update("c", 1),
            &|s| s.update("a", 3).without(["b"]),
            &|s| s.update("d", 1),
        ],
    )
    .await;
    assert_eq!(persister.prune(None, "app", 3).await.unwrap(), 3);
    let rows = persister.list_checkpoints(None, "app").await.unwrap();
    assert_eq!(
        rows.iter().map(|r| r.sequence_id).collect::<Vec<_>>(),
        [3, 4, 5]
    );
    for seq in 3..6 {
        assert_eq!(
            state_at(&persister, "app", Some(seq)).await,
            states[seq as usize],
            "at {seq}"
        );
    }
    assert!(persister
        .load(None, "app", Some(2))
        .await
        .unwrap()
        .is_none());
    // Steps after a prune still build on the right state.
    let next = states[5].update("e", 1);
    persister
        .save(&step("app", 6, &states[5], &next))
        .await
        .unwrap();
    assert_eq!(state_at(&persister, "app", None).await, next);
    assert_eq!(persister.prune(None, "app", 10).await.unwrap(), 0);
    assert_eq!(persister.prune(None, "app", 0).await.unwrap(), 4);
    assert!(persister.load(None, "app", None).await.unwrap().is_none());
    let unknown = persister.prune(None, "nobody", 1).await.unwrap_err();
    assert!(
        matches!(unknown, PersistenceError::UnknownApp { .. }),
        "{unknown}"
    );
}

#[tokio::test]
async fn a_retry_after_a_prune_at_its_failed_step_builds_on_the_folded_values() {
    let (_dir, path) = temp();
    let persister = SqlitePersister::open(&path).unwrap();
    let states = save_steps(
        &persister,
        "app",
        State::new(),
        &[&|s| s.update("a", 1), &|s| s.update("b", 1)],
    )
    .await;
    persister
        .save(&failed("app", 2, 1, &states[1]))
        .await
        .unwrap();
    assert_eq!(persister.prune(None, "app", 1).await.unwrap(), 2);
    assert_eq!(state_at(&persister, "app", Some(2)).await, states[1]);
    let done = states[1].update("a", 2);
    persister
        .save(&Checkpoint {
            attempt: 2,
            ..step("app", 2, &states[1], &done)
        })
        .await
        .unwrap();
    assert_eq!(state_at(&persister, "app", Some(2)).await, done);
}

#[test]
fn a_database_of_a_newer_schema_is_refused() {
    let (_dir, path) = temp();
    drop(SqlitePersister::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let error = SqlitePersister::open(&path).unwrap_err();
    assert!(
        matches!(error, PersistenceError::SchemaTooNew { found: 99, supported, .. } if supported == SqlitePersister::SCHEMA_VERSION),
        "{error}"
    );
    assert!(
        error.to_string().contains(&path.display().to_string()),
        "{error}"
    );
}

#[test]
fn files_that_are_not_burr_databases_are_refused() {
    let (dir, path) = temp();
    std::fs::write(
        &path,
        "just some text, long enough to look like a header of a file\n".repeat(20),
    )
    .unwrap();
    let error = SqlitePersister::open(&path).unwrap_err();
    assert!(
        matches!(error, PersistenceError::NotABurrDatabase { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("burr.db"), "{error}");
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .starts_with("just some text"),
        "the file is untouched"
    );

    let other = dir.path().join("other.db");
    let conn = rusqlite::Connection::open(&other).unwrap();
    conn.execute_batch("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
        .unwrap();
    drop(conn);
    let error = SqlitePersister::open(&other).unwrap_err();
    assert!(
        matches!(&error, PersistenceError::NotABurrDatabase { reason, .. } if reason.contains("invoices")),
        "{error}"
    );
    let conn = rusqlite::Connection::open(&other).unwrap();
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name LIKE 'burr%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 0, "nothing was created in someone else's database");
}

#[test]
fn a_missing_directory_is_an_open_error_naming_the_file() {
    let (dir, _) = temp();
    let path = dir.path().join("no").join("such").join("burr.db");
    let error = SqlitePersister::open(&path).unwrap_err();
    assert!(matches!(error, PersistenceError::Open { .. }), "{error}");
    assert!(
        error.to_string().contains(&path.display().to_string()),
        "{error}"
    );
    let cause = std::error::Error::source(&error)
        .expect("a cause")
        .to_string();
    assert!(cause.contains("does not exist"), "{cause}");
}

/// A directory where no file can be created, even by root (tests may run as root, to
/// whom a read-only directory is writable): sysfs refuses new files to everyone.
#[test]
fn a_directory_where_the_file_cannot_be_created_is_an_open_error_naming_the_file() {
    let path = Path::new("/sys/burr.db");
    if !Path::new("/sys").is_dir() || std::fs::File::create(path).is_ok() {
        return; // Not Linux, or a sysfs that takes files: nothing to test here.
    }
    let error = SqlitePersister::open(path).unwrap_err();
    assert!(matches!(error, PersistenceError::Open { .. }), "{error}");
    assert!(error.to_string().contains("/sys/burr.db"), "{error}");
    // The operating system's reason, not SQLite's "unable to open database file".
    let cause = std::error::Error::source(&error).expect("a cause");
    let io = cause
        .downcast_ref::<std::io::Error>()
        .expect("an I/O error");
    assert_eq!(io.kind(), std::io::ErrorKind::PermissionDenied, "{io}");
    assert!(!path.exists());
}

#[tokio::test]
async fn a_corrupt_value_names_the_app_and_sequence_id_and_spoils_nothing_else() {
    let (_dir, path) = temp();
    let persister = SqlitePersister::open(&path).unwrap();
    // `b` is too large to stay in its checkpoint's row: it gets a value row.
    let large = "v".repeat(200);
    for app in ["broken", "fine"] {
        save_steps(
            &persister,
            app,
            State::new(),
            &[&|s| s.update("a", 1), &|s| s.update("b", "v".repeat(200))],
        )
        .await;
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    let changed = conn
        .execute(
            "UPDATE burr_values SET value = '{not json' WHERE key = 'b' AND app = \
             (SELECT id FROM burr_apps WHERE app_id = 'broken')",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(conn);

    for _ in 0..2 {
        let error = persister.load(None, "broken", None).await.unwrap_err();
        assert_corrupt(&error, "broken", 1, &path, "b");
    }
    // The step before the bad value, and other apps, still load.
    assert_eq!(
        state_at(&persister, "broken", Some(0)).await,
        State::new().update("a", 1)
    );
    assert_eq!(
        state_at(&persister, "fine", None).await,
        State::new().update("a", 1).update("b", large)
    );
    assert_eq!(
        persister
            .list_checkpoints(None, "broken")
            .await
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn a_lease_is_exclusive_across_persisters_until_released() {
    let (_dir, path) = temp();
    let first = SqlitePersister::open(&path).unwrap();
    let second = SqlitePersister::open(&path).unwrap();
    let ttl = Duration::from_secs(60);
    let lease = first.acquire_lease(None, "app", ttl).await.unwrap();

    let error = second.acquire_lease(None, "app", ttl).await.unwrap_err();
    match &error {
        PersistenceError::AppLocked { app_id, holder } => {
            assert_eq!(app_id, "app");
            assert_eq!(holder, &lease.holder);
            assert!(
                holder.contains(&format!("pid {}", std::process::id())),
                "{holder}"
            );
        }
        other => panic!("expected AppLocked, got {other}"),
    }
    // The same persister does not hand it out twice either.
    assert!(matches!(
        first.acquire_lease(None, "app", ttl).await,
        Err(PersistenceError::AppLocked { .. })
    ));
    // Other app ids and partition keys are free.
    second.acquire_lease(Some("pk"), "app", ttl).await.unwrap();

    first.release_lease(&lease).unwrap();
    let taken = second.acquire_lease(None, "app", ttl).await.unwrap();
    assert_ne!(taken.holder, lease.holder);
}

/// Rewrite the lease row of `app_id` by hand.
fn edit_lease(path: &Path, app_id: &str, set: &str) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let changed = conn
        .execute(
            &format!("UPDATE burr_leases SET {set} WHERE app_id = ?1"),
            [app_id],
        )
        .unwrap();
    assert_eq!(changed, 1);
}

#[tokio::test]
async fn a_lease_whose_holder_process_is_gone_is_taken_over() {
    let (_dir, path) = temp();
    let ttl = Duration::from_secs(600);
    let holder = SqlitePersister::open(&path).unwrap();
    holder.acquire_lease(None, "app", ttl).await.unwrap();
    // Make the row look like it belongs to a process of this machine that has exited.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    edit_lease(
        &path,
        "app",
        &format!("pid = {dead}, holder = 'the dead one'"),
    );

    let other = SqlitePersister::open(&path).unwrap();
    let lease = other.acquire_lease(None, "app", ttl).await.unwrap();
    assert_ne!(lease.holder, "the dead one");
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_and_its_old_holder_cannot_save() {
    let (_dir, path) = temp();
    let ttl = Duration::from_secs(600);
    // The old runner's clock: moved forward below rather than waited for.
    let clock = Arc::new(ManualClock::new());
    let old = SqlitePersister::open_with(&path, SqliteOptions::new().clock(clock.clone())).unwrap();
    old.acquire_lease(None, "app", ttl).await.unwrap();
    let s0 = State::new().update("n", 0);
    old.save(&step("app", 0, &State::new(), &s0)).await.unwrap();
    // A holder on another machine (its pid means nothing here) whose lease expired.
    edit_lease(&path, "app", "machine = 'elsewhere', expires_at_us = 0");

    let new = SqlitePersister::open(&path).unwrap();
    let lease = new.acquire_lease(None, "app", ttl).await.unwrap();
    // The old runner's lease now belongs to the new one. A save checks the lease when it
    // was renewed more than a second ago: until then, the old runner saves on trust.
    let s1 = s0.update("n", 1);
    old.save(&step("app", 1, &s0, &s1)).await.unwrap();
    clock.advance(Duration::from_millis(1100));
    // Then it must not save.
    let error = old
        .save(&step("app", 2, &s1, &s1.update("n", 2)))
        .await
        .unwrap_err();
    match &error {
        PersistenceError::LeaseLost { app_id, holder } => {
            assert_eq!(app_id, "app");
            assert_eq!(holder, &lease.holder);
        }
        other => panic!("expected LeaseLost, got {other}"),
    }
    assert!(
        new.load(None, "app", Some(2)).await.unwrap().is_none(),
        "nothing was saved"
    );
}

#[tokio::test]
async fn a_live_holder_on_this_machine_keeps_its_lease_even_expired_in_between() {
    let (_dir, path) = temp();
    let ttl = Duration::from_secs(600);
    let holder = SqlitePersister::open(&path).unwrap();
    holder.acquire_lease(None, "app", ttl).await.unwrap();
    let other = SqlitePersister::open(&path).unwrap();
    // Unexpired, and its process (this one) is alive.
    assert!(matches!(
        other.acquire_lease(None, "app", ttl).await,
        Err(PersistenceError::AppLocked { .. })
    ));
    // A reused pid (another start time) is not the holder.
    edit_lease(&path, "app", "pid_started = pid_started + 1");
    other.acquire_lease(None, "app", ttl).await.unwrap();
}

/// The expiry time of the lease row of `app_id`.
fn lease_expiry(path: &Path, app_id: &str) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row(
        "SELECT expires_at_us FROM burr_leases WHERE app_id = ?1",
        [app_id],
        |row| row.get(0),
    )
    .unwrap()
}

#[tokio::test]
async fn a_held_lease_is_renewed_in_the_background_while_nothing_is_saved() {
    let (_dir, path) = temp();
    let holder = SqlitePersister::open(&path).unwrap();
    // Renewed in the background every third of its time to live.
    holder
        .acquire_lease(None, "app", Duration::from_millis(300))
        .await
        .unwrap();
    let mut expiry = lease_expiry(&path, "app");
    for renewal in 0..2 {
        let waited = std::time::Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let now = lease_expiry(&path, "app");
            if now > expiry {
                expiry = now;
                break;
            }
            assert!(
                waited.elapsed() < Duration::from_secs(30),
                "renewal {renewal} never came"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_saves_of_a_hundred_apps_all_land() {
    let (_dir, path) = temp();
    let persister = SqlitePersister::open(&path).unwrap();
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let persister = persister.clone();
            tokio::spawn(async move {
                let app = format!("app-{i}");
                let mut state = State::new().update("owner", i);
                for seq in 0..10u64 {
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
    let mut expected = Vec::new();
    for task in tasks {
        expected.push(task.await.unwrap());
    }
    let reader = SqlitePersister::open(&path).unwrap();
    assert_eq!(reader.list_app_ids(None).await.unwrap().len(), 100);
    for (i, state) in expected.iter().enumerate() {
        let app = format!("app-{i}");
        assert_eq!(state_at(&reader, &app, None).await, *state);
        assert_eq!(reader.list_checkpoints(None, &app).await.unwrap().len(), 10);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_persister_reads_while_one_writes() {
    let (_dir, path) = temp();
    let writer = SqlitePersister::open(&path).unwrap();
    let reader = SqlitePersister::open(&path).unwrap();
    writer
        .save(&step("app", 0, &State::new(), &State::new().update("n", 0)))
        .await
        .unwrap();
    let writing = tokio::spawn(async move {
        let mut state = State::new().update("n", 0);
        for seq in 1..300u64 {
            let next = state.update("n", seq);
            writer.save(&step("app", seq, &state, &next)).await.unwrap();
            state = next;
        }
    });
    let mut seen = 0;
    let mut reads = 0;
    while !writing.is_finished() || reads == 0 {
        let loaded = reader.load(None, "app", None).await.unwrap().unwrap();
        let n: u64 = loaded.state.get("n").unwrap();
        assert_eq!(n, loaded.sequence_id, "a consistent snapshot");
        assert!(n >= seen, "never goes back");
        seen = n;
        reads += 1;
        tokio::task::yield_now().await;
    }
    writing.await.unwrap();
    assert_eq!(
        reader
            .load(None, "app", None)
            .await
            .unwrap()
            .unwrap()
            .sequence_id,
        299
    );
}

#[tokio::test]
async fn full_durability_round_trips() {
    let (_dir, path) = temp();
    let persister =
        SqlitePersister::open_with(&path, SqliteOptions::new().durability(Durability::Full))
            .unwrap();
    let states = save_steps(
        &persister,
        "app",
        State::new(),
        &[&|s| s.update("a", 1), &|s| s.update("a", 2)],
    )
    .await;
    drop(persister);
    let reopened = SqlitePersister::open(&path).unwrap();
    assert_eq!(state_at(&reopened, "app", None).await, states[1]);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

// Through applications.

fn counter(persister: Arc<SqlitePersister>, app_id: &str) -> ApplicationBuilder {
    let increment = action_sync("increment", |s: State, _, _| s.increment("count", 1))
        .reads(["count"])
        .writes(["count"]);
    let fail_once = action_sync("maybe_fail", |s: State, i: &Inputs, _| {
        if i.get("fail").and_then(|v| v.as_bool()) == Some(true) {
            Err(std::io::Error::other("asked to fail"))
        } else {
            Ok(s.update("checked", true))
        }
    })
    .reads(["count"])
    .writes(["checked"])
    .optional_inputs(["fail"]);
    ApplicationBuilder::new()
        .with_actions([increment, fail_once])
        .with_transitions([("increment", "maybe_fail"), ("maybe_fail", "increment")])
        .with_app_id(app_id)
        .with_state(
            State::new()
                .update("count", 0)
                .update("blob", "x".repeat(10_000)),
        )
        .with_entrypoint("increment")
        .with_state_persister(persister.clone())
        .initialize_from(persister)
}

#[tokio::test]
async fn an_application_resumes_where_it_stopped() {
    let (_dir, path) = temp();
    let persister = Arc::new(SqlitePersister::open(&path).unwrap());
    let mut app = counter(persister.clone(), "resumable")
        .build()
        .await
        .unwrap();
    for _ in 0..3 {
        app.step(Inputs::new()).await.unwrap().unwrap();
    }
    assert_eq!(app.sequence_id(), Some(2));
    eprintln!(
        "ROWS {:?}",
        persister.list_checkpoints(None, "resumable").await.unwrap()
    );
    eprintln!(
        "STATE0 {:?}",
        persister
            .load(None, "resumable", Some(0))
            .await
            .unwrap()
            .unwrap()
            .state
            .keys()
            .collect::<Vec<_>>()
    );
    let state = app.state().clone();
    drop(app);
    drop(persister);

    let persister = Arc::new(SqlitePersister::open(&path).unwrap());
    let mut app = counter(persister.clone(), "resumable")
        .build()
        .await
        .unwrap();
    assert_eq!(app.sequence_id(), Some(2));
    assert_eq!(app.state(), &state);
    assert_eq!(app.next_action().unwrap(), Some("maybe_fail"));
    let step = app.step(Inputs::new()).await.unwrap().unwrap();
    assert_eq!((step.action.as_str(), step.sequence_id), ("maybe_fail", 3));
    let stored = persister
        .load(None, "resumable", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.state, app.state().clone());
    assert_eq!(stored.state.get::<String>("blob").unwrap().len(), 10_000);
}

#[tokio::test]
async fn a_failed_step_is_retried_after_a_restart_under_its_sequence_id() {
    let (_dir, path) = temp();
    let persister = Arc::new(SqlitePersister::open(&path).unwrap());
    let mut app = counter(persister.clone(), "retry").build().await.unwrap();
    app.step(Inputs::new()).await.unwrap();
    let fail = Inputs::from_iter([("fail".to_owned(), json!(true))]);
    assert!(app.step(fail).await.is_err());
    drop(app);
    drop(persister);

    let persister = Arc::new(SqlitePersister::open(&path).unwrap());
    let mut app = counter(persister.clone(), "retry").build().await.unwrap();
    assert_eq!(app.next_action().unwrap(), Some("maybe_fail"));
    let step = app.step(Inputs::new()).await.unwrap().unwrap();
    assert_eq!(step.sequence_id, 1);
    let rows = persister.list_checkpoints(None, "retry").await.unwrap();
    let summary: Vec<_> = rows
        .iter()
        .map(|r| (r.sequence_id, r.attempt, r.status))
        .collect();
    assert_eq!(
        summary,
        [
            (0, 1, StepStatus::Completed),
            (1, 1, StepStatus::Failed),
            (1, 2, StepStatus::Completed)
        ]
    );
}

#[tokio::test]
async fn overridden_values_are_saved_with_the_next_step() {
    let (_dir, path) = temp();
    let persister = Arc::new(SqlitePersister::open(&path).unwrap());
    let mut app = counter(persister.clone(), "overridden")
        .build()
        .await
        .unwrap();
    app.step(Inputs::new()).await.unwrap();
    drop(app);
    let mut app = counter(persister.clone(), "overridden")
        .override_state_values(
            State::new()
                .update("count", 100)
                .update("note", "set by hand"),
        )
        .build()
        .await
        .unwrap();
    app.step(Inputs::new()).await.unwrap();
    let stored = persister
        .load(None, "overridden", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.state, app.state().clone());
    assert_eq!(stored.state.get::<String>("note").unwrap(), "set by hand");
    assert_eq!(stored.state.get::<i64>("count").unwrap(), 100);
}

#[tokio::test]
async fn a_fork_stores_the_state_it_starts_from() {
    let (_dir, path) = temp();
    let persister = Arc::new(SqlitePersister::open(&path).unwrap());
    let mut app = counter(persister.clone(), "source").build().await.unwrap();
    app.step(Inputs::new()).await.unwrap();
    app.step(Inputs::new()).await.unwrap();
    let mut fork = counter(persister.clone(), "fork")
        .fork_from_app_id("source")
        .fork_from_sequence_id(0)
        .build()
        .await
        .unwrap();
    fork.step(Inputs::new()).await.unwrap();
    let stored = persister.load(None, "fork", None).await.unwrap().unwrap();
    assert_eq!(stored.state, fork.state().clone());
    assert_eq!(stored.state.get::<String>("blob").unwrap().len(), 10_000);
    let record = persister.app(None, "fork").await.unwrap().unwrap();
    assert_eq!(record.fork_parent.unwrap().app_id, "source");
}

#[tokio::test]
async fn a_second_application_on_a_running_app_id_is_refused() {
    let (_dir, path) = temp();
    let first = Arc::new(SqlitePersister::open(&path).unwrap());
    let mut running = counter(first.clone(), "busy").build().await.unwrap();
    running.step(Inputs::new()).await.unwrap();

    // Another persister on the file stands for another process.
    let second = Arc::new(SqlitePersister::open(&path).unwrap());
    let error = counter(second.clone(), "busy").build().await.unwrap_err();
    assert!(
        matches!(
            &error,
            Error::Persistence {
                source: PersistenceError::AppLocked { .. },
                ..
            }
        ),
        "{error}"
    );
    drop(running);
    let mut resumed = counter(second, "busy").build().await.unwrap();
    assert_eq!(resumed.sequence_id(), Some(0));
    resumed.step(Inputs::new()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_save_does_not_spoil_the_saves_committed_with_it() {
    let (_dir, path) = temp();
    let persister = SqlitePersister::open(&path).unwrap();
    let s0 = State::new().update("n", 0);
    for i in 0..50 {
        persister
            .save(&step(&format!("app-{i}"), 0, &State::new(), &s0))
            .await
            .unwrap();
    }
    // Each app gets a duplicate of its step 0 and a good step 1, all at once: many land
    // in the same transaction.
    let tasks: Vec<_> = (0..50)
        .flat_map(|i| {
            let app = format!("app-{i}");
            let duplicate = step(&app, 0, &State::new(), &s0);
            let next = step(&app, 1, &s0, &s0.update("n", i));
            [duplicate, next].map(|cp| {
                let persister = persister.clone();
                tokio::spawn(async move { (cp.sequence_id, persister.save(&cp).await) })
            })
        })
        .collect();
    for task in tasks {
        match task.await.unwrap() {
            (0, result) => assert!(
                matches!(result, Err(PersistenceError::Conflict { .. })),
                "{result:?}"
            ),
            (_, result) => result.unwrap(),
        }
    }
    for i in 0..50 {
        let loaded = persister
            .load(None, &format!("app-{i}"), None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (loaded.sequence_id, loaded.state.get::<i64>("n").unwrap()),
            (1, i)
        );
    }
}

/// Run by `a_lease_held_by_another_process_is_freed_when_it_is_killed` as a separate
/// process: saves 200 steps, takes a lease, says so, and waits to be killed.
#[tokio::test]
#[ignore = "run as a child process by another test"]
async fn child_process_holding_a_lease() {
    let Ok(path) = std::env::var("BURR_SQLITE_CHILD_DB") else {
        return;
    };
    let persister = SqlitePersister::open(&path).unwrap();
    let lease = persister
        .acquire_lease(None, "shared", Duration::from_secs(600))
        .await
        .unwrap();
    let mut state = State::new();
    for seq in 0..200u64 {
        let next = state.update("n", seq);
        persister
            .save(&step("child-app", seq, &state, &next))
            .await
            .unwrap();
        state = next;
    }
    println!("READY {}", lease.holder);
    tokio::time::sleep(Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_held_by_another_process_is_freed_when_it_is_killed() {
    use std::io::BufRead;
    let (_dir, path) = temp();
    let persister = SqlitePersister::open(&path).unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process_holding_a_lease",
            "--ignored",
            "--nocapture",
        ])
        .env("BURR_SQLITE_CHILD_DB", &path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Both processes write at the same time.
    let mut state = State::new();
    for seq in 0..200u64 {
        let next = state.update("n", seq);
        persister
            .save(&step("parent-app", seq, &state, &next))
            .await
            .unwrap();
        state = next;
    }
    let stdout = child.stdout.take().unwrap();
    let holder = std::io::BufReader::new(stdout)
        .lines()
        .map(Result::unwrap)
        .find_map(|line| line.strip_prefix("READY ").map(str::to_owned))
        .expect("the child took the lease");
    assert!(holder.contains(&format!("pid {}", child.id())), "{holder}");

    let error = persister
        .acquire_lease(None, "shared", Duration::from_secs(600))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, PersistenceError::AppLocked { holder: h, .. } if *h == holder),
        "{error}"
    );
    child.kill().unwrap(); // SIGKILL: no clean-up
    child.wait().unwrap();
    persister
        .acquire_lease(None, "shared", Duration::from_secs(600))
        .await
        .unwrap();
    for app in ["parent-app", "child-app"] {
        let loaded = persister.load(None, app, None).await.unwrap().unwrap();
        assert_eq!(
            (loaded.sequence_id, loaded.state.get::<u64>("n").unwrap()),
            (199, 199),
            "{app}"
        );
    }
}

/// `first` then `second`, then nothing: finished after two steps.
fn two_steps(persister: Arc<SqlitePersister>, app_id: &str) -> ApplicationBuilder {
    let first = action_sync("first", |s: State, _, _| s.update("first", true)).writes(["first"]);
    let second =
        action_sync("second", |s: State, _, _| s.update("second", true)).writes(["second"]);
    ApplicationBuilder::new()
        .with_actions([first, second])
        .with_transitions([("first", "second")])
        .with_app_id(app_id)
        .with_entrypoint("first")
        .with_state_persister(persister.clone())
        .initialize_from(persister)
}

#[tokio::test]
async fn a_finished_application_gives_its_lease_back_while_its_runner_keeps_it() {
    let (_dir, path) = temp();
    let persister = Arc::new(SqlitePersister::open(&path).unwrap());
    let held = |status: LeaseStatus| matches!(status, LeaseStatus::Held { .. });
    let mut app = two_steps(persister.clone(), "done").build().await.unwrap();
    assert!(held(persister.lease_status(None, "done").unwrap()));
    app.step(Inputs::new()).await.unwrap().expect("first");
    // Between steps, not finished: still held.
    assert!(held(persister.lease_status(None, "done").unwrap()));
    app.step(Inputs::new()).await.unwrap().expect("second");
    // Finished: given back, though `app` lives on.
    assert_eq!(
        persister.lease_status(None, "done").unwrap(),
        LeaseStatus::Free
    );
    assert!(app.step(Inputs::new()).await.unwrap().is_none());
    // Another runner may build it now (and finds nothing to run).
    let mut again = two_steps(persister.clone(), "done").build().await.unwrap();
    assert!(held(persister.lease_status(None, "done").unwrap()));
    assert!(again.step(Inputs::new()).await.unwrap().is_none());
    assert_eq!(
        persister.lease_status(None, "done").unwrap(),
        LeaseStatus::Free,
        "loaded finished, given back at the first step that finds nothing to run"
    );
    drop((app, again));
}

#[tokio::test]
async fn a_lease_left_behind_by_a_gone_runner_is_abandoned() {
    let (_dir, path) = temp();
    let persister = Arc::new(SqlitePersister::open(&path).unwrap());
    assert_eq!(
        persister.lease_status(None, "busy").unwrap(),
        LeaseStatus::Free
    );
    let mut app = counter(persister.clone(), "busy").build().await.unwrap();
    app.step(Inputs::new()).await.unwrap();
    let holder = match persister.lease_status(None, "busy").unwrap() {
        LeaseStatus::Held { holder } => holder,
        other => panic!("expected Held, got {other:?}"),
    };
    assert_eq!(
        persister.live_lease_holder(None, "busy").unwrap(),
        Some(holder.clone())
    );
    // Its holder's process is gone (the pid now names a newer process).
    edit_lease(&path, "busy", "pid_started = pid_started + 1");
    assert_eq!(
        persister.lease_status(None, "busy").unwrap(),
        LeaseStatus::Abandoned {
            holder: holder.clone(),
            expired: false
        }
    );
    assert_eq!(persister.live_lease_holder(None, "busy").unwrap(), None);
    // A holder elsewhere whose lease expired.
    edit_lease(&path, "busy", "machine = 'elsewhere', expires_at_us = 0");
    assert_eq!(
        persister.lease_status(None, "busy").unwrap(),
        LeaseStatus::Abandoned {
            holder,
            expired: true
        }
    );
    // Dropped: given back.
    drop(app);
    assert_eq!(
        persister.lease_status(None, "busy").unwrap(),
        LeaseStatus::Free
    );
}

/// The WAL is folded back into the database by the persister's checkpoint thread once it
/// passes `WAL_AUTOCHECKPOINT` frames (not by a commit, and not only when it grows eight
/// times that, when a commit would do it itself): the database file grows while the WAL
/// stays bounded.
#[tokio::test]
async fn the_wal_is_checkpointed_in_the_background_and_stays_bounded() {
    let (_dir, path) = temp();
    let persister = SqlitePersister::open(&path).unwrap();
    let wal = path.with_file_name(format!(
        "{}-wal",
        path.file_name().unwrap().to_string_lossy()
    ));
    let page = SqlitePersister::PAGE_SIZE as u64;
    let threshold = SqlitePersister::WAL_AUTOCHECKPOINT as u64;
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let before = size(&path);
    // About 1.5 thresholds of frames: values of 4 pages each, one step at a time.
    let mut state = State::new();
    let steps = threshold * 3 / 2 / 4;
    for seq in 0..steps {
        let next = state.update("blob", "x".repeat(4 * page as usize + seq as usize));
        persister
            .save(&step("app", seq, &state, &next))
            .await
            .unwrap();
        state = next;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while size(&path) < before + threshold * page / 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint copied the WAL into {} ({} bytes, WAL {} bytes)",
            path.display(),
            size(&path),
            size(&wal)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Bounded: at most the inline limit (eight thresholds) of frames, each a page and
    // its 24-byte header.
    assert!(size(&wal) <= 8 * threshold * (page + 24) + 32 * page);
    let loaded = persister.load(None, "app", None).await.unwrap().unwrap();
    assert_eq!(loaded.state, state);
}

/// Under steady small writes the WAL starts over once it is checkpointed: the thread's
/// checkpoint copies all but the frames committed while it ran, and the writer copies
/// those, so the WAL's first frame is written again rather than the file growing with
/// every commit (until eight thresholds, when a commit checkpoints it itself).
#[tokio::test]
async fn under_steady_writes_the_wal_starts_over_instead_of_growing() {
    let (_dir, path) = temp();
    // Durable commits (each flushed, as where a growing WAL cost most): an unoptimised
    // build's checkpoint thread copies frames faster than they come, as a release
    // build's does at any durability.
    let persister =
        SqlitePersister::open_with(&path, SqliteOptions::new().durability(Durability::Full))
            .unwrap();
    let wal = path.with_file_name(format!(
        "{}-wal",
        path.file_name().unwrap().to_string_lossy()
    ));
    let frame = SqlitePersister::PAGE_SIZE as u64 + 24;
    let threshold = SqlitePersister::WAL_AUTOCHECKPOINT as u64;
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    // Small checkpoints, one after another, until six thresholds of frames have been
    // written (a commit that grew the WAL counted by what it added, one that wrote over
    // earlier frames as a frame). A WAL that never starts over holds them all.
    let mut state = State::new();
    let mut seq = 0;
    let mut largest = 0;
    let mut written = 0;
    while written < 6 * threshold * frame {
        let next = state.update("count", seq);
        let before = size(&wal);
        persister
            .save(&step("app", seq, &state, &next))
            .await
            .unwrap();
        let after = size(&wal);
        largest = largest.max(after);
        // A commit that wrote over earlier frames did not grow the file: count a frame.
        written += if after > before {
            after - before
        } else {
            frame
        };
        state = next;
        seq += 1;
    }
    // The thread's checkpoint starts at one threshold and the writer goes on meanwhile:
    // the WAL starts over a little later, by how much depends on the machine.
    assert!(
        largest <= 4 * threshold * frame,
        "the WAL of {} grew to {largest} bytes ({} frames) over {seq} commits: it never \
         started over",
        path.display(),
        largest / frame
    );
    let loaded = persister.load(None, "app", None).await.unwrap().unwrap();
    assert_eq!(loaded.state, state);
}

/// Several processes (here, threads with their own connections) opening one brand-new
/// file at once all succeed: whoever comes second waits for the first to create the
/// schema and switch to WAL instead of failing with "database is locked".
#[test]
fn opening_a_new_file_from_many_places_at_once_succeeds() {
    for round in 0..30 {
        let (_dir, path) = temp();
        let barrier = Arc::new(std::sync::Barrier::new(6));
        let openers: Vec<_> = (0..6)
            .map(|_| {
                let (path, barrier) = (path.clone(), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    SqlitePersister::open(&path).map(drop)
                })
            })
            .collect();
        for opener in openers {
            if let Err(error) = opener.join().unwrap() {
                panic!(
                    "round {round}: {error}: {:?}",
                    std::error::Error::source(&error)
                );
            }
        }
    }
}

/// The commits in `path`'s WAL (frames of its current generation that end a
/// transaction), read from the file as SQLite lays it out.
fn wal_commits(path: &Path) -> usize {
    let wal = std::fs::read(path.with_file_name(format!(
        "{}-wal",
        path.file_name().unwrap().to_string_lossy()
    )))
    .unwrap_or_default();
    if wal.len() < 32 {
        return 0;
    }
    let word = |at: usize| u32::from_be_bytes(wal[at..at + 4].try_into().unwrap());
    let (page, salts) = (word(8) as usize, &wal[16..24]);
    wal[32..]
        .chunks_exact(24 + page)
        .take_while(|frame| &frame[8..16] == salts)
        .filter(|frame| frame[4..8] != [0; 4])
        .count()
}

/// The children of a map step (each recorded, then checkpointed) share transactions:
/// about 20 commits for 150 children, where each alone would make two (and a child
/// polled again at once after its save yielded, so that siblings could join it, made
/// about 90).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_children_of_a_map_step_share_commits() {
    use burr_core::parallel::{ChildPersister, MapAction, SubGraph};
    let (_dir, path) = temp();
    let persister: Arc<dyn Persister> = Arc::new(SqlitePersister::open(&path).unwrap());
    let length = action_sync("length", |s: State, _, _| {
        let text: String = s.get("text")?;
        Ok::<_, burr_core::ActionError>(s.update("length", text.len()))
    })
    .reads(["text"])
    .writes(["length"]);
    let map = MapAction::states(
        "lengths",
        SubGraph::action(length),
        |s: &State, _: &Inputs| {
            let items: Vec<String> = s.get("items")?;
            Ok::<_, burr_core::ActionError>(
                items
                    .into_iter()
                    .map(|t| State::new().update("text", t))
                    .collect(),
            )
        },
    )
    .reduce(|state: State, children: Vec<State>| {
        Ok::<_, burr_core::ActionError>(state.update("done", children.len()))
    })
    .reads(["items"])
    .writes(["done"])
    .persister(ChildPersister::Cascade);
    let items: Vec<String> = (0..150).map(|i| format!("item {i}")).collect();
    let mut app = ApplicationBuilder::new()
        .with_actions([map])
        .with_state(State::new().update("items", json!(items)))
        .with_entrypoint("lengths")
        .with_state_persister(Arc::clone(&persister))
        .build()
        .await
        .unwrap();
    let before = wal_commits(&path);
    let step = app.step(Inputs::new()).await.unwrap().unwrap();
    assert_eq!(step.state.get::<usize>("done").unwrap(), 150);
    let commits = wal_commits(&path) - before;
    assert!(
        (1..=45).contains(&commits),
        "150 children made {commits} commits"
    );
}
