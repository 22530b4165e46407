//! [`ApplicationBuilder`]: actions, transitions, state, identifiers, hooks, persistence.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::check::{CurrentCode, Verdict, MIGRATED_TO_KEY};
use super::{Application, StepSettings};
use crate::actions::ActionName;
use crate::actions::{ErrorKind, RetryPolicy, StepFailure};
use crate::error::{BuilderError, Error, Result};
use crate::graph::{Graph, GraphBuilder, GraphError, GraphProblem, IntoAction, TransitionSpec};
use crate::hooks::{AppCreated, LifecycleHook};
use crate::ids::{
    next_flow, ApplicationContext, CancelToken, Executor, Identifiers, ParentPointer, Priority,
    Resources, WorkKey,
};
use crate::persistence::{
    micros, AppRecord, Checkpoint, CodeVersion, LoadedCheckpoint, Persister, StepStatus,
};
use crate::state::{State, StateDelta};

/// A registered migration: the state saved under an older version, made fit for this one.
type Migration = Arc<
    dyn Fn(State) -> std::result::Result<State, Box<dyn std::error::Error + Send + Sync>>
        + Send
        + Sync,
>;

/// How long a lease lives without a checkpoint renewing it.
const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(60);

struct InitializeFrom {
    loader: Arc<dyn Persister>,
}

#[derive(Default)]
struct Fork {
    app_id: Option<String>,
    partition_key: Option<String>,
    sequence_id: Option<u64>,
}

/// Builds an [`Application`]. Every problem is reported by [`build`](Self::build) at once.
///
/// ```
/// use burr_core::{expr, ApplicationBuilder, RunOptions, State};
/// use burr_core::actions::action_sync;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> burr_core::Result<()> {
/// let increment = action_sync("increment", |s: State, _, _| s.increment("count", 1))
///     .reads(["count"])
///     .writes(["count"]);
/// let done = action_sync("done", |s: State, _, _| s).reads(["count"]);
/// let mut app = ApplicationBuilder::new()
///     .with_actions([increment, done])
///     .with_transitions([("increment", "increment", expr("count < 3"))])
///     .with_transitions([("increment", "done")])
///     .with_state(State::new().update("count", 0))
///     .with_entrypoint("increment")
///     .build()
///     .await?;
/// let outcome = app.run(RunOptions::new().halt_after(["done"])).await?;
/// assert_eq!(outcome.state.get::<i64>("count")?, 3);
/// # Ok(()) }
/// ```
#[derive(Default)]
pub struct ApplicationBuilder {
    graph: GraphBuilder,
    prebuilt: Option<Arc<Graph>>,
    /// The code of `prebuilt` from this entrypoint, without a version, when known
    /// (children of a map action share it).
    prebuilt_code: Option<(Arc<str>, Arc<CodeVersion>)>,
    state: State,
    entrypoint: Option<String>,
    app_id: Option<String>,
    partition_key: Option<String>,
    sequence_id: Option<u64>,
    hooks: Vec<Arc<dyn LifecycleHook>>,
    tracker: Option<Arc<dyn LifecycleHook>>,
    saver: Option<Arc<dyn Persister>>,
    initialize: Option<InitializeFrom>,
    /// `false`: a loaded application starts at the entrypoint (Burr's
    /// `resume_at_next_action=False`).
    restart_at_entrypoint: bool,
    fork: Fork,
    override_state: Option<State>,
    spawning_parent: Option<ParentPointer>,
    lease_ttl: Option<Duration>,
    executor: Option<Executor>,
    priority: Option<Priority>,
    /// Set for child applications: the parent's place in the admission order plus the
    /// task's index.
    work: Option<WorkKey>,
    flow: Option<u64>,
    resources: Resources,
    retries: Vec<(String, RetryPolicy)>,
    default_retry: Option<RetryPolicy>,
    timeouts: Vec<(String, Duration)>,
    cancel: Option<CancelToken>,
    resume_cancelled: bool,
    problems: Vec<BuilderError>,
    version: Option<String>,
    migrations: Vec<(String, Migration)>,
    step_cache: Option<crate::cache::Cache>,
}

