//! The graph of an application: its actions and the transitions between them.
//!
//! Build one with [`GraphBuilder`] to reuse it across applications
//! ([`ApplicationBuilder::with_graph`](crate::ApplicationBuilder::with_graph)), or let the
//! application builder build it. Validation reports every problem at once.

mod changes;
mod error;
mod export;
mod fingerprint;
mod suggest;
mod transition;

use std::collections::HashMap;
use std::sync::Arc;

use crate::actions::Action;
use crate::actions::ErrorKind;
use crate::condition::ConditionError;
use crate::state::State;

pub use changes::GraphChange;
pub use error::{GraphError, GraphProblem};
pub use fingerprint::{ActionDescription, GraphDescription, TransitionDescription};
pub use transition::{Sources, Transition, TransitionSpec};

/// A validated graph: actions by name and transitions in declaration order.
#[derive(Clone)]
pub struct Graph {
    actions: Vec<Arc<dyn Action>>,
    names: Arc<[Arc<str>]>,
    /// Action indexes by name, with foldhash's hasher: std's SipHash cost more than the
    /// lookups it serves (an entrypoint, halt lists, a resumed position; per child of a
    /// map step).
    by_name: HashMap<String, usize, foldhash::fast::RandomState>,
    transitions: Vec<Transition>,
    /// Per action, the indexes of its outgoing transitions in declaration order.
    outgoing: Vec<Vec<usize>>,
    /// Per action, its declared state keys as shared strings.
    keys: Vec<ActionKeys>,
}

/// An action's declared reads and writes as shared strings, made once per graph through
/// the state's key cache: a state made on the same thread holds the very same strings, so
/// a step finds its keys by pointer rather than by comparing text.
#[derive(Clone, Debug, Default)]
pub(crate) struct ActionKeys {
    /// [`Action::reads`].
    pub(crate) reads: Box<[Arc<str>]>,
    /// [`Action::writes`].
    pub(crate) writes: Box<[Arc<str>]>,
}

impl ActionKeys {
    fn of(action: &dyn Action) -> ActionKeys {
        let shared = |keys: &[String]| keys.iter().map(|k| crate::state::key(k)).collect();
        ActionKeys {
            reads: shared(action.reads()),
            writes: shared(action.writes()),
        }
    }
}

/// Collects actions and transitions, then validates them into a [`Graph`].
#[derive(Clone, Default)]
pub struct GraphBuilder {
    actions: Vec<Arc<dyn Action>>,
    transitions: Vec<TransitionSpec>,
}

impl GraphBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add actions; each is known by its [`Declaration::name`](crate::actions::Declaration::name).
    pub fn with_actions<I, A>(mut self, actions: I) -> Self
    where
        I: IntoIterator<Item = A>,
        A: IntoAction,
    {
        self.actions
            .extend(actions.into_iter().map(IntoAction::into_action));
        self
    }

    /// Add transitions: `(from, to)` (always taken) or `(from, to, condition)`. `from` may
    /// be one name or several (`["a", "b"]`).
    pub fn with_transitions<I, T>(mut self, transitions: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<TransitionSpec>,
    {
        self.transitions
            .extend(transitions.into_iter().map(Into::into));
        self
    }

    /// Validate and build. Every problem is reported, not just the first.
    pub fn build(self) -> Result<Graph, GraphError> {
        let mut problems = Vec::new();
        if self.actions.is_empty() {
            problems.push(GraphProblem::NoActions);
        }
        let mut by_name = HashMap::with_capacity_and_hasher(self.actions.len(), Default::default());
        for (i, action) in self.actions.iter().enumerate() {
            let name = action.name();
            if name.is_empty() {
                problems.push(GraphProblem::EmptyActionName { index: i });
            }
            if by_name.insert(name.to_owned(), i).is_some() {
                problems.push(GraphProblem::DuplicateAction {
                    name: name.to_owned(),
                });
            }
        }
        let mut transitions = Vec::new();
        let mut outgoing = vec![Vec::new(); self.actions.len()];
        let mut has_default = vec![false; self.actions.len()];
        for spec in self.transitions {
            if let Some(error) = spec.condition.syntax_error() {
                problems.push(GraphProblem::InvalidCondition {
                    from: spec.from.names().join(", "),
                    to: spec.to.clone(),
                    error: error.clone(),
                });
            }
            let to = by_name.get(&spec.to).copied();
            for (n, from_name) in spec.from.names().iter().enumerate() {
                let from = by_name.get(from_name).copied();
                if from.is_none() {
                    problems.push(GraphProblem::UnknownSource {
                        name: from_name.clone(),
                        did_you_mean: suggest::nearest(
                            from_name,
                            by_name.keys().map(|k| k.as_str()),
                        ),
                    });
                }
                if to.is_none() && n == 0 {
                    problems.push(GraphProblem::UnknownTarget {
                        name: spec.to.clone(),
                        did_you_mean: suggest::nearest(
                            &spec.to,
                            by_name.keys().map(|k| k.as_str()),
                        ),
                    });
                }
                let (Some(from), Some(to)) = (from, to) else {
                    continue;
                };
                if spec.condition.is_default() {
                    if has_default[from] {
                        problems.push(GraphProblem::RedundantDefault {
                            from: from_name.clone(),
                            to: spec.to.clone(),
                        });
                    }
                    has_default[from] = true;
                }
                outgoing[from].push(transitions.len());
                transitions.push(Transition {
                    from,
                    to,
                    condition: spec.condition.clone(),
                });
            }
        }
        if !problems.is_empty() {
            return Err(GraphError { problems });
        }
        Ok(Graph {
            names: self.actions.iter().map(|a| Arc::from(a.name())).collect(),
            keys: self.actions.iter().map(|a| ActionKeys::of(&**a)).collect(),
            actions: self.actions,
            by_name,
            transitions,
            outgoing,
        })
    }
}

