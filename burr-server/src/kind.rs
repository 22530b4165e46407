//! Kinds of run: a name, an input type (with its JSON schema), a version, a queue, and a
//! factory that builds the application from a run's inputs. A [`Registry`] holds them.

use std::collections::BTreeMap;
use std::sync::Arc;

use burr_core::application::Step;
use burr_core::persistence::AppRecord;
use burr_core::{ApplicationBuilder, State};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use crate::error::QueueError;
use crate::run::{ConcurrencyLimit, DEFAULT_QUEUE};

/// An error a kind's factory returns.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a kind's factory knows of the run it builds for.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RunInfo {
    /// The run id (the application's app id).
    pub run_id: String,
    /// The attempt (1 for the first claim).
    pub attempt: u32,
    /// The run's priority.
    pub priority: i32,
    /// The flow it belongs to.
    pub flow: String,
    /// Publishes the run's `announced` events (results as soon as they are stored).
    pub announcer: crate::Announcer,
}

impl RunInfo {
    /// What a factory knows of `run` (its current attempt).
    pub fn of(run: &crate::Run) -> RunInfo {
        RunInfo {
            run_id: run.id.clone(),
            attempt: run.attempt,
            priority: run.priority,
            flow: run.flow.clone(),
            announcer: crate::Announcer::discard(),
        }
    }
}

/// A kind of run. Implement it for a type holding what the factory needs (models,
/// clients), and [`register`](Registry::register) it.
///
/// ```
/// use burr_core::{action, ApplicationBuilder, State};
/// use burr_server::{BoxError, Kind, RunInfo};
/// use serde::{Deserialize, Serialize};
///
/// #[action(writes = [count])]
/// fn start(state: State) -> State {
///     state.update("count", 1)
/// }
///
/// #[derive(Serialize, Deserialize, schemars::JsonSchema)]
/// struct CountInputs {
///     org: String,
/// }
///
/// struct Count;
///
/// impl Kind for Count {
///     type Inputs = CountInputs;
///     fn name(&self) -> &str {
///         "count"
///     }
///     fn build(&self, inputs: CountInputs, _run: &RunInfo) -> Result<ApplicationBuilder, BoxError> {
///         Ok(ApplicationBuilder::new()
///             .with_actions([Start])
///             .with_transitions(Vec::<(&str, &str)>::new())
///             .with_state(State::new().update("org", inputs.org))
///             .with_entrypoint("start"))
///     }
/// }
/// let registry = burr_server::Registry::new().register(Count);
/// assert_eq!(registry.kinds()[0].name, "count");
/// ```
pub trait Kind: Send + Sync + 'static {
    /// The run's inputs: submissions are checked against this type, and its JSON schema
    /// is published with the kind.
    type Inputs: DeserializeOwned + Serialize + schemars::JsonSchema + Send + 'static;

    /// The kind's name (what `submit` names).
    fn name(&self) -> &str;

    /// The kind's version: a worker claims only runs of the versions it has. Default 1.
    fn version(&self) -> u32 {
        1
    }

    /// The queue its runs go to (default `default`): a worker serves a set of queues.
    fn queue(&self) -> &str {
        DEFAULT_QUEUE
    }

    /// At most `limit` runs with the same key run at once (e.g. per organisation, taken
    /// from the inputs). Default: no limit.
    fn concurrency(&self, _inputs: &Self::Inputs) -> Option<ConcurrencyLimit> {
        None
    }

    /// Refuse inputs that parse but cannot be run (e.g. naming something unknown), at
    /// submission: nothing is stored. Default: every input that parses is accepted.
    fn validate(&self, _inputs: &Self::Inputs) -> Result<(), InputProblem> {
        Ok(())
    }

    /// The priority of a run with `inputs`, over the submission's: e.g. the highest for
    /// interactive queries, the lowest for backfills. Default `None`: the submission's.
    fn priority(&self, _inputs: &Self::Inputs) -> Option<i32> {
        None
    }

    /// Claims of one run before it is given up as failed (a run whose worker keeps
    /// dying). Default 5.
    fn max_attempts(&self) -> u32 {
        5
    }

    /// The application for a run: its actions, transitions, initial state and
    /// entrypoint. The worker adds the app id, the persister (and resumes from it), the
    /// tracker, the executor, the priority and the cancel token.
    fn build(&self, inputs: Self::Inputs, run: &RunInfo) -> Result<ApplicationBuilder, BoxError>;

    /// What a finished run keeps as its result, from its last step (`None` when the run
    /// resumed an application that had already finished) and its final state. Default:
    /// the last action and its result.
    fn summarize(&self, last: Option<&Step>, _state: &State) -> Value {
        match last {
            Some(step) => json!({"action": step.action, "result": step.result}),
            None => Value::Null,
        }
    }
}

