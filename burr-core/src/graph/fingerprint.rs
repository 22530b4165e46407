//! A graph's description and fingerprint: what an application's code is, as data, so
//! that a checkpoint made under one graph is not resumed under another unnoticed.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Graph;

/// One action as the fingerprint sees it: its name, declared version, and the sorted
/// keys and inputs it declares.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionDescription {
    /// Its name.
    pub name: String,
    /// Its declared version ([`Declaration::version`](crate::actions::Declaration::version)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The state keys it reads, sorted.
    pub reads: Vec<String>,
    /// The state keys it writes, sorted.
    pub writes: Vec<String>,
    /// Its required inputs, sorted.
    pub inputs: Vec<String>,
    /// Its optional inputs, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub optional_inputs: Vec<String>,
}

/// One transition: its source, target and condition (the condition's source text, as
/// [`Condition::name`](crate::condition::Condition::name) gives it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransitionDescription {
    /// The source action.
    pub from: String,
    /// The target action.
    pub to: String,
    /// The condition.
    pub condition: String,
}

/// A graph as data: its actions (sorted by name), its transitions (in declaration order,
/// which decides which is taken), its entrypoint. Serialised as JSON it is what the
/// fingerprint hashes, and what an application record keeps to explain a change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphDescription {
    /// Where a new application starts.
    pub entrypoint: String,
    /// The actions, sorted by name.
    pub actions: Vec<ActionDescription>,
    /// The transitions, in declaration order.
    pub transitions: Vec<TransitionDescription>,
}

fn sorted(names: &[String]) -> Vec<String> {
    let mut names = names.to_vec();
    names.sort_unstable();
    names.dedup();
    names
}

impl Graph {
    /// This graph as data, starting at `entrypoint`.
    pub fn describe(&self, entrypoint: &str) -> GraphDescription {
        let mut actions: Vec<ActionDescription> = self
            .actions
            .iter()
            .map(|action| {
                let declared = action.declaration();
                ActionDescription {
                    name: declared.name.clone(),
                    version: declared.version.clone(),
                    reads: sorted(&declared.reads),
                    writes: sorted(&declared.writes),
                    inputs: sorted(&declared.inputs),
                    optional_inputs: sorted(&declared.optional_inputs),
                }
            })
            .collect();
        actions.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        let transitions = self
            .transitions
            .iter()
            .map(|t| TransitionDescription {
                from: self.actions[t.from].name().to_owned(),
                to: self.actions[t.to].name().to_owned(),
                condition: t.condition.name().to_owned(),
            })
            .collect();
        GraphDescription {
            entrypoint: entrypoint.to_owned(),
            actions,
            transitions,
        }
    }

    /// The fingerprint of this graph starting at `entrypoint`
    /// ([`GraphDescription::fingerprint`]).
    pub fn fingerprint(&self, entrypoint: &str) -> String {
        self.describe(entrypoint).fingerprint()
    }
}

impl GraphDescription {
    /// SHA-256 of the description's JSON, as 64 hex digits: the same for the same graph
    /// in any process or build (it holds no addresses, and no map order).
    pub fn fingerprint(&self) -> String {
        /// The JSON goes straight into the hash, not into a buffer first.
        struct Hashing(Sha256);
        impl std::io::Write for Hashing {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.update(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut hashing = Hashing(Sha256::new());
        // Serialising plain structs of strings into a hash does not fail.
        let _ = serde_json::to_writer(&mut hashing, self);
        let digest: [u8; 32] = hashing.0.finalize().into();
        let mut hex = String::with_capacity(64);
        for byte in digest {
            use std::fmt::Write;
            let _ = write!(hex, "{byte:02x}");
        }
        hex
    }

    /// The action named `name`.
    pub fn action(&self, name: &str) -> Option<&ActionDescription> {
        // Sorted by name when made here; a stored one is searched whatever its order.
        match self.actions.binary_search_by(|a| a.name.as_str().cmp(name)) {
            Ok(i) => Some(&self.actions[i]),
            Err(_) => self.actions.iter().find(|a| a.name == name),
        }
    }

    /// The actions reachable from `from` (itself included), by name.
    pub fn reachable_from(&self, from: &str) -> BTreeSet<String> {
        let mut out: BTreeMap<&str, ()> = BTreeMap::new();
        let mut stack = vec![from];
        while let Some(name) = stack.pop() {
            if out.insert(name, ()).is_some() {
                continue;
            }
            stack.extend(
                self.transitions
                    .iter()
                    .filter(|t| t.from == name)
                    .map(|t| t.to.as_str()),
            );
        }
        out.into_keys().map(str::to_owned).collect()
    }

    /// The part of this graph an application at `position` can still run: the actions
    /// reachable from it and the transitions out of them (entrypoint left out: a resumed
    /// application does not go back to it).
    pub fn future_from(
        &self,
        position: &str,
    ) -> (Vec<&ActionDescription>, Vec<&TransitionDescription>) {
        let reachable = self.reachable_from(position);
        let actions = self
            .actions
            .iter()
            .filter(|a| reachable.contains(&a.name))
            .collect();
        let transitions = self
            .transitions
            .iter()
            .filter(|t| reachable.contains(&t.from))
            .collect();
        (actions, transitions)
    }
}
