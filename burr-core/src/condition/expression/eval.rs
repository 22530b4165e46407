//! Tree-walking evaluator.

use serde_json::Value;

use super::budget::{Budget, Meter};
use super::parser::{CmpOp, Node};
use super::value::{arith, compare, contains, equal, OpError, Val};
use super::ExprEvalError;

/// Evaluation context: the state lookup, the source text for errors and
/// what is left of the budget.
pub(super) struct Ctx<'c, 'a> {
    pub(super) lookup: &'c dyn Fn(&str) -> Option<&'a Value>,
    pub(super) source: &'c str,
    pub(super) budget: &'c Budget,
    pub(super) meter: Meter,
}

impl Ctx<'_, '_> {
    #[cold]
    pub(super) fn op_error(&self, err: OpError) -> EvalError {
        Box::new(match err {
            OpError::Type(message) => ExprEvalError::Type {
                expression: self.source.to_string(),
                message,
            },
            OpError::DivisionByZero => ExprEvalError::DivisionByZero {
                expression: self.source.to_string(),
            },
            OpError::Limit(limit) => ExprEvalError::LimitExceeded {
                expression: self.source.to_string(),
                limit,
                max: self.budget.max(limit),
            },
        })
    }
}

/// Boxed so that the `Result` returned on the hot path stays small.
pub(super) type EvalError = Box<ExprEvalError>;

/// Evaluates `node`: one step of the budget, plus what its operations cost.
/// Recursion follows the expression's nesting, which the parser bounds.
pub(super) fn eval<'v, 'a: 'v>(node: &'v Node, ctx: &Ctx<'_, 'a>) -> Result<Val<'v>, EvalError> {
    ctx.meter.step().map_err(|e| ctx.op_error(e.into()))?;
    Ok(match node {
        Node::Lit(lit) => Val::from_lit(lit),
        Node::Key(key) => lookup(key, ctx)?,
        Node::Not(inner) => Val::Bool(!operand(inner, ctx)?.truthy()),
        Node::And(left, right) => {
            let l = operand(left, ctx)?;
            if l.truthy() {
                operand(right, ctx)?
            } else {
                l
            }
        }
        Node::Or(left, right) => {
            let l = operand(left, ctx)?;
            if l.truthy() {
                l
            } else {
                operand(right, ctx)?
            }
        }
        Node::Cmp(op, left, right) => {
            let l = operand(left, ctx)?;
            let r = operand(right, ctx)?;
            // Fast path for the most common case: int vs int.
            if let (Val::Int(a), Val::Int(b)) = (&l, &r) {
                if let Some(result) = int_cmp(*op, *a, *b) {
                    return Ok(Val::Bool(result));
                }
            }
            Val::Bool(cmp(*op, &l, &r, &ctx.meter).map_err(|e| ctx.op_error(e))?)
        }
        // Less common nodes live out of line to keep this frame small.
        _ => eval_other(node, ctx)?,
    })
}

#[inline(never)]
fn eval_other<'v, 'a: 'v>(node: &'v Node, ctx: &Ctx<'_, 'a>) -> Result<Val<'v>, EvalError> {
    Ok(match node {
        Node::Field {
            base,
            name,
            path,
            base_path,
        } => match operand(base, ctx)? {
            Val::Obj(map) => match map.get(&**name) {
                Some(value) => Val::from_json(value),
                None => return Err(missing(path)),
            },
            other => {
                return Err(ctx.op_error(OpError::Type(format!(
                    "cannot access field `{name}` of `{base_path}`: \
                     it is a '{}', not an object",
                    other.type_name()
                ))))
            }
        },
        Node::List(items) => {
            ctx.meter
                .elements(items.len() as u64)
                .map_err(|e| ctx.op_error(e.into()))?;
            Val::List(
                items
                    .iter()
                    .map(|item| eval(item, ctx))
                    .collect::<Result<_, _>>()?,
            )
        }
        Node::Len(inner) => eval(inner, ctx)?
            .len(&ctx.meter)
            .map_err(|e| ctx.op_error(e))?,
        Node::Neg(inner) => operand(inner, ctx)?
            .unary(true)
            .map_err(|e| ctx.op_error(e))?,
        Node::Pos(inner) => operand(inner, ctx)?
            .unary(false)
            .map_err(|e| ctx.op_error(e))?,
        Node::Arith(op, left, right) => {
            let l = operand(left, ctx)?;
            let r = operand(right, ctx)?;
            arith(*op, l, r, &ctx.meter).map_err(|e| ctx.op_error(e))?
        }
        Node::Lit(_)
        | Node::Key(_)
        | Node::Not(_)
        | Node::And(..)
        | Node::Or(..)
        | Node::Cmp(..) => unreachable!("handled by `eval`"),
    })
}

#[cold]
fn missing(key: &str) -> EvalError {
    Box::new(ExprEvalError::MissingKey {
        key: key.to_string(),
    })
}

#[inline]
fn int_cmp(op: CmpOp, a: i64, b: i64) -> Option<bool> {
    Some(match op {
        CmpOp::Lt => a < b,
        CmpOp::Le => a <= b,
        CmpOp::Gt => a > b,
        CmpOp::Ge => a >= b,
        CmpOp::Eq => a == b,
        CmpOp::Ne => a != b,
        // `int in int` is a type error: leave it to the general path.
        CmpOp::In | CmpOp::NotIn => return None,
    })
}

fn lookup<'v, 'a: 'v>(key: &str, ctx: &Ctx<'_, 'a>) -> Result<Val<'v>, EvalError> {
    match (ctx.lookup)(key) {
        Some(value) => Ok(Val::from_json(value)),
        None => Err(missing(key)),
    }
}

/// Evaluates an operand, handling the common leaves (literals and state
/// keys) inline instead of through the general recursive call.
#[inline(always)]
fn operand<'v, 'a: 'v>(node: &'v Node, ctx: &Ctx<'_, 'a>) -> Result<Val<'v>, EvalError> {
    match node {
        Node::Lit(lit) => Ok(Val::from_lit(lit)),
        Node::Key(key) => lookup(key, ctx),
        _ => eval(node, ctx),
    }
}

fn cmp(op: CmpOp, l: &Val<'_>, r: &Val<'_>, m: &Meter) -> Result<bool, OpError> {
    use std::cmp::Ordering::{Equal, Greater, Less};
    Ok(match op {
        CmpOp::Eq => equal(l, r, m)?,
        CmpOp::Ne => !equal(l, r, m)?,
        CmpOp::In => contains(l, r, m)?,
        CmpOp::NotIn => !contains(l, r, m)?,
        CmpOp::Lt => matches!(compare(l, r, op.symbol(), m)?, Some(Less)),
        CmpOp::Le => matches!(compare(l, r, op.symbol(), m)?, Some(Less | Equal)),
        CmpOp::Gt => matches!(compare(l, r, op.symbol(), m)?, Some(Greater)),
        CmpOp::Ge => matches!(compare(l, r, op.symbol(), m)?, Some(Greater | Equal)),
    })
}