/// Why a kind refuses inputs that parse (see [`Kind::validate`]). Also an error, so a
/// kind's `build` can refuse the same way with `?`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{field}`: {message}")]
pub struct InputProblem {
    /// Where in the inputs (`meeting`, `items[3]`; `.` for the whole object).
    pub field: String,
    /// What is wrong there.
    pub message: String,
}

/// What a kind's check of a run's inputs gives.
pub(crate) struct Checked {
    /// The concurrency limit the inputs give.
    pub(crate) concurrency: Option<ConcurrencyLimit>,
    /// The kind's priority for them, over the submission's.
    pub(crate) priority: Option<i32>,
}

/// A kind as the registry holds it, without its input type.
pub(crate) trait ErasedKind: Send + Sync {
    fn max_attempts(&self) -> u32;
    /// Check `inputs` (parsed once); what they give: the concurrency limit, and the
    /// kind's priority over the submission's.
    fn check(&self, inputs: &Value) -> Result<Checked, QueueError>;
    fn build(&self, inputs: &Value, run: &RunInfo) -> Result<ApplicationBuilder, BoxError>;
    fn summarize(&self, last: Option<&Step>, state: &State) -> Value;
}

struct Erased<K>(K);

impl<K: Kind> Erased<K> {
    /// What the kind publishes (its input schema is generated here, once, at
    /// registration).
    fn info(&self) -> KindInfo {
        KindInfo {
            name: self.0.name().to_owned(),
            version: self.0.version(),
            queue: self.0.queue().to_owned(),
            input_schema: serde_json::to_value(schemars::schema_for!(K::Inputs))
                .unwrap_or(Value::Null),
        }
    }

    fn parse(&self, inputs: &Value) -> Result<K::Inputs, QueueError> {
        serde_path_to_error::deserialize::<_, K::Inputs>(inputs).map_err(|error| {
            let path = error.path().to_string();
            let message = error.inner().to_string();
            // serde names a missing field only in its message.
            let field = match (path.as_str(), message.strip_prefix("missing field `")) {
                (".", Some(rest)) => rest.trim_end_matches('`').to_owned(),
                (".", None) => ".".to_owned(),
                (_, Some(rest)) => format!("{path}.{}", rest.trim_end_matches('`')),
                _ => path,
            };
            QueueError::BadInputs {
                kind: self.0.name().to_owned(),
                field,
                message,
            }
        })
    }
}

impl<K: Kind> ErasedKind for Erased<K> {
    fn max_attempts(&self) -> u32 {
        self.0.max_attempts().max(1)
    }

    fn check(&self, inputs: &Value) -> Result<Checked, QueueError> {
        let parsed = self.parse(inputs)?;
        self.0
            .validate(&parsed)
            .map_err(|problem| QueueError::BadInputs {
                kind: self.0.name().to_owned(),
                field: problem.field,
                message: problem.message,
            })?;
        let limit = self.0.concurrency(&parsed);
        if let Some(limit) = &limit {
            if limit.limit == 0 {
                return Err(QueueError::Invalid {
                    what: "concurrency limit",
                    value: format!("{} for key `{}`", limit.limit, limit.key),
                    problem: format!("kind `{}` must allow at least 1 run", self.0.name()),
                });
            }
        }
        Ok(Checked {
            concurrency: limit,
            priority: self.0.priority(&parsed),
        })
    }

    fn build(&self, inputs: &Value, run: &RunInfo) -> Result<ApplicationBuilder, BoxError> {
        let parsed = self.parse(inputs)?;
        self.0.build(parsed, run)
    }

