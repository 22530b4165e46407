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
