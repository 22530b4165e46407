//! [`PgCache`]: the work cache's entries in a PostgreSQL database, table `burr_cache`.

use async_trait::async_trait;
use burr_core::cache::{
    Bytes, CacheError, CacheKey, CachePrune, CacheStore, EntryInfo, GroupSummary, InputHash,
};

use crate::PostgresPersister;

/// A [`CacheStore`] in the database of a [`PostgresPersister`], in the table
/// `burr_cache` (created by the persister's schema migrations, version 3): the same
/// entries as [`SqliteCache`](burr_core::cache::SqliteCache) keeps in a file, shared by
/// every process and machine connected to the database.
///
/// Values are stored as `bytea` (an f32 vector as its little-endian bytes, JSON as its
/// text). Reads and writes use the persister's connection pool; a `put` of a key already
/// stored keeps the stored value (the first computation wins, as in SQLite).
///
/// ```no_run
/// use burr_core::cache::{Cache, CacheKey, InputHash};
/// use burr_postgres::{PgCache, PostgresPersister};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let persister = PostgresPersister::connect("postgres://burr@localhost/burr").await?;
/// let cache = Cache::new(PgCache::from_persister(&persister));
/// let key = CacheKey::new("upper", "1", InputHash::of_str("hello"));
/// let value = cache
///     .get_or_compute(&key, || async { Ok::<_, std::io::Error>("HELLO".into()) })
///     .await?;
/// assert_eq!(&value[..], b"HELLO");
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct PgCache {
    persister: PostgresPersister,
}

impl PgCache {
    /// The cache kept in `persister`'s database (sharing its connection pool).
    pub fn from_persister(persister: &PostgresPersister) -> Self {
        PgCache {
            persister: persister.clone(),
        }
    }

    /// The persister whose database holds the entries.
    pub fn persister(&self) -> &PostgresPersister {
        &self.persister
    }

    /// A pooled connection for `operation`.
    async fn conn(&self, operation: &'static str) -> Result<deadpool_postgres::Object, CacheError> {
        Ok(self.persister.pooled(operation).await?)
    }

    /// `error` of `operation`, naming the database.
    fn failed(&self, operation: &'static str, error: tokio_postgres::Error) -> CacheError {
        CacheError::from(self.persister.database_error(operation, error))
    }
}

const GET: &str = "SELECT value FROM burr_cache \
                   WHERE namespace = $1 AND version = $2 AND input_hash = $3";

/// A stored hash as text (64 hex digits; a malformed one says so).
fn hash_text(hash: &[u8]) -> String {
    InputHash::from_slice(hash)
        .map(|h| h.to_string())
        .unwrap_or_else(|| format!("(malformed: {} bytes)", hash.len()))
}

/// A count or size read from the database (never negative).
fn unsigned(value: i64) -> u64 {
    u64::try_from(value).unwrap_or_default()
}

#[async_trait]
impl CacheStore for PgCache {
    async fn get(&self, key: &CacheKey) -> Result<Option<Bytes>, CacheError> {
        const OP: &str = "read a cache entry";
        let conn = self.conn(OP).await?;
        let row = async {
            let statement = conn.prepare_cached(GET).await?;
            conn.query_opt(
                &statement,
                &[&key.namespace, &key.version, &&key.input.0[..]],
            )
            .await
        }
        .await
        .map_err(|error| self.failed(OP, error))?;
        Ok(row.map(|row| Bytes::from(row.get::<_, Vec<u8>>(0))))
    }

    async fn get_many(&self, keys: &[CacheKey]) -> Result<Vec<Option<Bytes>>, CacheError> {
        const OP: &str = "read cache entries";
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let conn = self.conn(OP).await?;
        // One statement for the batch: the keys as parallel arrays, their positions back.
        let namespaces: Vec<&str> = keys.iter().map(|k| k.namespace.as_str()).collect();
        let versions: Vec<&str> = keys.iter().map(|k| k.version.as_str()).collect();
        let hashes: Vec<&[u8]> = keys.iter().map(|k| &k.input.0[..]).collect();
        let rows = async {
            let statement = conn
                .prepare_cached(
                    "SELECT k.i, c.value \
                     FROM unnest($1::text[], $2::text[], $3::bytea[]) \
                          WITH ORDINALITY AS k(namespace, version, input_hash, i) \
                     JOIN burr_cache AS c ON c.namespace = k.namespace \
                          AND c.version = k.version AND c.input_hash = k.input_hash",
                )
                .await?;
            conn.query(&statement, &[&namespaces, &versions, &hashes])
                .await
        }
        .await
        .map_err(|error| self.failed(OP, error))?;
        let mut out = vec![None; keys.len()];
        for row in rows {
            let position: i64 = row.get(0);
            if let Some(slot) = usize::try_from(position - 1)
                .ok()
                .and_then(|i| out.get_mut(i))
            {
                *slot = Some(Bytes::from(row.get::<_, Vec<u8>>(1)));
            }
        }
        Ok(out)
    }

