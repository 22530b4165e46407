//! [`StateError`]: what can go wrong reading or changing a [`State`](super::State).

/// An error from a [`State`](super::State) operation. Each names the key involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The key is not in the state.
    #[error("key `{key}` not found in state (keys present: {present:?})")]
    MissingKey {
        /// The key asked for.
        key: String,
        /// The keys the state has.
        present: Vec<String>,
    },
    /// The value exists but does not deserialize into the requested type.
    #[error("state key `{key}` does not hold a `{expected}`")]
    WrongType {
        /// The key read.
        key: String,
        /// The Rust type asked for.
        expected: &'static str,
        /// Why the value did not deserialize.
        #[source]
        source: serde_json::Error,
    },
    /// A value could not be serialized into JSON.
    #[error("the value for state key `{key}` could not be serialized to JSON")]
    Serialize {
        /// The key written.
        key: String,
        /// Why serialization failed.
        #[source]
        source: serde_json::Error,
    },
    /// `append`/`extend` on a value that is not a list.
    #[error("cannot {operation} to state key `{key}`: it holds a {found}, not a list")]
    NotAList {
        /// The key.
        key: String,
        /// `append` or `extend`.
        operation: &'static str,
        /// The type found.
        found: &'static str,
    },
    /// `increment` on a value that is not an integer.
    #[error("cannot increment state key `{key}`: it holds a {found}, not an integer")]
    NotAnInteger {
        /// The key.
        key: String,
        /// The type found.
        found: &'static str,
    },
    /// `increment` overflowed a 64-bit integer.
    #[error("incrementing state key `{key}` ({value}) by {by} overflows a 64-bit integer")]
    Overflow {
        /// The key.
        key: String,
        /// The value before.
        value: i64,
        /// The amount.
        by: i64,
    },
    /// `wipe` was given both a `delete` and a `keep` list.
    #[error("cannot wipe with both a delete and a keep list: give one or the other")]
    WipeConflict,
    /// A state was built from JSON that is not an object.
    #[error("state must be a JSON object, found a {found}")]
    NotAnObject {
        /// The type found.
        found: &'static str,
    },
}
