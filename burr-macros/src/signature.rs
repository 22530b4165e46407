//! The signature of the function an attribute applies to, checked and modelled: the state
//! parameter, the inputs (required, optional or defaulted), the context parameter and the
//! return type. What differs between `#[action]` and the map attributes is a [`Kind`].

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{
    Attribute, Expr, FnArg, GenericArgument, GenericParam, ItemFn, Pat, PathArguments, ReturnType,
    Type, TypePath,
};

use crate::args::Errors;

/// An action function, checked.
pub(crate) struct ActionFn {
    /// Whether it is an `async fn`.
    pub(crate) is_async: bool,
    /// The parameters after the state, in order.
    pub(crate) params: Vec<Param>,
    /// The return type (of the future, for an `async fn`).
    pub(crate) output: Type,
}

/// A parameter after the state.
pub(crate) enum Param {
    /// The `ApplicationContext`, by reference or by value: injected, not an input.
    Context {
        /// `&ApplicationContext` rather than `ApplicationContext`.
        by_ref: bool,
    },
    /// A resource, `Res<T>`: taken from the context, not an input.
    Resource {
        /// `T`.
        ty: Box<Type>,
    },
    /// An input.
    Input(Box<Input>),
}

/// An input parameter.
pub(crate) struct Input {
    /// The input's name: the parameter's name.
    pub(crate) name: String,
    /// The parameter's type.
    pub(crate) ty: Type,
    /// Whether the caller must give it.
    pub(crate) kind: InputKind,
}

/// Whether an input is required.
pub(crate) enum InputKind {
    /// Required.
    Required,
    /// An `Option<T>`: `None` when not given.
    Option,
    /// `#[input(default = expr)]`: `expr` when not given.
    Default(Expr),
}

const SHAPE: &str = "fn name(state: State, <inputs>..., ctx: &ApplicationContext) -> State";
const RETURNS: &str =
    "an action returns its new state: `State`, `(result, State)`, or a `Result` of either";

/// The kind of function an attribute applies to: what its errors call it, and what it may
/// take and return.
pub(crate) struct Kind {
    /// The attribute, without `#[]`: `action`.
    pub(crate) attr: &'static str,
    /// The function as errors name it: `an action function`.
    pub(crate) function: &'static str,
    /// The signature it takes, as errors show it.
    pub(crate) shape: &'static str,
    /// What it returns, as errors say it.
    pub(crate) returns: &'static str,
    /// The return type suggested when there is none.
    pub(crate) default_return: &'static str,
    /// Whether it runs within the step, so may be `async` and take the context. A map
    /// function only builds what the children run, before they run.
    pub(crate) in_step: bool,
    /// Checks the return type's shape (the types are checked by the compiler).
    pub(crate) check_output: fn(&Type) -> syn::Result<()>,
}

/// The function of `#[action]`.
pub(crate) const ACTION: Kind = Kind {
    attr: "action",
    function: "an action function",
    shape: SHAPE,
    returns: RETURNS,
    default_return: "State",
    in_step: true,
    check_output,
};

