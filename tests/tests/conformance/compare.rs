//! Comparing records with the golden ones (SCENARIOS.md §9).
//!
//! - objects are unordered, arrays ordered;
//! - numbers compare numerically (`2 == 2.0`), except sequence ids, compared exactly;
//! - errors (`error`, `next_action_error`) compare on `kind` only.

use serde_json::Value;

/// Fields holding sequence ids: compared exactly, not numerically.
const EXACT: [&str; 2] = ["sequence_id", "__SEQUENCE_ID"];
/// Fields holding error records: compared on `kind` only.
const ERRORS: [&str; 2] = ["error", "next_action_error"];

/// The first difference between `expected` and `actual`, as `path: expected X, got Y`.
pub fn first_difference(path: &str, expected: &Value, actual: &Value) -> Option<String> {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            let mut keys: Vec<&String> = e.keys().chain(a.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let at = format!("{path}.{key}");
                match (e.get(key), a.get(key)) {
                    (Some(ev), None) => return Some(format!("{at}: expected {ev}, field missing")),
                    (None, Some(av)) => return Some(format!("{at}: unexpected field, got {av}")),
                    (Some(ev), Some(av)) => {
                        let diff = if ERRORS.contains(&key.as_str()) {
                            compare_error(&at, ev, av)
                        } else if EXACT.contains(&key.as_str()) {
                            (ev != av).then(|| format!("{at}: expected {ev}, got {av}"))
                        } else {
                            first_difference(&at, ev, av)
                        };
                        if diff.is_some() {
                            return diff;
                        }
                    }
                    (None, None) => unreachable!("key from one of the maps"),
                }
            }
            None
        }
        (Value::Array(e), Value::Array(a)) => {
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                if let Some(diff) = first_difference(&format!("{path}[{i}]"), ev, av) {
                    return Some(diff);
                }
            }
            (e.len() != a.len()).then(|| {
                format!(
                    "{path}: expected {} elements, got {}: expected {expected}, got {actual}",
                    e.len(),
                    a.len()
                )
            })
        }
        (Value::Number(e), Value::Number(a)) => {
            let equal = match (e.as_i64(), a.as_i64(), e.as_u64(), a.as_u64()) {
                (Some(x), Some(y), _, _) => x == y,
                (_, _, Some(x), Some(y)) => x == y,
                _ => e.as_f64() == a.as_f64(),
            };
            (!equal).then(|| format!("{path}: expected {e}, got {a}"))
        }
        _ => (expected != actual).then(|| format!("{path}: expected {expected}, got {actual}")),
    }
}

fn compare_error(path: &str, expected: &Value, actual: &Value) -> Option<String> {
    let kind = |v: &Value| v.get("kind").cloned();
    match (expected, actual) {
        (Value::Null, Value::Null) => None,
        (Value::Object(_), Value::Object(_)) if kind(expected) == kind(actual) => None,
        _ => Some(format!(
            "{path}: expected {}, got {}",
            describe(expected),
            describe(actual)
        )),
    }
}

fn describe(error: &Value) -> String {
    match error.get("kind") {
        Some(kind) => format!(
            "error kind {kind} ({})",
            error.get("message").and_then(Value::as_str).unwrap_or("")
        ),
        None => error.to_string(),
    }
}

/// A check of the comparer: `Err` says what it got wrong.
pub type SelfCheck = fn() -> Result<(), String>;

/// Checks of the comparer itself, run as trials beside the scenarios: a comparer that
/// accepted everything would make every scenario pass.
pub fn self_checks() -> Vec<(&'static str, SelfCheck)> {
    vec![
        (
            "compare::numbers_numeric_sequence_ids_exact",
            numbers_numeric_sequence_ids_exact,
        ),
        ("compare::errors_on_kind_only", errors_on_kind_only),
    ]
}

fn check(ok: bool, what: &str) -> Result<(), String> {
    ok.then_some(())
        .ok_or_else(|| format!("comparer is wrong: {what}"))
}

fn numbers_numeric_sequence_ids_exact() -> Result<(), String> {
    use serde_json::json;
    check(
        first_difference("$", &json!({"n": 2}), &json!({"n": 2.0})).is_none(),
        "2 != 2.0",
    )?;
    check(
        first_difference("$", &json!({"n": 2}), &json!({"n": 3})).is_some(),
        "2 == 3",
    )?;
    check(
        first_difference(
            "$",
            &json!({"sequence_id": 2}),
            &json!({"sequence_id": 2.0}),
        )
        .is_some(),
        "sequence id 2 == 2.0",
    )?;
    check(
        first_difference("$", &json!([1, 2]), &json!([2, 1])).is_some(),
        "arrays unordered",
    )?;
    check(
        first_difference("$", &json!([1]), &json!([1, 2])).is_some(),
        "array lengths ignored",
    )?;
    check(
        first_difference("$", &json!({"a": 1}), &json!({"a": 1, "b": 2})).is_some(),
        "extra field ignored",
    )?;
    check(
        first_difference("$", &json!({"a": 1, "b": 2}), &json!({"b": 2, "a": 1})).is_none(),
        "objects ordered",
    )
}

fn errors_on_kind_only() -> Result<(), String> {
    use serde_json::json;
    let golden = json!({"error": {"kind": "missing_key", "type": "KeyError", "message": "x"}});
    let same = json!({"error": {"kind": "missing_key", "type": "burr-rs", "message": "y"}});
    let other = json!({"error": {"kind": "other", "type": "burr-rs", "message": "x"}});
    check(
        first_difference("$", &golden, &same).is_none(),
        "error compared beyond kind",
    )?;
    check(
        first_difference("$", &golden, &other).is_some(),
        "error kinds not compared",
    )?;
    check(
        first_difference("$", &golden, &json!({"action": "a"})).is_some(),
        "error ignored",
    )
}
