//! [`State`]: the immutable, structurally shared map every action reads and writes.
//!
//! Every operation returns a new `State` and leaves the old one untouched. Cloning is O(1),
//! and an update copies only the O(log n) path to the changed key: every other value is
//! shared with the old state. Values are JSON ([`serde_json::Value`]), with typed access for
//! any `Serialize`/`DeserializeOwned` type.

mod delta;
mod entries;
mod error;

use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use entries::{Change, Entries};

pub(crate) use entries::{key, same_key};

pub use delta::StateDelta;
pub use error::StateError;

/// A shared value in state. Equality is pointer identity, so that diffing two states is
/// cheap and a value written by an action counts as written even when it is equal.
#[derive(Clone)]
pub(crate) struct Slot(pub(crate) Arc<Value>);

impl PartialEq for Slot {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// The immutable state of an application: a map from key to JSON value.
///
/// ```
/// use burr_core::State;
///
/// let state = State::new().update("count", 1);
/// let next = state.increment("count", 2).unwrap();
/// assert_eq!(state.get::<i64>("count").unwrap(), 1); // the old state is untouched
/// assert_eq!(next.get::<i64>("count").unwrap(), 3);
/// ```
#[derive(Clone, Default)]
pub struct State {
    map: Entries,
}

/// Which keys [`State::wipe`] removes: Burr's `wipe(delete=..., keep=...)`.
///
/// `Wipe::default()` (no list given) wipes every key. Giving both lists is an error.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Wipe {
    delete: Option<Vec<String>>,
    keep: Option<Vec<String>>,
}

impl Wipe {
    /// Wipe every key.
    pub fn all() -> Self {
        Self::default()
    }

