//! A small, safe expression language for transition conditions, e.g.
//! `expr("count < 10 and not done")`.
//!
//! Expressions are parsed once (at application build time) into an AST and
//! then evaluated against the state on every step. There is no `eval`: the
//! language can only read state values, compute with them and compare them.
//! Evaluating a comparison of a state key with a literal does not allocate.
//!
//! # Syntax
//!
//! From lowest to highest precedence:
//!
//! ```text
//! expr       := or_expr
//! or_expr    := and_expr ("or" and_expr)*
//! and_expr   := not_expr ("and" not_expr)*
//! not_expr   := "not" not_expr | comparison
//! comparison := sum [comp_op sum]        -- at most one; `a < b < c` is rejected
//! comp_op    := "<" | "<=" | ">" | ">=" | "==" | "!=" | "in" | "not" "in"
//! sum        := term (("+" | "-") term)*
//! term       := factor (("*" | "/" | "//" | "%") factor)*
//! factor     := "-" factor | "+" factor | postfix
//! postfix    := atom ("." IDENT)*        -- field access into objects: user.address.city
//! atom       := INT | FLOAT | STRING | True | true | False | false | None | null
//!             | IDENT | "len" "(" expr ")" | "[" [expr ("," expr)* [","]] "]" | "(" expr ")"
//! ```
//!
//! * `IDENT` is `[A-Za-z_][A-Za-z0-9_]*` and names a state key. Keywords
//!   (`and or not in True False None true false null len`) are not
//!   identifiers, and identifiers starting with `__` are reserved.
//! * `INT` must fit in an `i64` (so `-9223372036854775808` cannot be written
//!   as a literal); leading zeros (`007`) are rejected as in Python. `FLOAT`
//!   accepts `1.5`, `2.`, `.5`, `1e3`, `1.5e-3`.
//! * Strings use `'...'` or `"..."` with the escapes `\\ \' \" \n \t \r`; any
//!   other escape is a syntax error.
//! * Whitespace is insignificant outside strings.
//!
//! Syntax errors ([`ExprSyntaxError`]) report the 0-based *character* offset
//! of the offending token (or of the end of input).
//!
//! # Semantics
//!
//! Python 3 semantics, on JSON-like values (`None`, bool, int (`i64`), float
//! (`f64`), str, list, dict). State numbers are read as `int` when they are
//! integers representable as `i64`, otherwise as `float` (so a JSON `2.0`
//! stays a float, and a `u64` above `i64::MAX` becomes a float).
//!
//! * **Truthiness**: `None`, `False`, `0`, `0.0`, `""`, `[]` and `{}` are
//!   falsy; everything else is truthy. `and` / `or` short-circuit and return
//!   one of their operands (`a or b` is `a` if `a` is truthy, else `b`);
//!   `not` returns a bool.
//! * **Arithmetic**: int op int gives int (overflow is an
//!   [`ExprEvalError::Type`] error); any float makes a float. `/` is true
//!   division (always float), `//` and `%` floor like Python (`-7 // 2 == -4`,
//!   `-7 % 3 == 2`, also for floats). Division or modulo by zero is
//!   [`ExprEvalError::DivisionByZero`]. `+` concatenates two strings or two
//!   lists; `*` repeats a string or list by an int (`[] * n` and `x * 0`
//!   are empty for any `n`; other results count against the [`Budget`]).
//!   Unary minus binds tighter than `*`: `-x % 3` is `(-x) % 3`.
//! * **Bools are not numbers** (a deliberate difference from Python):
//!   `True + 1`, `-True` and `True < 2` are type errors, and `True == 1` is
//!   false.
//! * **Equality** (`==`, `!=`) is structural across all types: `2 == 2.0`,
//!   `"3" != 3`, lists compare element-wise and objects as key -> value maps
//!   (nested numbers compared numerically). Values of different kinds are
//!   simply unequal, never an error.
//! * **Ordering** (`<`, `<=`, `>`, `>=`) is defined for number vs number,
//!   string vs string (by code point) and list vs list (lexicographic,
//!   recursively). Any other pairing is an [`ExprEvalError::Type`] naming both
//!   Python types (`NoneType`, `bool`, `int`, `float`, `str`, `list`, `dict`).
//! * **Membership**: `x in list` tests element equality; `x in str` is a
//!   substring test (`x` must be a string); `x in dict` tests for a key (`x`
//!   must be a string). Anything else is a type error. `not in` negates.
//! * **`len(x)`** counts the characters of a string (not bytes), the items of
//!   a list or the keys of an object; other types are a type error.
//! * **Names**: a missing state key is [`ExprEvalError::MissingKey`].
//!   `a.b.c` reads fields of JSON objects; a missing field is also
//!   `MissingKey`, whose `key` is the dotted path up to and including the
//!   missing field (e.g. `user.address` when `user` has no `address`).
//!   Accessing a field of a non-object is a type error.
//!
//! # Limits
//!
//! Nothing a condition does can hang or abort the process:
//!
//! * **Nesting**: an expression nested more than 100 levels deep (brackets,
//!   `not`, signs, operator chains) is a syntax error, so parsing and
//!   evaluation recurse at most that deep.
//! * **Deep values**: state values of any depth compare (`==`, `<`, `in`...)
//!   without recursion: a value nested 100,000 levels deep works on a 2 MiB
//!   stack.
//! * **Budget**: each evaluation gets a [`Budget`] of steps, list elements
//!   built and string bytes built (defaults: 10,000,000 steps, 1,000,000
//!   elements, 16 MiB), checked before anything is built. Running out is
//!   [`ExprEvalError::LimitExceeded`], naming the [`Limit`]. Set another with
//!   [`Expr::with_budget`].
//!
//! # Example
//!
//! ```
//! use burr_core::condition::expression::Expr;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let e = Expr::parse("count < 10 and not done")?;
//! assert_eq!(e.keys(), ["count", "done"]);
//! let state = serde_json::json!({"count": 3, "done": false});
//! assert!(e.evaluate(&|k| state.get(k))?);
//! # Ok(()) }
//! ```

