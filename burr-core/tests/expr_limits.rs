//! Issue 19, items 1-2 (condition side): deep values compare without
//! overflowing the stack, deep expressions are rejected by the parser, and
//! evaluation has a budget (steps, elements, bytes) so that no condition can
//! hang or abort the process.

use std::sync::Arc;
use std::time::{Duration, Instant};

use burr_core::condition::expression::{Budget, Expr, ExprEvalError, Limit};
use burr_core::{expr, when, State};
use serde_json::{json, Map, Value};

/// Depth of the deep values: far beyond any stack.
const DEEP: usize = 100_000;

/// Runs `f` on a thread with a 2 MiB stack (a stack overflow aborts the test
/// binary, so a regression cannot pass silently).
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

/// `[[[...[leaf]...]]]`, `depth` levels, built without recursion.
fn deep_array(depth: usize, leaf: Value) -> Value {
    let mut v = leaf;
    for _ in 0..depth {
        v = Value::Array(vec![v]);
    }
    v
}

/// `{"k": {"k": ... leaf}}`, `depth` levels, built without recursion.
fn deep_object(depth: usize, leaf: Value) -> Value {
    let mut v = leaf;
    for _ in 0..depth {
        let mut m = Map::new();
        m.insert("k".to_string(), v);
        v = Value::Object(m);
    }
    v
}

/// Drops a value of any depth without recursion (serde_json's own drop
/// recurses).
fn drop_deep(v: Value) {
    let mut stack = vec![v];
    while let Some(mut v) = stack.pop() {
        match &mut v {
            Value::Array(items) => stack.append(items),
            Value::Object(map) => stack.extend(std::mem::take(map).into_iter().map(|(_, v)| v)),
            _ => {}
        }
    }
}

/// Drops a shared deep value once nothing else holds it.
fn drop_shared(v: Arc<Value>) {
    drop_deep(Arc::try_unwrap(v).expect("no other owner left"));
}

fn eval_in(src: &str, state: &Value) -> Result<bool, ExprEvalError> {
    let e = Expr::parse(src).unwrap_or_else(|e| panic!("{e}"));
    e.evaluate(&|k| state.get(k))
}

fn limit_of(src: &str, state: &Value) -> (Limit, Duration) {
    let started = Instant::now();
    let result = eval_in(src, state);
    let took = started.elapsed();
    match &result {
        Err(
            err @ ExprEvalError::LimitExceeded {
                limit,
                max,
                expression,
            },
        ) => {
            assert_eq!(expression, src);
            let (limit, max) = (*limit, *max);
            let msg = err.to_string();
            assert!(msg.contains(limit.field()), "{msg}");
            assert!(msg.contains(&max.to_string()), "{msg}");
            (limit, took)
        }
        other => panic!("`{src}`: expected a limit error, got {other:?}"),
    }
}

/// Fails the test if an expression took longer than this.
const QUICK: Duration = Duration::from_secs(5);

fn assert_limit(src: &str, state: &Value, want: Limit) {
    let (limit, took) = limit_of(src, state);
    assert_eq!(limit, want, "`{src}`");
    assert!(took < QUICK, "`{src}` took {took:?}");
}

// ---------------------------------------------------------------------------
// Item 1: deep values.

