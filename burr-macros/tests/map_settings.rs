//! End to end: how the children of a map attribute run — `priority`, `timeout`,
//! `persister` and `tracker` — observed the way burr-core's own tests observe the builder
//! methods they forward to (in-memory persister: the store is not what these test).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use burr_core::actions::ActionExt;
use burr_core::error::{ChildFailure, ChildrenFailed};
use burr_core::hooks::{HookEvent, RecordingHook};
use burr_core::parallel::{
    child_app_id, ChildPersister, ChildTracker, Executor, FailurePolicy, MapAction, Priority,
    SubGraph, WorkKey,
};
use burr_core::persistence::{History, InMemoryPersister, StepStatus};
use burr_core::{
    action, inputs, map_actions, map_states, map_tasks, ActionError, ApplicationBuilder,
    ApplicationContext, Error, Inputs, State,
};

// --- priority ---

/// Records the priority the child application runs at.
#[action(writes = [priority])]
fn own_priority(state: State, ctx: &ApplicationContext) -> State {
    state.update("priority", ctx.priority().0)
}

fn two_children(_state: State) -> Vec<State> {
    vec![State::new(), State::new()]
}

fn collect_priorities(state: State, children: Vec<State>) -> Result<State, ActionError> {
    let priorities: Vec<i32> = children
        .iter()
        .map(|c| c.get("priority"))
        .collect::<Result<_, _>>()?;
    Ok(state.update("priorities", priorities))
}

#[map_states(subgraph = SubGraph::action(OwnPriority), reduce = collect_priorities, priority = 7, writes = [priorities])]
fn urgent_children(state: State) -> Vec<State> {
    two_children(state)
}

/// A negative priority, given as an expression.
#[map_states(subgraph = SubGraph::action(OwnPriority), reduce = collect_priorities, priority = -(LOW as i32), writes = [priorities])]
fn background_children(state: State) -> Vec<State> {
    two_children(state)
}

const LOW: u8 = 4;

#[map_states(subgraph = SubGraph::action(OwnPriority), reduce = collect_priorities, writes = [priorities])]
fn default_children(state: State) -> Vec<State> {
    two_children(state)
}

async fn priorities(action: burr_core::actions::StaticAction, app_priority: i32) -> Vec<i32> {
    let name = action.declaration().name.as_str().to_owned();
    let mut app = ApplicationBuilder::new()
        .with_actions([action])
        .with_entrypoint(&name)
        .with_priority(app_priority)
        .build()
        .await
        .unwrap();
    let step = app.step(Inputs::new()).await.unwrap().unwrap();
    step.state.get("priorities").unwrap()
}

#[tokio::test]
async fn children_run_at_the_priority_given() {
    assert_eq!(priorities(UrgentChildren, 3).await, [7, 7]);
    assert_eq!(priorities(BackgroundChildren, 3).await, [-4, -4]);
    // Without `priority`, the children run at the application's.
    assert_eq!(priorities(DefaultChildren, 3).await, [3, 3]);
}

/// The order in which children were admitted by the executor, by tag.
static ADMITTED: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[action(reads = [tag])]
async fn admit(state: State) -> Result<State, ActionError> {
    let tag: String = state.get("tag")?;
    ADMITTED.lock().unwrap().push(tag);
    Ok(state)
}

fn tagged(flow: &str) -> Vec<State> {
    (0..3)
        .map(|i| State::new().update("tag", format!("{flow}{i}")))
        .collect()
}

#[map_states(subgraph = SubGraph::action(Admit))]
fn plain_fan(_state: State, flow: String) -> Vec<State> {
    tagged(&flow)
}

#[map_states(subgraph = SubGraph::action(Admit), priority = 10)]
fn urgent_fan(_state: State, flow: String) -> Vec<State> {
    tagged(&flow)
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

/// As burr-core's `priority_order_with_one_slot`: with the executor's one slot held, the
/// children of two applications of the same priority queue up; those of the map action
/// with `priority = 10` are admitted first although their flow started later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_higher_priority_map_is_admitted_first() {
    let executor = Executor::new(1);
    let flow = |action: burr_core::actions::StaticAction, name: &'static str| {
        let executor = executor.clone();
        async move {
            let entrypoint = action.declaration().name.as_str().to_owned();
            let mut app = ApplicationBuilder::new()
                .with_actions([action])
                .with_entrypoint(&entrypoint)
                .with_executor(executor)
                .build()
                .await
                .unwrap();
            app.step(inputs! { "flow": name }).await.unwrap();
        }
    };
    // Hold the only slot so that every flow's children queue up, then release it.
    let blocker = executor
        .acquire(WorkKey {
            priority: Priority(i32::MAX),
            flow: 0,
            path: Arc::from(vec![]),
        })
        .await;
    let backlog = tokio::spawn(flow(PlainFan, "backlog"));
    until_waiting(&executor, 3).await;
    let urgent = tokio::spawn(flow(UrgentFan, "urgent"));
    until_waiting(&executor, 6).await;
    drop(blocker);
    for flow in [backlog, urgent] {
        flow.await.unwrap();
    }
    assert_eq!(
        *ADMITTED.lock().unwrap(),
        ["urgent0", "urgent1", "urgent2", "backlog0", "backlog1", "backlog2"]
    );
}

