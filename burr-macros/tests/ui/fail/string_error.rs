//! `Result<State, String>`: a `String` is not an error type; the note says what to write.
use burr_core::{action, State};

#[action(writes = [n])]
fn parse(state: State) -> Result<State, String> {
    Err("no number".to_owned()).map(|()| state)
}

fn main() {}
