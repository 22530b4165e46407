//! What a typical application uses, in one import: `use burr_core::prelude::*;`.
//!
//! | name | what it is |
//! |---|---|
//! | [`State`] | the immutable state: key → JSON value |
//! | [`action`](macro@action) | the attribute that makes an action of a function |
//! | [`ApplicationBuilder`], [`Application`] | build an application, then step or run it |
//! | [`RunOptions`] | the settings of [`Application::run`]: halts and inputs |
//! | [`when`], [`expr()`], [`default()`] | transitions' conditions |
//! | [`Inputs`], [`inputs!`](crate::inputs) | what a step is given from outside |
//! | [`ApplicationContext`], [`Res`] | what an action sees of its application; a resource |
//! | [`ActionError`] | what an action's code returns when it fails |
//! | [`Error`], [`Result`] | what building or running an application returns |
//!
//! Everything else lives in its module: [`crate::actions`], [`crate::persistence`],
//! [`crate::parallel`], [`crate::hooks`], ...

pub use crate::actions::{ActionError, Inputs};
pub use crate::application::{Application, ApplicationBuilder, RunOptions};
pub use crate::condition::{default, expr, when};
pub use crate::error::{Error, Result};
pub use crate::ids::{ApplicationContext, Res};
pub use crate::inputs;
pub use crate::state::State;
#[cfg(feature = "macros")]
pub use burr_macros::action;
