//! Names the macro derives: the action struct's name, and types as users read them.

use quote::ToTokens;
use syn::Type;

/// The UpperCamelCase of a snake_case function name: `answer_question` -> `AnswerQuestion`.
/// `None` when no identifier comes out (the name is all underscores, or starts with a digit
/// once the underscores are gone).
pub(crate) fn upper_camel(snake: &str) -> Option<String> {
    let camel: String = snake
        .split('_')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_uppercase().chain(chars).collect::<String>())
                .unwrap_or_default()
        })
        .collect();
    camel
        .chars()
        .next()
        .filter(|first| first.is_alphabetic())
        .map(|_| camel)
}

/// A type as written, without the spaces `TokenStream`'s `Display` puts between tokens:
/// `Option<Vec<(String, i64)>>`, not `Option < Vec < (String , i64) > >`.
pub(crate) fn type_display(ty: &Type) -> String {
    let spaced = ty.to_token_stream().to_string();
    let mut compact = spaced;
    for (from, to) in [
        (" :: ", "::"),
        (":: ", "::"),
        (" <", "<"),
        ("< ", "<"),
        (" >", ">"),
        (" ,", ","),
        (" ;", ";"),
        ("( ", "("),
        (" )", ")"),
        ("[ ", "["),
        (" ]", "]"),
        ("& ", "&"),
    ] {
        while compact.contains(from) {
            compact = compact.replace(from, to);
        }
    }
    compact
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_camel_of_snake_names() {
        assert_eq!(upper_camel("increment").as_deref(), Some("Increment"));
        assert_eq!(
            upper_camel("answer_question").as_deref(),
            Some("AnswerQuestion")
        );
        assert_eq!(upper_camel("_private_step").as_deref(), Some("PrivateStep"));
        assert_eq!(upper_camel("http2_fetch").as_deref(), Some("Http2Fetch"));
        assert_eq!(upper_camel("step__two").as_deref(), Some("StepTwo"));
        assert_eq!(upper_camel("é_tape").as_deref(), Some("ÉTape"));
        assert_eq!(upper_camel("_1st"), None);
        assert_eq!(upper_camel("__"), None);
    }

    #[test]
    fn types_display_without_token_spaces() {
        let cases = [
            ("usize", "usize"),
            ("Option<usize>", "Option<usize>"),
            ("Vec<Vec<i64>>", "Vec<Vec<i64>>"),
            (
                "std::collections::HashMap<String, (i64, bool)>",
                "std::collections::HashMap<String, (i64, bool)>",
            ),
            ("::serde_json::Value", "::serde_json::Value"),
            ("[u8; 4]", "[u8; 4]"),
            ("Option<&'static str>", "Option<&'static str>"),
            ("<T as Trait>::Out", "<T as Trait>::Out"),
        ];
        for (written, shown) in cases {
            let ty: Type = syn::parse_str(written).unwrap();
            assert_eq!(type_display(&ty), shown, "{written}");
        }
    }
}
