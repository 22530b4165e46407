//! Runtime values and the Python-style operations on them.
//!
//! [`Val`] borrows from the state (`&'v serde_json::Value`) and from the
//! parsed expression's literals wherever possible, so that common conditions
//! such as `count < 10000` or `status == "done"` evaluate without allocating.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::parser::{ArithOp, Lit};

/// Largest list / string (in elements / bytes) that `*` repetition may build.
const MAX_REPEAT_LEN: usize = 1 << 24;

/// A runtime value.
#[derive(Clone, Debug)]
pub(super) enum Val<'v> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Cow<'v, str>),
    /// A list borrowed from state or from a constant list literal.
    JList(&'v [Value]),
    /// A list built during evaluation (list literal, concatenation, ...).
    List(Vec<Val<'v>>),
    Obj(&'v Map<String, Value>),
}

/// Failure of a value operation; the evaluator attaches the expression text.
#[derive(Debug)]
pub(super) enum OpError {
    Type(String),
    DivisionByZero,
}

type OpResult<T> = Result<T, OpError>;

fn type_err<T>(msg: String) -> OpResult<T> {
    Err(OpError::Type(msg))
}

#[derive(Clone, Copy)]
enum Num {
    I(i64),
    F(f64),
}

impl Num {
    fn as_f64(self) -> f64 {
        match self {
            Num::I(i) => i as f64,
            Num::F(f) => f,
        }
    }
}

/// Borrowed view of a list's items, whichever representation it has.
#[derive(Clone, Copy)]
enum Items<'x, 'v> {
    Json(&'v [Value]),
    Vals(&'x [Val<'v>]),
}

impl<'x, 'v: 'x> Items<'x, 'v> {
    fn len(self) -> usize {
        match self {
            Items::Json(j) => j.len(),
            Items::Vals(v) => v.len(),
        }
    }

    /// Item `i`; JSON items are wrapped without allocating.
    fn get(self, i: usize) -> Cow<'x, Val<'v>> {
        match self {
            Items::Json(j) => Cow::Owned(Val::from_json(&j[i])),
            Items::Vals(v) => Cow::Borrowed(&v[i]),
        }
    }

    fn push_into(self, out: &mut Vec<Val<'v>>) {
        match self {
            Items::Json(j) => out.extend(j.iter().map(Val::from_json)),
            Items::Vals(v) => out.extend(v.iter().cloned()),
        }
    }
}

impl<'v> Val<'v> {
    /// Wraps a JSON value. Integral numbers that fit `i64` become `Int`;
    /// every other number (including `u64` above `i64::MAX`) becomes `Float`.
    pub(super) fn from_json(value: &'v Value) -> Val<'v> {
        match value {
            Value::Null => Val::Null,
            Value::Bool(b) => Val::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Val::Int(i),
                None => Val::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => Val::Str(Cow::Borrowed(s)),
            Value::Array(a) => Val::JList(a),
            Value::Object(o) => Val::Obj(o),
        }
    }

    pub(super) fn from_lit(lit: &'v Lit) -> Val<'v> {
        match lit {
            Lit::Null => Val::Null,
            Lit::Bool(b) => Val::Bool(*b),
            Lit::Int(i) => Val::Int(*i),
            Lit::Float(f) => Val::Float(*f),
            Lit::Str(s) => Val::Str(Cow::Borrowed(s)),
            Lit::Json(v) => Val::from_json(v),
        }
    }

    /// Converts to an owned JSON value. Non-finite floats become `null`
    /// (JSON cannot represent them).
    pub(super) fn to_json(&self) -> Value {
        match self {
            Val::Null => Value::Null,
            Val::Bool(b) => Value::Bool(*b),
            Val::Int(i) => Value::from(*i),
            Val::Float(f) => Value::from(*f),
            Val::Str(s) => Value::String(s.to_string()),
            Val::JList(l) => Value::Array(l.to_vec()),
            Val::List(l) => Value::Array(l.iter().map(Val::to_json).collect()),
            Val::Obj(o) => Value::Object((*o).clone()),
        }
    }

    /// Python type name, used in error messages.
    pub(super) fn type_name(&self) -> &'static str {
        match self {
            Val::Null => "NoneType",
            Val::Bool(_) => "bool",
            Val::Int(_) => "int",
            Val::Float(_) => "float",
            Val::Str(_) => "str",
            Val::JList(_) | Val::List(_) => "list",
            Val::Obj(_) => "dict",
        }
    }

    /// Python truthiness.
    pub(super) fn truthy(&self) -> bool {
        match self {
            Val::Null => false,
            Val::Bool(b) => *b,
            Val::Int(i) => *i != 0,
            Val::Float(f) => *f != 0.0,
            Val::Str(s) => !s.is_empty(),
            Val::JList(l) => !l.is_empty(),
            Val::List(l) => !l.is_empty(),
            Val::Obj(o) => !o.is_empty(),
        }
    }

    fn num(&self) -> Option<Num> {
        match self {
            Val::Int(i) => Some(Num::I(*i)),
            Val::Float(f) => Some(Num::F(*f)),
            _ => None,
        }
    }

    fn items(&self) -> Option<Items<'_, 'v>> {
        match self {
            Val::JList(l) => Some(Items::Json(l)),
            Val::List(l) => Some(Items::Vals(l)),
            _ => None,
        }
    }

    /// `len(x)`: chars of a string, items of a list, keys of an object.
    pub(super) fn len(&self) -> OpResult<Val<'v>> {
        let n = match self {
            Val::Str(s) => s.chars().count(),
            Val::JList(l) => l.len(),
            Val::List(l) => l.len(),
            Val::Obj(o) => o.len(),
            other => {
                return type_err(format!(
                    "object of type '{}' has no len()",
                    other.type_name()
                ))
            }
        };
        Ok(Val::Int(n as i64))
    }

    /// Unary minus / plus (numbers only; bools are rejected).
    pub(super) fn unary(self, negate: bool) -> OpResult<Val<'v>> {
        match (self, negate) {
            (Val::Int(i), true) => i.checked_neg().map(Val::Int).ok_or_else(|| {
                OpError::Type(format!(
                    "integer overflow: -({i}) does not fit in a 64-bit integer"
                ))
            }),
            (Val::Float(f), true) => Ok(Val::Float(-f)),
            (v @ (Val::Int(_) | Val::Float(_)), false) => Ok(v),
            (other, _) => type_err(format!(
                "bad operand type for unary {}: '{}'",
                if negate { "-" } else { "+" },
                other.type_name()
            )),
        }
    }
}

