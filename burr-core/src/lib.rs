//! # burr-core
//!
//! Applications built as state machines over immutable state, in the style of
//! [Apache Burr](https://burr.apache.org): **actions** read and write an immutable
//! [`State`], **transitions** with **conditions** join them into a [`Graph`], and an
//! [`Application`] made by an [`ApplicationBuilder`] runs them step by step. With a
//! [`Persister`](persistence::Persister), every state update is checkpointed (to SQLite
//! with [`SqlitePersister`](persistence::SqlitePersister)), so an application resumes after
//! a crash without redoing finished work.
//!
//! ```
//! use burr_core::{action, expr, ActionError, ApplicationBuilder, Inputs, State};
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
//!         ("increment", "increment", expr("count < 10")),
//!         ("increment", "done", burr_core::default()),
//!     ])
//!     .with_state(State::new().update("count", 0))
//!     .with_entrypoint("increment")
//!     .build()
//!     .await?;
//! let outcome = app.run(&[], &["done"], Inputs::new()).await?;
//! assert_eq!(outcome.state.get::<i64>("count")?, 10);
//! # Ok(())
//! # }
//! ```
//!
//! ## Actions from functions
//! `#[action(reads = [...], writes = [...])]` on `fn increment` keeps the function as
//! written, to call in unit tests, and defines `Increment`, a constant
//! [`StaticAction`](action::StaticAction): the action, to pass to `with_actions` or to
//! [`bind`](ActionExt::bind) and [`named`](ActionExt::named). The
//! [`#[action]`](macro@action) reference covers inputs, the context and return types. The
//! trait by hand ([`Action`]) or closures ([`action_fn`]) work as well.
//!
//! ## Where to start
//! - [`State`]: the immutable state and its operations.
//! - [`Action`], [`action_fn`], [`action_sync`] and the [`#[action]`](macro@action)
//!   attribute: steps.
//! - [`when`], [`expr()`], [`default()`], [`Condition`]: transitions' conditions.
//! - [`ApplicationBuilder`] and [`Application`]: building and running.
//! - [`hooks`]: code around every step. [`persistence`]: checkpoints and resume.

pub mod action;
mod application;
pub mod condition;
mod error;
pub mod graph;
pub mod hooks;
pub mod parallel;
pub mod persistence;
pub mod state;

pub use action::{
    action_fn, action_sync, Action, ActionError, ActionExt, ActionResult, FnAction, Inputs,
    IntoActionOutput,
};
pub use application::{
    ActionStream, Application, ApplicationBuilder, ApplicationContext, BuilderError, Identifiers,
    ParentPointer, RunOutcome, SpanGuard, Step, StreamEvent,
};
pub use async_trait::async_trait;
pub use condition::{default, expr, when, Condition};
pub use error::{report, Error, Result};
pub use graph::{Graph, GraphBuilder, GraphError};
pub use state::{State, StateDelta, StateError, Wipe};

#[cfg(feature = "macros")]
pub use burr_macros::{action, map_actions, map_actions_and_states, map_states, map_tasks};

/// Inputs from a JSON object literal: `inputs(json!({"model": "small"}))`. Anything but an
/// object gives no inputs.
pub fn inputs(value: serde_json::Value) -> Inputs {
    match value {
        serde_json::Value::Object(map) => map,
        _ => Inputs::new(),
    }
}

#[doc(hidden)]
#[path = "macro_support.rs"]
pub mod __private;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
