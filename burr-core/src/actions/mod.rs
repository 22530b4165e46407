//! Actions: the steps of an application.
//!
//! An [`Action`] declares the state keys it `reads` and `writes` and the inputs it takes,
//! and runs in one of Burr's two forms:
//! - **two-step**: [`Action::run`] computes a result from the keys it reads, then
//!   [`Action::update`] turns the result into the new state;
//! - **single-step**: [`Action::run_and_update`] returns the result and the new state at once
//!   (declare it with [`Declaration::single_step`]).
//!
//! Whatever the form, the framework hands the action only the keys it reads, and checks
//! after the step that it wrote exactly its declared `writes`: an undeclared write or a
//! declared write left unset fails the step.
//!
//! Most actions are written with the [`#[action]`](macro@crate::action) attribute or the
//! [`action_fn`]/[`action_sync`] adapters; implement the trait by hand for full control.

mod bind;
pub(crate) mod declaration;
mod delegate;
mod error;
mod failure;
mod function;
mod helpers;
pub(crate) mod input_error;
mod name;
mod output;
mod retry;
mod static_action;

use futures::stream::BoxStream;
use serde_json::{Map, Value};

use crate::ids::ApplicationContext;
use crate::state::State;

pub use ::async_trait::async_trait;
pub use bind::{ActionExt, Bound};
pub use declaration::Declaration;
pub use delegate::Delegate;
pub use error::{ActionError, UndeclaredRead};
pub use failure::StepFailure;
pub use function::{action_fn, action_sync, FnAction};
pub use helpers::{Input, ReturnKeys};
pub use input_error::InputError;
pub use name::ActionName;
pub use output::{result_object, IntoActionOutput};
pub use retry::{ErrorKind, RetryPolicy, RetryPolicyError, Verdict};
pub use static_action::StaticAction;

/// The result of an action: a JSON object.
pub type ActionResult = Map<String, Value>;

/// The inputs given to a step: input name -> JSON value.
pub type Inputs = Map<String, Value>;

/// A step of an application: a [`Declaration`] (what it reads, writes and takes) and the
/// code that runs it. Object safe: applications hold `Arc<dyn Action>`.
///
/// ```
/// use burr_core::actions::{Action, ActionResult, Declaration};
/// use burr_core::prelude::*;
///
/// struct Increment {
///     declared: Declaration,
/// }
///
/// #[async_trait::async_trait]
/// impl Action for Increment {
///     fn declaration(&self) -> &Declaration {
///         &self.declared
///     }
///     async fn run(&self, state: State, _: &Inputs, _: &ApplicationContext)
///         -> Result<ActionResult, ActionError> {
///         let count: i64 = state.get("count")?;
///         Ok(serde_json::json!({"count": count + 1}).as_object().cloned().unwrap())
///     }
///     fn update(&self, result: &ActionResult, state: State) -> Result<State, ActionError> {
///         Ok(state.update("count", result["count"].clone()))
///     }
/// }
///
/// let increment = Increment { declared: Declaration::new("increment").reads(["count"]).writes(["count"]) };
/// # let _ = increment;
/// ```
#[async_trait]
pub trait Action: Send + Sync + 'static {
    /// What the action declares: its name, reads, writes, inputs, tags and form.
    fn declaration(&self) -> &Declaration;

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
            self.declaration().name
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
            self.declaration().name
        )))
    }

    /// Single-step form, for an action whose code is quick synchronous code: run it here,
    /// without a future, and return its outcome; or give `state` back (`Err`, the default),
    /// and the framework calls [`run_and_update`](Action::run_and_update) instead. An
    /// action that implements it must behave as its `run_and_update` does.
    fn run_and_update_inline(
        &self,
        state: State,
        inputs: &Inputs,
        ctx: &ApplicationContext,
    ) -> std::result::Result<std::result::Result<(ActionResult, State), ActionError>, State> {
        let _ = (inputs, ctx);
        Err(state)
    }

    /// Streaming form: intermediate results, the last item being the final result, which
    /// [`Action::update`] then turns into the new state. Called only when the declaration
    /// says [`streaming`](Declaration::streaming).
    fn stream_run(
        &self,
        state: State,
        inputs: Inputs,
        ctx: ApplicationContext,
    ) -> BoxStream<'static, std::result::Result<ActionResult, ActionError>> {
        let _ = (state, inputs, ctx);
        let name = self.declaration().name.clone();
        Box::pin(futures::stream::once(async move {
            Err(ActionError::msg(format!(
                "action `{name}` is streaming but does not implement `stream_run`"
            )))
        }))
    }
}

impl dyn Action {
    /// The action's name ([`Declaration::name`]).
    pub fn name(&self) -> &str {
        &self.declaration().name
    }

    /// The state keys it reads.
    pub fn reads(&self) -> &[String] {
        &self.declaration().reads
    }

    /// The state keys it writes.
    pub fn writes(&self) -> &[String] {
        &self.declaration().writes
    }

    /// The inputs it requires.
    pub fn inputs(&self) -> &[String] {
        &self.declaration().inputs
    }

    /// The inputs it takes when given.
    pub fn optional_inputs(&self) -> &[String] {
        &self.declaration().optional_inputs
    }

    /// Its tags.
    pub fn tags(&self) -> &[String] {
        &self.declaration().tags
    }

    /// Whether it is single-step.
    pub fn single_step(&self) -> bool {
        self.declaration().single_step
    }

    /// Whether it streams.
    pub fn streaming(&self) -> bool {
        self.declaration().streaming
    }
}