/// What a child application of a map step is built from: the parts
/// [`ApplicationBuilder::child`] puts in a builder at once (a chain of `with_*` calls
/// moves the whole builder at each call, which a fan-out pays per child).
pub(crate) struct ChildParts {
    /// The child's app id.
    pub(crate) app_id: String,
    /// The parent's partition key.
    pub(crate) partition_key: Option<String>,
    /// The parent's resources.
    pub(crate) resources: Resources,
    /// The spawning parent's step.
    pub(crate) spawning_parent: ParentPointer,
    /// The parent's cancellation.
    pub(crate) cancel: CancelToken,
    /// Its place in the executor's order.
    pub(crate) work: WorkKey,
    /// The parent's executor.
    pub(crate) executor: Option<Executor>,
    /// The parent's hooks, but its tracker.
    pub(crate) hooks: Vec<Arc<dyn LifecycleHook>>,
    /// The child's tracker.
    pub(crate) tracker: Option<Arc<dyn LifecycleHook>>,
    /// The sub-graph.
    pub(crate) graph: Arc<Graph>,
    /// The sub-graph's entrypoint.
    pub(crate) entrypoint: Arc<str>,
    /// The sub-graph's code from the entrypoint.
    pub(crate) code: Arc<CodeVersion>,
    /// The task's state.
    pub(crate) state: State,
    /// Where it checkpoints, and whether it resumes from there.
    pub(crate) persister: Option<(Arc<dyn Persister>, bool)>,
    /// The children's priority, if the map action sets one.
    pub(crate) priority: Option<Priority>,
    /// The children's retry policy, if the map action sets one.
    pub(crate) default_retry: Option<RetryPolicy>,
}

impl ApplicationBuilder {
    /// A builder of a child application, from its parts: what the `with_*` calls would
    /// set, set at once.
    pub(crate) fn child(parts: ChildParts) -> Self {
        let (saver, initialize) = match parts.persister {
            Some((persister, resume)) => {
                let initialize = resume.then(|| InitializeFrom {
                    loader: Arc::clone(&persister),
                });
                (Some(persister), initialize)
            }
            None => (None, None),
        };
        ApplicationBuilder {
            entrypoint: Some(parts.entrypoint.to_string()),
            prebuilt_code: Some((parts.entrypoint, parts.code)),
            prebuilt: Some(parts.graph),
            state: parts.state,
            app_id: Some(parts.app_id),
            partition_key: parts.partition_key,
            hooks: parts.hooks,
            tracker: parts.tracker,
            saver,
            initialize,
            spawning_parent: Some(parts.spawning_parent),
            executor: parts.executor,
            priority: parts.priority,
            work: Some(parts.work),
            // As `with_resources` into an empty builder: the parent's, shared.
            resources: parts.resources,
            default_retry: parts.default_retry,
            cancel: Some(parts.cancel),
            ..ApplicationBuilder::default()
        }
    }

    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add actions, known by their names.
    pub fn with_actions<I, A>(mut self, actions: I) -> Self
    where
        I: IntoIterator<Item = A>,
        A: IntoAction,
    {
        self.graph = self.graph.with_actions(actions);
        self
    }

    /// Add transitions: `(from, to)` or `(from, to, condition)`, in priority order.
    pub fn with_transitions<I, T>(mut self, transitions: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<TransitionSpec>,
    {
        self.graph = self.graph.with_transitions(transitions);
        self
    }

    /// Give the application's actions a shared resource of type `T` (a model, a client, an
    /// index): actions reach it as [`ctx.resource::<T>()`](ApplicationContext::resource) or
    /// as an `#[action]` parameter of type [`Res<T>`](crate::ids::Res). One value per type;
    /// a later one replaces an earlier one. Child applications inherit the resources of the
    /// application that spawned them.
    pub fn with_resource<T: Send + Sync + 'static>(mut self, value: Arc<T>) -> Self {
        self.resources.insert(value);
        self
    }

    /// Give the application every resource of `resources` whose type it was not given yet
    /// (child applications inherit their parent's this way).
    pub fn with_resources(mut self, resources: &Resources) -> Self {
        self.resources.inherit(resources);
        self
    }

    /// Retry failed runs of `action` by `policy` (over the action's own
    /// [`Declaration::retry`](crate::actions::Declaration::retry)).
    pub fn with_retry(mut self, action: impl ActionName, policy: RetryPolicy) -> Self {
        self.retries.push((action.into_name(), policy));
        self
    }

    /// Retry failed runs of every action that has no policy of its own by `policy`.
    pub fn with_default_retry(mut self, policy: RetryPolicy) -> Self {
        self.default_retry = Some(policy);
        self
    }

    /// Fail a run of `action` that takes longer than `timeout` (over the action's own
    /// [`Declaration::timeout`](crate::actions::Declaration::timeout)). The run is dropped at
    /// the deadline; a blocking action sees
    /// [`ApplicationContext::is_cancelled`]. The error's kind is
    /// [`ErrorKind::Timeout`](crate::actions::ErrorKind::Timeout), retried as its policy says.
    pub fn with_timeout(mut self, action: impl ActionName, timeout: Duration) -> Self {
        self.timeouts.push((action.into_name(), timeout));
        self
    }

    /// The token that cancels the application (default: a new one, which
    /// [`Application::cancel_handle`] gives out). Child applications share their parent's.
    pub fn with_cancel_token(mut self, token: CancelToken) -> Self {
        self.cancel = Some(token);
        self
    }

