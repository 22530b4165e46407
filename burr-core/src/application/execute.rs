//! Running one action: its inputs, its read view, its writes checked.

use futures::StreamExt;

use crate::actions::{Action, ActionResult, Inputs, UndeclaredRead};
use crate::error::{Error, Result};
use crate::ids::ApplicationContext;
use crate::state::{State, StateDelta, StateError};

/// The inputs `action` takes out of those given: inputs starting with `__` are refused,
/// undeclared ones dropped, and a missing required one is an error naming it.
pub(crate) fn resolve_inputs(action: &dyn Action, given: &Inputs) -> Result<Inputs> {
    if let Some(reserved) = given.keys().find(|k| k.starts_with("__")) {
        return Err(Error::ReservedInput {
            input: reserved.clone(),
        });
    }
    let (required, optional) = (action.inputs(), action.optional_inputs());
    let missing: Vec<String> = required
        .iter()
        .filter(|name| !given.contains_key(name.as_str()))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(Error::MissingInput {
            action: action.name().to_owned(),
            inputs: missing,
        });
    }
    let mut taken = Inputs::new();
    for name in required.iter().chain(optional) {
        if let Some(value) = given.get(name.as_str()) {
            taken.insert(name.clone(), value.clone());
        }
    }
    Ok(taken)
}

/// The keys of `state` the action reads.
pub(crate) fn read_view(action: &dyn Action, state: &State) -> State {
    match action.reads() {
        [] => State::new(),
        reads => state.subset(reads.iter().map(String::as_str)),
    }
}

pub(crate) fn action_failed(action: &dyn Action, error: crate::actions::ActionError) -> Error {
    let source = match error.downcast_ref::<StateError>() {
        Some(StateError::MissingKey { key, .. }) if !action.reads().contains(key) => {
            Box::new(UndeclaredRead {
                key: key.clone(),
                reads: action.reads().to_vec(),
            })
        }
        _ => error.into_inner(),
    };
    Error::Action {
        action: action.name().to_owned(),
        source,
    }
}

/// Run `action` on `state` and check its writes: the result, the new state and what
/// changed.
pub(crate) async fn execute(
    action: &dyn Action,
    state: &State,
    inputs: &Inputs,
    ctx: &ApplicationContext,
) -> Result<(ActionResult, State, StateDelta)> {
    let view = read_view(action, state);
    let failed = |e| action_failed(action, e);
    let (result, new_state, delta) = if action.streaming() {
        let mut stream = action.stream_run(view, inputs.clone(), ctx.clone());
        let mut last = None;
        while let Some(item) = stream.next().await {
            last = Some(item.map_err(failed)?);
        }
        let result = last.unwrap_or_default();
        let new_state = action.update(&result, state.clone()).map_err(failed)?;
        let delta = new_state.delta_from(state);
        (result, new_state, delta)
    } else if action.single_step() {
        let (result, new_view) = action
            .run_and_update(view.clone(), inputs, ctx)
            .await
            .map_err(failed)?;
        let delta = new_view.delta_from(&view);
        (result, state.apply(&delta), delta)
    } else {
        let result = action.run(view, inputs, ctx).await.map_err(failed)?;
        let new_state = action.update(&result, state.clone()).map_err(failed)?;
        let delta = new_state.delta_from(state);
        (result, new_state, delta)
    };
    let (new_state, delta) = check_writes(action, state, new_state, delta)?;
    Ok((result, new_state, delta))
}

/// Apply the write rules to a step's outcome: `__` keys are dropped, an undeclared write
/// or a declared write left unset is an error.
pub(crate) fn check_writes(
    action: &dyn Action,
    before: &State,
    mut after: State,
    mut delta: StateDelta,
) -> Result<(State, StateDelta)> {
    if delta.keys().any(|k| k.starts_with("__")) {
        delta.updated.retain(|(k, _)| !k.starts_with("__"));
        delta.deleted.retain(|k| !k.starts_with("__"));
        after = before.apply(&delta);
    }
    let writes = action.writes();
    let undeclared: Vec<String> = delta
        .updated
        .iter()
        .filter(|(k, _)| !writes.iter().any(|w| **w == **k))
        .map(|(k, _)| k.to_string())
        .collect();
    if !undeclared.is_empty() {
        return Err(Error::UndeclaredWrite {
            action: action.name().to_owned(),
            keys: undeclared,
        });
    }
    let missing: Vec<String> = writes
        .iter()
        .filter(|w| !after.contains(w))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(Error::MissingWrite {
            action: action.name().to_owned(),
            keys: missing,
        });
    }
    Ok((after, delta))
}
