//! The crate's [`Error`] and [`Result`].

use crate::actions::{ErrorKind, RetryPolicyError, Verdict};

use crate::condition::ConditionError;
use crate::graph::{GraphChange, GraphError};
use crate::persistence::PersistenceError;
use crate::state::StateError;

fn show_version(version: &Option<String>) -> String {
    version
        .as_deref()
        .map_or_else(|| "none".to_owned(), |v| format!("{v:?}"))
}

/// `Result<T, burr_core::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong building or running an application.
///
/// `Display` describes this layer only; [`std::error::Error::source`] gives the cause.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The graph or entrypoint is invalid (every problem is listed).
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// A state operation failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// Choosing the next action failed: a condition could not be evaluated.
    #[error("cannot choose the action after `{after}`")]
    Condition {
        /// The action whose transitions were evaluated.
        after: String,
        /// The condition's error.
        #[source]
        source: ConditionError,
    },
    /// The action's own code failed.
    #[error("action `{action}` failed")]
    Action {
        /// The action.
        action: String,
        /// Its error.
        #[source]
        source: BoxError,
    },
    /// Required inputs were not given.
    #[error("action `{action}` is missing required inputs: {inputs:?}")]
    MissingInput {
        /// The action.
        action: String,
        /// The inputs missing.
        inputs: Vec<String>,
    },
    /// An input name starts with `__`, which is reserved for the framework.
    #[error(
        "input `{input}` starts with a double underscore, which is reserved for the framework"
    )]
    ReservedInput {
        /// The input.
        input: String,
    },
    /// The action wrote keys it did not declare in `writes`.
    #[error("action `{action}` wrote keys it did not declare in `writes`: {keys:?}")]
    UndeclaredWrite {
        /// The action.
        action: String,
        /// The keys.
        keys: Vec<String>,
    },
    /// Keys the action declared in `writes` are absent after it ran.
    #[error(
        "action `{action}` declared writes that are missing from the state after it ran: {keys:?}"
    )]
    MissingWrite {
        /// The action.
        action: String,
        /// The keys.
        keys: Vec<String>,
    },
    /// A halt list names something that is not an action (or a tag no action has).
    #[error("halt conditions name actions that do not exist: {names:?}")]
    UnknownHaltAction {
        /// The names.
        names: Vec<String>,
    },
    /// A fork would save into the application it forks from.
    #[error("cannot fork app `{app_id}` into itself: give the new application another app id")]
    ForkSameAppId {
        /// The app id.
        app_id: String,
    },
    /// A loaded checkpoint names an action the graph does not have.
    #[error("app `{app_id}` was saved at action `{position}` (sequence id {sequence_id}), which this application's graph does not have")]
    UnknownPosition {
        /// The application.
        app_id: String,
        /// The saved action.
        position: String,
        /// The checkpoint's sequence id.
        sequence_id: u64,
    },
    /// The application was checkpointed under other code: its graph changed in a way
    /// that matters from where it stopped, and no migration is registered for the
    /// version it was saved under. Nothing stored was changed.
    #[error("app `{app_id}` was checkpointed under other code (version {}, now {}): {}; resume it with the code it was saved under, or register a migration with ApplicationBuilder::with_migration({:?}, ...)",
        show_version(.stored_version), show_version(.current_version),
        .changes.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
        .stored_version.as_deref().unwrap_or(""))]
    CodeChanged {
        /// The application.
        app_id: String,
        /// The application version it was saved under.
        stored_version: Option<String>,
        /// The current application version.
        current_version: Option<String>,
        /// What changed (empty when only the fingerprint is known: the stored record
        /// kept no graph description).
        changes: Vec<GraphChange>,
    },
    /// A memoized step's cache failed, or its computation (the action) failed: the
    /// action's own error is the source's source.
    #[error("memoized action `{action}`")]
    StepCache {
        /// The action.
        action: String,
        /// The cache's error.
        #[source]
        source: crate::cache::CacheError,
    },
    /// A registered migration failed; nothing stored was changed.
    #[error("the migration of app `{app_id}` from version {from_version:?} failed")]
    Migration {
        /// The application.
        app_id: String,
        /// The version it migrates from.
        from_version: String,
        /// The migration's error.
        #[source]
        source: BoxError,
    },
    /// The builder's settings contradict each other.
    #[error("invalid application builder settings: {0}")]
    Builder(#[from] BuilderError),
    /// Saving or loading a checkpoint failed.
    #[error("persistence failed for app `{app_id}`")]
    Persistence {
        /// The application.
        app_id: String,
        /// The persister's error.
        #[source]
        source: PersistenceError,
    },
    /// The consumer of a streaming action dropped the stream before its final item.
    #[error("the stream of action `{action}` was dropped before it finished")]
    StreamDropped {
        /// The action.
        action: String,
    },
    /// The step was cancelled (a sibling child failed, or another child won).
    #[error("step of action `{action}` was cancelled")]
    Cancelled {
        /// The action.
        action: String,
    },
    /// Child applications of a map step failed: which, and why.
    #[error(transparent)]
    Children(#[from] ChildrenFailed),
    /// A child application exceeded the map action's per-task timeout.
    #[error("child application `{app_id}` timed out after {after_ms} ms")]
    Timeout {
        /// The child.
        app_id: String,
        /// The timeout.
        after_ms: u64,
    },
    /// One run of an action exceeded its timeout
    /// ([`Declaration::timeout`](crate::actions::Declaration::timeout),
    /// [`with_timeout`](crate::ApplicationBuilder::with_timeout)).
    #[error("action `{action}` timed out after {after_ms} ms")]
    StepTimeout {
        /// The action.
        action: String,
        /// The timeout.
        after_ms: u64,
    },
    /// A step wrote a value nested deeper than a checkpoint can load back; the step fails
    /// instead of saving what could never be resumed.
    #[error("action `{action}` wrote state key `{key}` nested {depth} levels deep; a checkpoint keeps at most {max}")]
    ValueTooDeep {
        /// The action.
        action: String,
        /// The key.
        key: String,
        /// How deep the value is (a scalar is 0, `[1]` is 1).
        depth: usize,
        /// The deepest a checkpointed value may be.
        max: usize,
    },
    /// The application was cancelled; building it again resumes it only with
    /// [`resume_cancelled`](crate::ApplicationBuilder::resume_cancelled).
    #[error("app `{app_id}` was cancelled (at sequence id {sequence_id}); resume it with ApplicationBuilder::resume_cancelled(true)")]
    AppCancelled {
        /// The application.
        app_id: String,
        /// The cancelled step's sequence id.
        sequence_id: u64,
    },
}

impl Error {
    /// What kind of failure this is, for retry policies and error transitions.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Action { source, .. } => {
                if let Some(Error::Children(_)) = source.downcast_ref::<Error>() {
                    ErrorKind::Children
                } else if let Some(Error::Timeout { .. } | Error::StepTimeout { .. }) =
                    source.downcast_ref::<Error>()
                {
                    ErrorKind::Timeout
                } else {
                    ErrorKind::Action
                }
            }
            Error::StepTimeout { .. } | Error::Timeout { .. } => ErrorKind::Timeout,
            Error::Children(_) => ErrorKind::Children,
            Error::UndeclaredWrite { .. } | Error::MissingWrite { .. } => ErrorKind::Writes,
            _ => ErrorKind::Other,
        }
    }

    /// The action's own say on retrying this error
    /// ([`ActionError::permanent`](crate::actions::ActionError::permanent) or
    /// [`transient`](crate::actions::ActionError::transient)), if it gave one.
    pub fn verdict(&self) -> Option<bool> {
        match self {
            Error::Action { source, .. } => {
                source.downcast_ref::<Verdict>().map(Verdict::retryable)
            }
            _ => None,
        }
    }

    /// The error an action's own code returned, if this is one, downcast to `E`.
    pub fn action_error<E: std::error::Error + 'static>(&self) -> Option<&E> {
        match self {
            Error::Action { source, .. } => source.downcast_ref::<E>(),
            _ => None,
        }
    }
}

