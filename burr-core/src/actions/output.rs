//! [`IntoActionOutput`]: the shapes an action function may return.

use serde::Serialize;
use serde_json::Value;

use super::{ActionError, ActionResult};
use crate::state::State;

/// What an action function may return: a [`State`], a `(result, State)` pair whose result
/// serializes to a JSON object, or a `Result` of either.
pub trait IntoActionOutput {
    /// The result object and the new state.
    fn into_output(self) -> Result<(ActionResult, State), ActionError>;
}

impl IntoActionOutput for State {
    fn into_output(self) -> Result<(ActionResult, State), ActionError> {
        Ok((ActionResult::new(), self))
    }
}

impl<T: Serialize> IntoActionOutput for (T, State) {
    fn into_output(self) -> Result<(ActionResult, State), ActionError> {
        Ok((result_object(&self.0)?, self.1))
    }
}

impl<T: IntoActionOutput, E: Into<ActionError>> IntoActionOutput for Result<T, E> {
    fn into_output(self) -> Result<(ActionResult, State), ActionError> {
        self.map_err(Into::into)?.into_output()
    }
}

/// An action's result value as a JSON object; anything else is an error.
pub fn result_object<T: Serialize + ?Sized>(value: &T) -> Result<ActionResult, ActionError> {
    match serde_json::to_value(value)? {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(ActionResult::new()),
        other => Err(ActionError::msg(format!(
            "an action's result must serialize to a JSON object, got {}",
            crate::state::type_name(&other)
        ))),
    }
}
