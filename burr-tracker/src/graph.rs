//! [`GraphRecord`]: an application's graph as the tracker stores it (actions with their
//! reads, writes and inputs; transitions with their conditions' names), and its Mermaid
//! and DOT renderings.

use std::fmt::Write;

use burr_core::graph::Graph;
use serde::{Deserialize, Serialize};

/// An action of a recorded graph.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionRecord {
    /// Its name.
    pub name: String,
    /// The state keys it reads.
    pub reads: Vec<String>,
    /// The state keys it writes.
    pub writes: Vec<String>,
    /// Its required inputs.
    pub inputs: Vec<String>,
    /// Its optional inputs.
    #[serde(default)]
    pub optional_inputs: Vec<String>,
    /// Its tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Whether it streams.
    #[serde(default)]
    pub streaming: bool,
}

/// A transition of a recorded graph.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransitionRecord {
    /// The source action.
    pub from: String,
    /// The target action.
    pub to: String,
    /// The condition's name (`default` for the default condition).
    pub condition: String,
}

/// An application's graph, as recorded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphRecord {
    /// The action the application starts at (`None` when not recorded: a graph recorded
    /// by an older burr-tracker, or an application whose creation was not seen).
    #[serde(default)]
    pub entrypoint: Option<String>,
    /// The actions, in the order they were added.
    pub actions: Vec<ActionRecord>,
    /// The transitions, in declaration order.
    pub transitions: Vec<TransitionRecord>,
}

impl GraphRecord {
    /// The record of `graph`, without an entrypoint (see [`GraphRecord::with_entrypoint`]).
    pub fn of(graph: &Graph) -> GraphRecord {
        let names = |keys: &[String]| keys.to_vec();
        let actions = graph
            .actions()
            .iter()
            .map(|action| ActionRecord {
                name: action.name().to_owned(),
                reads: names(action.reads()),
                writes: names(action.writes()),
                inputs: names(action.inputs()),
                optional_inputs: names(action.optional_inputs()),
                tags: names(action.tags()),
                streaming: action.streaming(),
            })
            .collect();
        let transitions = graph
            .transitions()
            .iter()
            .map(|t| TransitionRecord {
                from: graph.action(t.from).name().to_owned(),
                to: graph.action(t.to).name().to_owned(),
                condition: t.condition.name().to_owned(),
            })
            .collect();
        GraphRecord {
            entrypoint: None,
            actions,
            transitions,
        }
    }

    /// The record with `entrypoint` as the action the application starts at.
    pub fn with_entrypoint(mut self, entrypoint: impl Into<String>) -> GraphRecord {
        self.entrypoint = Some(entrypoint.into());
        self
    }

    /// The graph as a Mermaid flowchart (the same shape as burr-core's
    /// [`Graph::to_mermaid`]).
    pub fn to_mermaid(&self) -> String {
        let mut out = String::from("flowchart TD\n");
        for (i, action) in self.actions.iter().enumerate() {
            let _ = writeln!(out, "  a{i}[\"{}\"]", action.name.replace('"', "#quot;"));
        }
        for t in &self.transitions {
            let (Some(from), Some(to)) = (self.index_of(&t.from), self.index_of(&t.to)) else {
                continue;
            };
            if t.condition == "default" {
                let _ = writeln!(out, "  a{from} --> a{to}");
            } else {
                let label = t.condition.replace('"', "#quot;");
                let _ = writeln!(out, "  a{from} -->|\"{label}\"| a{to}");
            }
        }
        out
    }

    /// The graph in Graphviz DOT (the same shape as burr-core's [`Graph::to_dot`]).
    pub fn to_dot(&self) -> String {
        let escape = |text: &str| text.replace('\\', "\\\\").replace('"', "\\\"");
        let mut out = String::from("digraph burr {\n  node [shape=box, style=rounded];\n");
        for action in &self.actions {
            let _ = writeln!(out, "  \"{}\";", escape(&action.name));
        }
        for t in &self.transitions {
            let (from, to) = (escape(&t.from), escape(&t.to));
            if t.condition == "default" {
                let _ = writeln!(out, "  \"{from}\" -> \"{to}\";");
            } else {
                let label = escape(&t.condition);
                let _ = writeln!(out, "  \"{from}\" -> \"{to}\" [label=\"{label}\"];");
            }
        }
        out.push_str("}\n");
        out
    }

    fn index_of(&self, name: &str) -> Option<usize> {
        self.actions.iter().position(|a| a.name == name)
    }
}

#[cfg(test)]
mod tests {
    use burr_core::actions::action_sync;
    use burr_core::graph::GraphBuilder;
    use burr_core::{expr, State};

    use super::*;

    fn graph() -> Graph {
        let count = action_sync("count", |s: State, _, _| s.increment("n", 1))
            .reads(["n"])
            .writes(["n"]);
        let done = action_sync("done", |s: State, _, _| s).reads(["n"]);
        GraphBuilder::new()
            .with_actions([count, done])
            .with_transitions([("count", "count", expr("n < 3"))])
            .with_transitions([("count", "done")])
            .build()
            .expect("a valid graph")
    }

    #[test]
    fn renderings_match_burr_core_exports() {
        let graph = graph();
        let record = GraphRecord::of(&graph);
        assert_eq!(record.to_mermaid(), graph.to_mermaid());
        assert_eq!(record.to_dot(), graph.to_dot());
    }

    #[test]
    fn the_record_keeps_reads_writes_and_conditions() {
        let record = GraphRecord::of(&graph()).with_entrypoint("count");
        assert_eq!(record.entrypoint.as_deref(), Some("count"));
        assert_eq!(record.actions[0].reads, ["n"]);
        assert_eq!(record.actions[0].writes, ["n"]);
        assert_eq!(record.transitions[0].condition, "n < 3");
        assert_eq!(record.transitions[1].condition, "default");
        let json = serde_json::to_string(&record).expect("serializes");
        assert_eq!(
            serde_json::from_str::<GraphRecord>(&json).expect("parses"),
            record
        );
    }

    #[test]
    fn a_graph_recorded_without_an_entrypoint_still_reads() {
        let old = r#"{"actions": [], "transitions": []}"#;
        let record: GraphRecord = serde_json::from_str(old).expect("parses");
        assert_eq!(record.entrypoint, None);
    }
}
