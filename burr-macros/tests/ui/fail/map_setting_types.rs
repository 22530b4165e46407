use burr_core::parallel::SubGraph;
use burr_core::persistence::InMemoryPersister;
use burr_core::{action, map_states, State};

#[action(reads = [n], writes = [out])]
fn double(state: State) -> State {
    state
}

const LEVEL: u64 = 3;

#[map_states(
    subgraph = SubGraph::action(Double),
    priority = LEVEL,
    timeout = std::time::Instant::now(),
    persister = InMemoryPersister::new(),
    tracker = None,
    policy = "wait all"
)]
fn words(state: State) -> Vec<State> {
    vec![state]
}

fn main() {}
