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
//! blocking pool ([`FnAction::blocking`](crate::action::FnAction::blocking)), where they run in
//! parallel, up to the executor's bound.
//!
//! ```
//! use burr_core::parallel::{MapAction, SubGraph};
//! use burr_core::{ApplicationBuilder, Inputs, State};
//! use burr_core::action::action_sync;
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

mod child;
mod map;
mod task;

pub use crate::ids::{Executor, Permit, Priority, WorkKey};
pub use child::child_app_id;
pub use map::{ChildOutcome, ChildPersister, ChildTracker, FailurePolicy, MapAction};
pub use task::{SubGraph, Task};
