//! Kinds of run for the run-queue tests (and the `runs-app` binary they start).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use burr_core::actions::{action_fn, action_sync, RetryPolicy};
use burr_core::parallel::{MapAction, SubGraph};
use burr_core::{
    default, expr, ActionError, ApplicationBuilder, ApplicationContext, Inputs, State,
};
use burr_server::{BoxError, ConcurrencyLimit, Kind, RunInfo};
use serde::{Deserialize, Serialize};

/// The inputs of [`Steps`].
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepsInputs {
    /// How many `work` steps before `done`.
    pub steps: u32,
    /// How long each `work` step sleeps (it wakes early when cancelled).
    #[serde(default)]
    pub sleep_ms: u64,
    /// The `work` step (1-based count) that fails.
    #[serde(default)]
    pub fail_at: Option<u32>,
    /// The `work` step (1-based count) whose code panics.
    #[serde(default)]
    pub panic_at: Option<u32>,
    /// The tenant: at most [`Steps::org_limit`] runs per org run at once.
    #[serde(default)]
    pub org: Option<String>,
}

/// A run of `steps` `work` steps then `done`. Every execution of an action appends
/// `ran <run id> <sequence id> <action> <pid> <run attempt>` to the log file, one write
/// per line, so a killed process never leaves half a line.
#[derive(Clone, Debug, Default)]
pub struct Steps {
    /// Where executions are logged.
    pub log: Option<PathBuf>,
    /// Runs per org at once.
    pub org_limit: u32,
    /// Claims of a run before it is given up (`None`: the default, 5).
    pub max_attempts: Option<u32>,
}

impl Steps {
    fn log(&self, line: String) {
        if let Some(path) = &self.log {
            if let Ok(mut file) = OpenOptions::new().create(true).append(true).open(path) {
                let _ = file.write_all(line.as_bytes());
            }
        }
    }
}

impl Kind for Steps {
    type Inputs = StepsInputs;

    fn name(&self) -> &str {
        "steps"
    }

    fn max_attempts(&self) -> u32 {
        self.max_attempts.unwrap_or(5)
    }

    fn concurrency(&self, inputs: &StepsInputs) -> Option<ConcurrencyLimit> {
        inputs.org.as_ref().map(|org| ConcurrencyLimit {
            key: format!("org:{org}"),
            limit: self.org_limit.max(1),
        })
    }

    fn build(&self, inputs: StepsInputs, run: &RunInfo) -> Result<ApplicationBuilder, BoxError> {
        let me = self.clone();
        let attempt = run.attempt;
        let steps = inputs.steps;
        let work = action_fn("work", move |state: State, _, ctx: ApplicationContext| {
            let me = me.clone();
            let inputs = inputs.clone();
            async move {
                let count: u32 = state.get("count")?;
                me.log(format!(
                    "ran {} {} work {} {attempt}\n",
                    ctx.app_id(),
                    ctx.sequence_id(),
                    std::process::id()
                ));
                if inputs.sleep_ms > 0 {
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(inputs.sleep_ms)) => {}
                        () = ctx.cancelled() => return Err(ActionError::msg("cancelled while working")),
                    }
                }
                if inputs.panic_at == Some(count + 1) {
                    panic!("work {} panics on purpose", count + 1);
                }
                if inputs.fail_at == Some(count + 1) {
                    return Err(ActionError::msg(format!("work {} fails on purpose", count + 1)));
                }
                Ok(state.update("count", count + 1))
            }
        })
        .reads(["count"])
        .writes(["count"]);
        let done = action_sync("done", |state: State, _, _: &ApplicationContext| {
            state.update("finished", true)
        })
        .writes(["finished"]);
        Ok(ApplicationBuilder::new()
            .with_actions([work, done])
            .with_transitions([
                ("work", "done", expr(&format!("count >= {steps}"))),
                ("work", "work", default()),
            ])
            .with_state(State::new().update("count", 0))
            .with_entrypoint("work"))
    }
}

