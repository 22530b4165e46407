//! A store over a `BTreeMap` in under 100 lines: the three required methods of
//! `Persister`, rows kept as JSON text (so a row can be corrupted), and the conformance
//! suite run over it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use burr_core::persistence::StepStatus;
use burr_core::persistence::{Checkpoint, LoadedCheckpoint, PersistenceError, Persister};
use burr_core::testing::Conformance;
use burr_core::State;
use serde_json::{json, Value};

/// (partition key, app id) -> (creation number, (sequence id, attempt) -> row as JSON).
type Apps = BTreeMap<(String, String), (u64, BTreeMap<(u64, u32), String>)>;

/// Every checkpoint with its full state, as JSON text.
#[derive(Clone, Default)]
struct BTreeStore(Arc<Mutex<Apps>>);

fn key(partition_key: Option<&str>, app_id: &str) -> (String, String) {
    (partition_key.unwrap_or("").to_owned(), app_id.to_owned())
}

fn field<T: serde::de::DeserializeOwned>(row: &Value, name: &str) -> Result<T, String> {
    serde_json::from_value(row[name].clone()).map_err(|e| format!("bad `{name}`: {e}"))
}

#[async_trait]
impl Persister for BTreeStore {
    async fn save(&self, c: &Checkpoint) -> Result<(), PersistenceError> {
        let mut apps = self.0.lock().unwrap();
        let created = apps.len() as u64;
        let (_, rows) = apps
            .entry(key(c.partition_key.as_deref(), &c.app_id))
            .or_insert((created, BTreeMap::new()));
        if rows.contains_key(&(c.sequence_id, c.attempt)) {
            let (app_id, sequence_id, attempt) = (c.app_id.clone(), c.sequence_id, c.attempt);
            return Err(PersistenceError::Conflict {
                app_id,
                sequence_id,
                attempt,
            });
        }
        let at = c
            .created_at
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let row = json!({"position": c.position, "status": c.status, "prior_step": c.prior_step,
            "at_us": at.as_micros() as u64, "state": c.state.to_json()});
        rows.insert((c.sequence_id, c.attempt), row.to_string());
        Ok(())
    }

    async fn load(
        &self,
        partition_key: Option<&str>,
        app_id: &str,
        sequence_id: Option<u64>,
    ) -> Result<Option<LoadedCheckpoint>, PersistenceError> {
        let apps = self.0.lock().unwrap();
        let Some((_, rows)) = apps.get(&key(partition_key, app_id)) else {
            return Ok(None);
        };
        let found = match sequence_id {
            None => rows.iter().next_back(),
            Some(seq) => rows.range((seq, 0)..=(seq, u32::MAX)).next_back(),
        };
        let Some((&(sequence_id, attempt), text)) = found else {
            return Ok(None);
        };
        let corrupt = |reason: String| PersistenceError::Corrupt {
            path: Default::default(),
            app_id: app_id.to_owned(),
            sequence_id,
            reason,
        };
        let row: Value =
            serde_json::from_str(text).map_err(|e| corrupt(format!("not JSON: {e}")))?;
        let status: StepStatus = field(&row, "status").map_err(corrupt)?;
        let at_us: u64 = field(&row, "at_us").map_err(corrupt)?;
        Ok(Some(LoadedCheckpoint {
            partition_key: partition_key.filter(|pk| !pk.is_empty()).map(str::to_owned),
            app_id: app_id.to_owned(),
            sequence_id,
            position: field(&row, "position").map_err(corrupt)?,
            status,
            attempt,
            prior_step: field(&row, "prior_step").map_err(corrupt)?,
            created_at: std::time::UNIX_EPOCH + std::time::Duration::from_micros(at_us),
            state: State::from_json(field(&row, "state").map_err(corrupt)?)
                .map_err(|e| corrupt(e.to_string()))?,
        }))
    }

    async fn list_app_ids(
        &self,
        partition_key: Option<&str>,
    ) -> Result<Vec<String>, PersistenceError> {
        let apps = self.0.lock().unwrap();
        let mut ids: Vec<_> = apps
            .iter()
            .filter(|((pk, _), _)| pk == partition_key.unwrap_or(""))
            .map(|((_, id), (n, _))| (*n, id.clone()))
            .collect();
        ids.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
        Ok(ids.into_iter().map(|(_, id)| id).collect())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_btree_map_store_passes_the_conformance_suite() {
    let report = Conformance::new(BTreeStore::default)
        .corrupt_with(|store: &BTreeStore, app_id, seq| {
            let mut apps = store.0.lock().unwrap();
            let (_, rows) = apps.get_mut(&key(None, app_id)).unwrap();
            let row = rows
                .range_mut((seq, 0)..=(seq, u32::MAX))
                .next_back()
                .unwrap()
                .1;
            *row = row.replace("\"status\":\"completed\"", "\"status\":\"exploded\"");
        })
        .run()
        .await;
    // It has no optional capability: those checks are skipped, the others ran.
    assert_eq!(
        report.skipped,
        [
            "app_records",
            "child_listing",
            "history",
            "prune",
            "delete_with_descendants",
            "leases_with_two_holders"
        ]
    );
    assert_eq!(report.ran.len(), 8, "{report:?}");
}