/// Structural equality: numbers compare by value across int/float, lists
/// element-wise, objects as key -> value maps. Values of different kinds are
/// never equal; in particular `true != 1`.
pub(super) fn equal(a: &Val<'_>, b: &Val<'_>) -> bool {
    match (a, b) {
        (Val::Null, Val::Null) => true,
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (Val::Str(x), Val::Str(y)) => x == y,
        (Val::Obj(x), Val::Obj(y)) => {
            x.len() == y.len()
                && x.iter().all(|(k, xv)| {
                    y.get(k)
                        .is_some_and(|yv| equal(&Val::from_json(xv), &Val::from_json(yv)))
                })
        }
        _ => {
            if let (Some(x), Some(y)) = (a.num(), b.num()) {
                return num_cmp(x, y) == Some(Ordering::Equal);
            }
            match (a.items(), b.items()) {
                (Some(x), Some(y)) => {
                    x.len() == y.len() && (0..x.len()).all(|i| equal(&x.get(i), &y.get(i)))
                }
                _ => false,
            }
        }
    }
}

/// Exact numeric comparison (like Python, `2**53 + 1 != float(2**53)`).
fn num_cmp(a: Num, b: Num) -> Option<Ordering> {
    match (a, b) {
        (Num::I(x), Num::I(y)) => Some(x.cmp(&y)),
        (Num::I(x), Num::F(y)) => int_float_cmp(x, y),
        (Num::F(x), Num::I(y)) => int_float_cmp(y, x).map(Ordering::reverse),
        (Num::F(x), Num::F(y)) => x.partial_cmp(&y),
    }
}

