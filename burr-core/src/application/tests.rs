use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt;
use serde_json::{json, Value};

use crate::actions::{action_fn, action_sync, Action, Declaration};
use crate::actions::{ActionError, ActionResult, Inputs};
use crate::application::{ApplicationBuilder, RunOptions};
use crate::condition::{default, expr};
use crate::error::Error;
use crate::hooks::{HookEvent, RecordingHook};
use crate::ids::ApplicationContext;
use crate::inputs;
use crate::persistence::{History, InMemoryPersister, StepStatus};
use crate::state::State;

fn counter(limit: i64) -> ApplicationBuilder {
    let increment = action_sync("increment", |s: State, _, _| s.increment("count", 1))
        .reads(["count"])
        .writes(["count"]);
    let done = action_sync("done", |s: State, _, _| s).reads(["count"]);
    ApplicationBuilder::new()
        .with_actions([increment, done])
        .with_transitions([
            ("increment", "increment", expr(&format!("count < {limit}"))),
            ("increment", "done", default()),
        ])
        .with_state(State::new().update("count", 0))
        .with_entrypoint("increment")
}

#[tokio::test]
async fn steps_until_done_then_none() {
    let mut app = counter(3).build().await.unwrap();
    let mut seen = Vec::new();
    while let Some(step) = app.step(Inputs::new()).await.unwrap() {
        seen.push((step.action, step.sequence_id));
    }
    assert_eq!(
        seen,
        [
            ("increment".into(), 0),
            ("increment".into(), 1),
            ("increment".into(), 2),
            ("done".into(), 3)
        ]
    );
    assert_eq!(app.sequence_id(), Some(3));
    assert!(app.step(Inputs::new()).await.unwrap().is_none());
    assert_eq!(
        app.sequence_id(),
        Some(3),
        "a call that runs nothing uses no sequence id"
    );
    assert!(!app.has_next_action());
}

#[tokio::test]
async fn run_halts_after_and_before() {
    let mut app = counter(5).build().await.unwrap();
    let out = app
        .run(RunOptions::new().halt_after(["done"]))
        .await
        .unwrap();
    assert_eq!(out.action.as_deref(), Some("done"));
    assert_eq!(out.state.get::<i64>("count").unwrap(), 5);

    let mut app = counter(5).build().await.unwrap();
    let out = app
        .run(RunOptions::new().halt_before(["done"]))
        .await
        .unwrap();
    assert_eq!(out.action.as_deref(), Some("done"), "halted before done");
    assert!(out.result.is_none());
    assert_eq!(app.next_action().unwrap(), Some("done"));

    // halt_before the entrypoint still runs one step
    let mut app = counter(5).build().await.unwrap();
    app.run(RunOptions::new().halt_before(["increment"]))
        .await
        .unwrap();
    assert_eq!(app.sequence_id(), Some(0));

    let err = counter(5)
        .build()
        .await
        .unwrap()
        .run(RunOptions::new().halt_before(["nope"]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnknownHaltAction { ref names } if names == &["nope"]));
}

#[tokio::test]
async fn halt_by_tag() {
    let a = action_sync("a", |s: State, _, _| s).tags(["review"]);
    let b = action_sync("b", |s: State, _, _| s);
    let mut app = ApplicationBuilder::new()
        .with_actions([b, a])
        .with_transitions([("b", "a"), ("a", "b")])
        .with_entrypoint("b")
        .build()
        .await
        .unwrap();
    let out = app
        .run(RunOptions::new().halt_after(["@tag:review"]))
        .await
        .unwrap();
    assert_eq!(out.action.as_deref(), Some("a"));
    assert!(app
        .run(RunOptions::new().halt_before(["@tag:nothing"]))
        .await
        .is_err());
}

#[tokio::test]
async fn iterate_yields_each_step() {
    let mut app = counter(2).build().await.unwrap();
    let steps: Vec<_> = app
        .iterate(RunOptions::new().halt_after(["done"]))
        .collect()
        .await;
    let names: Vec<_> = steps.into_iter().map(|s| s.unwrap().action).collect();
    assert_eq!(names, ["increment", "increment", "done"]);
}

