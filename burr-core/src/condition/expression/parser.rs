//! Recursive-descent parser producing the expression AST.

use serde_json::Value;

use super::lexer::{syntax_error, tokenize, Tok, Token};
use super::ExprSyntaxError;

/// Maximum depth of the produced AST (and of parser recursion). Keeps both
/// parsing and evaluation far away from stack exhaustion on hostile input.
const MAX_DEPTH: u32 = 100;

const TOO_DEEP: &str = "expression is too deeply nested (more than 100 levels)";

/// A literal, converted once at parse time.
#[derive(Clone, Debug)]
pub(super) enum Lit {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Box<str>),
    /// A list literal whose elements are all constants.
    Json(Value),
}

/// Binary arithmetic operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    FloorDiv,
    Mod,
}

impl ArithOp {
    pub(super) fn symbol(self) -> &'static str {
        match self {
            ArithOp::Add => "+",
            ArithOp::Sub => "-",
            ArithOp::Mul => "*",
            ArithOp::Div => "/",
            ArithOp::FloorDiv => "//",
            ArithOp::Mod => "%",
        }
    }
}

/// Comparison operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CmpOp {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    In,
    NotIn,
}

impl CmpOp {
    pub(super) fn symbol(self) -> &'static str {
        match self {
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::In => "in",
            CmpOp::NotIn => "not in",
        }
    }
}

/// Expression AST node.
#[derive(Clone, Debug)]
pub(super) enum Node {
    Lit(Lit),
    /// A top-level state key.
    Key(Box<str>),
    /// `base.name`; `path` is the readable dotted path (e.g. `user.address`)
    /// used in error messages, `base_path` the same for `base`.
    Field {
        base: Box<Node>,
        name: Box<str>,
        path: Box<str>,
        base_path: Box<str>,
    },
    List(Vec<Node>),
    Len(Box<Node>),
    Not(Box<Node>),
    Neg(Box<Node>),
    Pos(Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Arith(ArithOp, Box<Node>, Box<Node>),
    Cmp(CmpOp, Box<Node>, Box<Node>),
}

/// Result of parsing: the AST and the state keys it names (deduplicated, in
/// order of first appearance).
pub(super) struct Parsed {
    pub(super) root: Node,
    pub(super) keys: Vec<String>,
}

type PResult = Result<(Node, u32), ExprSyntaxError>;

struct Parser<'s> {
    source: &'s str,
    chars: Vec<char>,
    toks: Vec<Token>,
    pos: usize,
    keys: Vec<String>,
    nesting: u32,
}

pub(super) fn parse(source: &str) -> Result<Parsed, ExprSyntaxError> {
    let chars: Vec<char> = source.chars().collect();
    let toks = tokenize(source, &chars)?;
    let mut p = Parser {
        source,
        chars,
        toks,
        pos: 0,
        keys: Vec::new(),
        nesting: 0,
    };
    if p.peek() == &Tok::Eof {
        return Err(syntax_error(source, 0, "empty expression"));
    }
    let (root, _) = p.parse_or()?;
    let tok = p.cur();
    match &tok.tok {
        Tok::Eof => {}
        Tok::Ident(word) if word == "is" => {
            return Err(p.error_at(tok.start, "`is` is not supported; use `==` or `!=`"));
        }
        _ => {
            let msg = format!("unexpected token `{}`", p.text(tok));
            return Err(p.error_at(tok.start, msg));
        }
    }
    Ok(Parsed { root, keys: p.keys })
}

fn is_comp_op(tok: &Tok) -> bool {
    matches!(
        tok,
        Tok::Lt | Tok::Le | Tok::Gt | Tok::Ge | Tok::EqEq | Tok::Ne | Tok::In | Tok::Not
    )
}

