//! The op language (SCENARIOS.md §4.2 and §4.5): parsing, and applying state ops with the
//! public `State` API only. The ops are applied blindly: checking reads, writes and
//! types is the framework's job.

use burr_core::State;

use burr_core::state::{StateError, Wipe};
use serde_json::{Map, Value};

/// A state operation: the update phase of an action, or one op of a `state_ops` call.
#[derive(Clone, Debug)]
pub enum StateOp {
    /// Upsert every key.
    Set(Map<String, Value>),
    /// Append each value as one element.
    Append(Map<String, Value>),
    /// Extend each list.
    Extend(Vec<(String, Vec<Value>)>),
    /// Add each amount.
    Increment(Vec<(String, i64)>),
    /// Delete keys.
    Wipe {
        /// `delete` list.
        delete: Option<Vec<String>>,
        /// `keep` list.
        keep: Option<Vec<String>>,
    },
    /// `{**state, **arg}` (state_ops only).
    Merge(Map<String, Value>),
    /// Keep only these keys (state_ops only).
    Subset {
        /// The keys.
        keys: Vec<String>,
        /// Whether a missing key is ignored (default) or an error.
        ignore_missing: bool,
    },
    /// Push `state[key]`, or the default (state_ops only).
    Get {
        /// The key.
        key: String,
        /// The default (null when omitted).
        default: Value,
    },
    /// Push `state[key]`; a missing key is an error (state_ops only).
    GetItem(String),
}

/// A run-phase op of an action (SCENARIOS.md §4.2).
#[derive(Clone, Debug)]
pub enum ActionOp {
    /// Nothing.
    Noop,
    /// Raise an action error.
    Fail(String),
    /// Raise while this action's attempt counter is at most `n`.
    FailFirstN {
        /// How many evaluations fail.
        n: u64,
        /// The message.
        message: String,
    },
    /// Shallow-merge into the result.
    Result(Map<String, Value>),
    /// `result[dst] = view[key]`.
    ResultFromState(Vec<(String, String)>),
    /// `result[dst] = input`, when received.
    ResultFromInput(Vec<(String, String)>),
    /// Queue `set {key: input}` for every input received.
    SetFromInput(Vec<(String, String)>),
    /// Read `view[src]` now and queue `set {dst: value}`.
    SetFromState(Vec<(String, String)>),
    /// An update-phase op, queued as written.
    State(StateOp),
}

/// Split `{"name": argument}` into its single key and value.
fn single(op: &Value) -> Result<(&str, &Value), String> {
    match op.as_object() {
        Some(map) if map.len() == 1 => {
            let (name, arg) = map.iter().next().expect("one entry");
            Ok((name.as_str(), arg))
        }
        _ => Err(format!(
            "an op must be an object with exactly one key, got {op}"
        )),
    }
}

fn object<'a>(op: &str, arg: &'a Value) -> Result<&'a Map<String, Value>, String> {
    arg.as_object()
        .ok_or_else(|| format!("`{op}` takes an object, got {arg}"))
}

fn string_pairs(op: &str, arg: &Value) -> Result<Vec<(String, String)>, String> {
    object(op, arg)?
        .iter()
        .map(|(k, v)| match v.as_str() {
            Some(s) => Ok((k.clone(), s.to_owned())),
            None => Err(format!("`{op}` maps names to names, got `{k}`: {v}")),
        })
        .collect()
}

