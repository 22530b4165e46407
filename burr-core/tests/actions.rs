//! Action adapters end to end: Input/Result helpers, bind/named, blocking sync actions.

use std::time::{Duration, Instant};

use burr_core::action::{action_sync, Action, ActionExt};
use burr_core::action::{Input, ReturnKeys as ResultAction};
use burr_core::RunOptions;
use burr_core::{inputs, ApplicationBuilder, Error, Inputs, State};
use serde_json::json;

#[tokio::test]
async fn input_and_result_helpers() {
    let mut app = ApplicationBuilder::new()
        .with_actions([Input::new("ask", ["query"])])
        .with_actions([ResultAction::new("answer", ["query"])])
        .with_transitions([("ask", "answer")])
        .with_entrypoint("ask")
        .build()
        .await
        .unwrap();
    let out = app
        .run(
            RunOptions::new()
                .halt_after(["answer"])
                .inputs(inputs! {"query": "why?"}),
        )
        .await
        .unwrap();
    assert_eq!(out.result.unwrap()["query"], json!("why?"));
    assert_eq!(out.state.get_value("query"), Some(&json!("why?")));
}

#[tokio::test]
async fn bind_fills_inputs_and_named_renames() {
    let answer = action_sync("answer", |s: State, i: &Inputs, _| {
        s.update("model", i["model"].clone())
    })
    .inputs(["model"])
    .writes(["model"]);
    let small = answer.clone().bind("model", "small").named("answer_small");
    let large = answer.named("answer_large").bind("model", "large");
    assert!(
        small.declaration().inputs.is_empty(),
        "a bound input is no longer required"
    );
    let mut app = ApplicationBuilder::new()
        .with_actions([small, large])
        .with_transitions([("answer_small", "answer_large")])
        .with_entrypoint("answer_small")
        .build()
        .await
        .unwrap();
    let first = app.step(Inputs::new()).await.unwrap().unwrap();
    assert_eq!(
        (first.action.as_str(), first.state.get_value("model")),
        ("answer_small", Some(&json!("small")))
    );
    let second = app.step(Inputs::new()).await.unwrap().unwrap();
    assert_eq!(second.state.get_value("model"), Some(&json!("large")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_blocking_sync_action_leaves_the_runtime_free() {
    let slow = action_sync("slow", |s: State, _, _| {
        std::thread::sleep(Duration::from_millis(300));
        s.update("done", true)
    })
    .writes(["done"])
    .blocking();
    let mut app = ApplicationBuilder::new()
        .with_actions([slow])
        .with_entrypoint("slow")
        .build()
        .await
        .unwrap();
    // With one worker thread, a ticker only keeps ticking if the action is off that thread.
    let ticker = tokio::spawn(async {
        let start = Instant::now();
        let mut ticks = 0;
        while start.elapsed() < Duration::from_millis(250) {
            tokio::time::sleep(Duration::from_millis(10)).await;
            ticks += 1;
        }
        ticks
    });
    // The step runs on the runtime's only worker too.
    let step = tokio::spawn(async move { app.step(Inputs::new()).await.unwrap().unwrap() });
    assert_eq!(
        step.await.unwrap().state.get_value("done"),
        Some(&json!(true))
    );
    assert!(
        ticker.await.unwrap() >= 10,
        "the runtime kept running while the action blocked"
    );
}

#[tokio::test]
async fn a_result_that_is_not_an_object_fails_the_step() {
    let bad = action_sync("bad", |s: State, _, _| (json!([1, 2]), s));
    let mut app = ApplicationBuilder::new()
        .with_actions([bad])
        .with_entrypoint("bad")
        .build()
        .await
        .unwrap();
    let err = app.step(Inputs::new()).await.unwrap_err();
    assert!(matches!(err, Error::Action { ref action, .. } if action == "bad"));
    let chain = std::error::Error::source(&err).unwrap().to_string();
    assert!(chain.contains("JSON object"), "{chain}");
}
