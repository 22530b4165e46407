//! [`InMemoryCache`]: a [`CacheStore`] in this process's memory.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;

use super::error::CacheError;
use super::key::CacheKey;
use super::store::{CachePrune, CacheStore, EntryInfo, GroupSummary};
use crate::persistence::micros;

/// A [`CacheStore`] in memory: for tests and short-lived processes. Cloning shares the
/// entries.
#[derive(Clone, Debug, Default)]
pub struct InMemoryCache {
    entries: Arc<Mutex<BTreeMap<CacheKey, (Bytes, i64)>>>,
}

impl InMemoryCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<CacheKey, (Bytes, i64)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl CacheStore for InMemoryCache {
    async fn get(&self, key: &CacheKey) -> Result<Option<Bytes>, CacheError> {
        Ok(self.lock().get(key).map(|(value, _)| value.clone()))
    }

    async fn get_many(&self, keys: &[CacheKey]) -> Result<Vec<Option<Bytes>>, CacheError> {
        let entries = self.lock();
        Ok(keys
            .iter()
            .map(|key| entries.get(key).map(|(value, _)| value.clone()))
            .collect())
    }

    async fn put_many(&self, new: Vec<(CacheKey, Bytes)>) -> Result<(), CacheError> {
        let now = micros(SystemTime::now());
        let mut entries = self.lock();
        for (key, value) in new {
            entries.entry(key).or_insert((value, now));
        }
        Ok(())
    }

    async fn list(
        &self,
        namespace: Option<&str>,
        limit: usize,
    ) -> Result<Vec<EntryInfo>, CacheError> {
        let mut out: Vec<EntryInfo> = self
            .lock()
            .iter()
            .filter(|(key, _)| namespace.is_none_or(|n| n == key.namespace))
            .map(|(key, (value, at))| EntryInfo {
                namespace: key.namespace.clone(),
                version: key.version.clone(),
                input: key.input.to_string(),
                bytes: value.len() as u64,
                created_at_us: *at,
            })
            .collect();
        out.sort_by_key(|entry| std::cmp::Reverse(entry.created_at_us));
        out.truncate(limit);
        Ok(out)
    }

    async fn summary(&self, namespace: Option<&str>) -> Result<Vec<GroupSummary>, CacheError> {
        let mut groups: BTreeMap<(String, String), GroupSummary> = BTreeMap::new();
        for (key, (value, at)) in self.lock().iter() {
            if namespace.is_some_and(|n| n != key.namespace) {
                continue;
            }
            let group = groups
                .entry((key.namespace.clone(), key.version.clone()))
                .or_insert_with(|| GroupSummary {
                    namespace: key.namespace.clone(),
                    version: key.version.clone(),
                    entries: 0,
                    bytes: 0,
                    oldest_us: *at,
                    newest_us: *at,
                });
            group.entries += 1;
            group.bytes += value.len() as u64;
            group.oldest_us = group.oldest_us.min(*at);
            group.newest_us = group.newest_us.max(*at);
        }
        Ok(groups.into_values().collect())
    }

    async fn prune(&self, which: &CachePrune) -> Result<u64, CacheError> {
        let mut entries = self.lock();
        let before = entries.len();
        entries.retain(|key, (_, at)| !which.matches(&key.namespace, &key.version, *at));
        Ok((before - entries.len()) as u64)
    }
}
