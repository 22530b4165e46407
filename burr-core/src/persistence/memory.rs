//! [`InMemoryPersister`]: checkpoints kept in memory, for tests and short-lived processes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use super::record::micros;
use super::{
    AppRecord, AppRecords, Checkpoint, CheckpointInfo, ChildListing, Delete, History, Lease,
    Leases, LoadedCheckpoint, PersistenceError, Persister, Prune,
};

type Key = (Option<String>, String);

/// A saved checkpoint with the keys it changed and its error.
type Row = (LoadedCheckpoint, Vec<String>, Option<String>);

#[derive(Default)]
struct Apps {
    checkpoints: HashMap<Key, Vec<Row>>,
    records: HashMap<Key, AppRecord>,
    /// Registration order, for newest-first listing.
    order: Vec<Key>,
    leases: HashMap<Key, String>,
}

/// A persister that keeps every checkpoint (with its full state, shared with the
/// application, so saving is O(changes)) in memory. Cloning shares the store.
///
/// It has every capability: [`Leases`] (held until released: they never expire, as the
/// store dies with its process), [`AppRecords`], [`ChildListing`], [`History`],
/// [`Prune`] and [`Delete`].
#[derive(Clone, Default)]
pub struct InMemoryPersister {
    apps: Arc<Mutex<Apps>>,
    holder: Arc<str>,
}

