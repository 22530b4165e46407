//! Attribute arguments: parsed leniently into raw `key = value` pairs first, then each
//! checked on its own, so that every mistake is reported at once, at its token. The pieces
//! here (the raw pass, the arguments every attribute shares, value checkers) serve both
//! `#[action]` and the map attributes.

use std::collections::HashSet;

use proc_macro2::{Delimiter, Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::{Expr, Ident, LitStr, Path, Token};

/// The arguments `#[action]` knows, as listed in error messages.
pub(crate) const KNOWN_ARGUMENTS: &str =
    "`reads = [...]`, `writes = [...]`, `name = \"...\"`, `tags = [...]`, `blocking`, `retry = 3` (or a `RetryPolicy`), `timeout = \"30s\"` and `crate = path`";

/// `#[action]`: its name and arguments.
const ACTION: Spec = Spec {
    attr: "action",
    known: &[
        "reads", "writes", "name", "tags", "blocking", "retry", "timeout", "crate",
    ],
    listing: KNOWN_ARGUMENTS,
};

/// An attribute, for parsing its arguments and naming it in errors.
pub(crate) struct Spec {
    /// Its name, without `#[]`: `action`.
    pub(crate) attr: &'static str,
    /// The keys of its arguments.
    pub(crate) known: &'static [&'static str],
    /// Its arguments as listed in error messages.
    pub(crate) listing: &'static str,
}

/// A state key or a tag, and where the user wrote it.
#[derive(Clone, Debug)]
pub(crate) struct Name {
    pub(crate) value: String,
    pub(crate) span: Span,
}

/// The arguments every attribute takes: `reads`, `writes`, `tags`, `name` and `crate`.
#[derive(Default)]
pub(crate) struct Common {
    /// `reads = [...]`.
    pub(crate) reads: Vec<Name>,
    /// `writes = [...]`.
    pub(crate) writes: Vec<Name>,
    /// `tags = [...]`.
    pub(crate) tags: Vec<Name>,
    /// `name = "..."`.
    pub(crate) name: Option<LitStr>,
    /// `crate = path`.
    pub(crate) krate: Option<Path>,
}

/// The checked arguments of `#[action(...)]`.
#[derive(Default)]
pub(crate) struct ActionArgs {
    /// `reads`, `writes`, `tags`, `name`, `crate`.
    pub(crate) common: Common,
    /// `blocking`, with the flag's span.
    pub(crate) blocking: Option<Span>,
    /// `retry = 3` or `retry = <RetryPolicy>`.
    pub(crate) retry: Option<Retry>,
    /// `timeout = "30s"` or `timeout = <Duration>`.
    pub(crate) timeout: Option<crate::map_args::Timeout>,
}

/// The value of `retry`.
pub(crate) enum Retry {
    /// A whole number of attempts, `retry = 3`: `RetryPolicy::new(3)`.
    Attempts(u32, Span),
    /// Any other expression, of type `RetryPolicy`.
    Policy(crate::map_args::Setting),
}

/// One `key`, `key = value` as written, the value not yet checked.
pub(crate) struct RawArg {
    pub(crate) key: Ident,
    eq: Option<Token![=]>,
    value: TokenStream,
}

fn parse_raw(input: ParseStream<'_>, spec: &Spec) -> syn::Result<RawArg> {
    let key = input.call(Ident::parse_any).map_err(|e| {
        syn::Error::new(
            e.span(),
            format!(
                "expected an `#[{}]` argument: one of {}",
                spec.attr, spec.listing
            ),
        )
    })?;
    if input.is_empty() || input.peek(Token![,]) {
        return Ok(RawArg {
            key,
            eq: None,
            value: TokenStream::new(),
        });
    }
    let eq = input
        .parse::<Token![=]>()
        .map_err(|e| syn::Error::new(e.span(), format!("expected `=` or `,` after `{key}`")))?;
    let mut value = TokenStream::new();
    while !input.is_empty() && !input.peek(Token![,]) {
        value.extend([input.parse::<TokenTree>()?]);
    }
    Ok(RawArg {
        key,
        eq: Some(eq),
        value,
    })
}