/// An error and its causes on one line, `: `-separated — for a program's last words.
///
/// ```
/// let error = burr_core::Error::MissingInput { action: "greet".into(), inputs: vec!["name".into()] };
/// assert_eq!(burr_core::error::report(&error), "action `greet` is missing required inputs: [\"name\"]");
/// ```
pub fn report(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Builder settings that contradict each other, reported by
/// [`build`](crate::ApplicationBuilder::build) (as [`Error::Builder`]).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BuilderError {
    /// [`initialize_from`](crate::ApplicationBuilder::initialize_from) was called more than
    /// once: which persister to load from is unclear.
    #[error("initialize_from was called more than once")]
    InitializeFromTwice,
    /// `with_retry` or `with_timeout` names an action the graph does not have.
    #[error("{setting} names action `{action}`, which the graph does not have{}", did_you_mean.as_ref().map(|n| format!(" (did you mean `{n}`?)")).unwrap_or_default())]
    UnknownAction {
        /// `with_retry` or `with_timeout`.
        setting: &'static str,
        /// The name given.
        action: String,
        /// The closest action's name, when the name looks like a typo of it.
        did_you_mean: Option<String>,
    },
    /// A retry policy makes no sense.
    #[error("the retry policy of action `{action}`: {problem}")]
    InvalidRetry {
        /// The action (`*` for the default policy).
        action: String,
        /// What is wrong.
        problem: RetryPolicyError,
    },
    /// A timeout of zero.
    #[error("the timeout of action `{action}` is zero")]
    ZeroTimeout {
        /// The action.
        action: String,
    },
    /// An app id or partition key that cannot be stored and addressed again: empty, or
    /// holding a control character (NUL, a newline...).
    #[error("{what} {value:?} is not valid: {why}")]
    InvalidIdentifier {
        /// `app id`, `partition key`, `fork app id` or `fork partition key`.
        what: &'static str,
        /// The value given.
        value: String,
        /// What is wrong with it.
        why: &'static str,
    },
}

