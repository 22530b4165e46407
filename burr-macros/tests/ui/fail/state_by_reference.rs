use burr_core::{action, State};

#[action(reads = [count], writes = [count])]
fn increment(state: &State) -> State {
    state.clone()
}

fn main() {}