/// Anything usable as an action in `with_actions`: an action value or an `Arc<dyn Action>`.
pub trait IntoAction {
    /// The shared action.
    fn into_action(self) -> Arc<dyn Action>;
}

impl<A: Action> IntoAction for A {
    fn into_action(self) -> Arc<dyn Action> {
        Arc::new(self)
    }
}

impl IntoAction for Arc<dyn Action> {
    fn into_action(self) -> Arc<dyn Action> {
        self
    }
}

impl Graph {
    /// A builder.
    pub fn builder() -> GraphBuilder {
        GraphBuilder::new()
    }

    /// The actions, in the order they were added.
    pub fn actions(&self) -> &[Arc<dyn Action>] {
        &self.actions
    }

    /// The transitions, in declaration order (a transition from several actions appears
    /// once per source).
    pub fn transitions(&self) -> &[Transition] {
        &self.transitions
    }

    /// A graph of one action and no transitions.
    pub(crate) fn single(action: Arc<dyn Action>) -> Graph {
        let name = action.name().to_owned();
        Graph {
            names: Arc::from(vec![Arc::from(name.as_str())]),
            by_name: HashMap::from_iter([(name, 0)]),
            keys: vec![ActionKeys::of(&*action)],
            actions: vec![action],
            transitions: Vec::new(),
            outgoing: vec![Vec::new()],
        }
    }

    /// The action names, shared.
    pub(crate) fn names(&self) -> Arc<[Arc<str>]> {
        Arc::clone(&self.names)
    }

    /// The action at `index`.
    pub fn action(&self, index: usize) -> &Arc<dyn Action> {
        &self.actions[index]
    }

    /// The declared keys of the action at `index`, shared with the states.
    pub(crate) fn keys(&self, index: usize) -> &ActionKeys {
        &self.keys[index]
    }

    /// The index of the action named `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The action named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Action>> {
        self.index_of(name).map(|i| &self.actions[i])
    }

    /// The action to run after the action at `prior`: the target of its first outgoing
    /// transition, in declaration order, whose condition holds. `None` when none holds
    /// (the application is finished).
    pub fn next_after(&self, prior: usize, state: &State) -> Result<Option<usize>, ConditionError> {
        for &t in &self.outgoing[prior] {
            let transition = &self.transitions[t];
            if transition.condition.evaluate(state)? {
                return Ok(Some(transition.to));
            }
        }
        Ok(None)
    }

    /// The target of the first error transition out of `failed` that takes an error of
    /// `kind` (see [`on_error`](crate::condition::on_error)).
    pub fn error_target(&self, failed: usize, kind: ErrorKind) -> Option<usize> {
        self.outgoing[failed].iter().find_map(|&t| {
            let transition = &self.transitions[t];
            match transition.condition.on_error_of()? {
                Some(only) if only != kind => None,
                _ => Some(transition.to),
            }
        })
    }

    /// Actions that cannot be reached from `entrypoint`.
    pub fn unreachable_from(&self, entrypoint: usize) -> Vec<&str> {
        let mut seen = vec![false; self.actions.len()];
        let mut stack = vec![entrypoint];
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            stack.extend(self.outgoing[i].iter().map(|&t| self.transitions[t].to));
        }
        seen.iter()
            .enumerate()
            .filter(|(_, s)| !**s)
            .map(|(i, _)| self.actions[i].name())
            .collect()
    }
}

impl std::fmt::Debug for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Graph")
            .field(
                "actions",
                &self.actions.iter().map(|a| a.name()).collect::<Vec<_>>(),
            )
            .field("transitions", &self.transitions)
            .finish()
    }
}

#[cfg(test)]
mod tests;

impl Graph {
    /// The action whose name is closest to `name`, when `name` looks like a typo of it.
    pub(crate) fn nearest_name(&self, name: &str) -> Option<String> {
        suggest::nearest(name, self.actions().iter().map(|a| a.name()))
    }
}
