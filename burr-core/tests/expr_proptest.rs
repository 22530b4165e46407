//! Property tests of the expression language: whatever the input, parsing
//! and evaluation never panic, stay within their time budget, and either
//! succeed or return a typed error.
//!
//! Also the `expr` fuzz target: the corpus `fuzz/corpus/expr/` (one expression a file) is
//! replayed on every run, and `fuzz_expressions` mixes every generator here with
//! mutations of the corpus; `scripts/fuzz.sh` runs it time-boxed.

use std::time::{Duration, Instant};

use burr_core::condition::expression::{Budget, Expr, ExprEvalError};
use proptest::prelude::*;
use serde_json::{json, Value};

#[path = "../../fuzz/harness.rs"]
mod harness;

/// Small enough that a case hitting a limit stays fast in a debug build.
const SMALL: Budget = Budget::DEFAULT
    .with_max_steps(200_000)
    .with_max_elements(50_000)
    .with_max_bytes(1 << 20);

/// A generous bound on one parse + evaluation of one case in a debug build, in time on
/// the CPU (see [`Clock`]).
const SLOW: Duration = Duration::from_secs(2);

/// The time this thread spent on the CPU (Linux: `/proc/thread-self/schedstat`), or else
/// the time on the wall. On a loaded machine (CI shares its cores) wall time stretches
/// with the load, and a bound on it fails cases that did nothing wrong; a hang still
/// spends CPU time.
struct Clock {
    wall: Instant,
    cpu: Option<u64>,
}

impl Clock {
    fn start() -> Clock {
        Clock {
            wall: Instant::now(),
            cpu: cpu_nanos(),
        }
    }

    fn elapsed(&self) -> Duration {
        match (self.cpu, cpu_nanos()) {
            (Some(start), Some(now)) => Duration::from_nanos(now.saturating_sub(start)),
            _ => self.wall.elapsed(),
        }
    }
}

fn cpu_nanos() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn state() -> &'static Value {
    static STATE: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    STATE.get_or_init(make_state)
}

fn make_state() -> Value {
    let mut deep = json!(0);
    for _ in 0..500 {
        deep = json!([deep]);
    }
    json!({
        "a": 3,
        "b": -2,
        "f": 2.5,
        "z": 0,
        "t": true,
        "n": null,
        "s": "héllo",
        "e": "",
        "l": [1, 2.0, "x", [3], {"k": 1}, null, true],
        "big": vec![7; 10_000],
        "o": {"k": {"k": [1, 2]}, "s": "v", "f": 1.5},
        "deep": deep,
        "huge": i64::MAX,
        "tiny": i64::MIN,
        "u": u64::MAX,
    })
}

/// Checks one expression: parsing never panics; if it parses, evaluation
/// with a small budget returns a value or a typed error, quickly; and if it
/// succeeds, the default budget gives the same result.
fn check(src: &str, st: &Value) -> Result<(), TestCaseError> {
    let started = Clock::start();
    let parsed = match Expr::parse(src) {
        Ok(parsed) => parsed,
        Err(error) => {
            prop_assert!(!error.to_string().is_empty());
            prop_assert!(started.elapsed() < SLOW, "parsing `{}` took too long", src);
            return Ok(());
        }
    };
    let small = parsed.clone().with_budget(SMALL);
    let lookup = |k: &str| st.get(k);
    let truth = small.evaluate(&lookup);
    let value = small.evaluate_value(&lookup);
    let took = started.elapsed();
    prop_assert!(took < SLOW, "`{}` took {:?}", src, took);
    for err in [truth.as_ref().err(), value.as_ref().err()]
        .into_iter()
        .flatten()
    {
        prop_assert!(!err.to_string().is_empty());
        match err {
            ExprEvalError::LimitExceeded {
                limit,
                max,
                expression,
            } => {
                prop_assert_eq!(*max, SMALL.max(*limit));
                prop_assert_eq!(expression.as_str(), src);
            }
            ExprEvalError::MissingKey { key } => {
                prop_assert!(!key.is_empty());
            }
            ExprEvalError::Type { expression, .. }
            | ExprEvalError::DivisionByZero { expression } => {
                prop_assert_eq!(expression.as_str(), src);
            }
            other => prop_assert!(false, "unknown error {:?}", other),
        }
    }
    // Truthiness and value agree (`null` may stand for `inf` or `nan`).
    if let (Ok(truth), Ok(value)) = (&truth, &value) {
        if value.is_null() {
            return Ok(());
        }
        prop_assert_eq!(*truth, truthy(value), "`{}`", src);
    }
    // A larger budget never changes a result reached within a smaller one.
    if let Ok(small_truth) = truth {
        let full = parsed.evaluate(&lookup);
        prop_assert_eq!(full, Ok(small_truth), "`{}`", src);
    }
    Ok(())
}