/// The inputs of [`Batch`].
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchInputs {
    /// How many child applications `measure_all` spawns (one per item).
    pub items: u32,
    /// How long each child's step sleeps (it wakes early when cancelled).
    #[serde(default)]
    pub child_ms: u64,
    /// Whether the `fetch` step fails on its first attempt (its retry then succeeds).
    #[serde(default)]
    pub flaky: bool,
}

/// A run with child applications whose progress moves while it runs (what the web UI's
/// tests watch): `prepare` makes `items` items, `fetch` (retried: with `flaky`, its first
/// attempt fails) marks them fetched, `measure_all` runs one child application per item
/// (each sleeps `child_ms`, then writes its item's length), and `summarize` adds the
/// lengths up.
#[derive(Clone, Debug, Default)]
pub struct Batch;

impl Kind for Batch {
    type Inputs = BatchInputs;

    fn name(&self) -> &str {
        "batch"
    }

    fn build(&self, inputs: BatchInputs, _run: &RunInfo) -> Result<ApplicationBuilder, BoxError> {
        let items = inputs.items;
        let prepare = action_sync("prepare", move |state: State, _, _: &ApplicationContext| {
            let items: Vec<String> = (0..items)
                .map(|i| format!("item-{i}-{}", "x".repeat(i as usize % 7)))
                .collect();
            state.update("items", items)
        })
        .writes(["items"]);
        let flaky = inputs.flaky;
        let fetch = action_fn(
            "fetch",
            move |state: State, _, ctx: ApplicationContext| async move {
                if flaky && ctx.attempt() == 1 {
                    return Err(ActionError::transient(ActionError::msg(
                        "the item store timed out (first attempt fails on purpose)",
                    )));
                }
                Ok(state.update("fetched", true))
            },
        )
        .reads(["items"])
        .writes(["fetched"]);
        let child_ms = inputs.child_ms;
        let measure = action_fn("measure", move |state: State, _, ctx: ApplicationContext| async move {
            if child_ms > 0 {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(child_ms)) => {}
                    () = ctx.cancelled() => return Err(ActionError::msg("cancelled while measuring")),
                }
            }
            let text: String = state.get("text")?;
            Ok(state.update("length", text.len()))
        })
        .reads(["text"])
        .writes(["length"]);
        let measure_all = MapAction::keyed_states(
            "measure_all",
            SubGraph::action(measure),
            |state: &State, _: &Inputs| {
                let items: Vec<String> = state.get("items")?;
                Ok::<_, ActionError>(
                    items
                        .into_iter()
                        .enumerate()
                        .map(|(i, item)| (format!("item-{i}"), State::new().update("text", item)))
                        .collect(),
                )
            },
        )
        .reduce(|state: State, children: Vec<State>| {
            let lengths: Vec<i64> = children
                .iter()
                .map(|c| c.get("length"))
                .collect::<Result<_, _>>()?;
            Ok::<_, ActionError>(state.update("lengths", lengths))
        })
        .reads(["items"])
        .writes(["lengths"]);
        let summarize = action_sync("summarize", |state: State, _, _: &ApplicationContext| {
            let lengths: Vec<i64> = state.get("lengths").unwrap_or_default();
            state
                .update("total", lengths.iter().sum::<i64>())
                .update("fetched", false)
        })
        .reads(["lengths"])
        .writes(["total", "fetched"]);
        Ok(ApplicationBuilder::new()
            .with_actions([prepare, fetch])
            .with_actions([measure_all])
            .with_actions([summarize])
            .with_transitions([
                ("prepare", "fetch", default()),
                ("fetch", "measure_all", expr("fetched")),
                ("measure_all", "summarize", default()),
            ])
            .with_retry(
                "fetch",
                RetryPolicy::new(3).backoff(
                    Duration::from_millis(150),
                    2.0,
                    Duration::from_secs(1),
                ),
            )
            .with_entrypoint("prepare"))
    }
}

/// A counter that counts `n` to 10, whose code changes between versions: version 1
/// steps with `count`; version 2 (`renamed`) renamed it to `tally` (for `check`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Counter {
    /// Version 2: `count` renamed to `tally`.
    pub renamed: bool,
}

