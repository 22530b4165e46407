//! [`Resources`]: typed values the application hands its actions (a model, a client, an
//! index), found by type.

use std::any::{type_name, Any, TypeId};
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// A set of shared values keyed by their type: at most one value of each type.
///
/// Given to an application with
/// [`ApplicationBuilder::with_resource`](crate::ApplicationBuilder::with_resource), inherited
/// by its child applications, and reached by actions as
/// [`ctx.resource::<T>()`](crate::ApplicationContext::resource) or as a `Res<T>` parameter of
/// an [`#[action]`](macro@crate::action) function. Cloning shares the values.
#[derive(Clone, Default)]
pub struct Resources {
    entries: Arc<[(TypeId, Arc<dyn Any + Send + Sync>)]>,
}

impl Resources {
    /// No resources.
    pub fn new() -> Self {
        Resources::default()
    }

    /// Add `value`, replacing the value of the same type if there was one.
    pub fn insert<T: Send + Sync + 'static>(&mut self, value: Arc<T>) {
        let id = TypeId::of::<T>();
        let mut entries: Vec<_> = self
            .entries
            .iter()
            .filter(|(t, _)| *t != id)
            .cloned()
            .collect();
        entries.push((id, value as Arc<dyn Any + Send + Sync>));
        self.entries = entries.into();
    }

    /// Take the value of type `T` out, if there is one.
    pub fn remove<T: Send + Sync + 'static>(&mut self) {
        let id = TypeId::of::<T>();
        if self.entries.iter().any(|(t, _)| *t == id) {
            let entries: Vec<_> = self
                .entries
                .iter()
                .filter(|(t, _)| *t != id)
                .cloned()
                .collect();
            self.entries = entries.into();
        }
    }

    /// Add every value of `other` whose type this set does not hold yet.
    pub fn inherit(&mut self, other: &Resources) {
        if other.entries.is_empty() {
            return;
        }
        if self.entries.is_empty() {
            self.entries = other.entries.clone();
            return;
        }
        let mut entries: Vec<_> = self.entries.to_vec();
        for (id, value) in other.entries.iter() {
            if !entries.iter().any(|(t, _)| t == id) {
                entries.push((*id, value.clone()));
            }
        }
        self.entries = entries.into();
    }

    /// The value of type `T`, if there is one.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<Res<T>> {
        let id = TypeId::of::<T>();
        let (_, value) = self.entries.iter().find(|(t, _)| *t == id)?;
        value.clone().downcast::<T>().ok().map(Res)
    }

    /// The value of type `T`, borrowed.
    pub fn get_ref<T: Send + Sync + 'static>(&self) -> Option<&T> {
        let id = TypeId::of::<T>();
        let (_, value) = self.entries.iter().find(|(t, _)| *t == id)?;
        value.downcast_ref::<T>()
    }

    /// How many values the set holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl fmt::Debug for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resources")
            .field("len", &self.entries.len())
            .finish()
    }
}

/// A shared resource of type `T`: what [`ApplicationContext::resource`] returns, and the
/// type of an `#[action]` parameter that asks for one (`model: Res<Model>`). Dereferences to
/// `T`.
///
/// [`ApplicationContext::resource`]: crate::ApplicationContext::resource
pub struct Res<T: ?Sized>(Arc<T>);

impl<T: ?Sized> Res<T> {
    /// The shared handle.
    pub fn arc(&self) -> &Arc<T> {
        &self.0
    }

    /// The shared handle, owned.
    pub fn into_arc(self) -> Arc<T> {
        self.0
    }
}

impl<T: ?Sized> Clone for Res<T> {
    fn clone(&self) -> Self {
        Res(self.0.clone())
    }
}

impl<T: ?Sized> Deref for Res<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Res<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// An action asked for a resource the application was not given.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("action `{action}` needs a resource of type `{type_name}`, which the application was not given (ApplicationBuilder::with_resource)")]
pub struct MissingResource {
    /// The action that asked.
    pub action: String,
    /// The type it asked for.
    pub type_name: &'static str,
}

impl MissingResource {
    pub(crate) fn of<T: ?Sized>(action: &str) -> Self {
        MissingResource {
            action: action.to_owned(),
            type_name: type_name::<T>(),
        }
    }
}
