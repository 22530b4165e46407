//! The counter: `increment` while `count < limit`, then `done` (workload W1 as a demo).
//!
//! ```text
//! cargo run -p example-counter -- --limit 5
//! ```

use burr_core::{action_sync, default, expr, ApplicationBuilder, Inputs, State};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let limit = parse_limit()?;
    let increment = action_sync("increment", |state: State, _, _| {
        state.increment("count", 1)
    })
    .reads(["count"])
    .writes(["count"]);
    let done = action_sync("done", |state: State, _, _| state).reads(["count"]);
    let mut app = ApplicationBuilder::new()
        .with_actions([increment, done])
        .with_transitions([
            ("increment", "increment", expr(&format!("count < {limit}"))),
            ("increment", "done", default()),
        ])
        .with_state(State::new().update("count", 0))
        .with_entrypoint("increment")
        .build()
        .await?;
    while let Some(step) = app.step(Inputs::new()).await? {
        println!(
            "{:>4}  {:<10} {}",
            step.sequence_id, step.action, step.state
        );
    }
    Ok(())
}

fn parse_limit() -> Result<u64, String> {
    let mut args = std::env::args().skip(1);
    let mut limit = 10;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--limit" => {
                let value = args.next().ok_or("--limit needs a number")?;
                limit = value
                    .parse()
                    .map_err(|_| format!("--limit: `{value}` is not a number"))?;
            }
            other => return Err(format!("unknown argument `{other}` (known: --limit N)")),
        }
    }
    Ok(limit)
}
