//! The expansion: the user's function, unchanged but for its `#[input]` attributes, and a
//! constant `StaticAction` whose action calls it.

use proc_macro2::{Ident, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Item, ItemFn, LitStr};

use crate::args::{self, ActionArgs, Errors};
use crate::names::{type_display, upper_camel};
use crate::signature::{self, ActionFn, Input, InputKind, Param};

/// Expand `#[action(attr)] item`. On error, the function is still emitted (so that IDEs and
/// its other uses keep working) next to the errors.
pub(crate) fn action(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item_fn = match syn::parse2::<ItemFn>(item.clone()) {
        Ok(item_fn) => item_fn,
        Err(_) => {
            let error = not_a_function(
                &item,
                "action",
                "fn name(state: State, ...) -> State { ... }",
            )
            .to_compile_error();
            return quote!(#item #error);
        }
    };
    let args = args::parse(attr);
    let crate_path = args.as_ref().ok().map(|args| private_path(&args.common));
    let (item_fn, analyzed) = signature::analyze(item_fn, &signature::ACTION);
    match check(args, analyzed, &item_fn) {
        Ok(checked) => generate(&checked, &item_fn),
        Err(error) => {
            let error = error.to_compile_error();
            let stand_in = stand_in_constant(&item_fn, "action", crate_path);
            quote!(#item_fn #stand_in #error)
        }
    }
}

/// After an error: the action's constant all the same (an action that only fails), so that
/// the code naming it (`with_actions([Answer])`) does not add errors of its own.
pub(crate) fn stand_in_constant(
    item_fn: &ItemFn,
    attr: &str,
    crate_path: Option<TokenStream>,
) -> TokenStream {
    let Ok(const_ident) = const_name(&item_fn.sig.ident, attr) else {
        return TokenStream::new();
    };
    let p = crate_path.unwrap_or_else(|| quote!(::burr_core::__private));
    let vis = &item_fn.vis;
    let cfgs = cfgs(item_fn);
    quote! {
        #cfgs
        #[allow(non_upper_case_globals, dead_code)]
        #vis const #const_ident: #p::StaticAction = #p::StaticAction::new(&#p::InvalidAction);
    }
}

/// The error for `#[attr]` on an item that is not a function: `shape` shows the function
/// it wants.
pub(crate) fn not_a_function(item: &TokenStream, attr: &str, shape: &str) -> syn::Error {
    let span = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Struct(item)) => item.struct_token.span,
        Ok(Item::Enum(item)) => item.enum_token.span,
        Ok(Item::Union(item)) => item.union_token.span,
        Ok(Item::Impl(item)) => item.impl_token.span,
        Ok(Item::Trait(item)) => item.trait_token.span,
        Ok(Item::Mod(item)) => item.mod_token.span,
        Ok(Item::Const(item)) => item.const_token.span,
        Ok(Item::Static(item)) => item.static_token.span,
        Ok(Item::Type(item)) => item.type_token.span,
        Ok(Item::Use(item)) => item.use_token.span,
        _ => item
            .clone()
            .into_iter()
            .next()
            .map_or_else(Span::call_site, |token| token.span()),
    };
    syn::Error::new(
        span,
        format!("`#[{attr}]` applies to a function with a body: `{shape}`"),
    )
}

/// The arguments and the function, checked together.
struct Checked {
    args: ActionArgs,
    action: ActionFn,
    const_ident: Ident,
}

