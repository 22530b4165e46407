//! The persister conformance suite (feature `testing`): the checks every
//! [`Persister`] passes, so that a new store is tested the way the built-in ones are.
//!
//! ```ignore
//! #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
//! async fn my_store_conforms() {
//!     let report = Conformance::new(MyStore::new).run().await;
//!     assert!(report.skipped.is_empty(), "{report:?}");
//! }
//! ```
//!
//! [`Conformance::run`] gives each check a fresh store, prints the check's name to stderr
//! before it runs (a failing test's output shows it) and panics on the first failure. A check of an optional capability (`Leases`, `Prune`...) is
//! skipped when the store lacks it, and so is the corrupt-row check without a
//! [`corrupt_with`](Conformance::corrupt_with) hook; the [`Report`] lists what ran.
//!
//! It sits above `application` (it drives applications through their persister) and
//! nothing in the library imports it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::json;

use crate::actions::{action_sync, Inputs};
use crate::application::ApplicationBuilder;
use crate::condition::expr;
use crate::error::Error;
use crate::persistence::{
    delete_with_descendants, AppRecord, Checkpoint, PersistenceError, Persister, StepStatus,
};
use crate::state::State;

type Fresh<P> = Box<dyn Fn() -> P + Send + Sync>;
type Corrupt<P> = Box<dyn Fn(&P, &str, u64) + Send + Sync>;

/// The conformance suite for stores of type `P`.
pub struct Conformance<P> {
    fresh: Fresh<P>,
    corrupt: Option<Corrupt<P>>,
}

/// What [`Conformance::run`] checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// The checks that ran and passed.
    pub ran: Vec<&'static str>,
    /// The checks skipped, for want of a capability or of a corrupt hook.
    pub skipped: Vec<&'static str>,
}

impl<P: Persister> Conformance<P> {
    /// The suite over stores made by `fresh`: each call returns a new, empty store.
    pub fn new(fresh: impl Fn() -> P + Send + Sync + 'static) -> Self {
        Conformance {
            fresh: Box::new(fresh),
            corrupt: None,
        }
    }

    /// How to spoil the stored checkpoint of (no partition key, `app_id`, `sequence_id`)
    /// in `store` so that reading it back fails: with it, the suite checks that a corrupt
    /// row gives [`PersistenceError::Corrupt`] naming the app id and sequence id, and
    /// spoils nothing else.
    pub fn corrupt_with(mut self, corrupt: impl Fn(&P, &str, u64) + Send + Sync + 'static) -> Self {
        self.corrupt = Some(Box::new(corrupt));
        self
    }

    /// Run every check (on a tokio runtime: the concurrency check spawns tasks). Panics
    /// on the first failure; the name of the check running is printed to stderr first.
    pub async fn run(&self) -> Report {
        let mut report = Report::default();
        macro_rules! check {
            ($name:literal, $check:expr) => {{
                eprintln!("conformance: {}", $name);
                let store = Arc::new((self.fresh)());
                if $check(Arc::clone(&store)).await {
                    report.ran.push($name);
                } else {
                    report.skipped.push($name);
                }
            }};
        }
        check!("round_trip_at_every_sequence_id", round_trip);
        check!("partition_keys_and_listing", partition_keys);
        check!("failed_steps_and_retries", retries);
        check!("deltas_rebuild_exact_states", deltas);
        check!("resume", resume);
        check!("fork", fork);
        check!("concurrent_writers_of_different_apps", concurrent);
        check!("app_records", app_records);
        check!("child_listing", child_listing);
        check!("history", history);
        check!("prune", prune);
        check!("delete_with_descendants", delete);
        check!("leases_with_two_holders", leases);
        let store = Arc::new((self.fresh)());
        match &self.corrupt {
            Some(corrupt) => {
                eprintln!("conformance: corrupt_rows_give_typed_errors");
                corrupt_rows(&store, corrupt).await;
                report.ran.push("corrupt_rows_give_typed_errors");
            }
            None => report.skipped.push("corrupt_rows_give_typed_errors"),
        }
        report
    }
}

/// The checkpoint of a completed step of `app_id` that turned `before` into `after`.
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

/// Save `states` as the steps 0.. of `app_id` (the first from the empty state).
async fn save_all<P: Persister>(store: &P, app_id: &str, states: &[State]) {
    let mut before = State::new();
    for (seq, state) in states.iter().enumerate() {
        store
            .save(&step(app_id, seq as u64, &before, state))
            .await
            .unwrap_or_else(|e| panic!("save of `{app_id}` at {seq}: {e}"));
        before = state.clone();
    }
}

