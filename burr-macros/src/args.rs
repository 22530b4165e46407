//! The arguments of `#[action(...)]`: parsed leniently into raw `key = value` pairs first,
//! then each checked on its own, so that every mistake is reported at once, at its token.

use std::collections::HashSet;

use proc_macro2::{Delimiter, Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Ident, LitStr, Path, Token};

/// The arguments `#[action]` knows, as listed in error messages.
pub(crate) const KNOWN_ARGUMENTS: &str =
    "`reads = [...]`, `writes = [...]`, `name = \"...\"`, `tags = [...]`, `blocking` and `crate = path`";

/// A state key or a tag, and where the user wrote it.
#[derive(Clone, Debug)]
pub(crate) struct Name {
    pub(crate) value: String,
    pub(crate) span: Span,
}

/// The checked arguments of `#[action(...)]`.
#[derive(Default)]
pub(crate) struct ActionArgs {
    /// `reads = [...]`.
    pub(crate) reads: Vec<Name>,
    /// `writes = [...]`.
    pub(crate) writes: Vec<Name>,
    /// `tags = [...]`.
    pub(crate) tags: Vec<Name>,
    /// `name = "..."`.
    pub(crate) name: Option<LitStr>,
    /// `blocking`, with the flag's span.
    pub(crate) blocking: Option<Span>,
    /// `crate = path`.
    pub(crate) krate: Option<Path>,
}

/// One `key`, `key = value` as written, the value not yet checked.
struct RawArg {
    key: Ident,
    eq: Option<Token![=]>,
    value: TokenStream,
}

fn parse_raw(input: ParseStream<'_>) -> syn::Result<RawArg> {
    let key = input.call(Ident::parse_any).map_err(|e| {
        syn::Error::new(
            e.span(),
            format!("expected an `#[action]` argument: one of {KNOWN_ARGUMENTS}"),
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

/// Parse and check the arguments of `#[action(...)]`.
pub(crate) fn parse(attr: TokenStream) -> syn::Result<ActionArgs> {
    let raw = (|input: ParseStream<'_>| {
        Punctuated::<RawArg, Token![,]>::parse_terminated_with(input, parse_raw)
    })
    .parse2(attr)?;
    let mut args = ActionArgs::default();
    let mut errors = Errors::default();
    let mut seen = HashSet::new();
    for arg in raw {
        let key = arg.key.unraw().to_string();
        if !seen.insert(key.clone()) && is_known(&key) {
            errors.push(syn::Error::new(
                arg.key.span(),
                format!("`{key}` is given twice: give each `#[action]` argument once"),
            ));
            continue;
        }
        if let Err(e) = apply(&mut args, &key, arg) {
            errors.push(e);
        }
    }
    errors.finish(args)
}

fn is_known(key: &str) -> bool {
    matches!(
        key,
        "reads" | "writes" | "name" | "tags" | "blocking" | "crate"
    )
}

fn apply(args: &mut ActionArgs, key: &str, arg: RawArg) -> syn::Result<()> {
    if !is_known(key) {
        return Err(syn::Error::new(
            arg.key.span(),
            format!(
                "unknown `#[action]` argument `{key}`: the known arguments are {KNOWN_ARGUMENTS}"
            ),
        ));
    }
    if key == "blocking" {
        if let Some(eq) = arg.eq {
            return Err(syn::Error::new(
                eq.span,
                "`blocking` is a flag and takes no value: write `blocking`",
            ));
        }
        args.blocking = Some(arg.key.span());
        return Ok(());
    }
    let example = match key {
        "reads" => "reads = [count]",
        "writes" => "writes = [count]",
        "tags" => "tags = [\"llm\"]",
        "name" => "name = \"answer_question\"",
        _ => "crate = my_burr",
    };
    if arg.eq.is_none() || arg.value.is_empty() {
        return Err(syn::Error::new(
            arg.key.span(),
            format!("`{key}` needs a value: `{example}`"),
        ));
    }
    match key {
        "reads" => args.reads = names(&arg.value, "reads", "state keys", example)?,
        "writes" => args.writes = names(&arg.value, "writes", "state keys", example)?,
        "tags" => args.tags = names(&arg.value, "tags", "tags", example)?,
        "name" => {
            let name = syn::parse2::<LitStr>(arg.value.clone()).map_err(|_| {
                syn::Error::new_spanned(
                    &arg.value,
                    format!("`name` takes a string literal: `{example}`"),
                )
            })?;
            if name.value().is_empty() {
                return Err(syn::Error::new(
                    name.span(),
                    "an action's name cannot be empty",
                ));
            }
            args.name = Some(name);
        }
        _ => {
            let path = syn::parse2::<Path>(arg.value.clone()).map_err(|_| {
                syn::Error::new_spanned(
                    &arg.value,
                    format!("`crate` takes the path of the burr-core crate as your Cargo.toml names it: `{example}`"),
                )
            })?;
            args.krate = Some(path);
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;

    fn values(names: &[Name]) -> Vec<&str> {
        names.iter().map(|n| n.value.as_str()).collect()
    }

    fn error(attr: TokenStream) -> String {
        match parse(attr) {
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
        let args = parse(quote!(
            reads = [query, "documents", r#type],
            writes = [answer],
            name = "answer_question",
            tags = ["llm", fast],
            blocking,
            crate = ::my_burr
        ))
        .unwrap();
        assert_eq!(values(&args.reads), ["query", "documents", "type"]);
        assert_eq!(values(&args.writes), ["answer"]);
        assert_eq!(values(&args.tags), ["llm", "fast"]);
        assert_eq!(args.name.unwrap().value(), "answer_question");
        assert!(args.blocking.is_some());
        assert_eq!(
            args.krate.unwrap().to_token_stream().to_string(),
            ":: my_burr"
        );
    }

    #[test]
    fn empty_arguments_and_lists_are_fine() {
        let args = parse(quote!()).unwrap();
        assert!(args.reads.is_empty() && args.name.is_none() && args.blocking.is_none());
        let args = parse(quote!(reads = [], writes = [count],)).unwrap();
        assert!(args.reads.is_empty());
        assert_eq!(values(&args.writes), ["count"]);
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
