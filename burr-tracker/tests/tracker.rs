//! The tracker without a persister: what it records is enough to show the steps, rebuild
//! the state at every sequence id (deleted keys included) and export stream events.

use std::sync::Arc;

use burr_core::actions::{action_sync, async_trait, Action, ActionResult, Declaration};
use burr_core::{
    inputs, ActionError, ApplicationBuilder, ApplicationContext, Inputs, RunOptions, State,
};
use burr_tracker::export::export_burr_ui;
use burr_tracker::inspect::{Database, Status};
use burr_tracker::Tracker;
use futures::stream::{BoxStream, StreamExt};
use serde_json::{json, Value};

/// Streams three words, then sets `said` to the last.
struct Say {
    declaration: Declaration,
}

#[async_trait]
impl Action for Say {
    fn declaration(&self) -> &Declaration {
        &self.declaration
    }
    fn stream_run(
        &self,
        _: State,
        _: Inputs,
        _: ApplicationContext,
    ) -> BoxStream<'static, Result<ActionResult, ActionError>> {
        futures::stream::iter(["one", "two", "three"])
            .map(|w| Ok(inputs! { "text": w }))
            .boxed()
    }
    fn update(&self, result: &ActionResult, state: State) -> Result<State, ActionError> {
        Ok(state.update("said", result.get("text").cloned().unwrap_or(Value::Null)))
    }
}

#[tokio::test]
async fn a_tracker_alone_records_enough_to_rebuild_every_state() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("tracked.db");
    let tracker = Tracker::open(&path).expect("opens");
    let add = action_sync("add", |s: State, _: &Inputs, _| {
        Ok::<_, burr_core::state::StateError>(s.increment("n", 1)?.update("scratch", "temp"))
    })
    .reads(["n"])
    .writes(["n", "scratch"]);
    let tidy = action_sync("tidy", |s: State, _: &Inputs, _| {
        s.wipe(burr_core::state::Wipe::delete(["scratch"]))
    })
    .reads(["scratch"]);
    let mut app = ApplicationBuilder::new()
        .with_actions([add, tidy])
        .with_actions([Arc::new(Say {
            declaration: Declaration::new("say").writes(["said"]).streaming(),
        }) as Arc<dyn Action>])
        .with_transitions([("add", "tidy"), ("tidy", "say")])
        .with_state(State::new().update("n", 41))
        .with_entrypoint("add")
        .with_app_id("solo")
        .with_tracker(tracker.hook())
        .build()
        .await
        .expect("builds");
    app.step(Inputs::new()).await.expect("add");
    app.step(Inputs::new()).await.expect("tidy");
    {
        let mut stream = app
            .stream_result(RunOptions::new().halt_after(["say"]))
            .await
            .expect("streams");
        while let Some(item) = stream.next().await {
            item.expect("an item");
        }
    }
    tracker.flush().expect("flushes");

    let db = Database::open(&path).expect("opens read-only");
    let solo = db.find("solo", None).expect("recorded");
    assert!(solo.tracked() && !solo.checkpointed);
    let summary = db.summary(solo).expect("a summary");
    assert_eq!((summary.status, summary.steps), (Status::Completed, 3));
    let (_, after_add) = db.state(solo, Some(0)).expect("state 0");
    assert_eq!(
        Value::Object(after_add),
        json!({"n": 42, "scratch": "temp"})
    );
    let (_, after_tidy) = db.state(solo, Some(1)).expect("state 1");
    assert_eq!(Value::Object(after_tidy), json!({"n": 42}));
    let (seq, last) = db.state(solo, None).expect("latest");
    assert_eq!(
        (seq, Value::Object(last)),
        (2, json!({"n": 42, "said": "three"}))
    );
    let graph = db.graph(solo).expect("a graph");
    assert_eq!(graph.transitions.len(), 2);
    assert!(graph.actions.iter().any(|a| a.name == "say" && a.streaming));

    let out = dir.path().join("ui");
    export_burr_ui(&db, &out, "solo-project", &[]).expect("exports");
    let log = std::fs::read_to_string(out.join("solo-project/solo/log.jsonl")).expect("a log");
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    let streamed: Vec<&Value> = lines
        .iter()
        .filter(|l| {
            l["action_sequence_id"] == 2
                && l["type"].as_str().is_some_and(|t| t.ends_with("stream"))
        })
        .collect();
    let types: Vec<&str> = streamed
        .iter()
        .map(|l| l["type"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(types, ["begin_stream", "first_item_stream", "end_stream"]);
    assert_eq!(streamed[2]["items_streamed"], 3);
    let end = lines
        .iter()
        .rfind(|l| l["type"] == "end_entry")
        .expect("an end");
    assert_eq!(end["state"]["said"], "three");
    assert_eq!(end["state"]["__PRIOR_STEP"], "say");
}

#[test]
fn a_foreign_file_is_refused() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("other.db");
    rusqlite::Connection::open(&path)
        .and_then(|c| c.execute_batch("CREATE TABLE invoices (id INTEGER PRIMARY KEY)"))
        .expect("a foreign database");
    let error = Tracker::open(&path).expect_err("refused");
    assert!(
        error.to_string().contains("is not a burr database"),
        "{error}"
    );
}

