use burr_core::actions;

#[action(writes = [count])]
struct Increment;

fn main() {}