    /// With [`initialize_from`](Self::initialize_from): resume an application that was
    /// cancelled (default: building it fails with [`Error::AppCancelled`]). Its finished
    /// steps and children are not run again.
    pub fn resume_cancelled(mut self, resume: bool) -> Self {
        self.resume_cancelled = resume;
        self
    }

    /// Use an already built graph (instead of actions and transitions).
    pub fn with_graph(mut self, graph: impl Into<Arc<Graph>>) -> Self {
        self.prebuilt = Some(graph.into());
        self.prebuilt_code = None;
        self
    }

    /// The initial state. With [`initialize_from`](Self::initialize_from), the state when
    /// nothing is stored (Burr's `default_state`).
    pub fn with_state(mut self, state: State) -> Self {
        self.state = state;
        self
    }

    /// The first action: a name, or the action constant `#[action]` made. With
    /// [`initialize_from`](Self::initialize_from), where a new application starts (Burr's
    /// `default_entrypoint`).
    pub fn with_entrypoint(mut self, action: impl ActionName) -> Self {
        self.entrypoint = Some(action.into_name());
        self
    }

    /// The app id (default: a new UUID).
    pub fn with_app_id(mut self, app_id: impl Into<String>) -> Self {
        self.app_id = Some(app_id.into());
        self
    }

    /// The partition key (a user id, a tenant...; default: none).
    pub fn with_partition_key(mut self, partition_key: impl Into<String>) -> Self {
        self.partition_key = Some(partition_key.into());
        self
    }

    /// The sequence id of the step before the first one (Burr's
    /// `with_identifiers(sequence_id=...)`): the first step gets `sequence_id + 1`. With
    /// [`initialize_from`](Self::initialize_from), it selects the checkpoint to load.
    pub fn with_sequence_id(mut self, sequence_id: u64) -> Self {
        self.sequence_id = Some(sequence_id);
        self
    }

    /// Add lifecycle hooks.
    pub fn with_hooks<I, H>(mut self, hooks: I) -> Self
    where
        I: IntoIterator<Item = H>,
        H: LifecycleHook,
    {
        self.hooks.extend(
            hooks
                .into_iter()
                .map(|h| Arc::new(h) as Arc<dyn LifecycleHook>),
        );
        self
    }

    /// Add an already shared hook.
    pub fn with_hook(mut self, hook: Arc<dyn LifecycleHook>) -> Self {
        self.hooks.push(hook);
        self
    }

    /// Record every step with a tracker (a hook that the context also exposes, so child
    /// applications share it).
    pub fn with_tracker(mut self, tracker: Arc<dyn LifecycleHook>) -> Self {
        self.tracker = Some(tracker);
        self
    }

    /// Checkpoint every step with `persister`.
    pub fn with_state_persister(mut self, persister: Arc<dyn Persister>) -> Self {
        self.saver = Some(persister);
        self
    }

    /// Load the application's state from `loader` (Burr's `initialize_from`).
    ///
    /// The checkpoint loaded is the latest of (partition key, app id), or the one at
    /// [`with_sequence_id`](Self::with_sequence_id), or the fork source's. Nothing stored:
    /// the application starts from [`with_state`](Self::with_state) at
    /// [`with_entrypoint`](Self::with_entrypoint). Found: its state and sequence id are
    /// restored, and the application continues after a completed step or re-runs a failed
    /// one (see [`resume_at_next_action`](Self::resume_at_next_action)).
    pub fn initialize_from(mut self, loader: Arc<dyn Persister>) -> Self {
        if self.initialize.is_some() {
            self.problems.push(BuilderError::InitializeFromTwice);
        }
        self.initialize = Some(InitializeFrom { loader });
        self
    }

    /// With [`initialize_from`](Self::initialize_from): whether a loaded application
    /// continues where it stopped (`true`, the default) or starts at
    /// [`with_entrypoint`](Self::with_entrypoint) with the loaded state (`false`).
    pub fn resume_at_next_action(mut self, resume: bool) -> Self {
        self.restart_at_entrypoint = !resume;
        self
    }

    /// With [`initialize_from`](Self::initialize_from): start a new application from
    /// another application's state (a fork). The parent pointer is recorded.
    pub fn fork_from_app_id(mut self, app_id: impl Into<String>) -> Self {
        self.fork.app_id = Some(app_id.into());
        self
    }

    /// The partition key of the application forked from (default: none).
    pub fn fork_from_partition_key(mut self, partition_key: impl Into<String>) -> Self {
        self.fork.partition_key = Some(partition_key.into());
        self
    }

