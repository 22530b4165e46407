//! Action adapters end to end: Input/Result helpers, bind/named, blocking sync actions.

use std::time::Duration;

use burr_core::actions::{action_sync, Action, ActionExt};
use burr_core::actions::{Input, ReturnKeys as ResultAction};
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
    // The action waits for a message that only a task on the runtime's one worker sends:
    // it gets it only if it runs off that worker. (The generous wait just ends the test if
    // it does not.)
    let (send, receive) = std::sync::mpsc::channel::<()>();
    let receive = std::sync::Mutex::new(receive);
    let slow = action_sync("slow", move |s: State, _, _| {
        let heard = receive
            .lock()
            .unwrap()
            .recv_timeout(Duration::from_secs(30))
            .is_ok();
        s.update("done", heard)
    })
    .writes(["done"])
    .blocking();
    let mut app = ApplicationBuilder::new()
        .with_actions([slow])
        .with_entrypoint("slow")
        .build()
        .await
        .unwrap();
    // The step runs on the runtime's only worker; so does the sender, once it may.
    let step = tokio::spawn(async move { app.step(Inputs::new()).await.unwrap().unwrap() });
    tokio::spawn(async move { send.send(()).unwrap() });
    assert_eq!(
        step.await.unwrap().state.get_value("done"),
        Some(&json!(true)),
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
