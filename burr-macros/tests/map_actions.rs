//! End to end: applications whose map actions are written with `#[map_states]`,
//! `#[map_tasks]`, `#[map_actions]` and `#[map_actions_and_states]`, run by burr-core.

use burr_core::error::ChildrenFailed;
use burr_core::parallel::{ChildOutcome, FailurePolicy, SubGraph, Task};
use burr_core::{
    action, map_actions, map_actions_and_states, map_states, map_tasks, ActionError,
    ApplicationBuilder, Error, State,
};
use serde_json::{json, Value};

// --- the children's actions ---

#[action(reads = [text], writes = [length])]
fn measure(state: State) -> Result<State, ActionError> {
    let text: String = state.get("text")?;
    if text == "boom" {
        return Err(ActionError::msg("cannot measure `boom`"));
    }
    Ok(state.update("length", text.chars().count()))
}

#[action(reads = [n], writes = [out])]
fn double(state: State) -> Result<State, ActionError> {
    let n: i64 = state.get("n")?;
    Ok(state.update("out", n * 2))
}

#[action(reads = [n], writes = [out])]
fn square(state: State) -> Result<State, ActionError> {
    let n: i64 = state.get("n")?;
    Ok(state.update("out", n * n))
}

// --- the map actions ---

/// One child per word (at least `min` letters long); the reduce gets the children's final
/// states in task order.
#[map_states(subgraph = SubGraph::action(Measure), reduce = collect_lengths, reads = [words], writes = [lengths], tags = ["fan-out"])]
fn lengths(state: State, #[input(default = 0)] min: usize) -> Result<Vec<State>, ActionError> {
    let words: Vec<String> = state.get("words")?;
    Ok(words
        .into_iter()
        .filter(|w| w.chars().count() >= min)
        .map(|w| State::new().update("text", w))
        .collect())
}

fn collect_lengths(state: State, children: Vec<State>) -> Result<State, ActionError> {
    let lengths: Vec<i64> = children
        .iter()
        .map(|c| c.get("length"))
        .collect::<Result<_, _>>()?;
    Ok(state.update("lengths", lengths))
}

/// Keyed by the word itself.
#[map_states(subgraph = SubGraph::action(Measure), keyed, reduce = lengths_by_key, reads = [words], writes = [by_word])]
fn keyed_lengths(state: State) -> Result<Vec<(String, State)>, ActionError> {
    let words: Vec<String> = state.get("words")?;
    Ok(words
        .into_iter()
        .map(|w| (w.clone(), State::new().update("text", w)))
        .collect())
}

fn lengths_by_key(state: State, children: Vec<State>) -> Result<State, ActionError> {
    let mut by_word = serde_json::Map::new();
    for child in &children {
        let text: String = child.get("text")?;
        by_word.insert(
            text,
            child.get_value("length").cloned().unwrap_or(Value::Null),
        );
    }
    Ok(state.update("by_word", Value::Object(by_word)))
}

/// Both sub-graphs over the one state.
#[map_actions(subgraphs = [SubGraph::action(Double), SubGraph::action(Square)], reduce = collect_outs, reads = [n], writes = [outs])]
fn both(state: State) -> State {
    state.subset(["n"])
}

fn collect_outs(state: State, children: Vec<State>) -> Result<State, ActionError> {
    let outs: Vec<i64> = children
        .iter()
        .map(|c| c.get("out"))
        .collect::<Result<_, _>>()?;
    Ok(state.update("outs", outs))
}

/// Both sub-graphs over each number (and `extra`, when given): the product.
#[map_actions_and_states(subgraphs = [SubGraph::action(Double), SubGraph::action(Square)], reduce_settled = outs_by_key, reads = [ns], writes = [keys, outs])]
fn each_way(state: State, extra: Option<i64>) -> Result<Vec<State>, ActionError> {
    let ns: Vec<i64> = state.get("ns")?;
    Ok(ns
        .into_iter()
        .chain(extra)
        .map(|n| State::new().update("n", n))
        .collect())
}

fn outs_by_key(state: State, outcomes: Vec<ChildOutcome>) -> Result<State, ActionError> {
    let mut keys = Vec::new();
    let mut outs = Vec::new();
    for outcome in outcomes {
        keys.push(outcome.key);
        outs.push(outcome.result?.get::<i64>("out")?);
    }
    Ok(state.update("keys", keys).update("outs", outs))
}

