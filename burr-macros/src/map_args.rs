//! The arguments of the map attributes, `#[map_states]`, `#[map_tasks]`, `#[map_actions]`
//! and `#[map_actions_and_states]`: the common ones of [`args`](crate::args), and what the
//! children run, how their states are reduced, what happens when they fail, and how they
//! run (priority, timeout, persister, tracker).

use proc_macro2::{Span, TokenStream};
use syn::{Expr, ExprLit, ExprUnary, Lit, Path, UnOp};

use crate::args::{self, Common, Errors, RawArg, Spec};
use crate::duration::{self, UNITS};

/// Which map attribute.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum MapKind {
    /// `#[map_states]`: one sub-graph over many states.
    States,
    /// `#[map_tasks]`: tasks built by the function.
    Tasks,
    /// `#[map_actions]`: many sub-graphs over one state.
    Actions,
    /// `#[map_actions_and_states]`: every sub-graph over every state.
    ActionsAndStates,
}

/// The [`Spec`] of a map attribute: its own arguments (keys, and as listed in errors), then
/// those every map attribute takes.
macro_rules! map_spec {
    ($attr:literal, [$($key:literal),*], [$($listed:literal),*]) => {
        Spec {
            attr: $attr,
            known: &[
                $($key,)*
                "reduce",
                "reduce_settled",
                "policy",
                "priority",
                "timeout",
                "child_retry",
                "persister",
                "tracker",
                "reads",
                "writes",
                "name",
                "tags",
                "crate",
            ],
            listing: concat!(
                $($listed, ", ",)*
                "`reduce = path`, `reduce_settled = path`, `policy = <FailurePolicy>`, ",
                "`priority = <i32>`, `timeout = \"30s\"`, `child_retry = 3` (or a `RetryPolicy`), ",
                "`persister = <ChildPersister>`, ",
                "`tracker = <ChildTracker>`, `reads = [...]`, `writes = [...]`, `name = \"...\"`, ",
                "`tags = [...]` and `crate = path`"
            ),
        }
    };
}

const STATES: Spec = map_spec!(
    "map_states",
    ["subgraph", "keyed"],
    ["`subgraph = <SubGraph>`", "`keyed`"]
);

const TASKS: Spec = map_spec!("map_tasks", [], []);

const ACTIONS: Spec = map_spec!(
    "map_actions",
    ["subgraphs"],
    ["`subgraphs = [<SubGraph>, ...]`"]
);

const ACTIONS_AND_STATES: Spec = map_spec!(
    "map_actions_and_states",
    ["subgraphs"],
    ["`subgraphs = [<SubGraph>, ...]`"]
);

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
            MapKind::ActionsAndStates => &ACTIONS_AND_STATES,
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
    /// `subgraphs = <expr>` (`#[map_actions]`, `#[map_actions_and_states]`).
    pub(crate) subgraphs: Option<Expr>,
    /// `keyed` (`#[map_states]`).
    pub(crate) keyed: bool,
    /// `reduce` or `reduce_settled`; none leaves the state unchanged.
    pub(crate) reducer: Option<Reducer>,
    /// `policy = <expr>`, a `FailurePolicy`.
    pub(crate) policy: Option<Setting>,
    /// `priority = <expr>`, an `i32` (a literal is checked to be one).
    pub(crate) priority: Option<Setting>,
    /// `timeout = "30s"` or `timeout = <expr>`, a `Duration`.
    pub(crate) timeout: Option<Timeout>,
    /// `child_retry = 3` or `child_retry = <expr>`, a `RetryPolicy`.
    pub(crate) child_retry: Option<crate::args::Retry>,
    /// `persister = <expr>`, a `ChildPersister`.
    pub(crate) persister: Option<Setting>,
    /// `tracker = <expr>`, a `ChildTracker`.
    pub(crate) tracker: Option<Setting>,
}

/// A `key = <expr>` argument whose value goes to the `MapAction` builder method `key`.
pub(crate) struct Setting {
    /// Where the key is written: the expansion spans the type the value must have there,
    /// so that a value of another type is reported with its argument named.
    pub(crate) key: Span,
    /// The value.
    pub(crate) value: Expr,
}