fn strings(op: &str, arg: &Value) -> Result<Vec<String>, String> {
    arg.as_array()
        .and_then(|items| {
            items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .ok_or_else(|| format!("`{op}` takes a list of key names, got {arg}"))
}

/// Parse one state op. `in_action` restricts it to the update-phase ops of §4.2.
pub fn parse_state_op(op: &Value, in_action: bool) -> Result<StateOp, String> {
    let (name, arg) = single(op)?;
    let parsed = match name {
        "set" => StateOp::Set(object(name, arg)?.clone()),
        "append" => StateOp::Append(object(name, arg)?.clone()),
        "extend" => StateOp::Extend(
            object(name, arg)?
                .iter()
                .map(|(k, v)| match v {
                    Value::Array(items) => Ok((k.clone(), items.clone())),
                    other => Err(format!("`extend` of `{k}` takes a list, got {other}")),
                })
                .collect::<Result<_, _>>()?,
        ),
        // `State::increment` takes an i64: a non-integer amount cannot be expressed through
        // the public API, so such a scenario is reported as not expressible rather than
        // turned into an error here (which would be the interpreter doing the check).
        "increment" => StateOp::Increment(
            object(name, arg)?
                .iter()
                .map(|(k, v)| match v.as_i64() {
                    Some(n) => Ok((k.clone(), n)),
                    None => Err(format!(
                        "`increment` of `{k}` by {v}: State::increment takes an integer amount, \
                         so this op cannot be expressed through burr-rs's public API"
                    )),
                })
                .collect::<Result<_, _>>()?,
        ),
        "wipe" => {
            let arg = object(name, arg)?;
            if let Some(unknown) = arg.keys().find(|k| *k != "delete" && *k != "keep") {
                return Err(format!(
                    "`wipe` takes `delete` and/or `keep`, got `{unknown}`"
                ));
            }
            StateOp::Wipe {
                delete: arg.get("delete").map(|v| strings("wipe", v)).transpose()?,
                keep: arg.get("keep").map(|v| strings("wipe", v)).transpose()?,
            }
        }
        "merge" if !in_action => StateOp::Merge(object(name, arg)?.clone()),
        "subset" if !in_action => match arg {
            Value::Array(_) => StateOp::Subset {
                keys: strings(name, arg)?,
                ignore_missing: true,
            },
            Value::Object(map) => StateOp::Subset {
                keys: strings(name, map.get("keys").unwrap_or(&Value::Null))?,
                ignore_missing: match map.get("ignore_missing") {
                    None => true,
                    Some(Value::Bool(b)) => *b,
                    Some(other) => {
                        return Err(format!("`subset.ignore_missing` is a bool, got {other}"))
                    }
                },
            },
            other => return Err(format!("`subset` takes a list or an object, got {other}")),
        },
        "get" if !in_action => {
            let arg = object(name, arg)?;
            StateOp::Get {
                key: arg
                    .get("key")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("`get` needs a string `key`, got {op}"))?
                    .to_owned(),
                default: arg.get("default").cloned().unwrap_or(Value::Null),
            }
        }
        "getitem" if !in_action => StateOp::GetItem(
            arg.as_str()
                .ok_or_else(|| format!("`getitem` takes a key name, got {arg}"))?
                .to_owned(),
        ),
        other if in_action => return Err(format!("unknown action op `{other}`")),
        other => return Err(format!("unknown state op `{other}`")),
    };
    Ok(parsed)
}

/// Parse an action's `op` field: one op or a list (default `noop`).
pub fn parse_action_ops(ops: Option<&Value>) -> Result<Vec<ActionOp>, String> {
    let list: Vec<&Value> = match ops {
        None => return Ok(vec![ActionOp::Noop]),
        Some(Value::Array(items)) => items.iter().collect(),
        Some(one) => vec![one],
    };
    list.into_iter().map(parse_action_op).collect()
}

fn parse_action_op(op: &Value) -> Result<ActionOp, String> {
    let (name, arg) = single(op)?;
    Ok(match name {
        "noop" => ActionOp::Noop,
        "fail" => ActionOp::Fail(
            arg.as_str()
                .ok_or_else(|| format!("`fail` takes a message, got {arg}"))?
                .to_owned(),
        ),
        "fail_first_n" => {
            let arg = object(name, arg)?;
            ActionOp::FailFirstN {
                n: arg
                    .get("n")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| format!("`fail_first_n` needs an integer `n`, got {op}"))?,
                message: arg
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("fail_first_n")
                    .to_owned(),
            }
        }
        "result" => ActionOp::Result(object(name, arg)?.clone()),
        "result_from_state" => ActionOp::ResultFromState(string_pairs(name, arg)?),
        "result_from_input" => ActionOp::ResultFromInput(string_pairs(name, arg)?),
        "set_from_input" => ActionOp::SetFromInput(string_pairs(name, arg)?),
        "set_from_state" => ActionOp::SetFromState(string_pairs(name, arg)?),
        _ => ActionOp::State(parse_state_op(op, true)?),
    })
}

/// Apply `op` to `state` with the State API. `gets` receives what `get`/`getitem` read.
/// Every op is atomic: on error, `state` is untouched (it is immutable) and the partial
/// result is dropped.
pub fn apply(state: &State, op: &StateOp, gets: &mut Vec<Value>) -> Result<State, StateError> {
    Ok(match op {
        StateOp::Set(entries) => state.update_many(entries.iter().map(|(k, v)| (k, v.clone()))),
        StateOp::Append(entries) => {
            let mut next = state.clone();
            for (k, v) in entries {
                next = next.append(k, v.clone())?;
            }
            next
        }
        StateOp::Extend(entries) => {
            let mut next = state.clone();
            for (k, items) in entries {
                next = next.extend(k, items.iter().cloned())?;
            }
            next
        }
        StateOp::Increment(entries) => {
            let mut next = state.clone();
            for (k, by) in entries {
                next = next.increment(k, *by)?;
            }
            next
        }
        StateOp::Wipe { delete, keep } => {
            let wipe = match (delete, keep) {
                (Some(d), Some(k)) => Wipe::delete(d.clone()).and_keep(k.clone()),
                (Some(d), None) => Wipe::delete(d.clone()),
                (None, Some(k)) => Wipe::keep(k.clone()),
                (None, None) => Wipe::all(),
            };
            state.wipe(wipe)?
        }
        StateOp::Merge(entries) => state.merge(&State::from_map(entries.clone())),
        StateOp::Subset {
            keys,
            ignore_missing: true,
        } => state.subset(keys.iter().map(String::as_str)),
        StateOp::Subset {
            keys,
            ignore_missing: false,
        } => state.subset_strict(keys.iter().map(String::as_str))?,
        StateOp::Get { key, default } => {
            gets.push(
                state
                    .get_value(key)
                    .cloned()
                    .unwrap_or_else(|| default.clone()),
            );
            state.clone()
        }
        StateOp::GetItem(key) => {
            gets.push(state.get::<Value>(key)?);
            state.clone()
        }
    })
}