impl Parser<'_> {
    fn cur(&self) -> &Token {
        &self.toks[self.pos]
    }

    fn peek(&self) -> &Tok {
        &self.toks[self.pos].tok
    }

    fn advance(&mut self) -> Token {
        let tok = self.toks[self.pos].clone();
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
        tok
    }

    fn text(&self, tok: &Token) -> String {
        self.chars[tok.start..tok.end].iter().collect()
    }

    fn error_at(&self, position: usize, message: impl Into<String>) -> ExprSyntaxError {
        syntax_error(self.source, position, message)
    }

    /// "expected X" error at the current token, mentioning what was found.
    fn expected(&self, what: &str) -> ExprSyntaxError {
        let tok = self.cur();
        let msg = if tok.tok == Tok::Eof {
            format!("expected {what}")
        } else {
            format!("expected {what}, found `{}`", self.text(tok))
        };
        self.error_at(tok.start, msg)
    }

    fn expect(&mut self, tok: Tok, what: &str) -> Result<(), ExprSyntaxError> {
        if *self.peek() == tok {
            self.advance();
            Ok(())
        } else {
            Err(self.expected(what))
        }
    }

    /// Wraps a freshly built node, enforcing the depth limit.
    fn node(&self, node: Node, depth: u32, at: usize) -> PResult {
        if depth > MAX_DEPTH {
            return Err(self.error_at(at, TOO_DEEP));
        }
        Ok((node, depth))
    }

    fn enter(&mut self) -> Result<(), ExprSyntaxError> {
        self.nesting += 1;
        if self.nesting > MAX_DEPTH {
            return Err(self.error_at(self.cur().start, TOO_DEEP));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.nesting -= 1;
    }

    fn parse_or(&mut self) -> PResult {
        self.enter()?;
        let (mut left, mut depth) = self.parse_and()?;
        while *self.peek() == Tok::Or {
            let at = self.advance().start;
            let (right, d) = self.parse_and()?;
            depth = depth.max(d) + 1;
            (left, depth) = self.node(Node::Or(Box::new(left), Box::new(right)), depth, at)?;
        }
        self.leave();
        Ok((left, depth))
    }

    fn parse_and(&mut self) -> PResult {
        let (mut left, mut depth) = self.parse_not()?;
        while *self.peek() == Tok::And {
            let at = self.advance().start;
            let (right, d) = self.parse_not()?;
            depth = depth.max(d) + 1;
            (left, depth) = self.node(Node::And(Box::new(left), Box::new(right)), depth, at)?;
        }
        Ok((left, depth))
    }

    fn parse_not(&mut self) -> PResult {
        if *self.peek() == Tok::Not {
            let at = self.advance().start;
            self.enter()?;
            let (inner, d) = self.parse_not()?;
            self.leave();
            return self.node(Node::Not(Box::new(inner)), d + 1, at);
        }
        self.parse_comparison()
    }

    /// Parses a comparison operator at the current token, if any.
    fn comp_op(&mut self) -> Result<Option<(CmpOp, usize)>, ExprSyntaxError> {
        let op = match self.peek() {
            Tok::Lt => CmpOp::Lt,
            Tok::Le => CmpOp::Le,
            Tok::Gt => CmpOp::Gt,
            Tok::Ge => CmpOp::Ge,
            Tok::EqEq => CmpOp::Eq,
            Tok::Ne => CmpOp::Ne,
            Tok::In => CmpOp::In,
            Tok::Not => {
                let at = self.advance().start;
                if *self.peek() != Tok::In {
                    return Err(self.expected("`in` after `not`"));
                }
                self.advance();
                return Ok(Some((CmpOp::NotIn, at)));
            }
            _ => return Ok(None),
        };
        let at = self.advance().start;
        Ok(Some((op, at)))
    }

    fn parse_comparison(&mut self) -> PResult {
        let (left, ld) = self.parse_sum()?;
        let Some((op, at)) = self.comp_op()? else {
            return Ok((left, ld));
        };
        let (right, rd) = self.parse_sum()?;
        if is_comp_op(self.peek()) {
            let tok = self.cur();
            return Err(self.error_at(
                tok.start,
                format!(
                    "comparison chaining is not supported (found `{}` after a comparison); \
                     combine comparisons with `and`",
                    self.text(tok)
                ),
            ));
        }
        self.node(
            Node::Cmp(op, Box::new(left), Box::new(right)),
            ld.max(rd) + 1,
            at,
        )
    }

    fn parse_sum(&mut self) -> PResult {
        let (mut left, mut depth) = self.parse_term()?;
        loop {
            let op = match self.peek() {
                Tok::Plus => ArithOp::Add,
                Tok::Minus => ArithOp::Sub,
                _ => break,
            };
            let at = self.advance().start;
            let (right, d) = self.parse_term()?;
            depth = depth.max(d) + 1;
            (left, depth) =
                self.node(Node::Arith(op, Box::new(left), Box::new(right)), depth, at)?;
        }
        Ok((left, depth))
    }

    fn parse_term(&mut self) -> PResult {
        let (mut left, mut depth) = self.parse_factor()?;
        loop {
            let op = match self.peek() {
                Tok::Star => ArithOp::Mul,
                Tok::Slash => ArithOp::Div,
                Tok::SlashSlash => ArithOp::FloorDiv,
                Tok::Percent => ArithOp::Mod,
                _ => break,
            };
            let at = self.advance().start;
            let (right, d) = self.parse_factor()?;
            depth = depth.max(d) + 1;
            (left, depth) =
                self.node(Node::Arith(op, Box::new(left), Box::new(right)), depth, at)?;
        }
        Ok((left, depth))
    }

    fn parse_factor(&mut self) -> PResult {
        let negate = match self.peek() {
            Tok::Minus => true,
            Tok::Plus => false,
            _ => return self.parse_postfix(),
        };
        let at = self.advance().start;
        self.enter()?;
        let (inner, d) = self.parse_factor()?;
        self.leave();
        // Constant-fold signs on numeric literals so `x > -1` stays cheap.
        match (negate, inner) {
            (true, Node::Lit(Lit::Int(i))) if i != i64::MIN => Ok((Node::Lit(Lit::Int(-i)), d)),
            (true, Node::Lit(Lit::Float(f))) => Ok((Node::Lit(Lit::Float(-f)), d)),
            (false, Node::Lit(lit @ (Lit::Int(_) | Lit::Float(_)))) => Ok((Node::Lit(lit), d)),
            (true, inner) => self.node(Node::Neg(Box::new(inner)), d + 1, at),
            (false, inner) => self.node(Node::Pos(Box::new(inner)), d + 1, at),
        }
    }

    fn parse_postfix(&mut self) -> PResult {
        let first = self.pos;
        let (mut node, mut depth) = self.parse_atom()?;
        if *self.peek() != Tok::Dot {
            return Ok((node, depth));
        }
        let mut path: String = match &node {
            Node::Key(k) => k.to_string(),
            _ => {
                let start = self.toks[first].start;
                let end = self.toks[self.pos - 1].end;
                self.chars[start..end].iter().collect()
            }
        };
        while *self.peek() == Tok::Dot {
            let at = self.advance().start;
            let name = match self.peek() {
                Tok::Ident(name) => name.clone(),
                _ => return Err(self.expected("a field name after `.`")),
            };
            self.advance();
            let base_path = path.clone();
            path.push('.');
            path.push_str(&name);
            depth += 1;
            (node, depth) = self.node(
                Node::Field {
                    base: Box::new(node),
                    name: name.into(),
                    path: path.as_str().into(),
                    base_path: base_path.into(),
                },
                depth,
                at,
            )?;
        }
        Ok((node, depth))
    }

    fn parse_atom(&mut self) -> PResult {
        let tok = self.cur().clone();
        let lit = match tok.tok {
            Tok::Int(i) => Lit::Int(i),
            Tok::Float(f) => Lit::Float(f),
            Tok::Str(s) => Lit::Str(s.into()),
            Tok::True => Lit::Bool(true),
            Tok::False => Lit::Bool(false),
            Tok::None => Lit::Null,
            Tok::Ident(name) => {
                self.advance();
                if !self.keys.contains(&name) {
                    self.keys.push(name.clone());
                }
                return Ok((Node::Key(name.into()), 1));
            }
            Tok::Len => {
                self.advance();
                self.expect(Tok::LParen, "`(` after `len`")?;
                let (inner, d) = self.parse_or()?;
                self.expect(Tok::RParen, "`)`")?;
                return self.node(Node::Len(Box::new(inner)), d + 1, tok.start);
            }
            Tok::LParen => {
                self.advance();
                let inner = self.parse_or()?;
                self.expect(Tok::RParen, "`)`")?;
                return Ok(inner);
            }
            Tok::LBracket => return self.parse_list(tok.start),
            _ => return Err(self.expected("a value")),
        };
        self.advance();
        Ok((Node::Lit(lit), 1))
    }

    fn parse_list(&mut self, at: usize) -> PResult {
        self.advance(); // `[`
        let mut items = Vec::new();
        let mut depth = 0;
        loop {
            if *self.peek() == Tok::RBracket {
                self.advance();
                break;
            }
            let (item, d) = self.parse_or()?;
            items.push(item);
            depth = depth.max(d);
            match self.peek() {
                Tok::Comma => {
                    self.advance();
                }
                Tok::RBracket => {
                    self.advance();
                    break;
                }
                _ => return Err(self.expected("`,` or `]`")),
            }
        }
        // Lists made only of constants become one pre-built JSON array, so
        // `x in [1, 2, 3]` evaluates without allocating.
        if let Some(values) = items.iter().map(const_json).collect::<Option<Vec<_>>>() {
            return Ok((Node::Lit(Lit::Json(Value::Array(values))), depth.max(1)));
        }
        self.node(Node::List(items), depth + 1, at)
    }
}

/// The JSON value of a constant node, if it has one (non-finite floats have
/// none, since JSON cannot represent them).
fn const_json(node: &Node) -> Option<Value> {
    match node {
        Node::Lit(Lit::Null) => Some(Value::Null),
        Node::Lit(Lit::Bool(b)) => Some(Value::Bool(*b)),
        Node::Lit(Lit::Int(i)) => Some(Value::from(*i)),
        Node::Lit(Lit::Float(f)) => serde_json::Number::from_f64(*f).map(Value::Number),
        Node::Lit(Lit::Str(s)) => Some(Value::String(s.to_string())),
        Node::Lit(Lit::Json(v)) => Some(v.clone()),
        _ => None,
    }
}
