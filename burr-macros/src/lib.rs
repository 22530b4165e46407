//! # burr-macros
//!
//! The attribute macros of [burr-core](https://docs.rs/burr-core): write an action as a
//! function, get a checked `Action`. Use them through burr-core (feature `macros`, on by
//! default), as `burr_core::action`, `burr_core::map_states`, `burr_core::map_tasks`,
//! `burr_core::map_actions` and `burr_core::map_actions_and_states`; this crate is not meant
//! to be a dependency of its own.
//!
//! See [`macro@action`] for what it accepts and generates, and [Map actions](#map-actions)
//! for the other four. Inside, a macro works in four stages: the attribute's arguments
//! are parsed (`args`, `map_args`), the function's signature is checked and modelled
//! (`signature`, with a `Kind` per attribute), and the action is generated (`expand`,
//! `map_expand`); every mistake is reported at the token that makes it, all at once, with
//! the function still emitted so that IDEs keep working.
//!
//! # Map actions
//!
//! A map action runs child applications and reduces their final states into the parent's
//! state (see `burr_core::parallel`). Write the function that says what the children start
//! from, and name the reducer:
//!
//! ```
//! use burr_core::parallel::SubGraph;
//! use burr_core::{action, map_states, ActionError, ApplicationBuilder, Inputs, State};
//! use serde_json::json;
//!
//! #[action(reads = [text], writes = [length])]
//! fn measure(state: State) -> Result<State, ActionError> {
//!     let text: String = state.get("text")?;
//!     Ok(state.update("length", text.chars().count()))
//! }
//!
//! /// One child per word; the reduce gets the children's final states in task order.
//! #[map_states(subgraph = SubGraph::action(Measure), reduce = collect_lengths, reads = [words], writes = [lengths])]
//! fn lengths(state: State) -> Result<Vec<State>, ActionError> {
//!     let words: Vec<String> = state.get("words")?;
//!     Ok(words.into_iter().map(|w| State::new().update("text", w)).collect())
//! }
//!
//! fn collect_lengths(state: State, children: Vec<State>) -> Result<State, ActionError> {
//!     let lengths: Vec<i64> = children.iter().map(|c| c.get("length")).collect::<Result<_, _>>()?;
//!     Ok(state.update("lengths", lengths))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> burr_core::Result<()> {
//! let mut app = ApplicationBuilder::new()
//!     .with_actions([Lengths])
//!     .with_state(State::new().update("words", json!(["a", "bb", "ccc"])))
//!     .with_entrypoint("lengths")
//!     .build()
//!     .await?;
//! app.step(Inputs::new()).await?;
//! assert_eq!(app.state().get::<Vec<i64>>("lengths")?, [1, 2, 3]);
//! # Ok(())
//! # }
//! ```
//!
//! | attribute | the function returns | one child per |
//! | --- | --- | --- |
//! | `#[map_states(subgraph = <SubGraph>, ...)]` | `Vec<State>` | state, running `subgraph`, keyed by index |
//! | `#[map_states(subgraph = <SubGraph>, keyed, ...)]` | `Vec<(String, State)>` | state, keyed by the string |
//! | `#[map_tasks(...)]` | `Vec<Task>` | task (its own sub-graph, state, inputs and key) |
//! | `#[map_actions(subgraphs = [<SubGraph>, ...], ...)]` | `State` | sub-graph, all starting from that state, keyed by entrypoint |
//! | `#[map_actions_and_states(subgraphs = [<SubGraph>, ...], ...)]` | `Vec<State>` | (sub-graph, state) pair, sub-graph-major, keyed `<entrypoint>.<state index>` |
//!
//! Each may also be a `Result` of it whose error converts into `ActionError`. The function
//! takes the state (the keys it `reads`) first, by value, then inputs exactly as an
//! `#[action]` function does (`Option<T>`, `#[input(default = ...)]`); an input that does
//! not deserialize fails the step with `burr_core::actions::InputError`, naming the action
//! by its declared name. It is a plain `fn` and takes no `ApplicationContext`: it builds
//! what the children run, before they run (the children's actions may be `async`).
//!
//! Besides `reads`, `writes`, `name`, `tags` and `crate`, as for `#[action]`:
//!
//! | argument | meaning |
//! | --- | --- |
//! | `subgraph = <expr>` | `#[map_states]`, required: the `SubGraph` every child runs |
//! | `subgraphs = [<expr>, ...]` | `#[map_actions]` and `#[map_actions_and_states]`, required: the `SubGraph`s (any iterable of them) |
//! | `keyed` | `#[map_states]`: the function returns `(key, state)` pairs; a resumed parent finds each child by key |
//! | `reduce = path` | the reducer, `fn(State, Vec<State>) -> Result<State, E>` (or `-> State`): the parent state (the keys it reads) and the children's final states, in task order |
//! | `reduce_settled = path` | instead of `reduce`, `fn(State, Vec<ChildOutcome>) -> Result<State, E>`: every child's outcome, failures included; sets the policy to `Settled` |
//! | `policy = <expr>` | the `FailurePolicy` (default `FailFast`; written after the reducer, so it wins over `reduce_settled`'s) |
//! | `priority = <expr>` | the children's priority, an `i32`: the executor admits higher first (default: the parent application's) |
//! | `timeout = "30s"` | a child that runs longer fails with `burr_core::Error::Timeout` and is recorded cancelled; a whole number and a unit, `ms`, `s`, `m` or `h`, or any `Duration` expression: `timeout = Duration::from_millis(limit())` |
//! | `child_retry = 3` | retry each child's failed steps, up to 3 runs in all; or any `RetryPolicy` expression (`MapAction::child_retry`) |
//! | `persister = <expr>` | where the children checkpoint, a `ChildPersister` (default `Cascade`: the parent's persister) |
//! | `tracker = <expr>` | which tracker the children report to, a `ChildTracker` (default `Cascade`: the parent's) |
//!
//! Each is forwarded to the `MapAction` builder method of the same name. A value of the
//! wrong type is a compile error at the value; so are a `priority` literal that is not an
//! `i32` and a `timeout` string that is not a whole number and a unit, or is zero. The
//! expressions are evaluated once, when the map action is first used, outside any function
//! of yours: they may call functions and name constants and statics, not local variables.
//!
//! ```
//! use burr_core::parallel::{ChildPersister, FailurePolicy, SubGraph};
//! use burr_core::{action, map_actions_and_states, ActionError, State};
//!
//! #[action(reads = [n], writes = [out])]
//! fn double(state: State) -> Result<State, ActionError> {
//!     let n: i64 = state.get("n")?;
//!     Ok(state.update("out", n * 2))
//! }
//!
//! #[action(reads = [n], writes = [out])]
//! async fn square(state: State) -> Result<State, ActionError> {
//!     let n: i64 = state.get("n")?;
//!     Ok(state.update("out", n * n))
//! }
//!
//! /// Both sub-graphs over every number: four children for two numbers, urgent ones, none
//! /// allowed more than ten seconds, none checkpointed.
//! #[map_actions_and_states(
//!     subgraphs = [SubGraph::action(Double), SubGraph::action(Square)],
//!     reduce = collect,
//!     priority = 10,
//!     timeout = "10s",
//!     persister = ChildPersister::None,
//!     policy = FailurePolicy::WaitAll,
//!     reads = [ns],
//!     writes = [outs],
//! )]
//! fn each_way(state: State) -> Result<Vec<State>, ActionError> {
//!     let ns: Vec<i64> = state.get("ns")?;
//!     Ok(ns.into_iter().map(|n| State::new().update("n", n)).collect())
//! }
//!
//! fn collect(state: State, children: Vec<State>) -> Result<State, ActionError> {
//!     let outs: Vec<i64> = children.iter().map(|c| c.get("out")).collect::<Result<_, _>>()?;
//!     Ok(state.update("outs", outs))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> burr_core::Result<()> {
//! let mut app = burr_core::ApplicationBuilder::new()
//!     .with_actions([EachWay])
//!     .with_state(State::new().update("ns", vec![3, 4]))
//!     .with_entrypoint("each_way")
//!     .build()
//!     .await?;
//! app.step(burr_core::Inputs::new()).await?;
//! // Sub-graph-major: double 3, double 4, square 3, square 4.
//! assert_eq!(app.state().get::<Vec<i64>>("outs")?, [6, 8, 9, 16]);
//! # Ok(())
//! # }
//! ```
//!
//! With no reducer the parent state is unchanged, so `writes` must be empty (a compile
//! error says so). Each argument's value ends at the next top-level comma: wrap an
//! expression with commas outside brackets in parentheses.
//!
//! What comes out is what `#[action]` makes: the function, unchanged and callable, and a
//! constant named by its UpperCamelCase, a `burr_core::actions::StaticAction`, so that
//! `with_actions([Lengths, Measure])` mixes both. A map action holds closures, which no
//! constant can hold, so the constant refers to a `static` whose `MapAction` is built when
//! first used (the `subgraph` expressions are evaluated then, once per program).
//!
//! ```compile_fail
//! use burr_core::parallel::SubGraph;
//! use burr_core::{action, map_states, State};
//!
//! #[action(reads = [text], writes = [length])]
//! fn measure(state: State) -> State {
//!     state.update("length", 1)
//! }
//!
//! #[map_states(subgraph = SubGraph::action(Measure), writes = [lengths])] // error: `writes` lists `lengths`, but with no `reduce` ...
//! fn lengths(state: State) -> Vec<State> {
//!     vec![state]
//! }
//! ```