/// Check `item` as a function of `kind`. The function comes back with its `#[input]`
/// attributes removed, to be emitted whatever the outcome.
pub(crate) fn analyze(mut item: ItemFn, kind: &Kind) -> (ItemFn, syn::Result<ActionFn>) {
    let Kind {
        function,
        shape,
        returns,
        default_return,
        ..
    } = kind;
    let mut errors = Errors::default();
    let defaults = strip_input_attributes(&mut item, &mut errors);
    let sig = &item.sig;

    if let Some(unsafety) = sig.unsafety {
        errors.push(syn::Error::new(
            unsafety.span,
            format!("{function} cannot be `unsafe`: the action calls it with no way to uphold its safety contract; make it a safe `fn`"),
        ));
    }
    for param in &sig.generics.params {
        if !matches!(param, GenericParam::Lifetime(_)) {
            errors.push(syn::Error::new_spanned(
                param,
                format!("{function} cannot be generic: the action deserializes its inputs into concrete types; name the types"),
            ));
        }
    }

    let mut params = Vec::new();
    let mut seen_context: Option<Span> = None;
    let mut inputs_iter = sig.inputs.iter().zip(defaults);
    match inputs_iter.next() {
        None => errors.push(syn::Error::new(
            sig.paren_token.span.join(),
            format!("{function} takes the state as its first parameter: `{shape}`"),
        )),
        Some((first, default)) => {
            if let Err(e) = check_state(first, kind) {
                errors.push(e);
                // `fn f(&self, state: State)`: that state is the state, not a second one.
                let state_follows = inputs_iter.clone().next().is_some_and(
                    |(next, _)| matches!(next, FnArg::Typed(next) if is_named(&next.ty, "State")),
                );
                if matches!(first, FnArg::Receiver(_)) && state_follows {
                    inputs_iter.next();
                }
            }
            if let Some(default) = default {
                errors.push(syn::Error::new_spanned(
                    default,
                    "only inputs take a default; the state parameter is always given",
                ));
            }
        }
    }
    for (arg, default) in inputs_iter {
        match param(arg, default, kind) {
            Ok(Param::Resource { .. }) if !kind.in_step => errors.push(syn::Error::new(
                arg.span(),
                format!("{function} cannot take a resource: it builds what the children run before they run; capture per-application values in a map action built with `MapAction::states` (or `tasks`) instead, or take the resource in the children's actions"),
            )),
            Ok(Param::Context { .. }) if !kind.in_step => errors.push(syn::Error::new(
                arg.span(),
                format!("{function} cannot take the `ApplicationContext`: it builds what the children run, from the state and the inputs, before they run; remove this parameter"),
            )),
            Ok(param @ Param::Context { .. }) => {
                if let Some(first) = seen_context {
                    let mut e = syn::Error::new(
                        arg.span(),
                        "an action function takes the `ApplicationContext` once",
                    );
                    e.combine(syn::Error::new(first, "the context is first taken here"));
                    errors.push(e);
                }
                seen_context = Some(arg.span());
                params.push(param);
            }
            Ok(param) => params.push(param),
            Err(e) => errors.push(e),
        }
    }

    let output = match &sig.output {
        ReturnType::Default => Err(syn::Error::new(
            sig.paren_token.span.close(),
            format!("missing return type: {returns}; add `-> {default_return}`"),
        )),
        ReturnType::Type(_, ty) => (kind.check_output)(ty).map(|()| (**ty).clone()),
    };

    let is_async = sig.asyncness.is_some();
    if let (Some(asyncness), false) = (sig.asyncness, kind.in_step) {
        errors.push(syn::Error::new(
            asyncness.span,
            format!("{function} cannot be `async`: it builds what the children run, before they run; make it a plain `fn` (the children's actions may be async)"),
        ));
    }
    let result = match output {
        Ok(output) => errors.finish(ActionFn {
            is_async,
            params,
            output,
        }),
        Err(e) => Err(errors.and(e)),
    };
    (item, result)
}

/// Remove `#[input(...)]` from every parameter (it is not a valid attribute there), and
/// give each parameter's default, if any.
fn strip_input_attributes(item: &mut ItemFn, errors: &mut Errors) -> Vec<Option<Expr>> {
    let mut defaults = Vec::new();
    for arg in &mut item.sig.inputs {
        let attrs = match arg {
            FnArg::Typed(pat_type) => &mut pat_type.attrs,
            FnArg::Receiver(receiver) => &mut receiver.attrs,
        };
        let mut default = None;
        let mut kept = Vec::new();
        for attr in attrs.drain(..) {
            if !attr.path().is_ident("input") {
                kept.push(attr);
                continue;
            }
            match input_default(&attr) {
                Ok(expr) if default.is_some() => errors.push(syn::Error::new_spanned(
                    expr,
                    "this parameter already has a default: give `#[input(default = ...)]` once",
                )),
                Ok(expr) => default = Some(expr),
                Err(e) => errors.push(e),
            }
        }
        *attrs = kept;
        defaults.push(default);
    }
    defaults
}

