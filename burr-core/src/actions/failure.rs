//! [`StepFailure`]: the failure an error transition routes to its handler, and how the
//! handler reads it from its context.

use std::sync::Arc;

use super::ErrorKind;
use crate::ids::ApplicationContext;

/// A step that failed for good (after its retries) and was routed to a handler by an
/// error transition ([`on_error`](crate::condition::on_error)). The handler reads it with
/// [`ApplicationContext::failure`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepFailure {
    /// The action that failed.
    pub action: String,
    /// Its sequence id.
    pub sequence_id: u64,
    /// Its last attempt (1 for the first run).
    pub attempt: u32,
    /// What kind of failure it was.
    pub kind: ErrorKind,
    /// The error's message, outermost first (`Display` of each error in the chain).
    pub chain: Vec<String>,
}

impl StepFailure {
    /// The whole chain on one line, `outer: inner: ...`.
    pub fn message(&self) -> String {
        self.chain.join(": ")
    }
}

/// The failure, as the context keeps it during the handler's step.
struct FailureHandle(StepFailure);

impl ApplicationContext {
    /// During the step of an error transition's handler: the failure that led to it.
    /// `None` in every other step.
    pub fn failure(&self) -> Option<&StepFailure> {
        self.handles.get_ref::<FailureHandle>().map(|f| &f.0)
    }

    /// Hand `failure` to the next step (the handler), or take it away (`None`).
    pub(crate) fn set_failure(&mut self, failure: Option<StepFailure>) {
        match failure {
            Some(failure) => self.handles.insert(Arc::new(FailureHandle(failure))),
            None => {
                if self.failure().is_some() {
                    self.handles.remove::<FailureHandle>();
                }
            }
        }
    }
}