fn check(
    args: syn::Result<ActionArgs>,
    analyzed: syn::Result<ActionFn>,
    item_fn: &ItemFn,
) -> syn::Result<Checked> {
    let mut errors = Errors::default();
    let args = errors.ok(args);
    let action = errors.ok(analyzed);
    let const_ident = errors.ok(const_name(&item_fn.sig.ident, "action"));
    let blocking = args.as_ref().and_then(|args| args.blocking);
    if let (Some(blocking), Some(_)) = (blocking, item_fn.sig.asyncness) {
        errors.push(syn::Error::new(
            blocking,
            "`blocking` runs a plain `fn` on the blocking thread pool; an `async fn` runs on the async runtime: remove `blocking` or make the function a plain `fn`",
        ));
    }
    match (args, action, const_ident) {
        (Some(args), Some(action), Some(const_ident)) => errors.finish(Checked {
            args,
            action,
            const_ident,
        }),
        // At least one error was gathered.
        _ => errors.finish(()).and_then(|()| {
            Err(syn::Error::new(
                item_fn.sig.ident.span(),
                "`#[action]` cannot expand this function",
            ))
        }),
    }
}

/// The action constant's name: the UpperCamelCase of the function's (`attr` names the
/// attribute in errors).
pub(crate) fn const_name(fn_ident: &Ident, attr: &str) -> syn::Result<Ident> {
    let fn_name = fn_ident.unraw().to_string();
    match upper_camel(&fn_name) {
        Some(camel) if camel != fn_name => Ok(Ident::new(&camel, fn_ident.span())),
        Some(camel) => Err(syn::Error::new(
            fn_ident.span(),
            format!("`#[{attr}]` makes a constant named `{camel}`, the UpperCamelCase of the function's name, for the action, which would clash with the function: name the function in snake_case"),
        )),
        None => Err(syn::Error::new(
            fn_ident.span(),
            format!("`#[{attr}]` makes a constant named by the UpperCamelCase of the function's name, for the action, and this name has none: start it with a letter"),
        )),
    }
}