#[tokio::test]
async fn inputs_reach_each_action_that_declares_them() {
    let greet = action_sync("greet", |s: State, i: &Inputs, _| {
        s.update("greeting", i["name"].clone())
    })
    .inputs(["name"])
    .writes(["greeting"]);
    let shout = action_sync("shout", |s: State, i: &Inputs, _| {
        let loud = i.get("loud").cloned().unwrap_or(Value::Bool(false));
        s.update("loud", loud)
            .update("saw", json!(i.keys().collect::<Vec<_>>()))
    })
    .optional_inputs(["loud"])
    .writes(["loud", "saw"]);
    let mut app = ApplicationBuilder::new()
        .with_actions([greet, shout])
        .with_transitions([("greet", "shout")])
        .with_entrypoint("greet")
        .build()
        .await
        .unwrap();
    let out = app
        .run(
            RunOptions::new()
                .halt_after(["shout"])
                .inputs(inputs! {"name": "ada", "loud": true, "extra": 1}),
        )
        .await
        .unwrap();
    assert_eq!(out.state.get_value("greeting"), Some(&json!("ada")));
    assert_eq!(out.state.get_value("saw"), Some(&json!(["loud"])));
}

#[tokio::test]
async fn missing_and_reserved_inputs_are_refused_without_using_a_sequence_id() {
    let greet = action_sync("greet", |s: State, _, _| s).inputs(["name"]);
    let mut app = ApplicationBuilder::new()
        .with_actions([greet])
        .with_entrypoint("greet")
        .build()
        .await
        .unwrap();
    let err = app.step(Inputs::new()).await.unwrap_err();
    assert!(
        matches!(err, Error::MissingInput { ref action, ref inputs } if action == "greet" && inputs == &["name"])
    );
    let err = app.step(inputs! {"name": 1, "__ctx": 2}).await.unwrap_err();
    assert!(matches!(err, Error::ReservedInput { ref input } if input == "__ctx"));
    assert_eq!(app.sequence_id(), None);
    assert_eq!(
        app.step(inputs! {"name": 1})
            .await
            .unwrap()
            .unwrap()
            .sequence_id,
        0
    );
}

#[tokio::test]
async fn actions_see_only_what_they_read() {
    let peek = action_sync("peek", |s: State, _, _| {
        let seen: Vec<String> = s.keys().map(str::to_owned).collect();
        (json!({"seen": seen}), s)
    })
    .reads(["a", "absent"]);
    let mut app = ApplicationBuilder::new()
        .with_actions([peek])
        .with_state(State::new().update("a", 1).update("secret", 2))
        .with_entrypoint("peek")
        .build()
        .await
        .unwrap();
    let step = app.step(Inputs::new()).await.unwrap().unwrap();
    assert_eq!(step.result["seen"], json!(["a"]));
    assert_eq!(
        step.state.get_value("secret"),
        Some(&json!(2)),
        "unread keys survive"
    );
}

