//! The spans and attributes of a step, as `show` prints them: JSON, and for people one
//! line per span (indented by nesting, with its duration and its attributes as
//! `key=value`) under a line per step.

use std::fmt::Write;

use burr_tracker::inspect::{AttributeInfo, SpanInfo, StepTrace};
use burr_tracker::time::{duration, rfc3339};
use serde_json::{json, Value};

use super::table::{shorten, Cut, WIDTH};

/// Attributes as JSON: `[{"key", "value", "logged_at"}]`.
pub fn attributes_json(attributes: &[AttributeInfo]) -> Value {
    attributes
        .iter()
        .map(|a| json!({ "key": a.key, "value": a.value, "logged_at": rfc3339(a.logged_at_us) }))
        .collect()
}

/// Spans as JSON: `[{"name", "started_at", "ended_at", "duration_us", "attributes",
/// "spans"}]`, recursively.
pub fn spans_json(spans: &[SpanInfo]) -> Value {
    spans
        .iter()
        .map(|s| {
            json!({
                "name": s.name,
                "started_at": rfc3339(s.started_at_us),
                "ended_at": s.ended_at_us.map(rfc3339),
                "duration_us": s.duration_us(),
                "attributes": attributes_json(&s.attributes),
                "spans": spans_json(&s.spans),
            })
        })
        .collect()
}

/// `key=value` pairs, values as compact JSON.
fn pairs(attributes: &[AttributeInfo]) -> String {
    attributes
        .iter()
        .map(|a| format!("{}={}", a.key, a.value))
        .collect::<Vec<_>>()
        .join("  ")
}

/// One span line before alignment: its indented name, its duration, its attributes.
struct Line {
    name: String,
    took: String,
    attributes: String,
}

fn span_lines(spans: &[SpanInfo], depth: usize, out: &mut Vec<Line>) {
    for span in spans {
        out.push(Line {
            name: format!("{}{}", "  ".repeat(depth), span.name),
            took: span
                .duration_us()
                .map_or_else(|| "open".to_owned(), duration),
            attributes: pairs(&span.attributes),
        });
        span_lines(&span.spans, depth + 1, out);
    }
}

/// The lines of one step's trace under its `heading`, indented by two spaces: the
/// attributes logged outside spans, then the spans, names and durations aligned; each
/// line at most [`WIDTH`] wide.
pub fn trace_text(heading: &str, trace: &StepTrace, out: &mut String) {
    let fit = |line: String| shorten(line.trim_end(), WIDTH, Cut::End);
    let _ = writeln!(out, "{}", fit(heading.to_owned()));
    if !trace.attributes.is_empty() {
        let _ = writeln!(out, "{}", fit(format!("  {}", pairs(&trace.attributes))));
    }
    let mut lines = Vec::new();
    span_lines(&trace.spans, 0, &mut lines);
    let name_width = lines
        .iter()
        .map(|l| l.name.chars().count())
        .max()
        .unwrap_or(0);
    let took_width = lines.iter().map(|l| l.took.len()).max().unwrap_or(0);
    for line in lines {
        let text = format!(
            "  {:<name_width$}  {:>took_width$}  {}",
            line.name, line.took, line.attributes
        );
        let _ = writeln!(out, "{}", fit(text));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn attribute(key: &str, value: Value) -> AttributeInfo {
        AttributeInfo {
            key: key.to_owned(),
            value,
            logged_at_us: 0,
        }
    }

    fn span(name: &str, ended: Option<i64>, attributes: Vec<AttributeInfo>) -> SpanInfo {
        SpanInfo {
            name: name.to_owned(),
            started_at_us: 1_000,
            ended_at_us: ended,
            attributes,
            spans: Vec::new(),
        }
    }

    #[test]
    fn spans_are_indented_aligned_and_cut_to_the_width() {
        let mut outer = span("retrieve", Some(13_345), vec![]);
        outer.spans.push(span(
            "embed",
            None,
            vec![attribute("prompt", json!("word ".repeat(40)))],
        ));
        let trace = StepTrace {
            attributes: vec![attribute("model", json!("m1")), attribute("k", json!(3))],
            spans: vec![outer],
        };
        let mut out = String::new();
        trace_text("seq 4  answer", &trace, &mut out);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "seq 4  answer");
        assert_eq!(lines[1], "  model=\"m1\"  k=3");
        assert_eq!(lines[2], "  retrieve  12.3ms");
        assert!(
            lines[3].starts_with("    embed     open  prompt=\"word word"),
            "{out}"
        );
        assert_eq!(lines[3].chars().count(), WIDTH);
        assert!(lines[3].ends_with('…'));
    }

    #[test]
    fn spans_json_nests_with_times() {
        let mut outer = span("a", Some(1_500), vec![attribute("n", json!(1))]);
        outer.spans.push(span("b", None, vec![]));
        let value = spans_json(&[outer]);
        assert_eq!(value[0]["duration_us"], 500);
        assert_eq!(value[0]["attributes"][0]["value"], 1);
        assert_eq!(value[0]["spans"][0]["name"], "b");
        assert_eq!(value[0]["spans"][0]["ended_at"], Value::Null);
        assert_eq!(value[0]["started_at"], "1970-01-01T00:00:00.001000Z");
    }
}