/// Parse the arguments of the attribute `spec`: an unknown or repeated argument is an
/// error gathered in `errors`, and each known one is given to `apply` with its key
/// (unraw). Fails only when the arguments are not a list of `key` or `key = value`.
pub(crate) fn parse_each(
    attr: TokenStream,
    spec: &Spec,
    errors: &mut Errors,
    mut apply: impl FnMut(&str, RawArg) -> syn::Result<()>,
) -> syn::Result<()> {
    let raw = (|input: ParseStream<'_>| {
        let mut raw = Vec::new();
        while !input.is_empty() {
            raw.push(parse_raw(input, spec)?);
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(raw)
    })
    .parse2(attr)?;
    let mut seen = HashSet::new();
    for arg in raw {
        let key = arg.key.unraw().to_string();
        if !spec.known.contains(&key.as_str()) {
            errors.push(syn::Error::new(
                arg.key.span(),
                format!(
                    "unknown `#[{}]` argument `{key}`: the known arguments are {}",
                    spec.attr, spec.listing
                ),
            ));
            continue;
        }
        if !seen.insert(key.clone()) {
            errors.push(syn::Error::new(
                arg.key.span(),
                format!(
                    "`{key}` is given twice: give each `#[{}]` argument once",
                    spec.attr
                ),
            ));
            continue;
        }
        if let Err(e) = apply(&key, arg) {
            errors.push(e);
        }
    }
    Ok(())
}

/// Parse and check the arguments of `#[action(...)]`.
pub(crate) fn parse(attr: TokenStream) -> syn::Result<ActionArgs> {
    let mut args = ActionArgs::default();
    let mut errors = Errors::default();
    parse_each(attr, &ACTION, &mut errors, |key, arg| match key {
        "blocking" => {
            args.blocking = Some(flag(&arg, key)?);
            Ok(())
        }
        "retry" => {
            args.retry = Some(retry(&arg, "retry")?);
            Ok(())
        }
        "timeout" => {
            args.timeout = Some(crate::map_args::timeout(&arg)?);
            Ok(())
        }
        _ => args.common.apply(key, &arg).unwrap_or(Ok(())),
    })?;
    errors.finish(args)
}

impl Common {
    /// Apply the argument `key` when it is one of the common ones; `None` when it is not.
    pub(crate) fn apply(&mut self, key: &str, arg: &RawArg) -> Option<syn::Result<()>> {
        let example = match key {
            "reads" => "reads = [count]",
            "writes" => "writes = [count]",
            "tags" => "tags = [\"llm\"]",
            "name" => "name = \"answer_question\"",
            "crate" => "crate = my_burr",
            _ => return None,
        };
        Some(self.apply_known(key, arg, example))
    }

    fn apply_known(&mut self, key: &str, arg: &RawArg, example: &str) -> syn::Result<()> {
        let value = value(arg, key, example)?;
        match key {
            "reads" => self.reads = names(value, "reads", "state keys", example)?,
            "writes" => self.writes = names(value, "writes", "state keys", example)?,
            "tags" => self.tags = names(value, "tags", "tags", example)?,
            "name" => {
                let name = syn::parse2::<LitStr>(value.clone()).map_err(|_| {
                    syn::Error::new_spanned(
                        value,
                        format!("`name` takes a string literal: `{example}`"),
                    )
                })?;
                if name.value().is_empty() {
                    return Err(syn::Error::new(
                        name.span(),
                        "an action's name cannot be empty",
                    ));
                }
                self.name = Some(name);
            }
            _ => {
                let path = syn::parse2::<Path>(value.clone()).map_err(|_| {
                    syn::Error::new_spanned(
                        value,
                        format!("`crate` takes the path of the burr-core crate as your Cargo.toml names it: `{example}`"),
                    )
                })?;
                self.krate = Some(path);
            }
        }
        Ok(())
    }
}

/// The value of `key = value`; an error when there is none.
pub(crate) fn value<'a>(arg: &'a RawArg, key: &str, example: &str) -> syn::Result<&'a TokenStream> {
    if arg.eq.is_none() || arg.value.is_empty() {
        return Err(syn::Error::new(
            arg.key.span(),
            format!("`{key}` needs a value: `{example}`"),
        ));
    }
    Ok(&arg.value)
}

/// The span of the flag `key`; an error when it is given a value.
pub(crate) fn flag(arg: &RawArg, key: &str) -> syn::Result<Span> {
    match arg.eq {
        Some(eq) => Err(syn::Error::new(
            eq.span,
            format!("`{key}` is a flag and takes no value: write `{key}`"),
        )),
        None => Ok(arg.key.span()),
    }
}

