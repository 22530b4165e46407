//! The counter: a plain `fn` and an `async fn`, both usable in one `with_actions` list,
//! and the functions still callable. Compiles without a single warning.
#![deny(warnings)]

use burr_core::{action, default, expr, ActionError, ApplicationBuilder, RunOptions, State};

#[action(reads = [count], writes = [count])]
fn increment(state: State) -> Result<State, ActionError> {
    Ok(state.increment("count", 1)?)
}

#[action(reads = [count], writes = [done])]
async fn done(state: State) -> State {
    let count: i64 = state.get("count").unwrap_or_default();
    state.update("done", count)
}

fn main() {
    assert!(increment(State::new().update("count", 1)).is_ok());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let state = runtime.block_on(async {
        let mut app = ApplicationBuilder::new()
            .with_actions([Increment, Done])
            .with_transitions([
                ("increment", "increment", expr("count < 4")),
                ("increment", "done", default()),
            ])
            .with_state(State::new().update("count", 0))
            .with_entrypoint("increment")
            .build()
            .await
            .unwrap();
        app.run(RunOptions::new().halt_after(["done"])).await.unwrap().state
    });
    assert_eq!(state.get::<i64>("done").unwrap(), 4);
}
