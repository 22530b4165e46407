//! Running one action: its inputs, its read view, its writes checked.

use std::borrow::Cow;

use std::sync::Arc;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::actions::{Action, ActionResult, Inputs, UndeclaredRead};
use crate::cache::{Cache, CacheKey, InputHash, InputHasher};
use crate::error::{Error, Result};
use crate::graph::ActionKeys;
use crate::ids::ApplicationContext;
use crate::state::{same_key, State, StateDelta, StateError};

/// The inputs `action` takes out of those given: inputs starting with `__` are refused,
/// undeclared ones dropped, and a missing required one is an error naming it.
/// The inputs given are taken as they are (borrowed) when the action declares each of
/// them (the usual case: none given, or just those it takes).
#[inline]
pub(crate) fn resolve_inputs<'i>(
    action: &dyn Action,
    given: &'i Inputs,
) -> Result<Cow<'i, Inputs>> {
    // None given, none required: nothing to check.
    if given.is_empty() && action.inputs().is_empty() {
        return Ok(Cow::Borrowed(given));
    }
    check_inputs(action, given)
}

/// [`resolve_inputs`] when inputs are given or required.
#[inline(never)]
fn check_inputs<'i>(action: &dyn Action, given: &'i Inputs) -> Result<Cow<'i, Inputs>> {
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
    if given
        .keys()
        .all(|k| required.iter().chain(optional).any(|name| name == k))
    {
        return Ok(Cow::Borrowed(given));
    }
    let mut taken = Inputs::new();
    for name in required.iter().chain(optional) {
        if let Some(value) = given.get(name.as_str()) {
            taken.insert(name.clone(), value.clone());
        }
    }
    Ok(Cow::Owned(taken))
}

