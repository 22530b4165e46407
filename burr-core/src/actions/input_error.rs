//! [`InputError`]: an input given to an action is missing or not of the parameter's type.

use serde::de::DeserializeOwned;

use super::{ActionError, Inputs};

/// An input of an action written with [`#[action]`](macro@crate::action) could not be turned into
/// its parameter's type.
///
/// The step fails with [`Error::Action`](crate::Error::Action), whose source is this error:
///
/// ```text
/// action `answer`: input `top_k` must be a `Option<usize>`: invalid type: string "x", expected usize
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// The value given does not deserialize into the parameter's type.
    #[error("action `{action}`: input `{input}` must be a `{expected}`: {source}")]
    Invalid {
        /// The action, under the name it runs as.
        action: String,
        /// The input.
        input: String,
        /// The parameter's Rust type, as written in the function.
        expected: String,
        /// Why the value does not fit the type.
        #[source]
        source: serde_json::Error,
    },
    /// A required input was not given (the application checks required inputs before a
    /// step, so this happens only when the action is run directly).
    #[error("action `{action}`: required input `{input}` (a `{expected}`) was not given")]
    Missing {
        /// The action, under the name it runs as.
        action: String,
        /// The input.
        input: String,
        /// The parameter's Rust type, as written in the function.
        expected: String,
    },
}

impl InputError {
    /// The action, under the name it runs as.
    pub fn action(&self) -> &str {
        match self {
            InputError::Invalid { action, .. } | InputError::Missing { action, .. } => action,
        }
    }

    /// The input.
    pub fn input(&self) -> &str {
        match self {
            InputError::Invalid { input, .. } | InputError::Missing { input, .. } => input,
        }
    }

    /// The parameter's Rust type, as written in the function.
    pub fn expected(&self) -> &str {
        match self {
            InputError::Invalid { expected, .. } | InputError::Missing { expected, .. } => expected,
        }
    }
}

/// The input `name` of `action` as a `T`, or `None` when it was not given.
pub(crate) fn optional_input<T: DeserializeOwned>(
    action: &str,
    inputs: &Inputs,
    name: &str,
    expected: &str,
) -> Result<Option<T>, ActionError> {
    let Some(value) = inputs.get(name) else {
        return Ok(None);
    };
    T::deserialize(value).map(Some).map_err(|source| {
        InputError::Invalid {
            action: action.to_owned(),
            input: name.to_owned(),
            expected: expected.to_owned(),
            source,
        }
        .into()
    })
}

/// The input `name` of `action` as a `T`; an error when it was not given.
pub(crate) fn required_input<T: DeserializeOwned>(
    action: &str,
    inputs: &Inputs,
    name: &str,
    expected: &str,
) -> Result<T, ActionError> {
    optional_input(action, inputs, name, expected)?.ok_or_else(|| {
        InputError::Missing {
            action: action.to_owned(),
            input: name.to_owned(),
            expected: expected.to_owned(),
        }
        .into()
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn invalid_names_action_input_and_type() {
        let source = serde_json::from_value::<usize>(json!("x")).unwrap_err();
        let error = InputError::Invalid {
            action: "answer".into(),
            input: "top_k".into(),
            expected: "Option<usize>".into(),
            source,
        };
        assert_eq!(
            error.to_string(),
            "action `answer`: input `top_k` must be a `Option<usize>`: invalid type: string \"x\", expected usize"
        );
        assert_eq!(
            (error.action(), error.input(), error.expected()),
            ("answer", "top_k", "Option<usize>")
        );
        assert!(std::error::Error::source(&error).is_some());
    }

    #[test]
    fn missing_names_action_input_and_type() {
        let error = InputError::Missing {
            action: "answer".into(),
            input: "model".into(),
            expected: "String".into(),
        };
        assert_eq!(
            error.to_string(),
            "action `answer`: required input `model` (a `String`) was not given"
        );
    }
}
