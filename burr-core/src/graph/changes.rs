//! What changed between two [`GraphDescription`]s ([`GraphChange`]), and whether an
//! application at a given position can go on under the new one.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use super::fingerprint::{ActionDescription, GraphDescription};

/// One difference between the graph an application was checkpointed under and the
/// current one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
#[non_exhaustive]
pub enum GraphChange {
    /// A new action.
    ActionAdded {
        /// Its name.
        name: String,
    },
    /// An action that is gone.
    ActionRemoved {
        /// Its name.
        name: String,
    },
    /// An action gone and a new one declaring the same reads, writes and inputs.
    ActionRenamed {
        /// The old name.
        from: String,
        /// The new name.
        to: String,
    },
    /// An action whose declaration changed.
    ActionChanged {
        /// Its name.
        name: String,
        /// What changed: `reads`, `writes`, `inputs`, `optional_inputs`, `version`, each
        /// with its old and new value.
        what: Vec<String>,
    },
    /// The transitions out of an action changed (added, removed, reordered, or a
    /// condition changed).
    TransitionsChanged {
        /// The source action (its current name).
        from: String,
        /// The transitions before, as `to if condition`.
        before: Vec<String>,
        /// The transitions now.
        after: Vec<String>,
    },
    /// The entrypoint changed.
    EntrypointChanged {
        /// Before.
        from: String,
        /// Now.
        to: String,
    },
    /// The action the application stopped at is not in the current graph.
    PositionMissing {
        /// The stored position.
        position: String,
    },
}

impl fmt::Display for GraphChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GraphChange::ActionAdded { name } => write!(f, "action `{name}` was added"),
            GraphChange::ActionRemoved { name } => write!(f, "action `{name}` was removed"),
            GraphChange::ActionRenamed { from, to } => {
                write!(f, "action `{from}` was renamed to `{to}`")
            }
            GraphChange::ActionChanged { name, what } => {
                write!(f, "action `{name}` changed its {}", what.join(", "))
            }
            GraphChange::TransitionsChanged {
                from,
                before,
                after,
            } => write!(
                f,
                "the transitions out of `{from}` changed from [{}] to [{}]",
                before.join("; "),
                after.join("; ")
            ),
            GraphChange::EntrypointChanged { from, to } => {
                write!(f, "the entrypoint changed from `{from}` to `{to}`")
            }
            GraphChange::PositionMissing { position } => write!(
                f,
                "the application stopped at action `{position}`, which the current graph does not have"
            ),
        }
    }
}

fn same_interface(a: &ActionDescription, b: &ActionDescription) -> bool {
    a.reads == b.reads
        && a.writes == b.writes
        && a.inputs == b.inputs
        && a.optional_inputs == b.optional_inputs
}

fn list(names: &[String]) -> String {
    format!("[{}]", names.join(", "))
}

impl GraphDescription {
    /// What changed from `self` (the stored graph) to `now`, for an application
    /// stopped at `position` (`None`: not started). Empty when they are the same.
    pub fn changes_to(&self, now: &GraphDescription, position: Option<&str>) -> Vec<GraphChange> {
        let mut changes = Vec::new();
        let before: BTreeSet<&str> = self.actions.iter().map(|a| a.name.as_str()).collect();
        let after: BTreeSet<&str> = now.actions.iter().map(|a| a.name.as_str()).collect();
        let mut removed: Vec<&str> = before.difference(&after).copied().collect();
        let mut added: Vec<&str> = after.difference(&before).copied().collect();
        // A removed action and an added one with the same interface: a rename.
        let mut renamed: BTreeMap<&str, &str> = BTreeMap::new();
        removed.retain(|old| {
            let Some(old_action) = self.action(old) else {
                return true;
            };
            let partner = added.iter().position(|new| {
                now.action(new)
                    .is_some_and(|n| same_interface(old_action, n))
            });
            match partner {
                Some(at) => {
                    renamed.insert(old, added.remove(at));
                    false
                }
                None => true,
            }
        });
        for (from, to) in &renamed {
            changes.push(GraphChange::ActionRenamed {
                from: (*from).to_owned(),
                to: (*to).to_owned(),
            });
        }
        changes.extend(removed.iter().map(|name| GraphChange::ActionRemoved {
            name: (*name).to_owned(),
        }));
        changes.extend(added.iter().map(|name| GraphChange::ActionAdded {
            name: (*name).to_owned(),
        }));
        for old in &self.actions {
            let Some(new) = now.action(renamed.get(old.name.as_str()).unwrap_or(&&*old.name))
            else {
                continue;
            };
            let mut what = Vec::new();
            let mut compare = |field: &str, a: &[String], b: &[String]| {
                if a != b {
                    what.push(format!("{field} from {} to {}", list(a), list(b)));
                }
            };
            compare("reads", &old.reads, &new.reads);
            compare("writes", &old.writes, &new.writes);
            compare("inputs", &old.inputs, &new.inputs);
            compare(
                "optional inputs",
                &old.optional_inputs,
                &new.optional_inputs,
            );
            if old.version != new.version {
                let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".to_owned());
                what.push(format!(
                    "version from {} to {}",
                    show(&old.version),
                    show(&new.version)
                ));
            }
            if !what.is_empty() {
                changes.push(GraphChange::ActionChanged {
                    name: new.name.clone(),
                    what,
                });
            }
        }
        // Transitions per source, old names mapped to new ones (a rename alone is not a
        // transition change).
        let rename = |name: &str| renamed.get(name).copied().unwrap_or(name).to_owned();
        let mut outgoing: BTreeMap<String, (Vec<String>, Vec<String>)> = BTreeMap::new();
        for t in &self.transitions {
            let text = format!("{} if {}", rename(&t.to), t.condition);
            outgoing.entry(rename(&t.from)).or_default().0.push(text);
        }
        for t in &now.transitions {
            let text = format!("{} if {}", t.to, t.condition);
            outgoing.entry(t.from.clone()).or_default().1.push(text);
        }
        for (from, (before, after)) in outgoing {
            if before != after {
                changes.push(GraphChange::TransitionsChanged {
                    from,
                    before,
                    after,
                });
            }
        }
        if rename(&self.entrypoint) != now.entrypoint {
            changes.push(GraphChange::EntrypointChanged {
                from: self.entrypoint.clone(),
                to: now.entrypoint.clone(),
            });
        }
        if let Some(position) = position {
            if now.action(position).is_none() {
                changes.push(GraphChange::PositionMissing {
                    position: position.to_owned(),
                });
            }
        }
        changes
    }

    /// Whether an application stopped at `position` under `self` can go on under `now`
    /// unchanged: the position's action is in both, and everything it can still reach —
    /// the actions and the transitions out of them — is the same. So a new action not
    /// reachable from the position, or a change to a part of the graph already left
    /// behind, is compatible.
    pub fn compatible_at(&self, now: &GraphDescription, position: &str) -> bool {
        self.action(position).is_some()
            && now.action(position).is_some()
            && self.future_from(position) == now.future_from(position)
    }
}