/// The keys of `state` the action reads.
pub(crate) fn read_view(keys: &ActionKeys, state: &State) -> State {
    match &*keys.reads {
        [] => State::new(),
        reads => state.subset(reads.iter().map(|k| &**k)),
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

/// What a run of an action gives: its result, the new state and what changed.
pub(crate) type Executed = Result<(ActionResult, State, StateDelta)>;

/// Run `action` on `state` here and now, when it is a single-step action whose code runs
/// inline ([`Action::run_and_update_inline`]), and check its writes. Otherwise `Err`
/// with the action's view of the state, for [`execute`].
///
/// With `delta` false (no persister, no hooks: no one reads it), the delta returned is
/// empty: the writes are checked and applied from the two views directly, to `state`
/// itself (taken: the caller replaces it with the new state it is given back).
pub(crate) fn execute_inline(
    action: &dyn Action,
    keys: &ActionKeys,
    state: &mut State,
    inputs: &Inputs,
    ctx: &ApplicationContext,
    delta: bool,
) -> std::result::Result<Executed, State> {
    let view = read_view(keys, state);
    if action.streaming() || !action.single_step() {
        return Err(view);
    }
    match action.run_and_update_inline(view.clone(), inputs, ctx) {
        Ok(Ok((result, new_view))) if !delta => {
            if let Some(new_state) = checked_without_delta(keys, state, &view, &new_view) {
                return Ok(Ok((result, new_state, StateDelta::default())));
            }
            Ok(single_step_done(
                action,
                state,
                view,
                Ok((result, new_view)),
            ))
        }
        Ok(outcome) => Ok(single_step_done(action, state, view, outcome)),
        Err(_) => Err(view),
    }
}

/// The new state after a single-step action turned `view` (its part of `state`) into
/// `new_view`, when its writes pass [`check_writes`] and none is reserved (`__`): made
/// from `state` itself, which is taken. `None` otherwise, `state` untouched (then the
/// full path says what is wrong, or drops the reserved keys).
fn checked_without_delta(
    keys: &ActionKeys,
    state: &mut State,
    view: &State,
    new_view: &State,
) -> Option<State> {
    let writes = &*keys.writes;
    let mut clean = true;
    new_view.for_each_change(view, |key, set| {
        if key.as_bytes().starts_with(b"__") || set && !writes.iter().any(|w| same_key(w, key)) {
            clean = false;
        }
    });
    if !clean {
        return None;
    }
    // The action read the whole state: its new view is the new state.
    if view.same_as(state) {
        return writes
            .iter()
            .all(|w| new_view.contains(w))
            .then(|| new_view.clone());
    }
    // Each write is in the new state: set by the action, or kept from a state it did not
    // read it from.
    let kept = writes
        .iter()
        .all(|w| new_view.contains(w) || (!view.contains(w) && state.contains(w)));
    kept.then(|| std::mem::take(state).apply_changes_owned(view, new_view))
}

/// A single-step action's outcome on `view` (its part of `state`), its writes checked.
fn single_step_done(
    action: &dyn Action,
    state: &State,
    view: State,
    outcome: std::result::Result<(ActionResult, State), crate::actions::ActionError>,
) -> Executed {
    let (result, new_view) = outcome.map_err(|e| action_failed(action, e))?;
    let delta = new_view.delta_from(&view);
    // The action read the whole state: its new view is the new state.
    let new_state = if view.same_as(state) {
        new_view
    } else {
        state.apply(&delta)
    };
    let (new_state, delta) = check_writes(action, state, new_state, delta)?;
    Ok((result, new_state, delta))
}

/// Run `action` on `state` (`view`: the keys of it the action reads, from
/// [`execute_inline`]) and check its writes: the result, the new state and what changed.
pub(crate) async fn execute(
    action: &dyn Action,
    state: &State,
    view: State,
    inputs: &Inputs,
    ctx: &ApplicationContext,
) -> Executed {
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
        let outcome = action.run_and_update(view.clone(), inputs, ctx).await;
        return single_step_done(action, state, view, outcome);
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
    let reserved = |k: &str| k.as_bytes().starts_with(b"__");
    if delta.updated.iter().any(|(k, _)| reserved(k)) || delta.deleted.iter().any(|k| reserved(k)) {
        delta.updated.retain(|(k, _)| !k.starts_with("__"));
        delta.deleted.retain(|k| !k.starts_with("__"));
        after = before.apply(&delta);
    }
    let writes = action.writes();
    let declared = |k: &str| writes.iter().any(|w| same_key(w, k));
    if !delta.updated.iter().all(|(k, _)| declared(k)) {
        return Err(Error::UndeclaredWrite {
            action: action.name().to_owned(),
            keys: delta
                .updated
                .iter()
                .filter(|(k, _)| !declared(k))
                .map(|(k, _)| k.to_string())
                .collect(),
        });
    }
    // A declared write the step set is there; only the others need a look.
    let set = |w: &str| delta.updated.iter().any(|(k, _)| same_key(k, w));
    if !writes.iter().all(|w| set(w) || after.contains(w)) {
        return Err(Error::MissingWrite {
            action: action.name().to_owned(),
            keys: writes
                .iter()
                .filter(|w| !set(w) && !after.contains(w))
                .cloned()
                .collect(),
        });
    }
    Ok((after, delta))
}

/// What a memoized step stores: its result and the writes it made.
#[derive(Serialize, Deserialize)]
struct Memo {
    result: ActionResult,
    set: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    deleted: Vec<String>,
}

/// The hash of each value a memoized action read, kept with the value (shared with the
/// state, so the same allocation is the same value): a value read again by a later step,
/// unchanged, is not hashed again.
pub(crate) type ValueHashes =
    std::sync::Mutex<std::collections::HashMap<String, (Arc<Value>, InputHash)>>;

/// The cache key of a memoized run of `action`: (its name, its version, the hash of its
/// inputs and of the hashes of the values of the keys it reads, in `view`).
pub(crate) fn memo_key(
    action: &dyn Action,
    view: &State,
    inputs: &Inputs,
    hashes: &ValueHashes,
) -> CacheKey {
    let mut hasher = InputHasher::new();
    let mut names: Vec<&String> = inputs.keys().collect();
    names.sort_unstable();
    hasher.add_str("inputs");
    for name in names {
        hasher.add_str(name);
        hasher.add_json(&inputs[name]);
    }
    let mut reads: Vec<&str> = action.reads().iter().map(String::as_str).collect();
    reads.sort_unstable();
    hasher.add_str("reads");
    for key in reads {
        hasher.add_str(key);
        match view.get_shared(key) {
            Some(value) => {
                let mut known = hashes.lock().unwrap_or_else(|p| p.into_inner());
                let hash = match known.get(key) {
                    Some((seen, hash)) if Arc::ptr_eq(seen, &value) => *hash,
                    _ => {
                        let hash = InputHash::of_json(&value);
                        known.insert(key.to_owned(), (value, hash));
                        hash
                    }
                };
                hasher.add_str("=");
                hasher.add_bytes(hash.as_bytes());
            }
            None => hasher.add_str("-"),
        }
    }
    let version = action.declaration().version.clone().unwrap_or_default();
    CacheKey::new(action.name(), version, hasher.finish())
}

/// [`execute`] through the step cache: the stored outcome of the same run (same action,
/// version, inputs and read values) if there is one, else the run's, stored. Concurrent
/// identical runs run once.
pub(crate) async fn execute_memoized(
    cache: &Cache,
    hashes: &ValueHashes,
    action: &dyn Action,
    state: &State,
    view: State,
    inputs: &Inputs,
    ctx: &ApplicationContext,
) -> Executed {
    let key = memo_key(action, &view, inputs, hashes);
    let memo: Memo = cache
        .get_or_compute_json(&key, || async {
            let (result, _, delta) = execute(action, state, view, inputs, ctx).await?;
            Ok::<_, Error>(Memo {
                result,
                set: delta
                    .updated
                    .iter()
                    .map(|(k, v)| (k.to_string(), Value::clone(v)))
                    .collect(),
                deleted: delta.deleted.iter().map(|k| k.to_string()).collect(),
            })
        })
        .await
        .map_err(|source| Error::StepCache {
            action: action.name().to_owned(),
            source,
        })?;
    let writes = StateDelta {
        updated: memo
            .set
            .into_iter()
            .map(|(k, v)| (Arc::from(k), Arc::new(v)))
            .collect(),
        deleted: memo.deleted.into_iter().map(Arc::from).collect(),
    };
    let new_state = state.apply(&writes);
    let delta = StateDelta::between(state, &new_state);
    Ok((memo.result, new_state, delta))
}
