//! Lifecycle hooks: code that runs around every step and call of an application.
//!
//! Implement [`LifecycleHook`] (every method defaults to a no-op) and give it to
//! [`ApplicationBuilder::with_hooks`](crate::ApplicationBuilder::with_hooks). Hooks are
//! called synchronously on the step's task: keep them quick, or hand work to a channel as
//! the tracker does. [`RecordingHook`] records every event, for tests.

mod context;
mod events;
mod recording;

pub use context::SpanGuard;

pub use events::{
    AppCreated, AttributeLogged, ExecuteCall, ExecuteCallEnd, MapStart, SpanEnd, SpanStart,
    StepEnd, StepStart, StepStatus, StreamEnd, StreamItem, StreamStart,
};
pub use recording::{HookEvent, RecordingHook};

/// Called around an application's life. Every method defaults to doing nothing.
pub trait LifecycleHook: Send + Sync + 'static {
    /// The application was built (after loading from a persister, if any).
    fn post_application_create(&self, event: &AppCreated<'_>) {
        let _ = event;
    }
    /// A step is about to run its action (inputs resolved).
    fn pre_run_step(&self, event: &StepStart<'_>) {
        let _ = event;
    }
    /// A step finished, successfully or not, and was checkpointed.
    fn post_run_step(&self, event: &StepEnd<'_>) {
        let _ = event;
    }
    /// `step`, `run`, `iterate` or `stream_result` was called.
    fn pre_run_execute_call(&self, event: &ExecuteCall<'_>) {
        let _ = event;
    }
    /// `step`, `run`, `iterate` or `stream_result` returned.
    fn post_run_execute_call(&self, event: &ExecuteCallEnd<'_>) {
        let _ = event;
    }
    /// A map action is about to start its child applications: how many in all (what
    /// progress "n of m" counts to; the children start a window at a time).
    fn map_start(&self, event: &MapStart<'_>) {
        let _ = event;
    }
    /// A streaming action started streaming.
    fn stream_start(&self, event: &StreamStart<'_>) {
        let _ = event;
    }
    /// A streaming action yielded an item.
    fn stream_item(&self, event: &StreamItem<'_>) {
        let _ = event;
    }
    /// A streaming action finished streaming (or its consumer dropped the stream).
    fn stream_end(&self, event: &StreamEnd<'_>) {
        let _ = event;
    }
    /// An action opened a span through its context.
    fn span_start(&self, event: &SpanStart<'_>) {
        let _ = event;
    }
    /// A span closed.
    fn span_end(&self, event: &SpanEnd<'_>) {
        let _ = event;
    }
    /// An action logged an attribute through its context.
    fn attribute(&self, event: &AttributeLogged<'_>) {
        let _ = event;
    }
}
