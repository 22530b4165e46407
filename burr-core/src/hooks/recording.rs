//! [`RecordingHook`]: a hook that records every event, for tests.

use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;

use super::*;
use crate::actions::ActionResult;

/// One event seen by a [`RecordingHook`], with its main fields owned.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum HookEvent {
    /// `post_application_create`.
    AppCreated {
        /// The application.
        app_id: String,
        /// Its entrypoint.
        entrypoint: String,
        /// Its last sequence id.
        sequence_id: Option<u64>,
    },
    /// `pre_run_step`.
    PreRunStep {
        /// The application.
        app_id: String,
        /// The action.
        action: String,
        /// The sequence id.
        sequence_id: u64,
        /// The attempt.
        attempt: u32,
        /// The inputs.
        inputs: crate::actions::Inputs,
    },
    /// `post_run_step`.
    PostRunStep {
        /// The application.
        app_id: String,
        /// The action.
        action: String,
        /// The sequence id.
        sequence_id: u64,
        /// The attempt.
        attempt: u32,
        /// Completed or failed.
        status: StepStatus,
        /// The result, on success.
        result: Option<ActionResult>,
        /// The error's message, on failure.
        error: Option<String>,
    },
    /// `pre_run_execute_call`.
    PreExecuteCall {
        /// The method.
        method: &'static str,
    },
    /// `post_run_execute_call`.
    PostExecuteCall {
        /// The method.
        method: &'static str,
        /// The error's message, if it failed.
        error: Option<String>,
    },
    /// `map_start`.
    MapStart {
        /// The map action.
        action: String,
        /// Its child applications, in all.
        tasks: usize,
    },
    /// `stream_start`.
    StreamStart {
        /// The action.
        action: String,
    },
    /// `stream_item`.
    StreamItem {
        /// The action.
        action: String,
        /// The item.
        item: ActionResult,
    },
    /// `stream_end`.
    StreamEnd {
        /// The action.
        action: String,
        /// Items yielded.
        items: usize,
        /// Dropped before the end.
        dropped: bool,
    },
    /// `span_start`.
    SpanStart {
        /// The span's name.
        name: String,
        /// Its id.
        span_id: u64,
        /// Its parent.
        parent_span_id: Option<u64>,
    },
    /// `span_end`.
    SpanEnd {
        /// The span's name.
        name: String,
    },
    /// `attribute`.
    Attribute {
        /// The key.
        key: String,
        /// The value.
        value: Value,
        /// The open span.
        span_id: Option<u64>,
    },
}

/// A hook that records every event it sees. Cloning shares the record.
///
/// ```
/// use burr_core::hooks::RecordingHook;
/// let hook = RecordingHook::new();
/// // ... ApplicationBuilder::new().with_hooks([hook.clone()]) ...
/// assert!(hook.events().is_empty());
/// ```
#[derive(Clone, Debug, Default)]
pub struct RecordingHook {
    events: Arc<Mutex<Vec<HookEvent>>>,
}

impl RecordingHook {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the events so far.
    pub fn events(&self) -> Vec<HookEvent> {
        self.lock().clone()
    }

    /// Remove and return the events so far.
    pub fn take(&self) -> Vec<HookEvent> {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> MutexGuard<'_, Vec<HookEvent>> {
        self.events
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn push(&self, event: HookEvent) {
        self.lock().push(event);
    }
}

impl LifecycleHook for RecordingHook {
    fn post_application_create(&self, e: &AppCreated<'_>) {
        self.push(HookEvent::AppCreated {
            app_id: e.ids.app_id.to_string(),
            entrypoint: e.entrypoint.to_owned(),
            sequence_id: e.sequence_id,
        });
    }
    fn pre_run_step(&self, e: &StepStart<'_>) {
        self.push(HookEvent::PreRunStep {
            app_id: e.ids.app_id.to_string(),
            action: e.action.to_owned(),
            sequence_id: e.sequence_id,
            attempt: e.attempt,
            inputs: e.inputs.clone(),
        });
    }
    fn post_run_step(&self, e: &StepEnd<'_>) {
        self.push(HookEvent::PostRunStep {
            app_id: e.ids.app_id.to_string(),
            action: e.action.to_owned(),
            sequence_id: e.sequence_id,
            attempt: e.attempt,
            status: e.status,
            result: e.result.cloned(),
            error: e.error.map(ToString::to_string),
        });
    }
    fn pre_run_execute_call(&self, e: &ExecuteCall<'_>) {
        self.push(HookEvent::PreExecuteCall { method: e.method });
    }
    fn post_run_execute_call(&self, e: &ExecuteCallEnd<'_>) {
        self.push(HookEvent::PostExecuteCall {
            method: e.method,
            error: e.error.map(ToString::to_string),
        });
    }
    fn map_start(&self, e: &MapStart<'_>) {
        self.push(HookEvent::MapStart {
            action: e.action.to_owned(),
            tasks: e.tasks,
        });
    }
    fn stream_start(&self, e: &StreamStart<'_>) {
        self.push(HookEvent::StreamStart {
            action: e.action.to_owned(),
        });
    }
    fn stream_item(&self, e: &StreamItem<'_>) {
        self.push(HookEvent::StreamItem {
            action: e.action.to_owned(),
            item: e.item.clone(),
        });
    }
    fn stream_end(&self, e: &StreamEnd<'_>) {
        self.push(HookEvent::StreamEnd {
            action: e.action.to_owned(),
            items: e.items,
            dropped: e.dropped,
        });
    }
    fn span_start(&self, e: &SpanStart<'_>) {
        self.push(HookEvent::SpanStart {
            name: e.name.to_owned(),
            span_id: e.span_id,
            parent_span_id: e.parent_span_id,
        });
    }
    fn span_end(&self, e: &SpanEnd<'_>) {
        self.push(HookEvent::SpanEnd {
            name: e.name.to_owned(),
        });
    }
    fn attribute(&self, e: &AttributeLogged<'_>) {
        self.push(HookEvent::Attribute {
            key: e.key.to_owned(),
            value: e.value.clone(),
            span_id: e.span_id,
        });
    }
}
