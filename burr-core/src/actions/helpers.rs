//! Burr's helper actions: [`Input`] copies inputs into state, [`ReturnKeys`] returns state keys.

use async_trait::async_trait;

use super::{Action, ActionError, ActionResult, Declaration, Inputs};
use crate::ids::ApplicationContext;
use crate::state::State;

/// An action that writes its inputs into state under the same names (Burr's `Input`).
#[derive(Clone, Debug)]
pub struct Input {
    declaration: Declaration,
}

impl Input {
    /// An action named `name` taking the inputs `keys` and writing each to the state key of
    /// the same name.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(
        name: impl Into<String>,
        keys: I,
    ) -> Self {
        let keys: Vec<String> = keys.into_iter().map(Into::into).collect();
        Input {
            declaration: Declaration::new(name).writes(&keys).inputs(keys),
        }
    }
}

#[async_trait]
impl Action for Input {
    fn declaration(&self) -> &Declaration {
        &self.declaration
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
    declaration: Declaration,
}

impl ReturnKeys {
    /// An action named `name` returning the state keys `keys`.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(
        name: impl Into<String>,
        keys: I,
    ) -> Self {
        ReturnKeys {
            declaration: Declaration::new(name).reads(keys),
        }
    }
}

#[async_trait]
impl Action for ReturnKeys {
    fn declaration(&self) -> &Declaration {
        &self.declaration
    }
    async fn run(
        &self,
        state: State,
        _inputs: &Inputs,
        _ctx: &ApplicationContext,
    ) -> std::result::Result<ActionResult, ActionError> {
        let mut result = ActionResult::new();
        for key in &self.declaration.reads {
            let value = state.get_value(key).cloned().ok_or_else(|| {
                ActionError::msg(format!(
                    "result action `{}`: state key `{key}` is missing",
                    self.declaration.name
                ))
            })?;
            result.insert(key.clone(), value);
        }
        Ok(result)
    }
}