    fn summarize(&self, last: Option<&Step>, state: &State) -> Value {
        self.0.summarize(last, state)
    }
}

/// What a kind publishes: its name, version, queue and input schema.
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "http", derive(utoipa::ToSchema))]
pub struct KindInfo {
    /// The name.
    pub name: String,
    /// The version.
    pub version: u32,
    /// The queue its runs go to.
    pub queue: String,
    /// The JSON schema of its inputs.
    #[cfg_attr(feature = "http", schema(value_type = Object))]
    pub input_schema: Value,
}

/// The builder that would resume an application started by hand, from its stored record
/// (see [`Registry::register_apps`]).
pub type AppCode =
    dyn Fn(&AppRecord) -> Result<ApplicationBuilder, BoxError> + Send + Sync + 'static;

/// The code a process knows: its kinds of run — what `submit` checks against and what a
/// worker can run — and the applications it starts by hand, by app id prefix (what
/// `check` judges besides the runs).
#[derive(Clone, Default)]
pub struct Registry {
    kinds: BTreeMap<String, (KindInfo, Arc<dyn ErasedKind>)>,
    apps: Vec<(String, Arc<AppCode>)>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("kinds", &self.kinds.keys().collect::<Vec<_>>())
            .field(
                "apps",
                &self.apps.iter().map(|(p, _)| p).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Registry {
    /// No kinds.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a kind.
    ///
    /// # Panics
    /// When a kind of the same name is registered already: two factories for one name
    /// is a bug in the program, found at its start.
    pub fn register<K: Kind>(mut self, kind: K) -> Self {
        let name = kind.name().to_owned();
        assert!(
            !self.kinds.contains_key(&name),
            "kind `{name}` is registered twice"
        );
        let erased = Erased(kind);
        let info = erased.info();
        self.kinds.insert(name, (info, Arc::new(erased)));
        self
    }

    /// The applications this program starts by hand (with an
    /// [`ApplicationBuilder`], not through the run queue) whose app ids start with
    /// `prefix`: `code` gives the builder it would resume one with, from the stored
    /// record (nothing needs to be built or loaded: `check` asks the builder for its
    /// [`current_code`](ApplicationBuilder::current_code) only). `check` judges them
    /// beside the runs; an unfinished application that no prefix claims is reported as
    /// one this program cannot resume. The longest matching prefix wins.
    ///
    /// # Panics
    /// When `prefix` is registered already.
    pub fn register_apps(
        mut self,
        prefix: impl Into<String>,
        code: impl Fn(&AppRecord) -> Result<ApplicationBuilder, BoxError> + Send + Sync + 'static,
    ) -> Self {
        let prefix = prefix.into();
        assert!(
            !self.apps.iter().any(|(p, _)| *p == prefix),
            "applications with prefix `{prefix}` are registered twice"
        );
        self.apps.push((prefix, Arc::new(code)));
        self
    }

    /// The code registered (by [`register_apps`](Self::register_apps)) for the
    /// application `app_id`, with the prefix that claimed it.
    pub(crate) fn app_code(&self, app_id: &str) -> Option<(&str, &AppCode)> {
        self.apps
            .iter()
            .filter(|(prefix, _)| app_id.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(prefix, code)| (prefix.as_str(), &**code))
    }

    /// The kinds, by name.
    pub fn kinds(&self) -> Vec<KindInfo> {
        self.kinds.values().map(|(info, _)| info.clone()).collect()
    }

    /// The (kind, version) pairs a worker with this registry can run.
    pub fn versions(&self) -> Vec<(String, u32)> {
        self.kinds
            .values()
            .map(|(info, _)| (info.name.clone(), info.version))
            .collect()
    }

    /// The kind `name`: what it publishes, and the kind itself.
    pub(crate) fn get(&self, name: &str) -> Result<&(KindInfo, Arc<dyn ErasedKind>), QueueError> {
        self.kinds.get(name).ok_or_else(|| QueueError::UnknownKind {
            kind: name.to_owned(),
            known: self.kinds.keys().cloned().collect(),
        })
    }
}
