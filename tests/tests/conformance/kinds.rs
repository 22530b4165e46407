//! burr-rs errors mapped to the corpus's language-neutral error kinds (SCENARIOS.md §11).

use burr_core::actions::UndeclaredRead;
use burr_core::condition::ConditionError;
use burr_core::graph::GraphProblem;
use burr_core::persistence::PersistenceError;
use burr_core::state::StateError;
use burr_core::Error;
use serde_json::{json, Value};

use crate::action::ScenarioActionError;

/// The kind of a State API error.
pub fn state_kind(error: &StateError) -> &'static str {
    match error {
        StateError::NotAList { .. } | StateError::NotAnInteger { .. } => "state_type_error",
        StateError::MissingKey { .. } => "missing_key",
        StateError::WipeConflict => "wipe_conflict",
        _ => "other",
    }
}

/// The kind of an application error.
pub fn kind(error: &Error) -> &'static str {
    match error {
        Error::Graph(graph) => match graph.problems.first() {
            Some(GraphProblem::NoActions) => "no_actions",
            Some(GraphProblem::DuplicateAction { .. }) => "duplicate_action",
            Some(GraphProblem::UnknownSource { .. }) => "unknown_transition_source",
            Some(GraphProblem::UnknownTarget { .. }) => "unknown_transition_target",
            Some(GraphProblem::RedundantDefault { .. }) => "redundant_default",
            Some(GraphProblem::UnknownEntrypoint { .. }) => "unknown_entrypoint",
            _ => "other",
        },
        Error::State(state) => state_kind(state),
        Error::Condition { source, .. } => match source {
            ConditionError::MissingKeys { .. } => "condition_missing_keys",
            ConditionError::Eval { .. } | ConditionError::Type { .. } => "condition_eval_error",
            _ => "other",
        },
        Error::Action { source, .. } => {
            if let Some(state) = source.downcast_ref::<StateError>() {
                state_kind(state)
            } else if source.downcast_ref::<UndeclaredRead>().is_some() {
                // Burr's KeyError, said more precisely.
                "missing_key"
            } else if source.downcast_ref::<ScenarioActionError>().is_some() {
                "action_failed"
            } else {
                "other"
            }
        }
        Error::MissingInput { .. } => "missing_input",
        Error::ReservedInput { .. } => "reserved_input",
        Error::UndeclaredWrite { .. } => "undeclared_write",
        Error::MissingWrite { .. } => "missing_write",
        Error::UnknownHaltAction { .. } => "unknown_halt_action",
        Error::ForkSameAppId { .. } => "fork_same_app_id",
        Error::Persistence {
            source: PersistenceError::Conflict { .. },
            ..
        } => "persister_conflict",
        _ => "other",
    }
}

/// An error record: `{kind, type, message}`. Only `kind` is compared; `type` and `message`
/// (the whole chain) help diagnosis.
pub fn record(kind: &str, error: &(dyn std::error::Error + 'static)) -> Value {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    json!({"kind": kind, "type": "burr-rs", "message": message})
}

/// The record of an application error.
pub fn error_record(error: &Error) -> Value {
    record(kind(error), error)
}