    /// The sequence id forked from (default: the latest).
    pub fn fork_from_sequence_id(mut self, sequence_id: u64) -> Self {
        self.fork.sequence_id = Some(sequence_id);
        self
    }

    /// Values written over the loaded state (with [`initialize_from`](Self::initialize_from)).
    pub fn override_state_values(mut self, values: State) -> Self {
        self.override_state = Some(values);
        self
    }

    /// Mark the application as a child of another application's step. A child shares its
    /// root's lease instead of taking its own.
    pub fn with_spawning_parent(mut self, parent: ParentPointer) -> Self {
        self.spawning_parent = Some(parent);
        self
    }

    /// The executor that schedules this application's child applications (and theirs,
    /// all the way down). Default: [`Executor::global`].
    pub fn with_executor(mut self, executor: Executor) -> Self {
        self.executor = Some(executor);
        self
    }

    /// The application's priority: its child applications are admitted before those of
    /// lower-priority flows. Default 0.
    pub fn with_priority(mut self, priority: i32) -> Self {
        self.priority = Some(Priority(priority));
        self
    }

    /// The application's flow order: among flows of equal priority, the executor admits
    /// the child applications of the flow with the smaller value first. Default: the
    /// order in which this process built its top-level applications. A run queue gives
    /// the flow's start time (microseconds since the Unix epoch), so that the children of
    /// an earlier flow go first across processes and restarts.
    pub fn with_flow(mut self, flow: u64) -> Self {
        self.flow = Some(flow);
        self
    }

    /// For child applications: their place in the executor's admission order.
    pub(crate) fn with_work_key(mut self, work: WorkKey) -> Self {
        self.work = Some(work);
        self
    }

