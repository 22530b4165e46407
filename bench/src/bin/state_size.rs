//! `burr-state-size`: the heap bytes a `State` holds, measured by a counting allocator.
//!
//! Run through `burr-bench state-size` (its own binary, so that the counting allocator
//! never slows the timed workloads). Prints one JSON line per number of keys (1, 4, 16,
//! 64), each figure the bytes allocated and not yet freed while the state is alive:
//!
//! - `map_bytes`: a new state sharing every key and value with another (`update_shared`
//!   of a key with the value it holds): the map alone, what one more state of those keys
//!   costs;
//! - `update_bytes`: `update` of one existing key (an integer): the new state's map and
//!   its one new value, what a step's new state costs;
//! - `total_bytes`: the state built from nothing (`update_many` of keys not used before
//!   and integer values): map, keys and values;
//! - `value_bytes`: the part of `total_bytes` that is values (one `Arc<Value>` each).

use std::alloc::System;
use std::hint::black_box;

use burr_core::State;
use serde_json::{json, Value};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// What `make` returns, and the bytes it allocated that are still allocated when it
/// returns (a `realloc` counts its growth as allocated and its shrinking as freed).
fn measure<T>(make: impl FnOnce() -> T) -> (T, i64) {
    let region = Region::new(GLOBAL);
    let made = black_box(make());
    let change = region.change();
    (
        made,
        change.bytes_allocated as i64 - change.bytes_deallocated as i64,
    )
}

fn main() {
    for (round, n) in [1usize, 4, 16, 64].into_iter().enumerate() {
        // Keys no earlier round used, made before measuring (as a caller holds them).
        let keys: Vec<String> = (0..n).map(|i| format!("r{round}key{i}")).collect();
        let values: Vec<Value> = (0..n).map(|i| json!(i)).collect();

        let (state, total) = measure(|| State::new().update_many(keys.iter().zip(values.clone())));
        let first = state.get_shared(&keys[0]).expect("the first key is set");
        let (shared, map) = measure(|| state.update_shared(&keys[0], first));
        let (updated, update) = measure(|| state.update(&keys[0], 7));
        let (value, one_value) = measure(|| std::sync::Arc::new(json!(1)));

        println!(
            "{}",
            json!({
                "workload": "state-size",
                "keys": n,
                "map_bytes": map,
                "update_bytes": update,
                "total_bytes": total,
                "value_bytes": one_value * n as i64,
                "state_struct_bytes": std::mem::size_of::<State>(),
            })
        );
        drop((state, shared, updated, value));
    }
}
