use burr_core::parallel::SubGraph;
use burr_core::{action, map_states, ActionError, State};

#[action(reads = [text], writes = [length])]
fn measure(state: State) -> State {
    state
}

#[map_states(subgraphs = [SubGraph::action(Measure)], reduce = collect, reads = [words])]
fn lengths(state: State) -> Result<Vec<State>, ActionError> {
    Ok(vec![state])
}

fn collect(state: State, _children: Vec<State>) -> State {
    state
}

fn main() {}
