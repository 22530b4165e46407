//! Conditions: when a transition is taken.
//!
//! - [`default()`]: always true;
//! - [`when`]: every named key equals a value, or compares to it with one of Burr's
//!   suffixes (`count__gt`, `__gte`, `__lt`, `__lte`, `__ne`, `__in`, `__notin`,
//!   `__contains`);
//! - [`expr()`]: a small, safe expression language (`count < 10 and not done`), parsed once
//!   when the application is built;
//! - [`Condition::custom`]: a closure over the state, with the keys it needs declared;
//! - combined with `!`, `&` and `|` (or [`Condition::not`], [`Condition::and`],
//!   [`Condition::or`]).
//!
//! As in Burr, every key a condition names must be in the state when it is evaluated, even
//! a key in a branch of `|` that is not reached; a missing key is an error naming it.
//! Every condition has a readable name (`count < 10`, `~done=true`) shown in graphs and by
//! the tracker.

mod error;
pub mod expression;
mod when;

use std::fmt;
use std::ops;
use std::sync::Arc;

use serde_json::Value;

use crate::actions::ErrorKind;
use crate::state::State;

pub use error::ConditionError;
use expression::{Expr, ExprSyntaxError};
pub use when::Comparison;

type CustomFn = dyn Fn(&State) -> Result<bool, crate::actions::ActionError> + Send + Sync;

#[derive(Clone)]
enum Kind {
    Default,
    When(Arc<[when::Clause]>),
    Expr(Arc<Expr>),
    Invalid(Arc<ExprSyntaxError>),
    Custom(Arc<CustomFn>),
    Not(Box<Condition>),
    And(Box<Condition>, Box<Condition>),
    Or(Box<Condition>, Box<Condition>),
    /// Taken only after the source action failed for good (of this kind, if given).
    OnError(Option<ErrorKind>),
}

/// A condition on the state, attached to a transition.
#[derive(Clone)]
pub struct Condition {
    name: Arc<str>,
    keys: Arc<[String]>,
    kind: Kind,
}

/// The condition that always holds (Burr's `default`). A `default` declared before other
/// transitions out of the same action wins over them.
pub fn default() -> Condition {
    Condition {
        name: Arc::from("default"),
        keys: Arc::from(Vec::new()),
        kind: Kind::Default,
    }
}

/// A condition that holds when every key compares true to its value.
///
/// A key may end in one of Burr's suffixes: `__gt`, `__gte`, `__lt`, `__lte`, `__ne`,
/// `__in`, `__notin`, `__contains`; without one it means equality.
///
/// ```
/// use burr_core::{when, State};
/// use serde_json::json;
///
/// let c = when([("done", json!(true)), ("count__gte", json!(3))]);
/// assert_eq!(c.name(), "done=true, count__gte=3");
/// assert!(c.evaluate(&State::new().update("done", true).update("count", 5)).unwrap());
/// ```
pub fn when<I, K>(clauses: I) -> Condition
where
    I: IntoIterator<Item = (K, Value)>,
    K: AsRef<str>,
{
    let clauses: Vec<when::Clause> = clauses
        .into_iter()
        .map(|(k, v)| when::Clause::parse(k.as_ref(), v))
        .collect();
    let name = clauses
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let mut keys: Vec<String> = Vec::new();
    for clause in &clauses {
        if !keys.contains(&clause.key) {
            keys.push(clause.key.clone());
        }
    }
    Condition {
        name: Arc::from(name),
        keys: Arc::from(keys),
        kind: Kind::When(Arc::from(clauses)),
    }
}

/// A condition written in the expression language, e.g. `count < 10 and not done`.
///
/// It is parsed here, once; a syntax error is reported (with its position) when the
/// application is built. See [the expression module](mod@expression) for the language.
///
/// ```
/// use burr_core::{expr, State};
/// let c = expr("count % 2 == 0 and name in ['a', 'b']");
/// assert!(c.evaluate(&State::new().update("count", 4).update("name", "a")).unwrap());
/// ```
pub fn expr(source: &str) -> Condition {
    match Expr::parse(source) {
        Ok(parsed) => Condition {
            name: Arc::from(source),
            keys: Arc::from(parsed.keys().to_vec()),
            kind: Kind::Expr(Arc::new(parsed)),
        },
        Err(error) => Condition {
            name: Arc::from(source),
            keys: Arc::from(Vec::new()),
            kind: Kind::Invalid(Arc::new(error)),
        },
    }
}

/// The condition of an **error transition**: taken only when the source action failed for
/// good — after its retries, if it has a [`RetryPolicy`](crate::actions::RetryPolicy) — never
/// after it succeeded. The failed step's writes are not applied; the handler it leads to
/// reads the failure with
/// [`ApplicationContext::failure`](crate::ApplicationContext::failure). Without an error
/// transition, a failure ends the run as an error.
///
/// ```
/// use burr_core::condition::on_error;
/// let transition = ("embed", "report_failure", on_error());
/// # let _ = transition;
/// ```
pub fn on_error() -> Condition {
    Condition {
        name: Arc::from("on_error"),
        keys: Arc::from(Vec::new()),
        kind: Kind::OnError(None),
    }
}

/// An error transition taken only when the source action failed for good with an error of
/// `kind` (e.g. [`ErrorKind::Timeout`]); see [`on_error`].
pub fn on_error_kind(kind: ErrorKind) -> Condition {
    Condition {
        name: Arc::from(format!("on_error({kind})")),
        keys: Arc::from(Vec::new()),
        kind: Kind::OnError(Some(kind)),
    }
}

