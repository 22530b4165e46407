use burr_core::{action, State};

#[action(writes = [count])]
fn start(state: State, #[input(default = "zero")] from: i64) -> State {
    state.update("count", from)
}

fn main() {}
