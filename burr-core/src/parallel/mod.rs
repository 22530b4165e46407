//! Parallelism: map actions that fan work out to child applications.
//!
//! A map action is an action whose step runs many **child applications** — one per
//! [`Task`] — and then **reduces** their final states into the parent's state:
//!
//! - [`MapAction::states`] (Burr's `MapStates`): one sub-graph over many states (one child
//!   per item), or [`MapAction::keyed_states`] to key each child yourself;
//! - [`MapAction::actions`] (Burr's `MapActions`): many sub-graphs over one state;
//! - [`MapAction::actions_and_states`] (Burr's `MapActionsAndStates`): every sub-graph over
//!   every state;
//! - [`MapAction::tasks`]: any tasks you build yourself.
//!
//! Each child is a real [`Application`](crate::application::Application): its steps are checkpointed on
//! their own (with the parent's persister, by default), its hooks fire, and the tracker
//! records it under its spawning parent. Child ids are stable — derived from the parent's
//! app id, the parent step's sequence id and the task's key (or index) — so a parent that
//! resumes after a crash gets finished children's stored states back without running them,
//! and children that stopped part-way resume from their last checkpoint. A later parent
//! step gets new ids, so nothing stale is replayed.
//!
//! Children run on the process's [`Executor`], which bounds concurrency and admits work by
//! priority, then by the start of its top-level flow, then by task index. They run
//! concurrently within the map step's task (no thread hop per child, a window of a few
//! children per executor slot in memory at once): CPU-bound child actions belong on the
//! blocking pool ([`FnAction::blocking`](crate::actions::FnAction::blocking)), where they run in
//! parallel, up to the executor's bound.
//!
//! ```
//! use burr_core::parallel::{MapAction, SubGraph};
//! use burr_core::{ApplicationBuilder, Inputs, State};
//! use burr_core::actions::action_sync;
//! use serde_json::json;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> burr_core::Result<()> {
//! let measure = action_sync("measure", |s: State, _, _| {
//!     let text: String = s.get("text")?;
//!     Ok::<_, burr_core::ActionError>(s.update("length", text.chars().count()))
//! })
//! .reads(["text"])
//! .writes(["length"]);
//! let lengths = MapAction::states("lengths", SubGraph::action(measure), |s: &State, _: &Inputs| {
//!     let words: Vec<String> = s.get("words")?;
//!     Ok(words.into_iter().map(|w| State::new().update("text", w)).collect())
//! })
//! .reduce(|state, children| {
//!     let lengths: Vec<i64> = children.iter().map(|c| c.get("length")).collect::<Result<_, _>>()?;
//!     Ok(state.update("lengths", lengths))
//! })
//! .reads(["words"])
//! .writes(["lengths"]);
//! let mut app = ApplicationBuilder::new()
//!     .with_actions([lengths])
//!     .with_state(State::new().update("words", json!(["a", "bb", "ccc"])))
//!     .with_entrypoint("lengths")
//!     .build()
//!     .await?;
//! let step = app.step(Inputs::new()).await?.unwrap();
//! assert_eq!(step.state.get_value("lengths"), Some(&json!([1, 2, 3])));
//! # Ok(()) }
//! ```
//!
//! The attributes [`map_states`](macro@crate::map_states),
//! [`map_tasks`](macro@crate::map_tasks), [`map_actions`](macro@crate::map_actions) and
//! [`map_actions_and_states`](macro@crate::map_actions_and_states) (feature `macros`, on by
//! default) make the same map action of plain functions, the way
//! [`action`](macro@crate::action) does for actions:
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
//! let step = app.step(Inputs::new()).await?.unwrap();
//! assert_eq!(step.state.get_value("lengths"), Some(&json!([1, 2, 3])));
//! # Ok(()) }
//! ```
//!
//! ## The map attributes
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
//! **Values that differ per application** (a team's settings, a `--top-k` flag): build the
//! map action with [`MapAction::states`] (or [`MapAction::tasks`]) in a function that takes
//! them, so its closures capture them, and give it to the builder; the children's actions
//! reach shared things — a model, an index — as resources
//! ([`ApplicationBuilder::with_resource`](crate::ApplicationBuilder::with_resource), a
//! `Res<T>` parameter), which child applications inherit. A map function takes no
//! resource: it runs before its children, from the state and the inputs.
//!
//! ```
//! use burr_core::actions::action_sync;
//! use burr_core::parallel::{MapAction, SubGraph};
//! use burr_core::prelude::*;
//!
//! /// The top `k` words, `k` chosen per application.
//! fn top_words(k: usize) -> MapAction {
//!     let echo = action_sync("echo", |s: State, _, _| s).reads(["word"]);
//!     MapAction::states("top_words", SubGraph::action(echo), move |s: &State, _: &Inputs| {
//!         let words: Vec<String> = s.get("words")?;
//!         Ok(words.into_iter().take(k).map(|w| State::new().update("word", w)).collect())
//!     })
//!     .reduce(|s, children| Ok(s.update("kept", children.len())))
//!     .reads(["words"])
//!     .writes(["kept"])
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> burr_core::Result<()> {
//! let mut app = ApplicationBuilder::new()
//!     .with_actions([top_words(2)])
//!     .with_entrypoint("top_words")
//!     .with_state(State::new().update("words", serde_json::json!(["a", "b", "c"])))
//!     .build()
//!     .await?;
//! let step = app.step(Inputs::new()).await?.unwrap();
//! assert_eq!(step.state.get::<usize>("kept")?, 2);
//! # Ok(()) }
//! ```
//!

mod child;
mod map;
mod task;

pub use crate::ids::{Executor, Permit, Priority, WorkKey};
pub use child::child_app_id;
pub use map::{ChildOutcome, ChildPersister, ChildTracker, FailurePolicy, MapAction};
pub use task::{SubGraph, Task};