fn generate(checked: &Checked, item_fn: &ItemFn) -> TokenStream {
    let Checked {
        args,
        action,
        const_ident,
    } = checked;
    let p = private_path(&args.common);
    let fn_ident = &item_fn.sig.ident;
    let vis = &item_fn.vis;
    let cfgs = cfgs(item_fn);
    let name = action_name(&args.common, fn_ident);

    // The generated function's own names, out of reach of the user's tokens.
    let state = Ident::new("state", Span::mixed_site());
    let inputs = Ident::new("inputs", Span::mixed_site());
    let ctx = Ident::new("ctx", Span::mixed_site());
    let owned_ctx = Ident::new("owned_ctx", Span::mixed_site());

    let mut lets = Vec::new();
    let mut call_args = Vec::new();
    let (mut required, mut optional) = (Vec::new(), Vec::new());
    for (index, param) in action.params.iter().enumerate() {
        let input = match param {
            Param::Context { by_ref } => {
                call_args.push(match (args.blocking.is_some(), by_ref) {
                    (false, true) => quote!(#ctx),
                    (false, false) => quote!(::core::clone::Clone::clone(#ctx)),
                    (true, true) => quote!(&#owned_ctx),
                    (true, false) => quote!(#owned_ctx),
                });
                continue;
            }
            Param::Resource { ty } => {
                let var = format_ident!("resource_{}", index, span = Span::mixed_site());
                lets.push(quote_spanned!(ty.span()=> let #var = #p::resource::<#ty>(#ctx)?;));
                call_args.push(quote!(#var));
                continue;
            }
            Param::Input(input) => input,
        };
        let (var, binding) = bind_input(
            &p,
            &quote!(#ctx),
            &inputs,
            ("required_input", "optional_input"),
            index,
            input,
        );
        lets.push(binding);
        match input.kind {
            InputKind::Required => required.push(input.name.clone()),
            InputKind::Option | InputKind::Default(_) => optional.push(input.name.clone()),
        }
        call_args.push(quote!(#var));
    }

    let output = &action.output;
    let into_output = quote_spanned!(output.span()=> #p::into_output::<#output>);
    let call = quote!(#fn_ident(#state #(, #call_args)*));
    let run = if action.is_async {
        quote!(#into_output(#call.await))
    } else if args.blocking.is_some() {
        let has_context = action
            .params
            .iter()
            .any(|param| matches!(param, Param::Context { .. }));
        let clone_ctx =
            has_context.then(|| quote!(let #owned_ctx = ::core::clone::Clone::clone(#ctx);));
        quote! {
            #clone_ctx
            #p::run_blocking(#ctx, move || #into_output(#call)).await
        }
    } else {
        quote!(#into_output(#call))
    };

    let names = |v: &[args::Name]| v.iter().map(|n| n.value.clone()).collect::<Vec<_>>();
    let common = &args.common;
    let (reads, writes, tags) = (
        names(&common.reads),
        names(&common.writes),
        names(&common.tags),
    );
    let doc = action_doc(
        &name,
        &fn_ident.unraw().to_string(),
        &reads,
        &writes,
        &required,
        &optional,
    );
    let lists = [
        ("reads", &reads),
        ("writes", &writes),
        ("inputs", &required),
        ("optional_inputs", &optional),
        ("tags", &tags),
    ]
    .into_iter()
    .filter(|(_, items)| !items.is_empty())
    .map(|(method, items)| {
        let method = Ident::new(method, Span::call_site());
        quote!(.#method([#(#items),*]))
    });

    let failure = failure_settings(args, &p);
    let action_struct = Ident::new("__BurrAction", Span::mixed_site());
    quote! {
        #item_fn

        #cfgs
        #[doc = #doc]
        #[allow(non_upper_case_globals)]
        #vis const #const_ident: #p::StaticAction = {
            struct #action_struct;

            #[#p::async_trait]
            impl #p::Action for #action_struct {
                fn declaration(&self) -> &#p::Declaration {
                    static DECLARATION: #p::LazyLock<#p::Declaration> = #p::LazyLock::new(|| {
                        #p::Declaration::new(#name)#(#lists)*.single_step()#(#failure)*
                    });
                    &DECLARATION
                }
                async fn run_and_update(
                    &self,
                    #state: #p::State,
                    #inputs: &#p::Inputs,
                    #ctx: &#p::ApplicationContext,
                ) -> ::core::result::Result<(#p::ActionResult, #p::State), #p::ActionError> {
                    let _ = (#inputs, #ctx);
                    #(#lets)*
                    #run
                }
            }

            #p::StaticAction::new(&#action_struct)
        };
    }
}

/// The declaration's `.retry(..)` and `.timeout(..)` from `retry` and `timeout`. A value
/// is bound to a variable of the type the declaration takes, spanned at the argument's
/// key, so that a value of another type is an error there, naming the argument.
fn failure_settings(args: &ActionArgs, p: &TokenStream) -> Vec<TokenStream> {
    let typed = |ty: TokenStream, setting: &crate::map_args::Setting| {
        let value = Ident::new("value", Span::mixed_site());
        let ty = crate::map_expand::respan(ty, setting.key);
        let expr = &setting.value;
        quote_spanned!(expr.span()=> { let #value: #ty = #expr; #value })
    };
    let mut calls = Vec::new();
    match &args.retry {
        Some(args::Retry::Attempts(attempts, span)) => {
            let policy = quote_spanned!(*span=> #p::RetryPolicy::new(#attempts));
            calls.push(quote!(.retry(#policy)));
        }
        Some(args::Retry::Policy(setting)) => {
            let policy = typed(quote!(#p::RetryPolicy), setting);
            calls.push(quote!(.retry(#policy)));
        }
        None => {}
    }
    match &args.timeout {
        Some(crate::map_args::Timeout::Millis(millis, span)) => {
            let duration = quote_spanned!(*span=> ::core::time::Duration::from_millis(#millis));
            calls.push(quote!(.timeout(#duration)));
        }
        Some(crate::map_args::Timeout::Expr(setting)) => {
            let duration = typed(quote!(::core::time::Duration), setting);
            calls.push(quote!(.timeout(#duration)));
        }
        None => {}
    }
    calls
}

/// `<burr-core>::__private`, burr-core named as `crate = ...` says.
/// The variable holding input `index` and the `let` that binds it, read from `inputs`
/// with `#p::<required>`/`#p::<optional>` (`(required, optional)` names them), whose first
/// argument is `first` (what names the action in errors). A `#[input(default = ..)]`
/// applies when the input is absent.
pub(crate) fn bind_input(
    p: &TokenStream,
    first: &TokenStream,
    inputs: &Ident,
    (required, optional): (&str, &str),
    index: usize,
    input: &Input,
) -> (Ident, TokenStream) {
    let var = format_ident!("input_{}", index, span = Span::mixed_site());
    let value = Ident::new("value", Span::mixed_site());
    let ty = &input.ty;
    let input_name = &input.name;
    let expected = type_display(ty);
    let lookup = |function: &str| {
        let function = Ident::new(function, Span::call_site());
        quote_spanned!(ty.span()=> #p::#function::<#ty>(#first, #inputs, #input_name, #expected)?)
    };
    let binding = match &input.kind {
        InputKind::Required => {
            let lookup = lookup(required);
            quote!(let #var: #ty = #lookup;)
        }
        InputKind::Option => {
            let lookup = lookup(optional);
            quote!(let #var: #ty = ::core::option::Option::flatten(#lookup);)
        }
        InputKind::Default(default) => {
            let lookup = lookup(optional);
            quote! {
                let #var: #ty = match #lookup {
                    ::core::option::Option::Some(#value) => #value,
                    ::core::option::Option::None => {
                        let #value: #ty = #default;
                        #value
                    }
                };
            }
        }
    };
    (var, binding)
}

pub(crate) fn private_path(common: &args::Common) -> TokenStream {
    let krate = common
        .krate
        .as_ref()
        .map_or_else(|| quote!(::burr_core), ToTokens::to_token_stream);
    quote!(#krate::__private)
}

/// The function's `#[cfg]` attributes, for the items generated next to it.
pub(crate) fn cfgs(item_fn: &ItemFn) -> TokenStream {
    let cfgs = item_fn
        .attrs
        .iter()
        .filter(|attr| attr.path().is_ident("cfg"));
    quote!(#(#cfgs)*)
}

/// The action's name: `name = "..."`, or the function's.
pub(crate) fn action_name(common: &args::Common, fn_ident: &Ident) -> String {
    common
        .name
        .as_ref()
        .map_or_else(|| fn_ident.unraw().to_string(), LitStr::value)
}

fn action_doc(
    name: &str,
    function: &str,
    reads: &[String],
    writes: &[String],
    required: &[String],
    optional: &[String],
) -> String {
    let list = |items: &[String]| {
        if items.is_empty() {
            "nothing".to_owned()
        } else {
            items
                .iter()
                .map(|item| format!("`{item}`"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let mut doc = format!(
        "The action `{name}`, made by `#[action]` from the function `{function}`: reads {}; writes {}",
        list(reads),
        list(writes)
    );
    if !required.is_empty() {
        doc.push_str(&format!("; takes {}", list(required)));
    }
    if !optional.is_empty() {
        doc.push_str(&format!("; optionally takes {}", list(optional)));
    }
    doc.push('.');
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(attr: TokenStream, item: TokenStream) -> String {
        action(attr, item).to_string()
    }

    #[test]
    fn generates_the_function_and_an_action_constant() {
        let out = expand(
            quote!(reads = [count], writes = [count], tags = ["math"]),
            quote!(
                pub fn add_one(state: State, #[input(default = 1)] by: i64) -> State {
                    state
                }
            ),
        );
        assert!(
            out.contains("pub fn add_one (state : State , by : i64) -> State"),
            "{out}"
        );
        assert!(
            out.contains("pub const AddOne : :: burr_core :: __private :: StaticAction"),
            "{out}"
        );
        assert!(
            out.contains("impl :: burr_core :: __private :: Action for __BurrAction"),
            "{out}"
        );
        assert!(out.contains("\"add_one\""), "{out}");
        assert!(out.contains("optional_inputs"), "{out}");
        assert!(!out.contains("compile_error"), "{out}");
    }

    #[test]
    fn output_needs_no_dependency_but_burr_core() {
        let out = expand(
            quote!(reads = [a], writes = [b], blocking),
            quote!(
                fn step(
                    state: State,
                    x: Option<i64>,
                    #[input(default = 2)] y: i64,
                    ctx: &ApplicationContext,
                ) -> State {
                    state
                }
            ),
        );
        // The output with every `::burr_core::__private::<item>` path taken out.
        let outside_private = |out: &str| {
            let mut parts = out.split(":: burr_core :: __private :: ");
            let mut rest = parts.next().unwrap_or_default().to_owned();
            for part in parts {
                rest.push_str(part.trim_start_matches(|c: char| c.is_alphanumeric() || c == '_'));
            }
            rest
        };
        for dependency in ["serde", "async_trait", "tokio", "futures"] {
            assert!(
                !outside_private(&out).contains(dependency),
                "{dependency} in {out}"
            );
        }
        let async_out = expand(
            quote!(),
            quote!(
                async fn step(state: State) -> State {
                    state
                }
            ),
        );
        assert!(
            async_out.contains(":: burr_core :: __private :: async_trait"),
            "{async_out}"
        );
        assert!(
            !outside_private(&async_out).contains("async_trait"),
            "{async_out}"
        );
    }

    #[test]
    fn name_and_crate_arguments() {
        let out = expand(
            quote!(name = "renamed", crate = my_burr),
            quote!(
                fn step(state: State) -> State {
                    state
                }
            ),
        );
        assert!(out.contains("\"renamed\""), "{out}");
        assert!(
            out.contains("const Step : my_burr :: __private :: StaticAction"),
            "{out}"
        );
        assert!(!out.contains(":: burr_core"), "{out}");
    }

    #[test]
    fn on_error_the_function_is_still_emitted() {
        let out = expand(
            quote!(reads = count),
            quote!(
                fn step(state: State, #[input(default = 2)] n: i64) -> State {
                    state
                }
            ),
        );
        assert!(
            out.contains("fn step (state : State , n : i64) -> State"),
            "{out}"
        );
        assert!(out.contains("compile_error"), "{out}");
        // The constant stands in all the same, so that code naming it gets no error.
        assert!(
            out.contains("const Step :") && out.contains("InvalidAction"),
            "{out}"
        );
    }

    #[test]
    fn not_a_function_is_emitted_unchanged() {
        let out = expand(
            quote!(),
            quote!(
                struct Step;
            ),
        );
        assert!(out.starts_with("struct Step ;"), "{out}");
        assert!(out.contains("applies to a function"), "{out}");
    }

    #[test]
    fn constant_name_must_differ_from_the_function() {
        let out = expand(
            quote!(),
            quote!(
                fn Step(state: State) -> State {
                    state
                }
            ),
        );
        assert!(out.contains("would clash with the function"), "{out}");
    }

    #[test]
    fn blocking_needs_a_plain_fn() {
        let out = expand(
            quote!(blocking),
            quote!(
                async fn step(state: State) -> State {
                    state
                }
            ),
        );
        assert!(out.contains("`blocking` runs a plain `fn`"), "{out}");
        let out = expand(
            quote!(blocking),
            quote!(
                fn step(state: State) -> State {
                    state
                }
            ),
        );
        assert!(out.contains("run_blocking"), "{out}");
    }

    #[test]
    fn doc_lists_keys_and_inputs() {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            action_doc("answer", "answer", &s(&["query"]), &s(&[]), &s(&["model"]), &s(&["top_k", "t"])),
            "The action `answer`, made by `#[action]` from the function `answer`: reads `query`; writes nothing; takes `model`; optionally takes `top_k`, `t`."
        );
    }
}
