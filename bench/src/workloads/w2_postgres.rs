//! W2 (and W2b) on PostgreSQL (`--db postgres://…`), against the floor of a raw
//! `INSERT` committed on the same server, with `synchronous_commit` on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use burr_core::persistence::Persister;
use burr_core::Inputs;
use burr_postgres::PostgresPersister;
use serde_json::{json, Value};
use tokio_postgres::{Client, NoTls};

/// A connection of its own, driven on the current runtime.
pub async fn connect(url: &str) -> Result<Client, Box<dyn std::error::Error>> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// The server's durability settings: `synchronous_commit` and `fsync`. W2 is measured
/// with both on (a commit is flushed to the server's disk before it is acknowledged).
pub async fn durability(client: &Client) -> Result<(String, String), Box<dyn std::error::Error>> {
    let commit: String = client
        .query_one("SHOW synchronous_commit", &[])
        .await?
        .get(0);
    let fsync: String = client.query_one("SHOW fsync", &[]).await?.get(0);
    Ok((commit, fsync))
}

/// One round of W2 / W2b on a [`PostgresPersister`] (a new app id per round), each step
/// after the first timed, interleaved with the floor: before each step, a raw prepared
/// `INSERT` of one row (its position and state) committed on `client` (an `INSERT` in
/// autocommit mode is its own transaction: one round trip, one WAL flush). Step by step,
/// so that both see the same server and disk: a WAL flush on a shared disk takes from
/// 0.2 to 10 ms from one second to the next. Returns the line, with the floor's
/// `floor_us_per_commit`.
pub async fn round(
    persister: &Arc<PostgresPersister>,
    client: &Client,
    n: u64,
    big: bool,
    round: usize,
) -> Result<Value, Box<dyn std::error::Error>> {
    client
        .batch_execute(
            "SET synchronous_commit = on;
             CREATE TABLE IF NOT EXISTS burr_bench_floor (
                 app text, sequence_id bigint, position text, state text,
                 PRIMARY KEY (app, sequence_id))",
        )
        .await?;
    let floor_app = format!("floor-{round}-{}", std::process::id());
    let insert = client
        .prepare("INSERT INTO burr_bench_floor VALUES ($1, $2, 'increment', $3)")
        .await?;
    let app_id = format!("w2-{big}-{round}-{}", std::process::id());
    let store: Arc<dyn Persister> = Arc::clone(persister) as Arc<dyn Persister>;
    let mut app = super::w2::counter(n, big, &app_id, store).build().await?;
    app.step(Inputs::new()).await?;
    let bytes_after_first = database_bytes(client).await?;
    let (mut floor, mut workload) = (Duration::ZERO, Duration::ZERO);
    let (mut commits, mut steps) = (0u64, 0u64);
    loop {
        let started = Instant::now();
        let seq = commits as i64;
        client
            .execute(
                &insert,
                &[&floor_app, &seq, &format!("{{\"count\":{seq}}}")],
            )
            .await?;
        floor += started.elapsed();
        commits += 1;
        let started = Instant::now();
        let stepped = app.step(Inputs::new()).await?.is_some();
        workload += started.elapsed();
        if !stepped {
            break;
        }
        steps += 1;
    }
    let bytes = database_bytes(client).await?;
    client
        .execute("DELETE FROM burr_bench_floor WHERE app = $1", &[&floor_app])
        .await?;
    Ok(json!({
        "workload": if big { "w2b" } else { "w2" },
        "backend": "postgres",
        "tracked": false,
        "n": n,
        "steps": steps + 1,
        "us_per_step": workload.as_secs_f64() * 1e6 / steps.max(1) as f64,
        "floor_us_per_commit": floor.as_secs_f64() * 1e6 / commits as f64,
        "bytes_per_step": bytes.saturating_sub(bytes_after_first) as f64 / steps.max(1) as f64,
        "db_bytes": bytes,
    }))
}

/// The bytes burr's tables take (heap, indexes, TOAST): page-granular, so a per-step
/// figure is rough.
async fn database_bytes(client: &Client) -> Result<u64, Box<dyn std::error::Error>> {
    let bytes: i64 = client
        .query_one(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c \
             WHERE c.relkind = 'r' AND c.relname LIKE 'burr\\_%' AND c.relname <> 'burr_bench_floor'",
            &[],
        )
        .await?
        .get(0);
    Ok(u64::try_from(bytes).unwrap_or_default())
}

/// The transactions committed in the current database so far, as PostgreSQL's
/// statistics count them (a backend reports them at the latest when it exits).
async fn transactions(client: &Client) -> Result<i64, Box<dyn std::error::Error>> {
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    Ok(client
        .query_one(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
            &[],
        )
        .await?
        .get(0))
}

/// `apps` applications of `n` steps each checkpointing to one persister at once: the
/// checkpoints per second, and how many checkpoints shared a transaction (group commit).
pub async fn concurrent(
    url: &str,
    apps: usize,
    n: u64,
) -> Result<Value, Box<dyn std::error::Error>> {
    let client = connect(url).await?;
    let persister: Arc<dyn Persister> = Arc::new(PostgresPersister::connect(url).await?);
    let before = transactions(&client).await?;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..apps {
        let app_id = format!("concurrent-{i}-{}", std::process::id());
        let builder = super::w2::counter(n, false, &app_id, Arc::clone(&persister));
        tasks.push(tokio::spawn(async move {
            let mut app = builder.build().await?;
            app.run(burr_core::RunOptions::new().halt_after(["done"]))
                .await
                .map(|_| ())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let elapsed = start.elapsed().as_secs_f64();
    // A backend reports its statistics when it exits (else up to 10 s after it idles):
    // close the persister's connections first.
    drop(persister);
    let after = transactions(&client).await?;
    let checkpoints = (apps as u64 * (n + 1)) as f64;
    Ok(json!({
        "workload": "concurrent",
        "backend": "postgres",
        "database": url.rsplit('@').next().unwrap_or_default(),
        "apps": apps,
        "steps_per_app": n + 1,
        "checkpoints_per_s": checkpoints / elapsed,
        "transactions": after - before,
        "checkpoints_per_transaction": checkpoints / (after - before).max(1) as f64,
    }))
}
