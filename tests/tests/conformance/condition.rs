//! Transitions and the condition DSL (SCENARIOS.md §5), built with burr-rs's `default`,
//! `when`, `expr`, `!`, `&` and `|`.

use burr_core::condition::Condition;
use burr_core::graph::TransitionSpec;
use burr_core::{default, expr, when};
use serde_json::Value;

/// A condition from its JSON form.
pub fn parse(value: &Value) -> Result<Condition, String> {
    match value {
        Value::String(s) if s == "default" => Ok(default()),
        Value::Object(map) if map.len() == 1 => {
            let (kind, arg) = map.iter().next().expect("one entry");
            match kind.as_str() {
                "expr" => arg
                    .as_str()
                    .map(expr)
                    .ok_or_else(|| format!("`expr` takes a string, got {arg}")),
                "when" => match arg {
                    Value::Object(clauses) if !clauses.is_empty() => {
                        Ok(when(clauses.iter().map(|(k, v)| (k.as_str(), v.clone()))))
                    }
                    other => Err(format!("`when` takes a non-empty object, got {other}")),
                },
                "not" => Ok(!parse(arg)?),
                "and" => fold(arg, "and", |a, b| a & b),
                "or" => fold(arg, "or", |a, b| a | b),
                other => Err(format!("unknown condition `{other}`")),
            }
        }
        other => Err(format!("not a condition: {other}")),
    }
}

fn fold(
    arg: &Value,
    kind: &str,
    combine: fn(Condition, Condition) -> Condition,
) -> Result<Condition, String> {
    let items = arg
        .as_array()
        .filter(|items| !items.is_empty())
        .ok_or_else(|| format!("`{kind}` takes a non-empty list, got {arg}"))?;
    let mut conditions = items.iter().map(parse);
    let first = conditions.next().expect("non-empty")?;
    conditions.try_fold(first, |acc, next| Ok(combine(acc, next?)))
}

/// A transition `[from, to]` or `[from, to, condition]`; `from` may be a list of names.
pub fn transition(value: &Value) -> Result<TransitionSpec, String> {
    let parts = value
        .as_array()
        .filter(|p| p.len() == 2 || p.len() == 3)
        .ok_or_else(|| {
            format!("a transition is [from, to] or [from, to, condition], got {value}")
        })?;
    let from: Vec<String> = match &parts[0] {
        Value::String(name) => vec![name.clone()],
        Value::Array(names) => names
            .iter()
            .map(|n| n.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| format!("transition sources must be names, got {}", parts[0]))?,
        other => {
            return Err(format!(
                "a transition source must be a name or a list, got {other}"
            ))
        }
    };
    let to = parts[1]
        .as_str()
        .ok_or_else(|| format!("a transition target must be a name, got {}", parts[1]))?;
    Ok(match parts.get(2) {
        None => TransitionSpec::from((from, to)),
        Some(condition) => TransitionSpec::from((from, to, parse(condition)?)),
    })
}