impl BuilderError {
    /// `Err` naming `value` when it cannot be an identifier (an app id, a partition key):
    /// empty, with a control character, or with white space at either end. `what` says
    /// what the value is, for the message.
    pub fn check_identifier(what: &'static str, value: &str) -> Result<(), BuilderError> {
        let control = if value.is_ascii() {
            value.bytes().any(|b| b.is_ascii_control())
        } else {
            value.chars().any(char::is_control)
        };
        let why = if value.is_empty() {
            "it is empty"
        } else if control {
            "it holds a control character"
        } else if value.starts_with(char::is_whitespace) || value.ends_with(char::is_whitespace) {
            "it starts or ends with white space"
        } else {
            return Ok(());
        };
        Err(BuilderError::InvalidIdentifier {
            what,
            value: value.to_owned(),
            why,
        })
    }
}

/// Child applications of a map step failed (the first, under fail-fast; every one, under
/// wait-all or first-success). `Display` names each failed child's app id and error; the
/// chain ([`source`](std::error::Error::source), [`report`]) continues with the first.
#[derive(Debug)]
pub struct ChildrenFailed {
    /// How many children the step had.
    pub total: usize,
    /// Each failed child, in task order.
    pub failures: Vec<ChildFailure>,
}

/// One failed child application.
#[derive(Debug, thiserror::Error)]
#[error("child application `{app_id}` (task {index}) failed")]
pub struct ChildFailure {
    /// The task's index.
    pub index: usize,
    /// The child's app id.
    pub app_id: String,
    /// Why it failed.
    #[source]
    pub error: Box<Error>,
}

/// How many failed children `ChildrenFailed`'s message names before "and N more".
const CHILDREN_NAMED: usize = 10;

impl std::fmt::Display for ChildrenFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} of {} child applications failed",
            self.failures.len(),
            self.total
        )?;
        for (n, failure) in self.failures.iter().take(CHILDREN_NAMED).enumerate() {
            let sep = if n == 0 { ": " } else { "; " };
            write!(f, "{sep}`{}`: {}", failure.app_id, report(&*failure.error))?;
        }
        if self.failures.len() > CHILDREN_NAMED {
            write!(f, "; and {} more", self.failures.len() - CHILDREN_NAMED)?;
        }
        Ok(())
    }
}

impl std::error::Error for ChildrenFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.failures
            .first()
            .map(|f| f as &(dyn std::error::Error + 'static))
    }
}
