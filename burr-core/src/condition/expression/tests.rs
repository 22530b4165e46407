use serde_json::{json, Value};

use super::{Expr, ExprEvalError, ExprSyntaxError};

fn state() -> Value {
    json!({
        "count": 7,
        "neg": -7,
        "zero": 0,
        "fzero": 0.0,
        "half": 0.5,
        "two_f": 2.0,
        "big_u": u64::MAX,
        "max": i64::MAX,
        "min": i64::MIN,
        "done": false,
        "ok": true,
        "nothing": null,
        "name": "héllo wörld",
        "empty_s": "",
        "empty_l": [],
        "empty_o": {},
        "items": [1, 2, "three", [4]],
        "user": {"name": "ada", "age": 36, "address": {"city": "London"}, "tags": ["a", "b"]},
        "user2": {"age": 36.0, "name": "ada", "tags": ["a", "b"], "address": {"city": "London"}},
        "a": 1, "b": 2, "c": 3,
    })
}

fn ev(src: &str) -> Result<Value, ExprEvalError> {
    let st = state();
    let e = Expr::parse(src).unwrap_or_else(|e| panic!("{e}"));
    e.evaluate_value(&|k| st.get(k))
}

fn val(src: &str) -> Value {
    ev(src).unwrap_or_else(|e| panic!("{src}: {e}"))
}

fn truth(src: &str) -> bool {
    let st = state();
    let e = Expr::parse(src).unwrap_or_else(|e| panic!("{e}"));
    e.evaluate(&|k| st.get(k))
        .unwrap_or_else(|e| panic!("{src}: {e}"))
}

fn type_err(src: &str) -> String {
    match ev(src) {
        Err(ExprEvalError::Type {
            expression,
            message,
        }) => {
            assert_eq!(expression, src);
            message
        }
        other => panic!("{src}: expected type error, got {other:?}"),
    }
}

fn syn(src: &str) -> ExprSyntaxError {
    match Expr::parse(src) {
        Err(e) => {
            assert_eq!(e.expression, src);
            e
        }
        Ok(e) => panic!("{src}: expected syntax error, parsed {e:?}"),
    }
}

/// Asserts a syntax error at `pos` whose message contains `needle`.
fn syn_at(src: &str, pos: usize, needle: &str) {
    let e = syn(src);
    assert_eq!(e.position, pos, "{src}: {e}");
    assert!(e.message.contains(needle), "{src}: {e}");
}

#[test]
fn precedence() {
    // not (a == 1) and b, then `or c`
    assert_eq!(val("not a == 1 and b or c"), json!(3));
    assert_eq!(val("not a == 2 and b or c"), json!(2));
    assert_eq!(val("-count % 3"), json!(2)); // (-7) % 3
    assert_eq!(val("-(count % 3)"), json!(-1));
    assert_eq!(val("1 + 2 * 3"), json!(7));
    assert_eq!(val("(1 + 2) * 3"), json!(9));
    assert_eq!(val("10 - 4 - 3"), json!(3));
    assert_eq!(val("2 * 3 % 4"), json!(2));
    assert_eq!(val("1 + 2 < 4"), json!(true));
    assert_eq!(val("a < b and b < c"), json!(true));
    assert_eq!(val("not not a"), json!(true));
    assert_eq!(val("--count"), json!(7));
    assert_eq!(val("+count"), json!(7));
    assert_eq!(val("1 in [1] and 2 not in [1]"), json!(true));
    assert_eq!(val("False or not False and False"), json!(false));
}

#[test]
fn floor_division_and_modulo() {
    assert_eq!(val("-7 // 2"), json!(-4));
    assert_eq!(val("7 // -2"), json!(-4));
    assert_eq!(val("-7 // -2"), json!(3));
    assert_eq!(val("7 // 2"), json!(3));
    assert_eq!(val("-7 % 3"), json!(2));
    assert_eq!(val("7 % -3"), json!(-2));
    assert_eq!(val("-7 % -3"), json!(-1));
    assert_eq!(val("6 % 3"), json!(0));
    assert_eq!(val("-7.0 // 2"), json!(-4.0));
    assert_eq!(val("7.5 // -2"), json!(-4.0));
    assert_eq!(val("-7.0 % 3"), json!(2.0));
    assert_eq!(val("7.0 % -3"), json!(-2.0));
    assert_eq!(val("-7.5 % 2"), json!(0.5));
    assert_eq!(val("min % -1"), json!(0));
    assert_eq!(val("7 / 2"), json!(3.5));
    assert_eq!(val("6 / 3"), json!(2.0));
    assert_eq!(val("1 + 0.5"), json!(1.5));
    assert_eq!(val("two_f * 2"), json!(4.0));
}

