//! Durable runs: a user's binary that registers its kinds of run and gets the run verbs
//! (`serve`, `worker`, `submit`, `runs`, `show`, `cancel`, `watch`, `backlog`, `explain`,
//! `schedules`, `kinds`) with one call.
//!
//! ```text
//! cargo run -p example-durable-runs -- --db burr.db worker &      # claims and runs
//! cargo run -p example-durable-runs -- --db burr.db submit count --inputs '{"org": "acme", "to": 20}' --wait
//! cargo run -p example-durable-runs -- --db burr.db submit count --inputs '{"org": "acme", "to": 500}' --priority 5
//! cargo run -p example-durable-runs -- --db burr.db watch <run id>
//! kill -9 %1; cargo run -p example-durable-runs -- --db burr.db worker &   # resumes it
//! ```

use std::time::Duration;

use burr_core::{action, default, expr, ApplicationBuilder, State};
use burr_server::{BoxError, ConcurrencyLimit, Kind, Registry, RunInfo};
use serde::{Deserialize, Serialize};

/// Add one to the count, taking a little time about it.
#[action(reads = [count], writes = [count])]
async fn increment(state: State) -> Result<State, burr_core::state::StateError> {
    tokio::time::sleep(Duration::from_millis(50)).await;
    state.increment("count", 1)
}

/// The end.
#[action(reads = [count], writes = [done])]
fn finish(state: State) -> State {
    state.update("done", true)
}

/// What a `count` run is given.
#[derive(Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct CountInputs {
    /// The organisation the run is for: at most two of its runs run at once.
    org: String,
    /// Count up to this.
    to: u32,
}

/// A kind of run: count to `to`, one checkpointed step at a time.
struct Count;

impl Kind for Count {
    type Inputs = CountInputs;

    fn name(&self) -> &str {
        "count"
    }

    fn concurrency(&self, inputs: &CountInputs) -> Option<ConcurrencyLimit> {
        Some(ConcurrencyLimit {
            key: format!("org:{}", inputs.org),
            limit: 2,
        })
    }

    fn build(&self, inputs: CountInputs, _run: &RunInfo) -> Result<ApplicationBuilder, BoxError> {
        Ok(ApplicationBuilder::new()
            .with_actions([Increment, Finish])
            .with_transitions([
                (
                    "increment",
                    "finish",
                    expr(&format!("count >= {}", inputs.to)),
                ),
                ("increment", "increment", default()),
            ])
            .with_state(State::new().update("count", 0).update("org", inputs.org))
            .with_entrypoint("increment"))
    }
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    burr_server::cli::main(Registry::new().register(Count))
}