/// The expression of `key = <expr>`.
pub(crate) fn expr(arg: &RawArg, key: &str, what: &str, example: &str) -> syn::Result<Expr> {
    let value = value(arg, key, example)?;
    syn::parse2::<Expr>(value.clone())
        .map_err(|_| syn::Error::new_spanned(value, format!("`{key}` takes {what}: `{example}`")))
}

/// The path of `key = <path>`.
pub(crate) fn path(arg: &RawArg, key: &str, what: &str, example: &str) -> syn::Result<Path> {
    let value = value(arg, key, example)?;
    syn::parse2::<Path>(value.clone()).map_err(|_| {
        syn::Error::new_spanned(
            value,
            format!("`{key}` takes the path of {what}: `{example}`"),
        )
    })
}

/// A bracketed list of names (identifiers or string literals): `[count, "other key"]`.
fn names(value: &TokenStream, key: &str, what: &str, example: &str) -> syn::Result<Vec<Name>> {
    let mut tokens = value.clone().into_iter();
    let group = match (tokens.next(), tokens.next()) {
        (Some(TokenTree::Group(group)), None) if group.delimiter() == Delimiter::Bracket => group,
        _ => {
            return Err(syn::Error::new_spanned(
                value,
                format!("`{key}` takes a list of {what} in brackets, each a name or a string literal: `{example}`"),
            ))
        }
    };
    let list = |input: ParseStream<'_>| -> syn::Result<Vec<Name>> {
        let mut out: Vec<Name> = Vec::new();
        while !input.is_empty() {
            let name = if input.peek(LitStr) {
                let lit = input.parse::<LitStr>()?;
                Name {
                    value: lit.value(),
                    span: lit.span(),
                }
            } else if input.peek(Ident::peek_any) {
                let ident = input.call(Ident::parse_any)?;
                Name {
                    value: ident.unraw().to_string(),
                    span: ident.span(),
                }
            } else {
                return Err(input.error(format!(
                    "expected one of the {what} of `{key}`: a name or a string literal, as in `{example}`"
                )));
            };
            if name.value.is_empty() {
                return Err(syn::Error::new(
                    name.span,
                    format!("the {what} of `{key}` cannot be empty"),
                ));
            }
            if out.iter().any(|n| n.value == name.value) {
                return Err(syn::Error::new(
                    name.span,
                    format!("`{}` is listed twice in `{key}`", name.value),
                ));
            }
            out.push(name);
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    format!("expected `,` between the {what} of `{key}`"),
                )
            })?;
        }
        Ok(out)
    };
    list.parse2(group.stream())
}

/// Errors gathered so that all of them are reported.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    /// Add an error.
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// The value of `result`, or `None` with its error gathered.
    pub(crate) fn ok<T>(&mut self, result: syn::Result<T>) -> Option<T> {
        result.map_err(|error| self.push(error)).ok()
    }

    /// Every error gathered, and `error` last.
    pub(crate) fn and(self, error: syn::Error) -> syn::Error {
        match self.0 {
            Some(mut all) => {
                all.combine(error);
                all
            }
            None => error,
        }
    }

    /// `value`, or every error gathered.
    pub(crate) fn finish<T>(self, value: T) -> syn::Result<T> {
        match self.0 {
            Some(error) => Err(error),
            None => Ok(value),
        }
    }
}

impl ToTokens for Name {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        LitStr::new(&self.value, self.span).to_tokens(tokens);
    }
}

