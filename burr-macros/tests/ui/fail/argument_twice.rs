use burr_core::{action, State};

#[action(reads = [count], writes = [count], reads = [total])]
fn increment(state: State) -> State {
    state
}

fn main() {}
