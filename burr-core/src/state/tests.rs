use serde_json::json;

use super::*;

fn abc() -> State {
    State::from_json(json!({"a": 1, "b": [1], "c": "x"})).unwrap()
}

#[test]
fn operations_leave_the_original_untouched() {
    let s = abc();
    let t = s
        .update("a", 2)
        .append("b", 2)
        .unwrap()
        .increment("a", 5)
        .unwrap();
    assert_eq!(s.to_json(), json!({"a": 1, "b": [1], "c": "x"}));
    assert_eq!(t.to_json(), json!({"a": 7, "b": [1, 2], "c": "x"}));
}

#[test]
fn typed_get_names_key_and_type() {
    let s = abc();
    assert_eq!(s.get::<i64>("a").unwrap(), 1);
    let err = s.get::<String>("a").unwrap_err();
    assert!(
        matches!(err, StateError::WrongType { ref key, .. } if key == "a"),
        "{err}"
    );
    assert!(err.to_string().contains("String"), "{err}");
    let err = s.get::<i64>("zzz").unwrap_err();
    assert!(err.to_string().contains("`zzz`"), "{err}");
    assert_eq!(s.get_or("zzz", 9_i64).unwrap(), 9);
    assert!(s.get_or("c", 9_i64).is_err());
}

#[test]
fn append_nests_lists_and_refuses_non_lists() {
    let s = abc().append("b", json!([9])).unwrap();
    assert_eq!(s.get_value("b"), Some(&json!([1, [9]])));
    assert_eq!(
        abc().append("new", 1).unwrap().get_value("new"),
        Some(&json!([1]))
    );
    for key in ["a", "c"] {
        let err = abc().append(key, 1).unwrap_err();
        assert!(matches!(err, StateError::NotAList { .. }), "{err}");
    }
    let err = abc().update("o", json!({})).extend("o", [1]).unwrap_err();
    assert!(err.to_string().contains("`o`"));
}

#[test]
fn extend_concatenates_or_creates() {
    let s = abc()
        .extend("b", [2, 3])
        .unwrap()
        .extend("n", ["x"])
        .unwrap();
    assert_eq!(s.get_value("b"), Some(&json!([1, 2, 3])));
    assert_eq!(s.get_value("n"), Some(&json!(["x"])));
    assert!(abc().extend("a", [1]).is_err());
}

#[test]
fn increment_needs_an_integer() {
    assert_eq!(
        abc()
            .increment("new", 3)
            .unwrap()
            .get::<i64>("new")
            .unwrap(),
        3
    );
    for bad in [json!(1.5), json!(true), json!("1"), json!(null)] {
        let err = State::new().update("k", bad).increment("k", 1).unwrap_err();
        assert!(matches!(err, StateError::NotAnInteger { .. }), "{err}");
    }
    let err = State::new()
        .update("k", i64::MAX)
        .increment("k", 1)
        .unwrap_err();
    assert!(matches!(err, StateError::Overflow { .. }));
}

#[test]
fn wipe_delete_keep_all_and_conflict() {
    let s = abc();
    assert_eq!(
        s.wipe(Wipe::delete(["a", "zz"]))
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["b", "c"]
    );
    assert_eq!(
        s.wipe(Wipe::keep(["a", "zz"]))
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["a"]
    );
    assert!(s.wipe(Wipe::keep(Vec::<String>::new())).unwrap().is_empty());
    assert!(s.wipe(Wipe::all()).unwrap().is_empty());
    assert!(matches!(
        s.wipe(Wipe::delete(["a"]).and_keep(["b"])),
        Err(StateError::WipeConflict)
    ));
}

#[test]
fn merge_and_subset() {
    let s = abc();
    let m = s.merge(&State::from_json(json!({"a": 5, "d": 1})).unwrap());
    assert_eq!(m.to_json(), json!({"a": 5, "b": [1], "c": "x", "d": 1}));
    assert_eq!(s.subset(["a", "zz"]).to_json(), json!({"a": 1}));
    let err = s.subset_strict(["a", "zz"]).unwrap_err();
    assert!(matches!(err, StateError::MissingKey { ref key, .. } if key == "zz"));
}

#[test]
fn updates_share_unchanged_values() {
    let big = State::new().update("big", "x".repeat(1000)).update("n", 0);
    let next = big.increment("n", 1).unwrap();
    assert!(Arc::ptr_eq(
        &big.get_shared("big").unwrap(),
        &next.get_shared("big").unwrap()
    ));
}

#[test]
fn delta_has_only_changes_and_round_trips() {
    let mut s = State::new();
    for i in 0..10_000 {
        s = s.update(format!("k{i}"), i);
    }
    let t = s
        .update("k5", "changed")
        .without(["k7"])
        .update("new", true);
    let delta = t.delta_from(&s);
    let updated: Vec<_> = delta.updated.iter().map(|(k, _)| k.to_string()).collect();
    assert_eq!(updated, ["k5", "new"]);
    assert_eq!(
        delta
            .deleted
            .iter()
            .map(|k| k.to_string())
            .collect::<Vec<_>>(),
        ["k7"]
    );
    assert_eq!(s.apply(&delta), t);
    assert!(s.delta_from(&s).is_empty());
}

