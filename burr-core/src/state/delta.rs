//! [`StateDelta`]: what one step changed, the unit a checkpoint stores.

use std::sync::Arc;

use serde_json::Value;

use super::entries::{Change, Entries};
use super::State;

/// The keys a step set (added or rewritten) and the keys it deleted.
///
/// A checkpoint stores a delta, not the whole state, so that writing one key of a large
/// state costs about that key.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StateDelta {
    /// Keys set by the step, with their new values, in key order.
    pub updated: Vec<(Arc<str>, Arc<Value>)>,
    /// Keys the step removed, in key order.
    pub deleted: Vec<Arc<str>>,
}

impl StateDelta {
    /// The changes that turn `before` into `after`. Subtrees the two states share are not
    /// visited.
    pub fn between(before: &State, after: &State) -> StateDelta {
        let mut delta = StateDelta::default();
        Entries::diff(&before.map, &after.map, |change| match change {
            Change::Set(k, v) => delta.updated.push((Arc::clone(k), Arc::clone(&v.0))),
            Change::Removed(k) => delta.deleted.push(Arc::clone(k)),
        });
        delta
    }

    /// The delta that sets every key of `state` (a full snapshot).
    pub fn snapshot(state: &State) -> StateDelta {
        StateDelta {
            updated: state
                .map
                .iter()
                .map(|(k, v)| (Arc::clone(k), Arc::clone(&v.0)))
                .collect(),
            deleted: Vec::new(),
        }
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.updated.is_empty() && self.deleted.is_empty()
    }

    /// The names of every key set or deleted.
    pub fn keys(&self) -> impl Iterator<Item = &str> + '_ {
        self.updated
            .iter()
            .map(|(k, _)| &**k)
            .chain(self.deleted.iter().map(|k| &**k))
    }
}
