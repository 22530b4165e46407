//! [`GraphError`]: every problem found when validating a graph.

use std::fmt;

use crate::condition::expression::ExprSyntaxError;

/// One problem with a graph or its entrypoint.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum GraphProblem {
    /// The graph has no actions.
    NoActions,
    /// An action has an empty name.
    EmptyActionName {
        /// Its position in the list of actions.
        index: usize,
    },
    /// Two actions share a name.
    DuplicateAction {
        /// The name.
        name: String,
    },
    /// A transition starts at an action that does not exist.
    UnknownSource {
        /// The name.
        name: String,
        /// The action whose name is closest, when the name looks like a typo of it.
        did_you_mean: Option<String>,
    },
    /// A transition leads to an action that does not exist.
    UnknownTarget {
        /// The name.
        name: String,
        /// The action whose name is closest, when the name looks like a typo of it.
        did_you_mean: Option<String>,
    },
    /// A second `default` transition out of the same action: it can never be taken.
    RedundantDefault {
        /// The source action.
        from: String,
        /// The target of the redundant transition.
        to: String,
    },
    /// An `expr` condition that does not parse.
    InvalidCondition {
        /// The source action(s).
        from: String,
        /// The target action.
        to: String,
        /// The syntax error.
        error: ExprSyntaxError,
    },
    /// No entrypoint was given.
    MissingEntrypoint,
    /// The entrypoint is not an action.
    UnknownEntrypoint {
        /// The name.
        name: String,
        /// The action whose name is closest, when the name looks like a typo of it.
        did_you_mean: Option<String>,
    },
}

impl fmt::Display for GraphProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GraphProblem::NoActions => write!(f, "the application has no actions: add at least one"),
            GraphProblem::EmptyActionName { index } => {
                write!(f, "action #{index} has an empty name")
            }
            GraphProblem::DuplicateAction { name } => {
                write!(f, "action `{name}` is declared more than once")
            }
            GraphProblem::UnknownSource { name, did_you_mean } => {
                write!(f, "transition source `{name}` is not an action")?;
                suggestion(f, did_you_mean)
            }
            GraphProblem::UnknownTarget { name, did_you_mean } => {
                write!(f, "transition target `{name}` is not an action")?;
                suggestion(f, did_you_mean)
            }
            GraphProblem::RedundantDefault { from, to } => write!(
                f,
                "transition `{from}` -> `{to}` is redundant: `{from}` already has a default transition"
            ),
            GraphProblem::InvalidCondition { from, to, error } => {
                write!(f, "transition `{from}` -> `{to}`: {error}")
            }
            GraphProblem::MissingEntrypoint => write!(f, "no entrypoint: call with_entrypoint"),
            GraphProblem::UnknownEntrypoint { name, did_you_mean } => {
                write!(f, "entrypoint `{name}` is not an action")?;
                suggestion(f, did_you_mean)
            }
        }
    }
}

fn suggestion(f: &mut fmt::Formatter<'_>, did_you_mean: &Option<String>) -> fmt::Result {
    match did_you_mean {
        Some(name) => write!(f, " (did you mean `{name}`?)"),
        None => Ok(()),
    }
}

/// The problems found when validating a graph, all of them.
#[derive(Clone, Debug, PartialEq)]
pub struct GraphError {
    /// Every problem, in the order found.
    pub problems: Vec<GraphProblem>,
}

impl fmt::Display for GraphError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problems.as_slice() {
            [one] => write!(f, "invalid application graph: {one}"),
            many => {
                write!(f, "invalid application graph ({} problems):", many.len())?;
                for p in many {
                    write!(f, "\n  - {p}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for GraphError {}