/// The state stored at `seq` (the latest when `None`); panics when there is none.
async fn state_at<P: Persister + ?Sized>(store: &P, app_id: &str, seq: Option<u64>) -> State {
    store
        .load(None, app_id, seq)
        .await
        .unwrap_or_else(|e| panic!("load of `{app_id}` at {seq:?}: {e}"))
        .unwrap_or_else(|| panic!("nothing stored for `{app_id}` at {seq:?}"))
        .state
}

/// Ten states: small and large values, nested ones, a null, a deletion.
fn ten_states() -> Vec<State> {
    let mut states = Vec::new();
    let mut state = State::new().update("count", 0);
    for seq in 0..10i64 {
        state = state.update("count", seq);
        match seq {
            2 => state = state.update("big", "x".repeat(10_000)),
            3 => state = state.update("nested", json!({"a": [1, 2, {"b": null}], "é": "ü"})),
            4 => state = state.update("nothing", serde_json::Value::Null),
            5 => state = state.without(["nested"]),
            7 => state = state.update("nested", json!([seq])),
            _ => {}
        }
        states.push(state.clone());
    }
    states
}

async fn round_trip<P: Persister>(store: Arc<P>) -> bool {
    let states = ten_states();
    save_all(&*store, "app", &states).await;
    for (seq, state) in states.iter().enumerate() {
        let loaded = store
            .load(None, "app", Some(seq as u64))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("nothing at {seq}"));
        assert_eq!(&loaded.state, state, "the state at {seq}");
        assert_eq!(loaded.sequence_id, seq as u64);
        assert_eq!(loaded.app_id, "app");
        assert_eq!(loaded.partition_key, None);
        assert_eq!(loaded.position, format!("action{seq}"));
        assert_eq!(loaded.prior_step, Some(format!("action{seq}")));
        assert_eq!((loaded.status, loaded.attempt), (StepStatus::Completed, 1));
    }
    let latest = store.load(None, "app", None).await.unwrap().unwrap();
    assert_eq!(latest.sequence_id, 9);
    assert_eq!(&latest.state, &states[9]);
    assert!(store.load(None, "app", Some(10)).await.unwrap().is_none());
    assert!(store.load(None, "unknown", None).await.unwrap().is_none());
    assert!(store
        .load(None, "unknown", Some(0))
        .await
        .unwrap()
        .is_none());
    true
}

async fn partition_keys<P: Persister>(store: Arc<P>) -> bool {
    let s = |n: i64| State::new().update("n", n);
    for (pk, app, n) in [(None, "a", 1), (Some("pk"), "a", 2), (None, "b", 3)] {
        let checkpoint = Checkpoint {
            partition_key: pk.map(str::to_owned),
            ..step(app, 0, &State::new(), &s(n))
        };
        store.save(&checkpoint).await.unwrap();
    }
    let loaded = store.load(Some("pk"), "a", None).await.unwrap().unwrap();
    assert_eq!(
        (loaded.partition_key.as_deref(), loaded.state),
        (Some("pk"), s(2))
    );
    assert_eq!(state_at(&*store, "a", None).await, s(1));
    assert!(store.load(Some("pk"), "b", None).await.unwrap().is_none());
    assert_eq!(
        store.list_app_ids(None).await.unwrap(),
        ["b", "a"],
        "newest first"
    );
    assert_eq!(store.list_app_ids(Some("pk")).await.unwrap(), ["a"]);
    assert!(store.list_app_ids(Some("none")).await.unwrap().is_empty());
    true
}

async fn retries<P: Persister>(store: Arc<P>) -> bool {
    let s0 = State::new().update("n", 0);
    let s1 = s0.update("n", 1).update("done", true);
    store
        .save(&step("app", 0, &State::new(), &s0))
        .await
        .unwrap();
    store.save(&failed("app", 1, 1, &s0)).await.unwrap();
    let loaded = store.load(None, "app", None).await.unwrap().unwrap();
    assert_eq!((loaded.sequence_id, loaded.attempt), (1, 1));
    assert_eq!(
        (loaded.status, loaded.prior_step),
        (StepStatus::Failed, None)
    );
    assert_eq!(loaded.state, s0, "a failed step keeps the state before it");
    let retry = Checkpoint {
        attempt: 2,
        ..step("app", 1, &s0, &s1)
    };
    store.save(&retry).await.unwrap();
    let loaded = store.load(None, "app", Some(1)).await.unwrap().unwrap();
    assert_eq!((loaded.attempt, loaded.status), (2, StepStatus::Completed));
    assert_eq!(loaded.state, s1);
    let again = store.save(&retry).await.unwrap_err();
    assert!(
        matches!(&again, PersistenceError::Conflict { app_id, sequence_id: 1, attempt: 2 } if app_id == "app"),
        "a duplicate (sequence id, attempt): {again}"
    );
    assert_eq!(
        state_at(&*store, "app", None).await,
        s1,
        "the refused save changed nothing"
    );
    true
}

