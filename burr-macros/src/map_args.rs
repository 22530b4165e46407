//! The arguments of the map attributes, `#[map_states]`, `#[map_tasks]` and
//! `#[map_actions]`: the common ones of [`args`](crate::args), and what the children run,
//! how their states are reduced and what happens when they fail.

use proc_macro2::{Span, TokenStream};
use syn::{Expr, Path};

use crate::args::{self, Common, Errors, Spec};

/// Which map attribute.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum MapKind {
    /// `#[map_states]`: one sub-graph over many states.
    States,
    /// `#[map_tasks]`: tasks built by the function.
    Tasks,
    /// `#[map_actions]`: many sub-graphs over one state.
    Actions,
}

const STATES: Spec = Spec {
    attr: "map_states",
    known: &[
        "subgraph",
        "keyed",
        "reduce",
        "reduce_settled",
        "policy",
        "reads",
        "writes",
        "name",
        "tags",
        "crate",
    ],
    listing: "`subgraph = <SubGraph>`, `keyed`, `reduce = path`, `reduce_settled = path`, `policy = <FailurePolicy>`, `reads = [...]`, `writes = [...]`, `name = \"...\"`, `tags = [...]` and `crate = path`",
};

const TASKS: Spec = Spec {
    attr: "map_tasks",
    known: &[
        "reduce",
        "reduce_settled",
        "policy",
        "reads",
        "writes",
        "name",
        "tags",
        "crate",
    ],
    listing: "`reduce = path`, `reduce_settled = path`, `policy = <FailurePolicy>`, `reads = [...]`, `writes = [...]`, `name = \"...\"`, `tags = [...]` and `crate = path`",
};

const ACTIONS: Spec = Spec {
    attr: "map_actions",
    known: &[
        "subgraphs",
        "reduce",
        "reduce_settled",
        "policy",
        "reads",
        "writes",
        "name",
        "tags",
        "crate",
    ],
    listing: "`subgraphs = [<SubGraph>, ...]`, `reduce = path`, `reduce_settled = path`, `policy = <FailurePolicy>`, `reads = [...]`, `writes = [...]`, `name = \"...\"`, `tags = [...]` and `crate = path`",
};

impl MapKind {
    /// The attribute's name, without `#[]`.
    pub(crate) fn attr(self) -> &'static str {
        self.spec().attr
    }

    fn spec(self) -> &'static Spec {
        match self {
            MapKind::States => &STATES,
            MapKind::Tasks => &TASKS,
            MapKind::Actions => &ACTIONS,
        }
    }
}

/// How the children's final states become the parent's new state.
pub(crate) enum Reducer {
    /// `reduce = path`: `fn(State, Vec<State>) -> Result<State, E>`.
    States(Path),
    /// `reduce_settled = path`: `fn(State, Vec<ChildOutcome>) -> Result<State, E>`.
    Outcomes(Path),
}

/// The checked arguments of a map attribute.
#[derive(Default)]
pub(crate) struct MapArgs {
    /// `reads`, `writes`, `tags`, `name`, `crate`.
    pub(crate) common: Common,
    /// `subgraph = <expr>` (`#[map_states]`).
    pub(crate) subgraph: Option<Expr>,
    /// `subgraphs = <expr>` (`#[map_actions]`).
    pub(crate) subgraphs: Option<Expr>,
    /// `keyed` (`#[map_states]`).
    pub(crate) keyed: bool,
    /// `reduce` or `reduce_settled`; none leaves the state unchanged.
    pub(crate) reducer: Option<Reducer>,
    /// `policy = <expr>`.
    pub(crate) policy: Option<Expr>,
}