impl Condition {
    /// Whether this is an error transition's condition, and for which kind (`Some(None)`:
    /// any kind).
    pub fn on_error_of(&self) -> Option<Option<ErrorKind>> {
        match self.kind {
            Kind::OnError(kind) => Some(kind),
            _ => None,
        }
    }

    /// A condition from a closure over the state. `keys` are the state keys it needs: each
    /// must be present when it is evaluated.
    ///
    /// ```
    /// use burr_core::State;
    /// use burr_core::condition::Condition;
    /// let long = Condition::custom("long_text", ["text"], |s: &State| {
    ///     Ok(s.get::<String>("text")?.len() > 10)
    /// });
    /// assert!(!long.evaluate(&State::new().update("text", "short")).unwrap());
    /// ```
    pub fn custom<I, K, F>(name: impl Into<String>, keys: I, f: F) -> Condition
    where
        I: IntoIterator<Item = K>,
        K: Into<String>,
        F: Fn(&State) -> Result<bool, crate::actions::ActionError> + Send + Sync + 'static,
    {
        Condition {
            name: Arc::from(name.into()),
            keys: keys.into_iter().map(Into::into).collect(),
            kind: Kind::Custom(Arc::new(f)),
        }
    }

    /// The readable name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every state key the condition (the whole tree) needs.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    /// Whether this is [`default()`].
    pub fn is_default(&self) -> bool {
        matches!(self.kind, Kind::Default)
    }

    /// The syntax error of an [`expr()`] that did not parse, if any (also in a sub-condition).
    pub fn syntax_error(&self) -> Option<&ExprSyntaxError> {
        match &self.kind {
            Kind::Invalid(e) => Some(e),
            Kind::Not(c) => c.syntax_error(),
            Kind::And(a, b) | Kind::Or(a, b) => a.syntax_error().or_else(|| b.syntax_error()),
            _ => None,
        }
    }

    /// Negation: holds when `self` does not. Named `~name`.
    #[allow(clippy::should_implement_trait)]
    pub fn not(self) -> Condition {
        Condition {
            name: Arc::from(format!("~{}", self.name)),
            keys: Arc::clone(&self.keys),
            kind: Kind::Not(Box::new(self)),
        }
    }

    /// Conjunction (evaluated left to right). Named `a & b`.
    pub fn and(self, other: Condition) -> Condition {
        Self::pair(self, other, " & ", Kind::And)
    }

    /// Disjunction (evaluated left to right). Named `a | b`.
    pub fn or(self, other: Condition) -> Condition {
        Self::pair(self, other, " | ", Kind::Or)
    }

    fn pair(
        a: Condition,
        b: Condition,
        op: &str,
        make: fn(Box<Condition>, Box<Condition>) -> Kind,
    ) -> Condition {
        let mut keys = a.keys.to_vec();
        for key in b.keys.iter() {
            if !keys.contains(key) {
                keys.push(key.clone());
            }
        }
        Condition {
            name: Arc::from(format!("{}{op}{}", a.name, b.name)),
            keys: Arc::from(keys),
            kind: make(Box::new(a), Box::new(b)),
        }
    }

    /// Evaluate on `state`: first check that every key the condition names is present,
    /// then evaluate.
    pub fn evaluate(&self, state: &State) -> Result<bool, ConditionError> {
        // `key < 10` on an integer: its one key is there, and that is the whole evaluation.
        if let Kind::Expr(e) = &self.kind {
            if let Some(holds) = e.compare_key_to_int(&|key| state.get_value(key)) {
                return Ok(holds);
            }
        }
        if !self.keys.iter().all(|k| state.contains(k)) {
            let missing: Vec<String> = self
                .keys
                .iter()
                .filter(|k| !state.contains(k))
                .cloned()
                .collect();
            return Err(ConditionError::MissingKeys {
                condition: self.name.to_string(),
                keys: missing,
            });
        }
        self.eval(state)
    }

    fn eval(&self, state: &State) -> Result<bool, ConditionError> {
        match &self.kind {
            Kind::OnError(_) => Ok(false),
            Kind::Default => Ok(true),
            Kind::When(clauses) => {
                for clause in clauses.iter() {
                    if !clause
                        .holds(state)
                        .map_err(|message| ConditionError::Type {
                            condition: self.name.to_string(),
                            message,
                        })?
                    {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Kind::Expr(e) => {
                e.evaluate(&|key| state.get_value(key))
                    .map_err(|source| ConditionError::Eval {
                        condition: self.name.to_string(),
                        source,
                    })
            }
            Kind::Invalid(error) => Err(ConditionError::Syntax(Arc::clone(error))),
            Kind::Custom(f) => f(state).map_err(|source| ConditionError::Custom {
                condition: self.name.to_string(),
                source: source.into_inner(),
            }),
            Kind::Not(c) => Ok(!c.eval(state)?),
            Kind::And(a, b) => Ok(a.eval(state)? && b.eval(state)?),
            Kind::Or(a, b) => Ok(a.eval(state)? || b.eval(state)?),
        }
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Condition({})", self.name)
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl ops::Not for Condition {
    type Output = Condition;
    fn not(self) -> Condition {
        Condition::not(self)
    }
}

impl ops::BitAnd for Condition {
    type Output = Condition;
    fn bitand(self, other: Condition) -> Condition {
        self.and(other)
    }
}

impl ops::BitOr for Condition {
    type Output = Condition;
    fn bitor(self, other: Condition) -> Condition {
        self.or(other)
    }
}

#[cfg(test)]
mod tests;