    async fn put_many(&self, entries: Vec<(CacheKey, Bytes)>) -> Result<(), CacheError> {
        const OP: &str = "store cache entries";
        if entries.is_empty() {
            return Ok(());
        }
        let conn = self.conn(OP).await?;
        let now_us = self.persister.now_micros();
        let namespaces: Vec<&str> = entries.iter().map(|(k, _)| k.namespace.as_str()).collect();
        let versions: Vec<&str> = entries.iter().map(|(k, _)| k.version.as_str()).collect();
        let hashes: Vec<&[u8]> = entries.iter().map(|(k, _)| &k.input.0[..]).collect();
        let values: Vec<&[u8]> = entries.iter().map(|(_, v)| &v[..]).collect();
        // One statement: all the entries or none.
        async {
            let statement = conn
                .prepare_cached(
                    "INSERT INTO burr_cache (namespace, version, input_hash, value, created_at_us) \
                     SELECT namespace, version, input_hash, value, $5 \
                     FROM unnest($1::text[], $2::text[], $3::bytea[], $4::bytea[]) \
                          AS e(namespace, version, input_hash, value) \
                     ON CONFLICT (namespace, version, input_hash) DO NOTHING",
                )
                .await?;
            conn.execute(
                &statement,
                &[&namespaces, &versions, &hashes, &values, &now_us],
            )
            .await
        }
        .await
        .map_err(|error| self.failed(OP, error))?;
        Ok(())
    }

    async fn list(
        &self,
        namespace: Option<&str>,
        limit: usize,
    ) -> Result<Vec<EntryInfo>, CacheError> {
        const OP: &str = "list cache entries";
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let conn = self.conn(OP).await?;
        let rows = async {
            let statement = conn
                .prepare_cached(
                    "SELECT namespace, version, input_hash, octet_length(value)::bigint, \
                            created_at_us \
                     FROM burr_cache WHERE $1::text IS NULL OR namespace = $1 \
                     ORDER BY created_at_us DESC, id DESC LIMIT $2",
                )
                .await?;
            conn.query(&statement, &[&namespace, &limit]).await
        }
        .await
        .map_err(|error| self.failed(OP, error))?;
        Ok(rows
            .iter()
            .map(|row| EntryInfo {
                namespace: row.get(0),
                version: row.get(1),
                input: hash_text(row.get(2)),
                bytes: unsigned(row.get(3)),
                created_at_us: row.get(4),
            })
            .collect())
    }

    async fn summary(&self, namespace: Option<&str>) -> Result<Vec<GroupSummary>, CacheError> {
        const OP: &str = "summarize cache entries";
        let conn = self.conn(OP).await?;
        let rows = async {
            let statement = conn
                .prepare_cached(
                    "SELECT namespace, version, count(*), \
                            coalesce(sum(octet_length(value)), 0)::bigint, \
                            min(created_at_us), max(created_at_us) \
                     FROM burr_cache WHERE $1::text IS NULL OR namespace = $1 \
                     GROUP BY namespace, version ORDER BY namespace, version",
                )
                .await?;
            conn.query(&statement, &[&namespace]).await
        }
        .await
        .map_err(|error| self.failed(OP, error))?;
        Ok(rows
            .iter()
            .map(|row| GroupSummary {
                namespace: row.get(0),
                version: row.get(1),
                entries: unsigned(row.get(2)),
                bytes: unsigned(row.get(3)),
                oldest_us: row.get(4),
                newest_us: row.get(5),
            })
            .collect())
    }

    async fn prune(&self, which: &CachePrune) -> Result<u64, CacheError> {
        const OP: &str = "prune cache entries";
        let conn = self.conn(OP).await?;
        async {
            let statement = conn
                .prepare_cached(
                    "DELETE FROM burr_cache WHERE ($1::text IS NULL OR namespace = $1) \
                     AND ($2::text IS NULL OR version = $2) \
                     AND ($3::text IS NULL OR version <> $3) \
                     AND ($4::bigint IS NULL OR created_at_us < $4)",
                )
                .await?;
            conn.execute(
                &statement,
                &[
                    &which.namespace,
                    &which.version,
                    &which.except_version,
                    &which.created_before_us,
                ],
            )
            .await
        }
        .await
        .map_err(|error| self.failed(OP, error))
    }
}
