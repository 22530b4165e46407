//! Transitions: `(from, to, condition)`.

use crate::actions::ActionName;
use crate::condition::{default, Condition};

/// A validated transition between two actions (by index in the graph).
#[derive(Clone, Debug)]
pub struct Transition {
    /// The source action's index.
    pub from: usize,
    /// The target action's index.
    pub to: usize,
    /// When it is taken.
    pub condition: Condition,
}

/// One or several source actions of a transition.
#[derive(Clone, Debug)]
pub struct Sources(Vec<String>);

impl Sources {
    /// The names.
    pub fn names(&self) -> &[String] {
        &self.0
    }
}

impl<A: ActionName> From<A> for Sources {
    fn from(name: A) -> Self {
        Sources(vec![name.into_name()])
    }
}

impl<A: ActionName, const N: usize> From<[A; N]> for Sources {
    fn from(names: [A; N]) -> Self {
        Sources(names.into_iter().map(ActionName::into_name).collect())
    }
}

impl<A: ActionName> From<Vec<A>> for Sources {
    fn from(names: Vec<A>) -> Self {
        Sources(names.into_iter().map(ActionName::into_name).collect())
    }
}

/// A transition as declared, before validation: `(from, to)` or `(from, to, condition)`.
#[derive(Clone, Debug)]
pub struct TransitionSpec {
    /// The source action(s).
    pub from: Sources,
    /// The target action.
    pub to: String,
    /// When it is taken.
    pub condition: Condition,
}

impl<F: Into<Sources>, T: ActionName> From<(F, T)> for TransitionSpec {
    fn from((from, to): (F, T)) -> Self {
        TransitionSpec {
            from: from.into(),
            to: to.into_name(),
            condition: default(),
        }
    }
}

impl<F: Into<Sources>, T: ActionName> From<(F, T, Condition)> for TransitionSpec {
    fn from((from, to, condition): (F, T, Condition)) -> Self {
        TransitionSpec {
            from: from.into(),
            to: to.into_name(),
            condition,
        }
    }
}

/// Transitions of both forms in one list: `(from, to)` and `(from, to, condition)`, which an
/// array cannot mix. Gives a `Vec<TransitionSpec>` for `with_transitions`.
///
/// ```
/// use burr_core::{transitions, when};
/// use serde_json::json;
///
/// let list = transitions![
///     ("draft", "review"),
///     ("review", "publish", when([("approved", json!(true))])),
///     ("review", "draft"),
/// ];
/// assert_eq!(list.len(), 3);
/// ```
#[macro_export]
macro_rules! transitions {
    ($($transition:expr),* $(,)?) => {
        ::std::vec![$($crate::graph::TransitionSpec::from($transition)),*]
    };
}
