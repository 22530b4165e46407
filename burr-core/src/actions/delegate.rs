//! [`Delegate`]: the one path by which an action that wraps another ([`Bound`](super::Bound),
//! [`StaticAction`](super::StaticAction), the map attributes' lazy actions, your own
//! decorators) runs it.

use std::borrow::Cow;

use async_trait::async_trait;
use futures::stream::BoxStream;

use super::{Action, ActionError, ActionResult, Declaration, Inputs};
use crate::ids::ApplicationContext;
use crate::state::State;

/// An action that runs another one: it gives its own [`Declaration`] (by default the inner
/// action's) and may change the inputs the inner action gets. Implementing it implements
/// [`Action`].
///
/// ```
/// use burr_core::actions::{action_sync, Action, Declaration, Delegate, FnAction};
/// use burr_core::prelude::*;
///
/// /// An action under a prefixed name.
/// struct Prefixed {
///     inner: FnAction,
///     declared: Declaration,
/// }
///
/// impl Delegate for Prefixed {
///     fn target(&self) -> &dyn Action {
///         &self.inner
///     }
///     fn declaration(&self) -> &Declaration {
///         &self.declared
///     }
/// }
///
/// let inner = action_sync("count", |s: State, _, _| s.increment("n", 1)).reads(["n"]).writes(["n"]);
/// let declared = inner.declaration().clone().named("team_a.count");
/// let action: &dyn Action = &Prefixed { inner, declared };
/// assert_eq!(action.name(), "team_a.count");
/// ```
pub trait Delegate: Send + Sync + 'static {
    /// The action that runs.
    fn target(&self) -> &dyn Action;

    /// What this action declares (default: what the target declares).
    fn declaration(&self) -> &Declaration {
        self.target().declaration()
    }

    /// The inputs the target gets, from those this action was given (default: the same).
    fn inputs<'a>(&self, given: &'a Inputs) -> Cow<'a, Inputs> {
        Cow::Borrowed(given)
    }
}

#[async_trait]
impl<D: Delegate> Action for D {
    fn declaration(&self) -> &Declaration {
        Delegate::declaration(self)
    }

    async fn run(
        &self,
        state: State,
        inputs: &Inputs,
        ctx: &ApplicationContext,
    ) -> Result<ActionResult, ActionError> {
        let inputs = Delegate::inputs(self, inputs);
        self.target().run(state, &inputs, ctx).await
    }

    fn update(&self, result: &ActionResult, state: State) -> Result<State, ActionError> {
        self.target().update(result, state)
    }

    async fn run_and_update(
        &self,
        state: State,
        inputs: &Inputs,
        ctx: &ApplicationContext,
    ) -> Result<(ActionResult, State), ActionError> {
        let inputs = Delegate::inputs(self, inputs);
        self.target().run_and_update(state, &inputs, ctx).await
    }

    fn stream_run(
        &self,
        state: State,
        inputs: Inputs,
        ctx: ApplicationContext,
    ) -> BoxStream<'static, Result<ActionResult, ActionError>> {
        let inputs = Delegate::inputs(self, &inputs).into_owned();
        self.target().stream_run(state, inputs, ctx)
    }
}