async fn deltas<P: Persister>(store: Arc<P>) -> bool {
    // Long enough for any compaction, with large values, deletions and re-additions.
    let mut states = Vec::new();
    let mut state = State::new().update("blob", "b".repeat(100_000));
    for seq in 0..300i64 {
        state = state.update("seq", seq);
        if seq % 7 == 0 {
            state = state.update(format!("k{}", seq % 5), json!({"at": seq}));
        }
        if seq % 11 == 0 {
            state = state.without([format!("k{}", seq % 5).as_str()]);
        }
        if seq % 50 == 25 {
            state = state.update("large", "l".repeat(2_000 + seq as usize));
        }
        states.push(state.clone());
    }
    save_all(&*store, "app", &states).await;
    for (seq, state) in states.iter().enumerate() {
        assert_eq!(
            &state_at(&*store, "app", Some(seq as u64)).await,
            state,
            "at {seq}"
        );
    }
    // A checkpoint whose state is unrelated to the stored one is stored exactly too.
    let unrelated = State::new().update("other", 1);
    store
        .save(&step("app", 300, &State::new(), &unrelated))
        .await
        .unwrap();
    assert_eq!(state_at(&*store, "app", None).await, unrelated);
    assert_eq!(state_at(&*store, "app", Some(299)).await, states[299]);
    true
}

fn counter(store: Arc<dyn Persister>, app_id: &str) -> ApplicationBuilder {
    let increment = action_sync("increment", |s: State, _, _| s.increment("count", 1))
        .reads(["count"])
        .writes(["count"]);
    ApplicationBuilder::new()
        .with_actions([increment])
        .with_transitions([("increment", "increment", expr("count < 100"))])
        .with_app_id(app_id)
        .with_state(
            State::new()
                .update("count", 0)
                .update("blob", "x".repeat(5_000)),
        )
        .with_entrypoint("increment")
        .with_state_persister(Arc::clone(&store))
        .initialize_from(store)
}

async fn resume<P: Persister>(store: Arc<P>) -> bool {
    let store: Arc<dyn Persister> = store;
    let mut app = counter(Arc::clone(&store), "resumable")
        .build()
        .await
        .unwrap();
    for _ in 0..3 {
        app.step(Inputs::new()).await.unwrap().unwrap();
    }
    let state = app.state().clone();
    drop(app);
    let mut app = counter(Arc::clone(&store), "resumable")
        .build()
        .await
        .unwrap();
    assert_eq!(app.sequence_id(), Some(2));
    assert_eq!(app.state(), &state);
    let step = app.step(Inputs::new()).await.unwrap().unwrap();
    assert_eq!(step.sequence_id, 3);
    assert_eq!(
        state_at(&*store, "resumable", None).await,
        app.state().clone()
    );
    assert_eq!(app.state().get::<i64>("count").unwrap(), 4);
    true
}

async fn fork<P: Persister>(store: Arc<P>) -> bool {
    let store: Arc<dyn Persister> = store;
    let mut source = counter(Arc::clone(&store), "source").build().await.unwrap();
    for _ in 0..3 {
        source.step(Inputs::new()).await.unwrap();
    }
    drop(source);
    let at_one = state_at(&*store, "source", Some(1)).await;
    let mut fork = counter(Arc::clone(&store), "fork")
        .fork_from_app_id("source")
        .fork_from_sequence_id(1)
        .build()
        .await
        .unwrap();
    assert_eq!(fork.state(), &at_one);
    fork.step(Inputs::new()).await.unwrap();
    assert_eq!(state_at(&*store, "fork", None).await, fork.state().clone());
    assert_eq!(fork.state().get::<i64>("count").unwrap(), 3);
    let source = store.load(None, "source", None).await.unwrap().unwrap();
    assert_eq!(source.sequence_id, 2, "the source is untouched");
    if let Some(records) = store.as_app_records() {
        let record = records.app(None, "fork").await.unwrap().unwrap();
        let parent = record.fork_parent.expect("a fork parent");
        assert_eq!(
            (parent.app_id.as_str(), parent.sequence_id),
            ("source", Some(1))
        );
    }
    true
}

