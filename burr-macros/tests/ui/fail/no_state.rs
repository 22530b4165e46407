use burr_core::{action, State};

#[action(writes = [count])]
fn reset() -> State {
    State::new().update("count", 0)
}

fn main() {}