#[test]
fn rewriting_a_key_with_an_equal_value_counts_as_a_write() {
    let s = abc();
    let t = s.update("a", 1);
    assert_eq!(t.delta_from(&s).keys().collect::<Vec<_>>(), ["a"]);
    assert_eq!(s, t, "equal content compares equal");
}

#[test]
fn json_round_trip_and_display() {
    let s = abc();
    let text = serde_json::to_string(&s).unwrap();
    let back: State = serde_json::from_str(&text).unwrap();
    assert_eq!(back, s);
    assert_eq!(s.to_string(), r#"{"a":1,"b":[1],"c":"x"}"#);
    assert!(format!("{s:?}").contains("\"c\": String(\"x\")"));
    assert!(matches!(
        State::from_json(json!([1])),
        Err(StateError::NotAnObject { found: "list" })
    ));
}

/// Large states keep their latest changes above their tree (folded in past a few keys):
/// random updates and removals on 20 to 60 keys agree with a model map, by lookup, length
/// and iteration, and the delta between any two of the states made (over the same tree or
/// different ones, small or large) is exactly what differs, and applies.
mod large_states {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    #[derive(Clone, Debug)]
    enum Op {
        Set(usize, i64),
        Remove(usize),
        Many(Vec<(usize, i64)>),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0..60usize, any::<i64>()).prop_map(|(k, v)| Op::Set(k, v)),
            // Mostly the same few keys, as steps do.
            4 => (0..4usize, any::<i64>()).prop_map(|(k, v)| Op::Set(k, v)),
            3 => (0..60usize).prop_map(Op::Remove),
            1 => prop::collection::vec((0..60usize, any::<i64>()), 0..12).prop_map(Op::Many),
        ]
    }

    fn key(i: usize) -> String {
        format!("k{i:02}")
    }

    fn check(state: &State, model: &BTreeMap<String, Value>) {
        assert_eq!(state.len(), model.len());
        let keys: Vec<&str> = state.keys().collect();
        let expected: Vec<&str> = model.keys().map(String::as_str).collect();
        assert_eq!(keys, expected);
        for i in 0..60 {
            assert_eq!(state.get_value(&key(i)), model.get(&key(i)));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn agree_with_a_model_and_diff_exactly(
            start in 20..40usize,
            ops in prop::collection::vec(op(), 1..40),
        ) {
            let mut model: BTreeMap<String, Value> =
                (0..start).map(|i| (key(i), json!(i))).collect();
            let mut state: State = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            let mut states = vec![(state.clone(), model.clone())];
            for op in ops {
                match op {
                    Op::Set(k, v) => {
                        state = state.update(key(k), v);
                        model.insert(key(k), json!(v));
                    }
                    Op::Remove(k) => {
                        state = state.without([key(k).as_str()]);
                        model.remove(&key(k));
                    }
                    Op::Many(pairs) => {
                        state = state.update_many(pairs.iter().map(|&(k, v)| (key(k), v)));
                        for (k, v) in pairs {
                            model.insert(key(k), json!(v));
                        }
                    }
                }
                check(&state, &model);
                states.push((state.clone(), model.clone()));
            }
            for (before, old) in &states {
                for (after, new) in &states {
                    let delta = after.delta_from(before);
                    let deleted: Vec<String> =
                        delta.deleted.iter().map(|k| k.to_string()).collect();
                    let gone: Vec<String> =
                        old.keys().filter(|k| !new.contains_key(*k)).cloned().collect();
                    prop_assert_eq!(deleted, gone);
                    let updated: Vec<String> =
                        delta.updated.iter().map(|(k, _)| k.to_string()).collect();
                    // Every key whose value differs is in the delta (a value rewritten with
                    // an equal one may be too).
                    for (k, v) in new {
                        if old.get(k) != Some(v) {
                            prop_assert!(updated.contains(k), "{} missing from the delta", k);
                        }
                    }
                    for (k, v) in &delta.updated {
                        prop_assert_eq!(new.get(&**k), Some(&**v));
                    }
                    let applied = before.apply(&delta);
                    check(&applied, new);
                    prop_assert!(applied == *after);
                }
            }
        }
    }
}

#[test]
fn changes_applied_to_a_large_state_in_place_never_reach_its_clones() {
    // Large (more than SMALL_MAX keys), with `count` among its recent changes.
    let mut large = State::new();
    for i in 0..100 {
        large = large.update(format!("k{i}").as_str(), i);
    }
    let large = large.update("count", 0).update("count", 1);
    let (before, after) = (
        State::new().update("count", 1),
        State::new().update("count", 2),
    );
    // Shared with a clone: the clone keeps its value.
    let kept = large.clone();
    let changed = large.apply_changes_owned(&before, &after);
    assert_eq!(kept.get::<i64>("count").unwrap(), 1);
    assert_eq!(changed.get::<i64>("count").unwrap(), 2);
    // Owned alone: changed in place, and the result is the same as a copy's.
    let again = changed.apply_changes_owned(&after, &State::new().update("count", 3));
    assert_eq!(again.get::<i64>("count").unwrap(), 3);
    assert_eq!(again.get::<i64>("k42").unwrap(), 42);
    assert_eq!(again.len(), 101);
    let removed = again.apply_changes_owned(&State::new().update("k7", 7), &State::new());
    assert!(!removed.contains("k7"));
    assert_eq!(removed.len(), 100);
}