#[test]
fn deep_values_compare_on_a_2mib_stack() {
    on_small_stack(|| {
        let a = Arc::new(deep_array(DEEP, json!(0)));
        let b = Arc::new(deep_array(DEEP, json!(0)));
        let c = Arc::new(deep_array(DEEP, json!(1)));
        let o = Arc::new(deep_object(DEEP, json!("x")));
        let p = Arc::new(deep_object(DEEP, json!("x")));
        let q = Arc::new(deep_object(DEEP, json!("y")));
        let mixed = Arc::new(deep_array(DEEP, deep_object(DEEP, json!(1.0))));
        let mixed2 = Arc::new(deep_array(DEEP, deep_object(DEEP, json!(1))));
        let state = State::new()
            .update_shared("a", Arc::clone(&a))
            .update_shared("b", Arc::clone(&b))
            .update_shared("c", Arc::clone(&c))
            .update_shared("o", Arc::clone(&o))
            .update_shared("p", Arc::clone(&p))
            .update_shared("q", Arc::clone(&q))
            .update_shared("mixed", Arc::clone(&mixed))
            .update_shared("mixed2", Arc::clone(&mixed2));
        let holds = |src: &str| {
            expr(src)
                .evaluate(&state)
                .unwrap_or_else(|e| panic!("{src}: {e:?}"))
        };
        assert!(holds("a == b"));
        assert!(holds("a == a"));
        assert!(!holds("a != b"));
        assert!(holds("a != c"));
        assert!(holds("a < c"));
        assert!(holds("a <= b"));
        assert!(holds("c > b"));
        assert!(!holds("a > b"));
        assert!(holds("a in [b]"));
        assert!(holds("a not in [c, o]"));
        assert!(holds("[a, b] < [a, c]"));
        assert!(holds("o == p"));
        assert!(holds("o != q"));
        assert!(holds("mixed == mixed2"), "1.0 == 1 deep down");
        assert!(holds("len(a) == 1 and o.k.k.k != q.k.k.k"));
        // Ordering reaches a dict deep down: a typed error, not a crash.
        let err = expr("o < [o]").evaluate(&state).unwrap_err();
        assert!(err.to_string().contains("could not be evaluated"), "{err}");
        let err = expr("[o] < [q]").evaluate(&state).unwrap_err();
        assert!(format!("{err:?}").contains("'dict' and 'dict'"), "{err:?}");
        // `when` compares too.
        assert!(when([("a__ne", json!([]))]).evaluate(&state).unwrap());
        assert!(!when([("a", json!([[0]]))]).evaluate(&state).unwrap());

        // The value of a deep result comes back whole.
        let e = Expr::parse("[a, 1]").unwrap();
        let v = e.evaluate_value(&|k| state.get_value(k)).unwrap();
        assert_eq!(v.as_array().map(Vec::len), Some(2));
        drop_deep(v);

        drop(state);
        for v in [a, b, c, o, p, q, mixed, mixed2] {
            drop_shared(v);
        }
    });
}

#[test]
fn deep_values_in_when_clauses_compare_on_a_2mib_stack() {
    on_small_stack(|| {
        let a = Arc::new(deep_array(DEEP, json!(0)));
        let state = State::new().update_shared("a", Arc::clone(&a));
        // The clause's own value is deep too: comparing walks both.
        let given = deep_array(DEEP, json!(0));
        let eq = when([("a", given)]);
        assert!(eq.evaluate(&state).unwrap());
        let given = deep_array(DEEP, json!(1));
        let lt = when([("a__lt", given)]);
        assert!(lt.evaluate(&state).unwrap());
        drop(eq);
        drop(lt);
        drop(state);
        drop_shared(a);
    });
}

#[test]
fn deep_expressions_are_a_syntax_error_on_a_2mib_stack() {
    on_small_stack(|| {
        let n = DEEP;
        let cases = [
            format!("{}1{}", "(".repeat(n), ")".repeat(n)),
            format!("{}1{}", "[".repeat(n), "]".repeat(n)),
            format!("{}x{}", "[".repeat(n), "]".repeat(n)),
            format!("{}x", "not ".repeat(n)),
            format!("{}x", "-".repeat(n)),
            format!("{}x", "+-".repeat(n)),
            format!("{}x{}", "len(".repeat(n), ")".repeat(n)),
            format!("x{}", ".f".repeat(n)),
            format!("1{}", " + 1".repeat(n)),
            format!("x{}", " or x".repeat(n)),
            format!("x{}", " and x".repeat(n)),
            format!("{}1", "(".repeat(n)),
            "[".repeat(n),
        ];
        for src in cases {
            let started = Instant::now();
            let err = Expr::parse(&src).unwrap_err();
            assert!(
                err.message.contains("too deeply nested") || err.message.contains("expected"),
                "{}",
                err.message
            );
            assert!(started.elapsed() < QUICK);
            // Through `expr`, the error is kept for the build to report.
            assert!(expr(&src).syntax_error().is_some());
        }
        let e = Expr::parse(&format!("{}1{}", "(".repeat(n), ")".repeat(n))).unwrap_err();
        assert!(e.message.contains("100"), "names the limit: {}", e.message);
    });
}

