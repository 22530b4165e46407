//! The counter: `increment` while `count < steps`, then `done` — workload W1 as a demo, and
//! with `--db` a resumable run: kill it at any moment and run the same command again.
//!
//! ```text
//! cargo run -p example-counter -- --steps 5
//! cargo run -p example-counter -- --db ./burr.db --app-id demo --steps 1000 --json
//! cargo run -p example-counter -- --db ./burr.db --app-id traced --steps 5 --track
//! cargo run -p burr-tracker -- --db ./burr.db show traced
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use burr_core::persistence::{Persister, SqlitePersister};
use burr_core::state::StateError;
use burr_core::{action, default, expr, ApplicationBuilder, Inputs, State};
use clap::Parser;
use serde_json::json;

/// Add one to the count.
#[action(reads = [count], writes = [count])]
fn increment(state: State) -> Result<State, StateError> {
    state.increment("count", 1)
}

/// The end: nothing left to count.
#[action(reads = [count])]
fn done(state: State) -> State {
    state
}

/// Count to N, one step at a time; with --db, every step is checkpointed and a rerun resumes.
#[derive(Parser, Debug)]
#[command(name = "counter")]
struct Args {
    /// Count up to this number (N increments, then `done`).
    #[arg(long, default_value_t = 10)]
    steps: u64,
    /// Checkpoint every step to this SQLite file and resume the app if it exists.
    #[arg(long)]
    db: Option<PathBuf>,
    /// The application's id (default: a new UUID; give one to resume).
    #[arg(long)]
    app_id: Option<String>,
    /// Print one JSON line at the end instead of a line per step.
    #[arg(long)]
    json: bool,
    /// Record every step with the tracker, into the --db file (inspect it with `burr-tracker`).
    #[arg(long, requires = "db")]
    track: bool,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("counter: {}", burr_core::error::report(&*error));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let started = Instant::now();
    let args = Args::parse();

    let mut builder = ApplicationBuilder::new()
        .with_actions([Increment, Done])
        .with_transitions([
            (
                "increment",
                "increment",
                expr(&format!("count < {}", args.steps)),
            ),
            ("increment", "done", default()),
        ])
        .with_state(State::new().update("count", 0))
        .with_entrypoint("increment");
    if let Some(app_id) = &args.app_id {
        builder = builder.with_app_id(app_id.clone());
    }
    if let Some(path) = &args.db {
        let persister: Arc<dyn Persister> = Arc::new(SqlitePersister::open(path)?);
        builder = builder
            .with_state_persister(Arc::clone(&persister))
            .with_state(State::new().update("count", 0))
            .with_entrypoint("increment")
            .initialize_from(persister);
    }
    let tracker = match (&args.db, args.track) {
        (Some(path), true) => Some(burr_tracker::Tracker::open(path)?),
        _ => None,
    };
    if let Some(tracker) = &tracker {
        builder = builder.with_tracker(tracker.hook());
    }
    let mut app = builder.build().await?;
    eprintln!(
        "loaded app {} at sequence id {:?} in {:.2} ms",
        app.app_id(),
        app.sequence_id(),
        started.elapsed().as_secs_f64() * 1e3
    );

    let mut steps_run = 0u64;
    while let Some(step) = app.step(Inputs::new()).await? {
        steps_run += 1;
        if !args.json {
            println!(
                "{:>6}  {:<10} {}",
                step.sequence_id, step.action, step.state
            );
        }
    }
    if let Some(tracker) = &tracker {
        tracker.flush()?;
    }
    if args.json {
        let line = json!({
            "app_id": app.app_id(),
            "count": app.state().get_value("count"),
            "sequence_id": app.sequence_id(),
            "steps_run": steps_run,
            "elapsed_ms": started.elapsed().as_secs_f64() * 1e3,
        });
        println!("{line}");
    }
    Ok(())
}