fn int_float_cmp(i: i64, f: f64) -> Option<Ordering> {
    // Rounding is monotonic, so a strict inequality after converting `i` is
    // exact; on a tie `f` is integral with |f| <= 2^63 and fits in i128.
    match (i as f64).partial_cmp(&f)? {
        Ordering::Equal => Some((i as i128).cmp(&(f as i128))),
        other => Some(other),
    }
}

/// Ordering for `<`, `<=`, `>`, `>=`. `Ok(None)` means unordered (NaN): every
/// ordering comparison is then false. Mismatched types are a type error.
pub(super) fn compare(a: &Val<'_>, b: &Val<'_>, op: &str) -> OpResult<Option<Ordering>> {
    if let (Some(x), Some(y)) = (a.num(), b.num()) {
        return Ok(num_cmp(x, y));
    }
    if let (Val::Str(x), Val::Str(y)) = (a, b) {
        return Ok(Some(x.as_ref().cmp(y.as_ref())));
    }
    if let (Some(x), Some(y)) = (a.items(), b.items()) {
        for i in 0..x.len().min(y.len()) {
            let (xi, yi) = (x.get(i), y.get(i));
            if !equal(&xi, &yi) {
                return compare(&xi, &yi, op);
            }
        }
        return Ok(Some(x.len().cmp(&y.len())));
    }
    type_err(format!(
        "'{op}' not supported between instances of '{}' and '{}'",
        a.type_name(),
        b.type_name()
    ))
}

/// `needle in haystack`.
pub(super) fn contains(needle: &Val<'_>, haystack: &Val<'_>) -> OpResult<bool> {
    match haystack {
        Val::Str(h) => match needle {
            Val::Str(n) => Ok(h.contains(n.as_ref())),
            other => type_err(format!(
                "'in <string>' requires string as left operand, not {}",
                other.type_name()
            )),
        },
        Val::Obj(o) => match needle {
            Val::Str(n) => Ok(o.contains_key(n.as_ref())),
            other => type_err(format!(
                "'in <dict>' requires string as left operand, not {}",
                other.type_name()
            )),
        },
        Val::JList(l) => Ok(l.iter().any(|item| equal(needle, &Val::from_json(item)))),
        Val::List(l) => Ok(l.iter().any(|item| equal(needle, item))),
        other => type_err(format!(
            "argument of type '{}' is not iterable",
            other.type_name()
        )),
    }
}

/// Binary arithmetic with Python semantics (floor `//` and `%`, true `/`,
/// checked integer overflow, string / list concatenation and repetition).
pub(super) fn arith<'v>(op: ArithOp, a: Val<'v>, b: Val<'v>) -> OpResult<Val<'v>> {
    if let (Some(x), Some(y)) = (a.num(), b.num()) {
        return num_arith(op, x, y);
    }
    match (op, a, b) {
        (ArithOp::Add, Val::Str(x), Val::Str(y)) => {
            let mut s = x.into_owned();
            s.push_str(&y);
            Ok(Val::Str(Cow::Owned(s)))
        }
        (ArithOp::Mul, Val::Str(s), Val::Int(n)) | (ArithOp::Mul, Val::Int(n), Val::Str(s)) => {
            let count = repeat_count(n, s.len())?;
            Ok(Val::Str(Cow::Owned(s.repeat(count))))
        }
        (op, a, b) => {
            if let (ArithOp::Add, Some(x), Some(y)) = (op, a.items(), b.items()) {
                let mut out = Vec::with_capacity(x.len() + y.len());
                x.push_into(&mut out);
                y.push_into(&mut out);
                return Ok(Val::List(out));
            }
            let repeat = match (&a, &b) {
                (Val::Int(n), list) | (list, Val::Int(n)) if op == ArithOp::Mul => {
                    list.items().map(|items| (*n, items))
                }
                _ => None,
            };
            if let Some((n, items)) = repeat {
                let count = repeat_count(n, items.len())?;
                let mut out = Vec::with_capacity(count * items.len());
                for _ in 0..count {
                    items.push_into(&mut out);
                }
                return Ok(Val::List(out));
            }
            type_err(format!(
                "unsupported operand type(s) for {}: '{}' and '{}'",
                op.symbol(),
                a.type_name(),
                b.type_name()
            ))
        }
    }
}

