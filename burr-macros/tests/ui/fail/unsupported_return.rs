use burr_core::{action, State};

#[action(reads = [count])]
fn count(state: State) -> i64 {
    state.get("count").unwrap_or(0)
}

fn main() {}
