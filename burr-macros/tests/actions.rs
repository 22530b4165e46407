//! End to end: applications built from `#[action]` actions, run by burr-core.

use std::error::Error as _;

use burr_core::actions::InputError;
use burr_core::actions::{Action, ActionExt, ActionResult};
use burr_core::graph::IntoAction;
use burr_core::state::StateError;
use burr_core::RunOptions;
use burr_core::{
    action, default, expr, inputs, ActionError, Application, ApplicationBuilder,
    ApplicationContext, Error, State,
};
use serde::Serialize;
use serde_json::{json, Map, Value};

/// An application whose entrypoint is the first of `actions`, with no transitions.
async fn app<A: IntoAction>(
    actions: impl IntoIterator<Item = A>,
    entry: &str,
    state: State,
) -> Application {
    ApplicationBuilder::new()
        .with_actions(actions)
        .with_state(state)
        .with_entrypoint(entry)
        .with_app_id("macro-app")
        .build()
        .await
        .expect("the application builds")
}

/// Run one step of the entrypoint: its result and state.
async fn step_once<A: IntoAction>(
    action: A,
    state: State,
    given: Value,
) -> Result<(ActionResult, State), Error> {
    let entry = {
        let action = action.into_action();
        let name = action.name().to_owned();
        (action, name)
    };
    let mut app = app([entry.0], &entry.1, state).await;
    let step = app
        .step(given.as_object().cloned().unwrap_or_default())
        .await?
        .expect("the entrypoint runs");
    Ok((step.result, step.state))
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

// --- the counter: sync actions, the shape a counter example needs ---

#[action(reads = [count], writes = [count])]
fn increment(state: State) -> Result<State, StateError> {
    state.increment("count", 1)
}

#[action(reads = [count], tags = ["end"])]
fn done(state: State) -> State {
    state
}

#[tokio::test]
async fn counter_of_macro_actions_runs_and_the_functions_stay_callable() {
    // The function is unchanged.
    let next = increment(State::new().update("count", 41)).unwrap();
    assert_eq!(next.get::<i64>("count").unwrap(), 42);

    // The constant is the action, with what the attribute declared.
    assert_eq!(Increment.name(), "increment");
    assert_eq!(Increment.declaration().reads, strings(&["count"]));
    assert_eq!(Increment.declaration().writes, strings(&["count"]));
    assert!(
        Increment.declaration().inputs.is_empty()
            && Increment.declaration().optional_inputs.is_empty()
    );
    assert!(Increment.declaration().single_step);
    assert_eq!(Done.declaration().tags, strings(&["end"]));
    assert!(Done.declaration().writes.is_empty());

    // Actions from different functions go in one list.
    let mut app = ApplicationBuilder::new()
        .with_actions([Increment, Done])
        .with_transitions([
            ("increment", "increment", expr("count < 3")),
            ("increment", "done", default()),
        ])
        .with_state(State::new().update("count", 0))
        .with_entrypoint("increment")
        .build()
        .await
        .unwrap();
    let outcome = app
        .run(RunOptions::new().halt_after(["@tag:end"]))
        .await
        .unwrap();
    assert_eq!(outcome.action.as_deref(), Some("done"));
    assert_eq!(outcome.state.get::<i64>("count").unwrap(), 3);
}

// --- async, and every return shape ---

#[derive(Serialize)]
struct Summary {
    total: i64,
    label: String,
}

#[action(reads = [items], writes = [total])]
async fn summarize(state: State) -> Result<(Summary, State), StateError> {
    tokio::task::yield_now().await;
    let items: Vec<i64> = state.get("items")?;
    let total = items.iter().sum::<i64>();
    let summary = Summary {
        total,
        label: format!("{} items", items.len()),
    };
    Ok((summary, state.update("total", total)))
}

#[tokio::test]
async fn async_action_returns_a_serialized_struct_as_its_result() {
    let (result, state) = step_once(
        Summarize,
        State::new().update("items", json!([1, 2, 3])),
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(
        Value::Object(result),
        json!({"total": 6, "label": "3 items"})
    );
    assert_eq!(state.get::<i64>("total").unwrap(), 6);
    assert_eq!(state.get::<Vec<i64>>("items").unwrap(), [1, 2, 3]);
}

#[action(writes = [n])]
fn shape_state(state: State) -> State {
    state.update("n", 1)
}

#[action(writes = [n])]
fn shape_value_pair(state: State) -> (Value, State) {
    (json!({"shape": "value"}), state.update("n", 2))
}

#[action(writes = [n])]
fn shape_map_pair(state: State) -> (Map<String, Value>, State) {
    let mut map = Map::new();
    map.insert("shape".into(), json!("map"));
    (map, state.update("n", 3))
}

#[action(writes = [n])]
async fn shape_result_state(state: State) -> Result<State, ActionError> {
    Ok(state.update("n", 4))
}

#[action(writes = [n])]
fn shape_result_pair(state: State) -> Result<(Summary, State), std::io::Error> {
    let summary = Summary {
        total: 5,
        label: "pair".into(),
    };
    Ok((summary, state.update("n", 5)))
}

#[tokio::test]
async fn every_supported_return_shape_gives_its_result_and_state() {
    let cases = [
        (ShapeState, json!({}), 1),
        (ShapeValuePair, json!({"shape": "value"}), 2),
        (ShapeMapPair, json!({"shape": "map"}), 3),
        (ShapeResultState, json!({}), 4),
        (ShapeResultPair, json!({"total": 5, "label": "pair"}), 5),
    ];
    for (action, expected_result, n) in cases {
        let name = action.name().to_owned();
        let (result, state) = step_once(action, State::new(), json!({})).await.unwrap();
        assert_eq!(Value::Object(result), expected_result, "{name}");
        assert_eq!(state.get::<i64>("n").unwrap(), n, "{name}");
    }
}

#[action(writes = [n])]
fn result_not_an_object(state: State) -> (i64, State) {
    (7, state.update("n", 7))
}

#[tokio::test]
async fn a_result_that_is_not_a_json_object_fails_the_step() {
    let err = step_once(ResultNotAnObject, State::new(), json!({}))
        .await
        .unwrap_err();
    let Error::Action { action, source } = &err else {
        panic!("expected an action error, got {err:?}");
    };
    assert_eq!(action, "result_not_an_object");
    assert!(
        source
            .to_string()
            .contains("must serialize to a JSON object, got"),
        "{source}"
    );
}

// --- inputs, context, bindings ---

#[action(reads = [query], writes = [answer], name = "answer_question", tags = ["llm"])]
fn answer(
    state: State,
    model: String,
    top_k: Option<usize>,
    #[input(default = 0.5)] temperature: f64,
    ctx: &ApplicationContext,
) -> Result<(Value, State), StateError> {
    let query: String = state.get("query")?;
    let answer = format!(
        "{query} | {model} top_k={top_k:?} t={temperature} as {} in {}",
        ctx.action_name(),
        ctx.app_id()
    );
    Ok((json!({ "answer": answer }), state.update("answer", answer)))
}

fn query() -> State {
    State::new().update("query", "why")
}

#[tokio::test]
async fn inputs_are_typed_and_required_optional_or_defaulted() {
    assert_eq!(Answer.name(), "answer_question");
    assert_eq!(Answer.declaration().tags, strings(&["llm"]));
    assert_eq!(Answer.declaration().inputs, strings(&["model"]));
    assert_eq!(
        Answer.declaration().optional_inputs,
        strings(&["top_k", "temperature"])
    );

    let (result, _) = step_once(Answer, query(), json!({"model": "m", "top_k": 5}))
        .await
        .unwrap();
    assert_eq!(
        result["answer"],
        "why | m top_k=Some(5) t=0.5 as answer_question in macro-app"
    );

    let (_, state) = step_once(
        Answer,
        query(),
        json!({"model": "m", "top_k": null, "temperature": 1.5}),
    )
    .await
    .unwrap();
    assert_eq!(
        state.get::<String>("answer").unwrap(),
        "why | m top_k=None t=1.5 as answer_question in macro-app"
    );
}

#[tokio::test]
async fn a_missing_required_input_is_refused_before_the_step() {
    let err = step_once(Answer, query(), json!({"top_k": 1}))
        .await
        .unwrap_err();
    match err {
        Error::MissingInput { action, inputs } => {
            assert_eq!(action, "answer_question");
            assert_eq!(inputs, ["model"]);
        }
        other => panic!("expected MissingInput, got {other:?}"),
    }
}

fn input_error(err: &Error) -> &InputError {
    let Error::Action { source, .. } = err else {
        panic!("expected an action error, got {err:?}");
    };
    source
        .downcast_ref::<InputError>()
        .unwrap_or_else(|| panic!("expected an InputError, got {source:?}"))
}

#[tokio::test]
async fn an_input_of_the_wrong_type_fails_the_step_naming_action_input_and_type() {
    let err = step_once(Answer, query(), json!({"model": "m", "top_k": "x"}))
        .await
        .unwrap_err();
    let input = input_error(&err);
    assert_eq!(
        input.to_string(),
        "action `answer_question`: input `top_k` must be a `Option<usize>`: invalid type: string \"x\", expected usize"
    );
    assert_eq!(
        (input.action(), input.input(), input.expected()),
        ("answer_question", "top_k", "Option<usize>")
    );
    assert!(input.source().is_some());

    let err = step_once(Answer, query(), json!({"model": 3}))
        .await
        .unwrap_err();
    assert_eq!(input_error(&err).input(), "model");
    assert_eq!(input_error(&err).expected(), "String");

    let err = step_once(Answer, query(), json!({"model": "m", "temperature": "hot"}))
        .await
        .unwrap_err();
    assert_eq!(input_error(&err).input(), "temperature");
    assert_eq!(input_error(&err).expected(), "f64");
}

#[tokio::test]
async fn one_function_serves_as_several_bound_actions() {
    let small = Answer.bind("model", "small").named("answer_small");
    let large = Answer
        .bind("model", "large")
        .bind("temperature", 0.0)
        .named("answer_large");
    assert!(small.declaration().inputs.is_empty());
    assert_eq!(
        small.declaration().optional_inputs,
        strings(&["top_k", "temperature"])
    );
    assert_eq!(large.declaration().optional_inputs, strings(&["top_k"]));

    let mut app = ApplicationBuilder::new()
        .with_actions([small, large])
        .with_transitions([("answer_small", "answer_large")])
        .with_state(query())
        .with_entrypoint("answer_small")
        .with_app_id("macro-app")
        .build()
        .await
        .unwrap();
    let first = app.step(inputs! {"top_k": 2}).await.unwrap().unwrap();
    assert_eq!(
        first.result["answer"],
        "why | small top_k=Some(2) t=0.5 as answer_small in macro-app"
    );
    // A bound input wins over one the caller gives.
    let second = app
        .step(inputs! {"model": "ignored", "temperature": 9.0})
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        second.state.get::<String>("answer").unwrap(),
        "why | large top_k=None t=0 as answer_large in macro-app"
    );

    // Errors name the action under its bound name.
    let bad = Answer.bind("model", "small").named("answer_small");
    let err = step_once(bad, query(), json!({"top_k": -1}))
        .await
        .unwrap_err();
    assert_eq!(input_error(&err).action(), "answer_small");
}

#[action(writes = [who])]
fn context_by_value(state: State, ctx: ApplicationContext, suffix: String) -> State {
    state.update(
        "who",
        format!("{}:{}{suffix}", ctx.app_id(), ctx.action_name()),
    )
}

#[tokio::test]
async fn the_context_can_be_taken_by_value_anywhere_after_the_state() {
    assert_eq!(ContextByValue.declaration().inputs, strings(&["suffix"]));
    let (_, state) = step_once(ContextByValue, State::new(), json!({"suffix": "!"}))
        .await
        .unwrap();
    assert_eq!(
        state.get::<String>("who").unwrap(),
        "macro-app:context_by_value!"
    );
}

// --- the same checks as any action ---

#[action(reads = [a], writes = [saw_a, saw_b])]
fn look(state: State) -> State {
    let (saw_a, saw_b) = (state.contains("a"), state.contains("b"));
    state.update("saw_a", saw_a).update("saw_b", saw_b)
}

#[action(reads = [a], writes = [a])]
fn writes_too_much(state: State) -> State {
    state.update("a", 1).update("other", 2)
}

#[action(writes = [a, b])]
fn writes_too_little(state: State) -> State {
    state.update("a", 1)
}

#[derive(Debug)]
struct Boom;

impl std::fmt::Display for Boom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("boom")
    }
}

