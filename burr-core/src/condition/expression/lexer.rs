//! Tokenizer for the condition expression language.
//!
//! Positions are 0-based *char* offsets into the source (not byte offsets),
//! so that error positions line up with what a user sees.

use super::ExprSyntaxError;

/// A token kind (with its payload for literals and identifiers).
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Tok {
    Int(i64),
    Float(f64),
    Str(String),
    Ident(String),
    And,
    Or,
    Not,
    In,
    True,
    False,
    None,
    Len,
    Lt,
    Le,
    Gt,
    Ge,
    EqEq,
    Ne,
    Plus,
    Minus,
    Star,
    Slash,
    SlashSlash,
    Percent,
    Dot,
    Comma,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Eof,
}

/// A token with its char span `[start, end)` in the source.
#[derive(Clone, Debug)]
pub(super) struct Token {
    pub(super) tok: Tok,
    pub(super) start: usize,
    pub(super) end: usize,
}

pub(super) fn syntax_error(
    source: &str,
    position: usize,
    message: impl Into<String>,
) -> ExprSyntaxError {
    ExprSyntaxError {
        expression: source.to_string(),
        position,
        message: message.into(),
    }
}

fn keyword(word: &str) -> Option<Tok> {
    Some(match word {
        "and" => Tok::And,
        "or" => Tok::Or,
        "not" => Tok::Not,
        "in" => Tok::In,
        "True" | "true" => Tok::True,
        "False" | "false" => Tok::False,
        "None" | "null" => Tok::None,
        "len" => Tok::Len,
        _ => return None,
    })
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Splits `source` (already collected into `chars`) into tokens, ending with
/// a [`Tok::Eof`] token positioned at the end of input.
pub(super) fn tokenize(source: &str, chars: &[char]) -> Result<Vec<Token>, ExprSyntaxError> {
    let n = chars.len();
    let peek = |i: usize| chars.get(i).copied();
    let err = |pos: usize, msg: String| syntax_error(source, pos, msg);
    let mut out = Vec::new();
    let mut i = 0;
    while i < n {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let tok = match c {
            '0'..='9' => {
                let (tok, end) = lex_number(source, chars, start)?;
                i = end;
                tok
            }
            '.' if peek(i + 1).is_some_and(|d| d.is_ascii_digit()) => {
                let (tok, end) = lex_number(source, chars, start)?;
                i = end;
                tok
            }
            '\'' | '"' => {
                let (tok, end) = lex_string(source, chars, start)?;
                i = end;
                tok
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut j = i;
                while j < n && is_ident_char(chars[j]) {
                    j += 1;
                }
                let word: String = chars[i..j].iter().collect();
                i = j;
                if word.starts_with("__") {
                    return Err(err(
                        start,
                        format!("identifiers starting with `__` are reserved (`{word}`)"),
                    ));
                }
                keyword(&word).unwrap_or(Tok::Ident(word))
            }
            '<' | '>' | '=' | '!' => {
                let followed_by_eq = peek(i + 1) == Some('=');
                i += if followed_by_eq { 2 } else { 1 };
                match (c, followed_by_eq) {
                    ('<', false) => Tok::Lt,
                    ('<', true) => Tok::Le,
                    ('>', false) => Tok::Gt,
                    ('>', true) => Tok::Ge,
                    ('=', true) => Tok::EqEq,
                    ('!', true) => Tok::Ne,
                    ('=', false) => {
                        return Err(err(
                            start,
                            "`=` is not a comparison operator; use `==`".to_string(),
                        ))
                    }
                    _ => {
                        return Err(err(
                            start,
                            "`!` is not supported; use `not` for negation or `!=`".to_string(),
                        ))
                    }
                }
            }
            '&' => return Err(err(start, "`&` is not supported; use `and`".to_string())),
            '|' => return Err(err(start, "`|` is not supported; use `or`".to_string())),
            '*' if peek(i + 1) == Some('*') => {
                return Err(err(start, "the `**` operator is not supported".to_string()))
            }
            '/' if peek(i + 1) == Some('/') => {
                i += 2;
                Tok::SlashSlash
            }
            _ => {
                let tok = match c {
                    '+' => Tok::Plus,
                    '-' => Tok::Minus,
                    '*' => Tok::Star,
                    '/' => Tok::Slash,
                    '%' => Tok::Percent,
                    '.' => Tok::Dot,
                    ',' => Tok::Comma,
                    '(' => Tok::LParen,
                    ')' => Tok::RParen,
                    '[' => Tok::LBracket,
                    ']' => Tok::RBracket,
                    other => return Err(err(start, format!("unknown character `{other}`"))),
                };
                i += 1;
                tok
            }
        };
        out.push(Token { tok, start, end: i });
    }
    out.push(Token {
        tok: Tok::Eof,
        start: n,
        end: n,
    });
    Ok(out)
}

/// Lexes an INT or FLOAT literal starting at `start`; returns the token and
/// the index just past it.
fn lex_number(source: &str, chars: &[char], start: usize) -> Result<(Tok, usize), ExprSyntaxError> {
    let n = chars.len();
    let digits_from = |mut j: usize| {
        while j < n && chars[j].is_ascii_digit() {
            j += 1;
        }
        j
    };
    let mut i = digits_from(start);
    let mut is_float = false;
    if i < n && chars[i] == '.' {
        is_float = true;
        i = digits_from(i + 1);
    }
    if i < n && (chars[i] == 'e' || chars[i] == 'E') {
        let mut j = i + 1;
        if j < n && (chars[j] == '+' || chars[j] == '-') {
            j += 1;
        }
        if j < n && chars[j].is_ascii_digit() {
            is_float = true;
            i = digits_from(j);
        } else {
            // e.g. `1e` or `1e+`: report the whole malformed literal below.
            i = j.max(i + 1);
            let text: String = chars[start..i].iter().collect();
            return Err(syntax_error(
                source,
                start,
                format!("invalid number literal `{text}`"),
            ));
        }
    }
    if i < n && is_ident_char(chars[i]) {
        let mut j = i;
        while j < n && is_ident_char(chars[j]) {
            j += 1;
        }
        let text: String = chars[start..j].iter().collect();
        return Err(syntax_error(
            source,
            start,
            format!("invalid number literal `{text}`"),
        ));
    }
    let text: String = chars[start..i].iter().collect();
    if is_float {
        let value: f64 = text
            .parse()
            .map_err(|_| syntax_error(source, start, format!("invalid number literal `{text}`")))?;
        return Ok((Tok::Float(value), i));
    }
    if text.len() > 1 && text.starts_with('0') && text.chars().any(|c| c != '0') {
        return Err(syntax_error(
            source,
            start,
            format!("leading zeros in integer literals are not permitted (`{text}`)"),
        ));
    }
    match text.parse::<i64>() {
        Ok(value) => Ok((Tok::Int(value), i)),
        Err(_) => Err(syntax_error(
            source,
            start,
            format!("integer literal `{text}` is too large (must fit in a signed 64-bit integer)"),
        )),
    }
}

/// Lexes a quoted string starting at the quote at `start`; returns the token
/// and the index just past the closing quote.
fn lex_string(source: &str, chars: &[char], start: usize) -> Result<(Tok, usize), ExprSyntaxError> {
    let quote = chars[start];
    let unterminated = || syntax_error(source, start, "unterminated string");
    let mut value = String::new();
    let mut i = start + 1;
    loop {
        let c = *chars.get(i).ok_or_else(unterminated)?;
        i += 1;
        if c == quote {
            return Ok((Tok::Str(value), i));
        }
        if c != '\\' {
            value.push(c);
            continue;
        }
        let escaped = *chars.get(i).ok_or_else(unterminated)?;
        value.push(match escaped {
            '\\' => '\\',
            '\'' => '\'',
            '"' => '"',
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            other => {
                return Err(syntax_error(
                    source,
                    i - 1,
                    format!("unknown escape sequence `\\{other}` in string"),
                ))
            }
        });
        i += 1;
    }
}
