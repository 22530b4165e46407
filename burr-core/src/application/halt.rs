//! Halt lists: `halt_before` and `halt_after`, with `@tag:<tag>` naming tagged actions.

use crate::error::{Error, Result};
use crate::graph::Graph;

/// Per action, whether to halt before it and after it.
#[derive(Debug)]
pub(crate) struct HaltSet {
    before: Vec<bool>,
    after: Vec<bool>,
}

impl HaltSet {
    /// Resolve the names; a name that is not an action (or a tag no action has) is an error.
    pub(crate) fn new(graph: &Graph, before: &[String], after: &[String]) -> Result<HaltSet> {
        let mut unknown = Vec::new();
        let before = mark(graph, before, &mut unknown);
        let after = mark(graph, after, &mut unknown);
        if !unknown.is_empty() {
            return Err(Error::UnknownHaltAction { names: unknown });
        }
        Ok(HaltSet { before, after })
    }

    pub(crate) fn before(&self, action: usize) -> bool {
        self.before[action]
    }

    pub(crate) fn after(&self, action: usize) -> bool {
        self.after[action]
    }
}

fn mark(graph: &Graph, names: &[String], unknown: &mut Vec<String>) -> Vec<bool> {
    let mut marks = vec![false; graph.actions().len()];
    for name in names {
        if let Some(tag) = name.strip_prefix("@tag:") {
            let mut found = false;
            for (i, action) in graph.actions().iter().enumerate() {
                if action.tags().iter().any(|t| t == tag) {
                    marks[i] = true;
                    found = true;
                }
            }
            if !found {
                unknown.push(name.clone());
            }
        } else if let Some(i) = graph.index_of(name) {
            marks[i] = true;
        } else {
            unknown.push(name.clone());
        }
    }
    marks
}