impl InMemoryPersister {
    /// An empty store.
    pub fn new() -> Self {
        InMemoryPersister {
            apps: Arc::default(),
            holder: Arc::from(format!("in-memory:{}", uuid::Uuid::new_v4())),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Apps> {
        self.apps.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn key(partition_key: Option<&str>, app_id: &str) -> Key {
    (partition_key.map(str::to_owned), app_id.to_owned())
}

#[async_trait]
impl Persister for InMemoryPersister {
    async fn save(&self, c: &Checkpoint) -> Result<(), PersistenceError> {
        let mut apps = self.lock();
        let k = key(c.partition_key.as_deref(), &c.app_id);
        if !apps.records.contains_key(&k) {
            apps.order.push(k.clone());
            apps.records.insert(
                k.clone(),
                AppRecord {
                    partition_key: c.partition_key.clone(),
                    app_id: c.app_id.clone(),
                    created_at_us: micros(c.created_at),
                    fork_parent: None,
                    spawning_parent: None,
                    code: None,
                },
            );
        }
        let rows = apps.checkpoints.entry(k).or_default();
        if rows
            .iter()
            .any(|(r, _, _)| r.sequence_id == c.sequence_id && r.attempt == c.attempt)
        {
            return Err(PersistenceError::Conflict {
                app_id: c.app_id.clone(),
                sequence_id: c.sequence_id,
                attempt: c.attempt,
            });
        }
        rows.push((
            LoadedCheckpoint {
                partition_key: c.partition_key.clone(),
                app_id: c.app_id.clone(),
                sequence_id: c.sequence_id,
                position: c.position.clone(),
                status: c.status,
                attempt: c.attempt,
                prior_step: c.prior_step.clone(),
                created_at: c.created_at,
                state: c.state.clone(),
            },
            c.delta.keys().map(str::to_owned).collect(),
            c.error.clone(),
        ));
        Ok(())
    }

    async fn load(
        &self,
        partition_key: Option<&str>,
        app_id: &str,
        sequence_id: Option<u64>,
    ) -> Result<Option<LoadedCheckpoint>, PersistenceError> {
        let apps = self.lock();
        let Some(rows) = apps.checkpoints.get(&key(partition_key, app_id)) else {
            return Ok(None);
        };
        let found = match sequence_id {
            None => rows.last(),
            Some(seq) => rows.iter().rev().find(|(r, _, _)| r.sequence_id == seq),
        };
        Ok(found.map(|(r, _, _)| r.clone()))
    }

    async fn list_app_ids(
        &self,
        partition_key: Option<&str>,
    ) -> Result<Vec<String>, PersistenceError> {
        let apps = self.lock();
        Ok(apps
            .order
            .iter()
            .rev()
            .filter(|(pk, _)| pk.as_deref() == partition_key)
            .map(|(_, id)| id.clone())
            .collect())
    }

    fn as_leases(&self) -> Option<&dyn Leases> {
        Some(self)
    }

    fn as_app_records(&self) -> Option<&dyn AppRecords> {
        Some(self)
    }

    fn as_child_listing(&self) -> Option<&dyn ChildListing> {
        Some(self)
    }

    fn as_history(&self) -> Option<&dyn History> {
        Some(self)
    }

    fn as_prune(&self) -> Option<&dyn Prune> {
        Some(self)
    }

    fn as_delete(&self) -> Option<&dyn Delete> {
        Some(self)
    }
}

#[async_trait]
impl ChildListing for InMemoryPersister {
    async fn list_app_ids_with_prefix(
        &self,
        partition_key: Option<&str>,
        prefix: &str,
    ) -> Result<Vec<String>, PersistenceError> {
        let apps = self.lock();
        Ok(apps
            .records
            .keys()
            .filter(|(pk, id)| pk.as_deref() == partition_key && id.starts_with(prefix))
            .map(|(_, id)| id.clone())
            .collect())
    }
}

#[async_trait]
impl History for InMemoryPersister {
    async fn list_checkpoints(
        &self,
        partition_key: Option<&str>,
        app_id: &str,
    ) -> Result<Vec<CheckpointInfo>, PersistenceError> {
        let apps = self.lock();
        Ok(apps
            .checkpoints
            .get(&key(partition_key, app_id))
            .map(|rows| {
                rows.iter()
                    .map(|(r, keys, error)| CheckpointInfo {
                        sequence_id: r.sequence_id,
                        position: r.position.clone(),
                        status: r.status,
                        attempt: r.attempt,
                        prior_step: r.prior_step.clone(),
                        created_at_us: micros(r.created_at),
                        changed_keys: keys.clone(),
                        error: error.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default())
    }
}

#[async_trait]
impl AppRecords for InMemoryPersister {
    async fn register_app(&self, app: &AppRecord) -> Result<(), PersistenceError> {
        let mut apps = self.lock();
        let k = key(app.partition_key.as_deref(), &app.app_id);
        match apps.records.get_mut(&k) {
            None => {
                apps.order.push(k.clone());
                apps.records.insert(k, app.clone());
            }
            Some(record) => {
                if record.fork_parent.is_none() {
                    record.fork_parent.clone_from(&app.fork_parent);
                }
                if record.spawning_parent.is_none() {
                    record.spawning_parent.clone_from(&app.spawning_parent);
                }
                if app.code.is_some() {
                    record.code.clone_from(&app.code);
                }
            }
        }
        Ok(())
    }

    async fn app(
        &self,
        partition_key: Option<&str>,
        app_id: &str,
    ) -> Result<Option<AppRecord>, PersistenceError> {
        Ok(self
            .lock()
            .records
            .get(&key(partition_key, app_id))
            .cloned())
    }

    async fn list_apps(&self) -> Result<Vec<AppRecord>, PersistenceError> {
        let apps = self.lock();
        Ok(apps
            .order
            .iter()
            .rev()
            .filter_map(|k| apps.records.get(k).cloned())
            .collect())
    }
}

#[async_trait]
impl Delete for InMemoryPersister {
    async fn delete_app(
        &self,
        partition_key: Option<&str>,
        app_id: &str,
    ) -> Result<bool, PersistenceError> {
        let mut apps = self.lock();
        let k = key(partition_key, app_id);
        apps.order.retain(|o| *o != k);
        let had_rows = apps.checkpoints.remove(&k).is_some();
        Ok(apps.records.remove(&k).is_some() || had_rows)
    }
}

#[async_trait]
impl Prune for InMemoryPersister {
    async fn prune(
        &self,
        partition_key: Option<&str>,
        app_id: &str,
        keep_last: usize,
    ) -> Result<usize, PersistenceError> {
        let mut apps = self.lock();
        let Some(rows) = apps.checkpoints.get_mut(&key(partition_key, app_id)) else {
            return Err(PersistenceError::UnknownApp {
                partition_key: partition_key.map(str::to_owned),
                app_id: app_id.to_owned(),
            });
        };
        let remove = rows.len().saturating_sub(keep_last);
        rows.drain(..remove);
        Ok(remove)
    }
}

#[async_trait]
impl Leases for InMemoryPersister {
    async fn acquire_lease(
        &self,
        partition_key: Option<&str>,
        app_id: &str,
        _ttl: Duration,
    ) -> Result<Lease, PersistenceError> {
        let mut apps = self.lock();
        let k = key(partition_key, app_id);
        if let Some(holder) = apps.leases.get(&k) {
            return Err(PersistenceError::AppLocked {
                app_id: app_id.to_owned(),
                holder: holder.clone(),
            });
        }
        let holder = format!("{}:{}", self.holder, uuid::Uuid::new_v4());
        apps.leases.insert(k, holder.clone());
        Ok(Lease {
            partition_key: partition_key.map(str::to_owned),
            app_id: app_id.to_owned(),
            holder,
        })
    }

    fn release_lease(&self, lease: &Lease) -> Result<(), PersistenceError> {
        let mut apps = self.lock();
        let k = key(lease.partition_key.as_deref(), &lease.app_id);
        if apps.leases.get(&k) == Some(&lease.holder) {
            apps.leases.remove(&k);
        }
        Ok(())
    }
}