/// `retry = 3` (attempts in all, checked here: at least 1) or `retry = <expr>` of type
/// `RetryPolicy` (its values are checked when the application is built).
pub(crate) fn retry(arg: &RawArg, key: &str) -> syn::Result<Retry> {
    let example = format!("{key} = 3");
    let setting = crate::map_args::setting(
        arg,
        key,
        "the number of attempts in all, or a `RetryPolicy`",
        &example,
    )?;
    let syn::Expr::Lit(syn::ExprLit { lit, .. }) = &setting.value else {
        return Ok(Retry::Policy(setting));
    };
    let wrong = |what: &str| {
        syn::Error::new_spanned(
            &setting.value,
            format!("`{key}` takes the number of attempts in all (at least 1), or a `RetryPolicy`, not {what}: `{example}`, or `{key} = RetryPolicy::new(3).retry_on([ErrorKind::Timeout])`"),
        )
    };
    let syn::Lit::Int(int) = lit else {
        return Err(wrong(match lit {
            syn::Lit::Str(_) => "a string",
            syn::Lit::Float(_) => "a float",
            syn::Lit::Bool(_) => "a `bool`",
            _ => "this literal",
        }));
    };
    match int.base10_parse::<u32>() {
        Ok(0) => Err(wrong("0: an action runs at least once")),
        Ok(attempts) => Ok(Retry::Attempts(attempts, int.span())),
        Err(_) => Err(wrong("a number out of the range of a `u32`")),
    }
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;

    fn values(names: &[Name]) -> Vec<&str> {
        names.iter().map(|n| n.value.as_str()).collect()
    }

    fn error(attr: TokenStream) -> String {
        crate::test_support::error_messages(parse(attr))
    }

    #[test]
    fn parses_every_argument() {
        let args = parse(quote!(
            reads = [query, "documents", r#type],
            writes = [answer],
            name = "answer_question",
            tags = ["llm", fast],
            blocking,
            crate = ::my_burr
        ))
        .unwrap();
        assert_eq!(values(&args.common.reads), ["query", "documents", "type"]);
        assert_eq!(values(&args.common.writes), ["answer"]);
        assert_eq!(values(&args.common.tags), ["llm", "fast"]);
        assert_eq!(args.common.name.unwrap().value(), "answer_question");
        assert!(args.blocking.is_some());
        assert_eq!(
            args.common.krate.unwrap().to_token_stream().to_string(),
            ":: my_burr"
        );
    }

    #[test]
    fn empty_arguments_and_lists_are_fine() {
        let args = parse(quote!()).unwrap();
        assert!(
            args.common.reads.is_empty() && args.common.name.is_none() && args.blocking.is_none()
        );
        let args = parse(quote!(reads = [], writes = [count],)).unwrap();
        assert!(args.common.reads.is_empty());
        assert_eq!(values(&args.common.writes), ["count"]);
    }

    #[test]
    fn unknown_argument_lists_the_known_ones() {
        let e = error(quote!(reads = [a], read = [b]));
        assert!(e.contains("unknown `#[action]` argument `read`"), "{e}");
        assert!(
            e.contains("`writes = [...]`") && e.contains("`crate = path`"),
            "{e}"
        );
    }

    #[test]
    fn argument_given_twice() {
        let e = error(quote!(reads = [a], reads = [b]));
        assert_eq!(
            e,
            "`reads` is given twice: give each `#[action]` argument once"
        );
    }

    #[test]
    fn lists_must_be_bracketed_names() {
        let e = error(quote!(reads = count));
        assert!(
            e.starts_with("`reads` takes a list of state keys in brackets"),
            "{e}"
        );
        let e = error(quote!(writes = (count)));
        assert!(e.starts_with("`writes` takes a list of state keys"), "{e}");
        let e = error(quote!(reads = [count, 3]));
        assert!(
            e.starts_with("expected one of the state keys of `reads`"),
            "{e}"
        );
        let e = error(quote!(reads = [a.b]));
        assert!(
            e.starts_with("expected `,` between the state keys of `reads`"),
            "{e}"
        );
        let e = error(quote!(reads = [a, a]));
        assert_eq!(e, "`a` is listed twice in `reads`");
        let e = error(quote!(tags = [""]));
        assert_eq!(e, "the tags of `tags` cannot be empty");
    }

    #[test]
    fn name_must_be_a_non_empty_string() {
        let e = error(quote!(name = answer));
        assert!(e.starts_with("`name` takes a string literal"), "{e}");
        let e = error(quote!(name = ""));
        assert_eq!(e, "an action's name cannot be empty");
        let e = error(quote!(name));
        assert_eq!(e, "`name` needs a value: `name = \"answer_question\"`");
    }

    #[test]
    fn blocking_is_a_flag_and_crate_a_path() {
        let e = error(quote!(blocking = true));
        assert!(e.starts_with("`blocking` is a flag"), "{e}");
        let e = error(quote!(crate = "burr"));
        assert!(
            e.starts_with("`crate` takes the path of the burr-core crate"),
            "{e}"
        );
    }

    #[test]
    fn every_error_is_reported() {
        let e = error(quote!(reads = x, name = 1, foo));
        assert_eq!(e.lines().count(), 3, "{e}");
    }

    #[test]
    fn missing_equals_sign() {
        let e = error(quote!(reads[a]));
        assert_eq!(e, "expected `=` or `,` after `reads`");
    }
}