    /// How long the app-id lease lives without a checkpoint renewing it (default 60 s).
    ///
    /// A persister without [`Leases`](crate::persistence::Leases) takes no lease: the
    /// application runs without one, and a second runner of the same app id is not
    /// detected.
    pub fn with_lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = Some(ttl);
        self
    }

    /// The application's version (yours: a release, a date...). Stored with the graph's
    /// fingerprint in the application's record, it names the code an application was
    /// checkpointed under, and selects the [migration](Self::with_migration) to resume
    /// it under newer code.
    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// Where memoized actions ([`Declaration::memoize`](crate::actions::Declaration::memoize))
    /// keep their outcomes, under (action name, action version, hash of the inputs and of
    /// the values of the keys it reads): a run found there is reused, in any application
    /// or process sharing the store, instead of running the action again; concurrent
    /// identical runs through the same handle run once. A new version of the action is a
    /// new set of entries. Share one handle per process (clone it).
    pub fn with_step_cache(mut self, cache: crate::cache::Cache) -> Self {
        self.step_cache = Some(cache);
        self
    }

    /// With [`initialize_from`](Self::initialize_from): how to resume an application
    /// checkpointed under version `from_version` (see [`with_version`](Self::with_version))
    /// whose graph differs from the current one. `migrate` turns the loaded state into one
    /// the current graph runs on; it is applied once, and its result saved as a
    /// checkpoint of its own (at the next sequence id, at the same position) before the
    /// application record takes the current code, so a crash right after it never applies
    /// it twice.
    ///
    /// Without a migration, such a resume fails with [`Error::CodeChanged`], naming what
    /// changed, unless the change does not touch what the application can still run
    /// (everything reachable from where it stopped is the same).
    pub fn with_migration<F, E>(mut self, from_version: impl Into<String>, migrate: F) -> Self
    where
        F: Fn(State) -> std::result::Result<State, E> + Send + Sync + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let migrate: Migration = Arc::new(move |state| migrate(state).map_err(Into::into));
        self.migrations.push((from_version.into(), migrate));
        self
    }

    /// The code this builder would run, without building the application: its graph's
    /// description and fingerprint, the [version](Self::with_version), and the versions
    /// with a registered [migration](Self::with_migration). What
    /// [`check_resume`](super::check_resume) compares stored applications with.
    pub fn current_code(&self) -> Result<CurrentCode> {
        let graph = match &self.prebuilt {
            Some(graph) => Arc::clone(graph),
            None => Arc::new(self.graph.clone().build()?),
        };
        let entrypoint = match &self.entrypoint {
            None => GraphProblem::MissingEntrypoint,
            Some(name) if graph.index_of(name).is_none() => GraphProblem::UnknownEntrypoint {
                name: name.clone(),
                did_you_mean: graph.nearest_name(name),
            },
            Some(name) => {
                let description = graph.describe(name);
                return Ok(CurrentCode {
                    code: CodeVersion {
                        version: self.version.clone(),
                        fingerprint: description.fingerprint(),
                        graph: Some(description),
                    },
                    migrations: self.migrations.iter().map(|(v, _)| v.clone()).collect(),
                    graph,
                });
            }
        };
        Err(Error::Graph(GraphError {
            problems: vec![entrypoint],
        }))
    }

    /// Validate, load (with `initialize_from`), take the lease (with a persister that has
    /// [`Leases`](crate::persistence::Leases)), and return the application.
    pub async fn build(self) -> Result<Application> {
        if let Some(problem) = self.problems.first() {
            return Err(Error::Builder(problem.clone()));
        }
        for (what, value) in [
            ("app id", &self.app_id),
            ("partition key", &self.partition_key),
            ("fork app id", &self.fork.app_id),
            ("fork partition key", &self.fork.partition_key),
        ] {
            if let Some(value) = value {
                BuilderError::check_identifier(what, value)?;
            }
        }
        let (entrypoint_name, initial_state) = (self.entrypoint.clone(), self.state.clone());
        let graph = match self.prebuilt {
            Some(graph) => Ok(graph),
            None => self.graph.build().map(Arc::new),
        };
        let (graph, mut problems) = match graph {
            Ok(graph) => (Some(graph), Vec::new()),
            Err(error) => (None, error.problems),
        };
        let entrypoint = match (&entrypoint_name, &graph) {
            (None, _) => {
                problems.push(GraphProblem::MissingEntrypoint);
                None
            }
            (Some(name), Some(graph)) => {
                let index = graph.index_of(name);
                if index.is_none() {
                    problems.push(GraphProblem::UnknownEntrypoint {
                        name: name.clone(),
                        did_you_mean: graph.nearest_name(name),
                    });
                }
                index
            }
            (Some(_), None) => None,
        };
        let (Some(graph), Some(entrypoint), true) = (graph, entrypoint, problems.is_empty()) else {
            return Err(Error::Graph(GraphError { problems }));
        };
        let settings = step_settings(
            &graph,
            &self.retries,
            self.default_retry.as_ref(),
            &self.timeouts,
        )?;
        let entrypoint_name = graph.action(entrypoint).name();
        let code = match self.prebuilt_code {
            // A child of a map step: its sub-graph was described (and checked for
            // unreachable actions) once for all the children.
            Some((at, code)) if self.version.is_none() && *at == *entrypoint_name => code,
            _ => {
                warn_unreachable(&graph, entrypoint);
                let description = graph.describe(entrypoint_name);
                Arc::new(CodeVersion {
                    version: self.version.clone(),
                    fingerprint: description.fingerprint(),
                    graph: Some(description),
                })
            }
        };

        let ids = Identifiers {
            app_id: Arc::from(
                self.app_id
                    .unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
            ),
            partition_key: self.partition_key.as_deref().map(Arc::from),
        };
        let forking = self.fork.app_id.is_some();
        if forking && self.fork.app_id.as_deref() == Some(&*ids.app_id) {
            return Err(Error::ForkSameAppId {
                app_id: ids.app_id.to_string(),
            });
        }
        let persistence = |source| Error::Persistence {
            app_id: ids.app_id.to_string(),
            source,
        };

        // A store without leases runs the application without one.
        let leases = self.saver.as_deref().and_then(|saver| saver.as_leases());
        let ttl = self.lease_ttl.unwrap_or(DEFAULT_LEASE_TTL);
        let record = |code: &Arc<CodeVersion>| AppRecord {
            partition_key: ids.partition_key().map(str::to_owned),
            app_id: ids.app_id.to_string(),
            created_at_us: micros(SystemTime::now()),
            fork_parent: None,
            spawning_parent: None,
            code: Some(CodeVersion::clone(code)),
        };
        // A new application (nothing to load) is recorded in the lease's own write.
        let (lease, mut registered) = match (leases, &self.spawning_parent) {
            (Some(leases), None) if self.initialize.is_none() => {
                let (lease, registered) = leases
                    .acquire_lease_registering(
                        ids.partition_key(),
                        &ids.app_id,
                        ttl,
                        &record(&code),
                    )
                    .await
                    .map_err(persistence)?;
                (Some(lease), registered)
            }
            (Some(leases), None) => (
                Some(
                    leases
                        .acquire_lease(ids.partition_key(), &ids.app_id, ttl)
                        .await
                        .map_err(persistence)?,
                ),
                false,
            ),
            _ => (None, false),
        };
        let names = graph.names();
        let hooks: Arc<[Arc<dyn LifecycleHook>]> =
            self.hooks.into_iter().chain(self.tracker.clone()).collect();
        let work = match (self.work, self.priority) {
            (Some(work), None) => work,
            (Some(work), Some(priority)) => WorkKey { priority, ..work },
            (None, priority) => WorkKey {
                priority: priority.unwrap_or_default(),
                flow: self.flow.unwrap_or_else(next_flow),
                path: Arc::from(Vec::new()),
            },
        };
        let mut ctx = ApplicationContext::new(ids, work, self.cancel.unwrap_or_default());
        ctx.spawning_parent = self.spawning_parent;
        ctx.executor = Some(self.executor.unwrap_or_else(Executor::global));
        ctx.resources = self.resources;
        ctx.set_hooks(hooks.clone(), self.tracker);
        ctx.set_persister(self.saver.clone());
        let mut app = Application {
            names,
            entrypoint,
            state: initial_state,
            ctx,
            hooks,
            settings,
            failure: None,
            failure_handed: false,
            failed_at: None,
            after_failure: super::AfterFailure::Fail,
            retry_in: None,
            routed: false,
            sequence_id: None,
            prior: None,
            forced: None,
            failed_attempt: None,
            next_cache: None,
            fork_parent: None,
            snapshot_next: true,
            in_flight: false,
            saver: self.saver,
            lease,
            graph,
            code: Arc::clone(&code),
            step_cache: self.step_cache,
            value_hashes: Default::default(),
        };

        match self.initialize {
            None => app.sequence_id = self.sequence_id,
            Some(init) => {
                let loaded = if forking {
                    init.loader
                        .load(
                            self.fork.partition_key.as_deref(),
                            self.fork.app_id.as_deref().unwrap_or_default(),
                            self.fork.sequence_id,
                        )
                        .await
                } else {
                    init.loader
                        .load(
                            app.ctx.ids.partition_key(),
                            &app.ctx.ids.app_id,
                            self.sequence_id,
                        )
                        .await
                }
                .map_err(|source| Error::Persistence {
                    app_id: app.ctx.ids.app_id.to_string(),
                    source,
                })?;
                // As Burr: a fork of an application with nothing stored records no parent.
                if forking && loaded.is_some() {
                    app.fork_parent = Some(ParentPointer {
                        app_id: self.fork.app_id.clone().unwrap_or_default(),
                        partition_key: self.fork.partition_key.clone(),
                        sequence_id: self.fork.sequence_id,
                    });
                }
                let overridden = self.override_state.is_some();
                let (migration, stored) = match (&loaded, forking) {
                    (Some(row), false) => {
                        guard(&*init.loader, &app, row, &code, &self.migrations).await?
                    }
                    _ => (None, None),
                };
                if let Some(row) = loaded {
                    let before = row.state.clone();
                    let (seq, position) = (row.sequence_id, row.position.clone());
                    let status = row.status;
                    app.restore(
                        row,
                        !self.restart_at_entrypoint,
                        self.override_state,
                        self.resume_cancelled,
                    )?;
                    // The saver already holds this application's history to build on,
                    // unless it was loaded from elsewhere (a fork, or another persister).
                    let same_store = app
                        .saver
                        .as_ref()
                        .is_some_and(|saver| Arc::ptr_eq(saver, &init.loader));
                    app.snapshot_next = forking || !same_store || overridden;
                    // The record the guard read already says all a registration would
                    // (this code, the parents): a resume writes nothing before its
                    // first step.
                    registered = same_store
                        && migration.is_none()
                        && stored.is_some_and(|stored| already_recorded(&stored, &code, &app));
                    if let Some((from_version, migrate)) = migration {
                        app.migrate(
                            &before,
                            seq,
                            &position,
                            status,
                            &from_version,
                            &migrate,
                            &code,
                        )
                        .await?;
                    }
                }
            }
        }

        if let Some(records) = app
            .saver
            .as_deref()
            .and_then(|saver| saver.as_app_records())
            .filter(|_| !registered)
        {
            let record = AppRecord {
                partition_key: app.ctx.ids.partition_key().map(str::to_owned),
                app_id: app.ctx.ids.app_id.to_string(),
                created_at_us: micros(SystemTime::now()),
                fork_parent: app.fork_parent.clone(),
                spawning_parent: app.ctx.spawning_parent.clone(),
                code: Some(CodeVersion::clone(&code)),
            };
            records
                .register_app(&record)
                .await
                .map_err(|source| Error::Persistence {
                    app_id: record.app_id.clone(),
                    source,
                })?;
        }
        for hook in app.hooks.iter() {
            hook.post_application_create(&AppCreated {
                ids: &app.ctx.ids,
                graph: &app.graph,
                entrypoint: &app.names[app.entrypoint],
                state: &app.state,
                sequence_id: app.sequence_id,
                fork_parent: app.fork_parent.as_ref(),
                spawning_parent: app.ctx.spawning_parent.as_ref(),
            });
        }
        Ok(app)
    }
}

