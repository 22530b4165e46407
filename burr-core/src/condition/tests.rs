use serde_json::json;

use super::*;

fn state(v: Value) -> State {
    State::from_json(v).unwrap()
}

#[test]
fn when_equality_and_suffixes() {
    let s = state(json!({"count": 5, "name": "bob", "tags": ["a", "b"], "ratio": 2.0}));
    assert!(when([("count", json!(5))]).evaluate(&s).unwrap());
    assert!(
        when([("ratio", json!(2))]).evaluate(&s).unwrap(),
        "2 == 2.0"
    );
    assert!(
        !when([("count", json!("5"))]).evaluate(&s).unwrap(),
        "'5' != 5"
    );
    assert!(when([("count__gt", json!(4)), ("count__lte", json!(5))])
        .evaluate(&s)
        .unwrap());
    assert!(!when([("count__lt", json!(5))]).evaluate(&s).unwrap());
    assert!(when([("count__ne", json!(6))]).evaluate(&s).unwrap());
    assert!(when([("name__in", json!(["bob", "al"]))])
        .evaluate(&s)
        .unwrap());
    assert!(when([("name__notin", json!(["al"]))]).evaluate(&s).unwrap());
    assert!(when([("tags__contains", json!("b"))]).evaluate(&s).unwrap());
    let err = when([("name__gt", json!(3))]).evaluate(&s).unwrap_err();
    assert!(matches!(err, ConditionError::Type { .. }), "{err}");
}

#[test]
fn names_are_readable() {
    assert_eq!(when([("done", json!(true))]).name(), "done=true");
    assert_eq!((!when([("done", json!(true))])).name(), "~done=true");
    assert_eq!(expr("count < 10").name(), "count < 10");
    assert_eq!((expr("a") & expr("b")).name(), "a & b");
    assert_eq!((expr("a") | expr("b")).name(), "a | b");
    assert_eq!(default().name(), "default");
}

#[test]
fn every_key_of_the_tree_must_be_present_even_unreached() {
    let s = state(json!({"a": 1}));
    let c = when([("a", json!(1))]) | expr("missing > 0");
    match c.evaluate(&s).unwrap_err() {
        ConditionError::MissingKeys { keys, condition } => {
            assert_eq!(keys, ["missing"]);
            assert_eq!(condition, "a=1 | missing > 0");
        }
        other => panic!("{other}"),
    }
    assert_eq!(c.keys(), ["a", "missing"]);
}

#[test]
fn invert_and_or() {
    let s = state(json!({"x": 1, "y": 0}));
    assert!((expr("x == 1") & !expr("y == 1")).evaluate(&s).unwrap());
    assert!(!(expr("x == 2") & expr("y == 0")).evaluate(&s).unwrap());
    assert!((expr("x == 2") | expr("y == 0")).evaluate(&s).unwrap());
    assert!(expr("x == 2").not().or(default()).evaluate(&s).unwrap());
}

#[test]
fn expr_errors_name_the_condition() {
    let s = state(json!({"x": 1, "z": 0}));
    let err = expr("x / z").evaluate(&s).unwrap_err();
    assert!(matches!(err, ConditionError::Eval { .. }));
    assert!(err.to_string().contains("x / z"));
    let bad = expr("x <");
    assert!(bad.syntax_error().is_some());
    assert!(matches!(bad.evaluate(&s), Err(ConditionError::Syntax(_))));
}

#[test]
fn custom_conditions_declare_keys() {
    let c = Condition::custom("big", ["n"], |s: &State| Ok(s.get::<i64>("n")? > 10));
    assert!(c.evaluate(&state(json!({"n": 11}))).unwrap());
    assert!(matches!(
        c.evaluate(&state(json!({}))),
        Err(ConditionError::MissingKeys { .. })
    ));
}
