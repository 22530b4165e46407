//! Map actions: [`MapAction`] and the Burr-named constructors [`MapStates`],
//! [`MapActions`] and [`MapActionsAndStates`].

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tokio::sync::watch;

use super::child::{child_app_id, child_id_prefix, run_child, ChildSettings, Stored};
use super::{SubGraph, Task};
use crate::actions::declaration::declaration_builders;
use crate::actions::{Action, ActionError, ActionResult, Declaration, Inputs, RetryPolicy};
use crate::error::{ChildFailure, ChildrenFailed, Error};
use crate::hooks::LifecycleHook;
use crate::ids::{ApplicationContext, Priority};
use crate::persistence::Persister;
use crate::state::State;

/// What a map action does when children fail.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FailurePolicy {
    /// The first error cancels the running siblings and fails the step (the default).
    #[default]
    FailFast,
    /// Let every child finish, then fail with every error.
    WaitAll,
    /// Let every child finish and give the reducer each child's outcome
    /// ([`MapAction::reduce_settled`]); the reducer decides.
    Settled,
    /// The first child to succeed wins and the others are cancelled; the step fails only
    /// if every child fails.
    FirstSuccess,
}

/// Where children save their checkpoints.
#[derive(Clone, Default)]
pub enum ChildPersister {
    /// The parent's persister (the default): children resume with the parent.
    #[default]
    Cascade,
    /// Nowhere: children are not checkpointed.
    None,
    /// This persister.
    Given(Arc<dyn Persister>),
}

/// Which tracker children report to.
#[derive(Clone, Default)]
pub enum ChildTracker {
    /// The parent's tracker (the default): the tracker shows children under their parent.
    #[default]
    Cascade,
    /// None.
    None,
    /// This one.
    Given(Arc<dyn LifecycleHook>),
}

/// How one child ended, for [`MapAction::reduce_settled`].
#[derive(Debug)]
pub struct ChildOutcome {
    /// The task's index.
    pub index: usize,
    /// The task's key (its index, when it had none).
    pub key: String,
    /// The child's app id.
    pub app_id: String,
    /// Its final state, or its error.
    pub result: Result<State, Error>,
}

type TasksFn = dyn Fn(&State, &Inputs) -> Result<Vec<Task>, ActionError> + Send + Sync;
type StatesReducer = dyn Fn(State, Vec<State>) -> Result<State, ActionError> + Send + Sync;
type OutcomesReducer = dyn Fn(State, Vec<ChildOutcome>) -> Result<State, ActionError> + Send + Sync;

#[derive(Clone)]
enum Reducer {
    Unchanged,
    States(Arc<StatesReducer>),
    Outcomes(Arc<OutcomesReducer>),
}

/// An action whose step runs child applications and reduces their final states.
///
/// Made by [`MapAction::states`], [`MapAction::keyed_states`], [`MapAction::actions`],
/// [`MapAction::actions_and_states`] or [`MapAction::tasks`]; configured with builder methods. Like every action it sees
/// only the keys it reads (its tasks are built from those), and its reducer's writes are
/// checked against `writes`.
#[derive(Clone)]
pub struct MapAction {
    declaration: Declaration,
    tasks: Arc<TasksFn>,
    reducer: Reducer,
    policy: FailurePolicy,
    priority: Option<Priority>,
    persister: ChildPersister,
    tracker: ChildTracker,
    timeout: Option<Duration>,
    child_retry: Option<RetryPolicy>,
}

impl MapAction {
    /// A map action running the tasks `tasks` builds from the state (the keys it reads)
    /// and the inputs.
    pub fn tasks<F>(name: impl Into<String>, tasks: F) -> MapAction
    where
        F: Fn(&State, &Inputs) -> Result<Vec<Task>, ActionError> + Send + Sync + 'static,
    {
        MapAction {
            declaration: Declaration::new(name).single_step(),
            tasks: Arc::new(tasks),
            reducer: Reducer::Unchanged,
            policy: FailurePolicy::default(),
            priority: None,
            persister: ChildPersister::default(),
            tracker: ChildTracker::default(),
            timeout: None,
            child_retry: None,
        }
    }

    declaration_builders!();

    /// Reduce the parent state (the keys it reads) and the children's final states, in
    /// task order, into the new state.
    pub fn reduce<F>(mut self, reduce: F) -> Self
    where
        F: Fn(State, Vec<State>) -> Result<State, ActionError> + Send + Sync + 'static,
    {
        self.reducer = Reducer::States(Arc::new(reduce));
        self
    }