impl Application {
    /// Take over a loaded checkpoint: its state, sequence id and position.
    fn restore(
        &mut self,
        row: LoadedCheckpoint,
        resume_at_next_action: bool,
        overrides: Option<State>,
        resume_cancelled: bool,
    ) -> Result<()> {
        if row.status == StepStatus::Cancelled
            && self.ctx.spawning_parent.is_none()
            && !resume_cancelled
        {
            return Err(Error::AppCancelled {
                app_id: self.ctx.ids.app_id.to_string(),
                sequence_id: row.sequence_id,
            });
        }
        let index_of = |name: &str| {
            self.graph
                .index_of(name)
                .ok_or_else(|| Error::UnknownPosition {
                    app_id: self.ctx.ids.app_id.to_string(),
                    position: name.to_owned(),
                    sequence_id: row.sequence_id,
                })
        };
        let position = index_of(&row.position)?;
        let prior = row.prior_step.as_deref().map(index_of).transpose()?;
        self.state = match overrides {
            Some(values) => row.state.merge(&values),
            None => row.state,
        };
        self.sequence_id = Some(row.sequence_id);
        if !resume_at_next_action {
            self.forced = Some(self.entrypoint);
            return Ok(());
        }
        match row.status {
            StepStatus::Completed => self.prior = Some(position),
            StepStatus::Failed | StepStatus::Cancelled => {
                self.prior = prior;
                self.forced = Some(position);
                self.failed_attempt = Some(row.attempt);
                self.failed_at = Some(row.created_at);
                if row.status == StepStatus::Failed {
                    // Attempts spent and an error transition out: the handler runs next.
                    // The stored row keeps the error's text, not its kind, so only a
                    // transition that takes any kind (`on_error()`) routes here.
                    let spent = self
                        .retry_policy(position)
                        .is_none_or(|p| row.attempt >= p.max_attempts());
                    if let (true, Some(handler)) =
                        (spent, self.graph.error_target(position, ErrorKind::Other))
                    {
                        self.route_to_handler(
                            position,
                            handler,
                            StepFailure {
                                action: self.names[position].to_string(),
                                sequence_id: row.sequence_id,
                                attempt: row.attempt,
                                kind: ErrorKind::Other,
                                chain: vec![format!(
                                    "action `{}` failed before the process restarted",
                                    self.names[position]
                                )],
                            },
                        );
                    }
                }
            }
        }
        Ok(())
    }
}

