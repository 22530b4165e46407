//! [`ActionName`]: what names an action where the API takes one — its name, or the action
//! itself.

use super::StaticAction;

/// An action's name, or something that names an action: a `&str` or `String`, or an action
/// constant made by [`#[action]`](macro@crate::action) (so that a typo is a compile error).
///
/// Taken by transitions (`(LoadDiscussions, Relate)`), entrypoints and halt lists.
pub trait ActionName {
    /// The name.
    fn into_name(self) -> String;
}

impl ActionName for &str {
    fn into_name(self) -> String {
        self.to_owned()
    }
}

impl ActionName for String {
    fn into_name(self) -> String {
        self
    }
}

impl ActionName for &String {
    fn into_name(self) -> String {
        self.clone()
    }
}

impl ActionName for StaticAction {
    fn into_name(self) -> String {
        self.name().to_owned()
    }
}

impl ActionName for &StaticAction {
    fn into_name(self) -> String {
        self.name().to_owned()
    }
}
