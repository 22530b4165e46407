use serde_json::json;

use super::*;
use crate::actions::action_sync;
use crate::condition::{default, expr};
use crate::state::State;

fn noop(name: &str) -> crate::actions::FnAction {
    action_sync(name, |s: State, _, _| s)
}

#[test]
fn reports_every_problem_at_once() {
    let err = GraphBuilder::new()
        .with_actions([noop("a"), noop("a"), noop("b")])
        .with_transitions([("a", "nowhere"), ("ghost", "b")])
        .with_transitions([("b", "a", default()), ("b", "b", default())])
        .with_transitions([("a", "b", expr("count <"))])
        .build()
        .unwrap_err();
    assert_eq!(
        err.problems[..4],
        [
            GraphProblem::DuplicateAction { name: "a".into() },
            GraphProblem::UnknownTarget {
                name: "nowhere".into(),
                did_you_mean: None,
            },
            GraphProblem::UnknownSource {
                name: "ghost".into(),
                did_you_mean: None,
            },
            GraphProblem::RedundantDefault {
                from: "b".into(),
                to: "b".into()
            },
        ]
    );
    assert!(matches!(
        err.problems[4],
        GraphProblem::InvalidCondition { .. }
    ));
    assert_eq!(err.problems.len(), 5);
    assert!(err.to_string().contains("5 problems"), "{err}");
}

#[test]
fn no_actions_is_an_error() {
    let err = GraphBuilder::new().build().unwrap_err();
    assert_eq!(err.problems, [GraphProblem::NoActions]);
}

#[test]
fn redundant_default_counts_from_lists() {
    let err = GraphBuilder::new()
        .with_actions([noop("a"), noop("b"), noop("c")])
        .with_transitions([(["a", "b"], "c")])
        .with_transitions([("a", "b")])
        .build()
        .unwrap_err();
    assert_eq!(
        err.problems,
        [GraphProblem::RedundantDefault {
            from: "a".into(),
            to: "b".into()
        }]
    );
}

#[test]
fn next_is_first_true_in_declaration_order() {
    let g = GraphBuilder::new()
        .with_actions([noop("a"), noop("b"), noop("c")])
        .with_transitions([
            ("a", "b", expr("n > 5")),
            ("a", "c", expr("n > 1")),
            ("a", "a", default()),
        ])
        .build()
        .unwrap();
    let at = |n: i64| {
        g.next_after(0, &State::new().update("n", n))
            .unwrap()
            .map(|i| g.action(i).name().to_owned())
    };
    assert_eq!(at(9).as_deref(), Some("b"));
    assert_eq!(at(3).as_deref(), Some("c"));
    assert_eq!(at(0).as_deref(), Some("a"));
    assert_eq!(
        g.next_after(1, &State::new()).unwrap(),
        None,
        "b has no transitions"
    );
}

#[test]
fn default_declared_first_wins() {
    let g = GraphBuilder::new()
        .with_actions([noop("a"), noop("b"), noop("c")])
        .with_transitions([("a", "b", default()), ("a", "c", expr("true"))])
        .build()
        .unwrap();
    assert_eq!(g.next_after(0, &State::new()).unwrap(), Some(1));
}

#[test]
fn exports_dot_and_mermaid() {
    let g = GraphBuilder::new()
        .with_actions([noop("a"), noop("b")])
        .with_transitions([("a", "b", expr("x == \"q\"")), ("b", "a", default())])
        .build()
        .unwrap();
    let dot = g.to_dot();
    assert!(dot.starts_with("digraph"));
    assert!(dot.contains(r#""a" -> "b" [label="x == \"q\""];"#), "{dot}");
    assert!(dot.contains(r#""b" -> "a";"#));
    let mermaid = g.to_mermaid();
    assert!(
        mermaid.contains("a0 -->|\"x == #quot;q#quot;\"| a1"),
        "{mermaid}"
    );
    assert!(mermaid.contains("a1 --> a0"));
    let _ = json!(null);
}

#[test]
fn unreachable_actions_are_found() {
    let g = GraphBuilder::new()
        .with_actions([noop("a"), noop("b"), noop("island")])
        .with_transitions([("a", "b")])
        .build()
        .unwrap();
    assert_eq!(g.unreachable_from(0), ["island"]);
}
