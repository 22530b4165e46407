use burr_core::parallel::SubGraph;
use burr_core::{action, map_states, State};

#[action(reads = [text], writes = [length])]
fn measure(state: State) -> State {
    state
}

#[map_states(subgraph = SubGraph::action(Measure), reduce = collect, writes = [lengths])]
fn lengths(state: State) -> Vec<State> {
    vec![state]
}

fn collect(state: State, _children: Vec<State>) -> Option<State> {
    Some(state)
}

fn main() {}
