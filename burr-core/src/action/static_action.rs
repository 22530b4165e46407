//! [`StaticAction`]: an action that lives for the whole program, the type of the actions
//! `#[action]` makes.

use std::fmt;

use async_trait::async_trait;
use futures::stream::BoxStream;

use super::{Action, ActionError, ActionResult, Inputs};
use crate::ids::ApplicationContext;
use crate::state::State;

/// A `'static` action, copied freely. Every action [`#[action]`](macro@crate::action) makes is a
/// constant of this type, so that actions made from different functions go in one list:
/// `with_actions([Increment, Done])`.
///
/// ```
/// use burr_core::action::StaticAction;
/// use burr_core::{async_trait, Action};
///
/// struct Noop;
///
/// #[async_trait]
/// impl Action for Noop {
///     fn name(&self) -> &str {
///         "noop"
///     }
/// }
///
/// const NOOP: StaticAction = StaticAction::new(&Noop);
/// assert_eq!(NOOP.name(), "noop");
/// ```
#[derive(Clone, Copy)]
pub struct StaticAction(&'static dyn Action);

impl StaticAction {
    /// The action `action` refers to.
    pub const fn new(action: &'static dyn Action) -> Self {
        StaticAction(action)
    }
}

impl fmt::Debug for StaticAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("StaticAction").field(&self.0.name()).finish()
    }
}

#[async_trait]
impl Action for StaticAction {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn reads(&self) -> &[String] {
        self.0.reads()
    }
    fn writes(&self) -> &[String] {
        self.0.writes()
    }
    fn inputs(&self) -> &[String] {
        self.0.inputs()
    }
    fn optional_inputs(&self) -> &[String] {
        self.0.optional_inputs()
    }
    fn tags(&self) -> &[String] {
        self.0.tags()
    }
    fn single_step(&self) -> bool {
        self.0.single_step()
    }
    fn streaming(&self) -> bool {
        self.0.streaming()
    }
    async fn run(
        &self,
        state: State,
        inputs: &Inputs,
        ctx: &ApplicationContext,
    ) -> Result<ActionResult, ActionError> {
        self.0.run(state, inputs, ctx).await
    }
    fn update(&self, result: &ActionResult, state: State) -> Result<State, ActionError> {
        self.0.update(result, state)
    }
    async fn run_and_update(
        &self,
        state: State,
        inputs: &Inputs,
        ctx: &ApplicationContext,
    ) -> Result<(ActionResult, State), ActionError> {
        self.0.run_and_update(state, inputs, ctx).await
    }
    fn stream_run(
        &self,
        state: State,
        inputs: Inputs,
        ctx: ApplicationContext,
    ) -> BoxStream<'static, Result<ActionResult, ActionError>> {
        self.0.stream_run(state, inputs, ctx)
    }
}
