//! [`Cache`]: a [`CacheStore`] with computations on a miss, concurrent identical requests
//! coalesced into one computation.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::watch;

use super::codec::{decode_f32s, decode_json, encode_f32s, encode_json};
use super::error::CacheError;
use super::key::CacheKey;
use super::store::CacheStore;

/// What a computation in flight ends with: `None` until it ends.
type Outcome = Option<Result<Bytes, CacheError>>;

/// The computations in flight, by key: each one's outcome, watched by its waiters.
type Flights = HashMap<CacheKey, watch::Receiver<Outcome>>;

/// A [`CacheStore`] and the computations this process runs for it.
///
/// [`get_or_compute`](Self::get_or_compute) returns the stored value, or computes,
/// stores and returns it. Concurrent calls with the same key — through this handle or a
/// clone of it — run one computation: the first caller computes, the others wait for its
/// outcome. A computation's error is given to every caller that waited for it, and
/// nothing is stored (the next call computes again). A caller that is cancelled while it
/// computes hands the work over: one of those waiting computes instead.
///
/// Share one handle (clone it) in a process: two handles built separately on the same
/// store coalesce nothing between them. Two processes on the same file coalesce nothing
/// either; both may compute an entry missing at the same time, and the first stored
/// value is kept.
///
/// ```
/// use burr_core::cache::{Cache, CacheKey, InMemoryCache, InputHash};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), burr_core::cache::CacheError> {
/// let cache = Cache::new(InMemoryCache::new());
/// let texts = ["a", "b", "a"];
/// let keys: Vec<CacheKey> = texts
///     .iter()
///     .map(|t| CacheKey::new("toy-model", "1", InputHash::of_str(t)))
///     .collect();
/// // One call computes the misses ("a" once, "b"), by their index in `keys`.
/// let vectors = cache
///     .get_or_compute_f32s_many(&keys, |missing| async move {
///         Ok::<_, std::io::Error>(missing.iter().map(|&i| vec![texts[i].len() as f32]).collect())
///     })
///     .await?;
/// assert_eq!(vectors, vec![vec![1.0], vec![1.0], vec![1.0]]);
/// assert_eq!(cache.stats().computed, 2);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn CacheStore>,
    flights: Mutex<Flights>,
    hits: AtomicU64,
    computed: AtomicU64,
    coalesced: AtomicU64,
    compute_calls: AtomicU64,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// What a [`Cache`] handle did since it was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Entries found in the store.
    pub hits: u64,
    /// Entries computed (and stored) by this handle.
    pub computed: u64,
    /// Requests that waited for a computation another caller ran.
    pub coalesced: u64,
    /// Calls of a compute function that succeeded or failed (a batch is one).
    pub compute_calls: u64,
}

/// A key this caller computes: its outcome goes to the waiters when it is published or,
/// unpublished, when the claim is dropped (then they compute instead).
struct Claims<'a> {
    flights: &'a Mutex<Flights>,
    senders: Vec<(CacheKey, watch::Sender<Outcome>)>,
}

impl Claims<'_> {
    fn publish(&mut self, index: usize, outcome: Result<Bytes, CacheError>) {
        // No receiver left is fine: nobody waited.
        let _ = self.senders[index].1.send(Some(outcome));
    }
}

impl Drop for Claims<'_> {
    fn drop(&mut self) {
        // Only the claimant inserts and removes its keys, so the entries are its own.
        let mut flights = lock(self.flights);
        for (key, _) in &self.senders {
            flights.remove(key);
        }
    }
}

fn lock(flights: &Mutex<Flights>) -> MutexGuard<'_, Flights> {
    flights.lock().unwrap_or_else(|p| p.into_inner())
}

/// How a waited-for computation ended: `None` when its caller gave it up.
async fn wait(mut receiver: watch::Receiver<Outcome>) -> Option<Result<Bytes, CacheError>> {
    match receiver.wait_for(Option::is_some).await {
        Ok(outcome) => outcome.clone(),
        Err(_) => None,
    }
}

fn compute_error(key: &CacheKey, error: impl Into<Box<dyn StdError + Send + Sync>>) -> CacheError {
    CacheError::Compute {
        key: key.to_string(),
        source: Arc::from(error.into()),
    }
}

impl Cache {
    /// A handle on `store`.
    pub fn new(store: impl CacheStore) -> Self {
        Self::from_arc(Arc::new(store))
    }

    /// A handle on a shared store.
    pub fn from_arc(store: Arc<dyn CacheStore>) -> Self {
        Cache {
            inner: Arc::new(Inner {
                store,
                flights: Mutex::new(HashMap::new()),
                hits: AtomicU64::new(0),
                computed: AtomicU64::new(0),
                coalesced: AtomicU64::new(0),
                compute_calls: AtomicU64::new(0),
            }),
        }
    }

    /// The store (to list, size or prune its entries).
    pub fn store(&self) -> &Arc<dyn CacheStore> {
        &self.inner.store
    }