impl std::error::Error for Boom {}

#[action(writes = [a])]
async fn fails(_state: State) -> Result<State, Boom> {
    Err(Boom)
}

#[tokio::test]
async fn the_action_sees_only_the_keys_it_reads() {
    let state = State::new().update("a", 1).update("b", 2);
    let (_, after) = step_once(Look, state, json!({})).await.unwrap();
    assert!(after.get::<bool>("saw_a").unwrap());
    assert!(!after.get::<bool>("saw_b").unwrap());
    assert_eq!(after.get::<i64>("b").unwrap(), 2, "an unread key is kept");
}

#[tokio::test]
async fn undeclared_and_missing_writes_fail_the_step() {
    match step_once(WritesTooMuch, State::new().update("a", 0), json!({})).await {
        Err(Error::UndeclaredWrite { action, keys }) => {
            assert_eq!(action, "writes_too_much");
            assert_eq!(keys, ["other"]);
        }
        other => panic!("expected UndeclaredWrite, got {other:?}"),
    }
    match step_once(WritesTooLittle, State::new(), json!({})).await {
        Err(Error::MissingWrite { action, keys }) => {
            assert_eq!(action, "writes_too_little");
            assert_eq!(keys, ["b"]);
        }
        other => panic!("expected MissingWrite, got {other:?}"),
    }
}