async fn concurrent<P: Persister>(store: Arc<P>) -> bool {
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let app = format!("app-{i}");
                let mut state = State::new().update("owner", i);
                for seq in 0..20u64 {
                    let next = state.update("seq", seq);
                    store.save(&step(&app, seq, &state, &next)).await.unwrap();
                    state = next;
                }
                state
            })
        })
        .collect();
    let mut finals = Vec::new();
    for task in tasks {
        finals.push(task.await.expect("a writer panicked"));
    }
    assert_eq!(store.list_app_ids(None).await.unwrap().len(), 20);
    for (i, state) in finals.iter().enumerate() {
        let loaded = store
            .load(None, &format!("app-{i}"), None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((loaded.sequence_id, &loaded.state), (19, state));
    }
    true
}

async fn app_records<P: Persister>(store: Arc<P>) -> bool {
    let Some(records) = store.as_app_records() else {
        return false;
    };
    let parent = crate::ids::ParentPointer {
        app_id: "parent".to_owned(),
        partition_key: Some("pk".to_owned()),
        sequence_id: Some(4),
    };
    let record = AppRecord {
        partition_key: Some("pk".to_owned()),
        app_id: "child".to_owned(),
        created_at_us: 1_700_000_000_000_000,
        fork_parent: None,
        spawning_parent: Some(parent.clone()),
        code: None,
    };
    records.register_app(&record).await.unwrap();
    assert_eq!(
        records.app(Some("pk"), "child").await.unwrap(),
        Some(record.clone())
    );
    // Recording again fills in what was missing, and changes nothing else.
    let again = AppRecord {
        fork_parent: Some(parent.clone()),
        spawning_parent: None,
        code: None,
        created_at_us: 1,
        ..record.clone()
    };
    records.register_app(&again).await.unwrap();
    let found = records.app(Some("pk"), "child").await.unwrap().unwrap();
    assert_eq!(found.fork_parent, Some(parent.clone()));
    assert_eq!(found.spawning_parent, Some(parent));
    assert_eq!(found.created_at_us, record.created_at_us);
    assert!(records.app(None, "child").await.unwrap().is_none());
    true
}

async fn child_listing<P: Persister>(store: Arc<P>) -> bool {
    let Some(listing) = store.as_child_listing() else {
        return false;
    };
    let s = State::new().update("n", 1);
    for app in ["p/0/a", "p/0/b", "p/1/a", "p/00/a", "q/0/a"] {
        store.save(&step(app, 0, &State::new(), &s)).await.unwrap();
    }
    let listed: BTreeSet<String> = listing
        .list_app_ids_with_prefix(None, "p/0/")
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(
        listed,
        BTreeSet::from(["p/0/a".to_owned(), "p/0/b".to_owned()])
    );
    assert!(listing
        .list_app_ids_with_prefix(Some("pk"), "p/")
        .await
        .unwrap()
        .is_empty());
    true
}

async fn history<P: Persister>(store: Arc<P>) -> bool {
    let Some(history) = store.as_history() else {
        return false;
    };
    let s0 = State::new().update("n", 0).update("gone", 1);
    let s1 = s0.update("n", 1).without(["gone"]);
    store
        .save(&step("app", 0, &State::new(), &s0))
        .await
        .unwrap();
    store.save(&failed("app", 1, 1, &s0)).await.unwrap();
    store
        .save(&Checkpoint {
            attempt: 2,
            ..step("app", 1, &s0, &s1)
        })
        .await
        .unwrap();
    let rows = history.list_checkpoints(None, "app").await.unwrap();
    let summary: Vec<_> = rows
        .iter()
        .map(|r| (r.sequence_id, r.attempt, r.status, r.error.as_deref()))
        .collect();
    assert_eq!(
        summary,
        [
            (0, 1, StepStatus::Completed, None),
            (1, 1, StepStatus::Failed, Some("boom")),
            (1, 2, StepStatus::Completed, None)
        ]
    );
    let mut changed = rows[2].changed_keys.clone();
    changed.sort();
    assert_eq!(changed, ["gone", "n"]);
    assert!(rows[1].changed_keys.is_empty());
    assert!(history
        .list_checkpoints(None, "unknown")
        .await
        .unwrap()
        .is_empty());
    true
}