    /// Reduce with every child's outcome (success or error), in task order. Sets the
    /// policy to [`FailurePolicy::Settled`] unless it is [`FailurePolicy::FirstSuccess`].
    pub fn reduce_settled<F>(mut self, reduce: F) -> Self
    where
        F: Fn(State, Vec<ChildOutcome>) -> Result<State, ActionError> + Send + Sync + 'static,
    {
        self.reducer = Reducer::Outcomes(Arc::new(reduce));
        if self.policy != FailurePolicy::FirstSuccess {
            self.policy = FailurePolicy::Settled;
        }
        self
    }

    /// What to do when children fail.
    pub fn policy(mut self, policy: FailurePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The priority of this step's children (default: the application's).
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = Some(Priority(priority));
        self
    }

    /// Where the children checkpoint (default: the parent's persister).
    pub fn persister(mut self, persister: ChildPersister) -> Self {
        self.persister = persister;
        self
    }

    /// Which tracker the children report to (default: the parent's).
    pub fn tracker(mut self, tracker: ChildTracker) -> Self {
        self.tracker = tracker;
        self
    }

    /// Cancel a child that runs longer than `limit`; it fails with [`Error::Timeout`].
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// Retry each child's failed steps by `policy` (for every child action that has no
    /// policy of its own): a child that fails now and then finishes without failing the
    /// map step.
    pub fn child_retry(mut self, policy: RetryPolicy) -> Self {
        self.child_retry = Some(policy);
        self
    }

    async fn run_children(
        &self,
        ctx: &ApplicationContext,
        tasks: Vec<Task>,
    ) -> Result<Children, Error> {
        let settings = Arc::new(ChildSettings {
            persister: match &self.persister {
                ChildPersister::Cascade => ctx.persister().cloned(),
                ChildPersister::None => None,
                ChildPersister::Given(p) => Some(Arc::clone(p)),
            },
            tracker: match &self.tracker {
                ChildTracker::Cascade => None,
                ChildTracker::None => Some(None),
                ChildTracker::Given(t) => Some(Some(Arc::clone(t))),
            },
            priority: self.priority,
            timeout: self.timeout,
            retry: self.child_retry.clone(),
            loaded: AtomicUsize::new(0),
        });
        let (cancel, cancelled) = watch::channel(false);
        let total = tasks.len();
        let keys: Vec<String> = tasks
            .iter()
            .enumerate()
            .map(|(index, task)| task.key.clone().unwrap_or_else(|| index.to_string()))
            .collect();
        let stored = match &settings.persister {
            Some(persister) => stored_children(ctx, &**persister, &keys).await?,
            None => vec![Stored::Maybe; total],
        };
        // Children start a window at a time (a few per executor slot, at least 64: their
        // checkpoints share a commit), so that a fan-out of 100,000 tasks holds a few
        // dozen child applications in memory, not 100,000.
        let window = ctx
            .executor
            .as_ref()
            .map_or(64, |e| e.concurrency().saturating_mul(4).clamp(64, 1024));
        let mut queued = tasks.into_iter().enumerate();
        let mut running = FuturesUnordered::new();
        let mut results: Vec<Option<Result<State, Box<Error>>>> =
            (0..total).map(|_| None).collect();
        let mut stopped = false;
        let mut started = 0;
        loop {
            while !stopped && running.len() < window {
                let Some((index, task)) = queued.next() else {
                    break;
                };
                // Boxed: the child's future is large, and moving a pointer is cheap.
                let child = Box::pin(run_child(
                    ctx.clone(),
                    index,
                    keys[index].clone(),
                    task,
                    Arc::clone(&settings),
                    stored[index],
                    cancelled.clone(),
                ));
                running.push(async move { (index, child.await) });
                started += 1;
            }
            let Some((index, result)) = running.next().await else {
                break;
            };
            let stop = match (&result, self.policy) {
                (Err(Error::Cancelled { .. }), _) => false,
                (Err(_), FailurePolicy::FailFast) | (Ok(_), FailurePolicy::FirstSuccess) => true,
                _ => false,
            };
            if stop {
                stopped = true;
                cancel.send_replace(true);
            }
            results[index] = Some(result.map_err(Box::new));
        }
        let loaded = settings.loaded.load(Ordering::Relaxed);
        Ok(Children {
            results,
            keys,
            loaded,
            // Children started and not found finished: those that ran (or tried to).
            ran: started - loaded,
        })
    }

    fn failed(
        &self,
        ctx: &ApplicationContext,
        children: Children,
        first_only: bool,
    ) -> ActionError {
        let total = children.results.len();
        let mut failures: Vec<ChildFailure> = children
            .into_outcomes(ctx)
            .filter_map(|o| match o.result {
                Err(Error::Cancelled { .. }) if first_only => None,
                Err(e) => Some(ChildFailure {
                    index: o.index,
                    app_id: o.app_id,
                    error: Box::new(e),
                }),
                Ok(_) => None,
            })
            .collect();
        if first_only {
            failures.truncate(1);
        }
        ActionError::from(Error::Children(ChildrenFailed { total, failures }))
    }
}