#[tokio::test]
async fn an_error_returned_by_the_function_fails_the_step_and_keeps_its_type() {
    let err = step_once(Fails, State::new(), json!({})).await.unwrap_err();
    let Error::Action { action, source } = &err else {
        panic!("expected an action error, got {err:?}");
    };
    assert_eq!(action, "fails");
    assert!(source.downcast_ref::<Boom>().is_some(), "{source:?}");
}

// --- blocking ---

fn thread_name() -> String {
    format!("{:?}", std::thread::current().id())
}

#[action(writes = [thread])]
fn inline_sync(state: State) -> State {
    state.update("thread", thread_name())
}

#[action(writes = [thread, label], blocking)]
fn on_blocking_pool(state: State, ctx: &ApplicationContext, #[input(default = 1)] n: u32) -> State {
    state
        .update("thread", thread_name())
        .update("label", format!("{}x{n}", ctx.action_name()))
}

#[tokio::test(flavor = "current_thread")]
async fn a_plain_fn_runs_inline_unless_marked_blocking() {
    let here = thread_name();
    let (_, inline) = step_once(InlineSync, State::new(), json!({}))
        .await
        .unwrap();
    assert_eq!(inline.get::<String>("thread").unwrap(), here);

    let (_, pooled) = step_once(OnBlockingPool, State::new(), json!({"n": 3}))
        .await
        .unwrap();
    assert_ne!(pooled.get::<String>("thread").unwrap(), here);
    assert_eq!(pooled.get::<String>("label").unwrap(), "on_blocking_poolx3");
}

