//! An application whose code changes between runs, for the migration crash test.
//!
//! `migrate-app --db PATH --version 1|2 --steps N --log FILE [--stop-after-migration]`:
//! builds the application `counter` (resuming what `PATH` holds) under code version 1
//! (`count` adds 1) or 2 (`count` adds 10, its version bumped, with a migration from
//! version 1 that multiplies `count` by 10 and appends `migrated` to FILE), runs N steps
//! and prints `count <value>`. With `--stop-after-migration`, once the migration's
//! checkpoint is saved it prints `migration saved` and waits to be killed: before the
//! application's record takes the new code.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use burr_core::actions::action_sync;
use burr_core::application::MIGRATED_TO_KEY;
use burr_core::persistence::{
    AppRecords, Checkpoint, ChildListing, Delete, History, Leases, LoadedCheckpoint,
    PersistenceError, Persister, Prune, SqlitePersister,
};
use burr_core::{default, ApplicationBuilder, Inputs, State};

fn arg(args: &[String], name: &str) -> Result<String, String> {
    args.windows(2)
        .find(|w| w[0] == name)
        .map(|w| w[1].clone())
        .ok_or_else(|| format!("missing {name}"))
}

/// A SQLite persister that stops the process's progress right after it saved the
/// migration's checkpoint, so the test kills it there.
struct StopAfterMigration(SqlitePersister);

#[async_trait]
impl Persister for StopAfterMigration {
    async fn save(&self, checkpoint: &Checkpoint) -> Result<(), PersistenceError> {
        self.0.save(checkpoint).await?;
        if checkpoint.state.get_value(MIGRATED_TO_KEY).is_some() {
            println!("migration saved");
            let _ = std::io::stdout().flush();
            loop {
                std::thread::park();
            }
        }
        Ok(())
    }
    async fn load(
        &self,
        partition_key: Option<&str>,
        app_id: &str,
        sequence_id: Option<u64>,
    ) -> Result<Option<LoadedCheckpoint>, PersistenceError> {
        self.0.load(partition_key, app_id, sequence_id).await
    }
    async fn list_app_ids(
        &self,
        partition_key: Option<&str>,
    ) -> Result<Vec<String>, PersistenceError> {
        self.0.list_app_ids(partition_key).await
    }
    fn as_leases(&self) -> Option<&dyn Leases> {
        self.0.as_leases()
    }
    fn as_app_records(&self) -> Option<&dyn AppRecords> {
        self.0.as_app_records()
    }
    fn as_child_listing(&self) -> Option<&dyn ChildListing> {
        self.0.as_child_listing()
    }
    fn as_history(&self) -> Option<&dyn History> {
        self.0.as_history()
    }
    fn as_prune(&self) -> Option<&dyn Prune> {
        self.0.as_prune()
    }
    fn as_delete(&self) -> Option<&dyn Delete> {
        self.0.as_delete()
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("migrate-app: {}", burr_core::error::report(&*error));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let db = PathBuf::from(arg(&args, "--db")?);
    let version = arg(&args, "--version")?;
    let steps: u64 = arg(&args, "--steps")?.parse()?;
    let log = PathBuf::from(arg(&args, "--log")?);
    let sqlite = SqlitePersister::open(&db)?;
    let persister: Arc<dyn Persister> = if args.iter().any(|a| a == "--stop-after-migration") {
        Arc::new(StopAfterMigration(sqlite))
    } else {
        Arc::new(sqlite)
    };
    let by: i64 = if version == "2" { 10 } else { 1 };
    let count = action_sync("count", move |s: State, _, _| s.increment("count", by))
        .reads(["count"])
        .writes(["count"])
        .version(&version);
    let mut builder = ApplicationBuilder::new()
        .with_actions([count])
        .with_transitions([("count", "count", default())])
        .with_entrypoint("count")
        .with_app_id("counter")
        .with_state(State::new().update("count", 0))
        .with_version(&version)
        .with_state_persister(Arc::clone(&persister))
        .initialize_from(persister);
    if version == "2" {
        builder = builder.with_migration("1", move |state: State| {
            // One write per line, so a kill never leaves half a line.
            let mut file = OpenOptions::new().create(true).append(true).open(&log)?;
            file.write_all(b"migrated\n")?;
            let count: i64 = state.get("count")?;
            Ok::<State, Box<dyn std::error::Error + Send + Sync>>(state.update("count", count * 10))
        });
    }
    let mut app = builder.build().await?;
    for _ in 0..steps {
        app.step(Inputs::new()).await?;
    }
    println!("count {}", app.state().get::<i64>("count")?);
    Ok(())
}
