//! Failures as data: retries with backoff, timeouts, error transitions, cancellation and
//! idempotency keys.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use burr_core::actions::{action_fn, action_sync, ActionError, ErrorKind, RetryPolicy};
use burr_core::condition::{on_error, on_error_kind};
use burr_core::error::BuilderError;
use burr_core::parallel::{Executor, MapAction, SubGraph};
use burr_core::persistence::{History, InMemoryPersister, StepStatus};
use burr_core::prelude::*;

/// A policy that retries at once (no waiting in tests that count attempts).
fn quick(max_attempts: u32) -> RetryPolicy {
    RetryPolicy::new(max_attempts).backoff(Duration::ZERO, 1.0, Duration::ZERO)
}

/// An action that fails its first `failures` runs, recording each run's attempt and key.
fn flaky(failures: u32, seen: Arc<Mutex<Vec<(u32, String)>>>) -> burr_core::actions::FnAction {
    let runs = Arc::new(AtomicU32::new(0));
    action_sync("flaky", move |s: State, _, ctx: &ApplicationContext| {
        seen.lock()
            .unwrap()
            .push((ctx.attempt(), ctx.idempotency_key()));
        if runs.fetch_add(1, Ordering::SeqCst) < failures {
            return Err(ActionError::msg("the model server timed out"));
        }
        Ok(s.update("done", true))
    })
    .writes(["done"])
}

#[tokio::test]
async fn a_retried_step_keeps_its_sequence_id_and_checkpoints_each_attempt() {
    let seen = Arc::default();
    let store = Arc::new(InMemoryPersister::new());
    let mut app = ApplicationBuilder::new()
        .with_actions([flaky(2, Arc::clone(&seen))])
        .with_entrypoint("flaky")
        .with_retry("flaky", quick(3))
        .with_app_id("retry-1")
        .with_state_persister(store.clone())
        .build()
        .await
        .unwrap();
    let step = app.step(Inputs::new()).await.unwrap().unwrap();
    assert_eq!(step.sequence_id, 0);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
        [1, 2, 3],
        "attempts count runs of the action's code"
    );
    assert!(
        seen.iter().all(|(_, key)| key == "/retry-1/0"),
        "one idempotency key across retries: {seen:?}"
    );
    let rows = store.list_checkpoints(None, "retry-1").await.unwrap();
    let rows: Vec<_> = rows
        .iter()
        .map(|r| (r.sequence_id, r.attempt, r.status, r.error.is_some()))
        .collect();
    assert_eq!(
        rows,
        [
            (0, 1, StepStatus::Failed, true),
            (0, 2, StepStatus::Failed, true),
            (0, 3, StepStatus::Completed, false)
        ]
    );
}

#[tokio::test]
async fn spent_attempts_kinds_and_verdicts_end_the_retries() {
    // Spent: three runs, then the error.
    let seen = Arc::default();
    let mut app = ApplicationBuilder::new()
        .with_actions([flaky(10, Arc::clone(&seen))])
        .with_entrypoint("flaky")
        .with_default_retry(quick(3))
        .build()
        .await
        .unwrap();
    let err = app.step(Inputs::new()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Action);
    assert_eq!(seen.lock().unwrap().len(), 3);

    // Only timeouts retry: an action error fails at once.
    let seen = Arc::default();
    let mut app = ApplicationBuilder::new()
        .with_actions([flaky(10, Arc::clone(&seen))])
        .with_entrypoint("flaky")
        .with_retry("flaky", quick(3).retry_on([ErrorKind::Timeout]))
        .build()
        .await
        .unwrap();
    app.step(Inputs::new()).await.unwrap_err();
    assert_eq!(seen.lock().unwrap().len(), 1);

    // The action's own verdict wins: a permanent error is not retried.
    let runs = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&runs);
    let refuse = action_sync("refuse", move |_: State, _, _| {
        counted.fetch_add(1, Ordering::SeqCst);
        Err::<State, _>(ActionError::permanent(std::io::Error::other("bad text")))
    });
    let mut app = ApplicationBuilder::new()
        .with_actions([refuse])
        .with_entrypoint("refuse")
        .with_default_retry(quick(5))
        .build()
        .await
        .unwrap();
    let err = app.step(Inputs::new()).await.unwrap_err();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(err.verdict(), Some(false));
    assert!(burr_core::error::report(&err).contains("bad text"));
}