#[test]
fn division_by_zero() {
    for src in [
        "1 / 0",
        "1 // 0",
        "1 % 0",
        "1.0 / 0",
        "1 / 0.0",
        "1 % fzero",
        "count // zero",
    ] {
        assert_eq!(
            ev(src),
            Err(ExprEvalError::DivisionByZero {
                expression: src.to_string()
            }),
            "{src}"
        );
    }
    let msg = ev("count / zero").unwrap_err().to_string();
    assert_eq!(msg, "cannot evaluate `count / zero`: division by zero");
}

#[test]
fn integer_overflow_is_a_type_error() {
    assert!(type_err("max + 1").contains("overflow"));
    assert!(type_err("min - 1").contains("overflow"));
    assert!(type_err("max * 2").contains("overflow"));
    assert!(type_err("-min").contains("overflow"));
    assert!(type_err("min // -1").contains("overflow"));
}

#[test]
fn concatenation_and_repetition() {
    assert_eq!(val("'ab' + \"cd\""), json!("abcd"));
    assert_eq!(val("name + '!'"), json!("héllo wörld!"));
    assert_eq!(val("[1, 2] + [3]"), json!([1, 2, 3]));
    assert_eq!(val("items + [count]"), json!([1, 2, "three", [4], 7]));
    assert_eq!(val("'ab' * 3"), json!("ababab"));
    assert_eq!(val("2 * [0]"), json!([0, 0]));
    assert_eq!(val("[1] * -1"), json!([]));
    assert!(type_err("'a' + 1").contains("unsupported operand type(s) for +: 'str' and 'int'"));
    assert!(type_err("[1] + 'a'").contains("'list' and 'str'"));
    assert!(matches!(
        ev("'a' * 100000000000"),
        Err(ExprEvalError::LimitExceeded {
            limit: super::Limit::Bytes,
            ..
        })
    ));
    assert_eq!(val("[] * 9223372036854775807"), json!([]));
    assert_eq!(val("'' * 9223372036854775807"), json!(""));
    assert_eq!(val("'ab' * -9223372036854775807"), json!(""));
    assert!(type_err("'a' - 'b'").contains("for -"));
}

#[test]
fn bools_are_not_numbers() {
    assert!(type_err("True + 1").contains("'bool' and 'int'"));
    assert!(type_err("-ok").contains("unary -"));
    assert!(type_err("ok < 2").contains("'bool' and 'int'"));
    assert!(type_err("False < True").contains("'bool' and 'bool'"));
    assert_eq!(val("ok == 1"), json!(false));
    assert_eq!(val("done == 0"), json!(false));
    assert_eq!(val("ok == true"), json!(true));
    assert_eq!(val("1 in [True]"), json!(false));
}

#[test]
fn membership() {
    assert!(truth("2 in items"));
    assert!(truth("2.0 in items"));
    assert!(truth("'three' in items"));
    assert!(truth("[4] in items"));
    assert!(truth("5 not in items"));
    assert!(!truth("'2' in items"));
    assert!(truth("'ll' in name"));
    assert!(truth("'wör' in name"));
    assert!(truth("'' in name"));
    assert!(truth("'xyz' not in name"));
    assert!(truth("'name' in user"));
    assert!(truth("'city' not in user"));
    assert!(truth("count in [1, 7, 9]"));
    assert!(truth("count in [a, b, count]"));
    assert!(type_err("1 in name").contains("requires string as left operand, not int"));
    assert!(type_err("1 in user").contains("not int"));
    assert!(type_err("1 in count").contains("argument of type 'int' is not iterable"));
    assert!(type_err("1 not in nothing").contains("'NoneType' is not iterable"));
}

