//! [`action_fn`] and [`action_sync`]: actions from closures.

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;

use super::declaration::{declaration_builders, Declaration};
use super::{Action, ActionError, ActionResult, Inputs, IntoActionOutput};
use crate::ids::ApplicationContext;
use crate::state::State;

type Output = Result<(ActionResult, State), ActionError>;
type AsyncBody =
    dyn Fn(State, Inputs, ApplicationContext) -> BoxFuture<'static, Output> + Send + Sync;
type SyncBody = dyn Fn(State, &Inputs, &ApplicationContext) -> Output + Send + Sync;

#[derive(Clone)]
enum Body {
    Async(Arc<AsyncBody>),
    Sync { body: Arc<SyncBody>, blocking: bool },
}

/// A single-step action made from a closure by [`action_fn`] or [`action_sync`].
///
/// Declare what it reads, writes and takes with the builder methods.
#[derive(Clone)]
pub struct FnAction {
    declaration: Declaration,
    body: Body,
}

/// An action from an async closure `(state, inputs, context) -> output`.
///
/// The closure gets only the keys the action reads; it returns anything
/// [`IntoActionOutput`] accepts.
///
/// ```
/// use burr_core::State;
/// use burr_core::actions::action_fn;
///
/// let increment = action_fn("increment", |state: State, _, _| async move {
///     state.increment("count", 1)
/// })
/// .reads(["count"])
/// .writes(["count"]);
/// ```
pub fn action_fn<F, Fut, O>(name: impl Into<String>, f: F) -> FnAction
where
    F: Fn(State, Inputs, ApplicationContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = O> + Send + 'static,
    O: IntoActionOutput,
{
    let body: Arc<AsyncBody> = Arc::new(move |state, inputs, ctx| {
        let fut = f(state, inputs, ctx);
        Box::pin(async move { fut.await.into_output() })
    });
    FnAction::with_body(name.into(), Body::Async(body))
}

/// An action from a plain (synchronous) closure `(state, &inputs, &context) -> output`.
///
/// It runs inline, which is fastest for quick work. Mark CPU-bound work
/// [`FnAction::blocking`] so that it runs on the blocking thread pool instead of an async
/// worker thread.
///
/// ```
/// use burr_core::State;
/// use burr_core::actions::action_sync;
///
/// let double = action_sync("double", |state: State, _, _| {
///     let n: i64 = state.get("n")?;
///     Ok::<_, burr_core::state::StateError>(state.update("n", n * 2))
/// })
/// .reads(["n"])
/// .writes(["n"]);
/// ```
pub fn action_sync<F, O>(name: impl Into<String>, f: F) -> FnAction
where
    F: Fn(State, &Inputs, &ApplicationContext) -> O + Send + Sync + 'static,
    O: IntoActionOutput,
{
    let body: Arc<SyncBody> =
        Arc::new(move |state, inputs, ctx| f(state, inputs, ctx).into_output());
    FnAction::with_body(
        name.into(),
        Body::Sync {
            body,
            blocking: false,
        },
    )
}

impl FnAction {
    fn with_body(name: String, body: Body) -> Self {
        FnAction {
            declaration: Declaration::new(name).single_step(),
            body,
        }
    }

    declaration_builders!();

    /// Fail a run that takes longer than `timeout` (the builder's
    /// [`with_timeout`](crate::ApplicationBuilder::with_timeout) overrides it).
    pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
        self.declaration.timeout = Some(timeout);
        self
    }

    /// A copy under another name.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.declaration.name = name.into();
        self
    }

    /// Run a synchronous body on the blocking thread pool (for CPU-bound work), so that
    /// it never stalls the async runtime. No effect on an async body.
    pub fn blocking(mut self) -> Self {
        if let Body::Sync { blocking, .. } = &mut self.body {
            *blocking = true;
        }
        self
    }
}

#[async_trait]
impl Action for FnAction {
    fn declaration(&self) -> &Declaration {
        &self.declaration
    }

    fn run_and_update_inline(
        &self,
        state: State,
        inputs: &Inputs,
        ctx: &ApplicationContext,
    ) -> Result<Output, State> {
        match &self.body {
            Body::Sync {
                body,
                blocking: false,
            } => Ok(body(state, inputs, ctx)),
            _ => Err(state),
        }
    }

    async fn run_and_update(
        &self,
        state: State,
        inputs: &Inputs,
        ctx: &ApplicationContext,
    ) -> Output {
        match &self.body {
            Body::Async(body) => body(state, inputs.clone(), ctx.clone()).await,
            Body::Sync {
                body,
                blocking: false,
            } => body(state, inputs, ctx),
            Body::Sync {
                body,
                blocking: true,
            } => run_blocking(Arc::clone(body), state, inputs.clone(), ctx.clone()).await,
        }
    }
}

/// Run `body` on the blocking pool when inside a tokio runtime, inline otherwise.
async fn run_blocking(
    body: Arc<SyncBody>,
    state: State,
    inputs: Inputs,
    ctx: ApplicationContext,
) -> Output {
    if tokio::runtime::Handle::try_current().is_err() {
        return body(state, &inputs, &ctx);
    }
    let name = ctx.action_name().to_owned();
    tokio::task::spawn_blocking(move || body(state, &inputs, &ctx))
        .await
        .unwrap_or_else(|join| {
            Err(ActionError::msg(format!(
                "blocking action `{name}` panicked or was cancelled: {join}"
            )))
        })
}
