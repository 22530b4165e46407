//! Map actions and child applications, end to end (in-memory persister: the store is not
//! what these tests test; the SQLite crash test is in the `tests` crate).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use burr_core::actions::{action_fn, action_sync};
use burr_core::hooks::{HookEvent, RecordingHook};
use burr_core::parallel::{
    child_app_id, ChildPersister, Executor, FailurePolicy, MapAction, Priority, SubGraph, Task,
    WorkKey,
};
use burr_core::persistence::{
    AppRecords, Checkpoint, ChildListing, History, InMemoryPersister, Leases, LoadedCheckpoint,
    PersistenceError, Persister, StepStatus,
};
use burr_core::RunOptions;
use burr_core::{default, expr, ActionError, ApplicationBuilder, Error, Inputs, State};
use serde_json::json;

type StateResult = Result<State, ActionError>;

fn length_of_text() -> SubGraph {
    SubGraph::action(
        action_sync("length", |s: State, _, _| {
            let text: String = s.get("text")?;
            Ok::<_, ActionError>(s.update("length", text.chars().count()))
        })
        .reads(["text"])
        .writes(["length"]),
    )
}

fn words_to_states(s: &State, _: &Inputs) -> Result<Vec<State>, ActionError> {
    let words: Vec<String> = s.get("words")?;
    Ok(words
        .into_iter()
        .map(|w| State::new().update("text", w))
        .collect())
}

fn collect_lengths(state: State, children: Vec<State>) -> StateResult {
    let lengths: Vec<i64> = children
        .iter()
        .map(|c| c.get("length"))
        .collect::<Result<_, _>>()?;
    Ok(state.update("lengths", lengths))
}

fn lengths_map() -> MapAction {
    MapAction::states("lengths", length_of_text(), words_to_states)
        .reduce(collect_lengths)
        .reads(["words"])
        .writes(["lengths"])
}

fn words(n: usize) -> serde_json::Value {
    json!((0..n).map(|i| "x".repeat(i % 7 + 1)).collect::<Vec<_>>())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reduce_sees_children_in_task_order() {
    let mut app = ApplicationBuilder::new()
        .with_actions([lengths_map()])
        .with_state(State::new().update("words", words(200)))
        .with_entrypoint("lengths")
        .with_executor(Executor::new(4))
        .build()
        .await
        .unwrap();
    let step = app.step(Inputs::new()).await.unwrap().unwrap();
    let expected: Vec<usize> = (0..200).map(|i| i % 7 + 1).collect();
    assert_eq!(step.state.get::<Vec<usize>>("lengths").unwrap(), expected);
    assert_eq!(step.result["children"], json!(200));
}

#[tokio::test]
async fn map_actions_and_the_product() {
    let double = action_sync("double", |s: State, _, _| {
        let n: i64 = s.get("n")?;
        Ok::<_, ActionError>(s.update("out", n * 2))
    })
    .reads(["n"])
    .writes(["out"]);
    let square = action_sync("square", |s: State, _, _| {
        let n: i64 = s.get("n")?;
        Ok::<_, ActionError>(s.update("out", n * n))
    })
    .reads(["n"])
    .writes(["out"]);
    let gather = |state: State, children: Vec<State>| -> StateResult {
        let outs: Vec<i64> = children
            .iter()
            .map(|c| c.get("out"))
            .collect::<Result<_, _>>()?;
        Ok(state.update("outs", outs))
    };
    let actions = MapAction::actions(
        "both",
        vec![
            SubGraph::action(double.clone()),
            SubGraph::action(square.clone()),
        ],
        |s: &State, _: &Inputs| Ok::<_, ActionError>(s.subset(["n"])),
    )
    .reduce(gather)
    .reads(["n"])
    .writes(["outs"]);
    let product = MapAction::actions_and_states(
        "product",
        vec![SubGraph::action(double), SubGraph::action(square)],
        |s: &State, _: &Inputs| {
            let ns: Vec<i64> = s.get("ns")?;
            Ok::<_, ActionError>(
                ns.into_iter()
                    .map(|n| State::new().update("n", n))
                    .collect(),
            )
        },
    )
    .reduce(gather)
    .reads(["ns"])
    .writes(["outs"]);
    let mut app = ApplicationBuilder::new()
        .with_actions([actions])
        .with_state(State::new().update("n", 3))
        .with_entrypoint("both")
        .build()
        .await
        .unwrap();
    let step = app.step(Inputs::new()).await.unwrap().unwrap();
    assert_eq!(step.state.get_value("outs"), Some(&json!([6, 9])));

    let mut app = ApplicationBuilder::new()
        .with_actions([product])
        .with_state(State::new().update("ns", json!([1, 2, 3])))
        .with_entrypoint("product")
        .build()
        .await
        .unwrap();
    let step = app.step(Inputs::new()).await.unwrap().unwrap();
    assert_eq!(
        step.state.get_value("outs"),
        Some(&json!([2, 4, 6, 1, 4, 9]))
    );
}

#[tokio::test]
async fn children_cascade_persister_and_tracker_with_parent_links() {
    let persister = Arc::new(InMemoryPersister::new());
    let hook = RecordingHook::new();
    let mut app = ApplicationBuilder::new()
        .with_actions([lengths_map()])
        .with_state(State::new().update("words", words(3)))
        .with_entrypoint("lengths")
        .with_app_id("parent")
        .with_partition_key("pk")
        .with_state_persister(persister.clone())
        .with_tracker(Arc::new(hook.clone()))
        .build()
        .await
        .unwrap();
    app.step(Inputs::new()).await.unwrap();
    for i in 0..3 {
        let id = child_app_id("parent", 0, &i.to_string());
        let record = persister
            .app(Some("pk"), &id)
            .await
            .unwrap()
            .expect("child recorded");
        let parent = record.spawning_parent.expect("spawning parent");
        assert_eq!(
            (
                parent.app_id.as_str(),
                parent.sequence_id,
                parent.partition_key.as_deref()
            ),
            ("parent", Some(0), Some("pk"))
        );
        let rows = persister.list_checkpoints(Some("pk"), &id).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].status, StepStatus::Completed);
        let loaded = persister
            .load(Some("pk"), &id, None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            loaded.state.keys().collect::<Vec<_>>(),
            ["length", "text"],
            "child rows hold only the child's state"
        );
    }
    let created = hook
        .events()
        .into_iter()
        .filter(|e| matches!(e, HookEvent::AppCreated { .. }))
        .count();
    assert_eq!(created, 4, "the tracker saw the parent and its 3 children");
}