/// The expression of `#[input(default = expr)]`.
fn input_default(attr: &Attribute) -> syn::Result<Expr> {
    const USAGE: &str = "`#[input]` takes a default value: `#[input(default = 5)]`";
    let mut default = None;
    attr.parse_nested_meta(|meta| {
        if !meta.path.is_ident("default") {
            return Err(meta.error(format!("unknown `#[input]` argument: {USAGE}")));
        }
        if default.is_some() {
            return Err(meta.error("`default` is given twice: give it once"));
        }
        let value = meta
            .value()
            .map_err(|_| meta.error(format!("`default` needs a value: {USAGE}")))?;
        default = Some(value.parse::<Expr>()?);
        Ok(())
    })
    .map_err(|e| {
        if matches!(attr.meta, syn::Meta::Path(_)) {
            syn::Error::new_spanned(attr, USAGE)
        } else {
            e
        }
    })?;
    default.ok_or_else(|| syn::Error::new_spanned(attr, USAGE))
}

fn check_state(arg: &FnArg, kind: &Kind) -> syn::Result<()> {
    let Kind {
        attr,
        function,
        shape,
        ..
    } = kind;
    let ty = match arg {
        FnArg::Receiver(receiver) => {
            return Err(syn::Error::new(
                receiver.self_token.span,
                format!("`#[{attr}]` cannot take `self`: write a free function whose first parameter is the state: `{shape}`"),
            ))
        }
        FnArg::Typed(pat_type) => ungroup(&pat_type.ty),
    };
    if let Type::Reference(reference) = ty {
        if is_named(&reference.elem, "State") {
            return Err(syn::Error::new_spanned(
                ty,
                "take the state by value: `state: State` (the action gets its own copy of the keys it reads, and cloning a `State` is cheap)",
            ));
        }
    }
    if is_named(ty, "State") {
        return Ok(());
    }
    if is_context(ty).is_some() {
        return Err(syn::Error::new_spanned(
            ty,
            format!("the state comes first, then the inputs and the context: `{shape}`"),
        ));
    }
    Err(syn::Error::new_spanned(
        ty,
        format!("the first parameter of {function} is the state, of type `State`: `{shape}`"),
    ))
}

fn param(arg: &FnArg, default: Option<Expr>, kind: &Kind) -> syn::Result<Param> {
    let pat_type = match arg {
        FnArg::Typed(pat_type) => pat_type,
        FnArg::Receiver(receiver) => {
            return Err(syn::Error::new(
                receiver.self_token.span,
                format!("`#[{}]` cannot take `self`", kind.attr),
            ))
        }
    };
    let ty = ungroup(&pat_type.ty);
    if let Some(by_ref) = is_context(ty) {
        if let Some(default) = default {
            return Err(syn::Error::new_spanned(
                default,
                "only inputs take a default; the context is always given",
            ));
        }
        return Ok(Param::Context { by_ref });
    }
    if let Some(inner) = first_argument(ty, "Res", 1..=1) {
        if let Some(default) = default {
            return Err(syn::Error::new_spanned(
                default,
                "only inputs take a default; a resource comes from ApplicationBuilder::with_resource",
            ));
        }
        return Ok(Param::Resource {
            ty: Box::new(inner.clone()),
        });
    }
    if let Type::Reference(reference) = ty {
        if reference.mutability.is_some() && is_named(&reference.elem, "ApplicationContext") {
            return Err(syn::Error::new_spanned(
                ty,
                "take the context by shared reference: `ctx: &ApplicationContext`",
            ));
        }
    }
    if is_named(ty, "State") || matches!(ty, Type::Reference(r) if is_named(&r.elem, "State")) {
        return Err(syn::Error::new_spanned(
            ty,
            format!(
                "{} takes one state, as its first parameter; take what else it needs as inputs",
                kind.function
            ),
        ));
    }
    let name = match &*pat_type.pat {
        Pat::Ident(ident) if ident.by_ref.is_none() && ident.subpat.is_none() => {
            syn::ext::IdentExt::unraw(&ident.ident).to_string()
        }
        other => return Err(syn::Error::new_spanned(
            other,
            "an input parameter must be a plain name, which is the input's name: `top_k: usize`",
        )),
    };
    if name.starts_with("__") {
        return Err(syn::Error::new_spanned(
            &pat_type.pat,
            format!("input `{name}`: names starting with `__` are reserved for the framework; rename the parameter"),
        ));
    }
    match ty {
        Type::Reference(_) => {
            return Err(syn::Error::new_spanned(
                ty,
                format!("input `{name}` is borrowed: inputs are deserialized into owned values; take an owned type, such as `String` for `&str`"),
            ))
        }
        Type::ImplTrait(_) | Type::Infer(_) => {
            return Err(syn::Error::new_spanned(
                ty,
                format!("input `{name}` needs a concrete type to be deserialized into, such as `String` or `Vec<i64>`"),
            ))
        }
        _ => {}
    }
    let kind = match default {
        Some(expr) => InputKind::Default(expr),
        None if option_inner(ty).is_some() => InputKind::Option,
        None => InputKind::Required,
    };
    Ok(Param::Input(Box::new(Input {
        name,
        ty: (*pat_type.ty).clone(),
        kind,
    })))
}

