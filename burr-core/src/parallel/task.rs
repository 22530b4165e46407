//! [`Task`] and [`SubGraph`]: what one child application runs.

use std::sync::{Arc, OnceLock};

use crate::actions::{ActionName, Inputs};
use crate::application::{warn_unreachable, HaltSet};
use crate::error::Result;
use crate::graph::{Graph, GraphBuilder, GraphError, IntoAction};
use crate::persistence::CodeVersion;
use crate::state::State;

/// What a child application runs: one action, or a graph from an entrypoint until one of
/// its `halt_after` actions has run.
#[derive(Clone, Debug)]
pub struct SubGraph {
    pub(crate) graph: Arc<Graph>,
    pub(crate) entrypoint: Arc<str>,
    pub(crate) halt_after: Arc<[String]>,
    /// The children's code (description and fingerprint of the graph from the
    /// entrypoint), computed once for all the children that run this sub-graph.
    code: Arc<OnceLock<Arc<CodeVersion>>>,
    /// `halt_after` resolved against the graph, once for all the children.
    halts: Arc<OnceLock<HaltSet>>,
}

impl SubGraph {
    /// The code a child running this sub-graph runs (no application version): hashed,
    /// and checked for actions it cannot reach, once, not once per child.
    pub(crate) fn code(&self) -> Arc<CodeVersion> {
        Arc::clone(self.code.get_or_init(|| {
            if let Some(entrypoint) = self.graph.index_of(&self.entrypoint) {
                warn_unreachable(&self.graph, entrypoint);
            }
            let description = self.graph.describe(&self.entrypoint);
            Arc::new(CodeVersion {
                version: None,
                fingerprint: description.fingerprint(),
                graph: Some(description),
            })
        }))
    }

    /// Where a child running this sub-graph halts: `halt_after` resolved against the
    /// graph, once, not once per child.
    pub(crate) fn halts(&self) -> Result<&HaltSet> {
        if let Some(halts) = self.halts.get() {
            return Ok(halts);
        }
        let halts = HaltSet::new(&self.graph, &[], &self.halt_after)?;
        Ok(self.halts.get_or_init(|| halts))
    }

    /// One action: the child runs it once.
    pub fn action(action: impl IntoAction) -> SubGraph {
        let action = action.into_action();
        let name = action.name().to_owned();
        SubGraph {
            graph: Arc::new(Graph::single(action)),
            halt_after: Arc::from([name.clone()]),
            entrypoint: Arc::from(name),
            code: Arc::default(),
            halts: Arc::default(),
        }
    }

    /// A graph: the child starts at `entrypoint` and stops after one of `halt_after` (or
    /// when no transition applies).
    pub fn graph<I, S>(
        graph: impl Into<Arc<Graph>>,
        entrypoint: impl ActionName,
        halt_after: I,
    ) -> Result<SubGraph, GraphError>
    where
        I: IntoIterator<Item = S>,
        S: ActionName,
    {
        let graph = graph.into();
        let entrypoint = entrypoint.into_name();
        let entrypoint = entrypoint.as_str();
        let halt_after: Vec<String> = halt_after.into_iter().map(ActionName::into_name).collect();
        let mut problems = Vec::new();
        if graph.index_of(entrypoint).is_none() {
            problems.push(crate::graph::GraphProblem::UnknownEntrypoint {
                name: entrypoint.to_owned(),
                did_you_mean: graph.nearest_name(entrypoint),
            });
        }
        for name in &halt_after {
            if graph.index_of(name).is_none() {
                problems.push(crate::graph::GraphProblem::UnknownTarget {
                    name: name.clone(),
                    did_you_mean: graph.nearest_name(name),
                });
            }
        }
        if !problems.is_empty() {
            return Err(GraphError { problems });
        }
        Ok(SubGraph {
            graph,
            entrypoint: Arc::from(entrypoint),
            halt_after: Arc::from(halt_after),
            code: Arc::default(),
            halts: Arc::default(),
        })
    }

    /// Build the graph from a [`GraphBuilder`] and wrap it.
    pub fn from_builder<I, S>(
        builder: GraphBuilder,
        entrypoint: impl ActionName,
        halt_after: I,
    ) -> Result<SubGraph, GraphError>
    where
        I: IntoIterator<Item = S>,
        S: ActionName,
    {
        SubGraph::graph(builder.build()?, entrypoint, halt_after)
    }

    /// The graph.
    pub fn graph_ref(&self) -> &Graph {
        &self.graph
    }

    /// The first action.
    pub fn entrypoint(&self) -> &str {
        &self.entrypoint
    }
}

/// One child application to run: a sub-graph, its starting state, its inputs, and a key
/// that names it among its siblings (default: its index).
///
/// Give stable keys (a discussion id, a file name) when the list of tasks may change
/// between a crash and the resume: the key, not the position, then finds the child's
/// checkpoints.
#[derive(Clone, Debug)]
pub struct Task {
    /// The sibling-unique key; `None` uses the task's index.
    pub key: Option<String>,
    /// What the child runs.
    pub subgraph: SubGraph,
    /// The child's starting state: give it only what it needs, not the parent's whole
    /// state.
    pub state: State,
    /// Inputs given to every step of the child.
    pub inputs: Inputs,
}

impl Task {
    /// A task running `subgraph` on `state`, with no inputs and no key.
    pub fn new(subgraph: SubGraph, state: State) -> Task {
        Task {
            key: None,
            subgraph,
            state,
            inputs: Inputs::new(),
        }
    }

    /// With a key.
    pub fn with_key(mut self, key: impl Into<String>) -> Task {
        self.key = Some(key.into());
        self
    }

    /// With inputs.
    pub fn with_inputs(mut self, inputs: Inputs) -> Task {
        self.inputs = inputs;
        self
    }
}