#[test]
fn len_function() {
    assert_eq!(val("len(name)"), json!(11)); // chars, not bytes
    assert_eq!(val("len('日本語')"), json!(3));
    assert_eq!(val("len(items)"), json!(4));
    assert_eq!(val("len(user)"), json!(4));
    assert_eq!(val("len(empty_l) + len(empty_s) + len(empty_o)"), json!(0));
    assert_eq!(val("len([1, count])"), json!(2));
    assert!(type_err("len(count)").contains("object of type 'int' has no len()"));
    assert!(type_err("len(nothing)").contains("'NoneType'"));
}

#[test]
fn structural_equality() {
    assert!(truth("2 == 2.0"));
    assert!(truth("two_f == 2"));
    assert!(truth("'3' != 3"));
    assert!(truth("None == null"));
    assert!(truth("nothing == None"));
    assert!(truth("[1, 2.0, 'three', [4.0]] == items"));
    assert!(truth("items != [1, 2, 'three']"));
    assert!(truth("user == user2"));
    assert!(truth("user.address == user2.address"));
    assert!(truth("user != user.address"));
    assert!(truth("empty_o != empty_l"));
    assert!(truth("empty_l == []"));
    assert!(truth("'héllo wörld' == name"));
    assert!(!truth("max == 9223372036854775807.0")); // exact int/float comparison
    assert!(truth("big_u > max"));
    assert!(truth("big_u == 18446744073709551615.0"));
}

#[test]
fn ordering() {
    assert!(truth("count < 10"));
    assert!(truth("count <= 7 and count >= 7"));
    assert!(truth("half < 1"));
    assert!(truth("-1 < half"));
    assert!(truth("'abc' < 'abd'"));
    assert!(truth("'Z' < 'a'"));
    assert!(truth("'ab' < 'abc'"));
    assert!(truth("[1, 2] < [1, 3]"));
    assert!(truth("[1, 2] < [1, 2, 0]"));
    assert!(truth("[1, 'b'] > [1, 'a']"));
    assert!(truth("[2] > [1, 'x']"));
    assert!(truth("[1.0, 2] <= [1, 2]"));
    assert_eq!(
        type_err("name < count"),
        "'<' not supported between instances of 'str' and 'int'"
    );
    assert_eq!(
        type_err("nothing >= 1"),
        "'>=' not supported between instances of 'NoneType' and 'int'"
    );
    assert!(type_err("user > user").contains("'dict' and 'dict'"));
    assert!(type_err("items < 'x'").contains("'list' and 'str'"));
    assert!(type_err("[1] < ['a']").contains("'int' and 'str'"));
    let msg = ev("name < count").unwrap_err().to_string();
    assert_eq!(
        msg,
        "cannot evaluate `name < count`: '<' not supported between instances of 'str' and 'int'"
    );
}

#[test]
fn and_or_return_operands() {
    assert_eq!(val("count and name"), json!("héllo wörld"));
    assert_eq!(val("zero and name"), json!(0));
    assert_eq!(val("empty_s or items"), json!([1, 2, "three", [4]]));
    assert_eq!(val("count or missing"), json!(7)); // short-circuit: `missing` never read
    assert_eq!(val("done and missing"), json!(false));
    assert_eq!(val("nothing or empty_l"), json!([]));
    assert_eq!(val("not count"), json!(false));
    assert_eq!(val("not empty_o"), json!(true));
    assert!(matches!(
        ev("ok and missing"),
        Err(ExprEvalError::MissingKey { .. })
    ));
}

#[test]
fn truthiness() {
    for falsy in [
        "nothing", "done", "zero", "fzero", "empty_s", "empty_l", "empty_o", "None", "0", "0.0",
        "-0.0", "''", "[]", "False",
    ] {
        assert!(!truth(falsy), "{falsy} should be falsy");
    }
    for truthy in [
        "ok", "count", "neg", "half", "name", "items", "user", "' '", "[0]", "[[]]", "1e-9",
    ] {
        assert!(truth(truthy), "{truthy} should be truthy");
    }
}

