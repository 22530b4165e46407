//! `show`: an application's steps, with the spans and attributes recorded within them.

use std::collections::HashMap;

use burr_tracker::inspect::Database;
use burr_tracker::time::{duration, human, rfc3339};
use burr_tracker::TrackerError;
use serde_json::json;

use super::spans::{attributes_json, spans_json, trace_text};
use super::table::{Column, Cut, Table};
use super::{pointer_text, steps_text, to_json, AppArg};

/// `show` arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    app: AppArg,
}

pub fn run(db: &Database, args: Args, json: bool) -> Result<String, TrackerError> {
    let app = db.find(&args.app.app, args.app.partition_key.as_deref())?;
    let summary = db.summary(app)?;
    let steps = db.steps(app)?;
    let traces = db.traces(app)?;
    if json {
        let steps: Vec<_> = steps
            .iter()
            .map(|s| {
                let trace = traces.get(&(s.sequence_id, s.attempt));
                json!({
                    "sequence_id": s.sequence_id,
                    "action": s.action,
                    "status": s.status,
                    "attempt": s.attempt,
                    "started_at": s.started_at_us.map(rfc3339),
                    "ended_at": s.ended_at_us.map(rfc3339),
                    "duration_us": s.duration_us(),
                    "error": s.error,
                    "inputs": s.inputs,
                    "result": s.result,
                    "attributes": attributes_json(trace.map_or(&[], |t| &t.attributes)),
                    "spans": spans_json(trace.map_or(&[], |t| &t.spans)),
                })
            })
            .collect();
        return Ok(to_json(&json!({
            "app_id": app.app_id,
            "partition_key": app.partition_key,
            "status": summary.status,
            "steps": steps,
        })));
    }
    let mut out = format!(
        "app {}  partition key {}  {}  {}\n",
        app.app_id,
        app.partition_key.as_deref().unwrap_or("-"),
        summary.status,
        steps_text(summary.steps),
    );
    if app.spawning_parent.is_some() {
        out.push_str(&format!(
            "spawned by {}\n",
            pointer_text(app.spawning_parent.as_ref())
        ));
    }
    if app.fork_parent.is_some() {
        out.push_str(&format!(
            "forked from {}\n",
            pointer_text(app.fork_parent.as_ref())
        ));
    }
    if steps.is_empty() {
        out.push_str("no steps yet\n");
        return Ok(out);
    }
    let mut table = Table::new(vec![
        Column::new("SEQ").right(),
        Column::new("ACTION").cut(Cut::Middle),
        Column::new("STATUS"),
        Column::new("ATTEMPT").right(),
        Column::new("START"),
        Column::new("DURATION").right(),
        Column::new("ERROR").cut(Cut::End),
    ]);
    for s in &steps {
        table.row(vec![
            s.sequence_id.to_string(),
            s.action.clone(),
            s.status.to_string(),
            s.attempt.to_string(),
            s.started_at_us.map_or_else(|| "-".to_owned(), human),
            s.duration_us().map_or_else(|| "-".to_owned(), duration),
            s.error
                .as_ref()
                .map_or_else(String::new, |chain| chain.join(": ")),
        ]);
    }
    out.push_str(&table.render());
    if !traces.is_empty() {
        out.push_str("\nSPANS AND ATTRIBUTES\n");
        let mut attempts: HashMap<u64, usize> = HashMap::new();
        for s in &steps {
            *attempts.entry(s.sequence_id).or_default() += 1;
        }
        for s in &steps {
            let Some(trace) = traces.get(&(s.sequence_id, s.attempt)) else {
                continue;
            };
            let heading = if attempts[&s.sequence_id] > 1 {
                format!("seq {}  {}, attempt {}", s.sequence_id, s.action, s.attempt)
            } else {
                format!("seq {}  {}", s.sequence_id, s.action)
            };
            trace_text(&heading, trace, &mut out);
        }
    }
    Ok(out)
}