    /// Wipe the named keys; keys that are absent are ignored.
    pub fn delete<I, K>(keys: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: Into<String>,
    {
        Self::default().and_delete(keys)
    }

    /// Wipe every key except the named ones; named keys that are absent are ignored.
    pub fn keep<I, K>(keys: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: Into<String>,
    {
        Self::default().and_keep(keys)
    }

    /// Add a `delete` list (with a `keep` list too, [`State::wipe`] refuses the wipe).
    pub fn and_delete<I, K>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: Into<String>,
    {
        self.delete = Some(keys.into_iter().map(Into::into).collect());
        self
    }

    /// Add a `keep` list (with a `delete` list too, [`State::wipe`] refuses the wipe).
    pub fn and_keep<I, K>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: Into<String>,
    {
        self.keep = Some(keys.into_iter().map(Into::into).collect());
        self
    }
}

impl State {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// A state holding the entries of a JSON object; anything else is an error.
    pub fn from_json(value: Value) -> Result<Self, StateError> {
        match value {
            Value::Object(map) => Ok(Self::from_map(map)),
            other => Err(StateError::NotAnObject {
                found: type_name(&other),
            }),
        }
    }

    /// A state holding the entries of a JSON map.
    pub fn from_map(map: Map<String, Value>) -> Self {
        let map = Entries::from_pairs(
            map.into_iter()
                .map(|(k, v)| (entries::key(&k), Slot(Arc::new(v)))),
        );
        Self { map }
    }

    /// The whole state as a JSON object.
    pub fn to_json(&self) -> Value {
        Value::Object(self.to_map())
    }

    /// The whole state as a JSON map.
    pub fn to_map(&self) -> Map<String, Value> {
        self.map
            .iter()
            .map(|(k, v)| (k.to_string(), Value::clone(&v.0)))
            .collect()
    }

    /// The value of `key`, deserialized as `T`.
    ///
    /// A missing key, or a value that is not a `T`, is an error naming the key and the type.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<T, StateError> {
        let value = self.get_value(key).ok_or_else(|| StateError::MissingKey {
            key: key.to_owned(),
            present: self.key_list(),
        })?;
        T::deserialize(value).map_err(|source| StateError::WrongType {
            key: key.to_owned(),
            expected: std::any::type_name::<T>(),
            source,
        })
    }

    /// The value of `key` deserialized as `T`, or `default` when the key is absent.
    ///
    /// A value that is present but is not a `T` is still an error.
    pub fn get_or<T: DeserializeOwned>(&self, key: &str, default: T) -> Result<T, StateError> {
        match self.get_value(key) {
            None => Ok(default),
            Some(_) => self.get(key),
        }
    }

    /// The JSON value of `key`, if present.
    pub fn get_value(&self, key: &str) -> Option<&Value> {
        self.map.get(key).map(|slot| &*slot.0)
    }

    /// The shared JSON value of `key`, if present (cloning it is O(1)).
    pub fn get_shared(&self, key: &str) -> Option<Arc<Value>> {
        self.map.get(key).map(|slot| Arc::clone(&slot.0))
    }

    /// Whether `key` is present.
    pub fn contains(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// The keys, in sorted order.
    pub fn keys(&self) -> impl Iterator<Item = &str> + '_ {
        self.map.iter().map(|(k, _)| &**k)
    }

    /// The entries, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> + '_ {
        self.map.iter().map(|(k, v)| (&**k, &*v.0))
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the state has no keys.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// A new state with `key` set to `value` (upsert; nested values are replaced whole).
    pub fn update(&self, key: impl AsRef<str>, value: impl Into<Value>) -> State {
        self.update_shared(key, Arc::new(value.into()))
    }

    /// A new state with `key` set to an already shared value (no copy of the value).
    pub fn update_shared(&self, key: impl AsRef<str>, value: Arc<Value>) -> State {
        State {
            map: self.map.inserted(self.map.key(key.as_ref()), Slot(value)),
        }
    }

    /// A new state with every `(key, value)` pair set.
    pub fn update_many<I, K, V>(&self, entries: I) -> State
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Into<Value>,
    {
        let mut map = self.map.clone();
        let pairs: Vec<_> = entries
            .into_iter()
            .map(|(k, v)| (map.key(k.as_ref()), Slot(Arc::new(v.into()))))
            .collect();
        map.insert_many(pairs);
        State { map }
    }

    /// A new state with `key` set to `value` serialized to JSON.
    pub fn update_serialized<T: Serialize + ?Sized>(
        &self,
        key: impl AsRef<str>,
        value: &T,
    ) -> Result<State, StateError> {
        let key = key.as_ref();
        let json = serde_json::to_value(value).map_err(|source| StateError::Serialize {
            key: key.to_owned(),
            source,
        })?;
        Ok(self.update(key, json))
    }

    /// A new state with `value` appended to the list at `key` as one element.
    ///
    /// A missing key becomes `[value]`; a value that is not a list is an error.
    pub fn append(
        &self,
        key: impl AsRef<str>,
        value: impl Into<Value>,
    ) -> Result<State, StateError> {
        let key = key.as_ref();
        let mut list = self.list_for(key, "append")?;
        list.push(value.into());
        Ok(self.update(key, Value::Array(list)))
    }

    /// A new state with `values` added to the end of the list at `key`.
    ///
    /// A missing key becomes the list of `values`; a value that is not a list is an error.
    pub fn extend<I, V>(&self, key: impl AsRef<str>, values: I) -> Result<State, StateError>
    where
        I: IntoIterator<Item = V>,
        V: Into<Value>,
    {
        let key = key.as_ref();
        let mut list = self.list_for(key, "extend")?;
        list.extend(values.into_iter().map(Into::into));
        Ok(self.update(key, Value::Array(list)))
    }

    fn list_for(&self, key: &str, operation: &'static str) -> Result<Vec<Value>, StateError> {
        match self.get_value(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => Ok(items.clone()),
            Some(other) => Err(StateError::NotAList {
                key: key.to_owned(),
                operation,
                found: type_name(other),
            }),
        }
    }

    /// A new state with the integer at `key` increased by `by`.
    ///
    /// A missing key becomes `by`. A value that is not an integer (a bool is not one) is an
    /// error, and so is an overflow.
    pub fn increment(&self, key: impl AsRef<str>, by: i64) -> Result<State, StateError> {
        let key = key.as_ref();
        let found = self.map.get_key_value(key);
        let current = match found.map(|(_, slot)| &*slot.0) {
            None => 0,
            Some(Value::Number(n)) if n.is_i64() => n.as_i64().unwrap_or_default(),
            Some(other) => {
                return Err(StateError::NotAnInteger {
                    key: key.to_owned(),
                    found: type_name(other),
                })
            }
        };
        let next = current
            .checked_add(by)
            .ok_or_else(|| StateError::Overflow {
                key: key.to_owned(),
                value: current,
                by,
            })?;
        // The key held already: no second look-up.
        let key = match found {
            Some((k, _)) => Arc::clone(k),
            None => self.map.key(key),
        };
        Ok(State {
            map: self.map.inserted(key, Slot(Arc::new(Value::from(next)))),
        })
    }

    /// A new state without the keys `wipe` names (see [`Wipe`]).
    ///
    /// ```
    /// use burr_core::State;
    /// use burr_core::state::Wipe;
    /// let s = State::new().update("a", 1).update("b", 2).update("c", 3);
    /// assert_eq!(s.wipe(Wipe::delete(["a"])).unwrap().len(), 2);
    /// assert_eq!(s.wipe(Wipe::keep(["a"])).unwrap().len(), 1);
    /// assert!(s.wipe(Wipe::all()).unwrap().is_empty());
    /// assert!(s.wipe(Wipe::delete(["a"]).and_keep(["b"])).is_err());
    /// ```
    pub fn wipe(&self, wipe: Wipe) -> Result<State, StateError> {
        match (wipe.delete, wipe.keep) {
            (Some(_), Some(_)) => Err(StateError::WipeConflict),
            (Some(delete), None) => Ok(self.without(delete.iter().map(String::as_str))),
            (None, Some(keep)) => Ok(self.subset(keep.iter().map(String::as_str))),
            (None, None) => Ok(State::new()),
        }
    }

    /// A new state without the given keys (absent keys are ignored).
    pub fn without<'k>(&self, keys: impl IntoIterator<Item = &'k str>) -> State {
        let mut map = self.map.clone();
        for key in keys {
            map.remove(key);
        }
        State { map }
    }

