use burr_core::action;

#[action(writes = [count])]
struct Increment;

fn main() {}