struct TwoStep {
    declaration: Declaration,
    write: Vec<(&'static str, i64)>,
}

#[async_trait]
impl Action for TwoStep {
    fn declaration(&self) -> &Declaration {
        &self.declaration
    }
    async fn run(
        &self,
        _: State,
        _: &Inputs,
        _: &ApplicationContext,
    ) -> Result<ActionResult, ActionError> {
        Ok(ActionResult::new())
    }
    fn update(&self, _: &ActionResult, state: State) -> Result<State, ActionError> {
        Ok(state.update_many(self.write.iter().cloned()))
    }
}

async fn run_two_step(
    writes: &[&str],
    write: Vec<(&'static str, i64)>,
) -> (crate::error::Result<()>, crate::application::Application) {
    let mut app = ApplicationBuilder::new()
        .with_actions([TwoStep {
            declaration: Declaration::new("two_step").writes(writes.iter().copied()),
            write,
        }])
        .with_state(State::new().update("existing", 0))
        .with_entrypoint("two_step")
        .build()
        .await
        .unwrap();
    let outcome = app.step(Inputs::new()).await.map(|_| ());
    (outcome, app)
}

#[tokio::test]
async fn undeclared_and_missing_writes_fail_the_step() {
    let (out, app) = run_two_step(&["x"], vec![("x", 1), ("y", 2)]).await;
    assert!(matches!(out, Err(Error::UndeclaredWrite { ref keys, .. }) if keys == &["y"]));
    assert!(!app.state().contains("x"), "a failed step changes nothing");

    let (out, _) = run_two_step(&["x"], vec![("x", 1), ("existing", 5)]).await;
    assert!(
        matches!(out, Err(Error::UndeclaredWrite { ref keys, .. }) if keys == &["existing"]),
        "rewriting an existing undeclared key is an error too"
    );

    let (out, _) = run_two_step(&["x", "z"], vec![("x", 1)]).await;
    assert!(matches!(out, Err(Error::MissingWrite { ref keys, .. }) if keys == &["z"]));

    let (out, _) = run_two_step(&["existing"], vec![]).await;
    assert!(out.is_ok(), "a declared key already present passes");
}

#[tokio::test]
async fn single_step_function_actions_are_checked_too() {
    let sneaky = action_sync("sneaky", |s: State, _, _| s.update("other", 1)).writes(["mine"]);
    let mut app = ApplicationBuilder::new()
        .with_actions([sneaky])
        .with_entrypoint("sneaky")
        .build()
        .await
        .unwrap();
    let err = app.step(Inputs::new()).await.unwrap_err();
    assert!(matches!(err, Error::UndeclaredWrite { .. }), "{err}");
}

#[tokio::test]
async fn a_failed_step_is_retried_under_the_same_sequence_id() {
    let tries = Arc::new(AtomicU32::new(0));
    let t = Arc::clone(&tries);
    let flaky = action_sync("flaky", move |s: State, _, ctx: &ApplicationContext| {
        let n = t.fetch_add(1, Ordering::SeqCst);
        if n < 2 {
            return Err(ActionError::msg(format!("boom {n}")));
        }
        Ok(s.update("attempt", ctx.attempt()))
    })
    .writes(["attempt"]);
    let persister = Arc::new(InMemoryPersister::new());
    let hook = RecordingHook::new();
    let mut app = ApplicationBuilder::new()
        .with_actions([flaky])
        .with_entrypoint("flaky")
        .with_app_id("flaky-app")
        .with_state_persister(persister.clone())
        .with_hooks([hook.clone()])
        .build()
        .await
        .unwrap();
    assert!(app.step(Inputs::new()).await.is_err());
    assert!(app.step(Inputs::new()).await.is_err());
    let step = app.step(Inputs::new()).await.unwrap().unwrap();
    assert_eq!(step.sequence_id, 0);
    assert_eq!(step.state.get::<u32>("attempt").unwrap(), 3);
    let rows = persister.list_checkpoints(None, "flaky-app").await.unwrap();
    let summary: Vec<_> = rows
        .iter()
        .map(|r| (r.sequence_id, r.attempt, r.status))
        .collect();
    assert_eq!(
        summary,
        [
            (0, 1, StepStatus::Failed),
            (0, 2, StepStatus::Failed),
            (0, 3, StepStatus::Completed)
        ]
    );
    assert!(rows[0].error.as_deref().unwrap().contains("boom 0"));
}

#[tokio::test]
async fn hooks_fire_in_order_once_per_step() {
    let hook = RecordingHook::new();
    let mut app = counter(1).with_hooks([hook.clone()]).build().await.unwrap();
    app.run(RunOptions::new().halt_after(["done"]))
        .await
        .unwrap();
    let kinds: Vec<String> = hook
        .events()
        .iter()
        .map(|e| match e {
            HookEvent::AppCreated { entrypoint, .. } => format!("create:{entrypoint}"),
            HookEvent::PreExecuteCall { method } => format!("pre_call:{method}"),
            HookEvent::PostExecuteCall { method, .. } => format!("post_call:{method}"),
            HookEvent::PreRunStep {
                action,
                sequence_id,
                ..
            } => format!("pre:{action}:{sequence_id}"),
            HookEvent::PostRunStep { action, status, .. } => format!("post:{action}:{status}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "create:increment",
            "pre_call:run",
            "pre:increment:0",
            "post:increment:completed",
            "pre:done:1",
            "post:done:completed",
            "post_call:run"
        ]
    );
}

#[tokio::test]
async fn context_carries_identifiers_spans_and_attributes() {
    let hook = RecordingHook::new();
    let probe = action_fn("probe", |s: State, _, ctx: ApplicationContext| async move {
        {
            let _outer = ctx.span("outer");
            let _inner = ctx.span("inner");
            ctx.log_attribute("tokens", 42);
        }
        let seen = json!({
            "app_id": ctx.app_id(),
            "pk": ctx.partition_key(),
            "seq": ctx.sequence_id(),
            "action": ctx.action_name(),
        });
        s.update("seen", seen)
    })
    .writes(["seen"]);
    let mut app = ApplicationBuilder::new()
        .with_actions([probe])
        .with_entrypoint("probe")
        .with_app_id("ctx-app")
        .with_partition_key("user-1")
        .with_sequence_id(41)
        .with_hooks([hook.clone()])
        .build()
        .await
        .unwrap();
    let step = app.step(Inputs::new()).await.unwrap().unwrap();
    assert_eq!(
        step.state.get_value("seen"),
        Some(&json!({"app_id": "ctx-app", "pk": "user-1", "seq": 42, "action": "probe"}))
    );
    let spans: Vec<_> = hook
        .events()
        .into_iter()
        .filter(|e| {
            matches!(
                e,
                HookEvent::SpanStart { .. }
                    | HookEvent::SpanEnd { .. }
                    | HookEvent::Attribute { .. }
            )
        })
        .collect();
    assert_eq!(
        spans,
        [
            HookEvent::SpanStart {
                name: "outer".into(),
                span_id: 0,
                parent_span_id: None
            },
            HookEvent::SpanStart {
                name: "inner".into(),
                span_id: 1,
                parent_span_id: Some(0)
            },
            HookEvent::Attribute {
                key: "tokens".into(),
                value: json!(42),
                span_id: Some(1)
            },
            HookEvent::SpanEnd {
                name: "inner".into()
            },
            HookEvent::SpanEnd {
                name: "outer".into()
            },
        ]
    );
}

struct Chatter;

#[async_trait]
impl Action for Chatter {
    fn declaration(&self) -> &Declaration {
        static DECLARED: std::sync::LazyLock<Declaration> =
            std::sync::LazyLock::new(|| Declaration::new("chatter").writes(["said"]).streaming());
        &DECLARED
    }
    fn stream_run(
        &self,
        _: State,
        _: Inputs,
        _: ApplicationContext,
    ) -> BoxStream<'static, Result<ActionResult, ActionError>> {
        let items = ["a", "b", "c"].map(|w| Ok(crate::inputs! {"word": w}));
        Box::pin(futures::stream::iter(items))
    }
    fn update(&self, result: &ActionResult, state: State) -> Result<State, ActionError> {
        Ok(state.update("said", result["word"].clone()))
    }
}

#[tokio::test]
async fn stream_result_commits_only_on_the_final_item() {
    use crate::application::StreamEvent;
    let hook = RecordingHook::new();
    let mut app = ApplicationBuilder::new()
        .with_actions([Chatter])
        .with_entrypoint("chatter")
        .with_hooks([hook.clone()])
        .build()
        .await
        .unwrap();
    let stream = app
        .stream_result(RunOptions::new().halt_after(["chatter"]))
        .await
        .unwrap();
    let events: Vec<_> = stream.map(|e| e.unwrap()).collect().await;
    assert_eq!(events.len(), 4);
    match &events[3] {
        StreamEvent::Final { result, state } => {
            assert_eq!(result.as_ref().unwrap()["word"], json!("c"));
            assert_eq!(state.get_value("said"), Some(&json!("c")));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(app.state().get_value("said"), Some(&json!("c")));
    let posts = hook
        .events()
        .iter()
        .filter(|e| matches!(e, HookEvent::PostRunStep { .. }))
        .count();
    assert_eq!(posts, 1);
}

#[tokio::test]
async fn dropping_a_stream_early_fires_hooks_once_and_commits_nothing() {
    let hook = RecordingHook::new();
    let mut app = ApplicationBuilder::new()
        .with_actions([Chatter])
        .with_entrypoint("chatter")
        .with_hooks([hook.clone()])
        .build()
        .await
        .unwrap();
    {
        let mut stream = app
            .stream_result(RunOptions::new().halt_after(["chatter"]))
            .await
            .unwrap();
        let first = stream.next().await.unwrap().unwrap();
        assert!(matches!(first, crate::application::StreamEvent::Item(_)));
    }
    assert!(!app.state().contains("said"));
    let events = hook.events();
    let posts: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, HookEvent::PostRunStep { .. }))
        .collect();
    assert_eq!(posts.len(), 1);
    assert!(matches!(
        posts[0],
        HookEvent::PostRunStep {
            status: StepStatus::Failed,
            ..
        }
    ));
    assert!(events.contains(&HookEvent::StreamEnd {
        action: "chatter".into(),
        items: 1,
        dropped: true
    }));
    // The step can run again, under the same sequence id.
    let step = app.step(Inputs::new()).await.unwrap().unwrap();
    assert_eq!(step.sequence_id, 0);
    assert_eq!(step.state.get_value("said"), Some(&json!("c")));
}

#[tokio::test]
async fn build_reports_entrypoint_problems_with_graph_problems() {
    let err = counter(1)
        .with_entrypoint("nope")
        .build()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("entrypoint `nope`"), "{err}");
    let err = ApplicationBuilder::new()
        .with_actions([action_sync("a", |s: State, _, _| s)])
        .with_transitions([("a", "b")])
        .build()
        .await
        .unwrap_err();
    let Error::Graph(graph) = err else { panic!() };
    assert_eq!(graph.problems.len(), 2, "{graph}");
}

#[tokio::test]
async fn resume_from_memory_persister_continues_after_the_last_step() {
    let persister = Arc::new(InMemoryPersister::new());
    {
        let mut app = counter(5)
            .with_app_id("resumable")
            .with_state_persister(persister.clone())
            .build()
            .await
            .unwrap();
        app.step(Inputs::new()).await.unwrap();
        app.step(Inputs::new()).await.unwrap();
    }
    let mut app = counter(5)
        .with_app_id("resumable")
        .with_state_persister(persister.clone())
        .with_state(State::new())
        .with_entrypoint("increment")
        .initialize_from(persister.clone())
        .build()
        .await
        .unwrap();
    assert_eq!(app.sequence_id(), Some(1));
    assert_eq!(app.state().get::<i64>("count").unwrap(), 2);
    let out = app
        .run(RunOptions::new().halt_after(["done"]))
        .await
        .unwrap();
    assert_eq!(out.state.get::<i64>("count").unwrap(), 5);
    assert_eq!(app.sequence_id(), Some(5));
}

#[tokio::test]
async fn a_second_runner_on_the_same_app_id_is_refused() {
    let persister = Arc::new(InMemoryPersister::new());
    let _first = counter(5)
        .with_app_id("busy")
        .with_state_persister(persister.clone())
        .build()
        .await
        .unwrap();
    let err = counter(5)
        .with_app_id("busy")
        .with_state_persister(persister.clone())
        .build()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("busy"), "{err}");
    assert!(std::error::Error::source(&err)
        .unwrap()
        .to_string()
        .contains("already running"));
}