    /// What this handle (and its clones) did so far.
    pub fn stats(&self) -> CacheStats {
        let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
        CacheStats {
            hits: load(&self.inner.hits),
            computed: load(&self.inner.computed),
            coalesced: load(&self.inner.coalesced),
            compute_calls: load(&self.inner.compute_calls),
        }
    }

    /// The stored value of `key`, if any (computes nothing).
    pub async fn get(&self, key: &CacheKey) -> Result<Option<Bytes>, CacheError> {
        self.inner.store.get(key).await
    }

    /// Store `value` under `key` (kept as it is if the key is stored already).
    pub async fn put(&self, key: &CacheKey, value: Bytes) -> Result<(), CacheError> {
        self.inner.store.put(key, value).await
    }

    /// The value stored under `key`; when there is none, `compute`'s, stored first.
    /// Concurrent calls for the same key run `compute` once (see [`Cache`]). A failing
    /// `compute` stores nothing; its error ([`CacheError::Compute`]) goes to this caller
    /// and to every caller that waited for it.
    pub async fn get_or_compute<F, Fut, E>(
        &self,
        key: &CacheKey,
        compute: F,
    ) -> Result<Bytes, CacheError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Bytes, E>>,
        E: Into<Box<dyn StdError + Send + Sync>>,
    {
        let mut compute = Some(compute);
        let mut values = self
            .get_or_compute_many(std::slice::from_ref(key), |_| {
                let compute = compute.take();
                async move {
                    match compute {
                        Some(compute) => compute().await.map(|value| vec![value]),
                        // A single key is computed by one call at most: the batch
                        // computes again only keys whose computation was abandoned by
                        // another caller, never its own.
                        None => Ok(Vec::new()),
                    }
                }
            })
            .await?;
        Ok(values.pop().unwrap_or_default())
    }

    /// The values stored under `keys`, in order, computing the missing ones with one call
    /// of `compute`: it gets the indices (into `keys`) of the missing entries, each
    /// distinct key once, and returns their values in that order. Keys being computed
    /// by another caller at the same time are waited for, not computed again. `compute`
    /// is called again only if such another caller gave up (was cancelled) before it
    /// finished: then for those keys alone.
    ///
    /// A failing `compute` stores nothing and fails the whole call (and the callers that
    /// waited for any of its keys); entries computed earlier stay stored.
    pub async fn get_or_compute_many<F, Fut, E>(
        &self,
        keys: &[CacheKey],
        mut compute: F,
    ) -> Result<Vec<Bytes>, CacheError>
    where
        F: FnMut(Vec<usize>) -> Fut,
        Fut: Future<Output = Result<Vec<Bytes>, E>>,
        E: Into<Box<dyn StdError + Send + Sync>>,
    {
        let inner = &*self.inner;
        let mut results: Vec<Option<Bytes>> = vec![None; keys.len()];
        loop {
            // Each distinct missing key, with the indices that ask for it.
            let mut wanted: Vec<(&CacheKey, Vec<usize>)> = Vec::new();
            let mut position: HashMap<&CacheKey, usize> = HashMap::new();
            for (index, key) in keys.iter().enumerate() {
                if results[index].is_some() {
                    continue;
                }
                match position.get(key) {
                    Some(&at) => wanted[at].1.push(index),
                    None => {
                        position.insert(key, wanted.len());
                        wanted.push((key, vec![index]));
                    }
                }
            }
            if wanted.is_empty() {
                return Ok(results.into_iter().map(Option::unwrap_or_default).collect());
            }
            // Claim the keys no one computes; wait for the others.
            let mut claims = Claims {
                flights: &inner.flights,
                senders: Vec::new(),
            };
            let mut claimed: Vec<Vec<usize>> = Vec::new();
            let mut waits: Vec<(watch::Receiver<Outcome>, Vec<usize>)> = Vec::new();
            {
                let mut flights = lock(&inner.flights);
                for (key, indices) in wanted {
                    match flights.get(key) {
                        Some(receiver) => waits.push((receiver.clone(), indices)),
                        None => {
                            let (sender, receiver) = watch::channel(None);
                            flights.insert(key.clone(), receiver);
                            claims.senders.push((key.clone(), sender));
                            claimed.push(indices);
                        }
                    }
                }
            }
            if !claims.senders.is_empty() {
                self.lead(&mut claims, &claimed, keys, &mut results, &mut compute)
                    .await?;
            }
            // Published (or given up): the waiters may go on, the keys are free.
            drop(claims);
            for (receiver, indices) in waits {
                inner.coalesced.fetch_add(1, Ordering::Relaxed);
                match wait(receiver).await {
                    Some(Ok(value)) => {
                        for index in indices {
                            results[index] = Some(value.clone());
                        }
                    }
                    Some(Err(error)) => return Err(error),
                    // Given up: the next round claims it.
                    None => {}
                }
            }
        }
    }