    /// A new state with `other`'s entries written over this one's.
    pub fn merge(&self, other: &State) -> State {
        if self.is_empty() {
            return other.clone();
        }
        let mut map = self.map.clone();
        map.insert_many(
            other
                .map
                .iter()
                .map(|(k, v)| (Arc::clone(k), v.clone()))
                .collect(),
        );
        State { map }
    }

    /// A new state holding only the given keys; absent keys are ignored.
    pub fn subset<'k>(&self, keys: impl IntoIterator<Item = &'k str>) -> State {
        State {
            map: self.map.subset(keys),
        }
    }

    /// A new state holding only the given keys; an absent key is an error naming it.
    pub fn subset_strict<'k>(
        &self,
        keys: impl IntoIterator<Item = &'k str>,
    ) -> Result<State, StateError> {
        let mut entries = Vec::new();
        for key in keys {
            match self.map.get_key_value(key) {
                Some((k, v)) => entries.push((Arc::clone(k), v.clone())),
                None => {
                    return Err(StateError::MissingKey {
                        key: key.to_owned(),
                        present: self.key_list(),
                    })
                }
            }
        }
        Ok(State {
            map: Entries::from_pairs(entries),
        })
    }

    /// What changed from `before` to `self`: the keys set (new or rewritten) and deleted.
    ///
    /// Shared subtrees are skipped, so the cost follows the number of changes, not the size
    /// of the state.
    pub fn delta_from(&self, before: &State) -> StateDelta {
        StateDelta::between(before, self)
    }

    /// Call `f` with each key that changed from `before` to `self`, and whether it was
    /// set (`true`) or removed: what [`delta_from`](Self::delta_from) lists, without
    /// making the list.
    pub(crate) fn for_each_change(&self, before: &State, mut f: impl FnMut(&str, bool)) {
        Entries::diff(&before.map, &self.map, |change| match change {
            Change::Set(k, _) => f(k, true),
            Change::Removed(k) => f(k, false),
        });
    }

    /// `self` with the changes from `before` to `after` applied: what
    /// `self.apply(&after.delta_from(before))` gives, without making the delta. `self` is
    /// given up: what no other state shares is changed in place rather than copied.
    pub(crate) fn apply_changes_owned(mut self, before: &State, after: &State) -> State {
        // One key set (a step's usual write).
        if let (Some((ko, vo)), Some((kn, vn))) = (before.map.single(), after.map.single()) {
            if Arc::ptr_eq(ko, kn) {
                if vo != vn {
                    self.map.insert(kn, vn.clone());
                }
                return self;
            }
        }
        Entries::diff(&before.map, &after.map, |change| match change {
            Change::Set(k, v) => self.map.insert(k, v.clone()),
            Change::Removed(k) => self.map.remove(k),
        });
        self
    }

    /// `self` with `delta` applied.
    pub fn apply(&self, delta: &StateDelta) -> State {
        // One key set (a step's usual write): no list of pairs to build.
        if let ([(key, value)], []) = (&delta.updated[..], &delta.deleted[..]) {
            return State {
                map: self.map.inserted(Arc::clone(key), Slot(Arc::clone(value))),
            };
        }
        let mut map = self.map.clone();
        for key in &delta.deleted {
            map.remove(key);
        }
        map.insert_many(
            delta
                .updated
                .iter()
                .map(|(key, value)| (Arc::clone(key), Slot(Arc::clone(value))))
                .collect(),
        );
        State { map }
    }

    /// Whether `self` and `other` are the same state object (O(1); equal states built
    /// separately, from values made separately, are not `same_as` each other; a state of
    /// one or two keys is the same as another with the same keys and value objects).
    pub fn same_as(&self, other: &State) -> bool {
        self.map.ptr_eq(&other.map)
    }

    fn key_list(&self) -> Vec<String> {
        self.keys().map(str::to_owned).collect()
    }
}

/// Python's name for a JSON value's type, as Burr's messages use it.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

impl PartialEq for State {
    fn eq(&self, other: &Self) -> bool {
        self.map.len() == other.map.len()
            && self
                .map
                .iter()
                .zip(other.map.iter())
                .all(|((ka, va), (kb, vb))| ka == kb && (va == vb || va.0 == vb.0))
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let json = self.to_json();
        if f.alternate() {
            write!(f, "{json:#}")
        } else {
            write!(f, "{json}")
        }
    }
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for State {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for State {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Map::<String, Value>::deserialize(deserializer).map(State::from_map)
    }
}

impl From<Map<String, Value>> for State {
    fn from(map: Map<String, Value>) -> Self {
        State::from_map(map)
    }
}

impl<K: AsRef<str>, V: Into<Value>> FromIterator<(K, V)> for State {
    fn from_iter<T: IntoIterator<Item = (K, V)>>(iter: T) -> Self {
        State::new().update_many(iter)
    }
}

#[cfg(test)]
mod tests;