#[tokio::test]
async fn fork_into_the_same_app_id_is_an_error() {
    let persister = Arc::new(InMemoryPersister::new());
    let err = counter(5)
        .with_app_id("same")
        .with_state(State::new())
        .with_entrypoint("increment")
        .initialize_from(persister)
        .fork_from_app_id("same")
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ForkSameAppId { .. }));
}

#[tokio::test]
async fn initialize_from_twice_is_an_error() {
    let persister = Arc::new(InMemoryPersister::new());
    let err = counter(5)
        .with_state(State::new())
        .with_entrypoint("increment")
        .initialize_from(persister.clone())
        .with_state(State::new())
        .with_entrypoint("increment")
        .initialize_from(persister)
        .resume_at_next_action(false)
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Builder(crate::error::BuilderError::InitializeFromTwice)
        ),
        "{err}"
    );
    assert!(err
        .to_string()
        .contains("initialize_from was called more than once"));
}

#[tokio::test]
async fn writes_to_dunder_keys_are_dropped() {
    let a = action_sync("a", |s: State, _, _| s.update("__secret", 1).update("x", 1)).writes(["x"]);
    let mut app = ApplicationBuilder::new()
        .with_actions([a])
        .with_entrypoint("a")
        .build()
        .await
        .unwrap();
    let step = app.step(Inputs::new()).await.unwrap().unwrap();
    assert!(!step.state.contains("__secret"));
    assert!(step.state.contains("x"));
}