    /// Read the claimed keys from the store, compute the misses, store and publish them.
    async fn lead<F, Fut, E>(
        &self,
        claims: &mut Claims<'_>,
        claimed: &[Vec<usize>],
        keys: &[CacheKey],
        results: &mut [Option<Bytes>],
        compute: &mut F,
    ) -> Result<(), CacheError>
    where
        F: FnMut(Vec<usize>) -> Fut,
        Fut: Future<Output = Result<Vec<Bytes>, E>>,
        E: Into<Box<dyn StdError + Send + Sync>>,
    {
        let inner = &*self.inner;
        let claimed_keys: Vec<CacheKey> = claims.senders.iter().map(|(k, _)| k.clone()).collect();
        let stored = match inner.store.get_many(&claimed_keys).await {
            Ok(stored) => stored,
            Err(error) => {
                for at in 0..claims.senders.len() {
                    claims.publish(at, Err(error.clone()));
                }
                return Err(error);
            }
        };
        let mut misses = Vec::new();
        for (at, value) in stored.into_iter().enumerate() {
            match value {
                Some(value) => {
                    inner.hits.fetch_add(1, Ordering::Relaxed);
                    for &index in &claimed[at] {
                        results[index] = Some(value.clone());
                    }
                    claims.publish(at, Ok(value));
                }
                None => misses.push(at),
            }
        }
        if misses.is_empty() {
            return Ok(());
        }
        let asked: Vec<usize> = misses.iter().map(|&at| claimed[at][0]).collect();
        let computed = compute(asked).await;
        inner.compute_calls.fetch_add(1, Ordering::Relaxed);
        let first = &keys[claimed[misses[0]][0]];
        let values = match computed {
            Ok(values) if values.len() == misses.len() => Ok(values),
            Ok(values) => Err(CacheError::WrongCount {
                namespace: first.namespace.clone(),
                asked: misses.len(),
                returned: values.len(),
            }),
            Err(error) => Err(compute_error(first, error)),
        };
        let values = match values {
            Ok(values) => values,
            Err(error) => {
                // Every caller waiting for these keys gets the error; nothing is stored.
                for &at in &misses {
                    claims.publish(at, Err(error.clone()));
                }
                return Err(error);
            }
        };
        let entries: Vec<(CacheKey, Bytes)> = misses
            .iter()
            .map(|&at| claimed_keys[at].clone())
            .zip(values)
            .collect();
        if let Err(error) = inner.store.put_many(entries.clone()).await {
            // The values are good: they are returned, and computed again next time.
            tracing::warn!(%error, namespace = %first.namespace, "computed cache entries could not be stored");
        }
        inner
            .computed
            .fetch_add(entries.len() as u64, Ordering::Relaxed);
        for (&at, (_, value)) in misses.iter().zip(entries) {
            for &index in &claimed[at] {
                results[index] = Some(value.clone());
            }
            claims.publish(at, Ok(value));
        }
        Ok(())
    }

    /// [`get_or_compute`](Self::get_or_compute) for a value stored as JSON.
    pub async fn get_or_compute_json<T, F, Fut, E>(
        &self,
        key: &CacheKey,
        compute: F,
    ) -> Result<T, CacheError>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: Into<Box<dyn StdError + Send + Sync>>,
    {
        let bytes = self
            .get_or_compute(key, || async {
                let value = compute().await.map_err(|e| compute_error(key, e))?;
                encode_json(key, &value)
            })
            .await
            .map_err(unwrap_compute)?;
        decode_json(key, &bytes)
    }

    /// [`get_or_compute_many`](Self::get_or_compute_many) for vectors of `f32` (stored
    /// as little-endian blobs): embeddings.
    pub async fn get_or_compute_f32s_many<F, Fut, E>(
        &self,
        keys: &[CacheKey],
        mut compute: F,
    ) -> Result<Vec<Vec<f32>>, CacheError>
    where
        F: FnMut(Vec<usize>) -> Fut,
        Fut: Future<Output = Result<Vec<Vec<f32>>, E>>,
        E: Into<Box<dyn StdError + Send + Sync>>,
    {
        let blobs = self
            .get_or_compute_many(keys, |missing| {
                let computed = compute(missing);
                async move {
                    computed
                        .await
                        .map(|vectors| vectors.iter().map(|v| encode_f32s(v)).collect())
                }
            })
            .await?;
        keys.iter()
            .zip(blobs)
            .map(|(key, blob)| decode_f32s(key, &blob))
            .collect()
    }
}

/// A [`CacheError::Compute`] whose source is itself a [`CacheError`] (an encoding
/// error inside a typed computation, or the computation's own error wrapped once
/// already) is returned as that error.
fn unwrap_compute(error: CacheError) -> CacheError {
    if let CacheError::Compute { source, .. } = &error {
        if let Some(inner) = source.downcast_ref::<CacheError>() {
            return inner.clone();
        }
    }
    error
}
