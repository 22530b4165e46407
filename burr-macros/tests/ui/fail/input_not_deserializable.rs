use burr_core::{action, State};

struct Model {
    name: String,
}

#[action(writes = [answer])]
fn answer(state: State, model: Model) -> State {
    state.update("answer", model.name)
}

fn main() {}