fn repeat_count(n: i64, unit_len: usize) -> OpResult<usize> {
    let count = usize::try_from(n.max(0)).unwrap_or(usize::MAX);
    if unit_len > 0 && count.saturating_mul(unit_len) > MAX_REPEAT_LEN {
        return type_err(format!(
            "repetition result is too large (more than {MAX_REPEAT_LEN} elements)"
        ));
    }
    Ok(count)
}

fn num_arith<'v>(op: ArithOp, x: Num, y: Num) -> OpResult<Val<'v>> {
    if let (Num::I(a), Num::I(b)) = (x, y) {
        let result = match op {
            ArithOp::Add => a.checked_add(b),
            ArithOp::Sub => a.checked_sub(b),
            ArithOp::Mul => a.checked_mul(b),
            ArithOp::Div => {
                if b == 0 {
                    return Err(OpError::DivisionByZero);
                }
                return Ok(Val::Float(a as f64 / b as f64));
            }
            ArithOp::FloorDiv => {
                if b == 0 {
                    return Err(OpError::DivisionByZero);
                }
                a.checked_div(b).map(|q| {
                    if a % b != 0 && ((a < 0) != (b < 0)) {
                        q - 1
                    } else {
                        q
                    }
                })
            }
            ArithOp::Mod => {
                if b == 0 {
                    return Err(OpError::DivisionByZero);
                }
                // `checked_rem` only fails for i64::MIN % -1, which is 0.
                let r = a.checked_rem(b).unwrap_or(0);
                Some(if r != 0 && ((r < 0) != (b < 0)) {
                    r + b
                } else {
                    r
                })
            }
        };
        return result.map(Val::Int).ok_or_else(|| {
            OpError::Type(format!(
                "integer overflow: {a} {} {b} does not fit in a 64-bit integer",
                op.symbol()
            ))
        });
    }
    let (a, b) = (x.as_f64(), y.as_f64());
    let result = match op {
        ArithOp::Add => a + b,
        ArithOp::Sub => a - b,
        ArithOp::Mul => a * b,
        ArithOp::Div | ArithOp::FloorDiv | ArithOp::Mod if b == 0.0 => {
            return Err(OpError::DivisionByZero)
        }
        ArithOp::Div => a / b,
        ArithOp::FloorDiv => float_divmod(a, b).0,
        ArithOp::Mod => float_divmod(a, b).1,
    };
    Ok(Val::Float(result))
}

/// Python's float `divmod` (CPython `_float_div_mod`); `b` must be non-zero.
fn float_divmod(a: f64, b: f64) -> (f64, f64) {
    let mut m = a % b;
    let mut div = (a - m) / b;
    if m != 0.0 {
        if (b < 0.0) != (m < 0.0) {
            m += b;
            div -= 1.0;
        }
    } else {
        m = 0.0_f64.copysign(b);
    }
    let floordiv = if div != 0.0 {
        let f = div.floor();
        if div - f > 0.5 {
            f + 1.0
        } else {
            f
        }
    } else {
        0.0_f64.copysign(a / b)
    };
    (floordiv, m)
}
