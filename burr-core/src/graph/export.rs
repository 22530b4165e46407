//! Graph export to Graphviz DOT and Mermaid text (no external binary needed).

use std::fmt::Write;

use super::Graph;

impl Graph {
    /// The graph in Graphviz DOT. Transitions are labelled with their condition's name,
    /// except `default`.
    pub fn to_dot(&self) -> String {
        let mut out = String::from("digraph burr {\n  node [shape=box, style=rounded];\n");
        for action in &self.actions {
            let _ = writeln!(out, "  \"{}\";", escape(action.name()));
        }
        for t in &self.transitions {
            let from = escape(self.actions[t.from].name());
            let to = escape(self.actions[t.to].name());
            if t.condition.is_default() {
                let _ = writeln!(out, "  \"{from}\" -> \"{to}\";");
            } else {
                let label = escape(t.condition.name());
                let _ = writeln!(out, "  \"{from}\" -> \"{to}\" [label=\"{label}\"];");
            }
        }
        out.push_str("}\n");
        out
    }

    /// The graph as a Mermaid flowchart.
    pub fn to_mermaid(&self) -> String {
        let mut out = String::from("flowchart TD\n");
        for (i, action) in self.actions.iter().enumerate() {
            let _ = writeln!(out, "  a{i}[\"{}\"]", mermaid_text(action.name()));
        }
        for t in &self.transitions {
            if t.condition.is_default() {
                let _ = writeln!(out, "  a{} --> a{}", t.from, t.to);
            } else {
                let label = mermaid_text(t.condition.name());
                let _ = writeln!(out, "  a{} -->|\"{label}\"| a{}", t.from, t.to);
            }
        }
        out
    }
}

fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

fn mermaid_text(text: &str) -> String {
    text.replace('"', "#quot;")
}
