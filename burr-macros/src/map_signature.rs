//! The functions of the map attributes, as [`Kind`]s of [`signature`](crate::signature):
//! the state first, then inputs (no context: a map function builds what the children run,
//! before they run), returning what the children start from.

use syn::Type;

use crate::map_args::MapKind;
use crate::signature::{first_argument, is_named, ungroup, Kind};

const FUNCTION: &str = "a map function";

const STATES: Kind = Kind {
    attr: "map_states",
    function: FUNCTION,
    shape: "fn name(state: State, <inputs>...) -> Result<Vec<State>, E>",
    returns: "a `#[map_states]` function returns the children's starting states: `Vec<State>`, or a `Result` of it",
    default_return: "Result<Vec<State>, ActionError>",
    in_step: false,
    check_output: check_states,
};

const KEYED_STATES: Kind = Kind {
    attr: "map_states",
    function: FUNCTION,
    shape: "fn name(state: State, <inputs>...) -> Result<Vec<(String, State)>, E>",
    returns: "a `#[map_states(keyed)]` function returns each child's key and starting state: `Vec<(String, State)>`, or a `Result` of it",
    default_return: "Result<Vec<(String, State)>, ActionError>",
    in_step: false,
    check_output: check_keyed_states,
};

const TASKS: Kind = Kind {
    attr: "map_tasks",
    function: FUNCTION,
    shape: "fn name(state: State, <inputs>...) -> Result<Vec<Task>, E>",
    returns:
        "a `#[map_tasks]` function returns the children's tasks: `Vec<Task>`, or a `Result` of it",
    default_return: "Result<Vec<Task>, ActionError>",
    in_step: false,
    check_output: check_tasks,
};

const ACTIONS_AND_STATES: Kind = Kind {
    attr: "map_actions_and_states",
    function: FUNCTION,
    shape: "fn name(state: State, <inputs>...) -> Result<Vec<State>, E>",
    returns: "a `#[map_actions_and_states]` function returns the states every sub-graph runs on: `Vec<State>`, or a `Result` of it",
    default_return: "Result<Vec<State>, ActionError>",
    in_step: false,
    check_output: check_actions_and_states,
};

const ACTIONS: Kind = Kind {
    attr: "map_actions",
    function: FUNCTION,
    shape: "fn name(state: State, <inputs>...) -> Result<State, E>",
    returns: "a `#[map_actions]` function returns the state every child starts with: `State`, or a `Result` of it",
    default_return: "Result<State, ActionError>",
    in_step: false,
    check_output: check_actions,
};

/// The kind of function the map attribute `kind` takes.
pub(crate) fn kind(kind: MapKind, keyed: bool) -> &'static Kind {
    match (kind, keyed) {
        (MapKind::States, false) => &STATES,
        (MapKind::States, true) => &KEYED_STATES,
        (MapKind::Tasks, _) => &TASKS,
        (MapKind::Actions, _) => &ACTIONS,
        (MapKind::ActionsAndStates, _) => &ACTIONS_AND_STATES,
    }
}

/// What the children start from: `T` of `Result<T, E>` (or of `anyhow::Result<T>`), or
/// the type itself. Shapes no map function returns are errors.
fn value_type<'a>(ty: &'a Type, kind: &Kind) -> syn::Result<&'a Type> {
    let value = first_argument(ty, "Result", 1..=2).unwrap_or(ty);
    let unsupported = |what: &str| {
        Err(syn::Error::new_spanned(
            ty,
            format!("unsupported return type: {what}; {}", kind.returns),
        ))
    };
    match ungroup(value) {
        Type::Tuple(tuple) if tuple.elems.is_empty() => unsupported("`()` gives no children"),
        Type::Reference(_) => unsupported("a reference"),
        Type::ImplTrait(_) => unsupported("`impl Trait`"),
        Type::Never(_) => unsupported("`!`"),
        _ => Ok(value),
    }
}

/// The element type of `Vec<T>`.
fn vec_element(ty: &Type) -> Option<&Type> {
    first_argument(ty, "Vec", 1..=1)
}