fn check_output(ty: &Type) -> syn::Result<()> {
    let unsupported = |what: &str| {
        Err(syn::Error::new_spanned(
            ty,
            format!("unsupported return type: {what}; {RETURNS}"),
        ))
    };
    match ungroup(ty) {
        Type::Tuple(tuple) if tuple.elems.is_empty() => unsupported("`()` gives no new state"),
        Type::Tuple(tuple) if tuple.elems.len() != 2 => {
            unsupported("a tuple must be a pair `(result, State)`")
        }
        Type::Tuple(tuple) => {
            let second = &tuple.elems[1];
            if is_named(second, "State") {
                Ok(())
            } else {
                Err(syn::Error::new_spanned(
                    second,
                    "the second element of the returned pair must be the new state: `(result, State)`",
                ))
            }
        }
        Type::Reference(_) => unsupported("a reference"),
        Type::ImplTrait(_) => unsupported("`impl Trait`; for async work write an `async fn`"),
        Type::Never(_) => unsupported("`!`"),
        Type::Path(_) => match result_error(ty) {
            Some(error) if is_named(error, "String") || is_named(error, "str") => {
                Err(syn::Error::new_spanned(
                    error,
                    "a `String` is not an error type: return `Result<State, ActionError>` and fail with `Err(ActionError::msg(\"...\"))`",
                ))
            }
            _ => Ok(()),
        },
        _ => unsupported("this type"),
    }
}

/// `E` when `ty` is `Result<T, E>` (by its last path segment).
fn result_error(ty: &Type) -> Option<&Type> {
    let Type::Path(TypePath { qself: None, path }) = ungroup(ty) else {
        return None;
    };
    let last = path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.iter().nth(1) {
        Some(GenericArgument::Type(error)) => Some(error),
        _ => None,
    }
}

/// The type inside invisible groups and parentheses.
pub(crate) fn ungroup(ty: &Type) -> &Type {
    match ty {
        Type::Group(group) => ungroup(&group.elem),
        Type::Paren(paren) => ungroup(&paren.elem),
        other => other,
    }
}

/// Whether `ty` is a path whose last segment is `name`, with no generic arguments.
pub(crate) fn is_named(ty: &Type, name: &str) -> bool {
    match ungroup(ty) {
        Type::Path(TypePath { qself: None, path }) => path
            .segments
            .last()
            .is_some_and(|last| last.ident == name && last.arguments.is_none()),
        _ => false,
    }
}

/// `Some(by_ref)` when `ty` is `&ApplicationContext` or `ApplicationContext`.
fn is_context(ty: &Type) -> Option<bool> {
    match ungroup(ty) {
        Type::Reference(r) if r.mutability.is_none() && is_named(&r.elem, "ApplicationContext") => {
            Some(true)
        }
        ty if is_named(ty, "ApplicationContext") => Some(false),
        _ => None,
    }
}

/// `T` when `ty` is `Option<T>` (by its last path segment).
fn option_inner(ty: &Type) -> Option<&Type> {
    first_argument(ty, "Option", 1..=1)
}

