//! An application whose one action fails its first two runs and has a retry policy with a
//! one-second first backoff, for the test that kills it while it waits to retry.
//!
//! `retry-app --db PATH --log FILE`: appends `ran <attempt>` to FILE each time the action
//! runs, and prints `failed <attempt>` once a failed attempt is checkpointed. Exit code 0
//! when the action succeeded.

use std::fs::OpenOptions;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use burr_core::actions::{action_sync, ActionError, RetryPolicy};
use burr_core::hooks::{LifecycleHook, StepEnd, StepStatus};
use burr_core::persistence::SqlitePersister;
use burr_core::prelude::*;

/// Prints `failed <attempt>` after a failed attempt's checkpoint.
struct Announce;

impl LifecycleHook for Announce {
    fn post_run_step(&self, event: &StepEnd<'_>) {
        if event.status == StepStatus::Failed {
            println!("failed {}", event.attempt);
        }
    }
}

fn arg(args: &[String], name: &str) -> Result<String, String> {
    args.windows(2)
        .find(|w| w[0] == name)
        .map(|w| w[1].clone())
        .ok_or_else(|| format!("missing {name}"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("retry-app: {}", burr_core::error::report(&*error));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let db = Arc::new(SqlitePersister::open(arg(&args, "--db")?)?);
    let log = arg(&args, "--log")?;
    let flaky = action_sync("flaky", move |s: State, _, ctx: &ApplicationContext| {
        let mut file = OpenOptions::new().create(true).append(true).open(&log)?;
        file.write_all(format!("ran {}\n", ctx.attempt()).as_bytes())?;
        if ctx.attempt() < 3 {
            return Err(ActionError::msg("the model server is down"));
        }
        Ok::<_, ActionError>(s.update("done", true))
    })
    .writes(["done"])
    .retry(
        RetryPolicy::new(5)
            .backoff(Duration::from_secs(1), 2.0, Duration::from_secs(10))
            .jitter(0.0),
    );
    let mut app = ApplicationBuilder::new()
        .with_actions([flaky])
        .with_entrypoint("flaky")
        .with_app_id("retrying")
        .with_hooks([Announce])
        .with_state_persister(db.clone())
        .initialize_from(db)
        .build()
        .await?;
    app.run(RunOptions::new()).await?;
    println!("succeeded");
    Ok(())
}
