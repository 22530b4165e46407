//! Memoized actions through the step cache, on a real SQLite file: a run is reused
//! across applications and processes, a new version of the action misses, and 100
//! concurrent identical runs run once.

use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use burr_core::actions::{action_fn, ActionError, ActionResult};
use burr_core::cache::{Cache, CachePrune, SqliteCache};
use burr_core::persistence::SqlitePersister;
use burr_core::{inputs, ApplicationBuilder, Inputs, State};

/// Runs of `summarize` by text (tests run at once in this binary: each uses its texts).
static RUNS: Mutex<Option<HashMap<String, usize>>> = Mutex::new(None);

fn runs(text: &str) -> usize {
    RUNS.lock()
        .unwrap()
        .as_ref()
        .and_then(|r| r.get(text).copied())
        .unwrap_or(0)
}

/// `summarize` reads `text`, takes the input `words`, writes `summary`; it counts its
/// runs and takes 50 ms.
fn summarize(version: &str) -> impl burr_core::actions::Action {
    action_fn("summarize", |state: State, inputs: Inputs, _| async move {
        let text: String = state.get("text")?;
        *RUNS
            .lock()
            .unwrap()
            .get_or_insert_with(HashMap::new)
            .entry(text.clone())
            .or_default() += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let words = inputs["words"].as_u64().unwrap_or(1) as usize;
        let summary: Vec<&str> = text.split(' ').take(words).collect();
        let mut result = ActionResult::new();
        result.insert("length".into(), text.len().into());
        Ok::<_, ActionError>((result, state.update("summary", summary.join(" "))))
    })
    .reads(["text"])
    .writes(["summary"])
    .inputs(["words"])
    .version(version)
    .memoize()
}

fn app(id: &str, version: &str, text: &str, cache: &Cache) -> ApplicationBuilder {
    ApplicationBuilder::new()
        .with_actions([summarize(version)])
        .with_transitions(Vec::<(&str, &str)>::new())
        .with_state(State::new().update("text", text))
        .with_entrypoint("summarize")
        .with_app_id(id)
        .with_step_cache(cache.clone())
}

fn cache_at(path: &std::path::Path) -> (Arc<SqlitePersister>, Cache) {
    let persister = Arc::new(SqlitePersister::open(path).unwrap());
    let cache = Cache::new(SqliteCache::from_persister(&persister));
    (persister, cache)
}

async fn summary_of(builder: ApplicationBuilder) -> String {
    let mut app = builder.build().await.unwrap();
    let step = app.step(inputs! {"words": 2}).await.unwrap().unwrap();
    assert_eq!(step.result["length"], 18);
    step.state.get("summary").unwrap()
}

/// The other process of `a_second_process_reuses_the_stored_run`.
#[tokio::test]
async fn child_process_steps_a_memoized_action() {
    let Ok(path) = std::env::var("BURR_STEP_CACHE_DB") else {
        return;
    };
    let (_, cache) = cache_at(std::path::Path::new(&path));
    let summary = summary_of(app("in-child", "1", "one two three four", &cache)).await;
    assert_eq!(summary, "one two");
    assert_eq!(
        runs("one two three four"),
        0,
        "the child reused the parent's run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memoized_runs_are_reused_across_applications_and_processes_per_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("burr.db");
    let (persister, cache) = cache_at(&path);
    let text = "one two three four";

    // Two applications, one run.
    let first =
        summary_of(app("a", "1", text, &cache).with_state_persister(persister.clone())).await;
    let second = summary_of(app("b", "1", text, &cache)).await;
    assert_eq!((first.as_str(), second.as_str()), ("one two", "one two"));
    assert_eq!(runs(text), 1);
    assert_eq!(cache.stats().hits, 1);
    // The application that reused it checkpointed its write like any step.
    let loaded = burr_core::persistence::Persister::load(&*persister, None, "a", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(loaded.state.get::<String>("summary").unwrap(), "one two");

    // Other read values: another run.
    summary_of(app("c", "1", "uno dos tres cuatr", &cache)).await;
    assert_eq!(runs("uno dos tres cuatr"), 1);
    assert_eq!(runs(text), 1);

    // A second process reuses the stored run.
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_process_steps_a_memoized_action"])
        .env("BURR_STEP_CACHE_DB", &path)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );

    // Version 2 of the action: a miss, and a new entry.
    summary_of(app("d", "2", text, &cache)).await;
    assert_eq!(runs(text), 2);
    let groups = cache.store().summary(Some("summarize")).await.unwrap();
    let versions: Vec<(&str, u64)> = groups
        .iter()
        .map(|g| (g.version.as_str(), g.entries))
        .collect();
    assert_eq!(versions, [("1", 2), ("2", 1)]);
    // Pruning the old version leaves the new one.
    let pruned = cache
        .store()
        .prune(&CachePrune::new().namespace("summarize").except_version("2"))
        .await
        .unwrap();
    assert_eq!(pruned, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_identical_steps_run_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cache) = cache_at(&dir.path().join("burr.db"));
    // A text no other test uses, so the count is this test's alone.
    let text = "cinq six sept huit";
    assert_eq!(text.len(), 18);
    let steps = (0..100).map(|i| {
        let builder = app(&format!("app-{i}"), "1", text, &cache);
        tokio::spawn(async move {
            let mut app = builder.build().await.unwrap();
            let step = app.step(inputs! {"words": 2}).await.unwrap().unwrap();
            step.state.get::<String>("summary").unwrap()
        })
    });
    for summary in futures::future::join_all(steps).await {
        assert_eq!(summary.unwrap(), "cinq six");
    }
    assert_eq!(runs(text), 1);
    assert_eq!(cache.stats().computed, 1);
}
