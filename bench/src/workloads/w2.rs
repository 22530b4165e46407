//! W2 (checkpointed steps), W2b (with an untouched 1 MB value), the raw SQLite floor they
//! are compared with, and many applications checkpointing at once.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burr_core::actions::action_sync;
use burr_core::persistence::{Durability, Persister, SqliteOptions, SqlitePersister};
use burr_core::RunOptions;
use burr_core::{default, expr, ApplicationBuilder, Inputs, State};
use serde_json::{json, Value};

/// The size of a database once its WAL is folded into it (SQLite's own `wal_checkpoint`).
pub fn settled_bytes(path: &Path) -> u64 {
    if let Ok(conn) = rusqlite::Connection::open(path) {
        let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    }
    disk_bytes(path)
}

/// The bytes a database uses on disk: the file and its WAL.
pub fn disk_bytes(path: &Path) -> u64 {
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    [path.to_path_buf(), wal]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// `path`, with any database (and its WAL and shared-memory files) left there by an
/// earlier round removed.
fn fresh(path: PathBuf) -> std::io::Result<PathBuf> {
    for suffix in ["", "-wal", "-shm"] {
        match std::fs::remove_file(format!("{}{suffix}", path.display())) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
            _ => {}
        }
    }
    Ok(path)
}

pub(crate) fn counter(
    n: u64,
    big: bool,
    app_id: &str,
    persister: Arc<dyn Persister>,
) -> ApplicationBuilder {
    let increment = action_sync("increment", |s: State, _, _| s.increment("count", 1))
        .reads(["count"])
        .writes(["count"]);
    let done = action_sync("done", |s: State, _, _| s).reads(["count"]);
    let mut state = State::new().update("count", 0);
    if big {
        state = state.update("big", "x".repeat(1_000_000));
    }
    ApplicationBuilder::new()
        .with_actions([increment, done])
        .with_transitions([
            ("increment", "increment", expr(&format!("count < {n}"))),
            ("increment", "done", default()),
        ])
        .with_state(state)
        .with_entrypoint("increment")
        .with_app_id(app_id)
        .with_state_persister(persister)
}

/// W2 / W2b on a fresh file in `dir`.
pub async fn checkpointed(
    dir: &Path,
    n: u64,
    big: bool,
    durability: Durability,
    track: bool,
) -> Result<Value, Box<dyn std::error::Error>> {
    let path = fresh(dir.join(format!("w2-{big}-{durability:?}.db")))?;
    let persister: Arc<dyn Persister> = Arc::new(SqlitePersister::open_with(
        &path,
        SqliteOptions::new().durability(durability),
    )?);
    let tracker = if track {
        Some(burr_tracker::Tracker::open(&path)?)
    } else {
        None
    };
    let mut builder = counter(n, big, "w2", persister);
    if let Some(tracker) = &tracker {
        builder = builder.with_tracker(tracker.hook());
    }
    let mut app = builder.build().await?;
    // The first checkpoint stores the whole initial state; measure the steps after it.
    app.step(Inputs::new()).await?;
    let bytes_after_first = settled_bytes(&path);
    let start = Instant::now();
    let mut steps = 0u64;
    while app.step(Inputs::new()).await?.is_some() {
        steps += 1;
    }
    if let Some(tracker) = &tracker {
        tracker.flush()?;
    }
    let elapsed = start.elapsed();
    let bytes = settled_bytes(&path);
    Ok(json!({
        "workload": if big { "w2b" } else { "w2" },
        "tracked": track,
        "durability": format!("{durability:?}").to_lowercase(),
        "n": n,
        "steps": steps + 1,
        "us_per_step": elapsed.as_secs_f64() * 1e6 / steps as f64,
        "bytes_per_step": (bytes.saturating_sub(bytes_after_first)) as f64 / steps as f64,
        "db_bytes": bytes,
    }))
}

/// The floor: a raw rusqlite `INSERT` + `COMMIT` per row, WAL, the same `synchronous`,
/// page size and WAL checkpoint interval as the persister, in this process.
pub fn floor(
    dir: &Path,
    n: u64,
    durability: Durability,
) -> Result<Value, Box<dyn std::error::Error>> {
    let path = fresh(dir.join(format!("floor-{durability:?}.db")))?;
    let conn = rusqlite::Connection::open(&path)?;
    let synchronous = match durability {
        Durability::Full => "FULL",
        _ => "NORMAL",
    };
    let (page_size, autocheckpoint) = (
        SqlitePersister::PAGE_SIZE,
        SqlitePersister::WAL_AUTOCHECKPOINT,
    );
    conn.execute_batch(&format!(
        "PRAGMA page_size = {page_size}; PRAGMA journal_mode = WAL;
         PRAGMA synchronous = {synchronous}; PRAGMA wal_autocheckpoint = {autocheckpoint};
         CREATE TABLE steps (app INTEGER, sequence_id INTEGER, position TEXT, state TEXT,
                             PRIMARY KEY (app, sequence_id)) WITHOUT ROWID;"
    ))?;
    let mut insert = conn.prepare("INSERT INTO steps VALUES (1, ?1, 'increment', ?2)")?;
    let start = Instant::now();
    for i in 0..n {
        conn.execute_batch("BEGIN")?;
        insert.execute(rusqlite::params![i as i64, format!("{{\"count\":{i}}}")])?;
        conn.execute_batch("COMMIT")?;
    }
    let elapsed = start.elapsed();
    Ok(json!({
        "workload": "floor",
        "durability": synchronous.to_lowercase(),
        "n": n,
        "us_per_commit": elapsed.as_secs_f64() * 1e6 / n as f64,
    }))
}

/// `apps` applications of `n` steps each checkpointing to one persister: all at once, then
/// one after another.
pub async fn concurrent(
    dir: &Path,
    apps: usize,
    n: u64,
) -> Result<Value, Box<dyn std::error::Error>> {
    let run = |path: PathBuf, parallel: bool| async move {
        let persister: Arc<dyn Persister> = Arc::new(SqlitePersister::open(&path)?);
        let start = Instant::now();
        if parallel {
            let mut tasks = Vec::new();
            for i in 0..apps {
                let builder = counter(n, false, &format!("app-{i}"), Arc::clone(&persister));
                tasks.push(tokio::spawn(async move {
                    let mut app = builder.build().await?;
                    app.run(RunOptions::new().halt_after(["done"]))
                        .await
                        .map(|_| ())
                }));
            }
            for task in tasks {
                task.await??;
            }
        } else {
            for i in 0..apps {
                let mut app = counter(n, false, &format!("app-{i}"), Arc::clone(&persister))
                    .build()
                    .await?;
                app.run(RunOptions::new().halt_after(["done"])).await?;
            }
        }
        Ok::<_, Box<dyn std::error::Error>>(start.elapsed().as_secs_f64())
    };
    let concurrent = run(dir.join("concurrent.db"), true).await?;
    let sequential = run(dir.join("sequential.db"), false).await?;
    let checkpoints = (apps as u64 * (n + 1)) as f64;
    Ok(json!({
        "workload": "concurrent",
        "apps": apps,
        "steps_per_app": n + 1,
        "checkpoints_per_s": checkpoints / concurrent,
        "sequential_checkpoints_per_s": checkpoints / sequential,
        "speedup_over_sequential": sequential / concurrent,
    }))
}
