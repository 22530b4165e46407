//! A graph's description and fingerprint: what an application's code is, as data, so
//! that a checkpoint made under one graph is not resumed under another unnoticed.

use std::borrow::Cow;
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
    sorted_view(names).into_owned()
}

/// `names` sorted and without duplicates: borrowed when it is so already (as declared
/// names usually are), else a sorted copy.
fn sorted_view(names: &[String]) -> Cow<'_, [String]> {
    if names.windows(2).all(|pair| pair[0] < pair[1]) {
        return Cow::Borrowed(names);
    }
    let mut names = names.to_vec();
    names.sort_unstable();
    names.dedup();
    Cow::Owned(names)
}

/// [`GraphDescription`] borrowed from a graph: what [`Graph::fingerprint`] hashes without
/// copying a name. It serialises byte for byte as the owned description (same fields,
/// same order, same omissions), so both give the same fingerprint.
#[derive(Serialize)]
struct DescriptionView<'a> {
    entrypoint: &'a str,
    actions: Vec<ActionView<'a>>,
    transitions: Vec<TransitionView<'a>>,
}

/// [`ActionDescription`], borrowed.
#[derive(Serialize)]
struct ActionView<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'a str>,
    reads: Cow<'a, [String]>,
    writes: Cow<'a, [String]>,
    inputs: Cow<'a, [String]>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    optional_inputs: Cow<'a, [String]>,
}

/// [`TransitionDescription`], borrowed.
#[derive(Serialize)]
struct TransitionView<'a> {
    from: &'a str,
    to: &'a str,
    condition: &'a str,
}

/// SHA-256 of `value`'s JSON, as 64 hex digits; the JSON goes straight into the hash,
/// not into a buffer first.
fn hash_json(value: &impl Serialize) -> String {
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
    let _ = serde_json::to_writer(&mut hashing, value);
    let digest: [u8; 32] = hashing.0.finalize().into();
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    hex
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

    /// The fingerprint of this graph starting at `entrypoint`: the same as
    /// `self.describe(entrypoint).fingerprint()` ([`GraphDescription::fingerprint`]),
    /// hashed from the graph itself without copying it into a description first.
    pub fn fingerprint(&self, entrypoint: &str) -> String {
        let mut actions: Vec<ActionView<'_>> = self
            .actions
            .iter()
            .map(|action| {
                let declared = action.declaration();
                ActionView {
                    name: &declared.name,
                    version: declared.version.as_deref(),
                    reads: sorted_view(&declared.reads),
                    writes: sorted_view(&declared.writes),
                    inputs: sorted_view(&declared.inputs),
                    optional_inputs: sorted_view(&declared.optional_inputs),
                }
            })
            .collect();
        actions.sort_unstable_by(|a, b| a.name.cmp(b.name));
        let transitions = self
            .transitions
            .iter()
            .map(|t| TransitionView {
                from: self.actions[t.from].name(),
                to: self.actions[t.to].name(),
                condition: t.condition.name(),
            })
            .collect();
        hash_json(&DescriptionView {
            entrypoint,
            actions,
            transitions,
        })
    }
}

impl GraphDescription {
    /// SHA-256 of the description's JSON, as 64 hex digits: the same for the same graph
    /// in any process or build (it holds no addresses, and no map order).
    pub fn fingerprint(&self) -> String {
        hash_json(self)
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