/// Warn about the actions of `graph` that cannot be reached from `entrypoint`.
pub(crate) fn warn_unreachable(graph: &Graph, entrypoint: usize) {
    let unreachable = graph.unreachable_from(entrypoint);
    if !unreachable.is_empty() {
        tracing::warn!(
            ?unreachable,
            "actions cannot be reached from the entrypoint"
        );
    }
}

/// A migration to apply: the stored version it migrates from, and the migration.
type MigrationDue = (String, Migration);

/// The resume guard: compare the code `row` was checkpointed under (the application's
/// record in `loader`) with the current `code`. Same, already migrated, or compatible
/// from the stored position: go on (no migration). A migration registered for the stored
/// version: it (to apply). Otherwise [`Error::CodeChanged`], before anything is stored.
/// With the record read.
async fn guard(
    loader: &dyn Persister,
    app: &Application,
    row: &LoadedCheckpoint,
    code: &CodeVersion,
    migrations: &[(String, Migration)],
) -> Result<(Option<MigrationDue>, Option<AppRecord>)> {
    let Some(records) = loader.as_app_records() else {
        return Ok((None, None));
    };
    let record = records
        .app(app.ctx.ids.partition_key(), &app.ctx.ids.app_id)
        .await
        .map_err(|source| Error::Persistence {
            app_id: app.ctx.ids.app_id.to_string(),
            source,
        })?;
    let stored = record.as_ref().and_then(|record| record.code.as_ref());
    let versions: Vec<&str> = migrations.iter().map(|(v, _)| v.as_str()).collect();
    match super::check::judge(stored, &row.state, &row.position, code, &versions) {
        Verdict::Migration { from_version } => {
            let migrate = migrations.iter().rev().find(|(v, _)| *v == from_version);
            let due = migrate.map(|(_, migrate)| (from_version, Arc::clone(migrate)));
            Ok((due, record))
        }
        Verdict::Changed { changes } => Err(Error::CodeChanged {
            app_id: app.ctx.ids.app_id.to_string(),
            stored_version: stored.and_then(|s| s.version.clone()),
            current_version: code.version.clone(),
            changes,
        }),
        _ => Ok((None, record)),
    }
}

/// Whether registering `app`, running `code`, would change nothing in its `stored`
/// record: the same code (version, fingerprint, with the graph's description) and its
/// parents stored (a stored parent is never replaced).
fn already_recorded(stored: &AppRecord, code: &CodeVersion, app: &Application) -> bool {
    let same_code = stored.code.as_ref().is_some_and(|recorded| {
        recorded.version == code.version
            && recorded.fingerprint == code.fingerprint
            && recorded.graph.is_some()
    });
    same_code
        && (app.fork_parent.is_none() || stored.fork_parent.is_some())
        && (app.ctx.spawning_parent.is_none() || stored.spawning_parent.is_some())
}