/// Parse and check the arguments of the map attribute `kind`.
pub(crate) fn parse(attr: TokenStream, kind: MapKind) -> syn::Result<MapArgs> {
    let mut args = MapArgs::default();
    let mut errors = Errors::default();
    args::parse_each(attr, kind.spec(), &mut errors, |key, arg| {
        if let Some(result) = args.common.apply(key, &arg) {
            return result;
        }
        match key {
            "subgraph" => {
                args.subgraph = Some(args::expr(
                    &arg,
                    key,
                    "the `SubGraph` each child runs",
                    "subgraph = SubGraph::action(Measure)",
                )?);
            }
            "subgraphs" => {
                args.subgraphs = Some(args::expr(
                    &arg,
                    key,
                    "the `SubGraph`s the children run, in brackets",
                    "subgraphs = [SubGraph::action(Double), SubGraph::action(Square)]",
                )?);
            }
            "keyed" => {
                args::flag(&arg, key)?;
                args.keyed = true;
            }
            "reduce" | "reduce_settled" => {
                let settled = key == "reduce_settled";
                let example = if settled {
                    "reduce_settled = collect_outcomes"
                } else {
                    "reduce = collect_lengths"
                };
                let path = args::path(&arg, key, "the reducer function", example)?;
                if let Some(first) = &args.reducer {
                    let first = match first {
                        Reducer::States(_) => "reduce",
                        Reducer::Outcomes(_) => "reduce_settled",
                    };
                    return Err(syn::Error::new(
                        arg.key.span(),
                        format!("`{first}` is given already: give one reducer, `reduce` (the children's states) or `reduce_settled` (each child's outcome)"),
                    ));
                }
                args.reducer = Some(if settled {
                    Reducer::Outcomes(path)
                } else {
                    Reducer::States(path)
                });
            }
            _ => {
                args.policy = Some(args::expr(
                    &arg,
                    key,
                    "a `FailurePolicy`",
                    "policy = FailurePolicy::WaitAll",
                )?);
            }
        }
        Ok(())
    })?;
    let missing = match kind {
        MapKind::States if args.subgraph.is_none() => Some("`subgraph = <SubGraph>`: what each child runs, as in `subgraph = SubGraph::action(Measure)`"),
        MapKind::Actions if args.subgraphs.is_none() => Some("`subgraphs = [<SubGraph>, ...]`: what the children run, one child each, as in `subgraphs = [SubGraph::action(Double), SubGraph::action(Square)]`"),
        _ => None,
    };
    if let Some(missing) = missing {
        errors.push(syn::Error::new(
            Span::call_site(),
            format!("`#[{}]` needs {missing}", kind.attr()),
        ));
    }
    if let (None, Some(first)) = (&args.reducer, args.common.writes.first()) {
        errors.push(syn::Error::new(
            first.span,
            format!("`writes` lists `{}`, but with no `reduce` the map action leaves the state unchanged: add `reduce = <fn(State, Vec<State>) -> Result<State, E>>`, or remove `writes`", first.value),
        ));
    }
    errors.finish(args)
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;

    fn error(attr: TokenStream, kind: MapKind) -> String {
        match parse(attr, kind) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e
                .into_iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    #[test]
    fn parses_every_argument() {
        let args = parse(
            quote!(
                subgraph = SubGraph::action(Measure),
                keyed,
                reduce = self::collect,
                policy = FailurePolicy::WaitAll,
                reads = [words],
                writes = [lengths],
                name = "lengths",
                tags = [fan_out],
                crate = my_burr
            ),
            MapKind::States,
        )
        .unwrap();
        assert!(args.subgraph.is_some() && args.keyed && args.policy.is_some());
        assert!(matches!(args.reducer, Some(Reducer::States(_))));
        assert_eq!(args.common.writes[0].value, "lengths");
        let args = parse(
            quote!(subgraphs = [a(), b()], reduce_settled = settle),
            MapKind::Actions,
        )
        .unwrap();
        assert!(args.subgraphs.is_some());
        assert!(matches!(args.reducer, Some(Reducer::Outcomes(_))));
        assert!(parse(quote!(), MapKind::Tasks).is_ok());
    }

    #[test]
    fn unknown_arguments_list_the_known_ones_of_each_attribute() {
        let e = error(quote!(subgraph = g(), blocking), MapKind::States);
        assert!(
            e.starts_with("unknown `#[map_states]` argument `blocking`: the known arguments are `subgraph = <SubGraph>`, `keyed`"),
            "{e}"
        );
        let e = error(quote!(subgraph = g()), MapKind::Tasks);
        assert!(
            e.starts_with("unknown `#[map_tasks]` argument `subgraph`: the known arguments are `reduce = path`"),
            "{e}"
        );
        let e = error(quote!(subgraphs = [g()], keyed), MapKind::Actions);
        assert!(
            e.starts_with("unknown `#[map_actions]` argument `keyed`"),
            "{e}"
        );
    }

    #[test]
    fn what_the_children_run_is_required() {
        let e = error(quote!(reduce = r), MapKind::States);
        assert!(
            e.starts_with("`#[map_states]` needs `subgraph = <SubGraph>`"),
            "{e}"
        );
        let e = error(quote!(), MapKind::Actions);
        assert!(
            e.starts_with("`#[map_actions]` needs `subgraphs = [<SubGraph>, ...]`"),
            "{e}"
        );
    }

    #[test]
    fn one_reducer_and_no_writes_without_one() {
        let e = error(quote!(reduce = a, reduce_settled = b), MapKind::Tasks);
        assert!(
            e.starts_with("`reduce` is given already: give one reducer"),
            "{e}"
        );
        let e = error(quote!(writes = [lengths]), MapKind::Tasks);
        assert!(
            e.starts_with("`writes` lists `lengths`, but with no `reduce` the map action leaves the state unchanged"),
            "{e}"
        );
        let e = error(quote!(reduce = collect()), MapKind::Tasks);
        assert!(
            e.starts_with("`reduce` takes the path of the reducer function"),
            "{e}"
        );
        let e = error(quote!(keyed = true, subgraph = g()), MapKind::States);
        assert!(e.starts_with("`keyed` is a flag and takes no value"), "{e}");
        let e = error(quote!(policy, subgraph = g()), MapKind::States);
        assert_eq!(
            e,
            "`policy` needs a value: `policy = FailurePolicy::WaitAll`"
        );
    }
}
