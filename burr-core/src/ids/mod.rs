//! The lowest floor: who an application is, and what an action sees of the application it
//! runs in.
//!
//! - [`Identifiers`] and [`ParentPointer`]: an application's identity, and a pointer to
//!   another application's step (a fork's origin, a child's spawning parent).
//! - [`ApplicationContext`]: what a running action knows of its step (app id, sequence id,
//!   attempt, spawning parent) and the handles it may use: [`Resources`] given to the
//!   builder, and the [`Executor`] child applications run on.
//!
//! Every other module builds on these; this one imports none of them. The modules above add
//! their own handles to the context in their own files: `hooks` adds spans and attributes
//! ([`ApplicationContext::span`]), `persistence` the persister
//! ([`ApplicationContext::persister`]), `parallel` child applications
//! ([`ApplicationContext::run_child`]).

mod cancel;
mod context;
mod executor;
mod resources;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use cancel::CancelToken;
pub use context::ApplicationContext;
pub(crate) use executor::next_flow;
pub use executor::{Executor, Permit, Priority, WorkKey};
pub use resources::{MissingResource, Res, Resources};

/// An application's identity: its app id and partition key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Identifiers {
    /// The application's id (a UUID unless given).
    pub app_id: Arc<str>,
    /// The partition key (a user id, a tenant...), if any.
    pub partition_key: Option<Arc<str>>,
}

impl Identifiers {
    /// The partition key as a `&str`.
    pub fn partition_key(&self) -> Option<&str> {
        self.partition_key.as_deref()
    }
}

/// A pointer to another application's step: the application a fork started from, or the
/// one that spawned a child application.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ParentPointer {
    /// The other application's id.
    pub app_id: String,
    /// Its partition key.
    pub partition_key: Option<String>,
    /// The step (`None`: the latest, for a fork of the latest state).
    pub sequence_id: Option<u64>,
}