use std::fmt;

pub use budget::{Budget, Limit};
pub(super) use value::drop_json;

mod budget;
mod eval;
mod lexer;
mod parser;
mod value;

/// A parsed expression.
///
/// Create it with [`Expr::parse`], then [`evaluate`](Expr::evaluate) it as
/// often as needed; parsing happens once.
#[derive(Clone, Debug)]
pub struct Expr {
    source: String,
    root: parser::Node,
    keys: Vec<String>,
    budget: Budget,
    /// The expression, when it is a state key compared with an integer literal.
    key_to_int: Option<KeyToInt>,
}

/// `key <op> literal` (or `literal <op> key` when `flipped`): the most common condition,
/// its key a shared string from the state's key cache (a state made on the same thread
/// holds the same one, found by pointer).
#[derive(Clone, Debug)]
struct KeyToInt {
    key: std::sync::Arc<str>,
    op: parser::CmpOp,
    literal: i64,
    flipped: bool,
}

impl KeyToInt {
    fn of(root: &parser::Node) -> Option<KeyToInt> {
        use parser::{Lit, Node};
        let Node::Cmp(op, left, right) = root else {
            return None;
        };
        let (key, literal, flipped) = match (&**left, &**right) {
            (Node::Key(key), Node::Lit(Lit::Int(n))) => (key, *n, false),
            (Node::Lit(Lit::Int(n)), Node::Key(key)) => (key, *n, true),
            _ => return None,
        };
        Some(KeyToInt {
            key: crate::state::key(key),
            op: *op,
            literal,
            flipped,
        })
    }
}

impl Expr {
    /// Parses `source`, reporting the first syntax error.
    pub fn parse(source: &str) -> Result<Expr, ExprSyntaxError> {
        let parsed = parser::parse(source)?;
        Ok(Expr {
            source: source.to_string(),
            key_to_int: KeyToInt::of(&parsed.root),
            root: parsed.root,
            keys: parsed.keys,
            budget: Budget::DEFAULT,
        })
    }

    /// The same expression, evaluated within `budget` instead of
    /// [`Budget::DEFAULT`].
    pub fn with_budget(mut self, budget: Budget) -> Expr {
        self.budget = budget;
        self
    }