#[tokio::test]
async fn hooks_see_the_step_delta_deletions_included_without_a_persister() {
    use crate::hooks::{LifecycleHook, StepEnd};
    use std::sync::Mutex;
    #[derive(Default)]
    struct Deltas(Mutex<Vec<(Vec<String>, Vec<String>)>>);
    impl LifecycleHook for Deltas {
        fn post_run_step(&self, e: &StepEnd<'_>) {
            let updated = e.delta.updated.iter().map(|(k, _)| k.to_string()).collect();
            let deleted = e.delta.deleted.iter().map(|k| k.to_string()).collect();
            self.0.lock().unwrap().push((updated, deleted));
        }
    }
    let drop_scratch = action_sync("drop_scratch", |s: State, _, _| {
        s.wipe(crate::state::Wipe::delete(["scratch"]))
            .map(|s| s.update("n", 1))
    })
    .reads(["scratch"])
    .writes(["n"]);
    let deltas = Arc::new(Deltas::default());
    let mut app = ApplicationBuilder::new()
        .with_actions([drop_scratch])
        .with_state(State::new().update("scratch", 1).update("keep", 2))
        .with_entrypoint("drop_scratch")
        .with_hook(deltas.clone())
        .build()
        .await
        .unwrap();
    app.step(Inputs::new()).await.unwrap();
    assert_eq!(
        *deltas.0.lock().unwrap(),
        [(vec!["n".to_owned()], vec!["scratch".to_owned()])]
    );
}

