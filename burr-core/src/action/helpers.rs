//! Burr's helper actions: [`Input`] copies inputs into state, [`ReturnKeys`] returns state keys.

use async_trait::async_trait;

use super::{Action, ActionError, ActionResult, Inputs};
use crate::ids::ApplicationContext;
use crate::state::State;

/// An action that writes its inputs into state under the same names (Burr's `Input`).
#[derive(Clone, Debug)]
pub struct Input {
    name: String,
    keys: Vec<String>,
}

impl Input {
    /// An action named `name` taking the inputs `keys` and writing each to the state key of
    /// the same name.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(
        name: impl Into<String>,
        keys: I,
    ) -> Self {
        Input {
            name: name.into(),
            keys: keys.into_iter().map(Into::into).collect(),
        }
    }
}

#[async_trait]
impl Action for Input {
    fn name(&self) -> &str {
        &self.name
    }
    fn writes(&self) -> &[String] {
        &self.keys
    }
    fn inputs(&self) -> &[String] {
        &self.keys
    }
    async fn run(
        &self,
        _state: State,
        inputs: &Inputs,
        _ctx: &ApplicationContext,
    ) -> std::result::Result<ActionResult, ActionError> {
        Ok(inputs.clone())
    }
    fn update(
        &self,
        result: &ActionResult,
        state: State,
    ) -> std::result::Result<State, ActionError> {
        Ok(state.update_many(result.iter().map(|(k, v)| (k, v.clone()))))
    }
}

/// An action that returns the named state keys as its result and changes nothing (Burr's
/// `Result`).
#[derive(Clone, Debug)]
pub struct ReturnKeys {
    name: String,
    keys: Vec<String>,
}

impl ReturnKeys {
    /// An action named `name` returning the state keys `keys`.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(
        name: impl Into<String>,
        keys: I,
    ) -> Self {
        ReturnKeys {
            name: name.into(),
            keys: keys.into_iter().map(Into::into).collect(),
        }
    }
}

#[async_trait]
impl Action for ReturnKeys {
    fn name(&self) -> &str {
        &self.name
    }
    fn reads(&self) -> &[String] {
        &self.keys
    }
    async fn run(
        &self,
        state: State,
        _inputs: &Inputs,
        _ctx: &ApplicationContext,
    ) -> std::result::Result<ActionResult, ActionError> {
        let mut result = ActionResult::new();
        for key in &self.keys {
            let value = state.get_value(key).cloned().ok_or_else(|| {
                ActionError::msg(format!(
                    "result action `{}`: state key `{key}` is missing",
                    self.name
                ))
            })?;
            result.insert(key.clone(), value);
        }
        Ok(result)
    }
}
