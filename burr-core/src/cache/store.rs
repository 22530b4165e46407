//! [`CacheStore`]: where cache entries are kept, and what it tells about them
//! ([`EntryInfo`], [`GroupSummary`], [`CacheSize`], [`CachePrune`]).

use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::error::CacheError;
use super::key::{CacheKey, InputHash};

/// Where cache entries are kept. Object safe: held as `Arc<dyn CacheStore>`.
///
/// An entry, once put, is never changed: a second `put` of the same key keeps the first
/// value (the key names the work, so both values are the same work's result). Stores:
/// [`InMemoryCache`](super::InMemoryCache), [`SqliteCache`](super::SqliteCache).
#[async_trait]
pub trait CacheStore: Send + Sync + 'static {
    /// The value stored under `key`, if any.
    async fn get(&self, key: &CacheKey) -> Result<Option<Bytes>, CacheError>;

    /// The values stored under `keys`, in order (`None` where there is none). By
    /// default one [`get`](Self::get) each; stores read them in one go.
    async fn get_many(&self, keys: &[CacheKey]) -> Result<Vec<Option<Bytes>>, CacheError> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(self.get(key).await?);
        }
        Ok(out)
    }

    /// Store `value` under `key` (kept as it is if the key is stored already).
    async fn put(&self, key: &CacheKey, value: Bytes) -> Result<(), CacheError> {
        self.put_many(vec![(key.clone(), value)]).await
    }

    /// Store several entries, in one transaction where the store has them.
    async fn put_many(&self, entries: Vec<(CacheKey, Bytes)>) -> Result<(), CacheError>;

    /// The entries of `namespace` (every namespace when `None`), newest first, at most
    /// `limit`.
    async fn list(
        &self,
        namespace: Option<&str>,
        limit: usize,
    ) -> Result<Vec<EntryInfo>, CacheError>;

    /// The entries grouped by (namespace, version), with their count and size, ordered by
    /// namespace then version; only `namespace`'s when given.
    async fn summary(&self, namespace: Option<&str>) -> Result<Vec<GroupSummary>, CacheError>;

    /// How many entries there are and how many bytes their values take (of `namespace`
    /// when given).
    async fn size(&self, namespace: Option<&str>) -> Result<CacheSize, CacheError> {
        let groups = self.summary(namespace).await?;
        Ok(groups
            .iter()
            .fold(CacheSize::default(), |size, g| CacheSize {
                entries: size.entries + g.entries,
                bytes: size.bytes + g.bytes,
            }))
    }

    /// Delete the entries `which` selects; returns how many were deleted.
    async fn prune(&self, which: &CachePrune) -> Result<u64, CacheError>;
}

/// One stored entry, without its value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryInfo {
    /// What computed it.
    pub namespace: String,
    /// Its version.
    pub version: String,
    /// The hash of its input, as 64 hex digits.
    pub input: String,
    /// The size of its value in bytes.
    pub bytes: u64,
    /// When it was stored, in microseconds since the Unix epoch.
    pub created_at_us: i64,
}

impl EntryInfo {
    /// The entry's key (`None` if its stored hash is malformed).
    pub fn key(&self) -> Option<CacheKey> {
        InputHash::from_hex(&self.input)
            .map(|input| CacheKey::new(self.namespace.clone(), self.version.clone(), input))
    }
}

/// The entries of one (namespace, version).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSummary {
    /// What computed them.
    pub namespace: String,
    /// Its version.
    pub version: String,
    /// How many there are.
    pub entries: u64,
    /// How many bytes their values take.
    pub bytes: u64,
    /// When the oldest was stored (microseconds since the Unix epoch).
    pub oldest_us: i64,
    /// When the newest was stored.
    pub newest_us: i64,
}

/// A count of entries and of the bytes of their values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheSize {
    /// Entries.
    pub entries: u64,
    /// Bytes of their values.
    pub bytes: u64,
}

/// Which entries [`CacheStore::prune`] deletes: those matching every condition given
/// (no condition: every entry).
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use burr_core::cache::CachePrune;
///
/// // Entries of old versions of an action, and anything older than 30 days.
/// let old_versions = CachePrune::new().namespace("summarize").except_version("3");
/// let stale = CachePrune::new().created_before(SystemTime::now() - Duration::from_secs(30 * 86_400));
/// # let _ = (old_versions, stale);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CachePrune {
    /// Only this namespace's.
    pub namespace: Option<String>,
    /// Only this version's.
    pub version: Option<String>,
    /// Only versions other than this one.
    pub except_version: Option<String>,
    /// Only entries stored before this time (microseconds since the Unix epoch).
    pub created_before_us: Option<i64>,
}

impl CachePrune {
    /// Every entry (narrow it with the methods).
    pub fn new() -> Self {
        Self::default()
    }

    /// Only `namespace`'s entries.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// Only entries of `version`.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// Only entries of versions other than `version` (keep the current one).
    pub fn except_version(mut self, version: impl Into<String>) -> Self {
        self.except_version = Some(version.into());
        self
    }

    /// Only entries stored before `time`.
    pub fn created_before(mut self, time: SystemTime) -> Self {
        self.created_before_us = Some(crate::persistence::micros(time));
        self
    }

    /// Whether an entry of (`namespace`, `version`) stored at `created_at_us` matches.
    pub fn matches(&self, namespace: &str, version: &str, created_at_us: i64) -> bool {
        self.namespace.as_deref().is_none_or(|n| n == namespace)
            && self.version.as_deref().is_none_or(|v| v == version)
            && self.except_version.as_deref().is_none_or(|v| v != version)
            && self.created_before_us.is_none_or(|t| created_at_us < t)
    }
}
