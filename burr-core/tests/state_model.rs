//! A model of State: random sequences of update/append/increment/delete/wipe/merge applied
//! to a `State` and to a plain `BTreeMap` agree at every step (results and errors), across
//! the switch between the inline and the tree representation both ways, and across
//! checkpoints: each step's delta saved to SQLite and loaded back rebuilds the same state.

use std::collections::BTreeMap;
use std::time::SystemTime;

use burr_core::persistence::{Checkpoint, Persister, SqlitePersister, StepStatus};
use burr_core::state::{StateError, Wipe};
use burr_core::State;
use proptest::prelude::*;
use serde_json::{json, Value};

type Model = BTreeMap<String, Value>;

#[derive(Clone, Debug)]
enum Op {
    Update(usize, i64),
    Append(usize, i64),
    Increment(usize, i64),
    Delete(Vec<usize>),
    Keep(Vec<usize>),
    WipeAll,
    Merge(Vec<(usize, i64)>),
}

/// 40 keys: enough to cross the 16-key inline limit and come back.
fn key(i: usize) -> String {
    format!("k{i:02}")
}

fn op() -> impl Strategy<Value = Op> {
    let k = 0..40usize;
    prop_oneof![
        6 => (k.clone(), any::<i64>()).prop_map(|(k, v)| Op::Update(k, v)),
        2 => (k.clone(), -5..5i64).prop_map(|(k, v)| Op::Append(k, v)),
        2 => (k.clone(), prop_oneof![Just(i64::MAX), -3..3i64]).prop_map(|(k, v)| Op::Increment(k, v)),
        2 => prop::collection::vec(k.clone(), 0..30).prop_map(Op::Delete),
        1 => prop::collection::vec(k.clone(), 0..20).prop_map(Op::Keep),
        1 => Just(Op::WipeAll),
        2 => prop::collection::vec((k, any::<i64>()), 0..25).prop_map(Op::Merge),
    ]
}

/// The op on the model: the new model, or the error kind the State must give.
fn model_apply(model: &Model, op: &Op) -> Result<Model, &'static str> {
    let mut next = model.clone();
    match op {
        Op::Update(k, v) => {
            next.insert(key(*k), json!(v));
        }
        Op::Append(k, v) => match next.get_mut(&key(*k)) {
            None => {
                next.insert(key(*k), json!([v]));
            }
            Some(Value::Array(items)) => items.push(json!(v)),
            Some(_) => return Err("not a list"),
        },
        Op::Increment(k, by) => {
            let current = match next.get(&key(*k)) {
                None => 0,
                Some(Value::Number(n)) if n.is_i64() => n.as_i64().unwrap_or_default(),
                Some(_) => return Err("not an integer"),
            };
            let sum = current.checked_add(*by).ok_or("overflow")?;
            next.insert(key(*k), json!(sum));
        }
        Op::Delete(keys) => {
            for k in keys {
                next.remove(&key(*k));
            }
        }
        Op::Keep(keys) => {
            let keep: Vec<String> = keys.iter().map(|k| key(*k)).collect();
            next.retain(|k, _| keep.contains(k));
        }
        Op::WipeAll => next.clear(),
        Op::Merge(entries) => {
            for (k, v) in entries {
                next.insert(key(*k), json!(v));
            }
        }
    }
    Ok(next)
}

fn state_apply(state: &State, op: &Op) -> Result<State, StateError> {
    match op {
        Op::Update(k, v) => Ok(state.update(key(*k), *v)),
        Op::Append(k, v) => state.append(key(*k), *v),
        Op::Increment(k, by) => state.increment(key(*k), *by),
        Op::Delete(keys) => state.wipe(Wipe::delete(keys.iter().map(|k| key(*k)))),
        Op::Keep(keys) => state.wipe(Wipe::keep(keys.iter().map(|k| key(*k)))),
        Op::WipeAll => state.wipe(Wipe::all()),
        Op::Merge(entries) => {
            Ok(state.merge(&entries.iter().map(|(k, v)| (key(*k), *v)).collect()))
        }
    }
}

fn kind(error: &StateError) -> &'static str {
    match error {
        StateError::NotAList { .. } => "not a list",
        StateError::NotAnInteger { .. } => "not an integer",
        StateError::Overflow { .. } => "overflow",
        _ => "other",
    }
}

fn as_model(state: &State) -> Model {
    state
        .iter()
        .map(|(k, v)| (k.to_owned(), v.clone()))
        .collect()
}

/// Run `ops` on a State and the model; check every step; the states after each step.
fn run(ops: &[Op]) -> Result<Vec<State>, TestCaseError> {
    let (mut state, mut model) = (State::new(), Model::new());
    let mut states = vec![state.clone()];
    for op in ops {
        match (state_apply(&state, op), model_apply(&model, op)) {
            (Ok(next), Ok(next_model)) => {
                prop_assert_eq!(as_model(&next), next_model.clone(), "after {:?}", op);
                prop_assert_eq!(next.len(), next_model.len());
                for (k, v) in &next_model {
                    prop_assert_eq!(next.get_value(k), Some(v));
                }
                // The delta rebuilds the new state from the old one, exactly.
                let delta = next.delta_from(&state);
                prop_assert_eq!(as_model(&state.apply(&delta)), next_model.clone());
                let keys: Vec<&str> = delta.keys().collect();
                let mut sorted = keys.clone();
                sorted.sort_unstable();
                sorted.dedup();
                prop_assert_eq!(sorted.len(), keys.len(), "a key at most once in a delta");
                state = next;
                model = next_model;
                states.push(state.clone());
            }
            (Err(error), Err(expected)) => prop_assert_eq!(kind(&error), expected),
            (got, expected) => {
                prop_assert!(
                    false,
                    "{:?}: State gave {:?}, the model {:?}",
                    op,
                    got.map(|s| as_model(&s)),
                    expected
                )
            }
        }
    }
    Ok(states)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn state_matches_a_plain_map(ops in prop::collection::vec(op(), 1..60)) {
        run(&ops)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn checkpoints_of_deltas_load_back_every_state(ops in prop::collection::vec(op(), 1..40)) {
        let states = run(&ops)?;
        let dir = tempfile::tempdir().expect("a temp dir");
        let store = SqlitePersister::open(dir.path().join("model.db")).expect("opens");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        runtime.block_on(async {
            for (seq, pair) in states.windows(2).enumerate() {
                let (before, after) = (&pair[0], &pair[1]);
                let checkpoint = Checkpoint {
                    partition_key: None,
                    app_id: "model".to_owned(),
                    sequence_id: seq as u64,
                    position: "op".to_owned(),
                    status: StepStatus::Completed,
                    attempt: 1,
                    prior_step: None,
                    created_at: SystemTime::now(),
                    delta: if seq == 0 {
                        burr_core::state::StateDelta::snapshot(after)
                    } else {
                        after.delta_from(before)
                    },
                    state: after.clone(),
                    error: None,
                };
                store.save(&checkpoint).await.expect("saves");
            }
            for (seq, expected) in states.iter().skip(1).enumerate() {
                let loaded = store
                    .load(None, "model", Some(seq as u64))
                    .await
                    .expect("loads")
                    .expect("stored");
                prop_assert_eq!(as_model(&loaded.state), as_model(expected), "at sequence id {}", seq);
            }
            Ok(())
        })?;
    }
}
