//! Map actions: [`MapAction`] and the Burr-named constructors [`MapStates`],
//! [`MapActions`] and [`MapActionsAndStates`].

use std::borrow::Cow;
use std::collections::{HashMap, HashSet, VecDeque};
use std::pin::Pin;
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
use crate::hooks::{LifecycleHook, MapStart};
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
type StatesFn = dyn Fn(&State, &Inputs) -> Result<Vec<State>, ActionError> + Send + Sync;

/// What a map action's step makes its children from.
#[derive(Clone)]
enum Source {
    /// Tasks, as the user builds them.
    Tasks(Arc<TasksFn>),
    /// States that all run one sub-graph, keyed by index: each becomes a [`Task`] only
    /// when its child starts, so a waiting child costs a `State`, not a whole `Task`.
    States(SubGraph, Arc<StatesFn>),
}
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
    source: Source,
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
        MapAction::from_source(name, Source::Tasks(Arc::new(tasks)))
    }

    fn from_source(name: impl Into<String>, source: Source) -> MapAction {
        MapAction {
            declaration: Declaration::new(name).single_step(),
            source,
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
        mut tasks: TaskList,
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
        let started = MapStart {
            ids: ctx.identifiers(),
            sequence_id: ctx.sequence_id(),
            action: ctx.action_name(),
            tasks: total,
        };
        for hook in ctx.hooks() {
            hook.map_start(&started);
        }
        let keys = tasks.keys();
        let stored = match &settings.persister {
            Some(persister) => Some(stored_children(ctx, &**persister, &keys, total).await?),
            None => None,
        };
        // Children start a window at a time (a few per executor slot, at least 256: their
        // checkpoints share a commit, and a durable commit to a database server takes
        // milliseconds, during which the window's other children keep arriving), so that
        // a fan-out of 100,000 tasks holds a few hundred child applications in memory
        // (a few kilobytes each), not 100,000.
        let window = ctx
            .executor
            .as_ref()
            .map_or(256, |e| e.concurrency().saturating_mul(4).clamp(256, 1024));
        let mut running = FuturesUnordered::new();
        // The boxes of finished children's futures, each reused for a later child: a
        // child's future is a few kilobytes, and allocating one per child cost more than
        // the rest of a small child's work together.
        let mut spare = Vec::new();
        let mut children = Children {
            // An empty state allocates nothing: a slot per child costs its 24 bytes.
            states: (0..total).map(|_| State::new()).collect(),
            finished: vec![false; total],
            errors: Vec::new(),
            keys,
            loaded: 0,
            ran: 0,
        };
        let mut stopped = false;
        let mut started = 0;
        let mut next = 0;
        loop {
            while !stopped && running.len() < window {
                let Some(task) = tasks.next() else {
                    break;
                };
                let index = next;
                next += 1;
                let run = run_child(
                    ctx.clone(),
                    index,
                    children.keys.get(index).into_owned(),
                    task,
                    Arc::clone(&settings),
                    stored.as_ref().map_or(Stored::Maybe, |s| s[index]),
                    cancelled.clone(),
                );
                // Boxed: the child's future is large, and moving a pointer is cheap.
                let mut child = match spare.pop() {
                    Some(mut boxed) => {
                        Pin::set(&mut boxed, run);
                        boxed
                    }
                    None => Box::pin(run),
                };
                running.push(async move {
                    let result = child.as_mut().await;
                    (index, result, child)
                });
                started += 1;
            }
            let Some((index, result, finished)) = running.next().await else {
                break;
            };
            spare.push(finished);
            let stop = match (&result, self.policy) {
                (Err(Error::Cancelled { .. }), _) => false,
                (Err(_), FailurePolicy::FailFast) | (Ok(_), FailurePolicy::FirstSuccess) => true,
                _ => false,
            };
            if stop {
                stopped = true;
                cancel.send_replace(true);
            }
            match result {
                Ok(state) => {
                    children.states[index] = state;
                    children.finished[index] = true;
                }
                Err(error) => children.errors.push((index, error)),
            }
        }
        children.errors.sort_by_key(|(index, _)| *index);
        children.loaded = settings.loaded.load(Ordering::Relaxed);
        // Children started and not found finished: those that ran (or tried to).
        children.ran = started - children.loaded;
        Ok(children)
    }

    fn failed(
        &self,
        ctx: &ApplicationContext,
        children: Children,
        first_only: bool,
    ) -> ActionError {
        let total = children.states.len();
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

/// A step's tasks, handed out one at a time; the list shrinks as children start, so a
/// long fan-out does not keep every task until the last child ends.
enum TaskList {
    /// Tasks as built.
    Tasks(VecDeque<Task>),
    /// States that all run this sub-graph, keyed by index.
    States(SubGraph, VecDeque<State>),
}

impl TaskList {
    /// How many tasks are left.
    fn len(&self) -> usize {
        match self {
            TaskList::Tasks(tasks) => tasks.len(),
            TaskList::States(_, states) => states.len(),
        }
    }

    /// The keys the tasks were given (the others are keyed by index).
    fn keys(&self) -> Keys {
        match self {
            TaskList::Tasks(tasks) => Keys(
                tasks
                    .iter()
                    .enumerate()
                    .filter_map(|(index, task)| task.key.clone().map(|key| (index, key)))
                    .collect(),
            ),
            TaskList::States(..) => Keys(Vec::new()),
        }
    }

    /// The next task, if any.
    fn next(&mut self) -> Option<Task> {
        fn pop<T>(list: &mut VecDeque<T>) -> Option<T> {
            let item = list.pop_front();
            // Give back what the started tasks held (a copy of the rest, a quarter at
            // most, so at most a third of the tasks are moved in all).
            if list.capacity() > 1024 && list.len() < list.capacity() / 4 {
                list.shrink_to_fit();
            }
            item
        }
        match self {
            TaskList::Tasks(tasks) => pop(tasks),
            TaskList::States(subgraph, states) => {
                pop(states).map(|state| Task::new(subgraph.clone(), state))
            }
        }
    }
}

/// The keys given to a step's tasks, by index, in index order; a task without one is
/// keyed by its index (no string kept per child).
struct Keys(Vec<(usize, String)>);

impl Keys {
    /// The key of task `index`.
    fn get(&self, index: usize) -> Cow<'_, str> {
        match self.0.binary_search_by_key(&index, |(i, _)| *i) {
            Ok(at) => Cow::Borrowed(&self.0[at].1),
            Err(_) => Cow::Owned(index.to_string()),
        }
    }
}

/// How a map step's children ended, in task order.
struct Children {
    /// Each finished child's final state, by index; an empty state for the others.
    states: Vec<State>,
    /// Whether child `index` finished.
    finished: Vec<bool>,
    /// The children that failed, in index order. A child neither finished nor failed
    /// never started (its siblings failed first, or one of them won).
    errors: Vec<(usize, Error)>,
    /// The tasks' keys.
    keys: Keys,
    /// Children found finished in the persister.
    loaded: usize,
    /// Children that ran (or tried to).
    ran: usize,
}

impl Children {
    /// How many did not finish.
    fn failures(&self) -> usize {
        self.finished.iter().filter(|f| !**f).count()
    }

    /// The final states of those that finished, in task order.
    fn into_states(self) -> Vec<State> {
        if self.finished.iter().all(|f| *f) {
            return self.states;
        }
        self.states
            .into_iter()
            .zip(self.finished)
            .filter_map(|(state, finished)| finished.then_some(state))
            .collect()
    }

    /// Every child's outcome, with its app id.
    fn into_outcomes(self, ctx: &ApplicationContext) -> impl Iterator<Item = ChildOutcome> + '_ {
        let Children {
            states,
            finished,
            errors,
            keys,
            ..
        } = self;
        let mut errors = errors.into_iter().peekable();
        states
            .into_iter()
            .zip(finished)
            .enumerate()
            .map(move |(index, (state, finished))| {
                let key = keys.get(index).into_owned();
                let result = if finished {
                    Ok(state)
                } else if let Some((_, error)) = errors.next_if(|(i, _)| *i == index) {
                    Err(error)
                } else {
                    Err(Error::Cancelled {
                        action: String::new(),
                    })
                };
                ChildOutcome {
                    index,
                    app_id: child_app_id(ctx.app_id(), ctx.sequence_id(), &key),
                    key,
                    result,
                }
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
    keys: &Keys,
    total: usize,
) -> Result<Vec<Stored>, Error> {
    let Some(listing) = persister.as_child_listing() else {
        return Ok(vec![Stored::Maybe; total]);
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
    let keys: Vec<Cow<'_, str>> = (0..total).map(|index| keys.get(index)).collect();
    let mut uses: HashMap<&str, usize> = HashMap::with_capacity(keys.len());
    for key in &keys {
        *uses.entry(&**key).or_default() += 1;
    }
    Ok(keys
        .iter()
        .map(|key| {
            let repeated = uses.get(&**key).is_some_and(|&n| n > 1);
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
        let tasks = match &self.source {
            Source::Tasks(tasks) => TaskList::Tasks(tasks(&state, inputs)?.into()),
            Source::States(subgraph, states) => {
                TaskList::States(subgraph.clone(), states(&state, inputs)?.into())
            }
        };
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
        MapAction::from_source(name, Source::States(subgraph, Arc::new(states)))
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