/// The value of `timeout`.
pub(crate) enum Timeout {
    /// A string literal, `"30s"`: its milliseconds, and where it is written.
    Millis(u64, Span),
    /// Any other expression, of type `Duration`.
    Expr(Setting),
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
            "policy" => {
                args.policy = Some(setting(
                    &arg,
                    key,
                    "a `FailurePolicy`",
                    "policy = FailurePolicy::WaitAll",
                )?);
            }
            "priority" => args.priority = Some(priority(&arg)?),
            "timeout" => args.timeout = Some(timeout(&arg)?),
            "child_retry" => args.child_retry = Some(crate::args::retry(&arg, "child_retry")?),
            "persister" => {
                args.persister = Some(setting(
                    &arg,
                    key,
                    "a `ChildPersister`",
                    "persister = ChildPersister::None",
                )?);
            }
            // `tracker`, the last known key.
            _ => {
                args.tracker = Some(setting(
                    &arg,
                    key,
                    "a `ChildTracker`",
                    "tracker = ChildTracker::None",
                )?);
            }
        }
        Ok(())
    })?;
    let missing = match kind {
        MapKind::States if args.subgraph.is_none() => Some("`subgraph = <SubGraph>`: what each child runs, as in `subgraph = SubGraph::action(Measure)`"),
        MapKind::Actions if args.subgraphs.is_none() => Some("`subgraphs = [<SubGraph>, ...]`: what the children run, one child each, as in `subgraphs = [SubGraph::action(Double), SubGraph::action(Square)]`"),
        MapKind::ActionsAndStates if args.subgraphs.is_none() => Some("`subgraphs = [<SubGraph>, ...]`: what the children run, one child each per state, as in `subgraphs = [SubGraph::action(Double), SubGraph::action(Square)]`"),
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

/// `key = <expr>`, forwarded to the builder.
pub(crate) fn setting(arg: &RawArg, key: &str, what: &str, example: &str) -> syn::Result<Setting> {
    Ok(Setting {
        key: arg.key.span(),
        value: args::expr(arg, key, what, example)?,
    })
}

/// `priority = <expr>`: any `i32` expression (the compiler checks its type); a literal is
/// checked here, so that a string, a float or a number out of range is an error that names
/// the argument.
fn priority(arg: &RawArg) -> syn::Result<Setting> {
    const EXAMPLE: &str = "priority = 10";
    let setting = setting(arg, "priority", "an `i32` (higher runs first)", EXAMPLE)?;
    let expr = &setting.value;
    let (negative, lit) = match expr {
        Expr::Lit(ExprLit { lit, .. }) => (false, lit),
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_),
            expr: inner,
            ..
        }) => match &**inner {
            Expr::Lit(ExprLit { lit, .. }) => (true, lit),
            _ => return Ok(setting),
        },
        _ => return Ok(setting),
    };
    let not_an_i32 = |what: &str| {
        syn::Error::new_spanned(
            expr,
            format!("`priority` takes an `i32` (higher runs first), not {what}: `{EXAMPLE}`"),
        )
    };
    let Lit::Int(int) = lit else {
        return Err(not_an_i32(match lit {
            Lit::Str(_) => "a string",
            Lit::Float(_) => "a float",
            Lit::Bool(_) => "a `bool`",
            _ => "this literal",
        }));
    };
    if !matches!(int.suffix(), "" | "i32") {
        return Err(not_an_i32(&format!("a `{}`", int.suffix())));
    }
    let in_range = int
        .base10_parse::<i64>()
        .ok()
        .map(|n| if negative { -n } else { n })
        .is_some_and(|n| i32::try_from(n).is_ok());
    if !in_range {
        return Err(syn::Error::new_spanned(
            expr,
            format!(
                "`priority` is out of the range of an `i32`, {} to {}: `{EXAMPLE}`",
                i32::MIN,
                i32::MAX
            ),
        ));
    }
    Ok(setting)
}