#[test]
fn dotted_access() {
    assert_eq!(val("user.name"), json!("ada"));
    assert_eq!(val("user.address.city"), json!("London"));
    assert!(truth("user.age > 30 and 'a' in user.tags"));
    assert_eq!(
        ev("user.email"),
        Err(ExprEvalError::MissingKey {
            key: "user.email".into()
        })
    );
    assert_eq!(
        ev("user.address.zip"),
        Err(ExprEvalError::MissingKey {
            key: "user.address.zip".into()
        })
    );
    assert_eq!(
        ev("user.nope.zip"),
        Err(ExprEvalError::MissingKey {
            key: "user.nope".into()
        })
    );
    assert_eq!(
        ev("ghost.name"),
        Err(ExprEvalError::MissingKey {
            key: "ghost".into()
        })
    );
    assert!(type_err("user.name.first").contains("`user.name`: it is a 'str', not an object"));
    assert!(type_err("count.x").contains("field `x` of `count`"));
    assert!(type_err("(count).x").contains("field `x` of `count`"));
    assert!(type_err("(count + 1).x").contains("field `x` of `(count + 1)`"));
    assert_eq!(val("(nothing or user).name"), json!("ada"));
}

#[test]
fn missing_key_names_the_key() {
    let e = ev("count < 3 or missing_thing").unwrap_err();
    assert_eq!(
        e,
        ExprEvalError::MissingKey {
            key: "missing_thing".into()
        }
    );
    assert_eq!(e.to_string(), "state key `missing_thing` not found");
    let e = Expr::parse("x").unwrap();
    assert!(matches!(e.evaluate(&|_| None), Err(ExprEvalError::MissingKey { key }) if key == "x"));
}

#[test]
fn keys_deduplicated_in_order() {
    let e = Expr::parse("b.x.y < 3 and len(a) > 0 or b == c and a in [d, 1] and True").unwrap();
    assert_eq!(e.keys(), ["b", "a", "c", "d"]);
    assert_eq!(Expr::parse("1 + 2").unwrap().keys(), [] as [String; 0]);
    assert_eq!(Expr::parse("len(x.y)").unwrap().keys(), ["x"]);
    let src = "  count <  10 ";
    let e = Expr::parse(src).unwrap();
    assert_eq!(e.source(), src);
    assert_eq!(e.to_string(), src);
}

