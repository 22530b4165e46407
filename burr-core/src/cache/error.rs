//! [`CacheError`]: why a cache read, write or computation failed.

use std::sync::Arc;

use crate::persistence::PersistenceError;

/// Why a cache operation failed. Cloneable: a computation's error is given to every
/// caller that waited for it.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The store failed (a SQLite error, a read-only database...).
    #[error("the cache store failed: {0}")]
    Store(#[source] Arc<PersistenceError>),
    /// The computation of a missing entry failed; nothing was stored for it.
    #[error("computing {key} failed: {source}")]
    Compute {
        /// The entry (`namespace@version:hash`), or the first of a batch.
        key: String,
        /// The computation's error.
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// A batch computation returned another number of values than it was asked for.
    #[error("computing {asked} missing entries of {namespace} returned {returned} values")]
    WrongCount {
        /// The namespace of the batch.
        namespace: String,
        /// How many values were asked for.
        asked: usize,
        /// How many came back.
        returned: usize,
    },
    /// A stored value could not be decoded as asked (JSON of another shape, an f32 blob
    /// whose length is not a multiple of 4).
    #[error("cache entry {key} cannot be decoded: {reason}")]
    Decode {
        /// The entry.
        key: String,
        /// What was wrong.
        reason: String,
    },
    /// A value could not be encoded as JSON.
    #[error("a value for {key} cannot be encoded as JSON: {source}")]
    Encode {
        /// The entry.
        key: String,
        /// serde_json's error.
        #[source]
        source: Arc<serde_json::Error>,
    },
}

impl From<PersistenceError> for CacheError {
    fn from(error: PersistenceError) -> Self {
        CacheError::Store(Arc::new(error))
    }
}
