//! W3: fan-out. Map over short strings; each child returns the string's length; reduce
//! into a list in item order.

use std::sync::Arc;
use std::time::Instant;

use burr_core::actions::action_sync;
use burr_core::parallel::{ChildPersister, Executor, MapAction, SubGraph};
use burr_core::persistence::Persister;
use burr_core::{ActionError, ApplicationBuilder, Inputs, State};
use serde_json::{json, Value};

/// Run W3 with `n` children; with a persister, the parent and every child checkpoint to it
/// and children are built resumable (`initialize_from`).
pub async fn fan_out(
    n: usize,
    persister: Option<Arc<dyn Persister>>,
) -> Result<Value, Box<dyn std::error::Error>> {
    let length = action_sync("length", |s: State, _, _| {
        let text: String = s.get("text")?;
        Ok::<_, ActionError>(s.update("length", text.len()))
    })
    .reads(["text"])
    .writes(["length"]);
    let map = MapAction::states(
        "lengths",
        SubGraph::action(length),
        |s: &State, _: &Inputs| {
            let items: Vec<String> = s.get("items")?;
            Ok::<_, ActionError>(
                items
                    .into_iter()
                    .map(|t| State::new().update("text", t))
                    .collect(),
            )
        },
    )
    .reduce(|state: State, children: Vec<State>| {
        let lengths: Vec<Value> = children
            .iter()
            .map(|c| c.get_value("length").cloned().unwrap_or_default())
            .collect();
        Ok::<_, ActionError>(state.update("lengths", lengths))
    })
    .reads(["items"])
    .writes(["lengths"])
    .persister(if persister.is_some() {
        ChildPersister::Cascade
    } else {
        ChildPersister::None
    });
    let items: Vec<String> = (0..n).map(|i| format!("item number {i}")).collect();
    let mut builder = ApplicationBuilder::new()
        .with_actions([map])
        .with_state(State::new().update("items", json!(items)))
        .with_entrypoint("lengths")
        .with_executor(Executor::cpu());
    if let Some(p) = &persister {
        builder = builder.with_state_persister(Arc::clone(p));
    }
    let mut app = builder.build().await?;
    let start = Instant::now();
    let step = app.step(Inputs::new()).await?;
    let elapsed = start.elapsed();
    let lengths = step
        .map(|s| s.state.get_value("lengths").cloned())
        .unwrap_or_default();
    let ok = lengths.as_ref().and_then(Value::as_array).is_some_and(|l| {
        l.len() == n
            && l.iter()
                .zip(&items)
                .all(|(len, item)| len.as_u64() == Some(item.len() as u64))
    });
    if !ok {
        return Err("W3 reduced the wrong lengths".into());
    }
    Ok(json!({
        "workload": if persister.is_some() { "w3-persist" } else { "w3" },
        "n": n,
        "us_per_child": elapsed.as_secs_f64() * 1e6 / n as f64,
        "total_ms": elapsed.as_secs_f64() * 1e3,
    }))
}

/// W3 with failures: each child's first run fails with probability 5% (seeded by its
/// index), and the children retry (up to 3 runs, no backoff). µs per child and the extra
/// attempts the failures cost.
pub async fn fan_out_with_failures(n: usize) -> Result<Value, Box<dyn std::error::Error>> {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use burr_core::actions::RetryPolicy;

    let runs = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&runs);
    let length = action_sync(
        "length",
        move |s: State, _, ctx: &burr_core::ApplicationContext| {
            counted.fetch_add(1, Ordering::Relaxed);
            let i: u64 = s.get("i")?;
            // SplitMix64 of the index: the same children fail in every run.
            let mut x = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
            x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            if ctx.attempt() == 1 && (x ^ (x >> 31)) % 100 < 5 {
                return Err(ActionError::msg(format!("child {i} failed its first run")));
            }
            let text: String = s.get("text")?;
            Ok(s.update("length", text.len()))
        },
    )
    .reads(["i", "text"])
    .writes(["length"]);
    let map = MapAction::states(
        "lengths",
        SubGraph::action(length),
        |s: &State, _: &Inputs| {
            let items: Vec<String> = s.get("items")?;
            Ok::<_, ActionError>(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, t)| State::new().update("i", i).update("text", t))
                    .collect(),
            )
        },
    )
    .child_retry(RetryPolicy::new(3).backoff(Duration::ZERO, 1.0, Duration::ZERO))
    .reduce(|state: State, children: Vec<State>| Ok(state.update("done", children.len())))
    .reads(["items"])
    .writes(["done"])
    .persister(ChildPersister::None);
    let items: Vec<String> = (0..n).map(|i| format!("item number {i}")).collect();
    let mut app = ApplicationBuilder::new()
        .with_actions([map])
        .with_state(State::new().update("items", json!(items)))
        .with_entrypoint("lengths")
        .with_executor(Executor::cpu())
        .build()
        .await?;
    let start = Instant::now();
    let step = app.step(Inputs::new()).await?;
    let elapsed = start.elapsed();
    let done = step.and_then(|s| s.state.get::<usize>("done").ok());
    if done != Some(n) {
        return Err("W3 with failures did not finish every child".into());
    }
    Ok(json!({
        "workload": "w3-retry",
        "n": n,
        "us_per_child": elapsed.as_secs_f64() * 1e6 / n as f64,
        "extra_attempts": runs.load(Ordering::Relaxed) - n as u64,
        "total_ms": elapsed.as_secs_f64() * 1e3,
    }))
}