#[test]
fn the_deepest_accepted_expressions_evaluate_on_a_2mib_stack() {
    on_small_stack(|| {
        let st = json!({"x": 1, "o": {"k": 1}});
        let mut accepted = 0;
        for n in [40, 60, 80, 99, 100] {
            let cases = [
                format!("{}x{} != 0", "[".repeat(n), "]".repeat(n)),
                format!("{}x", "not ".repeat(n)),
                format!("{}x > 0", "-".repeat(n)),
                format!("{}x{} == 1", "(x + ".repeat(n), ")".repeat(n)),
                format!("len({}x{}) == 1", "[".repeat(n), "]".repeat(n)),
                format!("x{}", " or x".repeat(n)),
            ];
            for src in cases {
                let Ok(e) = Expr::parse(&src) else { continue };
                accepted += 1;
                e.evaluate(&|k| st.get(k)).unwrap();
                let v = e.evaluate_value(&|k| st.get(k)).unwrap();
                drop_deep(v);
            }
        }
        assert!(accepted >= 20, "{accepted}");
    });
}

// ---------------------------------------------------------------------------
// Item 2: the budget. Each example of the issue, then the ones found since.

#[test]
fn empty_list_repeated_a_huge_number_of_times_is_quick() {
    // Python gives `[]` at once; so do we (it builds nothing).
    let st = json!({});
    let started = Instant::now();
    assert!(!eval_in("[] * 9223372036854775807", &st).unwrap());
    assert!(!eval_in("9223372036854775807 * []", &st).unwrap());
    assert!(!eval_in("'' * 9223372036854775807", &st).unwrap());
    assert!(eval_in("len([] * 9223372036854775807) == 0", &st).unwrap());
    assert!(eval_in("[[]] * 0 == []", &st).unwrap());
    assert!(started.elapsed() < QUICK);
    // A non-empty one is an element limit, whatever the count.
    assert_limit("[[]] * 9223372036854775807", &st, Limit::Elements);
    assert_limit("[0] * 1000001", &st, Limit::Elements);
    assert_limit("'ab' * 9223372036854775807", &st, Limit::Bytes);
}

#[test]
fn nested_repetition_is_an_element_limit() {
    let st = json!({});
    assert_limit("len([[1] * 16777216] * 16777216)", &st, Limit::Elements);
    assert_limit("len([[1] * 1000] * 16777216)", &st, Limit::Elements);
    assert_limit("len([0] * 600000 + [0] * 600000) > 0", &st, Limit::Elements);
}

#[test]
fn concatenation_is_capped() {
    let big = "x".repeat(1 << 20);
    let list: Vec<i64> = vec![0; 400_000];
    let st = json!({"s": big, "l": list});
    // Each `+` copies the whole string so far: quadratic without a cap.
    let src = format!("len(s{}) > 0", " + s".repeat(60));
    assert_limit(&src, &st, Limit::Bytes);
    let src = format!("len(l{}) > 0", " + l".repeat(60));
    assert_limit(&src, &st, Limit::Elements);
    assert_limit("len(l + l + l) > 0", &st, Limit::Elements);
    // Below the limits it still works.
    assert!(eval_in("len(l + l) == 800000", &st).unwrap());
    assert!(eval_in("len(s + s) == 2097152", &st).unwrap());
}

#[test]
fn comparisons_over_repeated_references_are_a_step_limit() {
    let mut y = vec![json!(0); 1000];
    y[999] = json!(1);
    let st = json!({
        "x": vec![0; 1000],
        "y": y,
        "z": vec![0; 1000],
        "s": "a".repeat(1 << 20),
        "t": format!("{}b", "a".repeat((1 << 20) - 1)),
        "u": "a".repeat(1 << 20),
    });
    // Each of the items costs a walk of a thousand (`x`, `y` differ last).
    assert_limit("x in [y] * 900000", &st, Limit::Steps);
    // Equal but distinct lists: every pair is walked to the end.
    assert_limit("[x] * 400000 == [z] * 400000", &st, Limit::Steps);
    assert_limit("[x] * 400000 != [z] * 400000", &st, Limit::Steps);
    assert_limit("[x] * 400000 < [z] * 400000", &st, Limit::Steps);
    assert_limit("[[x] * 400000] >= [[z] * 400000]", &st, Limit::Steps);
    // The budget on elements is over the whole evaluation.
    assert_limit("[x] * 500000 == [z] * 500000", &st, Limit::Elements);
    // A megabyte string compared with many references to another.
    assert_limit("s in [t] * 900000", &st, Limit::Steps);
    assert_limit("[s] * 400000 == [u] * 400000", &st, Limit::Steps);
    assert_limit("[s] * 400000 <= [u] * 400000", &st, Limit::Steps);
    // Identical references are cheap.
    assert!(eval_in("x in [x] * 500000", &st).unwrap());
}