// --- a renamed burr-core ---

mod renamed {
    extern crate burr_core as my_burr;

    use my_burr::State;

    #[my_burr::action(crate = my_burr, writes = [x])]
    pub(super) fn set_x(state: State, x: i64) -> State {
        state.update("x", x)
    }
}

#[tokio::test]
async fn crate_argument_names_a_renamed_burr_core() {
    let (_, state) = step_once(renamed::SetX, State::new(), json!({"x": 9}))
        .await
        .unwrap();
    assert_eq!(state.get::<i64>("x").unwrap(), 9);
}

/// What an embedding model would be: shared by every step that needs it.
struct Model {
    dims: usize,
}

#[action(reads = [text], writes = [dims])]
fn embed(state: State, model: burr_core::Res<Model>) -> Result<State, ActionError> {
    let _text: String = state.get("text")?;
    Ok(state.update("dims", model.dims))
}

#[burr_core::map_states(subgraph = burr_core::parallel::SubGraph::action(Embed), reduce = all_dims, reads = [texts], writes = [dims])]
fn embed_all(state: State) -> Result<Vec<State>, ActionError> {
    let texts: Vec<String> = state.get("texts")?;
    Ok(texts
        .into_iter()
        .map(|t| State::new().update("text", t))
        .collect())
}