/// The first generic argument of `ty` when it is a path whose last segment is `name` with
/// a number of type arguments in `count`: `T` of `Result<T, E>`.
pub(crate) fn first_argument<'a>(
    ty: &'a Type,
    name: &str,
    count: std::ops::RangeInclusive<usize>,
) -> Option<&'a Type> {
    let Type::Path(TypePath { qself: None, path }) = ungroup(ty) else {
        return None;
    };
    let last = path.segments.last()?;
    if last.ident != name {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first() {
        Some(GenericArgument::Type(inner)) if count.contains(&args.args.len()) => Some(inner),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use quote::{quote, ToTokens};

    use super::*;

    fn analyze_ok(item: proc_macro2::TokenStream) -> ActionFn {
        match analyze(syn::parse2(item).unwrap(), &ACTION).1 {
            Ok(action) => action,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }

    fn analyze_err(item: proc_macro2::TokenStream) -> String {
        crate::test_support::error_messages(analyze(syn::parse2(item).unwrap(), &ACTION).1)
    }

    fn input(param: &Param) -> &Input {
        match param {
            Param::Input(input) => input,
            Param::Context { .. } | Param::Resource { .. } => panic!("expected an input"),
        }
    }

    #[test]
    fn models_inputs_context_and_output() {
        let action = analyze_ok(quote! {
            async fn answer(
                state: burr_core::State,
                model: String,
                top_k: Option<usize>,
                #[input(default = 0.5)] temperature: f64,
                ctx: &burr_core::ApplicationContext,
                r#type: Vec<i64>,
            ) -> Result<(serde_json::Value, State), ActionError> { todo!() }
        });
        assert!(action.is_async);
        assert_eq!(action.params.len(), 5);
        assert_eq!(input(&action.params[0]).name, "model");
        assert!(matches!(input(&action.params[0]).kind, InputKind::Required));
        assert!(matches!(input(&action.params[1]).kind, InputKind::Option));
        match &input(&action.params[2]).kind {
            InputKind::Default(expr) => assert_eq!(expr.to_token_stream().to_string(), "0.5"),
            _ => panic!("expected a default"),
        }
        assert!(matches!(action.params[3], Param::Context { by_ref: true }));
        assert_eq!(input(&action.params[4]).name, "type");
        assert_eq!(
            action.output.to_token_stream().to_string(),
            "Result < (serde_json :: Value , State) , ActionError >"
        );
    }

    #[test]
    fn input_attributes_are_removed_from_the_emitted_function() {
        let (item, result) = analyze(
            syn::parse_quote! {
                fn f(state: State, #[input(default = 5)] #[allow(unused)] n: i64) -> State { state }
            },
            &ACTION,
        );
        assert!(result.is_ok());
        let emitted = item.to_token_stream().to_string();
        assert!(!emitted.contains("input"), "{emitted}");
        assert!(emitted.contains("allow"), "{emitted}");
    }

    #[test]
    fn context_by_value_and_plain_fn() {
        let action = analyze_ok(quote! {
            fn f(state: State, ctx: ApplicationContext) -> State { state }
        });
        assert!(!action.is_async);
        assert!(matches!(
            action.params[..],
            [Param::Context { by_ref: false }]
        ));
    }

    #[test]
    fn state_parameter_errors() {
        assert!(analyze_err(quote!(
            fn f() -> State {
                todo!()
            }
        ))
        .starts_with("an action function takes the state as its first parameter"));
        assert!(analyze_err(quote!(
            fn f(state: &State) -> State {
                todo!()
            }
        ))
        .starts_with("take the state by value"));
        assert!(analyze_err(quote!(
            fn f(n: i64) -> State {
                todo!()
            }
        ))
        .starts_with("the first parameter of an action function is the state"));
        assert!(analyze_err(quote!(
            fn f(ctx: &ApplicationContext, s: State) -> State {
                todo!()
            }
        ))
        .starts_with("the state comes first"));
        assert!(analyze_err(quote!(
            fn f(&self) -> State {
                todo!()
            }
        ))
        .starts_with("`#[action]` cannot take `self`"));
        assert!(analyze_err(quote!(
            fn f(state: State, other: State) -> State {
                todo!()
            }
        ))
        .starts_with("an action function takes one state"));
    }

    #[test]
    fn input_errors() {
        assert!(analyze_err(quote!(
            fn f(state: State, name: &str) -> State {
                todo!()
            }
        ))
        .starts_with("input `name` is borrowed"));
        assert!(analyze_err(quote!(
            fn f(state: State, (a, b): (i64, i64)) -> State {
                todo!()
            }
        ))
        .starts_with("an input parameter must be a plain name"));
        assert!(analyze_err(quote!(
            fn f(state: State, __x: i64) -> State {
                todo!()
            }
        ))
        .starts_with("input `__x`: names starting with `__` are reserved"));
        assert!(analyze_err(quote!(
            fn f(state: State, x: impl Into<i64>) -> State {
                todo!()
            }
        ))
        .starts_with("input `x` needs a concrete type"));
        assert!(analyze_err(quote!(
            fn f<T: Clone>(state: State, x: T) -> State {
                todo!()
            }
        ))
        .starts_with("an action function cannot be generic"));
        assert!(analyze_err(quote!(
            fn f(state: State, ctx: &mut ApplicationContext) -> State {
                todo!()
            }
        ))
        .starts_with("take the context by shared reference"));
        assert!(analyze_err(quote!(
            fn f(state: State, a: &ApplicationContext, b: &ApplicationContext) -> State {
                todo!()
            }
        ))
        .starts_with("an action function takes the `ApplicationContext` once"));
    }

    #[test]
    fn input_attribute_errors() {
        assert!(analyze_err(quote!(
            fn f(state: State, #[input] n: i64) -> State {
                todo!()
            }
        ))
        .starts_with("`#[input]` takes a default value"));
        assert!(analyze_err(quote!(
            fn f(state: State, #[input(dflt = 1)] n: i64) -> State {
                todo!()
            }
        ))
        .starts_with("unknown `#[input]` argument"));
        assert!(analyze_err(quote!(
            fn f(state: State, #[input(default)] n: i64) -> State {
                todo!()
            }
        ))
        .starts_with("`default` needs a value"));
        assert!(analyze_err(quote!(
            fn f(#[input(default = State::new())] state: State) -> State {
                todo!()
            }
        ))
        .starts_with("only inputs take a default"));
        assert!(analyze_err(quote!(
            fn f(
                state: State,
                #[input(default = 1)]
                #[input(default = 2)]
                n: i64,
            ) -> State {
                todo!()
            }
        ))
        .starts_with("this parameter already has a default"));
    }

    #[test]
    fn return_type_errors() {
        assert!(analyze_err(quote!(
            fn f(state: State) {}
        ))
        .starts_with("missing return type"));
        assert!(analyze_err(quote!(
            fn f(state: State) -> () {}
        ))
        .starts_with("unsupported return type: `()` gives no new state"));
        assert!(analyze_err(quote!(
            fn f(state: State) -> (i64, State, i64) {
                todo!()
            }
        ))
        .starts_with("unsupported return type: a tuple must be a pair"));
        assert!(analyze_err(quote!(
            fn f(state: State) -> (State, i64) {
                todo!()
            }
        ))
        .starts_with("the second element of the returned pair must be the new state"));
        assert!(analyze_err(quote!(
            fn f(state: State) -> &State {
                todo!()
            }
        ))
        .starts_with("unsupported return type: a reference"));
        assert!(analyze_err(quote!(
            fn f(state: State) -> impl Future<Output = State> {
                todo!()
            }
        ))
        .starts_with("unsupported return type: `impl Trait`"));
        assert!(analyze_err(quote!(
            unsafe fn f(state: State) -> State {
                todo!()
            }
        ))
        .starts_with("an action function cannot be `unsafe`"));
    }

    #[test]
    fn all_errors_are_reported_together() {
        let e = analyze_err(quote!(
            fn f(state: &State, name: &str) {}
        ));
        assert_eq!(e.lines().count(), 3, "{e}");
    }
}
