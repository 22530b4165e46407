//! [`RunOptions`]: where [`Application::run`](super::Application::run),
//! [`iterate`](super::Application::iterate) and
//! [`stream_result`](super::Application::stream_result) stop, and the inputs they give.

use crate::actions::{ActionName, Inputs};

/// Halts and inputs for [`Application::run`](super::Application::run),
/// [`iterate`](super::Application::iterate) and
/// [`stream_result`](super::Application::stream_result). The default runs to the end of the
/// graph with no inputs.
///
/// ```
/// use burr_core::application::RunOptions;
/// use burr_core::inputs;
///
/// let options = RunOptions::new()
///     .halt_before(["review"])
///     .halt_after(["publish", "@tag:final"])
///     .inputs(inputs! {"draft": "v1"});
/// # let _ = options;
/// ```
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub(crate) halt_before: Vec<String>,
    pub(crate) halt_after: Vec<String>,
    pub(crate) inputs: Inputs,
}

impl RunOptions {
    /// Run to the end of the graph, with no inputs.
    pub fn new() -> Self {
        RunOptions::default()
    }

    /// Stop before running one of `actions` (names, `@tag:<tag>`, or the action constants
    /// `#[action]` makes). At least one step runs before any halt check.
    pub fn halt_before<I, A>(mut self, actions: I) -> Self
    where
        I: IntoIterator<Item = A>,
        A: ActionName,
    {
        self.halt_before
            .extend(actions.into_iter().map(ActionName::into_name));
        self
    }

    /// Stop after running one of `actions` (names, `@tag:<tag>`, or action constants).
    pub fn halt_after<I, A>(mut self, actions: I) -> Self
    where
        I: IntoIterator<Item = A>,
        A: ActionName,
    {
        self.halt_after
            .extend(actions.into_iter().map(ActionName::into_name));
        self
    }

    /// The inputs every step is given (each action takes the ones it declares).
    pub fn inputs(mut self, inputs: Inputs) -> Self {
        self.inputs = inputs;
        self
    }
}
