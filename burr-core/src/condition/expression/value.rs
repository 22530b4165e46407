//! Runtime values and the Python-style operations on them.
//!
//! [`Val`] borrows from the state (`&'v serde_json::Value`) and from the
//! parsed expression's literals wherever possible, so that common conditions
//! such as `count < 10000` or `status == "done"` evaluate without allocating.
//!
//! Nothing here recurses on the depth of a value: equality, ordering,
//! membership and the conversion back to JSON walk values with an explicit
//! stack, so a state value nested 100,000 levels deep compares on a small
//! stack. Every operation charges the evaluation's [`Meter`].

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::budget::{Limit, Meter};
use super::parser::{ArithOp, Lit};

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
    Limit(Limit),
}

impl From<Limit> for OpError {
    #[cold]
    fn from(limit: Limit) -> Self {
        OpError::Limit(limit)
    }
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

    fn of_json(n: &serde_json::Number) -> Num {
        match n.as_i64() {
            Some(i) => Num::I(i),
            None => Num::F(n.as_f64().unwrap_or(f64::NAN)),
        }
    }
}

/// A reference to a value that is either a runtime value or a JSON value
/// (an item of a state list, a field of a state object...).
#[derive(Clone, Copy)]
enum Ref<'x> {
    Val(&'x Val<'x>),
    Json(&'x Value),
}

/// Borrowed view of a list's items, whichever representation it has.
#[derive(Clone, Copy)]
enum Items<'x> {
    Json(&'x [Value]),
    Vals(&'x [Val<'x>]),
}

impl<'x> Items<'x> {
    fn len(self) -> usize {
        match self {
            Items::Json(j) => j.len(),
            Items::Vals(v) => v.len(),
        }
    }

    /// Item `i` (`i < len`).
    fn get(self, i: usize) -> Option<Ref<'x>> {
        match self {
            Items::Json(j) => j.get(i).map(Ref::Json),
            Items::Vals(v) => v.get(i).map(Ref::Val),
        }
    }
}

/// A list operand of `+` or `*`: its items are copied into a new list that
/// outlives the operand (JSON items borrow from the state, `'v`).
#[derive(Clone, Copy)]
enum ListRef<'x, 'v> {
    Json(&'v [Value]),
    Vals(&'x [Val<'v>]),
}

impl<'x, 'v: 'x> ListRef<'x, 'v> {
    fn len(self) -> usize {
        match self {
            ListRef::Json(j) => j.len(),
            ListRef::Vals(v) => v.len(),
        }
    }

    /// What copying the items costs: list items (nested lists built during the
    /// evaluation are copied whole, so their items count too) and bytes of strings
    /// built during the evaluation. Items borrowed from the state cost one each.
    fn copy_cost(self) -> (u64, u64) {
        match self {
            ListRef::Json(j) => (j.len() as u64, 0),
            ListRef::Vals(v) => v.iter().fold((0, 0), |(elements, bytes), item| {
                let (e, b) = owned_cost(item);
                (elements.saturating_add(e), bytes.saturating_add(b))
            }),
        }
    }

    fn push_into(self, out: &mut Vec<Val<'v>>) {
        match self {
            ListRef::Json(j) => out.extend(j.iter().map(Val::from_json)),
            ListRef::Vals(v) => out.extend(v.iter().cloned()),
        }
    }
}

/// What copying `val` costs (see [`ListRef::copy_cost`]): itself, plus the items and
/// string bytes it owns, without recursion.
fn owned_cost(val: &Val<'_>) -> (u64, u64) {
    let (mut elements, mut bytes) = (0u64, 0u64);
    let mut stack = vec![val];
    while let Some(v) = stack.pop() {
        elements = elements.saturating_add(1);
        match v {
            Val::Str(Cow::Owned(s)) => bytes = bytes.saturating_add(s.len() as u64),
            Val::List(items) => stack.extend(items.iter()),
            _ => {}
        }
    }
    (elements, bytes)
}