/// Tasks built by hand: a different sub-graph per number, keyed.
#[map_tasks(reduce = collect_outs, reads = [ns], writes = [outs], name = "by_hand")]
fn hand_tasks(state: State) -> Result<Vec<Task>, ActionError> {
    let ns: Vec<i64> = state.get("ns")?;
    Ok(ns
        .into_iter()
        .map(|n| {
            let subgraph = if n % 2 == 0 {
                SubGraph::action(Double)
            } else {
                SubGraph::action(Square)
            };
            Task::new(subgraph, State::new().update("n", n)).with_key(format!("n{n}"))
        })
        .collect())
}

/// Under `WaitAll`, a failing child fails the step after every child has finished.
#[map_states(subgraph = SubGraph::action(Measure), reduce = collect_lengths, policy = FailurePolicy::WaitAll, reads = [words], writes = [lengths])]
fn strict_lengths(state: State) -> Result<Vec<State>, ActionError> {
    words_to_states(state)
}

/// With `reduce_settled`, the reducer gets every child's outcome, failures included.
#[map_states(subgraph = SubGraph::action(Measure), reduce_settled = count_outcomes, reads = [words], writes = [measured, failed])]
fn settled_lengths(state: State) -> Result<Vec<State>, ActionError> {
    words_to_states(state)
}

fn count_outcomes(state: State, outcomes: Vec<ChildOutcome>) -> Result<State, ActionError> {
    let failed: Vec<String> = outcomes
        .iter()
        .filter(|o| o.result.is_err())
        .map(|o| o.key.clone())
        .collect();
    let measured = outcomes.len() - failed.len();
    Ok(state.update("measured", measured).update("failed", failed))
}

/// No reducer: the children run, the state is unchanged.
#[map_states(subgraph = SubGraph::action(Measure), reads = [words])]
fn just_run(state: State) -> Result<Vec<State>, ActionError> {
    words_to_states(state)
}

fn words_to_states(state: State) -> Result<Vec<State>, ActionError> {
    let words: Vec<String> = state.get("words")?;
    Ok(words
        .into_iter()
        .map(|w| State::new().update("text", w))
        .collect())
}

async fn step(
    action: burr_core::actions::StaticAction,
    state: State,
    given: Value,
) -> Result<(Value, State), Error> {
    let name = action.name().to_owned();
    let mut app = ApplicationBuilder::new()
        .with_actions([action])
        .with_state(state)
        .with_entrypoint(&name)
        .with_app_id("map-macro-app")
        .build()
        .await?;
    let step = app
        .step(given.as_object().cloned().unwrap_or_default())
        .await?
        .expect("the entrypoint runs");
    Ok((Value::Object(step.result), step.state))
}

fn words(list: &[&str]) -> State {
    State::new().update("words", json!(list))
}

#[tokio::test]
async fn map_states_reduces_in_task_order_and_takes_inputs() {
    let many: Vec<String> = (0..50).map(|i| "x".repeat(i % 7 + 1)).collect();
    let (result, state) = step(
        Lengths,
        State::new().update("words", json!(many)),
        json!({}),
    )
    .await
    .unwrap();
    let expected: Vec<usize> = (0..50).map(|i| i % 7 + 1).collect();
    assert_eq!(state.get::<Vec<usize>>("lengths").unwrap(), expected);
    assert_eq!(result["children"], json!(50));

    let (_, state) = step(
        Lengths,
        words(&["a", "bbb", "cc", "dddd"]),
        json!({ "min": 3 }),
    )
    .await
    .unwrap();
    assert_eq!(state.get::<Vec<usize>>("lengths").unwrap(), [3, 4]);

    let err = step(Lengths, words(&["a"]), json!({ "min": "three" }))
        .await
        .unwrap_err();
    let input = err
        .action_error::<burr_core::actions::InputError>()
        .expect("an input error");
    assert_eq!((input.action(), input.input()), ("lengths", "min"));
}

#[tokio::test]
async fn the_constants_declare_the_action() {
    assert_eq!(Lengths.name(), "lengths");
    assert_eq!(Lengths.declaration().reads, ["words"]);
    assert_eq!(Lengths.declaration().writes, ["lengths"]);
    assert_eq!(Lengths.declaration().optional_inputs, ["min"]);
    assert_eq!(Lengths.declaration().tags, ["fan-out"]);
    assert_eq!(HandTasks.name(), "by_hand");
    // Map constants and `#[action]` constants go in one list.
    let mut app = ApplicationBuilder::new()
        .with_actions([Lengths, Both, Measure, HandTasks, EachWay])
        .with_transitions([
            ("lengths", "both"),
            ("both", "by_hand"),
            ("by_hand", "each_way"),
        ])
        .with_state(words(&[]))
        .with_entrypoint("lengths")
        .build()
        .await
        .unwrap();
    assert_eq!(app.next_action().unwrap(), Some("lengths"));
}

