//! The content-addressed work cache: a value stored under what computed it, its version
//! and the hash of exactly what went in, so that a piece of work (an embedding, a
//! memoized step) is done at most once per version, across applications, runs and
//! processes.
//!
//! - [`CacheKey`] = (namespace, version, [`InputHash`]): the namespace names what
//!   computed the value (a model id, an action's name), the version its version (a new
//!   version is a new set of entries: nothing computed by an older one is reused), the
//!   input hash is SHA-256 over the pieces of the input ([`InputHasher`]: bytes,
//!   strings, JSON values with sorted object keys), stable across processes and builds.
//! - [`CacheStore`]: where entries are kept: [`InMemoryCache`], or [`SqliteCache`] in the
//!   checkpoint database of a [`SqlitePersister`](crate::persistence::SqlitePersister)
//!   (table `burr_cache`, written through the persister's group commit). A store lists
//!   ([`list`](CacheStore::list), [`summary`](CacheStore::summary)), sizes
//!   ([`size`](CacheStore::size)) and prunes ([`prune`](CacheStore::prune) with a
//!   [`CachePrune`]: by namespace, version, other versions, age) its entries.
//! - [`Cache`]: the handle to use: [`get_or_compute`](Cache::get_or_compute) and
//!   [`get_or_compute_many`](Cache::get_or_compute_many) return stored values and compute
//!   the missing ones, with concurrent identical requests coalesced into one
//!   computation; typed forms for JSON values and for `f32` vectors
//!   ([`get_or_compute_json`](Cache::get_or_compute_json),
//!   [`get_or_compute_f32s_many`](Cache::get_or_compute_f32s_many)).
//! - Values are bytes ([`Bytes`]); [`encode_json`], [`decode_json`],
//!   [`encode_f32s`] and [`decode_f32s`] convert typed values (an `f32` vector is a
//!   little-endian blob, 4 bytes a number).
//!
//! Why SHA-256: a stable, standard 256-bit hash whose collisions are out of reach (an
//! entry is trusted by its key alone), from RustCrypto's `sha2`, which the dependency
//! tree already held and which uses the CPU's SHA extensions where present (~2 GB/s).

mod codec;
mod error;
mod handle;
mod key;
mod memory;
#[cfg(feature = "sqlite")]
mod sqlite;
mod store;

pub use codec::{decode_f32s, decode_json, encode_f32s, encode_json};
pub use error::CacheError;
pub use handle::{Cache, CacheStats};
pub use key::{CacheKey, InputHash, InputHasher};
pub use memory::InMemoryCache;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteCache;
pub use store::{CachePrune, CacheSize, CacheStore, EntryInfo, GroupSummary};

/// Bytes, as values are held (re-exported: build one from a `Vec<u8>` without a copy).
pub use bytes::Bytes;