#[tokio::test]
async fn child_persister_none_and_given() {
    let parent_store = Arc::new(InMemoryPersister::new());
    let child_store = Arc::new(InMemoryPersister::new());
    for (choice, expect_parent, expect_given) in [
        (ChildPersister::None, false, false),
        (ChildPersister::Given(child_store.clone()), false, true),
        (ChildPersister::Cascade, true, false),
    ] {
        let id = format!("p-{expect_parent}-{expect_given}");
        let mut app = ApplicationBuilder::new()
            .with_actions([lengths_map().persister(choice)])
            .with_state(State::new().update("words", words(2)))
            .with_entrypoint("lengths")
            .with_app_id(id.clone())
            .with_state_persister(parent_store.clone())
            .build()
            .await
            .unwrap();
        app.step(Inputs::new()).await.unwrap();
        let child = child_app_id(&id, 0, "0");
        assert_eq!(
            parent_store
                .load(None, &child, None)
                .await
                .unwrap()
                .is_some(),
            expect_parent
        );
        assert_eq!(
            child_store
                .load(None, &child, None)
                .await
                .unwrap()
                .is_some(),
            expect_given
        );
    }
}

/// A map whose children are themselves maps, `depth` levels deep; leaves count 1 each.
fn nested(depth: usize, fanout: usize) -> SubGraph {
    if depth == 0 {
        return SubGraph::action(
            action_sync("leaf", |s: State, _, _| s.update("total", 1)).writes(["total"]),
        );
    }
    let inner = nested(depth - 1, fanout);
    SubGraph::action(
        MapAction::states(
            format!("level{depth}"),
            inner,
            move |_: &State, _: &Inputs| {
                Ok::<_, ActionError>((0..fanout).map(|_| State::new()).collect())
            },
        )
        .reduce(|state: State, children: Vec<State>| -> StateResult {
            let total: i64 = children
                .iter()
                .map(|c| c.get::<i64>("total"))
                .sum::<Result<_, _>>()?;
            Ok(state.update("total", total))
        })
        .writes(["total"]),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recursion_three_levels_deep_with_tight_bounds_does_not_deadlock() {
    for concurrency in [1, 2] {
        let top = nested(3, 3);
        let mut app = ApplicationBuilder::new()
            .with_graph(top.graph_ref().clone())
            .with_entrypoint(top.entrypoint())
            .with_executor(Executor::new(concurrency))
            .build()
            .await
            .unwrap();
        let step =
            tokio::time::timeout(std::time::Duration::from_secs(20), app.step(Inputs::new()))
                .await
                .expect("no deadlock")
                .unwrap()
                .unwrap();
        assert_eq!(
            step.state.get::<i64>("total").unwrap(),
            27,
            "concurrency {concurrency}"
        );
    }
}

/// Four children: those in `fail` fail at once, those in `hold` never finish (until their
/// siblings' outcome cancels them), the others succeed at once. No timing is involved.
fn flaky_map(policy: FailurePolicy, fail: &'static [usize], hold: &'static [usize]) -> MapAction {
    let work = action_fn("work", move |s: State, _, _| async move {
        let i: usize = s.get("i")?;
        if fail.contains(&i) {
            return Err(ActionError::msg(format!("task {i} failed")));
        }
        if hold.contains(&i) {
            std::future::pending::<()>().await;
        }
        Ok(s.update("done", i))
    })
    .reads(["i"])
    .writes(["done"]);
    MapAction::tasks("fan", move |_: &State, _: &Inputs| {
        Ok::<_, ActionError>(
            (0..4)
                .map(|i| Task::new(SubGraph::action(work.clone()), State::new().update("i", i)))
                .collect(),
        )
    })
    .policy(policy)
    .reduce(|state: State, children: Vec<State>| -> StateResult {
        let done: Vec<i64> = children
            .iter()
            .map(|c| c.get("done"))
            .collect::<Result<_, _>>()?;
        Ok(state.update("done", done))
    })
    .writes(["done"])
}

async fn run_one(
    action: MapAction,
    persister: Arc<InMemoryPersister>,
    id: &str,
) -> burr_core::Result<State> {
    let mut app = ApplicationBuilder::new()
        .with_actions([action])
        .with_entrypoint("fan")
        .with_app_id(id)
        .with_state_persister(persister)
        .with_executor(Executor::new(4))
        .build()
        .await?;
    Ok(app.step(Inputs::new()).await?.unwrap().state)
}

fn children_errors(err: &Error) -> Vec<(usize, String)> {
    let Some(Error::Children(failed)) = err.action_error::<Error>() else {
        panic!("not a children error: {err:?}");
    };
    failed
        .failures
        .iter()
        .map(|f| (f.index, f.error.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_policies() {
    let store = Arc::new(InMemoryPersister::new());
    // FailFast: the first error fails the step; the siblings still running are cancelled
    // and recorded.
    let err = run_one(
        flaky_map(FailurePolicy::FailFast, &[0], &[1, 2, 3]),
        store.clone(),
        "ff",
    )
    .await
    .unwrap_err();
    assert_eq!(
        children_errors(&err),
        [(0, "action `work` failed".to_owned())]
    );
    let cancelled = store
        .list_checkpoints(None, &child_app_id("ff", 0, "3"))
        .await
        .unwrap();
    assert_eq!(
        cancelled.last().map(|r| r.status),
        Some(StepStatus::Cancelled)
    );

    // WaitAll: everything finishes, every error is reported.
    let err = run_one(
        flaky_map(FailurePolicy::WaitAll, &[1, 2], &[]),
        store.clone(),
        "wa",
    )
    .await
    .unwrap_err();
    assert_eq!(
        children_errors(&err)
            .iter()
            .map(|e| e.0)
            .collect::<Vec<_>>(),
        [1, 2]
    );
    // The report names each failed child by app id, with its error.
    let report = burr_core::error::report(&err);
    for child in ["wa/0/1", "wa/0/2"] {
        assert!(
            report.contains(&format!("`{child}`: action `")),
            "{child} missing from: {report}"
        );
    }
    assert!(report.contains("2 of "), "{report}");
    let done = store
        .list_checkpoints(None, &child_app_id("wa", 0, "3"))
        .await
        .unwrap();
    assert_eq!(done.last().map(|r| r.status), Some(StepStatus::Completed));

    // Settled: the reducer sees every outcome.
    let settled =
        flaky_map(FailurePolicy::Settled, &[2], &[]).reduce_settled(|state: State, outcomes| {
            let summary: Vec<String> = outcomes
                .iter()
                .map(|o| match &o.result {
                    Ok(_) => format!("{}:ok", o.key),
                    Err(e) => format!("{}:{}", o.key, e),
                })
                .collect();
            Ok::<_, ActionError>(state.update("done", json!(summary)))
        });
    let state = run_one(settled, store.clone(), "st").await.unwrap();
    assert_eq!(
        state.get_value("done"),
        Some(&json!(["0:ok", "1:ok", "2:action `work` failed", "3:ok"]))
    );

    // FirstSuccess: the first success wins, the rest are cancelled.
    let state = run_one(
        flaky_map(FailurePolicy::FirstSuccess, &[0], &[2, 3]),
        store.clone(),
        "fs",
    )
    .await
    .unwrap();
    assert_eq!(state.get_value("done"), Some(&json!([1])));
    let err = run_one(
        flaky_map(FailurePolicy::FirstSuccess, &[0, 1, 2, 3], &[]),
        store.clone(),
        "fs2",
    )
    .await
    .unwrap_err();
    assert_eq!(children_errors(&err).len(), 4);
}

/// Wait until `count` steps wait for one of `executor`'s slots (at most 30 s).
async fn until_waiting(executor: &Executor, count: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while executor.waiting() < count {
        assert!(
            std::time::Instant::now() < deadline,
            "{} steps wait, not {count}",
            executor.waiting()
        );
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priority_order_with_one_slot() {
    let order = Arc::new(Mutex::new(Vec::new()));
    let executor = Executor::new(1);
    let record = {
        let order = order.clone();
        action_fn("record", move |s: State, _, _| {
            let order = order.clone();
            async move {
                let tag: String = s.get("tag")?;
                order.lock().unwrap().push(tag);
                Ok::<_, ActionError>(s)
            }
        })
        .reads(["tag"])
    };
    let flow = |name: &'static str, priority: i32| {
        let record = record.clone();
        let executor = executor.clone();
        async move {
            let map = MapAction::states(
                "fan",
                SubGraph::action(record),
                move |_: &State, _: &Inputs| {
                    Ok::<_, ActionError>(
                        (0..3)
                            .map(|i| State::new().update("tag", format!("{name}{i}")))
                            .collect(),
                    )
                },
            );
            let mut app = ApplicationBuilder::new()
                .with_actions([map])
                .with_entrypoint("fan")
                .with_executor(executor)
                .with_priority(priority)
                .build()
                .await
                .unwrap();
            app.step(Inputs::new()).await.unwrap();
        }
    };
    // Hold the only slot so every flow's children queue up, then release it.
    let blocker = executor
        .acquire(WorkKey {
            priority: Priority(i32::MAX),
            flow: 0,
            path: Arc::from(vec![]),
        })
        .await;
    let backlog = tokio::spawn(flow("backlog", 0));
    until_waiting(&executor, 3).await;
    let later = tokio::spawn(flow("later", 0));
    until_waiting(&executor, 6).await;
    let urgent = tokio::spawn(flow("urgent", 10));
    until_waiting(&executor, 9).await;
    drop(blocker);
    for flow in [backlog, later, urgent] {
        flow.await.unwrap();
    }
    let order = order.lock().unwrap().clone();
    assert_eq!(
        order,
        [
            "urgent0", "urgent1", "urgent2", "backlog0", "backlog1", "backlog2", "later0",
            "later1", "later2"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreliable_children_each_first_action_runs_exactly_once() {
    let runs: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let attempts = Arc::new(AtomicUsize::new(0));
    let first = {
        let runs = runs.clone();
        let attempts = attempts.clone();
        action_sync(
            "first",
            move |s: State, _, ctx: &burr_core::ApplicationContext| {
                // 5% of executions fail (every 20th).
                if attempts.fetch_add(1, Ordering::SeqCst) % 20 == 7 {
                    return Err(ActionError::msg("flaky first"));
                }
                *runs
                    .lock()
                    .unwrap()
                    .entry(ctx.app_id().to_owned())
                    .or_default() += 1;
                Ok(s.update("a", 1))
            },
        )
        .writes(["a"])
    };
    let second_attempts = Arc::new(AtomicUsize::new(0));
    let second = {
        let n = second_attempts.clone();
        action_sync("second", move |s: State, _, _| {
            if n.fetch_add(1, Ordering::SeqCst) % 20 == 3 {
                return Err(ActionError::msg("flaky second"));
            }
            Ok(s.update("b", 2))
        })
        .writes(["b"])
    };
    let graph = burr_core::graph::GraphBuilder::new()
        .with_actions([first, second])
        .with_transitions([("first", "second")])
        .build()
        .unwrap();
    let sub = SubGraph::graph(graph, "first", ["second"]).unwrap();
    let map = || {
        MapAction::states("fan", sub.clone(), |_: &State, _: &Inputs| {
            Ok::<_, ActionError>((0..40).map(|i| State::new().update("i", i)).collect())
        })
        .policy(FailurePolicy::WaitAll)
        .reduce(|state: State, children: Vec<State>| {
            Ok::<_, ActionError>(state.update("n", children.len()))
        })
        .writes(["n"])
    };
    let store = Arc::new(InMemoryPersister::new());
    let mut rebuilds = 0;
    let state = loop {
        let mut app = ApplicationBuilder::new()
            .with_actions([map()])
            .with_app_id("unreliable")
            .with_state_persister(store.clone())
            .with_state(State::new())
            .with_entrypoint("fan")
            .initialize_from(store.clone())
            .with_executor(Executor::new(3))
            .build()
            .await
            .unwrap();
        match app.step(Inputs::new()).await {
            Ok(step) => break step.unwrap().state,
            Err(_) => rebuilds += 1,
        }
        assert!(rebuilds < 50, "never finished");
    };
    assert_eq!(state.get::<usize>("n").unwrap(), 40);
    assert!(
        rebuilds > 0,
        "the flaky children made the parent fail at least once"
    );
    let runs = runs.lock().unwrap();
    assert_eq!(runs.len(), 40);
    assert!(runs.values().all(|&n| n == 1), "{runs:?}");
}

#[tokio::test]
async fn a_map_action_in_a_loop_gives_fresh_results_each_time() {
    // Burr #761: a later invocation must not replay an earlier one's children.
    let double = action_sync("double", |s: State, _, _| {
        let n: i64 = s.get("n")?;
        Ok::<_, ActionError>(s.update("out", n * 2))
    })
    .reads(["n"])
    .writes(["out"]);
    let map = MapAction::states("map", SubGraph::action(double), |s: &State, _: &Inputs| {
        let round: i64 = s.get("round")?;
        Ok::<_, ActionError>(vec![State::new().update("n", round)])
    })
    .reduce(|state: State, children: Vec<State>| -> StateResult {
        let out: i64 = children[0].get("out")?;
        Ok(state.append("outs", out)?)
    })
    .reads(["round", "outs"])
    .writes(["outs"]);
    let next = action_sync("next", |s: State, _, _| s.increment("round", 1))
        .reads(["round"])
        .writes(["round"]);
    let store = Arc::new(InMemoryPersister::new());
    let mut app = ApplicationBuilder::new()
        .with_actions([map])
        .with_actions([next])
        .with_transitions([
            ("map", "next", default()),
            ("next", "map", expr("round <= 3")),
        ])
        .with_state(State::new().update("round", 1).update("outs", json!([])))
        .with_entrypoint("map")
        .with_app_id("looping")
        .with_state_persister(store)
        .build()
        .await
        .unwrap();
    let out = app.run(RunOptions::new()).await.unwrap();
    assert_eq!(out.state.get_value("outs"), Some(&json!([2, 4, 6])));
}

#[tokio::test]
async fn recursion_by_hand_resumes_finished_children() {
    let runs = Arc::new(AtomicUsize::new(0));
    let parent_tries = Arc::new(AtomicUsize::new(0));
    let child_action = {
        let runs = runs.clone();
        action_sync("child_work", move |s: State, _, _| {
            runs.fetch_add(1, Ordering::SeqCst);
            s.update("out", 1)
        })
        .writes(["out"])
    };
    let parent = {
        let tries = parent_tries.clone();
        action_fn(
            "parent",
            move |s: State, _, ctx: burr_core::ApplicationContext| {
                let child_action = child_action.clone();
                let tries = tries.clone();
                async move {
                    let a = ctx
                        .run_child(
                            "a",
                            Task::new(SubGraph::action(child_action.clone()), State::new()),
                        )
                        .await?;
                    if tries.fetch_add(1, Ordering::SeqCst) == 0 {
                        return Err(ActionError::msg("crash after the first child"));
                    }
                    let b = ctx
                        .run_child("b", Task::new(SubGraph::action(child_action), State::new()))
                        .await?;
                    let total = a.get::<i64>("out")? + b.get::<i64>("out")?;
                    Ok(s.update("total", total))
                }
            },
        )
        .writes(["total"])
    };
    let store = Arc::new(InMemoryPersister::new());
    let mut app = ApplicationBuilder::new()
        .with_actions([parent])
        .with_entrypoint("parent")
        .with_app_id("by-hand")
        .with_state_persister(store.clone())
        .build()
        .await
        .unwrap();
    assert!(app.step(Inputs::new()).await.is_err());
    let step = app.step(Inputs::new()).await.unwrap().unwrap();
    assert_eq!(step.state.get::<i64>("total").unwrap(), 2);
    assert_eq!(
        runs.load(Ordering::SeqCst),
        2,
        "child `a` ran once, not again on the retry"
    );
    let record = store
        .app(None, &child_app_id("by-hand", 0, "b"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.spawning_parent.unwrap().app_id, "by-hand");
}

#[tokio::test]
async fn child_tracker_cascade_none_and_given() {
    use burr_core::parallel::ChildTracker;
    let given = RecordingHook::new();
    for (choice, parent_sees, given_sees) in [
        (ChildTracker::Cascade, 3, 0),
        (ChildTracker::None, 1, 0),
        (ChildTracker::Given(Arc::new(given.clone())), 1, 2),
    ] {
        let parent_tracker = RecordingHook::new();
        given.take();
        let mut app = ApplicationBuilder::new()
            .with_actions([lengths_map().tracker(choice)])
            .with_state(State::new().update("words", words(2)))
            .with_entrypoint("lengths")
            .with_tracker(Arc::new(parent_tracker.clone()))
            .build()
            .await
            .unwrap();
        app.step(Inputs::new()).await.unwrap();
        let created = |hook: &RecordingHook| {
            hook.events()
                .iter()
                .filter(|e| matches!(e, HookEvent::AppCreated { .. }))
                .count()
        };
        assert_eq!(created(&parent_tracker), parent_sees);
        assert_eq!(created(&given), given_sees);
    }
}

/// On tokio's paused clock: it moves only when every task waits, so the fast child always
/// finishes within the 100 ms, and the slow child's 5 s are never waited for.
#[tokio::test(start_paused = true)]
async fn a_child_over_its_timeout_fails_and_is_recorded_cancelled() {
    let slow = action_fn("slow", |s: State, _, _| async move {
        let ms: u64 = s.get("ms")?;
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        Ok::<_, ActionError>(s.update("done", true))
    })
    .reads(["ms"])
    .writes(["done"]);
    let map = MapAction::states("fan", SubGraph::action(slow), |_: &State, _: &Inputs| {
        Ok(vec![
            State::new().update("ms", 1),
            State::new().update("ms", 5_000),
        ])
    })
    .policy(FailurePolicy::WaitAll)
    .timeout(std::time::Duration::from_millis(100));
    let store = Arc::new(InMemoryPersister::new());
    let mut app = ApplicationBuilder::new()
        .with_actions([map])
        .with_entrypoint("fan")
        .with_app_id("timeouts")
        // Its own slots: waiting for a slot of the process-wide executor, which the other
        // tests' children hold in real time, would count against the child's timeout.
        .with_executor(Executor::new(2))
        .with_state_persister(store.clone())
        .build()
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let err = app.step(Inputs::new()).await.unwrap_err();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "the slow child was not waited for"
    );
    let errors = children_errors(&err);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].0, 1);
    assert!(errors[0].1.contains("timed out after 100 ms"), "{errors:?}");
    let rows = store
        .list_checkpoints(None, &child_app_id("timeouts", 0, "1"))
        .await
        .unwrap();
    assert_eq!(rows.last().map(|r| r.status), Some(StepStatus::Cancelled));
}

/// A store whose first save of a completed `slow_save` step commits, says so (the
/// `Notify`), then hangs: the commit is durable before the caller hears of it, as with a
/// store that writes on another thread.
struct CommitsThenHangs(
    Arc<InMemoryPersister>,
    Arc<std::sync::atomic::AtomicBool>,
    Arc<tokio::sync::Notify>,
);

#[burr_core::actions::async_trait]
impl Persister for CommitsThenHangs {
    async fn save(&self, checkpoint: &Checkpoint) -> Result<(), PersistenceError> {
        self.0.save(checkpoint).await?;
        if checkpoint.position == "slow_save"
            && checkpoint.status == StepStatus::Completed
            && !self.1.swap(true, Ordering::SeqCst)
        {
            self.2.notify_one();
            tokio::time::sleep(std::time::Duration::from_secs(30)).await;
        }
        Ok(())
    }
    async fn load(
        &self,
        partition_key: Option<&str>,
        app_id: &str,
        sequence_id: Option<u64>,
    ) -> Result<Option<LoadedCheckpoint>, PersistenceError> {
        self.0.load(partition_key, app_id, sequence_id).await
    }
    async fn list_app_ids(
        &self,
        partition_key: Option<&str>,
    ) -> Result<Vec<String>, PersistenceError> {
        self.0.list_app_ids(partition_key).await
    }
    fn as_leases(&self) -> Option<&dyn Leases> {
        self.0.as_leases()
    }
    fn as_app_records(&self) -> Option<&dyn AppRecords> {
        self.0.as_app_records()
    }
    fn as_child_listing(&self) -> Option<&dyn ChildListing> {
        self.0.as_child_listing()
    }
    fn as_history(&self) -> Option<&dyn History> {
        self.0.as_history()
    }
}

/// How the hanging child is cut: by its own timeout, or by a failing sibling (fail-fast).
#[derive(Clone, Copy, Debug)]
enum Cut {
    Timeout,
    FailingSibling,
}

/// A child cut (by `cut`) after its step's checkpoint committed: records and behaviour
/// agree that the step completed.
async fn committed_then_cut(cut: Cut) {
    let runs = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let committed = Arc::new(tokio::sync::Notify::new());
    let (counted, failed) = (Arc::clone(&runs), Arc::clone(&failures));
    let heard = Arc::clone(&committed);
    let slow_save = action_fn("slow_save", move |s: State, _, _| {
        let (counted, failed, heard) = (
            Arc::clone(&counted),
            Arc::clone(&failed),
            Arc::clone(&heard),
        );
        async move {
            if s.get::<bool>("fails")? {
                // The sibling fails once, after the other child's save has committed.
                if failed.fetch_add(1, Ordering::SeqCst) == 0 {
                    tokio::time::timeout(std::time::Duration::from_secs(30), heard.notified())
                        .await
                        .expect("the other child's save commits");
                    return Err(ActionError::msg("sibling failed"));
                }
            } else {
                counted.fetch_add(1, Ordering::SeqCst);
            }
            Ok(s.update("done", true))
        }
    })
    .reads(["fails"])
    .writes(["done"]);
    let children = match cut {
        Cut::Timeout => vec![false],
        Cut::FailingSibling => vec![false, true],
    };
    let map = MapAction::states(
        "fan",
        SubGraph::action(slow_save),
        move |_: &State, _: &Inputs| {
            Ok(children
                .iter()
                .map(|&fails| State::new().update("fails", fails))
                .collect())
        },
    )
    .reduce(|state: State, children: Vec<State>| {
        let done = children
            .iter()
            .filter(|c| c.get::<bool>("done").unwrap_or(false))
            .count();
        Ok(state.update("done", done))
    })
    .writes(["done"]);
    let map = match cut {
        Cut::Timeout => map.timeout(std::time::Duration::from_millis(100)),
        Cut::FailingSibling => map.policy(FailurePolicy::FailFast),
    };
    let store = Arc::new(InMemoryPersister::new());
    let hung = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hook = RecordingHook::new();
    let persister: Arc<dyn Persister> = Arc::new(CommitsThenHangs(store.clone(), hung, committed));
    let build = || {
        ApplicationBuilder::new()
            .with_actions([map.clone()])
            .with_entrypoint("fan")
            .with_app_id("committed")
            // Its own slots, not those the other tests' children hold (see above).
            .with_executor(Executor::new(2))
            .with_state_persister(persister.clone())
            .initialize_from(persister.clone())
            .with_tracker(Arc::new(hook.clone()))
            .build()
    };
    let err = build()
        .await
        .unwrap()
        .step(Inputs::new())
        .await
        .unwrap_err();
    let errors = children_errors(&err);
    let failed = match cut {
        Cut::Timeout => (0, "timed out after 100 ms"),
        Cut::FailingSibling => (1, "action `slow_save` failed"),
    };
    assert_eq!(errors.len(), 1, "{cut:?}: {errors:?}");
    assert_eq!(errors[0].0, failed.0, "{cut:?}: {errors:?}");
    assert!(errors[0].1.contains(failed.1), "{cut:?}: {errors:?}");
    let child = child_app_id("committed", 0, "0");
    // The step's own checkpoint stands; no cancelled record is stacked on it.
    let rows = store.list_checkpoints(None, &child).await.unwrap();
    let statuses: Vec<_> = rows.iter().map(|r| (r.sequence_id, r.status)).collect();
    assert_eq!(statuses, [(0, StepStatus::Completed)], "{cut:?}");
    // The tracker hears what is stored: the step completed.
    let ends: Vec<_> = hook
        .events()
        .into_iter()
        .filter_map(|e| match e {
            HookEvent::PostRunStep { app_id, status, .. } if app_id == child => Some(status),
            _ => None,
        })
        .collect();
    assert_eq!(ends, [StepStatus::Completed], "{cut:?}");
    // The parent's next run takes the child's output from the store and uses it; the
    // child's code does not run again.
    let mut app = build().await.unwrap();
    let step = app.step(Inputs::new()).await.unwrap().unwrap();
    let n_children = match cut {
        Cut::Timeout => 1,
        Cut::FailingSibling => 2,
    };
    assert_eq!(
        step.state.get::<usize>("done").unwrap(),
        n_children,
        "{cut:?}"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1, "{cut:?}");
}

/// On tokio's paused clock: the child's action and commit always come before its 100 ms
/// are up (time moves only when every task waits).
#[tokio::test(start_paused = true)]
async fn a_child_timed_out_after_its_checkpoint_committed_counts_the_step_as_completed() {
    committed_then_cut(Cut::Timeout).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_cut_by_fail_fast_after_its_checkpoint_committed_counts_the_step_as_completed() {
    committed_then_cut(Cut::FailingSibling).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_spaces_child_steps() {
    let map = MapAction::states("lengths", length_of_text(), words_to_states)
        .reduce(collect_lengths)
        .reads(["words"])
        .writes(["lengths"]);
    let mut app = ApplicationBuilder::new()
        .with_actions([map])
        .with_state(State::new().update("words", words(6)))
        .with_entrypoint("lengths")
        .with_executor(Executor::new(8).with_rate_limit(50.0))
        .build()
        .await
        .unwrap();
    let started = std::time::Instant::now();
    app.step(Inputs::new()).await.unwrap();
    // Six child steps at 50 per second: the last starts at least 100 ms after the first.
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(100),
        "{:?}",
        started.elapsed()
    );
}

/// An in-memory persister that counts the loads of child applications, and lists app ids
/// by prefix only when `lists` is set (otherwise it has no `ChildListing`: "cannot tell").
struct CountingLoads {
    inner: InMemoryPersister,
    lists: bool,
    child_loads: AtomicUsize,
}

#[async_trait::async_trait]
impl Persister for CountingLoads {
    async fn save(&self, checkpoint: &Checkpoint) -> Result<(), PersistenceError> {
        self.inner.save(checkpoint).await
    }
    async fn load(
        &self,
        partition_key: Option<&str>,
        app_id: &str,
        sequence_id: Option<u64>,
    ) -> Result<Option<LoadedCheckpoint>, PersistenceError> {
        if app_id.contains('/') {
            self.child_loads.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.load(partition_key, app_id, sequence_id).await
    }
    async fn list_app_ids(
        &self,
        partition_key: Option<&str>,
    ) -> Result<Vec<String>, PersistenceError> {
        self.inner.list_app_ids(partition_key).await
    }
    fn as_child_listing(&self) -> Option<&dyn ChildListing> {
        // Without it the framework cannot tell which children are stored.
        self.lists.then(|| self.inner.as_child_listing()).flatten()
    }
    fn as_app_records(&self) -> Option<&dyn burr_core::persistence::AppRecords> {
        self.inner.as_app_records()
    }
    fn as_leases(&self) -> Option<&dyn Leases> {
        self.inner.as_leases()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_load_only_when_their_persister_may_hold_them() {
    for lists in [true, false] {
        let runs: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let fail_once = Arc::new(AtomicUsize::new(0));
        let work = {
            let runs = runs.clone();
            let fail_once = fail_once.clone();
            action_sync(
                "work",
                move |s: State, _, ctx: &burr_core::ApplicationContext| {
                    let i: i64 = s.get("i")?;
                    if i == 3 && fail_once.fetch_add(1, Ordering::SeqCst) == 0 {
                        return Err(ActionError::msg("child 3 fails the first time"));
                    }
                    *runs
                        .lock()
                        .unwrap()
                        .entry(ctx.app_id().to_owned())
                        .or_default() += 1;
                    Ok(s.update("out", i * 10))
                },
            )
            .reads(["i"])
            .writes(["out"])
        };
        let map = MapAction::states("fan", SubGraph::action(work), |_: &State, _: &Inputs| {
            Ok::<_, ActionError>((0..5).map(|i| State::new().update("i", i)).collect())
        })
        .policy(FailurePolicy::WaitAll)
        .reduce(|state: State, children: Vec<State>| {
            let outs: Vec<i64> = children
                .iter()
                .map(|c| c.get("out"))
                .collect::<Result<_, _>>()?;
            Ok::<_, ActionError>(state.update("outs", outs))
        })
        .writes(["outs"]);
        let store = Arc::new(CountingLoads {
            inner: InMemoryPersister::new(),
            lists,
            child_loads: AtomicUsize::new(0),
        });
        let build = || {
            ApplicationBuilder::new()
                .with_actions([map.clone()])
                .with_app_id("counted")
                .with_state_persister(store.clone())
                .with_state(State::new())
                .with_entrypoint("fan")
                .initialize_from(store.clone())
                .build()
        };
        let mut app = build().await.unwrap();
        assert!(app.step(Inputs::new()).await.is_err(), "child 3 failed");
        // Listed: nothing is stored yet, so no child loads. Not listed: every child loads.
        let first = store.child_loads.swap(0, Ordering::SeqCst);
        assert_eq!(first, if lists { 0 } else { 5 }, "lists: {lists}");
        drop(app);
        let mut app = build().await.unwrap();
        let step = app.step(Inputs::new()).await.unwrap().unwrap();
        assert_eq!(
            step.state.get::<Vec<i64>>("outs").unwrap(),
            [0, 10, 20, 30, 40]
        );
        // The retried step's children are all stored now: each resumes from its checkpoints.
        assert_eq!(
            store.child_loads.load(Ordering::SeqCst),
            5,
            "lists: {lists}"
        );
        let runs = runs.lock().unwrap();
        assert_eq!(runs.len(), 5);
        assert!(runs.values().all(|&n| n == 1), "lists: {lists}, {runs:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_cancelled_before_it_ran_starts_its_first_real_run_at_attempt_one() {
    // One executor slot: child 1 waits for it while child 0 fails, so fail-fast cancels
    // child 1 before its code ever runs.
    let store = Arc::new(InMemoryPersister::new());
    let attempts: Arc<Mutex<Vec<(usize, u32)>>> = Arc::default();
    let build = |fail: bool| {
        let attempts = Arc::clone(&attempts);
        let work = action_fn(
            "work",
            move |s: State, _, ctx: burr_core::ApplicationContext| {
                let attempts = Arc::clone(&attempts);
                async move {
                    let i: usize = s.get("i")?;
                    attempts.lock().unwrap().push((i, ctx.attempt()));
                    if fail && i == 0 {
                        return Err(ActionError::msg("child 0 fails"));
                    }
                    Ok::<_, ActionError>(s.update("done", i))
                }
            },
        )
        .reads(["i"])
        .writes(["done"]);
        MapAction::states("fan", SubGraph::action(work), |_: &State, _: &Inputs| {
            Ok((0..2).map(|i| State::new().update("i", i)).collect())
        })
        .reduce(|s, children| Ok(s.update("done", children.len())))
        .writes(["done"])
    };
    let app = |fail: bool| {
        let store = store.clone();
        let map = build(fail);
        async move {
            ApplicationBuilder::new()
                .with_actions([map])
                .with_entrypoint("fan")
                .with_app_id("once")
                .with_executor(Executor::new(1))
                .with_state_persister(store.clone())
                .initialize_from(store)
                .build()
                .await
                .unwrap()
        }
    };
    app(true).await.step(Inputs::new()).await.unwrap_err();
    let child_1 = store
        .list_checkpoints(None, &child_app_id("once", 0, "1"))
        .await
        .unwrap();
    assert_eq!(
        child_1
            .iter()
            .map(|r| (r.attempt, r.status))
            .collect::<Vec<_>>(),
        [(0, StepStatus::Cancelled)],
        "cancelled before it ran: attempt 0"
    );
    assert_eq!(*attempts.lock().unwrap(), [(0, 1)], "only child 0 ran");

    // Resumed: child 0 retries (attempt 2), child 1 runs for the first time (attempt 1).
    let step = app(false).await.step(Inputs::new()).await.unwrap().unwrap();
    assert_eq!(step.state.get::<usize>("done").unwrap(), 2);
    let mut runs = attempts.lock().unwrap().clone();
    runs.sort_unstable();
    assert_eq!(runs, [(0, 1), (0, 2), (1, 1)]);
}