// --- timeout ---

/// Sleeps for `ms` milliseconds.
#[action(reads = [ms], writes = [done])]
async fn slow(state: State) -> Result<State, ActionError> {
    let ms: u64 = state.get("ms")?;
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok(state.update("done", true))
}

/// A fast child and one that would run for a minute.
fn fast_and_slow(_state: State) -> Vec<State> {
    vec![
        State::new().update("ms", 1),
        State::new().update("ms", 60_000),
    ]
}

#[map_states(subgraph = SubGraph::action(Slow), policy = FailurePolicy::WaitAll, timeout = "100ms")]
fn limited(state: State) -> Vec<State> {
    fast_and_slow(state)
}

/// The builder API's map action that `limited` should be.
fn limited_by_hand() -> MapAction {
    MapAction::states(
        "limited",
        SubGraph::action(Slow),
        |s: &State, _: &Inputs| Ok(fast_and_slow(s.clone())),
    )
    .policy(FailurePolicy::WaitAll)
    .timeout(Duration::from_millis(100))
}

/// The step's error, and the status of the slow child's last checkpoint.
async fn timed_out(
    action: impl burr_core::actions::Action + 'static,
    app_id: &str,
) -> (Error, Option<StepStatus>) {
    let store = Arc::new(InMemoryPersister::new());
    let entrypoint = action.declaration().name.clone();
    let mut app = ApplicationBuilder::new()
        .with_actions([action])
        .with_entrypoint(&entrypoint)
        .with_app_id(app_id)
        // Its own slots: waiting for a slot of the process-wide executor, which the other
        // tests' children hold in real time, would count against the child's timeout.
        .with_executor(Executor::new(2))
        .with_state_persister(store.clone())
        .build()
        .await
        .unwrap();
    let err = app.step(Inputs::new()).await.unwrap_err();
    let rows = store
        .list_checkpoints(None, &child_app_id(app_id, 0, "1"))
        .await
        .unwrap();
    (err, rows.last().map(|r| r.status))
}

/// On tokio's paused clock: it moves only when every task waits, so the fast child always
/// finishes within the 100 ms.
#[tokio::test(start_paused = true)]
async fn a_child_over_the_timeout_fails_as_with_the_builder() {
    let (err, status) = timed_out(Limited, "timeouts").await;
    let Some(Error::Children(ChildrenFailed {
        total,
        failures: errors,
    })) = err.action_error::<Error>()
    else {
        panic!("expected the children's errors, got {err:?}");
    };
    assert_eq!(*total, 2);
    assert_eq!(errors.len(), 1, "only the slow child fails: {errors:?}");
    let ChildFailure {
        index,
        app_id,
        error,
    } = &errors[0];
    assert_eq!((*index, app_id.as_str()), (1, "timeouts/0/1"));
    assert!(
        matches!(&**error, Error::Timeout { app_id, after_ms: 100 } if app_id == "timeouts/0/1"),
        "{error:?}"
    );
    assert_eq!(status, Some(StepStatus::Cancelled));

    let (by_hand, by_hand_status) = timed_out(limited_by_hand(), "timeouts").await;
    assert_eq!(err.to_string(), by_hand.to_string());
    assert_eq!(
        format!("{:?}", err.action_error::<Error>()),
        format!("{:?}", by_hand.action_error::<Error>())
    );
    assert_eq!(status, by_hand_status);
}

const LIMIT_MS: u64 = 50;

