//! Resource limits for one evaluation: [`Budget`] (public) and the per-run
//! [`Meter`] that counts down from it.

use std::cell::Cell;
use std::fmt;

/// Resource limits for evaluating an expression once.
///
/// Every evaluation starts from the full budget; when any count runs out,
/// evaluation stops with [`ExprEvalError::LimitExceeded`](super::ExprEvalError::LimitExceeded)
/// naming the [`Limit`]. So a condition can neither hang nor exhaust memory,
/// whatever the expression and the state.
///
/// * **steps**: one per operator node evaluated, one per pair of values
///   visited by `==`, `!=`, `<`, `<=`, `>`, `>=` and `in` (also inside lists
///   and objects), one per list item / object entry copied out by
///   [`Expr::evaluate_value`](super::Expr::evaluate_value), plus one per 64
///   bytes of string compared, searched or counted.
/// * **elements**: list items built (list literals, `+`, `*`), counted over
///   the whole evaluation, plus the list items and object entries copied by
///   [`Expr::evaluate_value`](super::Expr::evaluate_value).
/// * **bytes**: bytes of strings built (`+`, `*`), counted over the whole
///   evaluation, plus string bytes copied by `evaluate_value`.
///
/// Values read from the state are borrowed, never counted as built: `x == y`
/// on two large state lists only costs steps.
///
/// ```
/// use burr_core::condition::expression::{Budget, Expr, ExprEvalError, Limit};
///
/// let e = Expr::parse("len([0] * n) > 0")
///     .unwrap()
///     .with_budget(Budget::default().with_max_elements(1_000));
/// let state = serde_json::json!({"n": 5_000});
/// match e.evaluate(&|k| state.get(k)) {
///     Err(ExprEvalError::LimitExceeded { limit: Limit::Elements, max: 1_000, .. }) => {}
///     other => panic!("{other:?}"),
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Budget {
    /// Maximum steps; default [`Budget::DEFAULT_MAX_STEPS`].
    pub max_steps: u64,
    /// Maximum list elements built; default [`Budget::DEFAULT_MAX_ELEMENTS`].
    pub max_elements: u64,
    /// Maximum string bytes built; default [`Budget::DEFAULT_MAX_BYTES`].
    pub max_bytes: u64,
}

impl Budget {
    /// Default step limit: 10,000,000 (tens of milliseconds in a release
    /// build). Comparing two state lists of several million elements needs
    /// a larger budget.
    pub const DEFAULT_MAX_STEPS: u64 = 10_000_000;
    /// Default element limit: 1,000,000 list items built.
    pub const DEFAULT_MAX_ELEMENTS: u64 = 1_000_000;
    /// Default byte limit: 16 MiB of strings built.
    pub const DEFAULT_MAX_BYTES: u64 = 16 << 20;

    /// The default budget (the `DEFAULT_*` constants).
    pub const DEFAULT: Budget = Budget {
        max_steps: Self::DEFAULT_MAX_STEPS,
        max_elements: Self::DEFAULT_MAX_ELEMENTS,
        max_bytes: Self::DEFAULT_MAX_BYTES,
    };

    /// This budget with another step limit.
    pub const fn with_max_steps(mut self, max_steps: u64) -> Budget {
        self.max_steps = max_steps;
        self
    }

    /// This budget with another element limit.
    pub const fn with_max_elements(mut self, max_elements: u64) -> Budget {
        self.max_elements = max_elements;
        self
    }

    /// This budget with another byte limit.
    pub const fn with_max_bytes(mut self, max_bytes: u64) -> Budget {
        self.max_bytes = max_bytes;
        self
    }

    /// The maximum of `limit` in this budget.
    pub const fn max(&self, limit: Limit) -> u64 {
        match limit {
            Limit::Steps => self.max_steps,
            Limit::Elements => self.max_elements,
            Limit::Bytes => self.max_bytes,
        }
    }
}

impl Default for Budget {
    fn default() -> Self {
        Budget::DEFAULT
    }
}

/// Which limit of a [`Budget`] was exceeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Limit {
    /// [`Budget::max_steps`].
    Steps,
    /// [`Budget::max_elements`].
    Elements,
    /// [`Budget::max_bytes`].
    Bytes,
}

impl Limit {
    /// The name of the budget field, e.g. `max_steps`.
    pub const fn field(self) -> &'static str {
        match self {
            Limit::Steps => "max_steps",
            Limit::Elements => "max_elements",
            Limit::Bytes => "max_bytes",
        }
    }

    /// What is counted, e.g. `list elements built`.
    pub const fn counts(self) -> &'static str {
        match self {
            Limit::Steps => "evaluation steps",
            Limit::Elements => "list elements built",
            Limit::Bytes => "string bytes built",
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.field())
    }
}

/// What is left of the budget during one evaluation.
pub(super) struct Meter {
    steps: Cell<u64>,
    elements: Cell<u64>,
    bytes: Cell<u64>,
}

impl Meter {
    pub(super) fn new(budget: &Budget) -> Meter {
        Meter {
            steps: Cell::new(budget.max_steps),
            elements: Cell::new(budget.max_elements),
            bytes: Cell::new(budget.max_bytes),
        }
    }

    #[inline(always)]
    fn take(cell: &Cell<u64>, n: u64, limit: Limit) -> Result<(), Limit> {
        let left = cell.get();
        if n > left {
            return Err(exceeded(cell, limit));
        }
        cell.set(left - n);
        Ok(())
    }

    /// One step.
    #[inline(always)]
    pub(super) fn step(&self) -> Result<(), Limit> {
        Self::take(&self.steps, 1, Limit::Steps)
    }

    /// `n` steps.
    #[inline]
    pub(super) fn steps(&self, n: u64) -> Result<(), Limit> {
        Self::take(&self.steps, n, Limit::Steps)
    }

    /// The steps for scanning `len` bytes of string: one per 64 bytes.
    #[inline]
    pub(super) fn scan(&self, len: usize) -> Result<(), Limit> {
        self.steps(1 + (len as u64 >> 6))
    }

    /// `n` list elements built.
    #[inline]
    pub(super) fn elements(&self, n: u64) -> Result<(), Limit> {
        Self::take(&self.elements, n, Limit::Elements)
    }

    /// `n` string bytes built.
    #[inline]
    pub(super) fn bytes(&self, n: u64) -> Result<(), Limit> {
        Self::take(&self.bytes, n, Limit::Bytes)
    }
}

#[cold]
#[inline(never)]
fn exceeded(cell: &Cell<u64>, limit: Limit) -> Limit {
    // Exhaust it: nothing more may be charged after a failure.
    cell.set(0);
    limit
}