/// Python truthiness of a JSON result.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

const TOKENS: &[&str] = &[
    "(",
    ")",
    "[",
    "]",
    ",",
    ".",
    "not",
    "and",
    "or",
    "in",
    "not in",
    "len",
    "+",
    "-",
    "*",
    "/",
    "//",
    "%",
    "<",
    "<=",
    ">",
    ">=",
    "==",
    "!=",
    "True",
    "False",
    "None",
    "null",
    "0",
    "1",
    "-1",
    "2",
    "7",
    "1000",
    "100000",
    "16777216",
    "9223372036854775807",
    "99999999999999999999",
    "1e308",
    "0.5",
    ".5",
    "2.",
    "007",
    "'a'",
    "''",
    "\"xy\"",
    "'\\n'",
    "'\\q'",
    "'unterminated",
    "a",
    "b",
    "f",
    "z",
    "t",
    "n",
    "s",
    "e",
    "l",
    "big",
    "o",
    "deep",
    "huge",
    "tiny",
    "u",
    "k",
    "missing",
    "__x",
    "is",
    "**",
    "=",
    "!",
    "&",
    "é",
    "\\",
    "#",
    "\t",
];

fn token_soup() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(prop::sample::select(TOKENS), 0..12),
        any::<bool>(),
    )
        .prop_map(|(toks, spaced)| toks.join(if spaced { " " } else { "" }))
}

/// What a generated expression evaluates to (if its keys exist).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Int,
    Float,
    Str,
    List,
    Bool,
    Other,
}

/// The operators that fit operands of kinds `a` and `b`, with the kind of
/// their result.
fn ops_for(a: Kind, b: Kind) -> Vec<(&'static str, Kind)> {
    use Kind::*;
    let mut ops = vec![("==", Bool), ("!=", Bool), ("and", b), ("or", a)];
    let num = |k| matches!(k, Int | Float);
    if num(a) && num(b) {
        let n = if a == Int && b == Int { Int } else { Float };
        ops.extend([
            ("+", n),
            ("-", n),
            ("*", n),
            ("//", n),
            ("%", n),
            ("/", Float),
        ]);
        ops.extend([("<", Bool), ("<=", Bool), (">", Bool), (">=", Bool)]);
    }
    if a == b && matches!(a, Str | List) {
        ops.extend([("+", a), ("<", Bool), (">=", Bool)]);
    }
    if a == Str && b == Str {
        ops.push(("in", Bool));
    }
    if matches!(a, Str | List) && b == Int {
        ops.extend([("*", a), ("*", a), ("*", a)]);
    }
    if b == List {
        ops.extend([("in", Bool), ("not in", Bool)]);
    }
    ops
}

/// Repetition counts, from none to far beyond any budget.
const COUNTS: &[&str] = &[
    "0",
    "(0 - 5)",
    "1",
    "3",
    "1000",
    "70000",
    "1000000",
    "16777216",
    "9223372036854775807",
];

