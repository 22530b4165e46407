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

/// Values nested deeper than this are not spelled out in a clause's name.
const MAX_SHOWN_DEPTH: usize = 32;

impl fmt::Display for Clause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // serde_json's `Display` recurses once per level: spell out only
        // values of a reasonable depth.
        if deeper_than(&self.value, MAX_SHOWN_DEPTH) {
            write!(
                f,
                "{}=<{} nested more than {MAX_SHOWN_DEPTH} levels deep>",
                self.written,
                type_name(&self.value)
            )
        } else {
            write!(f, "{}={}", self.written, self.value)
        }
    }
}

impl Drop for Clause {
    fn drop(&mut self) {
        // serde_json's drop recurses once per level.
        if matches!(self.value, Value::Array(_) | Value::Object(_)) {
            super::expression::drop_json(std::mem::take(&mut self.value));
        }
    }
}

/// Whether `value` nests more than `max` levels of lists and objects.
fn deeper_than(value: &Value, max: usize) -> bool {
    let mut stack = vec![(value, 0usize)];
    while let Some((v, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        if depth == max {
            return true;
        }
        stack.extend(children.map(|c| (c, depth + 1)));
    }
    false
}

fn num_eq(x: &serde_json::Number, y: &serde_json::Number) -> bool {
    match (x.as_i64(), y.as_i64()) {
        (Some(x), Some(y)) => x == y,
        _ => x.as_f64() == y.as_f64(),
    }
}

/// Structural equality with numbers compared by value (`2 == 2.0`). Walks
/// with an explicit stack: values of any depth compare.
pub(crate) fn json_eq(a: &Value, b: &Value) -> bool {
    let mut stack = vec![(a, b)];
    while let Some((a, b)) = stack.pop() {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => {
                if !num_eq(x, y) {
                    return false;
                }
            }
            (Value::Array(x), Value::Array(y)) => {
                if x.len() != y.len() {
                    return false;
                }
                stack.extend(x.iter().zip(y));
            }
            (Value::Object(x), Value::Object(y)) => {
                if x.len() != y.len() {
                    return false;
                }
                for (k, v) in x {
                    match y.get(k) {
                        Some(w) => stack.push((v, w)),
                        None => return false,
                    }
                }
            }
            // Scalars, or values of different kinds (never equal; `==`
            // returns at once on those).
            _ => {
                if a != b {
                    return false;
                }
            }
        }
    }
    true
}

/// Ordering of numbers and strings; `None` for other pairs.
fn scalar_cmp(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => Some(x.cmp(&y)),
            _ => x.as_f64()?.partial_cmp(&y.as_f64()?),
        },
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// Ordering of numbers, strings and lists (lexicographically); `None` for other pairs.
/// Nested lists are walked with an explicit stack.
fn json_cmp(a: &Value, b: &Value) -> Option<Ordering> {
    let (Value::Array(x), Value::Array(y)) = (a, b) else {
        return scalar_cmp(a, b);
    };
    let mut stack: Vec<(&[Value], &[Value], usize)> = vec![(x, y, 0)];
    while let Some((x, y, i)) = stack.last_mut() {
        let (x, y): (&[Value], &[Value]) = (x, y);
        match (x.get(*i), y.get(*i)) {
            (Some(p), Some(q)) => {
                *i += 1;
                match (p, q) {
                    (Value::Array(p), Value::Array(q)) => stack.push((p, q, 0)),
                    _ => match scalar_cmp(p, q)? {
                        Ordering::Equal => {}
                        other => return Some(other),
                    },
                }
            }
            _ => {
                let ord = x.len().cmp(&y.len());
                stack.pop();
                if ord != Ordering::Equal || stack.is_empty() {
                    return Some(ord);
                }
            }
        }
    }
    Some(Ordering::Equal)
}