#[tokio::test]
async fn keyed_children_reduce_by_key() {
    let (_, state) = step(KeyedLengths, words(&["ab", "c", "def"]), json!({}))
        .await
        .unwrap();
    assert_eq!(
        state.get_value("by_word"),
        Some(&json!({ "ab": 2, "c": 1, "def": 3 }))
    );
}

#[tokio::test]
async fn map_actions_runs_every_subgraph_on_one_state() {
    let (result, state) = step(Both, State::new().update("n", 5), json!({}))
        .await
        .unwrap();
    assert_eq!(state.get::<Vec<i64>>("outs").unwrap(), [10, 25]);
    assert_eq!(result["children"], json!(2));
}

#[tokio::test]
async fn map_actions_and_states_runs_every_subgraph_on_every_state() {
    let (result, state) = step(
        EachWay,
        State::new().update("ns", json!([2, 3])),
        json!({ "extra": 5 }),
    )
    .await
    .unwrap();
    assert_eq!(result["children"], json!(6));
    // Sub-graph-major, keyed `<entrypoint>.<state index>`, as `MapActionsAndStates`.
    assert_eq!(
        state.get::<Vec<String>>("keys").unwrap(),
        ["double.0", "double.1", "double.2", "square.0", "square.1", "square.2"]
    );
    assert_eq!(state.get::<Vec<i64>>("outs").unwrap(), [4, 6, 10, 4, 9, 25]);
    assert_eq!(EachWay.declaration().optional_inputs, ["extra"]);
}

#[tokio::test]
async fn map_tasks_runs_the_tasks_it_builds() {
    let (_, state) = step(
        HandTasks,
        State::new().update("ns", json!([1, 2, 3, 4])),
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(state.get::<Vec<i64>>("outs").unwrap(), [1, 4, 9, 8]);
}

#[tokio::test]
async fn a_failing_child_fails_the_step_under_wait_all() {
    let err = step(StrictLengths, words(&["a", "boom", "ccc"]), json!({}))
        .await
        .unwrap_err();
    let Some(Error::Children(ChildrenFailed {
        total,
        failures: errors,
    })) = err.action_error::<Error>()
    else {
        panic!("expected the children's errors, got {err}");
    };
    assert_eq!(*total, 3);
    let failed: Vec<usize> = errors.iter().map(|f| f.index).collect();
    assert_eq!(failed, [1]);
}

#[tokio::test]
async fn a_failing_child_reaches_the_settled_reducer() {
    let (result, state) = step(
        SettledLengths,
        words(&["a", "boom", "ccc", "boom"]),
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(state.get::<usize>("measured").unwrap(), 2);
    assert_eq!(state.get::<Vec<String>>("failed").unwrap(), ["1", "3"]);
    assert_eq!(result["failed"], json!(2));
}

#[tokio::test]
async fn without_a_reducer_the_state_is_unchanged() {
    let before = words(&["a", "bb"]);
    let (result, state) = step(JustRun, before.clone(), json!({})).await.unwrap();
    assert_eq!(result["children"], json!(2));
    assert_eq!(state.get_value("words"), before.get_value("words"));
    assert_eq!(state.get_value("lengths"), None);
}

#[test]
fn the_functions_stay_callable() {
    let children = lengths(words(&["a", "bb", "ccc"]), 2).unwrap();
    let texts: Vec<String> = children.iter().map(|c| c.get("text").unwrap()).collect();
    assert_eq!(texts, ["bb", "ccc"]);
    let keyed = keyed_lengths(words(&["x"])).unwrap();
    assert_eq!(keyed[0].0, "x");
    assert_eq!(
        both(State::new().update("n", 1).update("m", 2))
            .keys()
            .count(),
        1
    );
    assert_eq!(
        hand_tasks(State::new().update("ns", json!([7]))).unwrap()[0]
            .key
            .as_deref(),
        Some("n7")
    );
    let reduced = collect_lengths(State::new(), vec![State::new().update("length", 4)]).unwrap();
    assert_eq!(reduced.get::<Vec<i64>>("lengths").unwrap(), [4]);
}
