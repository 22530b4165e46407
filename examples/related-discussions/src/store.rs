//! The per-text embedding store, built on the framework's content-addressed cache
//! ([`burr_core::cache`]): every vector is kept in the checkpoint database (table
//! `burr_cache`, written through the persister's group commit) under (model id, model
//! version, SHA-256 of the exact text sent to the model), as a blob of little-endian f32.
//! A text is embedded at most once per model across runs, meetings and processes;
//! concurrent callers asking for the same text while it is being embedded wait for that
//! one computation (the cache's in-flight coalescing) instead of repeating it.
//!
//! Misses go to the shared [`Batcher`], which puts the texts of every concurrent caller
//! into the same model batches. Vectors read once are kept in memory for the process.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use burr_core::cache::{Cache, CacheError, CacheKey, InputHash, SqliteCache};
use burr_core::persistence::SqlitePersister;

use crate::batcher::{BatchConfig, Batcher, OnBatch};
use crate::model::{Model, ModelError};

/// A stored vector, shared without copying.
pub type Vector = Arc<[f32]>;

/// The table the framework's cache keeps its entries in.
pub const TABLE: &str = "burr_cache";

/// Why a vector cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The cache (the database, a stored blob) failed.
    #[error("the embedding store failed")]
    Cache(#[from] CacheError),
    /// The model failed on the batch holding a text.
    #[error("the model failed")]
    Model(#[source] Arc<ModelError>),
    /// The batcher thread is gone (it panicked).
    #[error("the embedding batcher stopped")]
    Stopped,
}

/// The store, shared by every action of the process (cloning shares it).
#[derive(Clone)]
pub struct EmbeddingStore {
    shared: Arc<Shared>,
}

struct Shared {
    cache: Cache,
    batcher: Batcher,
    model_id: String,
    model_version: String,
    memory: Mutex<HashMap<InputHash, Vector>>,
    embedded: AtomicUsize,
    reused: AtomicUsize,
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
    /// The store in the checkpoint database of `persister`, embedding misses with `model`
    /// through a batcher configured by `config`.
    pub fn open(persister: &SqlitePersister, model: Arc<Model>, config: BatchConfig) -> Self {
        EmbeddingStore::new(
            Cache::new(SqliteCache::from_persister(persister)),
            model,
            config,
        )
    }

    /// The store in `cache` (any database's work cache, e.g. burr-server's
    /// `Backend::cache`), embedding misses with `model` through a batcher configured by
    /// `config`.
    pub fn new(cache: Cache, model: Arc<Model>, config: BatchConfig) -> Self {
        let model_id = model.id().to_owned();
        let model_version = model.version().to_owned();
        // The cache stores what the batcher computes; nothing more to do per batch.
        let on_batch: OnBatch = Box::new(|_, _| {});
        EmbeddingStore {
            shared: Arc::new(Shared {
                cache,
                batcher: Batcher::start(model, config, on_batch),
                model_id,
                model_version,
                memory: Mutex::default(),
                embedded: AtomicUsize::new(0),
                reused: AtomicUsize::new(0),
            }),
        }
    }

    /// The key of `text`: (model id, model version, SHA-256 of the text).
    pub fn key(&self, text: &str) -> CacheKey {
        CacheKey::new(
            self.shared.model_id.clone(),
            self.shared.model_version.clone(),
            InputHash::of_str(text),
        )
    }

    /// The vectors of `texts`: from memory, from the database, from a computation already
    /// under way, or embedded now (in the batcher's next batch). With `count`, what was
    /// found adds to [`reused`](Self::reused) (filling the index does not count).
    pub async fn get_many(&self, texts: &[String], count: bool) -> Result<Lookup, StoreError> {
        self.get_many_at(texts, count, 0).await
    }

    /// [`get_many`](Self::get_many), what must be embedded queued at `priority` (see
    /// [`Batcher::submit_at`]).
    pub async fn get_many_at(
        &self,
        texts: &[String],
        count: bool,
        priority: i32,
    ) -> Result<Lookup, StoreError> {
        let s = &*self.shared;
        let hashes: Vec<InputHash> = texts.iter().map(|t| InputHash::of_str(t)).collect();
        let mut vectors: Vec<Option<Vector>> = {
            let memory = lock(&s.memory);
            hashes.iter().map(|h| memory.get(h).cloned()).collect()
        };
        let missing: Vec<usize> = (0..texts.len()).filter(|&i| vectors[i].is_none()).collect();
        let mut embedded = 0;
        if !missing.is_empty() {
            let keys: Vec<CacheKey> = missing
                .iter()
                .map(|&i| CacheKey::new(s.model_id.clone(), s.model_version.clone(), hashes[i]))
                .collect();
            let computed = AtomicUsize::new(0);
            let found = s
                .cache
                .get_or_compute_f32s_many(&keys, |todo: Vec<usize>| {
                    computed.fetch_add(todo.len(), Ordering::Relaxed);
                    let receivers: Vec<_> = todo
                        .iter()
                        .map(|&j| s.batcher.submit_at(texts[missing[j]].clone(), priority))
                        .collect();
                    async move {
                        let mut out = Vec::with_capacity(receivers.len());
                        for receiver in receivers {
                            out.push(
                                receiver
                                    .await
                                    .map_err(|_| StoreError::Stopped)?
                                    .map_err(StoreError::Model)?,
                            );
                        }
                        Ok::<_, StoreError>(out)
                    }
                })
                .await?;
            embedded = computed.into_inner();
            s.embedded.fetch_add(embedded, Ordering::Relaxed);
            let mut memory = lock(&s.memory);
            for (&i, vector) in missing.iter().zip(found) {
                let vector = Vector::from(vector);
                memory.insert(hashes[i], Arc::clone(&vector));
                vectors[i] = Some(vector);
            }
        }
        let reused = texts.len() - embedded;
        if count {
            s.reused.fetch_add(reused, Ordering::Relaxed);
        }
        Ok(Lookup {
            vectors: vectors.into_iter().map(|v| v.expect("filled")).collect(),
            embedded,
            reused,
        })
    }

    /// The vectors of `texts` embedded again by the model even when they are stored
    /// (`force`: e.g. to check a model after an upgrade), queued at `priority`. Each
    /// counts as embedded. The fresh vectors are used from now on in this process; the
    /// database keeps its entry when it has one (a cache entry names its work: the same
    /// model version gives the same vector; an upgraded model has another version, so
    /// its vectors are new entries).
    pub async fn refresh_many_at(
        &self,
        texts: &[String],
        priority: i32,
    ) -> Result<Lookup, StoreError> {
        let s = &*self.shared;
        let receivers: Vec<_> = texts
            .iter()
            .map(|t| s.batcher.submit_at(t.clone(), priority))
            .collect();
        let mut vectors = Vec::with_capacity(texts.len());
        let mut entries = Vec::with_capacity(texts.len());
        for (text, receiver) in texts.iter().zip(receivers) {
            let vector = receiver
                .await
                .map_err(|_| StoreError::Stopped)?
                .map_err(StoreError::Model)?;
            entries.push((self.key(text), burr_core::cache::encode_f32s(&vector)));
            vectors.push(Vector::from(vector));
        }
        s.cache.store().put_many(entries).await?;
        s.embedded.fetch_add(texts.len(), Ordering::Relaxed);
        let mut memory = lock(&s.memory);
        for (text, vector) in texts.iter().zip(&vectors) {
            memory.insert(InputHash::of_str(text), Arc::clone(vector));
        }
        Ok(Lookup {
            vectors,
            embedded: texts.len(),
            reused: 0,
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
        &self.shared.batcher
    }

    /// Vectors of this model and version stored in the database.
    pub async fn stored(&self) -> Result<usize, StoreError> {
        let s = &*self.shared;
        let groups = s.cache.store().summary(Some(&s.model_id)).await?;
        Ok(groups
            .iter()
            .filter(|g| g.version == s.model_version)
            .map(|g| g.entries as usize)
            .sum())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