async fn prune<P: Persister>(store: Arc<P>) -> bool {
    let Some(prune) = store.as_prune() else {
        return false;
    };
    let states = ten_states();
    save_all(&*store, "app", &states).await;
    save_all(&*store, "other", &states[..3]).await;
    assert_eq!(prune.prune(None, "app", 3).await.unwrap(), 7);
    for (seq, state) in states.iter().enumerate() {
        let loaded = store.load(None, "app", Some(seq as u64)).await.unwrap();
        match seq {
            0..=6 => assert!(loaded.is_none(), "{seq} was pruned"),
            _ => assert_eq!(&loaded.expect("kept").state, state, "at {seq}"),
        }
    }
    assert_eq!(prune.prune(None, "app", 3).await.unwrap(), 0);
    // Saving goes on after a prune.
    let next = states[9].update("count", 10);
    store
        .save(&step("app", 10, &states[9], &next))
        .await
        .unwrap();
    assert_eq!(state_at(&*store, "app", None).await, next);
    assert_eq!(
        state_at(&*store, "other", Some(0)).await,
        states[0],
        "other apps are kept"
    );
    let unknown = prune.prune(None, "unknown", 1).await.unwrap_err();
    assert!(
        matches!(&unknown, PersistenceError::UnknownApp { app_id, .. } if app_id == "unknown"),
        "{unknown}"
    );
    true
}

async fn delete<P: Persister>(store: Arc<P>) -> bool {
    let Some(deleting) = store.as_delete() else {
        return false;
    };
    let s = State::new().update("n", 1);
    let apps = [
        "parent",
        "parent/0/a",
        "parent/0/a/1/x",
        "parent-other",
        "other",
    ];
    for app in apps {
        store.save(&step(app, 0, &State::new(), &s)).await.unwrap();
    }
    let deleted = delete_with_descendants(&*store, None, "parent")
        .await
        .unwrap();
    assert_eq!(deleted, 3);
    for app in apps {
        let stored = store.load(None, app, None).await.unwrap();
        assert_eq!(
            stored.is_some(),
            !app.starts_with("parent/") && app != "parent",
            "{app}"
        );
    }
    let mut listed = store.list_app_ids(None).await.unwrap();
    listed.sort();
    assert_eq!(listed, ["other", "parent-other"]);
    assert!(
        !deleting.delete_app(None, "parent").await.unwrap(),
        "gone already"
    );
    assert!(deleting.delete_app(None, "other").await.unwrap());
    assert!(store.load(None, "other", None).await.unwrap().is_none());
    true
}

async fn leases<P: Persister>(store: Arc<P>) -> bool {
    let Some(leases) = store.as_leases() else {
        return false;
    };
    let ttl = Duration::from_secs(600);
    let first = leases.acquire_lease(None, "app", ttl).await.unwrap();
    let refused = leases.acquire_lease(None, "app", ttl).await.unwrap_err();
    match &refused {
        PersistenceError::AppLocked { app_id, holder } => {
            assert_eq!((app_id.as_str(), holder), ("app", &first.holder));
        }
        other => panic!("expected AppLocked, got {other}"),
    }
    // Other app ids and partition keys are free.
    leases.acquire_lease(Some("pk"), "app", ttl).await.unwrap();
    leases.acquire_lease(None, "app2", ttl).await.unwrap();
    leases.release_lease(&first).unwrap();
    let second = leases.acquire_lease(None, "app", ttl).await.unwrap();
    assert_ne!(second.holder, first.holder);
    // Giving back a lease one no longer holds leaves the holder's alone.
    leases.release_lease(&first).unwrap();
    assert!(leases.acquire_lease(None, "app", ttl).await.is_err());
    leases.release_lease(&second).unwrap();

    // Applications: one runner per app id.
    let store: Arc<dyn Persister> = store;
    let mut running = counter(Arc::clone(&store), "busy").build().await.unwrap();
    running.step(Inputs::new()).await.unwrap();
    let error = counter(Arc::clone(&store), "busy")
        .build()
        .await
        .unwrap_err();
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
    let resumed = counter(store, "busy").build().await.unwrap();
    assert_eq!(resumed.sequence_id(), Some(0));
    true
}

async fn corrupt_rows<P: Persister>(store: &Arc<P>, corrupt: &Corrupt<P>) {
    let states = ten_states();
    save_all(&**store, "bad", &states[..4]).await;
    save_all(&**store, "fine", &states[..4]).await;
    corrupt(store, "bad", 2);
    let error = store.load(None, "bad", Some(2)).await.unwrap_err();
    match &error {
        PersistenceError::Corrupt {
            app_id,
            sequence_id,
            reason,
            ..
        } => {
            assert_eq!((app_id.as_str(), *sequence_id), ("bad", 2), "{error}");
            assert!(!reason.is_empty());
        }
        other => panic!("expected a corrupt row, got {other}"),
    }
    assert_eq!(
        state_at(&**store, "bad", Some(1)).await,
        states[1],
        "earlier rows still load"
    );
    for seq in 0..4 {
        assert_eq!(
            state_at(&**store, "fine", Some(seq)).await,
            states[seq as usize]
        );
    }
}