fn is_pair(ty: &Type) -> bool {
    matches!(ungroup(ty), Type::Tuple(tuple) if tuple.elems.len() == 2)
}

fn check_states(ty: &Type) -> syn::Result<()> {
    let value = value_type(ty, &STATES)?;
    if is_named(value, "State") {
        return Err(syn::Error::new_spanned(
            value,
            "a `#[map_states]` function returns one starting state per child: `Vec<State>`, not one `State` (for many sub-graphs over one state, use `#[map_actions]`)",
        ));
    }
    if vec_element(value).is_some_and(is_pair) {
        return Err(syn::Error::new_spanned(
            value,
            "`Vec<(key, State)>` gives keyed children: add `keyed` to `#[map_states(...)]`, or return `Vec<State>`",
        ));
    }
    Ok(())
}

fn check_keyed_states(ty: &Type) -> syn::Result<()> {
    let value = value_type(ty, &KEYED_STATES)?;
    if is_named(value, "State") || vec_element(value).is_some_and(|e| is_named(e, "State")) {
        return Err(syn::Error::new_spanned(
            value,
            "with `keyed`, a `#[map_states]` function returns each child's key with its starting state: `Vec<(String, State)>`",
        ));
    }
    Ok(())
}

fn check_tasks(ty: &Type) -> syn::Result<()> {
    let value = value_type(ty, &TASKS)?;
    if is_named(value, "State") || vec_element(value).is_some_and(|e| is_named(e, "State")) {
        return Err(syn::Error::new_spanned(
            value,
            "a `#[map_tasks]` function returns the children's tasks: `Vec<Task>` (for one sub-graph over many states, use `#[map_states]`)",
        ));
    }
    Ok(())
}

fn check_actions(ty: &Type) -> syn::Result<()> {
    let value = value_type(ty, &ACTIONS)?;
    if vec_element(value).is_some() {
        return Err(syn::Error::new_spanned(
            value,
            "a `#[map_actions]` function returns the one state every sub-graph starts with: `State` (for every sub-graph over each of many states, use `#[map_actions_and_states]`)",
        ));
    }
    Ok(())
}

