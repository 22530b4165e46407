//! What was recorded within a step: its spans, nested as they were opened, and the
//! attributes logged in each span or on the step itself.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::Value;

use crate::store::read::EventRow;

/// An attribute logged within a step (`ctx.log_attribute(key, value)`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AttributeInfo {
    /// Its key.
    pub key: String,
    /// Its value.
    pub value: Value,
    /// When it was logged, in microseconds since the Unix epoch.
    pub logged_at_us: i64,
}

/// A span opened within a step (`ctx.span(name)`), with the attributes logged while it
/// was the innermost open span and the spans opened within it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SpanInfo {
    /// Its name.
    pub name: String,
    /// When it opened, in microseconds since the Unix epoch.
    pub started_at_us: i64,
    /// When it closed (`None`: it never did, its process stopped first).
    pub ended_at_us: Option<i64>,
    /// The attributes logged in it, in the order they were logged.
    pub attributes: Vec<AttributeInfo>,
    /// The spans opened in it, in the order they opened.
    pub spans: Vec<SpanInfo>,
}

impl SpanInfo {
    /// How long it was open, in microseconds, when it closed.
    pub fn duration_us(&self) -> Option<i64> {
        Some(self.ended_at_us? - self.started_at_us)
    }
}

/// What was recorded within one attempt at a step.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StepTrace {
    /// The attributes logged outside any span, in the order they were logged.
    pub attributes: Vec<AttributeInfo>,
    /// The spans opened outside any span, in the order they opened.
    pub spans: Vec<SpanInfo>,
}

impl StepTrace {
    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.attributes.is_empty() && self.spans.is_empty()
    }
}

/// A span while its step's events are read: its parent is an earlier span.
struct Open {
    span: SpanInfo,
    parent: Option<usize>,
}

/// The traces of the step attempts that have spans or attributes, keyed by (sequence id,
/// attempt), from their events in the order they were recorded.
pub(crate) fn traces(events: &[EventRow]) -> BTreeMap<(u64, u32), StepTrace> {
    let mut by_step: BTreeMap<(u64, u32), Vec<&EventRow>> = BTreeMap::new();
    for event in events {
        by_step
            .entry((event.sequence_id, event.attempt))
            .or_default()
            .push(event);
    }
    by_step
        .into_iter()
        .map(|(step, events)| (step, trace(&events)))
        .filter(|(_, trace)| !trace.is_empty())
        .collect()
}

/// The trace of one step attempt.
fn trace(events: &[&EventRow]) -> StepTrace {
    let mut spans: Vec<Open> = Vec::new();
    // Span ids are unique within a step; a reused id names the latest span.
    let mut index: HashMap<i64, usize> = HashMap::new();
    let mut attributes = Vec::new();
    for event in events {
        match event.kind.as_str() {
            "span_start" => {
                let Some(id) = event.span_id else { continue };
                let parent = event.parent_span_id.and_then(|p| index.get(&p).copied());
                index.insert(id, spans.len());
                spans.push(Open {
                    span: SpanInfo {
                        name: event.name.clone().unwrap_or_default(),
                        started_at_us: event.at_us,
                        ended_at_us: None,
                        attributes: Vec::new(),
                        spans: Vec::new(),
                    },
                    parent,
                });
            }
            "span_end" => {
                if let Some(&i) = event.span_id.and_then(|id| index.get(&id)) {
                    spans[i].span.ended_at_us = Some(event.at_us);
                }
            }
            "attribute" => {
                let attribute = AttributeInfo {
                    key: event.name.clone().unwrap_or_default(),
                    value: event.value.clone().unwrap_or(Value::Null),
                    logged_at_us: event.at_us,
                };
                match event.span_id.and_then(|id| index.get(&id)) {
                    Some(&i) => spans[i].span.attributes.push(attribute),
                    None => attributes.push(attribute),
                }
            }
            _ => {}
        }
    }
    // A parent opened before its children: fold the spans into their parents from the
    // last, so that each span has its own children when it moves.
    let mut top = Vec::new();
    while let Some(Open { span, parent }) = spans.pop() {
        match parent {
            Some(p) => spans[p].span.spans.push(span),
            None => top.push(span),
        }
    }
    fn reorder(spans: &mut Vec<SpanInfo>) {
        spans.reverse();
        for span in spans {
            reorder(&mut span.spans);
        }
    }
    reorder(&mut top);
    StepTrace {
        attributes,
        spans: top,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// An event of step `step` (sequence id, attempt) at `at_us`, of `kind`, with no
    /// span, name or value yet.
    fn event(step: (u64, u32), at_us: i64, kind: &str) -> EventRow {
        EventRow {
            sequence_id: step.0,
            attempt: step.1,
            kind: kind.to_owned(),
            at_us,
            span_id: None,
            parent_span_id: None,
            name: None,
            value: None,
        }
    }

    fn start(step: (u64, u32), at_us: i64, span: i64, parent: Option<i64>, name: &str) -> EventRow {
        EventRow {
            span_id: Some(span),
            parent_span_id: parent,
            name: Some(name.to_owned()),
            ..event(step, at_us, "span_start")
        }
    }

    fn end(step: (u64, u32), at_us: i64, span: i64) -> EventRow {
        EventRow {
            span_id: Some(span),
            ..event(step, at_us, "span_end")
        }
    }

    fn attribute(
        step: (u64, u32),
        at_us: i64,
        span: Option<i64>,
        key: &str,
        value: Value,
    ) -> EventRow {
        EventRow {
            span_id: span,
            name: Some(key.to_owned()),
            value: Some(value),
            ..event(step, at_us, "attribute")
        }
    }

    #[test]
    fn spans_nest_and_carry_their_attributes() {
        let s = (0, 1);
        let events = vec![
            attribute(s, 1, None, "model", json!("m")),
            start(s, 2, 0, None, "outer"),
            start(s, 3, 1, Some(0), "a"),
            attribute(s, 4, Some(1), "n", json!(1)),
            end(s, 5, 1),
            start(s, 6, 2, Some(0), "b"),
            start(s, 7, 3, Some(2), "c"),
            end(s, 8, 3),
            end(s, 9, 2),
            attribute(s, 10, Some(0), "done", json!(true)),
            end(s, 12, 0),
            start(s, 13, 4, None, "after"),
            event(s, 14, "stream_start"),
            attribute((1, 2), 20, None, "retry", json!(2)),
        ];
        let traces = traces(&events);
        assert_eq!(traces.keys().copied().collect::<Vec<_>>(), [(0, 1), (1, 2)]);
        let step = &traces[&(0, 1)];
        assert_eq!(step.attributes.len(), 1);
        assert_eq!(step.attributes[0].key, "model");
        let names = |spans: &[SpanInfo]| spans.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&step.spans), ["outer", "after"]);
        let outer = &step.spans[0];
        assert_eq!(outer.duration_us(), Some(10));
        assert_eq!(names(&outer.spans), ["a", "b"]);
        assert_eq!(outer.attributes[0].key, "done");
        assert_eq!(outer.spans[0].attributes[0].value, json!(1));
        assert_eq!(names(&outer.spans[1].spans), ["c"]);
        // Never closed: its process stopped mid-step.
        assert_eq!(step.spans[1].ended_at_us, None);
        assert_eq!(traces[&(1, 2)].attributes[0].value, json!(2));
    }

    #[test]
    fn steps_with_only_stream_events_have_no_trace() {
        let events = vec![event((3, 1), 1, "stream_start")];
        assert!(traces(&events).is_empty());
    }
}
