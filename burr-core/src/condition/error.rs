//! [`ConditionError`]: why a condition could not be evaluated.

use std::sync::Arc;

use super::expression::{ExprEvalError, ExprSyntaxError};

/// An error evaluating a condition. Each names the condition.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConditionError {
    /// Keys the condition names are not in the state.
    #[error("missing keys in state required by condition `{condition}`: {keys:?}")]
    MissingKeys {
        /// The condition's name.
        condition: String,
        /// The keys missing.
        keys: Vec<String>,
    },
    /// An `expr` failed to evaluate (a type mismatch, division by zero...).
    #[error("condition `{condition}` could not be evaluated")]
    Eval {
        /// The condition's name.
        condition: String,
        /// Why.
        #[source]
        source: ExprEvalError,
    },
    /// A `when` comparison between values of types that do not compare.
    #[error("condition `{condition}`: {message}")]
    Type {
        /// The condition's name.
        condition: String,
        /// What did not compare.
        message: String,
    },
    /// An `expr` that did not parse (normally reported when the application is built).
    #[error(transparent)]
    Syntax(Arc<ExprSyntaxError>),
    /// A custom condition's closure failed.
    #[error("custom condition `{condition}` failed")]
    Custom {
        /// The condition's name.
        condition: String,
        /// Its error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}
