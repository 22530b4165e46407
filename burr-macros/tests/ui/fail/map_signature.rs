use burr_core::parallel::SubGraph;
use burr_core::{action, map_actions, map_states, ActionError, State};

#[action(reads = [n], writes = [out])]
fn double(state: State) -> State {
    state
}

#[map_states(subgraph = SubGraph::action(Double))]
fn one_state(state: State) -> Result<State, ActionError> {
    Ok(state)
}

struct Fan;

impl Fan {
    #[map_actions(subgraphs = [SubGraph::action(Double)])]
    fn both(&self, state: State) -> State {
        state
    }
}

fn main() {}
