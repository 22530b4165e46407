//! [`StaticAction`]: an action that lives for the whole program, the type of the actions
//! `#[action]` makes.

use std::fmt;

use super::{Action, Declaration, Delegate};

/// A `'static` action, copied freely. Every action [`#[action]`](macro@crate::action) makes is a
/// constant of this type, so that actions made from different functions go in one list:
/// `with_actions([Increment, Done])`.
///
/// ```
/// use std::sync::LazyLock;
/// use burr_core::actions::{Action, Declaration, StaticAction};
///
/// struct Noop;
///
/// #[async_trait::async_trait]
/// impl Action for Noop {
///     fn declaration(&self) -> &Declaration {
///         static DECLARED: LazyLock<Declaration> = LazyLock::new(|| Declaration::new("noop"));
///         &DECLARED
///     }
/// }
///
/// const NOOP: StaticAction = StaticAction::new(&Noop);
/// assert_eq!(NOOP.name(), "noop");
/// ```
#[derive(Clone, Copy)]
pub struct StaticAction(&'static dyn Action);

impl StaticAction {
    /// The action `action` refers to.
    pub const fn new(action: &'static dyn Action) -> Self {
        StaticAction(action)
    }

    /// The action's name.
    pub fn name(&self) -> &'static str {
        &self.0.declaration().name
    }

    /// What the action declares.
    pub fn declaration(&self) -> &'static Declaration {
        self.0.declaration()
    }
}

impl fmt::Debug for StaticAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("StaticAction").field(&self.name()).finish()
    }
}

impl Delegate for StaticAction {
    fn target(&self) -> &dyn Action {
        self.0
    }
}
