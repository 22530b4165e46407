//! [`ActionError`]: the error an action's own code returns.

use std::error::Error as StdError;
use std::fmt;

use super::retry::Verdict;

/// The error an action returns: any error type, or a message.
///
/// Like `anyhow::Error`, it converts from every `std::error::Error` with `?`, so action
/// code can use `?` on state operations, I/O, parsing and so on. The framework wraps it in
/// [`Error::Action`](crate::Error::Action), naming the action; [`ActionError::downcast_ref`]
/// recovers the original.
pub struct ActionError(Box<dyn StdError + Send + Sync + 'static>);

#[derive(Debug)]
struct Message(String);

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for Message {}

impl ActionError {
    /// An error carrying just a message.
    pub fn msg(message: impl fmt::Display) -> Self {
        ActionError(Box::new(Message(message.to_string())))
    }

    /// The original error, if it is an `E`.
    pub fn downcast_ref<E: StdError + 'static>(&self) -> Option<&E> {
        self.0.downcast_ref::<E>()
    }

    /// The original error as a trait object.
    pub fn as_error(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.0
    }

    /// The boxed original error.
    pub fn into_inner(self) -> Box<dyn StdError + Send + Sync + 'static> {
        self.0
    }

    /// `error`, marked as not worth retrying: a [`RetryPolicy`](super::RetryPolicy) never
    /// retries it, whatever its kinds say.
    pub fn permanent(error: impl Into<ActionError>) -> Self {
        ActionError(Box::new(Verdict {
            retryable: false,
            error: error.into().0,
        }))
    }

    /// `error`, marked as worth retrying: a [`RetryPolicy`](super::RetryPolicy) retries it
    /// while attempts remain, whatever its kinds say.
    pub fn transient(error: impl Into<ActionError>) -> Self {
        ActionError(Box::new(Verdict {
            retryable: true,
            error: error.into().0,
        }))
    }
}

impl<E: StdError + Send + Sync + 'static> From<E> for ActionError {
    fn from(error: E) -> Self {
        ActionError(Box::new(error))
    }
}

impl fmt::Debug for ActionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for ActionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// An action read a state key it did not declare in its `reads`: the key is missing from
/// the state it was given (an action sees only the keys it reads). The step fails with
/// [`Error::Action`](crate::Error::Action), whose source is this error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("key `{key}` is not in this action's reads (it reads: {})", if reads.is_empty() { "nothing".to_owned() } else { reads.join(", ") })]
pub struct UndeclaredRead {
    /// The key read.
    pub key: String,
    /// The keys the action declared it reads.
    pub reads: Vec<String>,
}
