//! A scenario action: a hand-written two-step [`Action`] whose `run` and `update` evaluate
//! the scenario's ops (SCENARIOS.md §4.1–§4.3).
//!
//! `run` sees only the view the framework hands it and the inputs the framework chose to
//! deliver; `update` applies the queued state ops blindly to the full state it is given.
//! Nothing here checks reads, writes or inputs: that is the framework's job.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use burr_core::{ActionError, ApplicationContext, Inputs, State};

use burr_core::actions::{async_trait, Action, ActionResult, Declaration};
use serde_json::{Map, Value};

use crate::ops::{self, ActionOp, StateOp};

/// The error of the `fail` and `fail_first_n` ops (kind `action_failed`).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ScenarioActionError(pub String);

/// An action built from a scenario's action spec.
pub struct ScenarioAction {
    declaration: Declaration,
    ops: Vec<ActionOp>,
    /// The `fail_first_n` counter (§4.3): it lives in the test process, so it survives
    /// rebuilds, which reuse this same action object.
    attempts: AtomicU64,
    /// The update-phase ops resolved by the last `run`, for the `update` that follows it.
    /// The Action trait passes only the result from `run` to `update`, and the result
    /// must be exactly the scenario's result, so the queue travels beside it. One
    /// application runs a scenario's action at a time, so one slot suffices.
    queued: Mutex<Option<Vec<StateOp>>>,
}

fn names(spec: &Map<String, Value>, field: &str, action: &str) -> Result<Vec<String>, String> {
    match spec.get(field) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("action `{action}`: `{field}` holds a non-string {v}"))
            })
            .collect(),
        Some(other) => Err(format!(
            "action `{action}`: `{field}` must be a list, got {other}"
        )),
    }
}

impl ScenarioAction {
    /// Parse the spec of the action `name`.
    pub fn parse(name: &str, spec: &Value) -> Result<Arc<ScenarioAction>, String> {
        let spec = spec
            .as_object()
            .ok_or_else(|| format!("action `{name}`: the spec must be an object, got {spec}"))?;
        const FIELDS: [&str; 5] = ["reads", "writes", "inputs", "optional_inputs", "op"];
        if let Some(unknown) = spec.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(format!("action `{name}`: unknown field `{unknown}`"));
        }
        Ok(Arc::new(ScenarioAction {
            declaration: Declaration::new(name)
                .reads(names(spec, "reads", name)?)
                .writes(names(spec, "writes", name)?)
                .inputs(names(spec, "inputs", name)?)
                .optional_inputs(names(spec, "optional_inputs", name)?),
            ops: ops::parse_action_ops(spec.get("op"))
                .map_err(|e| format!("action `{name}`: {e}"))?,
            attempts: AtomicU64::new(0),
            queued: Mutex::new(None),
        }))
    }

    fn set_queue(&self, queue: Option<Vec<StateOp>>) {
        *self.queued.lock().unwrap_or_else(|p| p.into_inner()) = queue;
    }
}

#[async_trait]
impl Action for ScenarioAction {
    fn declaration(&self) -> &Declaration {
        &self.declaration
    }

    /// The run phase: build the result, resolve the update-phase ops against `view` and
    /// `inputs` (both exactly as the framework delivered them).
    async fn run(
        &self,
        view: State,
        inputs: &Inputs,
        _ctx: &ApplicationContext,
    ) -> Result<ActionResult, ActionError> {
        self.set_queue(None);
        let mut result = ActionResult::new();
        let mut queue = Vec::new();
        for op in &self.ops {
            match op {
                ActionOp::Noop => {}
                ActionOp::Fail(message) => {
                    return Err(ScenarioActionError(message.clone()).into());
                }
                ActionOp::FailFirstN { n, message } => {
                    let attempt = self.attempts.fetch_add(1, Ordering::SeqCst) + 1;
                    if attempt <= *n {
                        return Err(ScenarioActionError(message.clone()).into());
                    }
                }
                ActionOp::Result(entries) => {
                    result.extend(entries.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
                ActionOp::ResultFromState(pairs) => {
                    for (dst, key) in pairs {
                        // A key outside the view (undeclared or absent) is the State API's
                        // MissingKey error.
                        result.insert(dst.clone(), view.get::<Value>(key)?);
                    }
                }
                ActionOp::ResultFromInput(pairs) => {
                    for (dst, input) in pairs {
                        if let Some(value) = inputs.get(input) {
                            result.insert(dst.clone(), value.clone());
                        }
                    }
                }
                ActionOp::SetFromInput(pairs) => {
                    for (key, input) in pairs {
                        if let Some(value) = inputs.get(input) {
                            let mut set = Map::new();
                            set.insert(key.clone(), value.clone());
                            queue.push(StateOp::Set(set));
                        }
                    }
                }
                ActionOp::SetFromState(pairs) => {
                    for (dst, src) in pairs {
                        let mut set = Map::new();
                        set.insert(dst.clone(), view.get::<Value>(src)?);
                        queue.push(StateOp::Set(set));
                    }
                }
                ActionOp::State(op) => queue.push(op.clone()),
            }
        }
        self.set_queue(Some(queue));
        Ok(result)
    }

    /// The update phase: the queued ops, in order, on the full state.
    fn update(&self, _result: &ActionResult, state: State) -> Result<State, ActionError> {
        let queue = self
            .queued
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or_else(|| {
                ActionError::msg(format!(
                    "interpreter: `update` of `{}` was called without a `run` before it",
                    self.declaration.name
                ))
            })?;
        let mut state = state;
        let mut gets = Vec::new();
        for op in &queue {
            state = ops::apply(&state, op, &mut gets)?;
        }
        Ok(state)
    }
}
