//! The events hooks receive. Each carries the identifiers of the application it concerns.

use std::time::{Duration, SystemTime};

use serde_json::Value;

use crate::actions::{ActionResult, Inputs};
use crate::error::Error;
use crate::graph::Graph;
use crate::ids::{Identifiers, ParentPointer};
use crate::state::{State, StateDelta};

pub use crate::persistence::StepStatus;

/// An application was built.
#[derive(Clone, Copy, Debug)]
pub struct AppCreated<'a> {
    /// Its identifiers.
    pub ids: &'a Identifiers,
    /// Its graph.
    pub graph: &'a Graph,
    /// Its entrypoint: the action it starts at (the builder's `with_entrypoint`, or
    /// `initialize_from`'s default entrypoint).
    pub entrypoint: &'a str,
    /// Its state after loading.
    pub state: &'a State,
    /// The sequence id of the last step taken, if any (a resumed application has one).
    pub sequence_id: Option<u64>,
    /// The application it was forked from.
    pub fork_parent: Option<&'a ParentPointer>,
    /// The application that spawned it (a child of a map action or of an action).
    pub spawning_parent: Option<&'a ParentPointer>,
}

/// A step is about to run.
#[derive(Clone, Copy, Debug)]
pub struct StepStart<'a> {
    /// The application's identifiers.
    pub ids: &'a Identifiers,
    /// The step's sequence id.
    pub sequence_id: u64,
    /// 1 for the first attempt, 2 for the first retry...
    pub attempt: u32,
    /// The action's name.
    pub action: &'a str,
    /// The inputs the action takes (never the context).
    pub inputs: &'a Inputs,
    /// The state before the step.
    pub state: &'a State,
    /// When the step started (after any wait for an executor slot).
    pub started_at: SystemTime,
    /// How long the step waited for an executor slot before it started (child
    /// applications only; zero otherwise).
    pub waited: Duration,
}

/// A step finished.
#[derive(Clone, Copy, Debug)]
pub struct StepEnd<'a> {
    /// The application's identifiers.
    pub ids: &'a Identifiers,
    /// The step's sequence id.
    pub sequence_id: u64,
    /// The attempt.
    pub attempt: u32,
    /// The action's name.
    pub action: &'a str,
    /// The inputs the action took.
    pub inputs: &'a Inputs,
    /// Completed or failed.
    pub status: StepStatus,
    /// The result, when the step succeeded.
    pub result: Option<&'a ActionResult>,
    /// The error, when it failed.
    pub error: Option<&'a Error>,
    /// The state after the step (the state before it, when it failed).
    pub state: &'a State,
    /// What the step changed (empty when it failed).
    pub delta: &'a StateDelta,
    /// When the step started.
    pub started_at: SystemTime,
    /// When it ended.
    pub ended_at: SystemTime,
    /// When the attempt failed and its retry policy runs it again: the wait before the
    /// next attempt.
    pub retry_in: Option<Duration>,
}

/// A public call (`step`, `run`, `iterate`, `stream_result`) started.
#[derive(Clone, Copy, Debug)]
pub struct ExecuteCall<'a> {
    /// The application's identifiers.
    pub ids: &'a Identifiers,
    /// The method called.
    pub method: &'static str,
    /// The inputs given.
    pub inputs: &'a Inputs,
}

/// A public call returned.
#[derive(Clone, Copy, Debug)]
pub struct ExecuteCallEnd<'a> {
    /// The application's identifiers.
    pub ids: &'a Identifiers,
    /// The method called.
    pub method: &'static str,
    /// The error it returned, if any.
    pub error: Option<&'a Error>,
}

/// A map action is about to run its child applications.
#[derive(Clone, Copy, Debug)]
pub struct MapStart<'a> {
    /// The identifiers of the application running the map action (the children's
    /// spawning parent).
    pub ids: &'a Identifiers,
    /// The map step's sequence id.
    pub sequence_id: u64,
    /// The map action.
    pub action: &'a str,
    /// How many child applications it runs in all (those finished on an earlier
    /// attempt, which return their stored state, included).
    pub tasks: usize,
}

/// A streaming action started.
#[derive(Clone, Copy, Debug)]
pub struct StreamStart<'a> {
    /// The application's identifiers.
    pub ids: &'a Identifiers,
    /// The step's sequence id.
    pub sequence_id: u64,
    /// The action.
    pub action: &'a str,
}

/// A streaming action yielded an intermediate item.
#[derive(Clone, Copy, Debug)]
pub struct StreamItem<'a> {
    /// The application's identifiers.
    pub ids: &'a Identifiers,
    /// The step's sequence id.
    pub sequence_id: u64,
    /// The action.
    pub action: &'a str,
    /// 0 for the first item.
    pub index: usize,
    /// The item.
    pub item: &'a ActionResult,
}

/// A streaming action ended.
#[derive(Clone, Copy, Debug)]
pub struct StreamEnd<'a> {
    /// The application's identifiers.
    pub ids: &'a Identifiers,
    /// The step's sequence id.
    pub sequence_id: u64,
    /// The action.
    pub action: &'a str,
    /// How many items were yielded, the final one included.
    pub items: usize,
    /// Whether the consumer dropped the stream before its end.
    pub dropped: bool,
}

/// An action opened a span (`ctx.span("name")`).
#[derive(Clone, Copy, Debug)]
pub struct SpanStart<'a> {
    /// The application's identifiers.
    pub ids: &'a Identifiers,
    /// The step's sequence id.
    pub sequence_id: u64,
    /// The action.
    pub action: &'a str,
    /// The span's id, unique within the step.
    pub span_id: u64,
    /// The enclosing span, if any.
    pub parent_span_id: Option<u64>,
    /// The span's name.
    pub name: &'a str,
    /// When it started.
    pub at: SystemTime,
}

/// A span closed.
#[derive(Clone, Copy, Debug)]
pub struct SpanEnd<'a> {
    /// The application's identifiers.
    pub ids: &'a Identifiers,
    /// The step's sequence id.
    pub sequence_id: u64,
    /// The action.
    pub action: &'a str,
    /// The span's id.
    pub span_id: u64,
    /// The span's name.
    pub name: &'a str,
    /// When it ended.
    pub at: SystemTime,
}

/// An action logged an attribute (`ctx.log_attribute(key, value)`).
#[derive(Clone, Copy, Debug)]
pub struct AttributeLogged<'a> {
    /// The application's identifiers.
    pub ids: &'a Identifiers,
    /// The step's sequence id.
    pub sequence_id: u64,
    /// The action.
    pub action: &'a str,
    /// The innermost open span, if any.
    pub span_id: Option<u64>,
    /// The attribute's name.
    pub key: &'a str,
    /// Its value.
    pub value: &'a Value,
    /// When it was logged.
    pub at: SystemTime,
}