/// Random well-formed expressions (fully parenthesized), mostly well typed,
/// to reach the evaluator with every operator on every kind of value:
/// repetition with huge counts, concatenation, comparisons of lists and deep
/// values.
fn ast() -> impl Strategy<Value = String> {
    use Kind::*;
    let leaf = prop_oneof![
        any::<i64>().prop_map(|i| (
            if i < 0 {
                format!("(0 - {})", i.unsigned_abs().min(i64::MAX as u64))
            } else {
                i.to_string()
            },
            Int
        )),
        (0i64..20).prop_map(|i| (i.to_string(), Int)),
        prop::sample::select(vec![
            ("0.0", Float),
            ("1.5", Float),
            ("1e308", Float),
            ("f", Float),
            ("o.f", Float),
            ("1000", Int),
            ("100000", Int),
            ("16777216", Int),
            ("9223372036854775807", Int),
            ("a", Int),
            ("b", Int),
            ("z", Int),
            ("huge", Int),
            ("tiny", Int),
            ("u", Float),
            ("len(big)", Int),
            ("True", Bool),
            ("t", Bool),
            ("None", Other),
            ("n", Other),
            ("''", Str),
            ("'ab'", Str),
            ("'é'", Str),
            ("s", Str),
            ("e", Str),
            ("o.s", Str),
            ("[]", List),
            ("[1, 'x']", List),
            ("[[1], [2, [3]]]", List),
            ("l", List),
            ("big", List),
            ("deep", List),
            ("o.k.k", List),
            ("o", Other),
            ("o.k", Other),
            ("missing", Int),
        ])
        .prop_map(|(s, k)| (s.to_string(), k)),
    ];
    leaf.prop_recursive(6, 64, 3, |inner| {
        prop_oneof![
            4 => (inner.clone(), inner.clone(), any::<prop::sample::Index>()).prop_map(
                |((a, ka), (b, kb), pick)| {
                    let ops = ops_for(ka, kb);
                    let (op, k) = ops[pick.index(ops.len())];
                    (format!("({a} {op} {b})"), k)
                }
            ),
            2 => (inner.clone(), prop::sample::select(COUNTS))
                .prop_map(|((a, _), n)| (format!("([{a}] * {n})"), List)),
            1 => (inner.clone(), prop::sample::select(COUNTS))
                .prop_map(|((a, k), n)| (format!("({n} * {a})"), k)),
            1 => inner.clone().prop_map(|(a, _)| (format!("(not {a})"), Bool)),
            1 => inner.clone().prop_map(|(a, k)| (format!("(-{a})"), k)),
            1 => inner.clone().prop_map(|(a, _)| (format!("len({a})"), Int)),
            1 => inner.clone().prop_map(|(a, _)| (format!("({a}).k"), Other)),
            2 => prop::collection::vec(inner, 0..4).prop_map(|items| {
                let items: Vec<String> = items.into_iter().map(|(s, _)| s).collect();
                (format!("[{}]", items.join(", ")), List)
            }),
        ]
    })
    .prop_map(|(src, _)| src)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn token_soups_never_panic(src in token_soup()) {
        check(&src, state())?;
    }

    #[test]
    fn random_expressions_evaluate_or_fail_typed(src in ast()) {
        let parsed = Expr::parse(&src);
        prop_assert!(parsed.is_ok(), "`{}`: {:?}", src, parsed.err());
        check(&src, state())?;
    }

    #[test]
    fn random_bytes_never_panic(src in "\\PC{0,40}") {
        check(&src, state())?;
    }
}

/// The corpus expressions, as text.
fn corpus() -> Vec<String> {
    harness::corpus("expr")
        .into_iter()
        .map(|(_, bytes)| harness::text(&bytes))
        .collect()
}

/// A corpus expression with a token inserted, or a part of it cut out, or two spliced.
fn mutated_corpus() -> impl Strategy<Value = String> {
    let texts = corpus();
    (
        prop::sample::select(texts.clone()),
        prop::sample::select(texts),
        prop::sample::select(TOKENS),
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
        0..3u8,
    )
        .prop_map(|(a, b, token, i, j, how)| {
            let cut = |text: &str, at: &prop::sample::Index| {
                let bounds: Vec<usize> = text
                    .char_indices()
                    .map(|(i, _)| i)
                    .chain([text.len()])
                    .collect();
                bounds[at.index(bounds.len())]
            };
            let (x, y) = (cut(&a, &i), cut(&a, &j));
            match how {
                0 => format!("{} {token} {}", &a[..x], &a[x..]),
                1 => format!("{}{}", &a[..x.min(y)], &a[x.max(y)..]),
                _ => format!("{}{}", &a[..x], &b[cut(&b, &j)..]),
            }
        })
}

#[test]
fn the_expr_corpus_parses_or_fails_typed() {
    for (name, bytes) in harness::corpus("expr") {
        let src = harness::text(&bytes);
        if let Err(error) = check(&src, state()) {
            panic!("fuzz/corpus/expr/{name}: {error}");
        }
    }
}

#[test]
fn fuzz_expressions() {
    let inputs = prop_oneof![
        2 => token_soup(),
        2 => ast(),
        1 => "\\PC{0,40}",
        2 => mutated_corpus(),
    ];
    harness::fuzz("expr", file!(), 256, inputs, |src| check(&src, state()));
}
