use burr_core::{action, State};

#[action(reads = [count], write = [count])]
fn increment(state: State) -> State {
    state
}

fn main() {}