/// How a map step's children ended, in task order.
struct Children {
    /// Each child's final state or error; `None` for a child never started (its siblings
    /// failed first, or one of them won).
    results: Vec<Option<Result<State, Box<Error>>>>,
    /// Each child's key.
    keys: Vec<String>,
    /// Children found finished in the persister.
    loaded: usize,
    /// Children that ran (or tried to).
    ran: usize,
}

impl Children {
    /// How many did not finish.
    fn failures(&self) -> usize {
        self.results
            .iter()
            .filter(|r| !matches!(r, Some(Ok(_))))
            .count()
    }

    /// The final states of those that finished.
    fn into_states(self) -> Vec<State> {
        self.results
            .into_iter()
            .filter_map(|r| r.and_then(Result::ok))
            .collect()
    }

    /// Every child's outcome, with its app id.
    fn into_outcomes(self, ctx: &ApplicationContext) -> impl Iterator<Item = ChildOutcome> + '_ {
        self.results
            .into_iter()
            .zip(self.keys)
            .enumerate()
            .map(move |(index, (result, key))| ChildOutcome {
                index,
                app_id: child_app_id(ctx.app_id(), ctx.sequence_id(), &key),
                key,
                result: match result {
                    Some(Ok(state)) => Ok(state),
                    Some(Err(error)) => Err(*error),
                    None => Err(Error::Cancelled {
                        action: String::new(),
                    }),
                },
            })
    }
}

/// For each task (by key), whether `persister` may hold its child already. One listing
/// of the step's children replaces a load per child; a persister that cannot list
/// them leaves every child to load. A key given to several tasks names one child (the
/// later tasks find what the first stored), so those children load.
async fn stored_children(
    ctx: &ApplicationContext,
    persister: &dyn Persister,
    keys: &[String],
) -> Result<Vec<Stored>, Error> {
    let Some(listing) = persister.as_child_listing() else {
        return Ok(vec![Stored::Maybe; keys.len()]);
    };
    let listed = listing
        .list_app_ids_with_prefix(
            ctx.partition_key(),
            &child_id_prefix(ctx.app_id(), ctx.sequence_id()),
        )
        .await
        .map_err(|source| Error::Persistence {
            app_id: ctx.app_id().to_owned(),
            source,
        })?;
    let listed: HashSet<String> = listed.into_iter().collect();
    let mut uses: HashMap<&str, usize> = HashMap::with_capacity(keys.len());
    for key in keys {
        *uses.entry(key.as_str()).or_default() += 1;
    }
    Ok(keys
        .iter()
        .map(|key| {
            let repeated = uses.get(key.as_str()).is_some_and(|&n| n > 1);
            if repeated || listed.contains(&child_app_id(ctx.app_id(), ctx.sequence_id(), key)) {
                Stored::Maybe
            } else {
                Stored::No
            }
        })
        .collect())
}

#[async_trait]
impl Action for MapAction {
    fn declaration(&self) -> &Declaration {
        &self.declaration
    }

