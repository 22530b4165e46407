use burr_core::parallel::SubGraph;
use burr_core::{action, map_actions, map_actions_and_states, ActionError, State};

#[action(reads = [n], writes = [out])]
fn double(state: State) -> State {
    state
}

#[map_actions_and_states(subgraphs = [SubGraph::action(Double)])]
fn one_state(state: State) -> Result<State, ActionError> {
    Ok(state)
}

#[map_actions_and_states(keyed, reads = [ns])]
fn no_subgraphs(state: State) -> Vec<(String, State)> {
    vec![("a".to_owned(), state)]
}

#[map_actions(subgraphs = [SubGraph::action(Double)])]
fn many_states(state: State) -> Vec<State> {
    vec![state]
}

fn main() {}
