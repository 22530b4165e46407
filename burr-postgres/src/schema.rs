//! The schema: its DDL, its version, and the migrations applied on connect (under an
//! advisory lock, so that processes connecting at once take turns), and [`migrate`].

use burr_core::persistence::PersistenceError;
use tokio_postgres::{Client, NoTls};

use crate::database::Target;

/// The schema version this build reads and writes.
pub const SCHEMA_VERSION: i64 = 3;

/// The key of the advisory lock migrations hold: `BURR` in ASCII, then `MIGR`.
const MIGRATION_LOCK: i64 = 0x4255_5252_4d49_4752;

/// `MIGRATIONS[v]` turns a database of version `v` into version `v + 1`.
const MIGRATIONS: &[&str] = &[V1, V2, V3];

/// The code each application was last built with (application version and graph
/// fingerprint), and each fingerprint's graph description (JSON), stored once: what the
/// resume guard and `check` compare the current code with.
const V2: &str = r#"
ALTER TABLE burr_apps ADD COLUMN code_version text;
ALTER TABLE burr_apps ADD COLUMN fingerprint text;
CREATE TABLE burr_graphs (
    fingerprint text COLLATE "C" PRIMARY KEY,
    description text NOT NULL
);
"#;

/// Version 1: applications, checkpoints, the values they set, leases. Names and keys are
/// in the `"C"` collation: compared byte by byte (code point order), as in SQLite, so
/// that a prefix is a range of the index whatever the database's locale.
const V1: &str = r#"
CREATE TABLE burr_apps (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    partition_key   text COLLATE "C" NOT NULL,
    app_id          text COLLATE "C" NOT NULL,
    created_at_us   bigint NOT NULL,
    fork_parent     text,
    spawning_parent text,
    UNIQUE (partition_key, app_id)
);

CREATE TABLE burr_checkpoints (
    app           bigint NOT NULL,
    sequence_id   bigint NOT NULL,
    attempt       bigint NOT NULL,
    position      text NOT NULL,
    status        text NOT NULL,
    prior_step    text,
    created_at_us bigint NOT NULL,
    changed_keys  text NOT NULL,
    error         text,
    inline_values text,
    PRIMARY KEY (app, sequence_id, attempt)
);

CREATE TABLE burr_values (
    app         bigint NOT NULL,
    key         text COLLATE "C" NOT NULL,
    sequence_id bigint NOT NULL,
    value       text,
    PRIMARY KEY (app, key, sequence_id)
);

CREATE TABLE burr_leases (
    partition_key  text COLLATE "C" NOT NULL,
    app_id         text COLLATE "C" NOT NULL,
    holder         text NOT NULL,
    attempt        bigint NOT NULL,
    host           text NOT NULL,
    machine        text NOT NULL,
    pid            bigint NOT NULL,
    pid_started    bigint,
    acquired_at_us bigint NOT NULL,
    expires_at_us  bigint NOT NULL,
    PRIMARY KEY (partition_key, app_id)
);
"#;

/// Version 3: the work cache ([`PgCache`](crate::PgCache)), as SQLite's `burr_cache`:
/// entries keyed by (namespace, version, input hash), values as `bytea`.
const V3: &str = r#"
CREATE TABLE burr_cache (
    id            bigint GENERATED ALWAYS AS IDENTITY,
    namespace     text COLLATE "C" NOT NULL,
    version       text COLLATE "C" NOT NULL,
    input_hash    bytea NOT NULL,
    value         bytea NOT NULL,
    created_at_us bigint NOT NULL,
    PRIMARY KEY (namespace, version, input_hash)
);
CREATE INDEX burr_cache_by_time ON burr_cache (created_at_us);
"#;

/// The table that holds the schema version (created before any migration).
const META: &str =
    "CREATE TABLE IF NOT EXISTS burr_meta (key text PRIMARY KEY, value text NOT NULL)";