fn check_actions_and_states(ty: &Type) -> syn::Result<()> {
    let value = value_type(ty, &ACTIONS_AND_STATES)?;
    if is_named(value, "State") {
        return Err(syn::Error::new_spanned(
            value,
            "a `#[map_actions_and_states]` function returns the states every sub-graph runs on: `Vec<State>`, not one `State` (for many sub-graphs over one state, use `#[map_actions]`)",
        ));
    }
    if vec_element(value).is_some_and(is_pair) {
        return Err(syn::Error::new_spanned(
            value,
            "a `#[map_actions_and_states]` function returns `Vec<State>`: its children are keyed `<entrypoint>.<state index>`, so it takes no keys",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;
    use crate::signature::analyze;

    fn analyze_err(kind: &Kind, item: proc_macro2::TokenStream) -> String {
        crate::test_support::error_messages(analyze(syn::parse2(item).unwrap(), kind).1)
    }

    fn analyze_ok(kind: &Kind, item: proc_macro2::TokenStream) {
        if let Err(e) = analyze(syn::parse2(item).unwrap(), kind).1 {
            panic!("unexpected error: {e}");
        }
    }

    #[test]
    fn accepted_shapes() {
        analyze_ok(
            &STATES,
            quote!(
                fn f(state: State, n: usize) -> Result<Vec<State>, ActionError> {
                    todo!()
                }
            ),
        );
        analyze_ok(
            &STATES,
            quote!(
                fn f(state: State) -> Vec<State> {
                    todo!()
                }
            ),
        );
        analyze_ok(
            &STATES,
            quote!(
                fn f(state: State) -> anyhow::Result<States> {
                    todo!()
                }
            ),
        );
        analyze_ok(
            &KEYED_STATES,
            quote!(
                fn f(state: State) -> Result<Vec<(String, State)>, E> {
                    todo!()
                }
            ),
        );
        analyze_ok(
            &TASKS,
            quote!(
                fn f(state: State) -> Result<Vec<Task>, ActionError> {
                    todo!()
                }
            ),
        );
        analyze_ok(
            &ACTIONS,
            quote!(
                fn f(state: State) -> State {
                    todo!()
                }
            ),
        );
        analyze_ok(
            &ACTIONS_AND_STATES,
            quote!(
                fn f(state: State, n: usize) -> Result<Vec<State>, ActionError> {
                    todo!()
                }
            ),
        );
    }

    #[test]
    fn wrong_shapes_teach_the_right_one() {
        let e = analyze_err(
            &STATES,
            quote!(
                fn f(state: State) -> Result<State, E> {
                    todo!()
                }
            ),
        );
        assert!(
            e.starts_with("a `#[map_states]` function returns one starting state per child"),
            "{e}"
        );
        let e = analyze_err(
            &STATES,
            quote!(
                fn f(state: State) -> Vec<(String, State)> {
                    todo!()
                }
            ),
        );
        assert!(
            e.starts_with("`Vec<(key, State)>` gives keyed children: add `keyed`"),
            "{e}"
        );
        let e = analyze_err(
            &KEYED_STATES,
            quote!(
                fn f(state: State) -> Vec<State> {
                    todo!()
                }
            ),
        );
        assert!(e.starts_with("with `keyed`"), "{e}");
        let e = analyze_err(
            &TASKS,
            quote!(
                fn f(state: State) -> Vec<State> {
                    todo!()
                }
            ),
        );
        assert!(
            e.starts_with("a `#[map_tasks]` function returns the children's tasks"),
            "{e}"
        );
        let e = analyze_err(
            &ACTIONS,
            quote!(
                fn f(state: State) -> Result<Vec<State>, E> {
                    todo!()
                }
            ),
        );
        assert!(
            e.starts_with("a `#[map_actions]` function returns the one state"),
            "{e}"
        );
        let e = analyze_err(
            &ACTIONS_AND_STATES,
            quote!(
                fn f(state: State) -> State {
                    todo!()
                }
            ),
        );
        assert!(
            e.starts_with("a `#[map_actions_and_states]` function returns the states every sub-graph runs on: `Vec<State>`, not one `State`"),
            "{e}"
        );
        let e = analyze_err(
            &ACTIONS_AND_STATES,
            quote!(
                fn f(state: State) -> Vec<(String, State)> {
                    todo!()
                }
            ),
        );
        assert!(e.contains("so it takes no keys"), "{e}");
        let e = analyze_err(
            &STATES,
            quote!(
                fn f(state: State) {}
            ),
        );
        assert!(
            e.starts_with("missing return type: a `#[map_states]` function returns"),
            "{e}"
        );
        assert!(
            e.ends_with("add `-> Result<Vec<State>, ActionError>`"),
            "{e}"
        );
        let e = analyze_err(
            &TASKS,
            quote!(
                fn f(state: State) -> Result<(), E> {}
            ),
        );
        assert!(
            e.starts_with("unsupported return type: `()` gives no children"),
            "{e}"
        );
    }

    #[test]
    fn no_context_no_async_no_self() {
        let e = analyze_err(
            &STATES,
            quote!(
                fn f(state: State, ctx: &ApplicationContext) -> Vec<State> {
                    todo!()
                }
            ),
        );
        assert!(
            e.starts_with("a map function cannot take the `ApplicationContext`"),
            "{e}"
        );
        let e = analyze_err(
            &STATES,
            quote!(
                async fn f(state: State) -> Vec<State> {
                    todo!()
                }
            ),
        );
        assert!(e.starts_with("a map function cannot be `async`"), "{e}");
        let e = analyze_err(
            &TASKS,
            quote!(
                fn f(&self) -> Vec<Task> {
                    todo!()
                }
            ),
        );
        assert!(e.starts_with("`#[map_tasks]` cannot take `self`: write a free function whose first parameter is the state: `fn name(state: State, <inputs>...) -> Result<Vec<Task>, E>`"), "{e}");
        let e = analyze_err(
            &ACTIONS,
            quote!(
                fn f(n: i64) -> State {
                    todo!()
                }
            ),
        );
        assert!(
            e.starts_with("the first parameter of a map function is the state"),
            "{e}"
        );
    }
}