#[test]
fn literals() {
    assert_eq!(val("1.5"), json!(1.5));
    assert_eq!(val("2."), json!(2.0));
    assert_eq!(val(".5"), json!(0.5));
    assert_eq!(val("1e3"), json!(1000.0));
    assert_eq!(val("1.5e-3"), json!(0.0015));
    assert_eq!(val("2E+2"), json!(200.0));
    assert_eq!(val("9223372036854775807"), json!(i64::MAX));
    assert_eq!(val("-9223372036854775807 - 1"), json!(i64::MIN));
    assert_eq!(val("0"), json!(0));
    assert_eq!(val("true"), json!(true));
    assert_eq!(val("False"), json!(false));
    assert_eq!(val("null"), json!(null));
    assert_eq!(
        val(r#"'it\'s' + "\"q\"" + '\\\n\t'"#),
        json!("it's\"q\"\\\n\t")
    );
    assert_eq!(val("'日本語 ✓'"), json!("日本語 ✓"));
    assert_eq!(val("[1, 'a', [None],]"), json!([1, "a", [null]]));
    assert_eq!(val("[]"), json!([]));
    assert_eq!(val("1e999 > max"), json!(true));
    assert_eq!(val("[1e999]"), json!([null])); // non-finite -> null in JSON output
}

#[test]
fn unicode_strings() {
    assert!(truth("name == 'héllo wörld'"));
    assert!(truth("len(name) == 11"));
    assert!(truth("'ö' in name"));
    assert!(truth("'é' > 'z'")); // code point order
                                 // Positions are char offsets, not byte offsets.
    syn_at("'é' == $", 7, "unknown character `$`");
}

#[test]
fn syntax_errors() {
    syn_at("count <", 7, "expected a value");
    assert_eq!(
        syn("count <").to_string(),
        "invalid expression `count <`: expected a value at position 7"
    );
    syn_at("", 0, "empty expression");
    syn_at("   ", 0, "empty expression");
    syn_at("(a", 2, "expected `)`");
    syn_at("(a b", 3, "expected `)`, found `b`");
    syn_at("len(a", 5, "expected `)`");
    syn_at("len a", 4, "expected `(` after `len`");
    syn_at("len", 3, "expected `(` after `len`");
    syn_at("[1, 2", 5, "expected `,` or `]`");
    syn_at("[1 2]", 3, "expected `,` or `]`");
    syn_at("[,]", 1, "expected a value, found `,`");
    syn_at("a b", 2, "unexpected token `b`");
    syn_at("a)", 1, "unexpected token `)`");
    syn_at("< 1", 0, "expected a value, found `<`");
    syn_at("a and", 5, "expected a value");
    syn_at("()", 1, "expected a value, found `)`");
    syn_at("a < 'abc", 4, "unterminated string");
    syn_at("'abc\\", 0, "unterminated string");
    syn_at("\"x' ", 0, "unterminated string");
    syn_at("'a\\qb'", 2, "unknown escape sequence `\\q`");
    syn_at("count $ 2", 6, "unknown character `$`");
    syn_at("a = 1", 2, "use `==`");
    syn_at("!a", 0, "use `not`");
    syn_at("a && b", 2, "use `and`");
    syn_at("a || b", 2, "use `or`");
    syn_at("a ** 2", 2, "`**`");
    syn_at("a is None", 2, "`is` is not supported");
    syn_at("a not b", 6, "expected `in` after `not`, found `b`");
    syn_at("a.", 2, "expected a field name after `.`");
    syn_at("a.1", 1, "unexpected token `.1`");
    syn_at("a.in", 2, "expected a field name after `.`, found `in`");
    syn_at("1abc", 0, "invalid number literal `1abc`");
    syn_at("1e", 0, "invalid number literal");
    syn_at("1e+", 0, "invalid number literal");
    syn_at("x == 007", 5, "leading zeros");
    syn_at("in", 0, "expected a value, found `in`");
    syn_at("not", 3, "expected a value");
    syn_at("a == not b", 5, "expected a value, found `not`");
}

#[test]
fn comparison_chaining_rejected() {
    syn_at("a < b < c", 6, "comparison chaining is not supported");
    syn_at("1 == 1 == 1", 7, "comparison chaining");
    syn_at("a in b not in c", 7, "comparison chaining");
    syn_at("a < b in c", 6, "comparison chaining");
    // Parenthesised is fine.
    assert!(truth("(a < b) == True"));
}

#[test]
fn big_int_literal_rejected() {
    syn_at("x < 9223372036854775808", 4, "too large");
    syn_at("99999999999999999999999", 0, "too large");
}

#[test]
fn dunder_identifiers_rejected() {
    syn_at(
        "__class__",
        0,
        "identifiers starting with `__` are reserved",
    );
    syn_at("a.__dict__", 2, "reserved");
    syn_at("x + __y", 4, "reserved");
    // A single leading underscore is an ordinary key.
    assert_eq!(Expr::parse("_x and x_").unwrap().keys(), ["_x", "x_"]);
}

#[test]
fn deep_nesting_is_rejected_not_overflowing() {
    let deep = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
    assert!(syn(&deep).message.contains("too deeply nested"));
    let deep = format!("{}x", "not ".repeat(10_000));
    assert!(syn(&deep).message.contains("too deeply nested"));
    let deep = format!("{}x", "-".repeat(10_000));
    assert!(syn(&deep).message.contains("too deeply nested"));
    let long = vec!["1"; 10_000].join(" + ");
    assert!(syn(&long).message.contains("too deeply nested"));
    // Moderate nesting is fine.
    let ok = format!("{}1{}", "(".repeat(50), ")".repeat(50));
    assert_eq!(val(&ok), json!(1));
    let ok = vec!["1"; 50].join(" + ");
    assert_eq!(val(&ok), json!(50));
}

#[test]
fn hot_path_sanity() {
    // Not timed: just checks a million evaluations run fine.
    let e = Expr::parse("count < 10000").unwrap();
    let st = json!({"count": 1});
    let lookup = |k: &str| st.get(k);
    let mut hits = 0u32;
    for _ in 0..1_000_000 {
        if e.evaluate(&lookup).unwrap() {
            hits += 1;
        }
    }
    assert_eq!(hits, 1_000_000);
}

#[test]
fn errors_are_clone_and_comparable() {
    let e = syn("a <");
    assert_eq!(e.clone(), e);
    let ev_err = ev("1 / 0").unwrap_err();
    assert_eq!(ev_err.clone(), ev_err);
    let parsed = Expr::parse("count < 10").unwrap();
    let cloned = parsed.clone();
    let st = state();
    assert!(cloned.evaluate(&|k| st.get(k)).unwrap());
}