#[tokio::test]
async fn reading_an_undeclared_key_names_the_reads_and_a_typo_names_the_action() {
    let peek = action_sync("peek", |s: State, _, _| {
        let hidden: i64 = s.get("hidden")?;
        Ok::<_, ActionError>(s.update("seen", hidden))
    })
    .reads(["visible"])
    .writes(["seen"]);
    let mut app = ApplicationBuilder::new()
        .with_actions([peek])
        .with_state(State::new().update("visible", 1).update("hidden", 2))
        .with_entrypoint("peek")
        .build()
        .await
        .unwrap();
    let err = app.step(Inputs::new()).await.unwrap_err();
    assert_eq!(
        crate::error::report(&err),
        "action `peek` failed: key `hidden` is not in this action's reads (it reads: visible)"
    );

    let err = counter(1)
        .with_transitions([("done", "incremnt")])
        .with_entrypoint("increment")
        .build()
        .await
        .unwrap_err();
    assert_eq!(
        crate::error::report(&err),
        "invalid application graph: transition target `incremnt` is not an action (did you mean `increment`?)"
    );
    let err = counter(1)
        .with_entrypoint("Done")
        .build()
        .await
        .unwrap_err();
    assert_eq!(
        crate::error::report(&err),
        "invalid application graph: entrypoint `Done` is not an action (did you mean `done`?)"
    );
}

#[tokio::test]
async fn identifiers_that_cannot_be_addressed_again_are_refused() {
    for (app_id, why) in [
        ("", "app id \"\" is not valid: it is empty"),
        (
            "a\0b",
            "app id \"a\\0b\" is not valid: it holds a control character",
        ),
        (
            "line\nbreak",
            "app id \"line\\nbreak\" is not valid: it holds a control character",
        ),
        (
            " padded",
            "app id \" padded\" is not valid: it starts or ends with white space",
        ),
    ] {
        let err = counter(1)
            .with_entrypoint("increment")
            .with_app_id(app_id)
            .build()
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("invalid application builder settings: {why}")
        );
    }
    let err = counter(1)
        .with_entrypoint("increment")
        .with_partition_key("")
        .build()
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        Error::Builder(crate::error::BuilderError::InvalidIdentifier {
            what: "partition key",
            ..
        })
    ));
    // Ids with slashes, dots, unicode and spaces inside are fine.
    counter(1)
        .with_entrypoint("increment")
        .with_app_id("meeting-7/3/discussion%2F12 é")
        .build()
        .await
        .unwrap();
}