/// What a [`Ref`] is, one level deep.
enum Shape<'x> {
    Null,
    Bool(bool),
    Num(Num),
    Str(&'x str),
    List(Items<'x>),
    Obj(&'x Map<String, Value>),
}

impl<'x> Ref<'x> {
    fn shape(self) -> Shape<'x> {
        match self {
            Ref::Val(v) => match v {
                Val::Null => Shape::Null,
                Val::Bool(b) => Shape::Bool(*b),
                Val::Int(i) => Shape::Num(Num::I(*i)),
                Val::Float(f) => Shape::Num(Num::F(*f)),
                Val::Str(s) => Shape::Str(s),
                Val::JList(l) => Shape::List(Items::Json(l)),
                Val::List(l) => Shape::List(Items::Vals(l)),
                Val::Obj(o) => Shape::Obj(o),
            },
            Ref::Json(j) => match j {
                Value::Null => Shape::Null,
                Value::Bool(b) => Shape::Bool(*b),
                Value::Number(n) => Shape::Num(Num::of_json(n)),
                Value::String(s) => Shape::Str(s),
                Value::Array(a) => Shape::List(Items::Json(a)),
                Value::Object(o) => Shape::Obj(o),
            },
        }
    }

    /// The same JSON value (JSON values are always equal to themselves:
    /// they hold no NaN).
    fn same_json(self, other: Ref<'_>) -> bool {
        matches!((self, other), (Ref::Json(a), Ref::Json(b)) if std::ptr::eq(a, b))
    }
}

impl Shape<'_> {
    fn type_name(&self) -> &'static str {
        match self {
            Shape::Null => "NoneType",
            Shape::Bool(_) => "bool",
            Shape::Num(Num::I(_)) => "int",
            Shape::Num(Num::F(_)) => "float",
            Shape::Str(_) => "str",
            Shape::List(_) => "list",
            Shape::Obj(_) => "dict",
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
            Value::Number(n) => match Num::of_json(n) {
                Num::I(i) => Val::Int(i),
                Num::F(f) => Val::Float(f),
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
    /// (JSON cannot represent them). Copies of state values are charged to
    /// `meter` (one step and one element per list item or object entry,
    /// string bytes as bytes) and made without recursion.
    pub(super) fn to_json(&self, meter: &Meter) -> OpResult<Value> {
        Ok(match self {
            Val::Null => Value::Null,
            Val::Bool(b) => Value::Bool(*b),
            Val::Int(i) => Value::from(*i),
            Val::Float(f) => Value::from(*f),
            Val::Str(s) => {
                meter.bytes(s.len() as u64)?;
                Value::String(s.to_string())
            }
            Val::JList(l) => {
                meter.elements(l.len() as u64)?;
                meter.steps(l.len() as u64)?;
                let mut out = Vec::with_capacity(l.len());
                for item in l.iter() {
                    match clone_json(item, meter) {
                        Ok(v) => out.push(v),
                        Err(e) => {
                            drop_json(Value::Array(out));
                            return Err(e);
                        }
                    }
                }
                Value::Array(out)
            }
            // Built lists nest no deeper than the expression (the parser
            // bounds it), so this recursion is bounded.
            Val::List(l) => {
                let mut out = Vec::with_capacity(l.len());
                for item in l {
                    match item.to_json(meter) {
                        Ok(v) => out.push(v),
                        Err(e) => {
                            drop_json(Value::Array(out));
                            return Err(e);
                        }
                    }
                }
                Value::Array(out)
            }
            Val::Obj(o) => {
                meter.elements(o.len() as u64)?;
                meter.steps(o.len() as u64)?;
                let mut map = Map::new();
                for (k, v) in o.iter() {
                    let copied = meter.bytes(k.len() as u64).map_err(OpError::from);
                    match copied.and_then(|()| clone_json(v, meter)) {
                        Ok(v) => {
                            map.insert(k.clone(), v);
                        }
                        Err(e) => {
                            drop_json(Value::Object(map));
                            return Err(e);
                        }
                    }
                }
                Value::Object(map)
            }
        })
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

    fn items(&self) -> Option<ListRef<'_, 'v>> {
        match self {
            Val::JList(l) => Some(ListRef::Json(l)),
            Val::List(l) => Some(ListRef::Vals(l)),
            _ => None,
        }
    }

    /// `len(x)`: chars of a string, items of a list, keys of an object.
    pub(super) fn len(&self, meter: &Meter) -> OpResult<Val<'v>> {
        let n = match self {
            Val::Str(s) => {
                meter.scan(s.len())?;
                s.chars().count()
            }
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

/// A deep copy of a JSON value, made without recursion and charged to
/// `meter`. On failure, whatever was copied is dropped without recursion.
fn clone_json(root: &Value, meter: &Meter) -> OpResult<Value> {
    enum Frame<'x> {
        List(std::slice::Iter<'x, Value>, Vec<Value>),
        Obj(serde_json::map::Iter<'x>, Map<String, Value>, String),
    }
    let mut stack: Vec<Frame<'_>> = Vec::new();
    let mut cur = root;
    let result = (|| -> OpResult<Value> {
        loop {
            let mut done = match cur {
                Value::Array(a) if !a.is_empty() => {
                    meter.elements(a.len() as u64)?;
                    stack.push(Frame::List(a.iter(), Vec::with_capacity(a.len())));
                    None
                }
                Value::Object(o) if !o.is_empty() => {
                    meter.elements(o.len() as u64)?;
                    stack.push(Frame::Obj(o.iter(), Map::new(), String::new()));
                    None
                }
                Value::String(s) => {
                    meter.bytes(s.len() as u64)?;
                    Some(Value::String(s.clone()))
                }
                // Scalars and empty containers.
                other => Some(other.clone()),
            };
            // Attach finished values to their parents until one has a next
            // child to copy.
            loop {
                meter.step()?;
                let Some(top) = stack.last_mut() else {
                    return Ok(done.unwrap_or(Value::Null));
                };
                match top {
                    Frame::List(items, out) => {
                        if let Some(v) = done.take() {
                            out.push(v);
                        }
                        if let Some(next) = items.next() {
                            cur = next;
                            break;
                        }
                    }
                    Frame::Obj(entries, out, key) => {
                        if let Some(v) = done.take() {
                            out.insert(std::mem::take(key), v);
                        }
                        if let Some((k, next)) = entries.next() {
                            meter.bytes(k.len() as u64)?;
                            k.clone_into(key);
                            cur = next;
                            break;
                        }
                    }
                }
                done = match stack.pop() {
                    Some(Frame::List(_, out)) => Some(Value::Array(out)),
                    Some(Frame::Obj(_, out, _)) => Some(Value::Object(out)),
                    None => None,
                };
            }
        }
    })();
    for frame in stack {
        match frame {
            Frame::List(_, out) => drop_json(Value::Array(out)),
            Frame::Obj(_, out, _) => drop_json(Value::Object(out)),
        }
    }
    result
}

/// Drops a JSON value of any depth without recursion (serde_json's own drop
/// recurses once per level).
pub(in crate::condition) fn drop_json(value: Value) {
    let mut stack = vec![value];
    while let Some(mut v) = stack.pop() {
        match &mut v {
            Value::Array(items) => stack.append(items),
            Value::Object(map) => stack.extend(std::mem::take(map).into_iter().map(|(_, v)| v)),
            _ => {}
        }
    }
}

/// Equality of two scalars, or `None` if either is a list or an object.
#[inline]
fn scalar_equal(a: &Shape<'_>, b: &Shape<'_>, meter: &Meter) -> OpResult<Option<bool>> {
    Ok(Some(match (a, b) {
        (Shape::List(_) | Shape::Obj(_), _) | (_, Shape::List(_) | Shape::Obj(_)) => {
            return Ok(None)
        }
        (Shape::Null, Shape::Null) => true,
        (Shape::Bool(x), Shape::Bool(y)) => x == y,
        (Shape::Str(x), Shape::Str(y)) => {
            if x.len() == y.len() {
                meter.scan(x.len())?;
            }
            x == y
        }
        (Shape::Num(x), Shape::Num(y)) => num_cmp(*x, *y) == Some(Ordering::Equal),
        _ => false,
    }))
}

/// Structural equality: numbers compare by value across int/float, lists
/// element-wise, objects as key -> value maps. Values of different kinds are
/// never equal; in particular `true != 1`. Walks with an explicit stack.
pub(super) fn equal(a: &Val<'_>, b: &Val<'_>, meter: &Meter) -> OpResult<bool> {
    equal_ref(Ref::Val(a), Ref::Val(b), meter)
}

fn equal_ref(a: Ref<'_>, b: Ref<'_>, meter: &Meter) -> OpResult<bool> {
    enum Frame<'x> {
        List(Items<'x>, Items<'x>, usize),
        Obj(serde_json::map::Iter<'x>, &'x Map<String, Value>),
    }
    let mut stack: Vec<Frame<'_>> = Vec::new();
    let (mut a, mut b) = (a, b);
    loop {
        meter.step()?;
        if !a.same_json(b) {
            let (x, y) = (a.shape(), b.shape());
            match scalar_equal(&x, &y, meter)? {
                Some(true) => {}
                Some(false) => return Ok(false),
                None => match (x, y) {
                    (Shape::List(x), Shape::List(y)) => {
                        if x.len() != y.len() {
                            return Ok(false);
                        }
                        stack.push(Frame::List(x, y, 0));
                    }
                    (Shape::Obj(x), Shape::Obj(y)) => {
                        if x.len() != y.len() {
                            return Ok(false);
                        }
                        if !std::ptr::eq(x, y) {
                            stack.push(Frame::Obj(x.iter(), y));
                        }
                    }
                    _ => return Ok(false),
                },
            }
        }
        // The next pair to compare.
        loop {
            match stack.last_mut() {
                None => return Ok(true),
                Some(Frame::List(x, y, i)) => {
                    if let (Some(p), Some(q)) = (x.get(*i), y.get(*i)) {
                        *i += 1;
                        (a, b) = (p, q);
                        break;
                    }
                }
                Some(Frame::Obj(entries, y)) => {
                    if let Some((k, xv)) = entries.next() {
                        let Some(yv) = y.get(k) else {
                            return Ok(false);
                        };
                        (a, b) = (Ref::Json(xv), Ref::Json(yv));
                        break;
                    }
                }
            }
            stack.pop();
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

fn str_cmp(x: &str, y: &str, meter: &Meter) -> OpResult<Ordering> {
    meter.scan(x.len().min(y.len()))?;
    Ok(x.cmp(y))
}

fn unordered<T>(op: &str, a: &Shape<'_>, b: &Shape<'_>) -> OpResult<T> {
    type_err(format!(
        "'{op}' not supported between instances of '{}' and '{}'",
        a.type_name(),
        b.type_name()
    ))
}

/// Ordering for `<`, `<=`, `>`, `>=`. `Ok(None)` means unordered (NaN): every
/// ordering comparison is then false. Mismatched types are a type error.
pub(super) fn compare(
    a: &Val<'_>,
    b: &Val<'_>,
    op: &str,
    meter: &Meter,
) -> OpResult<Option<Ordering>> {
    match (Ref::Val(a).shape(), Ref::Val(b).shape()) {
        (Shape::Num(x), Shape::Num(y)) => Ok(num_cmp(x, y)),
        (Shape::Str(x), Shape::Str(y)) => str_cmp(x, y, meter).map(Some),
        (Shape::List(x), Shape::List(y)) => compare_lists(x, y, op, meter),
        (x, y) => unordered(op, &x, &y),
    }
}

/// Python's lexicographic list ordering: the first pair of items that are
/// not equal decides (by ordering them); else the shorter list is smaller.
/// Nested lists are walked with an explicit stack.
fn compare_lists(
    x: Items<'_>,
    y: Items<'_>,
    op: &str,
    meter: &Meter,
) -> OpResult<Option<Ordering>> {
    let mut stack = vec![(x, y, 0usize)];
    while let Some((x, y, i)) = stack.last_mut() {
        meter.step()?;
        let (Some(a), Some(b)) = (x.get(*i), y.get(*i)) else {
            let ord = x.len().cmp(&y.len());
            stack.pop();
            if ord != Ordering::Equal || stack.is_empty() {
                return Ok(Some(ord));
            }
            continue;
        };
        *i += 1;
        if a.same_json(b) {
            continue;
        }
        match (a.shape(), b.shape()) {
            (Shape::Num(p), Shape::Num(q)) => match num_cmp(p, q) {
                Some(Ordering::Equal) => {}
                other => return Ok(other),
            },
            (Shape::Str(p), Shape::Str(q)) => match str_cmp(p, q, meter)? {
                Ordering::Equal => {}
                other => return Ok(Some(other)),
            },
            (Shape::List(p), Shape::List(q)) => stack.push((p, q, 0)),
            // Equal items of other kinds (`None`, bools, dicts) are skipped;
            // unequal ones do not order.
            (p, q) => {
                if !equal_ref(a, b, meter)? {
                    return unordered(op, &p, &q);
                }
            }
        }
    }
    Ok(Some(Ordering::Equal))
}

/// `needle in haystack`.
pub(super) fn contains(needle: &Val<'_>, haystack: &Val<'_>, meter: &Meter) -> OpResult<bool> {
    match haystack {
        Val::Str(h) => match needle {
            Val::Str(n) => {
                meter.scan(h.len() + n.len())?;
                Ok(h.contains(n.as_ref()))
            }
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
        Val::JList(l) => {
            for item in l.iter() {
                if equal_ref(Ref::Val(needle), Ref::Json(item), meter)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Val::List(l) => {
            for item in l {
                if equal(needle, item, meter)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        other => type_err(format!(
            "argument of type '{}' is not iterable",
            other.type_name()
        )),
    }
}

/// Binary arithmetic with Python semantics (floor `//` and `%`, true `/`,
/// checked integer overflow, string / list concatenation and repetition).
/// Strings and lists built are charged to `meter` before they are allocated.
pub(super) fn arith<'v>(op: ArithOp, a: Val<'v>, b: Val<'v>, meter: &Meter) -> OpResult<Val<'v>> {
    if let (Some(x), Some(y)) = (a.num(), b.num()) {
        return num_arith(op, x, y);
    }
    match (op, a, b) {
        (ArithOp::Add, Val::Str(x), Val::Str(y)) => {
            meter.bytes(x.len() as u64 + y.len() as u64)?;
            let mut s = String::with_capacity(x.len() + y.len());
            s.push_str(&x);
            s.push_str(&y);
            Ok(Val::Str(Cow::Owned(s)))
        }
        (ArithOp::Mul, Val::Str(s), Val::Int(n)) | (ArithOp::Mul, Val::Int(n), Val::Str(s)) => {
            let Some(count) = repeat_count(n, s.len(), |total| meter.bytes(total))? else {
                return Ok(Val::Str(Cow::Borrowed("")));
            };
            Ok(Val::Str(Cow::Owned(s.repeat(count))))
        }
        (op, a, b) => {
            if let (ArithOp::Add, Some(x), Some(y)) = (op, a.items(), b.items()) {
                let ((xe, xb), (ye, yb)) = (x.copy_cost(), y.copy_cost());
                meter.elements(xe.saturating_add(ye))?;
                meter.bytes(xb.saturating_add(yb))?;
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
                // Each copy copies the nested lists and built strings too: charge them.
                let (elements, bytes) = items.copy_cost();
                let unit = usize::try_from(elements).unwrap_or(usize::MAX);
                let Some(count) = repeat_count(n, unit, |total| meter.elements(total))? else {
                    return Ok(Val::List(Vec::new()));
                };
                meter.bytes(bytes.saturating_mul(count as u64))?;
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

/// The repetition count of `unit * n`, after charging the result's size:
/// `None` when the result is empty (an empty unit or `n <= 0`, whatever the
/// size of `n`: nothing is built, nothing is charged).
fn repeat_count(
    n: i64,
    unit_len: usize,
    charge: impl FnOnce(u64) -> Result<(), Limit>,
) -> OpResult<Option<usize>> {
    if n <= 0 || unit_len == 0 {
        return Ok(None);
    }
    // `n` is positive; a product beyond `u64` is beyond any budget too.
    let total = (n as u64).saturating_mul(unit_len as u64);
    charge(total)?;
    // Within the budget, so the count fits in memory (and in `usize`).
    Ok(Some(
        usize::try_from(n).map_err(|_| OpError::Limit(Limit::Elements))?,
    ))
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