impl Counter {
    /// The application, of version 1 or (renamed) 2.
    pub fn application(self) -> ApplicationBuilder {
        let name = if self.renamed { "tally" } else { "count" };
        let step = action_sync(name, |s: State, _, _| s.increment("n", 1))
            .reads(["n"])
            .writes(["n"]);
        let done = action_sync("done", |s: State, _, _| {
            Ok::<_, burr_core::state::StateError>(s)
        })
        .reads(["n"]);
        ApplicationBuilder::new()
            .with_actions([step, done])
            .with_transitions([(name, name, expr("n < 10")), (name, "done", default())])
            .with_state(State::new().update("n", 0))
            .with_entrypoint(name)
            .with_version(if self.renamed { "2" } else { "1" })
    }
}

impl Kind for Counter {
    type Inputs = serde_json::Value;

    fn name(&self) -> &str {
        "counter"
    }

    fn build(
        &self,
        _inputs: serde_json::Value,
        _run: &RunInfo,
    ) -> Result<ApplicationBuilder, BoxError> {
        Ok(self.application())
    }
}

/// The inputs of [`Ticket`].
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TicketInputs {
    /// `low` or `high`.
    pub level: String,
}

/// A one-step kind whose inputs parse for any level but are refused unless `low` or
/// `high` ([`Kind::validate`]), and whose `high` runs take priority 100 whatever the
/// submission says ([`Kind::priority`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct Ticket;

impl Kind for Ticket {
    type Inputs = TicketInputs;

    fn name(&self) -> &str {
        "ticket"
    }

    fn validate(&self, inputs: &TicketInputs) -> Result<(), burr_server::InputProblem> {
        match inputs.level.as_str() {
            "low" | "high" => Ok(()),
            other => Err(burr_server::InputProblem {
                field: "level".to_owned(),
                message: format!("`{other}` is neither `low` nor `high`"),
            }),
        }
    }

    fn priority(&self, inputs: &TicketInputs) -> Option<i32> {
        (inputs.level == "high").then_some(100)
    }

    fn build(&self, _inputs: TicketInputs, _run: &RunInfo) -> Result<ApplicationBuilder, BoxError> {
        let handle =
            action_sync("handle", |s: State, _, _| s.update("handled", true)).writes(["handled"]);
        Ok(ApplicationBuilder::new()
            .with_actions([handle])
            .with_transitions(Vec::<(&str, &str)>::new())
            .with_entrypoint("handle"))
    }
}

/// The inputs of [`Fan`].
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FanInputs {
    /// How many child applications `fan_out` runs.
    pub children: u32,
    /// How long each child's step sleeps.
    #[serde(default)]
    pub child_ms: u64,
}

/// A fan-out whose side effects are counted: `prepare` makes the items, `fan_out` runs
/// one child application per item, and `finish` adds up what the children wrote. Each
/// execution of a child's `touch` appends `child <run id> <child app id> <pid> <run
/// attempt>` to the log, and each execution of `finish` appends `finish <run id> <pid>
/// <run attempt>`, one write per line (a killed process never leaves half a line).
#[derive(Clone, Debug, Default)]
pub struct Fan {
    /// Where executions are logged.
    pub log: Option<PathBuf>,
    /// Claims of a run before it is given up (`None`: the default, 5).
    pub max_attempts: Option<u32>,
}

impl Fan {
    fn log(&self, line: String) {
        if let Some(path) = &self.log {
            if let Ok(mut file) = OpenOptions::new().create(true).append(true).open(path) {
                let _ = file.write_all(line.as_bytes());
            }
        }
    }
}

impl Kind for Fan {
    type Inputs = FanInputs;

    fn name(&self) -> &str {
        "fan"
    }

    fn max_attempts(&self) -> u32 {
        self.max_attempts.unwrap_or(5)
    }

