//! [`Bound`]: an action with some inputs pre-filled and an optional new name (Burr's `bind`).

use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde_json::Value;

use super::{Action, ActionError, ActionResult, Inputs};
use crate::ids::ApplicationContext;
use crate::state::State;

/// An action with inputs bound to fixed values and possibly another name, so one function
/// serves as several actions. Made by [`ActionExt::bind`] and [`ActionExt::named`].
#[derive(Clone)]
pub struct Bound {
    inner: Arc<dyn Action>,
    name: String,
    bound: Inputs,
    inputs: Vec<String>,
    optional_inputs: Vec<String>,
}

impl Bound {
    fn new(inner: Arc<dyn Action>) -> Self {
        Bound {
            name: inner.name().to_owned(),
            inputs: inner.inputs().to_vec(),
            optional_inputs: inner.optional_inputs().to_vec(),
            bound: Inputs::new(),
            inner,
        }
    }

    /// Bind the input `name` to `value`: the action no longer takes it from the caller.
    pub fn bind(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        let name = name.into();
        self.inputs.retain(|i| *i != name);
        self.optional_inputs.retain(|i| *i != name);
        self.bound.insert(name, value.into());
        self
    }

    /// Rename the action.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    fn merged(&self, inputs: &Inputs) -> Inputs {
        let mut all = inputs.clone();
        for (k, v) in &self.bound {
            all.insert(k.clone(), v.clone());
        }
        all
    }
}

/// `bind` and `named` on every action.
pub trait ActionExt: Action + Sized {
    /// This action with the input `name` bound to `value`.
    fn bind(self, name: impl Into<String>, value: impl Into<Value>) -> Bound {
        Bound::new(Arc::new(self)).bind(name, value)
    }

    /// This action under another name.
    fn named(self, name: impl Into<String>) -> Bound {
        Bound::new(Arc::new(self)).named(name)
    }
}

impl<A: Action + Sized> ActionExt for A {}

#[async_trait]
impl Action for Bound {
    fn name(&self) -> &str {
        &self.name
    }
    fn reads(&self) -> &[String] {
        self.inner.reads()
    }
    fn writes(&self) -> &[String] {
        self.inner.writes()
    }
    fn inputs(&self) -> &[String] {
        &self.inputs
    }
    fn optional_inputs(&self) -> &[String] {
        &self.optional_inputs
    }
    fn tags(&self) -> &[String] {
        self.inner.tags()
    }
    fn single_step(&self) -> bool {
        self.inner.single_step()
    }
    fn streaming(&self) -> bool {
        self.inner.streaming()
    }
    async fn run(
        &self,
        state: State,
        inputs: &Inputs,
        ctx: &ApplicationContext,
    ) -> Result<ActionResult, ActionError> {
        self.inner.run(state, &self.merged(inputs), ctx).await
    }
    fn update(&self, result: &ActionResult, state: State) -> Result<State, ActionError> {
        self.inner.update(result, state)
    }
    async fn run_and_update(
        &self,
        state: State,
        inputs: &Inputs,
        ctx: &ApplicationContext,
    ) -> Result<(ActionResult, State), ActionError> {
        self.inner
            .run_and_update(state, &self.merged(inputs), ctx)
            .await
    }
    fn stream_run(
        &self,
        state: State,
        inputs: Inputs,
        ctx: ApplicationContext,
    ) -> BoxStream<'static, Result<ActionResult, ActionError>> {
        let merged = self.merged(&inputs);
        self.inner.stream_run(state, merged, ctx)
    }
}
