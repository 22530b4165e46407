//! What the output of `#[action]` and the map attributes refers to, re-exported as
//! `burr_core::__private`. Not a public API: it changes with the macros.

use std::sync::OnceLock;

use serde::de::DeserializeOwned;

use crate::actions::{input_error, IntoActionOutput};

pub use crate::actions::{
    Action, ActionError, ActionResult, Declaration, Delegate, Inputs, RetryPolicy, StaticAction,
};
pub use crate::ids::ApplicationContext;
pub use crate::parallel::{
    ChildOutcome, ChildPersister, ChildTracker, FailurePolicy, MapAction, SubGraph, Task,
};
pub use crate::state::State;
pub use async_trait::async_trait;
pub use serde;
pub use serde_json;
pub use std::sync::LazyLock;

/// What a macro action returns from `run_and_update`.
pub type Output = Result<(ActionResult, State), ActionError>;

/// A type an action's input parameter may have: one that deserializes from JSON.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the type of an action's input: inputs are deserialized from JSON",
    label = "this input's type does not implement `serde::Deserialize`",
    note = "derive `serde::Deserialize` for it, or take a type that has it (`String`, `i64`, `Vec<T>`, `serde_json::Value`, ...)"
)]
pub trait InputType: DeserializeOwned {}

impl<T: DeserializeOwned> InputType for T {}

/// A type an action function may return.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a return type an action supports",
    label = "an action cannot return this",
    note = "return the new state: `State`, `(result, State)` whose result is `Serialize` (a struct, a map or a `serde_json::Value` object), or a `Result` of either whose error converts into `ActionError`"
)]
pub trait ActionOutput: IntoActionOutput {}

impl<T: IntoActionOutput> ActionOutput for T {}

/// Checks at compile time that `T` is a supported return type.
pub fn assert_output<T: ActionOutput>() {}

/// The action's output.
pub fn into_output<T: ActionOutput>(output: T) -> Output {
    output.into_output()
}

/// A required input.
pub fn required_input<T: InputType>(
    ctx: &ApplicationContext,
    inputs: &Inputs,
    name: &str,
    expected: &str,
) -> Result<T, ActionError> {
    input_error::required_input(ctx.action_name(), inputs, name, expected)
}

/// A resource the application was given: an action's `Res<T>` parameter.
pub fn resource<T: Send + Sync + 'static>(
    ctx: &ApplicationContext,
) -> Result<crate::ids::Res<T>, ActionError> {
    ctx.resource::<T>().map_err(ActionError::from)
}

/// An optional input: `None` when not given.
pub fn optional_input<T: InputType>(
    ctx: &ApplicationContext,
    inputs: &Inputs,
    name: &str,
    expected: &str,
) -> Result<Option<T>, ActionError> {
    input_error::optional_input(ctx.action_name(), inputs, name, expected)
}

/// State keys, input names or tags as owned strings.
pub fn names(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| (*name).to_owned()).collect()
}

/// Run a synchronous action body on the blocking thread pool when inside a tokio runtime,
/// inline otherwise.
pub async fn run_blocking<F>(ctx: &ApplicationContext, body: F) -> Output
where
    F: FnOnce() -> Output + Send + 'static,
{
    if tokio::runtime::Handle::try_current().is_err() {
        return body();
    }
    let name = ctx.action_name().to_owned();
    tokio::task::spawn_blocking(body)
        .await
        .unwrap_or_else(|join| {
            Err(ActionError::msg(format!(
                "blocking action `{name}` panicked or was cancelled: {join}"
            )))
        })
}

/// What a map function (`#[map_states]`, `#[map_tasks]`, `#[map_actions]`,
/// `#[map_actions_and_states]`) or a reducer
/// may return: a `T`, or a `Result` of it whose error converts into `ActionError`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a return type this function supports: it must return `{T}`",
    label = "this function cannot return this",
    note = "return `{T}`, or a `Result<{T}, E>` whose error converts into `ActionError` (any `std::error::Error` does)"
)]
pub trait MapOutput<T> {
    /// The value, or the error as an `ActionError`.
    fn into_map_output(self) -> Result<T, ActionError>;
}

impl<T> MapOutput<T> for T {
    fn into_map_output(self) -> Result<T, ActionError> {
        Ok(self)
    }
}

impl<T, E: Into<ActionError>> MapOutput<T> for Result<T, E> {
    fn into_map_output(self) -> Result<T, ActionError> {
        self.map_err(Into::into)
    }
}

/// A map function's or a reducer's output as a `Result<T, ActionError>`.
pub fn map_output<T, O: MapOutput<T>>(output: O) -> Result<T, ActionError> {
    output.into_map_output()
}

/// The sub-graphs of `#[map_actions(subgraphs = ...)]` and
/// `#[map_actions_and_states(subgraphs = ...)]`: an array, a `Vec`, any iterable.
pub fn subgraphs(list: impl IntoIterator<Item = SubGraph>) -> Vec<SubGraph> {
    list.into_iter().collect()
}

/// A required input of a map function. A map function builds its tasks without the step's
/// context, so the error names the action by its declared name.
pub fn map_required_input<T: InputType>(
    action: &str,
    inputs: &Inputs,
    name: &str,
    expected: &str,
) -> Result<T, ActionError> {
    input_error::required_input(action, inputs, name, expected)
}

/// An optional input of a map function: `None` when not given.
pub fn map_optional_input<T: InputType>(
    action: &str,
    inputs: &Inputs,
    name: &str,
    expected: &str,
) -> Result<Option<T>, ActionError> {
    input_error::optional_input(action, inputs, name, expected)
}

/// The action of a map attribute: a [`MapAction`] built on first use (it holds closures,
/// so no constant can hold it), in a `static` that a `StaticAction` constant refers to.
pub struct LazyMap {
    map: OnceLock<MapAction>,
    build: fn() -> MapAction,
}

impl LazyMap {
    /// The map action `build` makes, built when first used.
    pub const fn new(build: fn() -> MapAction) -> LazyMap {
        LazyMap {
            map: OnceLock::new(),
            build,
        }
    }

    fn map(&self) -> &MapAction {
        self.map.get_or_init(self.build)
    }
}

impl Delegate for LazyMap {
    fn target(&self) -> &dyn Action {
        self.map()
    }
}

/// What `inputs!` expands to: the object's entries as [`Inputs`].
pub fn inputs_from_json(value: serde_json::Value) -> Inputs {
    match value {
        serde_json::Value::Object(map) => map,
        _ => Inputs::new(),
    }
}

/// The action a macro's constant stands for when the function it was written on has an
/// error: it never runs, since that error stops the build.
pub struct InvalidAction;

impl Action for InvalidAction {
    fn declaration(&self) -> &Declaration {
        static DECLARED: LazyLock<Declaration> =
            LazyLock::new(|| Declaration::new("<an action with a compile error>"));
        &DECLARED
    }
}