    fn build(&self, inputs: FanInputs, run: &RunInfo) -> Result<ApplicationBuilder, BoxError> {
        let (run_id, attempt) = (run.run_id.clone(), run.attempt);
        let children = inputs.children;
        let prepare = action_sync("prepare", move |state: State, _, _: &ApplicationContext| {
            state.update("items", (0..children).collect::<Vec<u32>>())
        })
        .writes(["items"]);
        let (me, id) = (self.clone(), run_id.clone());
        let child_ms = inputs.child_ms;
        let touch = action_fn("touch", move |state: State, _, ctx: ApplicationContext| {
            let (me, id) = (me.clone(), id.clone());
            async move {
                me.log(format!(
                    "child {id} {} {} {attempt}\n",
                    ctx.app_id(),
                    std::process::id()
                ));
                if child_ms > 0 {
                    tokio::time::sleep(Duration::from_millis(child_ms)).await;
                }
                let item: u32 = state.get("item")?;
                Ok::<_, ActionError>(state.update("touched", item + 1))
            }
        })
        .reads(["item"])
        .writes(["touched"]);
        let fan_out = MapAction::keyed_states(
            "fan_out",
            SubGraph::action(touch),
            |state: &State, _: &Inputs| {
                let items: Vec<u32> = state.get("items")?;
                Ok::<_, ActionError>(
                    items
                        .into_iter()
                        .map(|i| (format!("item-{i}"), State::new().update("item", i)))
                        .collect(),
                )
            },
        )
        .reduce(|state: State, children: Vec<State>| {
            let touched: Vec<u32> = children
                .iter()
                .map(|c| c.get("touched"))
                .collect::<Result<_, _>>()?;
            Ok::<_, ActionError>(state.update("touched", touched))
        })
        .reads(["items"])
        .writes(["touched"]);
        let me = self.clone();
        let finish = action_sync("finish", move |state: State, _, _: &ApplicationContext| {
            me.log(format!(
                "finish {run_id} {} {attempt}\n",
                std::process::id()
            ));
            let touched: Vec<u32> = state.get("touched")?;
            Ok::<_, burr_core::state::StateError>(
                state.update("total", touched.iter().sum::<u32>()),
            )
        })
        .reads(["touched"])
        .writes(["total"]);
        Ok(ApplicationBuilder::new()
            .with_actions([prepare])
            .with_actions([fan_out])
            .with_actions([finish])
            .with_transitions([
                ("prepare", "fan_out", default()),
                ("fan_out", "finish", default()),
            ])
            .with_entrypoint("prepare"))
    }
}

/// Three `shout` steps; after each is checkpointed a hook announces `{"count": n}`
/// through the run's [`Announcer`](burr_server::Announcer) (from [`RunInfo`]), and each
/// step records whether the application got a recording announcer as a resource
/// (`recording`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Herald;

/// Announces each completed `shout` step's count.
struct AnnounceCount(burr_server::Announcer);

impl burr_core::hooks::LifecycleHook for AnnounceCount {
    fn post_run_step(&self, event: &burr_core::hooks::StepEnd<'_>) {
        if event.status == burr_core::persistence::StepStatus::Completed && event.action == "shout"
        {
            let count = event.state.get::<u32>("count").unwrap_or_default();
            self.0.announce(
                event.ids.app_id.as_ref(),
                "count",
                serde_json::json!({ "count": count }),
            );
        }
    }
}

impl Kind for Herald {
    type Inputs = serde_json::Value;

    fn name(&self) -> &str {
        "herald"
    }

    fn build(
        &self,
        _inputs: serde_json::Value,
        run: &RunInfo,
    ) -> Result<ApplicationBuilder, BoxError> {
        let shout = action_fn(
            "shout",
            |state: State, _, ctx: ApplicationContext| async move {
                let recording = ctx
                    .resource::<burr_server::Announcer>()
                    .is_ok_and(|a| a.is_recording());
                Ok::<_, ActionError>(state.increment("count", 1)?.update("recording", recording))
            },
        )
        .reads(["count"])
        .writes(["count", "recording"]);
        let done = action_sync("done", |s: State, _, _| {
            Ok::<_, burr_core::state::StateError>(s)
        });
        Ok(ApplicationBuilder::new()
            .with_actions([shout, done])
            .with_transitions([
                ("shout", "shout", expr("count < 3")),
                ("shout", "done", default()),
            ])
            .with_state(State::new().update("count", 0u32))
            .with_entrypoint("shout")
            .with_hook(std::sync::Arc::new(AnnounceCount(run.announcer.clone()))))
    }
}