impl Application {
    /// Apply a migration to the restored state and save the result as a checkpoint of
    /// its own, at the next sequence id and the same position.
    #[allow(clippy::too_many_arguments)]
    async fn migrate(
        &mut self,
        before: &State,
        seq: u64,
        position: &str,
        status: StepStatus,
        from_version: &str,
        migrate: &Migration,
        code: &CodeVersion,
    ) -> Result<()> {
        let app_id = self.ctx.ids.app_id.to_string();
        let failed = |source| Error::Migration {
            app_id: app_id.clone(),
            from_version: from_version.to_owned(),
            source,
        };
        if status != StepStatus::Completed {
            return Err(failed(
                format!(
                    "the application stopped at a {status} step of `{position}`; \
                     migrations apply to an application stopped after a completed step"
                )
                .into(),
            ));
        }
        let migrated = migrate(self.state.clone()).map_err(failed)?;
        let migrated = migrated.update(
            MIGRATED_TO_KEY,
            serde_json::json!({
                "fingerprint": code.fingerprint,
                "version": code.version,
                "from_version": from_version,
            }),
        );
        let mut delta = StateDelta::between(before, &migrated);
        if self.snapshot_next {
            let deleted = delta.deleted;
            delta = StateDelta::snapshot(&migrated);
            delta.deleted = deleted;
        }
        let sequence_id = seq + 1;
        let checkpoint = Checkpoint {
            partition_key: self.ctx.ids.partition_key().map(str::to_owned),
            app_id: app_id.clone(),
            sequence_id,
            position: position.to_owned(),
            status: StepStatus::Completed,
            attempt: 1,
            prior_step: Some(position.to_owned()),
            created_at: SystemTime::now(),
            delta,
            state: migrated.clone(),
            error: None,
        };
        if let Some(saver) = &self.saver {
            saver
                .save(&checkpoint)
                .await
                .map_err(|source| Error::Persistence {
                    app_id: app_id.clone(),
                    source,
                })?;
            self.snapshot_next = false;
        }
        tracing::info!(app_id = %app_id, from_version, sequence_id, "migrated the application's state");
        self.state = migrated;
        self.sequence_id = Some(sequence_id);
        Ok(())
    }
}

/// Each action's retry policy and timeout: the builder's, else the declaration's, else (for
/// retries) the builder's default. `None` (nothing to allocate) when no action has either.
fn step_settings(
    graph: &Graph,
    retries: &[(String, RetryPolicy)],
    default_retry: Option<&RetryPolicy>,
    timeouts: &[(String, Duration)],
) -> Result<Option<Arc<[StepSettings]>>> {
    if retries.is_empty()
        && default_retry.is_none()
        && timeouts.is_empty()
        && graph.actions().iter().all(|a| {
            let declared = a.declaration();
            declared.retry.is_none() && declared.timeout.is_none()
        })
    {
        return Ok(None);
    }
    let unknown = |setting: &'static str, name: &str| {
        Error::Builder(BuilderError::UnknownAction {
            setting,
            action: name.to_owned(),
            did_you_mean: graph.nearest_name(name),
        })
    };
    for (name, _) in retries {
        graph
            .index_of(name)
            .ok_or_else(|| unknown("with_retry", name))?;
    }
    for (name, _) in timeouts {
        graph
            .index_of(name)
            .ok_or_else(|| unknown("with_timeout", name))?;
    }
    if let Some(policy) = default_retry {
        policy.validate().map_err(|problem| {
            Error::Builder(BuilderError::InvalidRetry {
                action: "*".to_owned(),
                problem,
            })
        })?;
    }
    graph
        .actions()
        .iter()
        .map(|action| {
            let declared = action.declaration();
            let name = declared.name.as_str();
            let retry = retries
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, p)| p)
                .or(declared.retry.as_ref())
                .or(default_retry)
                .cloned();
            if let Some(policy) = &retry {
                policy.validate().map_err(|problem| {
                    Error::Builder(BuilderError::InvalidRetry {
                        action: name.to_owned(),
                        problem,
                    })
                })?;
            }
            let timeout = timeouts
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, t)| *t)
                .or(declared.timeout);
            if timeout == Some(Duration::ZERO) {
                return Err(Error::Builder(BuilderError::ZeroTimeout {
                    action: name.to_owned(),
                }));
            }
            Ok(StepSettings { retry, timeout })
        })
        .collect::<Result<Arc<[StepSettings]>>>()
        .map(Some)
}
