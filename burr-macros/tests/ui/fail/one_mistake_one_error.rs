//! A mistake in an action gives its own error, not a cascade where the action is used.
use burr_core::{action, ApplicationBuilder, State};

#[action(reads = [count], writes = [count], retries = 3)]
fn increment(state: State) -> State {
    state
}

fn main() {
    let _ = ApplicationBuilder::new()
        .with_actions([Increment])
        .with_entrypoint(Increment);
}
