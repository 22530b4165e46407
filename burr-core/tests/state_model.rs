//! A model of State: random sequences of update/append/extend/increment/delete/wipe/merge
//! applied to a `State` and to a plain `BTreeMap` agree at every step (results and
//! errors), with values of every JSON kind (floats included), across the switch between
//! the inline and the tree representation both ways, and across checkpoints: each step's
//! delta saved to SQLite and loaded back rebuilds the same state. And across a resume:
//! the steps are checkpointed to a real SQLite file up to a random point, an application
//! is built again from the file (another persister, as another process would) and must
//! hold the model's state there, the later steps are saved as deltas from what it
//! loaded, and every sequence id loads the model's state.
//! `fuzz_state_model` runs that part time-boxed in `scripts/fuzz.sh`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use burr_core::actions::action_sync;
use burr_core::persistence::{Checkpoint, Persister, SqlitePersister, StepStatus};
use burr_core::state::{StateError, Wipe};
use burr_core::{ApplicationBuilder, Inputs, State};
use proptest::prelude::*;
use serde_json::{json, Value};

#[path = "../../fuzz/harness.rs"]
mod harness;

type Model = BTreeMap<String, Value>;

#[derive(Clone, Debug)]
enum Op {
    Update(usize, i64),
    /// An update with a value of any kind.
    Set(usize, Value),
    Append(usize, i64),
    Extend(usize, Vec<Value>),
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

/// Values of every JSON kind, floats included (a float must load back exactly).
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop_oneof![Just(0.1f64), Just(1.0386479989478402e-227), Just(-0.0)].prop_map(Value::from),
        "\\PC{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-c]{1,2}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn op() -> impl Strategy<Value = Op> {
    let k = 0..40usize;
    prop_oneof![
        6 => (k.clone(), any::<i64>()).prop_map(|(k, v)| Op::Update(k, v)),
        3 => (k.clone(), value()).prop_map(|(k, v)| Op::Set(k, v)),
        2 => (k.clone(), -5..5i64).prop_map(|(k, v)| Op::Append(k, v)),
        1 => (k.clone(), prop::collection::vec(value(), 0..3)).prop_map(|(k, v)| Op::Extend(k, v)),
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
        Op::Set(k, v) => {
            next.insert(key(*k), v.clone());
        }
        Op::Extend(k, values) => match next.get_mut(&key(*k)) {
            None => {
                next.insert(key(*k), Value::Array(values.clone()));
            }
            Some(Value::Array(items)) => items.extend(values.iter().cloned()),
            Some(_) => return Err("not a list"),
        },
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
        Op::Set(k, v) => Ok(state.update(key(*k), v.clone())),
        Op::Append(k, v) => state.append(key(*k), *v),
        Op::Extend(k, values) => state.extend(key(*k), values.iter().cloned()),
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

/// A checkpoint of step `seq` taking `before` to `after` (the whole state for the first,
/// as an application saves it).
fn checkpoint(seq: u64, before: &State, after: &State) -> Checkpoint {
    Checkpoint {
        partition_key: None,
        app_id: "model".to_owned(),
        sequence_id: seq,
        position: "op".to_owned(),
        status: StepStatus::Completed,
        attempt: 1,
        prior_step: Some("op".to_owned()),
        created_at: SystemTime::now(),
        delta: if seq == 0 {
            burr_core::state::StateDelta::snapshot(after)
        } else {
            after.delta_from(before)
        },
        state: after.clone(),
        error: None,
    }
}

/// `ops` run against the model (see [`run`]); their states checkpointed to a real file
/// up to step `cut`; then, as another process would, the application built again from
/// the file (another persister, `initialize_from`): it must hold the model's state at the
/// cut, and the steps after it are saved as deltas from what it loaded. Every sequence id
/// then loads the model's state, read by a third persister.
fn resume(ops: &[Op], cut: usize) -> Result<(), TestCaseError> {
    let states = run(ops)?;
    let steps = &states[1..];
    let cut = cut.min(steps.len());
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("model.db");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        {
            let first = SqlitePersister::open(&path).expect("opens");
            let mut before = State::new();
            for (seq, after) in steps[..cut].iter().enumerate() {
                first
                    .save(&checkpoint(seq as u64, &before, after))
                    .await
                    .expect("saves");
                before = after.clone();
            }
        }
        let second = Arc::new(SqlitePersister::open(&path).expect("opens"));
        let op = action_sync("op", |s: State, _: &Inputs, _| s);
        let app = ApplicationBuilder::new()
            .with_actions([op])
            .with_entrypoint("op")
            .with_app_id("model")
            .with_state(State::new())
            .with_state_persister(second.clone())
            .initialize_from(second.clone())
            .build()
            .await
            .expect("builds");
        prop_assert_eq!(
            app.sequence_id(),
            cut.checked_sub(1).map(|s| s as u64),
            "resumed after the last stored step"
        );
        prop_assert_eq!(
            as_model(app.state()),
            as_model(&states[cut]),
            "at the resume"
        );
        let mut before = app.state().clone();
        drop(app);
        for (seq, after) in steps.iter().enumerate().skip(cut) {
            second
                .save(&checkpoint(seq as u64, &before, after))
                .await
                .expect("saves");
            before = after.clone();
        }
        drop(second);
        let third = SqlitePersister::open(&path).expect("opens");
        for (seq, expected) in steps.iter().enumerate() {
            let loaded = third
                .load(None, "model", Some(seq as u64))
                .await
                .expect("loads")
                .expect("stored");
            prop_assert_eq!(
                as_model(&loaded.state),
                as_model(expected),
                "at sequence id {}",
                seq
            );
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn an_application_resumed_part_way_matches_the_model(
        ops in prop::collection::vec(op(), 1..30),
        cut in 0..30usize,
    ) {
        resume(&ops, cut)?;
    }
}

/// The model, the checkpoints and the resume, time-boxed by `scripts/fuzz.sh`.
#[test]
fn fuzz_state_model() {
    let cases = (prop::collection::vec(op(), 1..40), 0..40usize);
    harness::fuzz("state_model", file!(), 4, cases, |(ops, cut)| {
        resume(&ops, cut)
    });
}