    /// The budget of each evaluation.
    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// The expression text exactly as given to [`Expr::parse`].
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The state keys the expression names (for `a.b.c` the key is `a`),
    /// deduplicated, in order of first appearance.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    fn ctx<'c, 'a>(
        &'c self,
        lookup: &'c dyn Fn(&str) -> Option<&'a serde_json::Value>,
    ) -> eval::Ctx<'c, 'a> {
        eval::Ctx {
            lookup,
            source: &self.source,
            budget: &self.budget,
            meter: budget::Meter::new(&self.budget),
        }
    }

    /// Evaluates the expression and returns the Python truthiness of the
    /// result. `lookup` maps a state key to its value (or `None` if absent).
    ///
    /// Evaluation stays within the expression's [`budget`](Expr::budget).
    pub fn evaluate<'a>(
        &self,
        lookup: &dyn Fn(&str) -> Option<&'a serde_json::Value>,
    ) -> Result<bool, ExprEvalError> {
        if let Some(holds) = self.compare_key_to_int(lookup) {
            return Ok(holds);
        }
        let ctx = self.ctx(lookup);
        match eval::eval(&self.root, &ctx) {
            Ok(v) => Ok(v.truthy()),
            Err(e) => Err(*e),
        }
    }

    /// The most common condition, a state key compared with an integer literal
    /// (`count < 10`), when the key holds an integer: what the evaluator computes (one
    /// step of the budget), without setting it up. `None`: evaluate in full.
    #[inline]
    pub(crate) fn compare_key_to_int<'a>(
        &self,
        lookup: &dyn Fn(&str) -> Option<&'a serde_json::Value>,
    ) -> Option<bool> {
        use parser::CmpOp;
        let KeyToInt {
            key,
            op,
            literal,
            flipped,
        } = self.key_to_int.as_ref()?;
        if self.budget.max_steps == 0 {
            return None;
        }
        let value = lookup(key)?.as_i64()?;
        let (a, b) = if *flipped {
            (*literal, value)
        } else {
            (value, *literal)
        };
        Some(match op {
            CmpOp::Lt => a < b,
            CmpOp::Le => a <= b,
            CmpOp::Gt => a > b,
            CmpOp::Ge => a >= b,
            CmpOp::Eq => a == b,
            CmpOp::Ne => a != b,
            CmpOp::In | CmpOp::NotIn => return None,
        })
    }

    /// Evaluates the expression to a JSON value (for tests and debugging).
    /// Non-finite float results (`inf`, `nan`) become `null`.
    ///
    /// Copying state values into the result counts against the budget too.
    /// The result may be as deep as a state value it contains; note that
    /// dropping a `serde_json::Value` recurses once per level.
    pub fn evaluate_value<'a>(
        &self,
        lookup: &dyn Fn(&str) -> Option<&'a serde_json::Value>,
    ) -> Result<serde_json::Value, ExprEvalError> {
        let ctx = self.ctx(lookup);
        match eval::eval(&self.root, &ctx) {
            Ok(v) => v.to_json(&ctx.meter).map_err(|e| *ctx.op_error(e)),
            Err(e) => Err(*e),
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// An expression could not be parsed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid expression `{expression}`: {message} at position {position}")]
pub struct ExprSyntaxError {
    /// The full expression text.
    pub expression: String,
    /// 0-based character (not byte) offset of the offending token, or the
    /// length of the expression for errors at the end of input.
    pub position: usize,
    /// What is wrong, e.g. "expected `)`" or "unterminated string".
    pub message: String,
}

/// An expression could not be evaluated against the given state.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ExprEvalError {
    /// A state key (or a dotted path such as `user.name`) is not present.
    #[error("state key `{key}` not found")]
    MissingKey {
        /// The missing key, or the dotted path up to the missing field.
        key: String,
    },
    /// An operation was applied to values of unsupported types (or an
    /// integer overflowed).
    #[error("cannot evaluate `{expression}`: {message}")]
    Type {
        /// The full expression text.
        expression: String,
        /// What went wrong, e.g. "'<' not supported between instances of
        /// 'str' and 'int'".
        message: String,
    },
    /// Division or modulo by zero.
    #[error("cannot evaluate `{expression}`: division by zero")]
    DivisionByZero {
        /// The full expression text.
        expression: String,
    },
    /// Evaluation ran out of its [`Budget`].
    #[error(
        "cannot evaluate `{expression}`: evaluation budget exceeded: more than {max} {} \
         (limit `{limit}`)",
        limit.counts()
    )]
    LimitExceeded {
        /// The full expression text.
        expression: String,
        /// Which limit was exceeded.
        limit: Limit,
        /// Its maximum in the budget.
        max: u64,
    },
}

#[cfg(test)]
mod tests;
