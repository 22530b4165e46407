//! Running a scenario: builds it through burr-rs's public API, makes its calls, and
//! writes one record per call in the shape of `golden.json` (SCENARIOS.md §6–§8).
//!
//! The interpreter only translates: the framework filters reads, checks writes, validates
//! inputs, chooses transitions and numbers steps.

use std::sync::{Arc, Mutex};

use burr_core::actions::Action;
use burr_core::graph::TransitionSpec;
use burr_core::hooks::{LifecycleHook, StepEnd};
use burr_core::persistence::Persister;
use burr_core::{Application, ApplicationBuilder, Inputs, RunOptions, State};
use serde_json::{json, Map, Value};

use crate::action::ScenarioAction;
use crate::corpus::Scenario;
use crate::store::Store;
use crate::{condition, kinds, ops};

/// The records of a scenario, in the shape of its `golden.json` entry.
pub async fn run(scenario: &Scenario) -> Result<Value, String> {
    if scenario.is_state_scenario() {
        run_state_scenario(scenario)
    } else {
        AppRunner::new(scenario)?.run().await
    }
}

/// The state without internal (`__`) keys.
fn public(state: &State) -> Value {
    Value::Object(
        state
            .iter()
            .filter(|(k, _)| !k.starts_with("__"))
            .map(|(k, v)| (k.to_owned(), v.clone()))
            .collect(),
    )
}

/// The single `{"name": argument}` entry of a call.
fn call_parts(call: &Value) -> Result<(&str, &Value), String> {
    match call.as_object() {
        Some(map) if map.len() == 1 => {
            let (name, arg) = map.iter().next().expect("one entry");
            Ok((name.as_str(), arg))
        }
        _ => Err(format!(
            "a call must be an object with exactly one key, got {call}"
        )),
    }
}

// ---------------------------------------------------------------------------------------
// State scenarios (§7.4)

fn run_state_scenario(scenario: &Scenario) -> Result<Value, String> {
    let mut current = State::from_map(scenario.state.clone());
    let mut records = Vec::new();
    for call in &scenario.calls {
        let (name, arg) = call_parts(call)?;
        if name != "state_ops" {
            return Err(format!(
                "a state scenario only makes `state_ops` calls, got `{name}`"
            ));
        }
        let ops: Vec<ops::StateOp> = arg
            .as_array()
            .ok_or_else(|| format!("`state_ops` takes a list of ops, got {arg}"))?
            .iter()
            .map(|op| ops::parse_state_op(op, false))
            .collect::<Result<_, _>>()?;
        let mut copy = current.clone();
        let mut gets = Vec::new();
        let mut failure = None;
        for (applied, op) in ops.iter().enumerate() {
            match ops::apply(&copy, op, &mut gets) {
                Ok(next) => copy = next,
                Err(error) => {
                    failure = Some((applied, error));
                    break;
                }
            }
        }
        let mut record = Map::new();
        record.insert("call".into(), json!("state_ops"));
        match failure {
            None => current = copy,
            Some((applied, error)) => {
                record.insert(
                    "error".into(),
                    kinds::record(kinds::state_kind(&error), &error),
                );
                record.insert("ops_applied".into(), json!(applied));
            }
        }
        record.insert("state".into(), public(&current));
        record.insert("gets".into(), Value::Array(gets));
        records.push(Value::Object(record));
    }
    Ok(json!({ "calls": records }))
}

// ---------------------------------------------------------------------------------------
// Application scenarios

/// The trace hook (§8.2): one entry per executed action, from `post_run_step`.
#[derive(Default)]
struct Trace(Mutex<Vec<Value>>);

impl Trace {
    fn take(&self) -> Vec<Value> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl LifecycleHook for Trace {
    fn post_run_step(&self, event: &StepEnd<'_>) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(json!({
                "action": event.action,
                "sequence_id": event.sequence_id,
                "status": event.status.as_str(),
            }));
    }
}