#[tokio::test]
async fn every_attempt_is_recorded_with_the_backoff_chosen() {
    use burr_core::actions::RetryPolicy;
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("retries.db");
    let tracker = Tracker::open(&path).expect("opens");
    let runs = std::sync::atomic::AtomicU32::new(0);
    let flaky = action_sync("flaky", move |s: State, _: &Inputs, _| {
        if runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
            return Err(ActionError::msg("the model server is down"));
        }
        Ok(s.update("done", true))
    })
    .writes(["done"]);
    let mut app = ApplicationBuilder::new()
        .with_actions([flaky])
        .with_entrypoint("flaky")
        .with_app_id("retried")
        .with_retry(
            "flaky",
            RetryPolicy::new(3)
                .backoff(
                    std::time::Duration::from_millis(5),
                    2.0,
                    std::time::Duration::from_secs(1),
                )
                .jitter(0.0),
        )
        .with_tracker(tracker.hook())
        .build()
        .await
        .unwrap();
    app.step(Inputs::new()).await.unwrap();
    tracker.flush().unwrap();

    let db = Database::open(&path).expect("opens read-only");
    let app = db.find("retried", None).expect("recorded");
    let steps = db.steps(app).expect("steps");
    let attempts: Vec<(u64, u32, String)> = steps
        .iter()
        .map(|s| (s.sequence_id, s.attempt, s.status.as_str().to_owned()))
        .collect();
    assert_eq!(
        attempts,
        [
            (0, 1, "failed".to_owned()),
            (0, 2, "failed".to_owned()),
            (0, 3, "completed".to_owned())
        ]
    );
    let traces = db.traces(app).expect("traces");
    let backoff = |attempt: u32| {
        traces.get(&(0, attempt)).and_then(|t| {
            t.attributes
                .iter()
                .find(|a| a.key == burr_tracker::RETRY_IN_MS)
                .map(|a| a.value.clone())
        })
    };
    assert_eq!(backoff(1), Some(json!(5)));
    assert_eq!(backoff(2), Some(json!(10)));
    assert_eq!(backoff(3), None, "the last attempt succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_childs_wait_for_an_executor_slot_is_recorded_apart() {
    use burr_core::parallel::{Executor, MapAction, SubGraph};
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("waits.db");
    let tracker = Tracker::open(&path).expect("opens");
    // One slot, two children. The first to run holds the slot until the other waits for
    // it, and 30 ms more: the other's wait is at least those 30 ms, however the two are
    // scheduled.
    let executor = Executor::new(1);
    let holder: Arc<std::sync::Mutex<Option<i64>>> = Arc::default();
    let hold = {
        let (executor, holder) = (executor.clone(), Arc::clone(&holder));
        burr_core::actions::action_fn("hold", move |s: State, _, _| {
            let (executor, holder) = (executor.clone(), Arc::clone(&holder));
            async move {
                let i: i64 = s.get("i")?;
                let first = *holder.lock().unwrap().get_or_insert(i) == i;
                if first {
                    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
                    while executor.waiting() == 0 && std::time::Instant::now() < deadline {
                        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
                }
                Ok::<_, burr_core::actions::ActionError>(s)
            }
        })
        .reads(["i"])
    };
    let fan = MapAction::states("fan", SubGraph::action(hold), |_: &State, _: &Inputs| {
        Ok((0..2).map(|i| State::new().update("i", i)).collect())
    });
    let mut app = ApplicationBuilder::new()
        .with_actions([fan])
        .with_entrypoint("fan")
        .with_app_id("waits")
        .with_executor(executor)
        .with_tracker(tracker.hook())
        .build()
        .await
        .unwrap();
    app.step(Inputs::new()).await.unwrap();
    tracker.flush().unwrap();

    let db = Database::open(&path).expect("opens read-only");
    let waited = |i: i64| {
        let child = db.find(&format!("waits/0/{i}"), None).expect("recorded");
        let traces = db.traces(child).expect("traces");
        traces.get(&(0, 1)).and_then(|t| {
            t.attributes
                .iter()
                .find(|a| a.key == burr_tracker::WAITED_US)
                .and_then(|a| a.value.as_u64())
        })
    };
    let first = holder.lock().unwrap().expect("a child ran");
    let other = waited(1 - first);
    assert!(
        other.is_some_and(|us| us >= 30_000),
        "child {} waited for the other's hold: {other:?}",
        1 - first
    );
    // The holder found the slot free: its wait, if any, is how long its thread stalled
    // between asking and getting it (under 1 ms is not recorded), which no test can bound.
}
