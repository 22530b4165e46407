//! The `state_json` fuzz target: State from arbitrary JSON text. Whatever the bytes,
//! decoding a `State` never panics, succeeds exactly when the bytes are a JSON object
//! (as `serde_json` decodes one: the last of duplicate keys wins), and then holds exactly
//! that object, which it gives back unchanged (`to_json`, serializing, `get_value`);
//! updating the decoded state leaves it unchanged. `State::from_json` accepts exactly the
//! objects, with a typed error for anything else.
//!
//! The corpus `fuzz/corpus/state_json/` is replayed on every run; `fuzz_state_json` mixes
//! generated JSON, raw bytes, deep nesting and mutations of the corpus, and
//! `scripts/fuzz.sh` runs it time-boxed.

use burr_core::state::StateError;
use burr_core::State;
use proptest::prelude::*;
use serde_json::{Map, Value};

#[path = "../../fuzz/harness.rs"]
mod harness;

/// The checks on one input.
fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
    let state = serde_json::from_slice::<State>(bytes);
    let map = serde_json::from_slice::<Map<String, Value>>(bytes);
    match (&state, &map) {
        (Ok(state), Ok(map)) => {
            prop_assert_eq!(state.len(), map.len());
            prop_assert_eq!(&state.to_json(), &Value::Object(map.clone()));
            prop_assert_eq!(&state.to_map(), map);
            for (key, value) in map {
                prop_assert_eq!(state.get_value(key), Some(value), "key {:?}", key);
            }
            let written = serde_json::to_vec(state).expect("a State serializes");
            let again: State = serde_json::from_slice(&written).expect("what it wrote decodes");
            prop_assert_eq!(&again, state);
            // Immutable: an update makes a new state.
            let updated = state.update("\u{0}fuzz", 1);
            prop_assert_eq!(updated.len(), map.len() + 1);
            prop_assert_eq!(&state.to_map(), map);
        }
        (Err(state), Err(_)) => prop_assert!(!state.to_string().is_empty()),
        (state, map) => prop_assert!(
            false,
            "State and Map disagree: {:?} / {:?}",
            state.as_ref().map(State::len),
            map.as_ref().map(Map::len)
        ),
    }
    if let Ok(value) = serde_json::from_slice::<Value>(bytes) {
        let is_object = value.is_object();
        match State::from_json(value.clone()) {
            Ok(state) => {
                prop_assert!(is_object);
                prop_assert_eq!(state.to_json(), value);
            }
            Err(error) => {
                prop_assert!(!is_object, "an object was refused: {}", error);
                prop_assert!(
                    matches!(error, StateError::NotAnObject { .. }),
                    "{:?}",
                    error
                );
                prop_assert!(!error.to_string().is_empty());
            }
        }
    }
    Ok(())
}

/// JSON values of every kind, a few levels deep.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from), // NaN and infinities become null
        "\\PC{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

/// Keys: a few that repeat often, and any text.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec!["a", "b", "count", "", "\u{0}", "é", "k00", "k15", "k16"])
            .prop_map(str::to_owned),
        1 => "\\PC{0,8}",
    ]
}

/// An object's text written by hand: duplicate keys, odd spacing, nested values.
fn object_text() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec((key(), value()), 0..40),
        prop::sample::select(vec!["", " ", "\n\t"]),
    )
        .prop_map(|(pairs, space)| {
            let items: Vec<String> = pairs
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{}{space}:{space}{}",
                        Value::from(k.as_str()),
                        serde_json::to_string(v).expect("a value serializes")
                    )
                })
                .collect();
            format!("{space}{{{}}}{space}", items.join(&format!(",{space}"))).into_bytes()
        })
}

/// Arrays and objects nested `depth` levels, around the decoder's limit and far past it.
fn deep() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![120..136usize, 0..2_000usize],
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(depth, objects, closed)| {
            let (open, close) = if objects {
                ("{\"k\":", "}")
            } else {
                ("[", "]")
            };
            let mut text = format!("{{\"d\":{}1", open.repeat(depth));
            if closed {
                text.push_str(&close.repeat(depth));
                text.push('}');
            }
            text.into_bytes()
        })
}

/// A corpus file with a few bytes changed, inserted or cut out.
fn mutated_corpus() -> impl Strategy<Value = Vec<u8>> {
    let files: Vec<Vec<u8>> = harness::corpus("state_json")
        .into_iter()
        .map(|(_, bytes)| bytes)
        .filter(|bytes| bytes.len() < 10_000)
        .collect();
    (
        prop::sample::select(files),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..4),
    )
        .prop_map(|(mut bytes, edits)| {
            for (at, byte, how) in edits {
                let i = at.index(bytes.len() + 1);
                match how {
                    0 if i < bytes.len() => bytes[i] = byte,
                    1 if i < bytes.len() => {
                        bytes.remove(i);
                    }
                    _ => bytes.insert(i, byte),
                }
            }
            bytes
        })
}

#[test]
fn the_state_json_corpus_decodes_or_fails_typed() {
    for (name, bytes) in harness::corpus("state_json") {
        if let Err(error) = check(&bytes) {
            panic!("fuzz/corpus/state_json/{name}: {error}");
        }
    }
}

#[test]
fn a_json_object_decodes_to_the_state_holding_it() {
    for (name, bytes) in harness::corpus("state_json") {
        let object = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .filter(Value::is_object);
        let state = serde_json::from_slice::<State>(&bytes).ok();
        assert_eq!(
            object.is_some(),
            state.is_some(),
            "fuzz/corpus/state_json/{name}"
        );
        if let (Some(object), Some(state)) = (object, state) {
            assert_eq!(state.to_json(), object, "fuzz/corpus/state_json/{name}");
        }
    }
}

#[test]
fn fuzz_state_json() {
    let inputs = prop_oneof![
        3 => object_text(),
        2 => value().prop_map(|v| serde_json::to_vec(&v).expect("a value serializes")),
        1 => deep(),
        1 => prop::collection::vec(any::<u8>(), 0..64),
        3 => mutated_corpus(),
    ];
    harness::fuzz("state_json", file!(), 256, inputs, |bytes| check(&bytes));
}