/// A `Duration` expression, on `#[map_actions]`: both sub-graphs would run for a minute,
/// and both time out.
#[map_actions(subgraphs = [SubGraph::action(Slow.named("first")), SubGraph::action(Slow.named("second"))], timeout = Duration::from_millis(LIMIT_MS), policy = FailurePolicy::WaitAll)]
fn both_slow(_state: State) -> State {
    State::new().update("ms", 60_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duration_expression_is_a_timeout_too() {
    let mut app = ApplicationBuilder::new()
        .with_actions([BothSlow])
        .with_entrypoint("both_slow")
        .with_app_id("expr")
        .build()
        .await
        .unwrap();
    let err = app.step(Inputs::new()).await.unwrap_err();
    let Some(Error::Children(ChildrenFailed {
        total,
        failures: errors,
    })) = err.action_error::<Error>()
    else {
        panic!("expected the children's errors, got {err:?}");
    };
    assert_eq!(*total, 2);
    let after: Vec<(usize, u64)> = errors
        .iter()
        .map(|ChildFailure { index, error, .. }| match &**error {
            Error::Timeout { after_ms, .. } => (*index, *after_ms),
            other => panic!("expected a timeout, got {other:?}"),
        })
        .collect();
    assert_eq!(after, [(0, LIMIT_MS), (1, LIMIT_MS)]);
}

// --- persister and tracker ---

#[action(reads = [n], writes = [out])]
fn double(state: State) -> Result<State, ActionError> {
    let n: i64 = state.get("n")?;
    Ok(state.update("out", n * 2))
}

fn numbered(_state: State) -> Vec<burr_core::parallel::Task> {
    (0..2)
        .map(|n| {
            burr_core::parallel::Task::new(SubGraph::action(Double), State::new().update("n", n))
        })
        .collect()
}

#[map_tasks]
fn checkpointed(state: State) -> Vec<burr_core::parallel::Task> {
    numbered(state)
}

#[map_tasks(persister = ChildPersister::None, tracker = ChildTracker::None)]
fn unrecorded(state: State) -> Vec<burr_core::parallel::Task> {
    numbered(state)
}

/// How many checkpoints the first child saved, and how many applications the parent's
/// tracker saw created (the parent's own included).
async fn recorded(action: burr_core::actions::StaticAction) -> (usize, usize) {
    let store = Arc::new(InMemoryPersister::new());
    let tracker = RecordingHook::new();
    let name = action.declaration().name.as_str().to_owned();
    let mut app = ApplicationBuilder::new()
        .with_actions([action])
        .with_entrypoint(&name)
        .with_app_id("recorded")
        .with_state_persister(store.clone())
        .with_tracker(Arc::new(tracker.clone()))
        .build()
        .await
        .unwrap();
    app.step(Inputs::new()).await.unwrap();
    let checkpoints = store
        .list_checkpoints(None, &child_app_id("recorded", 0, "0"))
        .await
        .unwrap()
        .len();
    let created = tracker
        .events()
        .iter()
        .filter(|e| matches!(e, HookEvent::AppCreated { .. }))
        .count();
    (checkpoints, created)
}

#[tokio::test]
async fn children_checkpoint_and_report_where_they_are_told() {
    assert_eq!(recorded(Checkpointed).await, (1, 3));
    assert_eq!(recorded(Unrecorded).await, (0, 1));
}

/// Each child fails its first run and succeeds on the second.
#[action(reads = [i], writes = [out])]
fn fails_once(state: State, ctx: &burr_core::ApplicationContext) -> Result<State, ActionError> {
    if ctx.attempt() == 1 {
        return Err(ActionError::msg("first run fails"));
    }
    let i: i64 = state.get("i")?;
    Ok(state.update("out", i))
}

fn outs(state: State, children: Vec<State>) -> Result<State, ActionError> {
    let outs: Vec<i64> = children
        .iter()
        .map(|c| c.get("out"))
        .collect::<Result<_, _>>()?;
    Ok(state.update("outs", outs))
}

#[burr_core::map_states(subgraph = SubGraph::action(FailsOnce), reduce = outs, child_retry = 2, writes = [outs])]
fn retried_children(_state: State) -> Vec<State> {
    (0..3).map(|i| State::new().update("i", i)).collect()
}

#[tokio::test]
async fn child_retry_retries_each_childs_failed_step() {
    let mut app = ApplicationBuilder::new()
        .with_actions([RetriedChildren])
        .with_entrypoint(RetriedChildren)
        .build()
        .await
        .unwrap();
    let step = app.step(burr_core::Inputs::new()).await.unwrap().unwrap();
    assert_eq!(step.state.get::<Vec<i64>>("outs").unwrap(), [0, 1, 2]);
}
