//! The per-text embedding store: every vector is kept in the checkpoint database, keyed by
//! (model id, model version, SHA-256 of the exact text sent to the model), as a blob of
//! little-endian f32. A text is embedded at most once per model across runs, meetings and
//! processes; concurrent callers asking for the same text while it is being embedded wait
//! for that one computation (in-flight coalescing) instead of repeating it.
//!
//! Misses go to the shared [`Batcher`]; its thread writes each finished batch to the
//! database in one transaction, then answers everyone waiting for those texts.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use crate::batcher::{BatchConfig, Batcher, OnBatch};
use crate::model::{Model, ModelError};

/// The SHA-256 of a text: its key in the store (with the model's id and version).
pub type TextKey = [u8; 32];

/// A stored vector, shared without copying.
pub type Vector = Arc<[f32]>;

/// The table the vectors are kept in.
pub const TABLE: &str = "related_embeddings";

/// The key of `text`.
pub fn text_key(text: &str) -> TextKey {
    Sha256::digest(text.as_bytes()).into()
}

/// Why a vector cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be read or written.
    #[error("embedding store in {path}")]
    Sql {
        /// The database file.
        path: String,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// The model failed on the batch holding this text.
    #[error("the model failed")]
    Model(#[source] Arc<ModelError>),
    /// A stored blob is not a vector of the model's dimensions.
    #[error("stored embedding {key} has {bytes} bytes, not {expected}")]
    Corrupt {
        /// The text key, in hex.
        key: String,
        /// The blob's size.
        bytes: usize,
        /// The expected size.
        expected: usize,
    },
    /// The batcher thread is gone (it panicked).
    #[error("the embedding batcher stopped")]
    Stopped,
}

type Waiter = oneshot::Sender<Result<Vector, Arc<ModelError>>>;

struct Shared {
    db: Mutex<Connection>,
    path: String,
    model_id: String,
    model_version: String,
    dims: usize,
    memory: Mutex<HashMap<TextKey, Vector>>,
    in_flight: Mutex<HashMap<TextKey, Vec<Waiter>>>,
    embedded: AtomicUsize,
    reused: AtomicUsize,
}

/// The store, shared by every action of the process (cloning shares it).
#[derive(Clone)]
pub struct EmbeddingStore {
    shared: Arc<Shared>,
    batcher: Batcher,
}

/// What one [`EmbeddingStore::get_many`] call found.
#[derive(Clone, Debug)]
pub struct Lookup {
    /// A vector per text, in the order asked.
    pub vectors: Vec<Vector>,
    /// Texts this call had the model embed.
    pub embedded: usize,
    /// Texts found stored, or being embedded for another caller (waited for).
    pub reused: usize,
}

impl EmbeddingStore {
    /// The store in the SQLite file `db` (its table is created if missing), embedding
    /// misses with `model` through a batcher configured by `config`.
    pub fn open(db: &Path, model: Arc<Model>, config: BatchConfig) -> Result<Self, StoreError> {
        let path = db.display().to_string();
        let sql = |source| StoreError::Sql {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(db).map_err(sql)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .map_err(sql)?;
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))
            .map_err(sql)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql)?;
        conn.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS {TABLE} (
                 model TEXT NOT NULL, version TEXT NOT NULL, text_sha256 BLOB NOT NULL,
                 dims INTEGER NOT NULL, vector BLOB NOT NULL,
                 PRIMARY KEY (model, version, text_sha256)) WITHOUT ROWID"
        ))
        .map_err(sql)?;
        let shared = Arc::new(Shared {
            db: Mutex::new(conn),
            path,
            model_id: model.id().to_owned(),
            model_version: model.version().to_owned(),
            dims: crate::model::DIMENSIONS,
            memory: Mutex::default(),
            in_flight: Mutex::default(),
            embedded: AtomicUsize::new(0),
            reused: AtomicUsize::new(0),
        });
        let on_batch_shared = Arc::clone(&shared);
        let on_batch: OnBatch =
            Box::new(move |texts, result| on_batch_shared.finish(texts, result));
        let batcher = Batcher::start(model, config, on_batch);
        Ok(EmbeddingStore { shared, batcher })
    }

    /// The vectors of `texts`: from memory, from the database, from a computation already
    /// under way, or embedded now (in the batcher's next batch). With `count`, what was
    /// found adds to [`reused`](Self::reused) (filling the index does not count).
    pub async fn get_many(&self, texts: &[String], count: bool) -> Result<Lookup, StoreError> {
        let mut vectors: Vec<Option<Vector>> = vec![None; texts.len()];
        let mut waits = Vec::new();
        let (mut embedded, mut reused) = (0, 0);
        let keys: Vec<TextKey> = texts.iter().map(|t| text_key(t)).collect();
        let missing = self.lookup(&keys, &mut vectors)?;
        reused += texts.len() - missing.len();
        for i in missing {
            let key = keys[i];
            let (tx, rx) = oneshot::channel();
            let mut in_flight = lock(&self.shared.in_flight);
            // Embedded between the lookup and now: take it.
            if let Some(v) = lock(&self.shared.memory).get(&key) {
                vectors[i] = Some(Arc::clone(v));
                reused += 1;
                continue;
            }
            let first = match in_flight.get_mut(&key) {
                Some(waiters) => {
                    waiters.push(tx);
                    false
                }
                None => {
                    in_flight.insert(key, vec![tx]);
                    true
                }
            };
            drop(in_flight);
            if first {
                // The batcher's own answer is not needed: `finish` answers the waiters.
                drop(self.batcher.submit(texts[i].clone()));
                embedded += 1;
            } else {
                reused += 1;
            }
            waits.push((i, rx));
        }
        for (i, rx) in waits {
            let vector = rx
                .await
                .map_err(|_| StoreError::Stopped)?
                .map_err(StoreError::Model)?;
            vectors[i] = Some(vector);
        }
        if count {
            self.shared.reused.fetch_add(reused, Ordering::Relaxed);
        }
        Ok(Lookup {
            vectors: vectors.into_iter().map(|v| v.expect("filled")).collect(),
            embedded,
            reused,
        })
    }

    /// [`get_many`](Self::get_many) from a blocking thread (a `blocking` action).
    pub fn get_many_blocking(&self, texts: &[String], count: bool) -> Result<Lookup, StoreError> {
        tokio::runtime::Handle::current().block_on(self.get_many(texts, count))
    }

    /// Texts embedded by the model through this store, by this process.
    pub fn embedded(&self) -> usize {
        self.shared.embedded.load(Ordering::Relaxed)
    }

    /// Texts asked for (counted) and found stored or under way.
    pub fn reused(&self) -> usize {
        self.shared.reused.load(Ordering::Relaxed)
    }

    /// The batcher (its statistics).
    pub fn batcher(&self) -> &Batcher {
        &self.batcher
    }

    /// Vectors of this model stored in the database.
    pub fn stored(&self) -> Result<usize, StoreError> {
        let db = lock(&self.shared.db);
        db.query_row(
            &format!("SELECT count(*) FROM {TABLE} WHERE model = ?1 AND version = ?2"),
            params![self.shared.model_id, self.shared.model_version],
            |row| row.get::<_, i64>(0),
        )
        .map(|n| n as usize)
        .map_err(|source| self.shared.sql(source))
    }

    /// Fill `vectors[i]` for every key found in memory or in the database; the indexes of
    /// the others.
    fn lookup(
        &self,
        keys: &[TextKey],
        vectors: &mut [Option<Vector>],
    ) -> Result<Vec<usize>, StoreError> {
        let mut missing = Vec::new();
        {
            let memory = lock(&self.shared.memory);
            for (i, key) in keys.iter().enumerate() {
                match memory.get(key) {
                    Some(v) => vectors[i] = Some(Arc::clone(v)),
                    None => missing.push(i),
                }
            }
        }
        if missing.is_empty() {
            return Ok(missing);
        }
        let s = &self.shared;
        let mut still = Vec::new();
        let db = lock(&s.db);
        let mut stmt = db
            .prepare_cached(&format!(
                "SELECT vector FROM {TABLE} WHERE model = ?1 AND version = ?2 AND text_sha256 = ?3"
            ))
            .map_err(|e| s.sql(e))?;
        let mut found = Vec::new();
        for i in missing {
            let blob: Option<Vec<u8>> = stmt
                .query_row(params![s.model_id, s.model_version, &keys[i][..]], |row| {
                    row.get(0)
                })
                .optional()
                .map_err(|e| s.sql(e))?;
            match blob {
                Some(bytes) => {
                    let vector = s.decode(&keys[i], &bytes)?;
                    vectors[i] = Some(Arc::clone(&vector));
                    found.push((keys[i], vector));
                }
                None => still.push(i),
            }
        }
        drop(stmt);
        drop(db);
        lock(&s.memory).extend(found);
        Ok(still)
    }
}

