//! Actions: the steps of an application.
//!
//! An [`Action`] declares the state keys it `reads` and `writes` and the inputs it takes,
//! and runs in one of Burr's two forms:
//! - **two-step**: [`Action::run`] computes a result from the keys it reads, then
//!   [`Action::update`] turns the result into the new state;
//! - **single-step**: [`Action::run_and_update`] returns the result and the new state at once
//!   (set [`Action::single_step`] to `true`).
//!
//! Whatever the form, the framework hands the action only the keys it reads, and checks
//! after the step that it wrote exactly its declared `writes`: an undeclared write or a
//! declared write left unset fails the step.
//!
//! Most actions are written with the [`#[action]`](macro@crate::action) attribute or the
//! [`action_fn`]/[`action_sync`] adapters; implement the trait by hand for full control.

mod bind;
pub(crate) mod declaration;
mod error;
mod function;
mod helpers;
pub(crate) mod input_error;
mod name;
mod output;
mod static_action;

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde_json::{Map, Value};

use crate::ids::ApplicationContext;
use crate::state::State;

pub use bind::{ActionExt, Bound};
pub use error::ActionError;
pub use function::{action_fn, action_sync, FnAction};
pub use helpers::{Input, ReturnKeys};
pub use input_error::InputError;
pub use name::ActionName;
pub use output::{result_object, IntoActionOutput};
pub use static_action::StaticAction;

/// The result of an action: a JSON object.
pub type ActionResult = Map<String, Value>;

/// The inputs given to a step: input name -> JSON value.
pub type Inputs = Map<String, Value>;

/// A step of an application. Object safe: applications hold `Arc<dyn Action>`.
///
/// ```
/// use burr_core::{async_trait, Action, ActionError, ActionResult, ApplicationContext, Inputs, State};
///
/// struct Increment { reads: Vec<String> }
///
/// #[async_trait]
/// impl Action for Increment {
///     fn name(&self) -> &str { "increment" }
///     fn reads(&self) -> &[String] { &self.reads }
///     fn writes(&self) -> &[String] { &self.reads }
///     async fn run(&self, state: State, _: &Inputs, _: &ApplicationContext)
///         -> std::result::Result<ActionResult, ActionError> {
///         let count: i64 = state.get("count")?;
///         Ok(serde_json::json!({"count": count + 1}).as_object().cloned().unwrap())
///     }
///     fn update(&self, result: &ActionResult, state: State) -> std::result::Result<State, ActionError> {
///         Ok(state.update("count", result["count"].clone()))
///     }
/// }
/// ```
#[async_trait]
pub trait Action: Send + Sync + 'static {
    /// The action's name, unique within an application.
    fn name(&self) -> &str;

    /// The state keys the action reads: the only keys it sees.
    fn reads(&self) -> &[String] {
        &[]
    }

    /// The state keys the action writes: exactly these must be set after it runs.
    fn writes(&self) -> &[String] {
        &[]
    }

    /// The inputs the action requires.
    fn inputs(&self) -> &[String] {
        &[]
    }

    /// The inputs the action takes when given.
    fn optional_inputs(&self) -> &[String] {
        &[]
    }

    /// Tags, for `@tag:<tag>` halt lists and the tracker.
    fn tags(&self) -> &[String] {
        &[]
    }

    /// Whether the action is single-step ([`Action::run_and_update`]) rather than two-step.
    fn single_step(&self) -> bool {
        false
    }

    /// Whether the action streams ([`Action::stream_run`]).
    fn streaming(&self) -> bool {
        false
    }

    /// Two-step form, first half: compute the result from `state` (only the keys the action
    /// reads) and the inputs it declared.
    async fn run(
        &self,
        state: State,
        inputs: &Inputs,
        ctx: &ApplicationContext,
    ) -> std::result::Result<ActionResult, ActionError> {
        let _ = (state, inputs, ctx);
        Err(ActionError::msg(format!(
            "action `{}` implements neither `run` nor `run_and_update`",
            self.name()
        )))
    }

    /// Two-step form, second half: the new state from the result and the whole state.
    fn update(
        &self,
        result: &ActionResult,
        state: State,
    ) -> std::result::Result<State, ActionError> {
        let _ = result;
        Ok(state)
    }

    /// Single-step form: the result and the new state from `state` (only the keys the
    /// action reads). Keys removed from the state it was given are deleted.
    async fn run_and_update(
        &self,
        state: State,
        inputs: &Inputs,
        ctx: &ApplicationContext,
    ) -> std::result::Result<(ActionResult, State), ActionError> {
        let _ = (state, inputs, ctx);
        Err(ActionError::msg(format!(
            "action `{}` is single-step but does not implement `run_and_update`",
            self.name()
        )))
    }

    /// Streaming form: intermediate results, the last item being the final result, which
    /// [`Action::update`] then turns into the new state. Called only when
    /// [`Action::streaming`] is `true`.
    fn stream_run(
        &self,
        state: State,
        inputs: Inputs,
        ctx: ApplicationContext,
    ) -> BoxStream<'static, std::result::Result<ActionResult, ActionError>> {
        let _ = (state, inputs, ctx);
        let name = self.name().to_owned();
        Box::pin(futures::stream::once(async move {
            Err(ActionError::msg(format!(
                "action `{name}` is streaming but does not implement `stream_run`"
            )))
        }))
    }
}
