//! The owned events the tracking hook queues for the writer: cheap to build on the step's
//! thread (shared state and delta values are reference counted, nothing is serialized).

use std::sync::mpsc::SyncSender;
use std::time::SystemTime;

use burr_core::actions::ActionResult;
use burr_core::hooks::StepStatus;
use burr_core::ids::Identifiers;
use burr_core::ids::ParentPointer;
use burr_core::state::StateDelta;
use burr_core::{Inputs, State};
use serde_json::Value;

use crate::GraphRecord;

/// A message to the writer.
pub(crate) enum Message {
    /// Something to record.
    Event(Event),
    /// Commit everything queued before this, then answer with the first failure since the
    /// last flush.
    Flush(SyncSender<Option<String>>),
}

/// Something that happened to an application.
pub(crate) struct Event {
    /// The application.
    pub(crate) ids: Identifiers,
    /// When.
    pub(crate) at: SystemTime,
    /// What.
    pub(crate) kind: EventKind,
}

/// What happened.
pub(crate) enum EventKind {
    /// The application was built.
    Created(Box<Created>),
    /// A step started.
    StepStart {
        sequence_id: u64,
        attempt: u32,
        action: String,
        inputs: Inputs,
    },
    /// A step ended.
    StepEnd(Box<StepEnd>),
    /// Something within a step: a span, an attribute, a stream event.
    Within { sequence_id: u64, event: Within },
}

/// An application's creation.
pub(crate) struct Created {
    pub(crate) graph: GraphRecord,
    pub(crate) state: State,
    pub(crate) sequence_id: Option<u64>,
    pub(crate) fork_parent: Option<ParentPointer>,
    pub(crate) spawning_parent: Option<ParentPointer>,
}

/// The end of a step.
pub(crate) struct StepEnd {
    pub(crate) sequence_id: u64,
    pub(crate) attempt: u32,
    pub(crate) action: String,
    pub(crate) status: StepStatus,
    pub(crate) result: Option<ActionResult>,
    /// The error and its causes, outermost first.
    pub(crate) error: Option<Vec<String>>,
    pub(crate) delta: StateDelta,
    pub(crate) started_at: SystemTime,
}

/// An event within a step.
pub(crate) enum Within {
    SpanStart {
        span_id: u64,
        parent_span_id: Option<u64>,
        name: String,
    },
    SpanEnd {
        span_id: u64,
    },
    Attribute {
        span_id: Option<u64>,
        key: String,
        value: Value,
    },
    StreamStart,
    StreamFirstItem,
    StreamEnd {
        items: usize,
        dropped: bool,
    },
}

impl Within {
    /// The `kind` column.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Within::SpanStart { .. } => "span_start",
            Within::SpanEnd { .. } => "span_end",
            Within::Attribute { .. } => "attribute",
            Within::StreamStart => "stream_start",
            Within::StreamFirstItem => "stream_first_item",
            Within::StreamEnd { .. } => "stream_end",
        }
    }
}
