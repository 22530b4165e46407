use burr_core::{action, State};

struct Counter;

impl Counter {
    #[action(reads = [count], writes = [count])]
    fn increment(&self, state: State) -> State {
        state
    }
}

fn main() {}