use proc_macro::TokenStream;

mod args;
mod duration;
mod expand;
mod map_args;
mod map_expand;
mod map_signature;
mod names;
mod signature;

/// Make an action of a function.
///
/// ```
/// use burr_core::{action, ActionError, ApplicationBuilder, Inputs, State};
///
/// #[action(reads = [count], writes = [count])]
/// fn increment(state: State) -> Result<State, ActionError> {
///     Ok(state.increment("count", 1)?)
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> burr_core::Result<()> {
/// // The function stays as written, callable in unit tests...
/// let next = increment(State::new().update("count", 1)).unwrap();
/// assert_eq!(next.get::<i64>("count")?, 2);
///
/// // ...and the constant `Increment` is the action.
/// let mut app = ApplicationBuilder::new()
///     .with_actions([Increment])
///     .with_transitions([("increment", "increment")])
///     .with_state(State::new().update("count", 0))
///     .with_entrypoint("increment")
///     .build()
///     .await?;
/// app.step(Inputs::new()).await?;
/// assert_eq!(app.state().get::<i64>("count")?, 1);
/// # Ok(())
/// # }
/// ```
///
/// # What it generates
///
/// The function is kept under its own name, unchanged, so unit tests call it directly. Next
/// to it comes a constant named by the UpperCamelCase of the function's name
/// (`answer_question` makes `AnswerQuestion`), with the function's visibility and `cfg`s:
/// the action, a `burr_core::actions::StaticAction`. Pass it to `with_actions` (actions
/// made from different functions share that type, so `with_actions([Increment, Done])`
/// works), or bind and rename it first. The function's name must be snake_case, so that the
/// two names differ.
///
/// The action is single-step. It sees only the keys it `reads`; after it runs, a write it
/// did not declare in `writes`, or a declared write left unset, fails the step, exactly as
/// for any other action.
///
/// # Arguments
///
/// | argument | meaning |
/// | --- | --- |
/// | `reads = [count, "other key"]` | the state keys it reads: names or string literals |
/// | `writes = [count]` | the state keys it writes |
/// | `name = "answer_question"` | its name; the function's name by default |
/// | `tags = ["llm"]` | its tags, for `@tag:` halt lists and the tracker |
/// | `blocking` | run a plain `fn` on the blocking thread pool (for CPU-bound work) instead of inline |
/// | `retry = 3` | retry a failed run, up to 3 runs in all (default backoff); or any `RetryPolicy` expression: `retry = RetryPolicy::new(5).retry_on([ErrorKind::Timeout])` |
/// | `timeout = "30s"` | fail a run that takes longer (`ms`, `s`, `m`, `h`; or a `Duration` expression); its kind is `Timeout` |
/// | `crate = my_burr` | the path of burr-core, when your `Cargo.toml` renames it |
///
/// # Parameters
///
/// - The **first parameter is the state**, of type `State`, by value.
/// - A parameter of type `&ApplicationContext` (or `ApplicationContext`) gets the step's
///   context. It may come anywhere after the state and is not an input.
/// - A parameter of type `Res<T>` gets the application's resource of type `T`, given to
///   the builder with `with_resource(Arc::new(value))` and inherited by child
///   applications (a model, a client, an index). Not an input; a missing resource fails
///   the step with an error naming the action and `T`.
/// - **Every other parameter is an input**, named by the parameter, of any type that
///   implements `serde::Deserialize` (owned: `String`, not `&str`):
///   - required, unless it is an `Option<T>` (`None` when not given), or has a default
///     written `#[input(default = <expr>)]`, where `<expr>` has the parameter's type and
///     is used when the input is not given;
///   - a value that does not deserialize into the parameter's type fails the step with
///     `burr_core::actions::InputError`, which names the action, the input and the type:
///     ``action `answer`: input `top_k` must be a `Option<usize>`: invalid type: string "x", expected usize``.
///
/// # Return type
///
/// `State`; or `(result, State)`, where the result is any `Serialize` type that
/// serializes to a JSON object (a struct, a map, a `serde_json::Value` object); or a
/// `Result` of either whose error converts into `ActionError` (any `std::error::Error`
/// does). The function may be an `async fn` or a plain `fn`.
///
/// # Inputs, context, bindings
///
/// ```
/// use burr_core::{action, inputs, ApplicationBuilder, ApplicationContext, State};
/// use burr_core::actions::ActionExt;
/// use serde_json::{json, Value};
///
/// #[action(reads = [query], writes = [answer], name = "answer_question", tags = ["llm"])]
/// async fn answer(
///     state: State,
///     model: String,
///     top_k: Option<usize>,
///     #[input(default = 0.5)] temperature: f64,
///     ctx: &ApplicationContext,
/// ) -> Result<(Value, State), burr_core::state::StateError> {
///     let query: String = state.get("query")?;
///     let answer = format!("{model} (top {}, t={temperature}) in {}: {query}", top_k.unwrap_or(3), ctx.app_id());
///     Ok((json!({ "answer": answer }), state.update("answer", answer.clone())))
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> burr_core::Result<()> {
/// // `Answer` is named after the function; the action it makes is `answer_question`.
/// assert_eq!(Answer.name(), "answer_question");
/// // One function, two actions with their own names and settings (Burr's `bind`).
/// let mut app = ApplicationBuilder::new()
///     .with_actions([
///         Answer.bind("model", "small").named("answer_small"),
///         Answer.bind("model", "large").named("answer_large"),
///     ])
///     .with_transitions([("answer_small", "answer_large")])
///     .with_state(State::new().update("query", "why?"))
///     .with_entrypoint("answer_small")
///     .with_app_id("app-1")
///     .build()
///     .await?;
/// app.step(inputs! { "top_k": 5 }).await?;
/// assert_eq!(app.state().get::<String>("answer")?, "small (top 5, t=0.5) in app-1: why?");
/// # Ok(())
/// # }
/// ```
///
/// # Mistakes
///
/// Each is a compile error at the token that makes it, saying how to fix it: an item that
/// is not a function, a `self` receiver, no state parameter or one of another type, an
/// unsupported return type, an unknown or repeated argument, `reads`/`writes` that are not
/// a list of names, an input type that does not deserialize, and so on.
///
/// ```compile_fail
/// use burr_core::{action, State};
///
/// #[action(reads = [count], write = [count])] // error: unknown `#[action]` argument `write`
/// fn increment(state: State) -> State {
///     state
/// }
/// ```
#[proc_macro_attribute]
pub fn action(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::action(attr.into(), item.into()).into()
}

/// Make a map action of a function returning the children's starting states: one
/// sub-graph over many states (Burr's `MapStates`).
///
/// The map attributes' reference — arguments, return types, an example — is in
/// [`burr_core::parallel`](../burr_core/parallel/index.html#the-map-attributes).
#[proc_macro_attribute]
pub fn map_states(attr: TokenStream, item: TokenStream) -> TokenStream {
    map_expand::map(map_args::MapKind::States, attr.into(), item.into()).into()
}

/// Make a map action of a function returning the children's tasks (`Vec<Task>`): the
/// task-level map, where each task names its own sub-graph, state, inputs and key.
///
/// The map attributes' reference — arguments, return types, an example — is in
/// [`burr_core::parallel`](../burr_core/parallel/index.html#the-map-attributes).
#[proc_macro_attribute]
pub fn map_tasks(attr: TokenStream, item: TokenStream) -> TokenStream {
    map_expand::map(map_args::MapKind::Tasks, attr.into(), item.into()).into()
}

/// Make a map action of a function returning one state that many sub-graphs each start
/// from (Burr's `MapActions`).
///
/// The map attributes' reference — arguments, return types, an example — is in
/// [`burr_core::parallel`](../burr_core/parallel/index.html#the-map-attributes).
#[proc_macro_attribute]
pub fn map_actions(attr: TokenStream, item: TokenStream) -> TokenStream {
    map_expand::map(map_args::MapKind::Actions, attr.into(), item.into()).into()
}

/// Make a map action of a function returning many states, each of which every sub-graph
/// runs on: a child per (sub-graph, state), keyed `<entrypoint>.<state index>`, in
/// sub-graph-major order (Burr's `MapActionsAndStates`).
///
/// The map attributes' reference — arguments, return types, an example — is in
/// [`burr_core::parallel`](../burr_core/parallel/index.html#the-map-attributes).
#[proc_macro_attribute]
pub fn map_actions_and_states(attr: TokenStream, item: TokenStream) -> TokenStream {
    map_expand::map(
        map_args::MapKind::ActionsAndStates,
        attr.into(),
        item.into(),
    )
    .into()
}

#[cfg(test)]
mod test_support {
    /// The messages of the error `result` holds, one a line; panics on `Ok`.
    pub(crate) fn error_messages<T>(result: syn::Result<T>) -> String {
        match result {
            Ok(_) => panic!("expected an error"),
            Err(error) => error
                .into_iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}
