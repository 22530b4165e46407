//! What the `#[action]` macro's output refers to, re-exported as `burr_core::__private`.
//! Not a public API: it changes with the macro.

use serde::de::DeserializeOwned;

use crate::action::{input_error, IntoActionOutput};

pub use crate::action::{Action, ActionError, ActionResult, Inputs, StaticAction};
pub use crate::{ApplicationContext, State};
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
    input_error::required_input(ctx, inputs, name, expected)
}

/// An optional input: `None` when not given.
pub fn optional_input<T: InputType>(
    ctx: &ApplicationContext,
    inputs: &Inputs,
    name: &str,
    expected: &str,
) -> Result<Option<T>, ActionError> {
    input_error::optional_input(ctx, inputs, name, expected)
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
