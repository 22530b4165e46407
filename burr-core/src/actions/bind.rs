//! [`Bound`]: an action with some inputs pre-filled and an optional new name (Burr's `bind`).

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::Value;

use super::{Action, Declaration, Delegate, Inputs};

/// An action with inputs bound to fixed values and possibly another name, so one function
/// serves as several actions. Made by [`ActionExt::bind`] and [`ActionExt::named`].
#[derive(Clone)]
pub struct Bound {
    inner: Arc<dyn Action>,
    declaration: Declaration,
    bound: Inputs,
}

impl Bound {
    fn new(inner: Arc<dyn Action>) -> Self {
        Bound {
            declaration: inner.declaration().clone(),
            bound: Inputs::new(),
            inner,
        }
    }

    /// Bind the input `name` to `value`: the action no longer takes it from the caller.
    pub fn bind(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        let name = name.into();
        self.declaration.inputs.retain(|i| *i != name);
        self.declaration.optional_inputs.retain(|i| *i != name);
        self.bound.insert(name, value.into());
        self
    }

    /// Rename the action.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.declaration.name = name.into();
        self
    }

    /// Declare the version of the action's code (see
    /// [`Declaration::version`](super::Declaration::version)).
    pub fn versioned(mut self, version: impl Into<String>) -> Self {
        self.declaration.version = Some(version.into());
        self
    }

    /// Memoize the action (see [`Declaration::memoize`](super::Declaration::memoize)).
    pub fn memoized(mut self) -> Self {
        self.declaration.memoize = true;
        self
    }
}

/// `bind`, `named` and `versioned` on every action.
pub trait ActionExt: Action + Sized {
    /// This action with the input `name` bound to `value`.
    fn bind(self, name: impl Into<String>, value: impl Into<Value>) -> Bound {
        Bound::new(Arc::new(self)).bind(name, value)
    }

    /// This action under another name.
    fn named(self, name: impl Into<String>) -> Bound {
        Bound::new(Arc::new(self)).named(name)
    }

    /// This action with a declared version of its code (part of the graph's
    /// fingerprint): `with_actions([Summarize.versioned("2")])`.
    fn versioned(self, version: impl Into<String>) -> Bound {
        Bound::new(Arc::new(self)).versioned(version)
    }

    /// This action, memoized (see [`Declaration::memoize`](super::Declaration::memoize)).
    fn memoized(self) -> Bound {
        Bound::new(Arc::new(self)).memoized()
    }
}

impl<A: Action + Sized> ActionExt for A {}

impl Delegate for Bound {
    fn target(&self) -> &dyn Action {
        &*self.inner
    }

    fn declaration(&self) -> &Declaration {
        &self.declaration
    }

    fn inputs<'a>(&self, given: &'a Inputs) -> Cow<'a, Inputs> {
        if self.bound.is_empty() {
            return Cow::Borrowed(given);
        }
        let mut all = given.clone();
        for (k, v) in &self.bound {
            all.insert(k.clone(), v.clone());
        }
        Cow::Owned(all)
    }
}
