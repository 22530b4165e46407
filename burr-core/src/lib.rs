//! # burr-core
//!
//! Applications built as state machines over immutable state, in the style of
//! [Apache Burr](https://burr.apache.org): **actions** read and write an immutable
//! [`State`], **transitions** with **conditions** join them into a
//! [`Graph`](graph::Graph), and an [`Application`] made by an [`ApplicationBuilder`] runs
//! them step by step. With a [`Persister`](persistence::Persister), every state update is
//! checkpointed (to SQLite with [`SqlitePersister`](persistence::SqlitePersister)), so an
//! application resumes after a crash without redoing finished work.
//!
//! Start with the [`prelude`]: it holds what a typical application uses.
//!
//! ```
//! use burr_core::prelude::*;
//!
//! #[action(reads = [count], writes = [count])]
//! fn increment(state: State) -> Result<State, ActionError> {
//!     Ok(state.increment("count", 1)?)
//! }
//!
//! #[action(reads = [count])]
//! fn done(state: State) -> State {
//!     state
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> burr_core::Result<()> {
//! // `#[action]` keeps each function as written (call `increment(state)` in unit tests)
//! // and adds the action as a constant named in UpperCamelCase.
//! let mut app = ApplicationBuilder::new()
//!     .with_actions([Increment, Done])
//!     .with_transitions([
//!         (Increment, Increment, expr("count < 10")),
//!         (Increment, Done, default()),
//!     ])
//!     .with_state(State::new().update("count", 0))
//!     .with_entrypoint(Increment)
//!     .build()
//!     .await?;
//! let outcome = app.run(RunOptions::new().halt_after([Done])).await?;
//! assert_eq!(outcome.state.get::<i64>("count")?, 10);
//! # Ok(())
//! # }
//! ```
//!
//! ## The modules, from the bottom up
//! Each module imports only the ones listed before it (a test checks this):
//! - [`ids`]: identities ([`Identifiers`](ids::Identifiers),
//!   [`ParentPointer`](ids::ParentPointer)) and what an action sees of its application
//!   ([`ApplicationContext`], [`Res`], the [`Executor`](ids::Executor));
//! - [`state`]: the immutable [`State`] and its deltas;
//! - [`actions`]: [`Action`](actions::Action), its [`Declaration`](actions::Declaration), and
//!   the adapters ([`action_fn`](actions::action_fn), [`action_sync`](actions::action_sync));
//! - [`condition`]: [`when`], [`expr()`], [`default()`] and the expression language;
//! - [`graph`]: actions joined by transitions, validated;
//! - [`persistence`]: checkpoints, the [`Persister`](persistence::Persister) trait and its
//!   stores;
//! - [`cache`]: the content-addressed work cache (embeddings, memoized steps), with
//!   concurrent identical requests computed once;
//! - [`hooks`]: code around every step ([`LifecycleHook`](hooks::LifecycleHook));
//! - [`application`]: [`ApplicationBuilder`] and [`Application`];
//! - [`parallel`]: map actions and child applications;
//! - [`error`]: the crate's [`Error`];
//! - `testing` (feature `testing`): the conformance suite every persister passes.
//!
//! ## Actions from functions
//! `#[action(reads = [...], writes = [...])]` on `fn increment` keeps the function as
//! written, to call in unit tests, and defines `Increment`, a constant
//! [`StaticAction`](actions::StaticAction): the action, to pass to `with_actions`, to name
//! in transitions, or to [`bind`](actions::ActionExt::bind) and
//! [`named`](actions::ActionExt::named). The [`#[action]`](macro@action) reference covers
//! inputs, resources, the context and return types. The trait by hand
//! ([`Action`](actions::Action)) or closures ([`action_fn`](actions::action_fn)) work as well.
//! The map-action attributes ([`map_states`](macro@map_states) and friends) are described in
//! [`parallel`].

pub mod actions;
pub mod application;
pub mod cache;
pub mod condition;
pub mod error;
pub mod graph;
pub mod hooks;
pub mod ids;
pub mod parallel;
pub mod persistence;
pub mod prelude;
pub mod state;
#[cfg(feature = "testing")]
pub mod testing;

pub use prelude::*;

#[cfg(feature = "macros")]
pub use burr_macros::{map_actions, map_actions_and_states, map_states, map_tasks};

/// [`Inputs`] from JSON object syntax, as `serde_json::json!` takes it:
/// `inputs!{"model": "small", "top_k": 3}`.
///
/// ```
/// use burr_core::inputs;
/// let given = inputs! {"model": "small", "top_k": 3};
/// assert_eq!(given["top_k"], 3);
/// ```
#[macro_export]
macro_rules! inputs {
    ($($json:tt)*) => {
        $crate::__private::inputs_from_json($crate::__private::serde_json::json!({ $($json)* }))
    };
}

#[doc(hidden)]
#[path = "macro_support.rs"]
pub mod __private;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