impl Shared {
    fn sql(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sql {
            path: self.path.clone(),
            source,
        }
    }

    fn decode(&self, key: &TextKey, bytes: &[u8]) -> Result<Vector, StoreError> {
        if bytes.len() != self.dims * 4 {
            return Err(StoreError::Corrupt {
                key: hex(key),
                bytes: bytes.len(),
                expected: self.dims * 4,
            });
        }
        Ok(bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    /// On the batcher thread: store a finished batch, then answer its waiters.
    fn finish(&self, texts: &[String], result: Result<&[Vec<f32>], &Arc<ModelError>>) {
        let keys: Vec<TextKey> = texts.iter().map(|t| text_key(t)).collect();
        match result {
            Ok(vectors) => {
                self.embedded.fetch_add(texts.len(), Ordering::Relaxed);
                if let Err(error) = self.write(&keys, vectors) {
                    // Not fatal: the vectors still answer this run; the next run embeds
                    // them again.
                    tracing::warn!(%error, "could not store embeddings");
                }
                let shared: Vec<Vector> = vectors.iter().map(|v| Vector::from(&v[..])).collect();
                let mut memory = lock(&self.memory);
                for (key, v) in keys.iter().zip(&shared) {
                    memory.insert(*key, Arc::clone(v));
                }
                drop(memory);
                let mut in_flight = lock(&self.in_flight);
                for (key, v) in keys.iter().zip(&shared) {
                    for waiter in in_flight.remove(key).unwrap_or_default() {
                        let _ = waiter.send(Ok(Arc::clone(v)));
                    }
                }
            }
            Err(error) => {
                let mut in_flight = lock(&self.in_flight);
                for key in &keys {
                    for waiter in in_flight.remove(key).unwrap_or_default() {
                        let _ = waiter.send(Err(Arc::clone(error)));
                    }
                }
            }
        }
    }

    fn write(&self, keys: &[TextKey], vectors: &[Vec<f32>]) -> Result<(), StoreError> {
        let mut db = lock(&self.db);
        let tx = db.transaction().map_err(|e| self.sql(e))?;
        {
            let mut stmt = tx
                .prepare_cached(&format!(
                    "INSERT OR IGNORE INTO {TABLE} (model, version, text_sha256, dims, vector)
                     VALUES (?1, ?2, ?3, ?4, ?5)"
                ))
                .map_err(|e| self.sql(e))?;
            for (key, vector) in keys.iter().zip(vectors) {
                let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                stmt.execute(params![
                    self.model_id,
                    self.model_version,
                    &key[..],
                    vector.len() as i64,
                    bytes
                ])
                .map_err(|e| self.sql(e))?;
            }
        }
        tx.commit().map_err(|e| self.sql(e))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
