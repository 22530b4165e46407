//! `retry` and `timeout` values the macro refuses, each at its value.
use burr_core::{action, State};

#[action(writes = [n], retry = 0)]
fn none(state: State) -> State {
    state
}

#[action(writes = [n], retry = "3")]
fn text(state: State) -> State {
    state
}

#[action(writes = [n], timeout = "30 s")]
fn spaced(state: State) -> State {
    state
}

#[action(writes = [n], timeout = 30)]
fn unitless(state: State) -> State {
    state
}

#[action(writes = [n], retry = 3.5)]
fn fraction(state: State) -> State {
    state
}

#[action(writes = [n], retry = std::time::Duration::from_secs(1))]
fn wrong_type(state: State) -> State {
    state
}

fn main() {
    let _ = (None, Text, Spaced, Unitless, Fraction, WrongType);
}