fn all_dims(state: State, children: Vec<State>) -> Result<State, ActionError> {
    let dims: Vec<usize> = children
        .iter()
        .map(|c| c.get("dims"))
        .collect::<Result<_, _>>()?;
    Ok(state.update("dims", dims))
}

#[tokio::test]
async fn resources_reach_actions_and_child_applications() -> Result<(), Error> {
    let mut app = ApplicationBuilder::new()
        .with_actions([EmbedAll])
        .with_entrypoint(EmbedAll)
        .with_state(State::new().update("texts", json!(["a", "bb"])))
        .with_resource(std::sync::Arc::new(Model { dims: 384 }))
        .build()
        .await?;
    let step = app.step(burr_core::Inputs::new()).await?.expect("a step");
    assert_eq!(step.state.get_value("dims"), Some(&json!([384, 384])));

    // Without it, the action's error names the action and the type.
    let mut app = ApplicationBuilder::new()
        .with_actions([Embed])
        .with_entrypoint(Embed)
        .with_state(State::new().update("text", "a"))
        .build()
        .await?;
    let err = app.step(burr_core::Inputs::new()).await.unwrap_err();
    let report = burr_core::error::report(&err);
    assert!(
        report.contains("action `embed` needs a resource of type `actions::Model`"),
        "{report}"
    );
    Ok(())
}

/// Fails its first two runs (counted in `TRIES`), then succeeds.
static TRIES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

#[action(writes = [done], retry = 3)]
fn flaky_twice(state: State) -> Result<State, ActionError> {
    if TRIES.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
        return Err(ActionError::msg("not yet"));
    }
    Ok(state.update("done", true))
}

#[action(writes = [done], timeout = "50ms", retry = burr_core::actions::RetryPolicy::new(2).retry_on([burr_core::actions::ErrorKind::Timeout]))]
async fn too_slow(state: State) -> State {
    tokio::time::sleep(std::time::Duration::from_secs(30)).await;
    state.update("done", true)
}

#[tokio::test]
async fn retry_and_timeout_arguments_reach_the_declaration() -> Result<(), Error> {
    let declared = FlakyTwice.declaration();
    assert_eq!(declared.retry.as_ref().map(|p| p.max_attempts()), Some(3));
    let declared = TooSlow.declaration();
    assert_eq!(declared.timeout, Some(std::time::Duration::from_millis(50)));
    assert_eq!(declared.retry.as_ref().map(|p| p.max_attempts()), Some(2));

    let mut app = ApplicationBuilder::new()
        .with_actions([FlakyTwice])
        .with_entrypoint(FlakyTwice)
        .build()
        .await?;
    let step = app.step(burr_core::Inputs::new()).await?.expect("a step");
    assert_eq!(step.state.get_value("done"), Some(&json!(true)));
    assert_eq!(TRIES.load(std::sync::atomic::Ordering::SeqCst), 3);

    let mut app = ApplicationBuilder::new()
        .with_actions([TooSlow])
        .with_entrypoint(TooSlow)
        .build()
        .await?;
    let err = app.step(burr_core::Inputs::new()).await.unwrap_err();
    assert!(
        matches!(err, Error::StepTimeout { after_ms: 50, .. }),
        "{err}"
    );
    Ok(())
}
