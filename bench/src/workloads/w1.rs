//! W1: step overhead, and the cost of one update on a large state.

use std::hint::black_box;
use std::time::{Duration, Instant};

use burr_core::RunOptions;
use burr_core::{default, expr, ApplicationBuilder, State};

use burr_core::actions::{action_sync, RetryPolicy};
use serde_json::{json, Value};

/// W1: `increment` while `count < N` (an `expr` condition), then `done`; N+1 steps. With
/// `big`, a 1,000,000-character string sits in state untouched; with `keys`, that many
/// more keys (`key0`, `key1`, ..., small integers) that no step reads or writes.
pub async fn step_overhead(
    n: u64,
    big: bool,
    keys: u64,
    tracker: Option<&burr_tracker::Tracker>,
) -> Result<Value, Box<dyn std::error::Error>> {
    counter(n, big, keys, tracker, false).await
}

/// W1 with a retry policy (3 attempts) and a 30 s timeout on every action: the cost of
/// failure handling when nothing fails.
pub async fn with_retry(n: u64) -> Result<Value, Box<dyn std::error::Error>> {
    counter(n, false, 0, None, true).await
}

async fn counter(
    n: u64,
    big: bool,
    keys: u64,
    tracker: Option<&burr_tracker::Tracker>,
    guarded: bool,
) -> Result<Value, Box<dyn std::error::Error>> {
    let untouched: State = (0..keys).map(|i| (format!("key{i}"), json!(i))).collect();
    let build_start = Instant::now();
    let increment = action_sync("increment", |s: State, _, _| s.increment("count", 1))
        .reads(["count"])
        .writes(["count"]);
    let done = action_sync("done", |s: State, _, _| s).reads(["count"]);
    let mut state = untouched.update("count", 0);
    if big {
        state = state.update("big", "x".repeat(1_000_000));
    }
    let mut builder = ApplicationBuilder::new()
        .with_actions([increment, done])
        .with_transitions([
            ("increment", "increment", expr(&format!("count < {n}"))),
            ("increment", "done", default()),
        ])
        .with_state(state)
        .with_entrypoint("increment");
    if let Some(tracker) = tracker {
        builder = builder.with_tracker(tracker.hook());
    }
    if guarded {
        builder = builder
            .with_default_retry(RetryPolicy::new(3))
            .with_timeout("increment", Duration::from_secs(30))
            .with_timeout("done", Duration::from_secs(30));
    }
    let mut app = builder.build().await?;
    let build_us = build_start.elapsed().as_secs_f64() * 1e6;
    let start = Instant::now();
    let outcome = app.run(RunOptions::new().halt_after(["done"])).await?;
    if let Some(tracker) = tracker {
        tracker.flush()?;
    }
    let elapsed = start.elapsed();
    let steps = app.sequence_id().map_or(0, |s| s + 1);
    assert_eq!(outcome.state.get::<u64>("count").ok(), Some(n));
    Ok(json!({
        "workload": match (big, guarded) {
            (true, _) => "w1-big",
            (false, true) => "w1-retry",
            (false, false) => "w1",
        },
        "tracked": tracker.is_some(),
        "n": n,
        "keys": keys,
        "steps": steps,
        "build_us": build_us,
        "us_per_step": elapsed.as_secs_f64() * 1e6 / steps as f64,
    }))
}

/// One `update` of one key on a state of `n` keys, in ns (the mean of many).
pub fn one_update(n: u64) -> Value {
    let state: State = (0..n).map(|i| (format!("key{i}"), json!(i))).collect();
    let rounds = 200_000u64;
    let start = Instant::now();
    for i in 0..rounds {
        black_box(state.update(format!("key{}", i % n), json!(i)));
    }
    let ns = start.elapsed().as_secs_f64() * 1e9 / rounds as f64;
    json!({"workload": "update", "n": n, "ns_per_update": ns})
}