#[test]
fn the_value_of_an_expression_is_budgeted_too() {
    let st = json!({"x": vec![0; 1000], "s": "a".repeat(1 << 20)});
    for src in ["[x] * 100000", "[s] * 1000"] {
        let e = Expr::parse(src).unwrap();
        let started = Instant::now();
        let err = e.evaluate_value(&|k| st.get(k)).unwrap_err();
        assert!(
            matches!(err, ExprEvalError::LimitExceeded { .. }),
            "{src}: {err:?}"
        );
        assert!(started.elapsed() < QUICK);
    }
}

#[test]
fn a_custom_budget_is_used_and_named() {
    let st = json!({"n": 50});
    let e = Expr::parse("len([0] * n) == n")
        .unwrap()
        .with_budget(Budget::default().with_max_elements(10));
    assert_eq!(e.budget().max_elements, 10);
    let err = e.evaluate(&|k| st.get(k)).unwrap_err();
    assert_eq!(
        err,
        ExprEvalError::LimitExceeded {
            expression: "len([0] * n) == n".into(),
            limit: Limit::Elements,
            max: 10,
        }
    );
    let msg = err.to_string();
    assert!(msg.contains("max_elements"), "{msg}");
    assert!(msg.contains("list elements built"), "{msg}");
    let e = Expr::parse("1 + 1 == 2 and 3 > 2")
        .unwrap()
        .with_budget(Budget::default().with_max_steps(2));
    let err = e.evaluate(&|k| st.get(k)).unwrap_err();
    assert!(matches!(
        err,
        ExprEvalError::LimitExceeded {
            limit: Limit::Steps,
            max: 2,
            ..
        }
    ));
    // The budget is per evaluation: the same expression evaluates again.
    let e = Expr::parse("len([0] * n) == n")
        .unwrap()
        .with_budget(Budget::default().with_max_elements(50));
    for _ in 0..3 {
        assert!(e.evaluate(&|k| st.get(k)).unwrap());
    }
}

#[test]
fn conditions_report_the_limit() {
    let state = State::new().update("n", 9_223_372_036_854_775_807_i64);
    let err = expr("len(['a'] * n) > 0").evaluate(&state).unwrap_err();
    let chain = format!("{err:?}");
    assert!(chain.contains("LimitExceeded"), "{chain}");
    assert!(chain.contains("Elements"), "{chain}");
}

/// Repeating or concatenating lists that hold lists built during the evaluation copies
/// those too: they are charged (found by fuzzing: `(0 * ([(3 * big)] * 1000))` copied 30
/// million items under a budget of one million, for two seconds).
#[test]
fn nested_lists_built_are_charged_when_copied() {
    let big: Vec<i64> = vec![7; 10_000];
    let state = json!({ "big": big });
    let started = Instant::now();
    for src in [
        "(0 * ([(3 * big)] * 1000))",
        "len([(3 * big)] * 1000) > 0",
        "len([[(3 * big)]] * 200 + [[(3 * big)]] * 200) > 0",
        "len([('x' * 100000)] * 1000) > 0",
    ] {
        let e = Expr::parse(src).unwrap();
        match e.evaluate_value(&|k| state.get(k)) {
            Err(ExprEvalError::LimitExceeded { .. }) => {}
            other => panic!("{src}: {other:?}"),
        }
    }
    // The same within the budget still works.
    let e = Expr::parse("len([(3 * big)] * 10)").unwrap();
    assert_eq!(e.evaluate_value(&|k| state.get(k)).unwrap(), json!(10));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}
