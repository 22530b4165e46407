//! A map function builds the children's tasks before they run: it takes no resource.
use burr_core::parallel::SubGraph;
use burr_core::{action, map_states, Res, State};

struct Index;

#[action(writes = [n])]
fn child(state: State) -> State {
    state.update("n", 1)
}

fn count(state: State, children: Vec<State>) -> State {
    state.update("n", children.len())
}

#[map_states(subgraph = SubGraph::action(Child), reduce = count, writes = [n])]
fn fan(state: State, index: Res<Index>) -> Vec<State> {
    let _ = index;
    vec![state]
}

fn main() {
    let _ = (Fan, SubGraph::action(Child));
}
