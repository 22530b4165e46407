use burr_core::parallel::{SubGraph, Task};
use burr_core::{action, map_actions, map_states, map_tasks, State};

#[action(reads = [n], writes = [out])]
fn double(state: State) -> State {
    state
}

#[map_states(subgraph = SubGraph::action(Double), priority = "high", timeout = "30")]
fn words(state: State) -> Vec<State> {
    vec![state]
}

#[map_tasks(priority = 3000000000, timeout = 30)]
fn tasks(_state: State) -> Vec<Task> {
    Vec::new()
}

#[map_actions(subgraphs = [SubGraph::action(Double)], priority = 5u8, timeout = "0s")]
fn both(state: State) -> State {
    state
}

#[map_tasks(priority, timeout = "1.5s")]
fn more_tasks(_state: State) -> Vec<Task> {
    Vec::new()
}

fn main() {}
