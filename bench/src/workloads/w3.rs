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
