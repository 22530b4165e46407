//! [`SqliteCache`]: cache entries in the checkpoint database, table `burr_cache`.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension};

use super::error::CacheError;
use super::key::{CacheKey, InputHash};
use super::store::{CachePrune, CacheStore, EntryInfo, GroupSummary};
use crate::persistence::SqlitePersister;

/// A [`CacheStore`] in the checkpoint database of a [`SqlitePersister`], in the table
/// `burr_cache` (created by the persister's schema migrations, version 3).
///
/// Writes go through the persister's writer ([`SqlitePersister::write_with`]): they are
/// committed together with the checkpoints of the applications saving at the same time,
/// never fighting them for SQLite's write lock. Reads use the persister's reader
/// connections and never wait for the writer. Any process opening the same file sees
/// the entries once committed. Built from a read-only persister, it reads (list, size)
/// and refuses writes.
///
/// ```
/// use burr_core::cache::{Cache, CacheKey, InputHash, SqliteCache};
/// use burr_core::persistence::SqlitePersister;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// let persister = SqlitePersister::open(dir.path().join("burr.db"))?;
/// let cache = Cache::new(SqliteCache::from_persister(&persister));
/// let key = CacheKey::new("upper", "1", InputHash::of_str("hello"));
/// let value = cache
///     .get_or_compute(&key, || async { Ok::<_, std::io::Error>("HELLO".into()) })
///     .await?;
/// assert_eq!(&value[..], b"HELLO");
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct SqliteCache {
    persister: SqlitePersister,
}

impl SqliteCache {
    /// The cache kept in `persister`'s database (sharing its writer and readers).
    pub fn from_persister(persister: &SqlitePersister) -> Self {
        SqliteCache {
            persister: persister.clone(),
        }
    }

    /// The persister whose file holds the entries.
    pub fn persister(&self) -> &SqlitePersister {
        &self.persister
    }

    fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, CacheError> {
        Ok(self.persister.read_with(read)?)
    }
}

const GET: &str = "SELECT value FROM burr_cache \
                   WHERE namespace = ?1 AND version = ?2 AND input_hash = ?3";

fn get_one(conn: &Connection, key: &CacheKey) -> rusqlite::Result<Option<Bytes>> {
    conn.prepare_cached(GET)?
        .query_row((&key.namespace, &key.version, &key.input.0[..]), |row| {
            row.get::<_, Vec<u8>>(0)
        })
        .optional()
        .map(|value| value.map(Bytes::from))
}

#[async_trait]
impl CacheStore for SqliteCache {
    async fn get(&self, key: &CacheKey) -> Result<Option<Bytes>, CacheError> {
        self.read(|conn| get_one(conn, key))
    }

    async fn get_many(&self, keys: &[CacheKey]) -> Result<Vec<Option<Bytes>>, CacheError> {
        self.read(|conn| {
            // One read transaction: a consistent view, and one lock taken.
            conn.execute_batch("BEGIN")?;
            let values = keys.iter().map(|key| get_one(conn, key)).collect();
            let _ = conn.execute_batch("COMMIT");
            values
        })
    }

    async fn put_many(&self, entries: Vec<(CacheKey, Bytes)>) -> Result<(), CacheError> {
        if entries.is_empty() {
            return Ok(());
        }
        let entries = Arc::new(entries);
        self.persister
            .write_with(move |conn, now_us| {
                let mut insert = conn.prepare_cached(
                    "INSERT INTO burr_cache (namespace, version, input_hash, value, created_at_us) \
                     VALUES (?1, ?2, ?3, ?4, ?5) \
                     ON CONFLICT (namespace, version, input_hash) DO NOTHING",
                )?;
                for (key, value) in entries.iter() {
                    insert.execute((
                        &key.namespace,
                        &key.version,
                        &key.input.0[..],
                        &value[..],
                        now_us,
                    ))?;
                }
                Ok(())
            })
            .await?;
        Ok(())
    }

    async fn list(
        &self,
        namespace: Option<&str>,
        limit: usize,
    ) -> Result<Vec<EntryInfo>, CacheError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|conn| {
            let mut statement = conn.prepare_cached(
                "SELECT namespace, version, input_hash, length(value), created_at_us \
                 FROM burr_cache WHERE ?1 IS NULL OR namespace = ?1 \
                 ORDER BY created_at_us DESC, id DESC LIMIT ?2",
            )?;
            let rows = statement.query_map((namespace, limit), |row| {
                let hash: Vec<u8> = row.get(2)?;
                Ok(EntryInfo {
                    namespace: row.get(0)?,
                    version: row.get(1)?,
                    input: InputHash::from_slice(&hash)
                        .map(|h| h.to_string())
                        .unwrap_or_else(|| format!("(malformed: {} bytes)", hash.len())),
                    bytes: row.get::<_, i64>(3)?.try_into().unwrap_or_default(),
                    created_at_us: row.get(4)?,
                })
            })?;
            rows.collect()
        })
    }

    async fn summary(&self, namespace: Option<&str>) -> Result<Vec<GroupSummary>, CacheError> {
        self.read(|conn| {
            let mut statement = conn.prepare_cached(
                "SELECT namespace, version, count(*), coalesce(sum(length(value)), 0), \
                        min(created_at_us), max(created_at_us) \
                 FROM burr_cache WHERE ?1 IS NULL OR namespace = ?1 \
                 GROUP BY namespace, version ORDER BY namespace, version",
            )?;
            let rows = statement.query_map([namespace], |row| {
                Ok(GroupSummary {
                    namespace: row.get(0)?,
                    version: row.get(1)?,
                    entries: row.get::<_, i64>(2)?.try_into().unwrap_or_default(),
                    bytes: row.get::<_, i64>(3)?.try_into().unwrap_or_default(),
                    oldest_us: row.get(4)?,
                    newest_us: row.get(5)?,
                })
            })?;
            rows.collect()
        })
    }

    async fn prune(&self, which: &CachePrune) -> Result<u64, CacheError> {
        let which = which.clone();
        let deleted = self
            .persister
            .write_with(move |conn, _| {
                conn.prepare_cached(
                    "DELETE FROM burr_cache WHERE (?1 IS NULL OR namespace = ?1) \
                     AND (?2 IS NULL OR version = ?2) AND (?3 IS NULL OR version <> ?3) \
                     AND (?4 IS NULL OR created_at_us < ?4)",
                )?
                .execute((
                    &which.namespace,
                    &which.version,
                    &which.except_version,
                    which.created_before_us,
                ))
            })
            .await?;
        Ok(deleted as u64)
    }
}
