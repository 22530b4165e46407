//! A checkpointed application for the crash tests: it counts to `--steps`, with a step
//! that fails on its first attempt every tenth count, and logs every execution.
//!
//! `crash-app --db PATH --app-id ID --steps N --log FILE`: appends `ran <seq> <action>
//! <attempt>` to FILE when an action runs, and prints `done <seq> <action>` once a step
//! is checkpointed. Exit code 0 when the application finished.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use burr_core::actions::action_sync;
use burr_core::persistence::{Persister, SqlitePersister};
use burr_core::{
    default, expr, ActionError, ApplicationBuilder, ApplicationContext, Inputs, State,
};

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
            eprintln!("crash-app: {}", burr_core::error::report(&*error));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let db = PathBuf::from(arg(&args, "--db")?);
    let app_id = arg(&args, "--app-id")?;
    let steps: u64 = arg(&args, "--steps")?.parse()?;
    let log = Arc::new(Mutex::new(
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(arg(&args, "--log")?)?,
    ));
    let ran = move |ctx: &ApplicationContext| {
        let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
        // One write per line, so a kill never leaves half a line.
        let line = format!(
            "ran {} {} {}\n",
            ctx.sequence_id(),
            ctx.action_name(),
            ctx.attempt()
        );
        let _ = log.write_all(line.as_bytes());
    };
    let ran_inc = ran.clone();
    let increment = action_sync("increment", move |s: State, _, ctx: &ApplicationContext| {
        ran_inc(ctx);
        std::thread::sleep(std::time::Duration::from_micros(500));
        s.increment("count", 1)
    })
    .reads(["count"])
    .writes(["count"]);
    let ran_flaky = ran.clone();
    let flaky = action_sync("flaky", move |s: State, _, ctx: &ApplicationContext| {
        ran_flaky(ctx);
        if ctx.attempt() == 1 {
            return Err(ActionError::msg("flaky fails on its first attempt"));
        }
        Ok(s.increment("flaky_passes", 1)?)
    })
    .reads(["flaky_passes"])
    .writes(["flaky_passes"]);
    let done = action_sync("done", move |s: State, _, ctx: &ApplicationContext| {
        ran(ctx);
        s.update("finished", true)
    })
    .writes(["finished"]);
    let persister: Arc<dyn Persister> = Arc::new(SqlitePersister::open(&db)?);
    let initial = State::new().update("count", 0).update("flaky_passes", 0);
    let mut app = ApplicationBuilder::new()
        .with_actions([increment, flaky, done])
        .with_transitions([
            ("increment", "done", expr(&format!("count >= {steps}"))),
            ("increment", "flaky", expr("count % 10 == 0")),
            ("increment", "increment", default()),
        ])
        .with_transitions([("flaky", "increment")])
        .with_app_id(app_id)
        .with_state_persister(Arc::clone(&persister))
        .with_state(initial)
        .with_entrypoint("increment")
        .initialize_from(persister)
        .build()
        .await?;
    let stdout = std::io::stdout();
    loop {
        match app.step(Inputs::new()).await {
            Ok(Some(step)) => {
                let line = format!("done {} {}\n", step.sequence_id, step.action);
                let mut out = stdout.lock();
                out.write_all(line.as_bytes())?;
                out.flush()?;
            }
            Ok(None) => return Ok(()),
            Err(burr_core::Error::Action { .. }) => continue, // retried under the same sequence id
            Err(other) => return Err(other.into()),
        }
    }
}