struct AppRunner<'a> {
    scenario: &'a Scenario,
    /// The actions, in their `with_actions` groups. Shared by every build, so the
    /// `fail_first_n` counters survive rebuilds.
    groups: Vec<Vec<Arc<ScenarioAction>>>,
    transitions: Vec<TransitionSpec>,
    trace: Arc<Trace>,
    store: Option<Store>,
    /// The current application and the persister it was built with.
    app: Option<(Application, Option<Arc<dyn Persister>>)>,
}

impl<'a> AppRunner<'a> {
    fn new(scenario: &'a Scenario) -> Result<Self, String> {
        let groups = match scenario.actions.as_ref().expect("application scenario") {
            Value::Object(_) => vec![scenario.actions.as_ref().expect("checked")],
            Value::Array(groups) => groups.iter().collect(),
            other => {
                return Err(format!(
                    "`actions` must be an object or a list, got {other}"
                ))
            }
        };
        let groups = groups
            .into_iter()
            .map(|group| {
                group
                    .as_object()
                    .ok_or_else(|| format!("an action group must be an object, got {group}"))?
                    .iter()
                    .map(|(name, spec)| ScenarioAction::parse(name, spec))
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let transitions = scenario
            .transitions
            .iter()
            .map(condition::transition)
            .collect::<Result<_, _>>()?;
        let store = scenario
            .persistence
            .as_ref()
            .map(|p| Store::new(p.backend))
            .transpose()?;
        Ok(AppRunner {
            scenario,
            groups,
            transitions,
            trace: Arc::new(Trace::default()),
            store,
            app: None,
        })
    }

    /// A builder with the scenario's actions (group by group), transitions and trace hook.
    fn builder(&self) -> ApplicationBuilder {
        let mut builder = ApplicationBuilder::new();
        for group in &self.groups {
            builder = builder.with_actions(group.iter().map(|a| Arc::clone(a) as Arc<dyn Action>));
        }
        builder
            .with_transitions(self.transitions.clone())
            .with_hook(Arc::clone(&self.trace) as Arc<dyn LifecycleHook>)
    }

    async fn open_store(&self) -> Result<Arc<dyn Persister>, String> {
        self.store
            .as_ref()
            .ok_or("the scenario has no `persistence` section, so it has no persister")?
            .open()
            .await
    }

    async fn run(mut self) -> Result<Value, String> {
        let build = self.build().await?;
        let mut calls = Vec::new();
        if self.app.is_some() {
            for call in &self.scenario.calls {
                calls.push(self.call(call).await?);
            }
        }
        Ok(json!({"build": build, "calls": calls}))
    }

    /// The initial build (§6.1).
    async fn build(&mut self) -> Result<Value, String> {
        let scenario = self.scenario;
        let ids = &scenario.identifiers;
        let app_id = ids.app_id.clone().unwrap_or_else(|| scenario.name.clone());
        let mut builder = self.builder().with_app_id(app_id);
        if let Some(partition_key) = &ids.partition_key {
            builder = builder.with_partition_key(partition_key);
        }
        if let Some(sequence_id) = ids.sequence_id {
            builder = builder.with_sequence_id(sequence_id);
        }
        let state = State::from_map(scenario.state.clone());
        let mut persister = None;
        let initialize = scenario
            .persistence
            .as_ref()
            .and_then(|p| p.initialize_from.as_ref());
        if scenario.persistence.is_some() {
            let saver = self.open_store().await?;
            builder = builder.with_state_persister(Arc::clone(&saver));
            persister = Some(saver);
        }
        builder = match (initialize, &persister) {
            (Some(init), Some(loader)) => {
                let entrypoint = scenario.entrypoint.clone().unwrap_or_default();
                let mut builder = builder
                    .with_state(state)
                    .with_entrypoint(entrypoint)
                    .initialize_from(Arc::clone(loader))
                    .resume_at_next_action(init.resume_at_next_action.unwrap_or(true));
                if let Some(fork) = &init.fork_from_app_id {
                    builder = builder.fork_from_app_id(fork.clone());
                    if let Some(partition_key) = &init.fork_from_partition_key {
                        builder = builder.fork_from_partition_key(partition_key);
                    }
                    if let Some(sequence_id) = init.fork_from_sequence_id {
                        builder = builder.fork_from_sequence_id(sequence_id);
                    }
                }
                if let Some(values) = &init.override_state_values {
                    builder = builder.override_state_values(State::from_map(values.clone()));
                }
                builder
            }
            _ => {
                let builder = builder.with_state(state);
                match &scenario.entrypoint {
                    Some(entrypoint) => builder.with_entrypoint(entrypoint.clone()),
                    None => builder,
                }
            }
        };
        let built = builder.build().await;
        self.trace.take();
        match built {
            Ok(mut app) => {
                let record = app_record(&mut app);
                self.app = Some((app, persister));
                Ok(record)
            }
            Err(error) => Ok(json!({ "error": kinds::error_record(&error) })),
        }
    }

    async fn call(&mut self, call: &Value) -> Result<Value, String> {
        let (name, arg) = call_parts(call)?;
        let arg = arg
            .as_object()
            .ok_or_else(|| format!("`{name}` takes an object, got {arg}"))?;
        match name {
            "step" => self.step(arg).await,
            "run" => self.run_call(arg).await,
            "rebuild" => self.rebuild(arg).await,
            "persisted_rows" => self.persisted_rows(arg).await,
            other => Err(format!("unknown call `{other}` in an application scenario")),
        }
    }

    fn app(&mut self) -> &mut Application {
        &mut self
            .app
            .as_mut()
            .expect("calls run only after a successful build")
            .0
    }

    async fn step(&mut self, arg: &Map<String, Value>) -> Result<Value, String> {
        only_fields("step", arg, &["inputs"])?;
        let inputs = inputs(arg)?;
        self.trace.take();
        let outcome = self.app().step(inputs).await;
        let mut record = Map::new();
        record.insert("call".into(), json!("step"));
        match outcome {
            Ok(Some(step)) => {
                record.insert("action".into(), json!(step.action));
                record.insert("result".into(), Value::Object(step.result));
            }
            Ok(None) => {
                record.insert("action".into(), Value::Null);
                record.insert("result".into(), Value::Null);
            }
            Err(error) => {
                record.insert("error".into(), kinds::error_record(&error));
            }
        }
        record.insert("executed".into(), Value::Array(self.trace.take()));
        snapshot(self.app(), &mut record);
        Ok(Value::Object(record))
    }

    async fn run_call(&mut self, arg: &Map<String, Value>) -> Result<Value, String> {
        only_fields("run", arg, &["halt_before", "halt_after", "inputs"])?;
        let halt_before = names(arg, "halt_before")?;
        let halt_after = names(arg, "halt_after")?;
        let inputs = inputs(arg)?;
        let before: Vec<&str> = halt_before.iter().map(String::as_str).collect();
        let after: Vec<&str> = halt_after.iter().map(String::as_str).collect();
        self.trace.take();
        let outcome = self
            .app()
            .run(
                RunOptions::new()
                    .halt_before(before)
                    .halt_after(after)
                    .inputs(inputs),
            )
            .await;
        let mut record = Map::new();
        record.insert("call".into(), json!("run"));
        match outcome {
            Ok(outcome) => {
                record.insert("action".into(), json!(outcome.action));
                record.insert("result".into(), json!(outcome.result));
            }
            Err(error) => {
                record.insert("error".into(), kinds::error_record(&error));
            }
        }
        record.insert("executed".into(), Value::Array(self.trace.take()));
        snapshot(self.app(), &mut record);
        Ok(Value::Object(record))
    }

    /// A new application loaded from the persister (§7.3).
    async fn rebuild(&mut self, arg: &Map<String, Value>) -> Result<Value, String> {
        only_fields(
            "rebuild",
            arg,
            &[
                "app_id",
                "partition_key",
                "sequence_id",
                "resume_at_next_action",
                "default_state",
                "default_entrypoint",
                "fork_from_app_id",
                "fork_from_partition_key",
                "fork_from_sequence_id",
                "override_state_values",
            ],
        )?;
        let scenario = self.scenario;
        let current = self.app();
        let app_id = match arg.get("app_id") {
            None => current.app_id().to_owned(),
            Some(v) => string(v, "rebuild.app_id")?,
        };
        let partition_key = match arg.get("partition_key") {
            None => current.partition_key().map(str::to_owned),
            Some(Value::Null) => None,
            Some(v) => Some(string(v, "rebuild.partition_key")?),
        };
        let default_state = match arg.get("default_state") {
            None => scenario.state.clone(),
            Some(Value::Object(map)) => map.clone(),
            Some(other) => {
                return Err(format!(
                    "`rebuild.default_state` must be an object, got {other}"
                ))
            }
        };
        let default_entrypoint = match arg.get("default_entrypoint") {
            None => scenario.entrypoint.clone().unwrap_or_default(),
            Some(v) => string(v, "rebuild.default_entrypoint")?,
        };
        let resume = match arg.get("resume_at_next_action") {
            None => true,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(format!(
                    "`rebuild.resume_at_next_action` must be a bool, got {other}"
                ))
            }
        };

        let persister = self.open_store().await?;
        let mut builder = self.builder().with_app_id(app_id);
        if let Some(partition_key) = &partition_key {
            builder = builder.with_partition_key(partition_key);
        }
        builder = builder
            .with_state_persister(Arc::clone(&persister))
            .with_state(State::from_map(default_state))
            .with_entrypoint(default_entrypoint)
            .initialize_from(Arc::clone(&persister))
            .resume_at_next_action(resume);
        if let Some(sequence_id) = arg.get("sequence_id") {
            builder = builder.with_sequence_id(integer(sequence_id, "rebuild.sequence_id")?);
        }
        if let Some(fork) = arg.get("fork_from_app_id") {
            builder = builder.fork_from_app_id(string(fork, "rebuild.fork_from_app_id")?);
            let fork_pk = match arg.get("fork_from_partition_key") {
                None | Some(Value::Null) => None,
                Some(v) => Some(string(v, "rebuild.fork_from_partition_key")?),
            };
            if let Some(partition_key) = fork_pk {
                builder = builder.fork_from_partition_key(partition_key);
            }
            if let Some(sequence_id) = arg.get("fork_from_sequence_id") {
                builder = builder
                    .fork_from_sequence_id(integer(sequence_id, "rebuild.fork_from_sequence_id")?);
            }
        }
        if let Some(values) = arg.get("override_state_values") {
            let values = values.as_object().ok_or_else(|| {
                format!("`rebuild.override_state_values` must be an object, got {values}")
            })?;
            builder = builder.override_state_values(State::from_map(values.clone()));
        }

        // burr-rs lets one runner at a time hold an app id (a lease taken by `build`). The
        // rebuild stands for another runner taking over, so the current application hands
        // its lease over first, through the public `release_lease`. If the rebuild fails,
        // the current application stays current and usable (a later checkpoint takes the
        // lease again if it is free).
        self.app().release_lease();
        let built = builder.build().await;
        self.trace.take();
        match built {
            Ok(mut app) => {
                let mut record = app_record(&mut app);
                record["call"] = json!("rebuild");
                self.app = Some((app, Some(persister)));
                Ok(record)
            }
            Err(error) => {
                let mut record = Map::new();
                record.insert("call".into(), json!("rebuild"));
                record.insert("error".into(), kinds::error_record(&error));
                snapshot(self.app(), &mut record);
                Ok(Value::Object(record))
            }
        }
    }

    /// The stored rows of an application, ordered by sequence id then save order (§8.4).
    async fn persisted_rows(&mut self, arg: &Map<String, Value>) -> Result<Value, String> {
        only_fields("persisted_rows", arg, &["app_id", "partition_key"])?;
        let (app, persister) = self.app.as_ref().expect("built");
        let persister = persister
            .clone()
            .ok_or("`persisted_rows` in a scenario without persistence")?;
        let app_id = match arg.get("app_id") {
            None => app.app_id().to_owned(),
            Some(v) => string(v, "persisted_rows.app_id")?,
        };
        let partition_key = match arg.get("partition_key") {
            None => app.partition_key().map(str::to_owned),
            Some(Value::Null) => None,
            Some(v) => Some(string(v, "persisted_rows.partition_key")?),
        };
        let pk = partition_key.as_deref();
        let history = persister
            .as_history()
            .ok_or_else(|| "the store cannot list checkpoints".to_owned())?;
        let mut infos = history
            .list_checkpoints(pk, &app_id)
            .await
            .map_err(|e| format!("list_checkpoints({pk:?}, {app_id}) failed: {e}"))?;
        // Stable: rows of one sequence id stay in save order.
        infos.sort_by_key(|info| info.sequence_id);
        let mut rows = Vec::with_capacity(infos.len());
        for info in infos {
            let loaded = persister
                .load(pk, &app_id, Some(info.sequence_id))
                .await
                .map_err(|e| format!("load({pk:?}, {app_id}, {}) failed: {e}", info.sequence_id))?
                .ok_or_else(|| {
                    format!(
                        "list_checkpoints lists sequence id {} of `{app_id}` but load finds nothing",
                        info.sequence_id
                    )
                })?;
            // `load` returns one row per sequence id; the state of an earlier attempt at
            // the same sequence id cannot be read through the Persister API.
            if loaded.attempt != info.attempt || loaded.status != info.status {
                return Err(format!(
                    "the Persister API cannot load the state of attempt {} ({}) at sequence id {} \
                     of `{app_id}`: load returns attempt {} ({})",
                    info.attempt, info.status, info.sequence_id, loaded.attempt, loaded.status
                ));
            }
            rows.push(json!({
                "sequence_id": info.sequence_id,
                "position": info.position,
                "status": info.status.as_str(),
                "state": public(&loaded.state),
                "__SEQUENCE_ID": info.sequence_id,
                "__PRIOR_STEP": info.prior_step,
            }));
        }
        Ok(json!({"call": "persisted_rows", "rows": rows}))
    }
}

/// The snapshot fields (§8.1), taken from the application's public accessors.
fn snapshot(app: &mut Application, record: &mut Map<String, Value>) {
    record.insert("state".into(), public(app.state()));
    record.insert("__SEQUENCE_ID".into(), json!(app.sequence_id()));
    record.insert("__PRIOR_STEP".into(), json!(app.prior_action()));
    record.insert("sequence_id".into(), json!(app.sequence_id()));
    match app.next_action() {
        Ok(next) => {
            record.insert("next_action".into(), json!(next));
        }
        Err(error) => {
            record.insert("next_action".into(), Value::Null);
            record.insert("next_action_error".into(), kinds::error_record(&error));
        }
    }
}

/// A build or rebuild record: the snapshot with the identifiers and parent pointer.
fn app_record(app: &mut Application) -> Value {
    let mut record = Map::new();
    snapshot(app, &mut record);
    record.insert("app_id".into(), json!(app.app_id()));
    record.insert("partition_key".into(), json!(app.partition_key()));
    let parent = app.fork_parent().map(|p| {
        json!({"app_id": p.app_id, "partition_key": p.partition_key, "sequence_id": p.sequence_id})
    });
    record.insert("parent_pointer".into(), json!(parent));
    Value::Object(record)
}

fn only_fields(call: &str, arg: &Map<String, Value>, known: &[&str]) -> Result<(), String> {
    match arg.keys().find(|k| !known.contains(&k.as_str())) {
        Some(unknown) => Err(format!("`{call}` has an unknown field `{unknown}`")),
        None => Ok(()),
    }
}

/// The call's inputs, passed to the framework unchanged.
fn inputs(arg: &Map<String, Value>) -> Result<Inputs, String> {
    match arg.get("inputs") {
        None => Ok(Inputs::new()),
        Some(Value::Object(map)) => Ok(map.clone()),
        Some(other) => Err(format!("`inputs` must be an object, got {other}")),
    }
}

fn names(arg: &Map<String, Value>, field: &str) -> Result<Vec<String>, String> {
    match arg.get(field) {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items.iter().map(|v| string(v, field)).collect(),
        Some(other) => Err(format!("`{field}` must be a list of names, got {other}")),
    }
}

fn string(value: &Value, field: &str) -> Result<String, String> {
    value
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("`{field}` must be a string, got {value}"))
}

fn integer(value: &Value, field: &str) -> Result<u64, String> {
    value
        .as_u64()
        .ok_or_else(|| format!("`{field}` must be a non-negative integer, got {value}"))
}