/// Bring the burr schema of the database at `url` to [`SCHEMA_VERSION`]: create it in an
/// empty database, apply the migrations from the version it has. Returns the version it
/// had (0 for none).
///
/// [`PostgresPersister::connect`](crate::PostgresPersister::connect) does this itself; a
/// deployment may run it once before starting its workers (`burr migrate`). Safe to run
/// from several processes at once: they take turns on an advisory lock, and each finds
/// the work done by the first.
///
/// Fails with [`PersistenceError::Open`] when the database cannot be reached,
/// [`PersistenceError::SchemaTooNew`] when a newer burr-rs migrated it, and
/// [`PersistenceError::Database`] when a migration fails (nothing of it is applied).
pub async fn migrate(url: &str) -> Result<i64, PersistenceError> {
    let target = Target::parse(url)?;
    let client = connect_one(&target).await?;
    prepare(&client, &target).await
}

/// One connection, outside the pool, driven by a task of the current runtime.
pub(crate) async fn connect_one(target: &Target) -> Result<Client, PersistenceError> {
    let (client, connection) = target
        .config
        .connect(NoTls)
        .await
        .map_err(|error| target.open_error(error))?;
    let name = target.name.clone();
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(database = %name, %error, "a PostgreSQL connection ended");
        }
    });
    Ok(client)
}

/// Check the schema version, and migrate when it is older than this build's. Returns the
/// version found.
pub(crate) async fn prepare(client: &Client, target: &Target) -> Result<i64, PersistenceError> {
    // Most connects find the schema current: read it without taking the lock.
    let found = version(client, target).await?;
    if found == Some(SCHEMA_VERSION) {
        return Ok(SCHEMA_VERSION);
    }
    if let Some(found) = found.filter(|&v| v > SCHEMA_VERSION) {
        return Err(too_new(target, found));
    }
    let failed = |error| target.error("migrate", error);
    client.batch_execute("BEGIN").await.map_err(failed)?;
    let outcome = async {
        client
            .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(failed)?;
        client.batch_execute(META).await.map_err(failed)?;
        // Read again under the lock: another process may have migrated meanwhile.
        let from = version(client, target).await?.unwrap_or(0);
        if from > SCHEMA_VERSION {
            return Err(too_new(target, from));
        }
        for step in MIGRATIONS
            .iter()
            .skip(usize::try_from(from).unwrap_or_default())
        {
            client.batch_execute(step).await.map_err(failed)?;
        }
        client
            .execute(
                "INSERT INTO burr_meta (key, value) VALUES ('schema_version', $1) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&SCHEMA_VERSION.to_string()],
            )
            .await
            .map_err(failed)?;
        client
            .execute(
                "INSERT INTO burr_meta (key, value) VALUES ('created_by', $1) \
                 ON CONFLICT (key) DO NOTHING",
                &[&concat!("burr-rs ", env!("CARGO_PKG_VERSION"))],
            )
            .await
            .map_err(failed)?;
        client.batch_execute("COMMIT").await.map_err(failed)?;
        Ok(from)
    }
    .await;
    if outcome.is_err() {
        // Nothing was applied; a failed rollback (a lost connection) leaves nothing either.
        let _ = client.batch_execute("ROLLBACK").await;
    }
    outcome
}

/// The schema version stored, `None` in a database without burr's tables.
async fn version(client: &Client, target: &Target) -> Result<Option<i64>, PersistenceError> {
    let failed = |error| target.error("read the schema version", error);
    let exists: bool = client
        .query_one("SELECT to_regclass('burr_meta') IS NOT NULL", &[])
        .await
        .and_then(|row| row.try_get(0))
        .map_err(failed)?;
    if !exists {
        return Ok(None);
    }
    let row = client
        .query_opt(
            "SELECT value FROM burr_meta WHERE key = 'schema_version'",
            &[],
        )
        .await
        .map_err(failed)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let text: String = row.try_get(0).map_err(failed)?;
    text.parse()
        .map(Some)
        .map_err(|_| PersistenceError::NotABurrDatabase {
            path: target.path(),
            reason: format!("its burr_meta schema_version is `{text}`, not a number"),
        })
}

fn too_new(target: &Target, found: i64) -> PersistenceError {
    PersistenceError::SchemaTooNew {
        path: target.path(),
        found,
        supported: SCHEMA_VERSION,
    }
}