    async fn run_and_update(
        &self,
        state: State,
        inputs: &Inputs,
        ctx: &ApplicationContext,
    ) -> Result<(ActionResult, State), ActionError> {
        let tasks = (self.tasks)(&state, inputs)?;
        let total = tasks.len();
        let children = ctx.without_slot(self.run_children(ctx, tasks)).await?;
        let (loaded, ran) = (children.loaded, children.ran);
        let failures = children.failures();
        let new_state = match self.policy {
            FailurePolicy::Settled => match &self.reducer {
                Reducer::Outcomes(reduce) => reduce(state, children.into_outcomes(ctx).collect())?,
                Reducer::States(reduce) => reduce(state, children.into_states())?,
                Reducer::Unchanged => state,
            },
            FailurePolicy::FailFast | FailurePolicy::WaitAll if failures > 0 => {
                let first_only = self.policy == FailurePolicy::FailFast;
                return Err(self.failed(ctx, children, first_only));
            }
            FailurePolicy::FirstSuccess if failures == total && total > 0 => {
                return Err(self.failed(ctx, children, false));
            }
            _ => match &self.reducer {
                Reducer::Outcomes(reduce) => reduce(state, children.into_outcomes(ctx).collect())?,
                Reducer::States(reduce) => reduce(state, children.into_states())?,
                Reducer::Unchanged => state,
            },
        };
        let result = crate::actions::result_object(&serde_json::json!({
            "children": total,
            "failed": failures,
            "loaded": loaded,
            "ran": ran,
        }))?;
        Ok((result, new_state))
    }
}

/// The three shapes of Burr's map actions, as constructors of [`MapAction`].
impl MapAction {
    /// One sub-graph over many states (Burr's `MapStates`): run `subgraph` on each state
    /// `states` builds from the parent state (the keys the action reads); children are
    /// keyed by index.
    pub fn states<F>(name: impl Into<String>, subgraph: SubGraph, states: F) -> MapAction
    where
        F: Fn(&State, &Inputs) -> Result<Vec<State>, ActionError> + Send + Sync + 'static,
    {
        MapAction::tasks(name, move |state: &State, inputs: &Inputs| {
            Ok::<_, ActionError>(
                states(state, inputs)?
                    .into_iter()
                    .map(|s| Task::new(subgraph.clone(), s))
                    .collect(),
            )
        })
    }

    /// Like [`MapAction::states`], with each child keyed by the key `states` gives it (a
    /// discussion id...), so a resumed parent finds each child by key, not position.
    pub fn keyed_states<F>(name: impl Into<String>, subgraph: SubGraph, states: F) -> MapAction
    where
        F: Fn(&State, &Inputs) -> Result<Vec<(String, State)>, ActionError> + Send + Sync + 'static,
    {
        MapAction::tasks(name, move |state: &State, inputs: &Inputs| {
            Ok::<_, ActionError>(
                states(state, inputs)?
                    .into_iter()
                    .map(|(key, s)| Task::new(subgraph.clone(), s).with_key(key))
                    .collect(),
            )
        })
    }

    /// Many sub-graphs over one state (Burr's `MapActions`): run each of `subgraphs` on the
    /// state `state` builds from the parent state; a child per sub-graph, keyed by its
    /// entrypoint's name.
    pub fn actions<F>(name: impl Into<String>, subgraphs: Vec<SubGraph>, state: F) -> MapAction
    where
        F: Fn(&State, &Inputs) -> Result<State, ActionError> + Send + Sync + 'static,
    {
        MapAction::tasks(name, move |parent: &State, inputs: &Inputs| {
            let child_state = state(parent, inputs)?;
            Ok::<_, ActionError>(
                subgraphs
                    .iter()
                    .map(|g| {
                        Task::new(g.clone(), child_state.clone()).with_key(g.entrypoint.to_string())
                    })
                    .collect(),
            )
        })
    }

    /// Every sub-graph over every state (Burr's `MapActionsAndStates`): a child per
    /// (sub-graph, state), keyed `<entrypoint>.<state index>`, in sub-graph-major order.
    pub fn actions_and_states<F>(
        name: impl Into<String>,
        subgraphs: Vec<SubGraph>,
        states: F,
    ) -> MapAction
    where
        F: Fn(&State, &Inputs) -> Result<Vec<State>, ActionError> + Send + Sync + 'static,
    {
        MapAction::tasks(name, move |parent: &State, inputs: &Inputs| {
            let states = states(parent, inputs)?;
            let mut tasks = Vec::with_capacity(subgraphs.len() * states.len());
            for g in &subgraphs {
                for (i, s) in states.iter().enumerate() {
                    tasks.push(
                        Task::new(g.clone(), s.clone()).with_key(format!("{}.{i}", g.entrypoint)),
                    );
                }
            }
            Ok::<_, ActionError>(tasks)
        })
    }
}