/// `timeout = "30s"`, checked here, or `timeout = <expr>` of type `Duration`.
pub(crate) fn timeout(arg: &RawArg) -> syn::Result<Timeout> {
    const EXAMPLE: &str = "timeout = \"30s\"";
    let setting = setting(
        arg,
        "timeout",
        "a string literal of a whole number and a unit, or a `Duration`",
        EXAMPLE,
    )?;
    let expr = &setting.value;
    let Expr::Lit(ExprLit { lit, .. }) = expr else {
        return Ok(Timeout::Expr(setting));
    };
    match lit {
        Lit::Str(text) => duration::millis(&text.value())
            .map(|millis| Timeout::Millis(millis, text.span()))
            .map_err(|problem| {
                syn::Error::new(
                    text.span(),
                    format!(
                        "`timeout` cannot be {:?}: {problem}; write a whole number and a unit, {UNITS}: `{EXAMPLE}`",
                        text.value()
                    ),
                )
            }),
        Lit::Int(_) | Lit::Float(_) => Err(syn::Error::new_spanned(
            expr,
            format!("`timeout` needs a unit: write it in a string, {UNITS}, as in `{EXAMPLE}`, or give a `Duration`: `timeout = Duration::from_secs(30)`"),
        )),
        _ => Err(syn::Error::new_spanned(
            expr,
            format!("`timeout` takes a string literal of a whole number and a unit, {UNITS}: `{EXAMPLE}`, or a `Duration`: `timeout = Duration::from_secs(30)`"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;

    fn error(attr: TokenStream, kind: MapKind) -> String {
        crate::test_support::error_messages(parse(attr, kind))
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

    #[test]
    fn how_the_children_run() {
        let args = parse(
            quote!(
                priority = -3,
                timeout = "1500ms",
                persister = ChildPersister::None,
                tracker = ChildTracker::None
            ),
            MapKind::Tasks,
        )
        .unwrap();
        assert!(args.priority.is_some() && args.persister.is_some() && args.tracker.is_some());
        assert!(matches!(args.timeout, Some(Timeout::Millis(1500, _))));
        let args = parse(
            quote!(
                subgraphs = [a()],
                priority = self.level(),
                timeout = Duration::from_secs(2)
            ),
            MapKind::ActionsAndStates,
        )
        .unwrap();
        assert!(args.priority.is_some());
        assert!(matches!(args.timeout, Some(Timeout::Expr(_))));
        for bound in [
            quote!(priority = 2147483647),
            quote!(priority = -2147483648i32),
        ] {
            assert!(parse(bound, MapKind::Tasks).is_ok());
        }
    }

    #[test]
    fn a_priority_literal_must_be_an_i32() {
        let e = error(quote!(priority = "high"), MapKind::Tasks);
        assert_eq!(
            e,
            "`priority` takes an `i32` (higher runs first), not a string: `priority = 10`"
        );
        let e = error(quote!(priority = 1.5), MapKind::Tasks);
        assert!(e.contains("not a float"), "{e}");
        let e = error(quote!(priority = 5u8), MapKind::Tasks);
        assert!(e.contains("not a `u8`"), "{e}");
        for out_of_range in [
            quote!(priority = 2147483648),
            quote!(priority = -2147483649),
        ] {
            let e = error(out_of_range, MapKind::Tasks);
            assert_eq!(e, "`priority` is out of the range of an `i32`, -2147483648 to 2147483647: `priority = 10`");
        }
        let e = error(quote!(priority), MapKind::Tasks);
        assert_eq!(e, "`priority` needs a value: `priority = 10`");
    }

    #[test]
    fn a_timeout_literal_has_a_unit() {
        let e = error(quote!(timeout = "30"), MapKind::Tasks);
        assert_eq!(
            e,
            "`timeout` cannot be \"30\": it has no unit; write a whole number and a unit, `ms`, `s`, `m` or `h`: `timeout = \"30s\"`"
        );
        let e = error(quote!(timeout = "30sec"), MapKind::Tasks);
        assert!(e.contains("`sec` is not a unit"), "{e}");
        let e = error(quote!(timeout = "0s"), MapKind::Tasks);
        assert!(e.contains("it is zero"), "{e}");
        let e = error(quote!(timeout = 30), MapKind::Tasks);
        assert!(e.starts_with("`timeout` needs a unit"), "{e}");
        let e = error(quote!(timeout = true), MapKind::Tasks);
        assert!(e.starts_with("`timeout` takes a string literal"), "{e}");
        let e = error(quote!(timeout = "1s", timeout = "2s"), MapKind::Tasks);
        assert!(e.starts_with("`timeout` is given twice"), "{e}");
    }

    #[test]
    fn the_product_needs_its_subgraphs() {
        let e = error(quote!(reduce = r), MapKind::ActionsAndStates);
        assert!(
            e.starts_with("`#[map_actions_and_states]` needs `subgraphs = [<SubGraph>, ...]`"),
            "{e}"
        );
        let e = error(quote!(subgraphs = [g()], keyed), MapKind::ActionsAndStates);
        assert!(
            e.starts_with("unknown `#[map_actions_and_states]` argument `keyed`: the known arguments are `subgraphs = [<SubGraph>, ...]`, `reduce = path`"),
            "{e}"
        );
    }
}
