//! The clauses of a [`when`](super::when) condition.

use std::cmp::Ordering;
use std::fmt;

use serde_json::Value;

use crate::state::type_name;
use crate::state::State;

/// How a `when` clause compares the state's value with the given one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Comparison {
    /// `key` (no suffix): equal.
    Eq,
    /// `key__ne`: not equal.
    Ne,
    /// `key__gt`: greater than.
    Gt,
    /// `key__gte`: greater than or equal.
    Gte,
    /// `key__lt`: less than.
    Lt,
    /// `key__lte`: less than or equal.
    Lte,
    /// `key__in`: the state's value is an element of the given list (or a substring of the
    /// given string).
    In,
    /// `key__notin`: the negation of `__in`.
    NotIn,
    /// `key__contains`: the state's list (or string) contains the given value.
    Contains,
}

impl Comparison {
    const SUFFIXES: [(&'static str, Comparison); 8] = [
        ("__ne", Comparison::Ne),
        ("__gte", Comparison::Gte),
        ("__gt", Comparison::Gt),
        ("__lte", Comparison::Lte),
        ("__lt", Comparison::Lt),
        ("__notin", Comparison::NotIn),
        ("__in", Comparison::In),
        ("__contains", Comparison::Contains),
    ];
}

#[derive(Clone, Debug)]
pub(super) struct Clause {
    pub(super) key: String,
    written: String,
    cmp: Comparison,
    value: Value,
}

impl Clause {
    pub(super) fn parse(written: &str, value: Value) -> Clause {
        for (suffix, cmp) in Comparison::SUFFIXES {
            if let Some(key) = written.strip_suffix(suffix) {
                if !key.is_empty() {
                    return Clause {
                        key: key.to_owned(),
                        written: written.to_owned(),
                        cmp,
                        value,
                    };
                }
            }
        }
        Clause {
            key: written.to_owned(),
            written: written.to_owned(),
            cmp: Comparison::Eq,
            value,
        }
    }

    pub(super) fn holds(&self, state: &State) -> Result<bool, String> {
        let Some(actual) = state.get_value(&self.key) else {
            return Err(format!("state key `{}` is missing", self.key));
        };
        let given = &self.value;
        let ordered = |want: fn(Ordering) -> bool| {
            json_cmp(actual, given).map(want).ok_or_else(|| {
                format!(
                    "`{}` compares a {} with a {}",
                    self.written,
                    type_name(actual),
                    type_name(given)
                )
            })
        };
        match self.cmp {
            Comparison::Eq => Ok(json_eq(actual, given)),
            Comparison::Ne => Ok(!json_eq(actual, given)),
            Comparison::Gt => ordered(Ordering::is_gt),
            Comparison::Gte => ordered(Ordering::is_ge),
            Comparison::Lt => ordered(Ordering::is_lt),
            Comparison::Lte => ordered(Ordering::is_le),
            Comparison::In => self.contains(given, actual),
            Comparison::NotIn => self.contains(given, actual).map(|b| !b),
            Comparison::Contains => self.contains(actual, given),
        }
    }

    fn contains(&self, container: &Value, item: &Value) -> Result<bool, String> {
        match (container, item) {
            (Value::Array(items), _) => Ok(items.iter().any(|v| json_eq(v, item))),
            (Value::String(s), Value::String(sub)) => Ok(s.contains(sub.as_str())),
            (Value::Object(map), Value::String(key)) => Ok(map.contains_key(key)),
            _ => Err(format!(
                "`{}`: cannot look for a {} in a {}",
                self.written,
                type_name(item),
                type_name(container)
            )),
        }
    }
}

impl fmt::Display for Clause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.written, self.value)
    }
}

/// Structural equality with numbers compared by value (`2 == 2.0`).
pub(crate) fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Ordering of numbers, strings and lists (lexicographically); `None` for other pairs.
fn json_cmp(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => x.as_f64()?.partial_cmp(&y.as_f64()?),
        },
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        (Value::Array(x), Value::Array(y)) => {
            for (a, b) in x.iter().zip(y) {
                match json_cmp(a, b)? {
                    Ordering::Equal => continue,
                    other => return Some(other),
                }
            }
            Some(x.len().cmp(&y.len()))
        }
        _ => None,
    }
}
