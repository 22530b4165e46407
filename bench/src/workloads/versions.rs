//! Versions and caches: fingerprinting a 1,000-action graph, and a memoized step
//! reading a 1 MB value served from the step cache compared with a plain W2 step.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use burr_core::actions::action_sync;
use burr_core::cache::{Cache, SqliteCache};
use burr_core::graph::Graph;
use burr_core::persistence::{Persister, SqlitePersister};
use burr_core::state::StateError;
use burr_core::{default, expr, ApplicationBuilder, Inputs, State};
use serde_json::{json, Value};

/// A chain of `n` actions, each reading and writing two keys, with a conditional loop
/// and a default transition out of each.
fn chain(n: usize) -> Graph {
    let actions: Vec<_> = (0..n)
        .map(|i| {
            action_sync(format!("a{i}"), |s: State, _, _| Ok::<_, StateError>(s))
                .reads(["x", format!("k{i}").as_str()])
                .writes([format!("k{}", i + 1)])
                .inputs(["model"])
                .version("1")
        })
        .collect();
    let mut transitions = Vec::new();
    for i in 0..n.saturating_sub(1) {
        let (from, to) = (format!("a{i}"), format!("a{}", i + 1));
        transitions.push((from.clone(), from.clone(), expr("x < 3")));
        transitions.push((from, to, default()));
    }
    Graph::builder()
        .with_actions(actions)
        .with_transitions(transitions)
        .build()
        .expect("a valid chain")
}

/// Fingerprint a graph of `n` actions (default 1,000), `rounds` times: the median.
pub fn fingerprint(n: usize, rounds: usize) -> Value {
    let graph = chain(n);
    let mut times = Vec::with_capacity(rounds);
    let mut fingerprint = String::new();
    for _ in 0..rounds {
        let start = Instant::now();
        fingerprint = graph.fingerprint("a0");
        times.push(start.elapsed().as_secs_f64() * 1e6);
    }
    json!({
        "workload": "fingerprint",
        "actions": n,
        "transitions": graph.transitions().len(),
        "rounds": rounds,
        "us_median": super::median(&times),
        "fingerprint": fingerprint,
    })
}

/// `steps` memoized steps, each reading a 1 MB value and served from the step cache
/// (after the first, which computes), checkpointed; then `steps` plain W2 steps in the
/// same process: the time per step of each and their ratio.
pub async fn cache_hit(dir: &Path, steps: u64) -> Result<Value, Box<dyn std::error::Error>> {
    let path = dir.join("step-cache.db");
    let persister = Arc::new(SqlitePersister::open(&path)?);
    let cache = Cache::new(SqliteCache::from_persister(&persister));
    let measure = action_sync("measure", |s: State, _, _| {
        let big: String = s.get("big")?;
        Ok::<_, StateError>(s.update("length", big.len()))
    })
    .reads(["big"])
    .writes(["length"])
    .version("1")
    .memoize();
    let tick = action_sync("tick", |s: State, _, _| s.increment("count", 1))
        .reads(["count"])
        .writes(["count"]);
    let mut app = ApplicationBuilder::new()
        .with_actions([measure, tick])
        .with_transitions([
            ("measure", "tick", default()),
            ("tick", "measure", expr(&format!("count < {}", steps + 1))),
        ])
        .with_state(
            State::new()
                .update("big", "x".repeat(1_000_000))
                .update("count", 0),
        )
        .with_entrypoint("measure")
        .with_app_id("step-cache")
        .with_step_cache(cache.clone())
        .with_state_persister(persister.clone() as Arc<dyn Persister>)
        .build()
        .await?;
    // The first `measure` computes and stores; `tick` steps are timed apart.
    app.step(Inputs::new()).await?;
    app.step(Inputs::new()).await?;
    let mut hit_us = Vec::new();
    let mut tick_us = Vec::new();
    for _ in 1..steps {
        let start = Instant::now();
        app.step(Inputs::new()).await?;
        hit_us.push(start.elapsed().as_secs_f64() * 1e6);
        let start = Instant::now();
        app.step(Inputs::new()).await?;
        tick_us.push(start.elapsed().as_secs_f64() * 1e6);
    }
    let stats = cache.stats();
    let w2 = super::w2::checkpointed(dir, steps, false, Default::default(), false).await?;
    let w2_us = w2["us_per_step"].as_f64().unwrap_or(f64::NAN);
    let hit = super::median(&hit_us);
    Ok(json!({
        "workload": "step-cache",
        "steps": steps,
        "hits": stats.hits,
        "computed": stats.computed,
        "hit_us_median": hit,
        "tick_us_median": super::median(&tick_us),
        "w2_us_per_step": w2_us,
        "ratio_to_w2": hit / w2_us,
    }))
}