#[tokio::test]
async fn backoff_waits_between_attempts() {
    let seen = Arc::default();
    let mut app = ApplicationBuilder::new()
        .with_actions([flaky(2, Arc::clone(&seen))])
        .with_entrypoint("flaky")
        .with_retry(
            "flaky",
            RetryPolicy::new(3)
                .backoff(Duration::from_millis(40), 2.0, Duration::from_secs(1))
                .jitter(0.0),
        )
        .build()
        .await
        .unwrap();
    let started = Instant::now();
    app.step(Inputs::new()).await.unwrap();
    // 40 ms before the second attempt, 80 ms before the third.
    assert!(
        started.elapsed() >= Duration::from_millis(120),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn bad_settings_are_builder_errors_naming_the_action() {
    let seen: Arc<Mutex<Vec<(u32, String)>>> = Arc::default();
    let build = |builder: ApplicationBuilder| {
        let seen = Arc::clone(&seen);
        async move {
            builder
                .with_actions([flaky(0, seen)])
                .with_entrypoint("flaky")
                .build()
                .await
                .unwrap_err()
        }
    };
    let err = build(ApplicationBuilder::new().with_retry("flakey", quick(2))).await;
    assert!(
        matches!(
            &err,
            Error::Builder(BuilderError::UnknownAction { setting: "with_retry", action, did_you_mean: Some(near) })
                if action == "flakey" && near == "flaky"
        ),
        "{err}"
    );
    let err = build(ApplicationBuilder::new().with_retry("flaky", RetryPolicy::new(0))).await;
    assert_eq!(
        err.to_string(),
        "invalid application builder settings: the retry policy of action `flaky`: max_attempts must be at least 1"
    );
    let err = build(ApplicationBuilder::new().with_timeout("flaky", Duration::ZERO)).await;
    assert!(
        matches!(err, Error::Builder(BuilderError::ZeroTimeout { .. })),
        "{err}"
    );
}

/// On tokio's paused clock, which moves only when every task waits, and then straight to
/// the next timer: the deadline is checked exactly, and no scheduling delay counts.
#[tokio::test(start_paused = true)]
async fn a_timeout_drops_the_run_at_its_deadline() {
    let limit = Duration::from_millis(1000);
    // An async action: its future is dropped at the deadline.
    let sleepy = action_fn("sleepy", |s: State, _, _| async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        s
    });
    let mut app = ApplicationBuilder::new()
        .with_actions([sleepy])
        .with_entrypoint("sleepy")
        .with_timeout("sleepy", limit)
        .build()
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let err = app.step(Inputs::new()).await.unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(err, Error::StepTimeout { after_ms: 1000, .. }),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::Timeout);
    // The timer's resolution is a millisecond.
    assert!(
        took >= limit && took <= limit + Duration::from_millis(1),
        "took {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_signals_a_blocking_action() {
    // A blocking action sees the flag, says so, and stops (or gives up after 30 s).
    let (saw, mut heard) = tokio::sync::mpsc::unbounded_channel::<()>();
    let spin = action_sync("spin", move |s: State, _, ctx: &ApplicationContext| {
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until {
            if ctx.is_cancelled() {
                saw.send(()).expect("the test listens");
                return Err(ActionError::msg("stopped"));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(s)
    })
    .blocking()
    .timeout(Duration::from_millis(50));
    let mut app = ApplicationBuilder::new()
        .with_actions([spin])
        .with_entrypoint("spin")
        .build()
        .await
        .unwrap();
    let err = app.step(Inputs::new()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    // The blocking thread notices the flag: it says so before its own 30 s are up (then
    // the action, and with it the sender, is dropped).
    drop(app);
    assert_eq!(
        heard.recv().await,
        Some(()),
        "the blocking action stopped early"
    );
}

#[tokio::test]
async fn a_timed_out_attempt_is_retried_by_its_policy() {
    let runs = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&runs);
    let slow_once = action_fn("slow_once", move |s: State, _, _| {
        let first = counted.fetch_add(1, Ordering::SeqCst) == 0;
        async move {
            if first {
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
            s.update("done", true)
        }
    })
    .writes(["done"]);
    let mut app = ApplicationBuilder::new()
        .with_actions([slow_once])
        .with_entrypoint("slow_once")
        .with_timeout("slow_once", Duration::from_millis(50))
        .with_retry("slow_once", quick(2).retry_on([ErrorKind::Timeout]))
        .build()
        .await
        .unwrap();
    let step = app.step(Inputs::new()).await.unwrap().unwrap();
    assert!(step.state.get::<bool>("done").unwrap());
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

/// `embed` fails (in the given form); `report` handles it; `publish` follows success.
async fn with_handler(embed: impl burr_core::actions::Action) -> (Application, RunOptions) {
    let report = action_sync("report", |s: State, _, ctx: &ApplicationContext| {
        let failure = ctx.failure().expect("the handler sees the failure");
        Ok::<_, ActionError>(
            s.update("failed_action", failure.action.clone())
                .update("failed_kind", failure.kind.as_str())
                .update("failed_attempt", failure.attempt)
                .update("message", failure.message()),
        )
    })
    .writes(["failed_action", "failed_kind", "failed_attempt", "message"]);
    let publish = action_sync("publish", |s: State, _, ctx: &ApplicationContext| {
        assert!(ctx.failure().is_none(), "only the handler sees a failure");
        s.update("published", true)
    })
    .writes(["published"]);
    let app = ApplicationBuilder::new()
        .with_actions([report, publish])
        .with_actions([Arc::new(embed) as Arc<dyn burr_core::actions::Action>])
        .with_transitions([
            ("embed", "report", on_error()),
            ("embed", "publish", default()),
        ])
        .with_retry("embed", quick(2))
        .with_entrypoint("embed")
        .build()
        .await
        .unwrap();
    (app, RunOptions::new().halt_after(["report", "publish"]))
}

#[tokio::test]
async fn error_transitions_route_sync_async_and_streaming_failures_to_the_handler() {
    let sync = action_sync("embed", |s: State, _, _| {
        let _ = s.update("vectors", 1);
        Err::<State, _>(ActionError::msg("tokenizer rejected the text"))
    })
    .writes(["vectors"]);
    let asynchronous = action_fn("embed", |_: State, _, _| async {
        Err::<State, _>(ActionError::msg("tokenizer rejected the text"))
    })
    .writes(["vectors"]);
    struct Streaming(burr_core::actions::Declaration);
    #[burr_core::actions::async_trait]
    impl burr_core::actions::Action for Streaming {
        fn declaration(&self) -> &burr_core::actions::Declaration {
            &self.0
        }
        fn stream_run(
            &self,
            _: State,
            _: Inputs,
            _: ApplicationContext,
        ) -> futures::stream::BoxStream<
            'static,
            Result<burr_core::actions::ActionResult, ActionError>,
        > {
            Box::pin(futures::stream::iter([
                Ok(inputs! {"partial": 1}),
                Err(ActionError::msg("tokenizer rejected the text")),
            ]))
        }
    }
    let streaming = Streaming(
        burr_core::actions::Declaration::new("embed")
            .writes(["vectors"])
            .streaming(),
    );
    let mut apps = vec![
        with_handler(sync).await,
        with_handler(asynchronous).await,
        with_handler(streaming).await,
    ];
    for (app, options) in &mut apps {
        let outcome = app.run(options.clone()).await.unwrap();
        assert_eq!(outcome.action.as_deref(), Some("report"));
        let state = &outcome.state;
        assert!(
            !state.contains("vectors"),
            "the failed step's writes are not applied"
        );
        assert_eq!(state.get::<String>("failed_action").unwrap(), "embed");
        assert_eq!(state.get::<String>("failed_kind").unwrap(), "action");
        assert_eq!(
            state.get::<u32>("failed_attempt").unwrap(),
            2,
            "after its retries"
        );
        assert!(state
            .get::<String>("message")
            .unwrap()
            .contains("tokenizer rejected the text"));
        assert_eq!(app.prior_action(), Some("report"));
    }
}

#[tokio::test]
async fn a_kind_specific_error_transition_takes_only_that_kind() {
    let build = |fails: bool| async move {
        let embed = action_fn("embed", move |s: State, _, _| async move {
            if fails {
                return Err(ActionError::msg("broken"));
            }
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(s)
        });
        let slow = action_sync("on_timeout", |s: State, _, _| s);
        ApplicationBuilder::new()
            .with_actions([embed, slow])
            .with_transitions([("embed", "on_timeout", on_error_kind(ErrorKind::Timeout))])
            .with_timeout("embed", Duration::from_millis(30))
            .with_entrypoint("embed")
            .build()
            .await
            .unwrap()
    };
    let mut timing_out = build(false).await;
    let outcome = timing_out.run(RunOptions::new()).await.unwrap();
    assert_eq!(outcome.action.as_deref(), Some("on_timeout"));
    let mut failing = build(true).await;
    let err = failing.run(RunOptions::new()).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Action,
        "no transition for this kind: the run fails"
    );
}

#[tokio::test]
async fn without_an_error_transition_the_application_fails_as_before() {
    let seen = Arc::default();
    let mut app = ApplicationBuilder::new()
        .with_actions([flaky(1, Arc::clone(&seen))])
        .with_entrypoint("flaky")
        .build()
        .await
        .unwrap();
    app.run(RunOptions::new()).await.unwrap_err();
    // The next call retries it (Burr's behaviour), and it succeeds.
    app.run(RunOptions::new()).await.unwrap();
    assert_eq!(seen.lock().unwrap().len(), 2);
}

/// The number of times each child ran its work, by task index.
type Runs = Arc<Mutex<HashMap<usize, usize>>>;

/// A map over `n` children; child `i` sleeps `slow_ms` when `i` is in `slow`, and counts
/// its runs.
fn fan_out(n: usize, slow: &'static [usize], slow_ms: u64, runs: Runs) -> MapAction {
    let work = action_fn("work", move |s: State, _, ctx: ApplicationContext| {
        let runs = Arc::clone(&runs);
        async move {
            let i: usize = s.get("i")?;
            if slow.contains(&i) {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(slow_ms)) => {}
                    () = ctx.cancelled() => return Err(ActionError::msg("cancelled")),
                }
            }
            *runs.lock().unwrap().entry(i).or_default() += 1;
            Ok::<_, ActionError>(s.update("out", i))
        }
    })
    .reads(["i"])
    .writes(["out"]);
    MapAction::states(
        "fan",
        SubGraph::action(work),
        move |_: &State, _: &Inputs| Ok((0..n).map(|i| State::new().update("i", i)).collect()),
    )
    .reduce(|s, children| Ok(s.update("outs", children.len())))
    .writes(["outs"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_during_a_fan_out_keeps_finished_children_and_an_explicit_resume_runs_the_rest() {
    const SLOW: &[usize] = &[5, 6, 7];
    let store = Arc::new(InMemoryPersister::new());
    let runs: Runs = Arc::default();
    let build = |runs: Runs, resume: bool| {
        let store = store.clone();
        async move {
            ApplicationBuilder::new()
                .with_actions([fan_out(10, SLOW, 60_000, runs)])
                // Room for every child at once: the slow ones must not hold back the rest.
                .with_executor(Executor::new(16))
                .with_entrypoint("fan")
                .with_app_id("meeting")
                .with_state_persister(store.clone())
                .initialize_from(store)
                .resume_cancelled(resume)
                .build()
                .await
        }
    };
    let mut app = build(Arc::clone(&runs), false).await.unwrap();
    let cancel = app.cancel_handle();
    let watcher = {
        let runs = Arc::clone(&runs);
        tokio::spawn(async move {
            // Cancel once every fast child is done (the slow ones are still sleeping).
            while runs.lock().unwrap().len() < 7 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            cancel.cancel();
        })
    };
    let err = app.step(Inputs::new()).await.unwrap_err();
    watcher.await.unwrap();
    assert!(matches!(err, Error::Cancelled { .. }), "{err}");
    drop(app);
    let status_of = |i: usize| {
        let store = store.clone();
        async move {
            let id = burr_core::parallel::child_app_id("meeting", 0, &i.to_string());
            let rows = store.list_checkpoints(None, &id).await.unwrap();
            rows.last().map(|r| r.status)
        }
    };
    for i in 0..10 {
        let expected = if SLOW.contains(&i) {
            StepStatus::Cancelled
        } else {
            StepStatus::Completed
        };
        assert_eq!(status_of(i).await, Some(expected), "child {i}");
    }
    let parent = store.list_checkpoints(None, "meeting").await.unwrap();
    assert_eq!(parent.last().map(|r| r.status), Some(StepStatus::Cancelled));

    // Building it again without saying so refuses; with resume_cancelled the rest run.
    let err = build(Arc::clone(&runs), false).await.unwrap_err();
    assert!(matches!(err, Error::AppCancelled { .. }), "{err}");
    let resumed: Runs = Arc::default();
    let mut app = ApplicationBuilder::new()
        .with_actions([fan_out(10, &[], 0, Arc::clone(&resumed))])
        .with_entrypoint("fan")
        .with_app_id("meeting")
        .with_state_persister(store.clone())
        .initialize_from(store.clone())
        .resume_cancelled(true)
        .build()
        .await
        .unwrap();
    let step = app.step(Inputs::new()).await.unwrap().unwrap();
    assert_eq!(step.state.get::<usize>("outs").unwrap(), 10);
    let mut rerun: Vec<usize> = resumed.lock().unwrap().keys().copied().collect();
    rerun.sort_unstable();
    assert_eq!(rerun, SLOW, "only the unfinished children ran again");
    assert_eq!(step.result["loaded"], 7);
    assert_eq!(step.result["ran"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_children_with_five_percent_failures_all_finish_with_retries() {
    // Seeded: each (child, attempt) fails with probability 5%, the same every run.
    let effects: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let attempts = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&attempts);
    let recorded = Arc::clone(&effects);
    let unreliable = action_sync(
        "unreliable",
        move |s: State, _, ctx: &ApplicationContext| {
            counted.fetch_add(1, Ordering::SeqCst);
            let i: u64 = s.get("i")?;
            let roll = (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(ctx.attempt()))
                .wrapping_mul(0xBF58_476D_1CE4_E5B9)
                % 100;
            if roll < 5 {
                return Err(ActionError::msg(format!(
                    "child {i} failed on attempt {}",
                    ctx.attempt()
                )));
            }
            // The side effect, keyed as an external service would deduplicate it.
            *recorded
                .lock()
                .unwrap()
                .entry(ctx.idempotency_key())
                .or_default() += 1;
            Ok(s.update("ok", true))
        },
    )
    .reads(["i"])
    .writes(["ok"]);
    let map = MapAction::states(
        "fan",
        SubGraph::action(unreliable),
        |_: &State, _: &Inputs| Ok((0..1000u64).map(|i| State::new().update("i", i)).collect()),
    )
    .child_retry(quick(6))
    .reduce(|s, children| {
        let ok = children
            .iter()
            .filter(|c| c.get::<bool>("ok").unwrap_or(false))
            .count();
        Ok(s.update("ok", ok))
    })
    .writes(["ok"]);
    let store = Arc::new(InMemoryPersister::new());
    let mut app = ApplicationBuilder::new()
        .with_actions([map])
        .with_entrypoint("fan")
        .with_app_id("fan-1000")
        .with_state_persister(store.clone())
        .build()
        .await
        .unwrap();
    let step = app.step(Inputs::new()).await.unwrap().unwrap();
    assert_eq!(step.state.get::<usize>("ok").unwrap(), 1000);
    let effects = effects.lock().unwrap();
    assert_eq!(effects.len(), 1000, "every child's effect happened");
    assert!(effects.values().all(|&n| n == 1), "and exactly once");
    let extra = attempts.load(Ordering::SeqCst) - 1000;
    assert!(
        (20..=100).contains(&extra),
        "about 5% extra attempts, got {extra}"
    );
}

#[tokio::test]
async fn each_attempt_loads_with_the_state_it_left() {
    use burr_core::persistence::{load_attempt, SqlitePersister};
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = Arc::new(SqlitePersister::open(dir.path().join("attempts.db")).expect("opens"));
    let start = action_sync("start", |s: State, _, _| s.update("n", 1)).writes(["n"]);
    let runs = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&runs);
    let add = action_sync("add", move |s: State, _, _| {
        if counted.fetch_add(1, Ordering::SeqCst) < 2 {
            return Err(ActionError::msg("not yet"));
        }
        Ok(s.increment("n", 10)?)
    })
    .reads(["n"])
    .writes(["n"]);
    let mut app = ApplicationBuilder::new()
        .with_actions([start, add])
        .with_transitions([("start", "add")])
        .with_entrypoint("start")
        .with_app_id("attempts")
        .with_retry("add", quick(3))
        .with_state_persister(store.clone())
        .build()
        .await
        .unwrap();
    app.run(RunOptions::new().halt_after(["add"]))
        .await
        .unwrap();

    let n_after = |loaded: Option<burr_core::persistence::LoadedCheckpoint>| {
        let loaded = loaded.expect("stored");
        (
            loaded.attempt,
            loaded.status,
            loaded.state.get::<i64>("n").unwrap(),
        )
    };
    for (attempt, status, n) in [
        (1, StepStatus::Failed, 1),
        (2, StepStatus::Failed, 1),
        (3, StepStatus::Completed, 11),
    ] {
        let loaded = load_attempt(&*store, None, "attempts", 1, attempt)
            .await
            .unwrap();
        assert_eq!(n_after(loaded), (attempt, status, n));
    }
    assert_eq!(
        load_attempt(&*store, None, "attempts", 1, 4).await.unwrap(),
        None
    );
}
