//! The expansion of the map attributes: the user's function, unchanged but for its
//! `#[input]` attributes, and a constant `StaticAction` referring to a `static` whose
//! `MapAction` (which holds closures, so no constant can) is built on first use.

use proc_macro2::{Group, Ident, Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::ItemFn;

use crate::args::{Errors, Name};
use crate::expand::{
    action_name, bind_input, cfgs, const_name, not_a_function, private_path, stand_in_constant,
};
use crate::map_args::{self, MapArgs, MapKind, Reducer, Setting, Timeout};
use crate::map_signature;
use crate::signature::{self, ActionFn, InputKind, Param};

/// Expand `#[<kind>(attr)] item`. On error, the function is still emitted next to the
/// errors.
pub(crate) fn map(kind: MapKind, attr: TokenStream, item: TokenStream) -> TokenStream {
    let item_fn = match syn::parse2::<ItemFn>(item.clone()) {
        Ok(item_fn) => item_fn,
        Err(_) => {
            let shape = map_signature::kind(kind, false).shape;
            let error = not_a_function(&item, kind.attr(), &format!("{shape} {{ ... }}"))
                .to_compile_error();
            return quote!(#item #error);
        }
    };
    let mut errors = Errors::default();
    let args = errors.ok(map_args::parse(attr, kind));
    let crate_path = args.as_ref().map(|args| private_path(&args.common));
    let keyed = args.as_ref().is_some_and(|args| args.keyed);
    let (item_fn, analyzed) = signature::analyze(item_fn, map_signature::kind(kind, keyed));
    let function = errors.ok(analyzed);
    let const_ident = errors.ok(const_name(&item_fn.sig.ident, kind.attr()));
    match (args, function, const_ident) {
        (Some(args), Some(function), Some(const_ident)) => {
            generate(kind, &args, &function, &const_ident, &item_fn)
        }
        _ => {
            // At least one error was gathered.
            let error = match errors.finish(()) {
                Err(error) => error,
                Ok(()) => syn::Error::new(
                    item_fn.sig.ident.span(),
                    format!("`#[{}]` cannot expand this function", kind.attr()),
                ),
            }
            .to_compile_error();
            let stand_in = stand_in_constant(&item_fn, kind.attr(), crate_path);
            quote!(#item_fn #stand_in #error)
        }
    }
}

fn generate(
    kind: MapKind,
    args: &MapArgs,
    function: &ActionFn,
    const_ident: &Ident,
    item_fn: &ItemFn,
) -> TokenStream {
    let p = private_path(&args.common);
    let fn_ident = &item_fn.sig.ident;
    let vis = &item_fn.vis;
    let cfgs = cfgs(item_fn);
    let name = action_name(&args.common, fn_ident);

    // The generated code's own names, out of reach of the user's tokens.
    let state = Ident::new("state", Span::mixed_site());
    let inputs = Ident::new("inputs", Span::mixed_site());
    let children = Ident::new("children", Span::mixed_site());

    let mut lets = Vec::new();
    let mut call_args = Vec::new();
    let (mut required, mut optional) = (Vec::new(), Vec::new());
    for (index, param) in function.params.iter().enumerate() {
        // `analyze` rejects the context for a map function.
        let Param::Input(input) = param else {
            continue;
        };
        let (var, binding) = bind_input(
            &p,
            &quote!(#name),
            &inputs,
            ("map_required_input", "map_optional_input"),
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

    let target = match (kind, args.keyed) {
        (MapKind::States, false) | (MapKind::ActionsAndStates, _) => {
            quote!(::std::vec::Vec<#p::State>)
        }
        (MapKind::States, true) => {
            quote!(::std::vec::Vec<(::std::string::String, #p::State)>)
        }
        (MapKind::Tasks, _) => quote!(::std::vec::Vec<#p::Task>),
        (MapKind::Actions, _) => quote!(#p::State),
    };
    let output = &function.output;
    let call = quote!(#fn_ident(::core::clone::Clone::clone(#state) #(, #call_args)*));
    let body = quote_spanned!(output.span()=> #p::map_output::<#target, #output>(#call));
    let build_children = quote! {
        |#state: &#p::State, #inputs: &#p::Inputs| -> ::core::result::Result<#target, #p::ActionError> {
            let _ = #inputs;
            #(#lets)*
            #body
        }
    };
    let subgraphs = args
        .subgraphs
        .as_ref()
        .map(|expr| quote_spanned!(expr.span()=> #p::subgraphs(#expr)));
    let map = match kind {
        MapKind::States => {
            let subgraph = args
                .subgraph
                .as_ref()
                .map(|expr| quote_spanned!(expr.span()=> { let subgraph: #p::SubGraph = #expr; subgraph }));
            let constructor = if args.keyed {
                quote!(keyed_states)
            } else {
                quote!(states)
            };
            quote!(#p::MapAction::#constructor(#name, #subgraph, #build_children))
        }
        MapKind::Tasks => quote!(#p::MapAction::tasks(#name, #build_children)),
        MapKind::Actions => quote!(#p::MapAction::actions(#name, #subgraphs, #build_children)),
        MapKind::ActionsAndStates => {
            quote!(#p::MapAction::actions_and_states(#name, #subgraphs, #build_children))
        }
    };
    let reduce = args.reducer.as_ref().map(|reducer| {
        let (method, path) = match reducer {
            Reducer::States(path) => (quote!(reduce), path),
            Reducer::Outcomes(path) => (quote!(reduce_settled), path),
        };
        let call =
            quote_spanned!(path.span()=> #p::map_output::<#p::State, _>(#path(#state, #children)));
        quote!(.#method(|#state, #children| #call))
    });
    let settings = settings(args, &p);
    let names = |v: &[Name]| v.iter().map(|n| n.value.clone()).collect::<Vec<_>>();
    let common = &args.common;
    let (reads, writes, tags) = (
        names(&common.reads),
        names(&common.writes),
        names(&common.tags),
    );
    let doc = map_doc(kind, &name, &fn_ident.unraw().to_string(), &reads, &writes);

    let build = Ident::new("build", Span::mixed_site());
    let lazy = Ident::new("MAP", Span::mixed_site());
    quote! {
        #item_fn

        #cfgs
        #[doc = #doc]
        #[allow(non_upper_case_globals)]
        #vis const #const_ident: #p::StaticAction = {
            fn #build() -> #p::MapAction {
                #map
                    #reduce
                    #(#settings)*
                    .reads(#p::names(&[#(#reads),*]))
                    .writes(#p::names(&[#(#writes),*]))
                    .inputs(#p::names(&[#(#required),*]))
                    .optional_inputs(#p::names(&[#(#optional),*]))
                    .tags(#p::names(&[#(#tags),*]))
            }
            static #lazy: #p::LazyMap = #p::LazyMap::new(#build);
            #p::StaticAction::new(&#lazy)
        };
    }
}

/// The builder calls for `policy`, `priority`, `timeout`, `persister` and `tracker`, after
/// the reducer's (`reduce_settled` sets the policy, and the one written wins). Each value
/// is bound to a variable of the type the builder takes, the value at the user's tokens and
/// the type at the argument's key, so that a value of another type is an error there,
/// naming the argument, rather than at the generated call.
fn settings(args: &MapArgs, p: &TokenStream) -> Vec<TokenStream> {
    let typed = |method: &str, ty: TokenStream, setting: &Setting| {
        let method = Ident::new(method, Span::call_site());
        let value = Ident::new("value", Span::mixed_site());
        let ty = respan(ty, setting.key);
        let expr = &setting.value;
        let value = quote_spanned!(expr.span()=> { let #value: #ty = #expr; #value });
        quote!(.#method(#value))
    };
    let mut calls = Vec::new();
    if let Some(policy) = &args.policy {
        calls.push(typed("policy", quote!(#p::FailurePolicy), policy));
    }
    if let Some(priority) = &args.priority {
        calls.push(typed("priority", quote!(i32), priority));
    }
    match &args.timeout {
        Some(Timeout::Millis(millis, span)) => {
            let duration = quote_spanned!(*span=> ::core::time::Duration::from_millis(#millis));
            calls.push(quote!(.timeout(#duration)));
        }
        Some(Timeout::Expr(timeout)) => {
            calls.push(typed("timeout", quote!(::core::time::Duration), timeout));
        }
        None => {}
    }
    match &args.child_retry {
        Some(crate::args::Retry::Attempts(attempts, span)) => {
            let policy = quote_spanned!(*span=> #p::RetryPolicy::new(#attempts));
            calls.push(quote!(.child_retry(#policy)));
        }
        Some(crate::args::Retry::Policy(setting)) => {
            calls.push(typed("child_retry", quote!(#p::RetryPolicy), setting));
        }
        None => {}
    }
    if let Some(persister) = &args.persister {
        calls.push(typed("persister", quote!(#p::ChildPersister), persister));
    }
    if let Some(tracker) = &args.tracker {
        calls.push(typed("tracker", quote!(#p::ChildTracker), tracker));
    }
    calls
}

/// `tokens`, every one of them spanned at `span`.
pub(crate) fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|token| match token {
            TokenTree::Group(group) => {
                let mut respanned = Group::new(group.delimiter(), respan(group.stream(), span));
                respanned.set_span(span);
                TokenTree::Group(respanned)
            }
            mut token => {
                token.set_span(span);
                token
            }
        })
        .collect()
}

fn map_doc(
    kind: MapKind,
    name: &str,
    function: &str,
    reads: &[String],
    writes: &[String],
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
    format!(
        "The map action `{name}`, made by `#[{}]` from the function `{function}`: reads {}; writes {}.",
        kind.attr(),
        list(reads),
        list(writes)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(kind: MapKind, attr: TokenStream, item: TokenStream) -> String {
        map(kind, attr, item).to_string()
    }

    #[test]
    fn generates_the_function_and_a_lazy_map_constant() {
        let out = expand(
            MapKind::States,
            quote!(
                subgraph = SubGraph::action(Measure),
                reduce = collect,
                reads = [words],
                writes = [lengths],
                policy = FailurePolicy::WaitAll
            ),
            quote!(
                pub fn word_lengths(
                    state: State,
                    #[input(default = 1)] min: usize,
                ) -> Result<Vec<State>, ActionError> {
                    todo!()
                }
            ),
        );
        assert!(
            out.contains("pub fn word_lengths (state : State , min : usize"),
            "{out}"
        );
        assert!(
            out.contains("pub const WordLengths : :: burr_core :: __private :: StaticAction"),
            "{out}"
        );
        assert!(
            out.contains(":: burr_core :: __private :: MapAction :: states (\"word_lengths\""),
            "{out}"
        );
        assert!(out.contains(". reduce (|"), "{out}");
        assert!(
            out.contains(". policy ({ let value : :: burr_core :: __private :: FailurePolicy = FailurePolicy :: WaitAll ; value })"),
            "{out}"
        );
        assert!(
            out.contains("static MAP : :: burr_core :: __private :: LazyMap"),
            "{out}"
        );
        assert!(out.contains("map_optional_input"), "{out}");
        assert!(!out.contains("compile_error"), "{out}");
    }

    #[test]
    fn each_attribute_builds_its_map_action() {
        let out = expand(
            MapKind::States,
            quote!(subgraph = g(), keyed, crate = my_burr),
            quote!(
                fn by_key(state: State) -> Vec<(String, State)> {
                    todo!()
                }
            ),
        );
        assert!(
            out.contains("my_burr :: __private :: MapAction :: keyed_states"),
            "{out}"
        );
        assert!(!out.contains(":: burr_core"), "{out}");
        assert!(!out.contains(". reduce"), "{out}");
        let out = expand(
            MapKind::Tasks,
            quote!(reduce_settled = settle, name = "fan"),
            quote!(
                fn fan_out(state: State) -> Vec<Task> {
                    todo!()
                }
            ),
        );
        assert!(out.contains("MapAction :: tasks (\"fan\""), "{out}");
        assert!(out.contains(". reduce_settled (|"), "{out}");
        let out = expand(
            MapKind::Actions,
            quote!(subgraphs = [a(), b()]),
            quote!(
                fn both(state: State) -> State {
                    state
                }
            ),
        );
        assert!(out.contains("MapAction :: actions (\"both\" , :: burr_core :: __private :: subgraphs ([a () , b ()])"), "{out}");
        let out = expand(
            MapKind::ActionsAndStates,
            quote!(subgraphs = [a(), b()]),
            quote!(
                fn product(state: State) -> Vec<State> {
                    vec![state]
                }
            ),
        );
        assert!(out.contains("MapAction :: actions_and_states (\"product\" , :: burr_core :: __private :: subgraphs ([a () , b ()])"), "{out}");
        assert!(
            out.contains("-> :: core :: result :: Result < :: std :: vec :: Vec < :: burr_core :: __private :: State >"),
            "{out}"
        );
    }

    #[test]
    fn how_the_children_run_is_set_on_the_builder() {
        let function = quote!(
            fn fan_out(state: State) -> Vec<Task> {
                todo!()
            }
        );
        let out = expand(
            MapKind::Tasks,
            quote!(
                priority = 7,
                timeout = "2m",
                persister = ChildPersister::None,
                tracker = ChildTracker::None,
                policy = FailurePolicy::WaitAll
            ),
            function.clone(),
        );
        assert!(
            out.contains(". priority ({ let value : i32 = 7 ; value })"),
            "{out}"
        );
        assert!(
            out.contains(". timeout (:: core :: time :: Duration :: from_millis (120000u64))"),
            "{out}"
        );
        assert!(out.contains(". persister ({ let value : :: burr_core :: __private :: ChildPersister = ChildPersister :: None ; value })"), "{out}");
        assert!(out.contains(". tracker ({ let value : :: burr_core :: __private :: ChildTracker = ChildTracker :: None ; value })"), "{out}");
        let out = expand(
            MapKind::States,
            quote!(subgraph = g(), timeout = Duration::from_secs(limit())),
            quote!(
                fn lengths(state: State) -> Vec<State> {
                    todo!()
                }
            ),
        );
        assert!(out.contains(". timeout ({ let value : :: core :: time :: Duration = Duration :: from_secs (limit ()) ; value })"), "{out}");
        assert!(!out.contains(". priority"), "{out}");
        let out = expand(MapKind::Tasks, quote!(), function);
        for method in [". priority", ". timeout", ". persister", ". tracker"] {
            assert!(!out.contains(method), "{out}");
        }
    }

    #[test]
    fn on_error_the_function_is_still_emitted() {
        let out = expand(
            MapKind::States,
            quote!(reduce = collect),
            quote!(
                fn lengths(state: State) -> Vec<State> {
                    todo!()
                }
            ),
        );
        assert!(
            out.contains("fn lengths (state : State) -> Vec < State >"),
            "{out}"
        );
        assert!(out.contains("needs `subgraph = <SubGraph>`"), "{out}");
        // The constant stands in all the same, so that code naming it gets no error.
        assert!(
            out.contains("const Lengths :") && out.contains("InvalidAction"),
            "{out}"
        );
        let out = expand(
            MapKind::Tasks,
            quote!(),
            quote!(
                struct Fan;
            ),
        );
        assert!(out.starts_with("struct Fan ;"), "{out}");
        assert!(
            out.contains("`#[map_tasks]` applies to a function with a body"),
            "{out}"
        );
    }
}
