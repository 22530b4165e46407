//! `show`: an application's steps, with the spans and attributes recorded within them and
//! the children that failed under a failed step.

use std::collections::{BTreeMap, HashMap};

use burr_tracker::inspect::{App, Database, Status, StepInfo};
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
    let failed_children = failed_children(db, app, &steps)?;
    if json {
        let steps: Vec<_> = steps
            .iter()
            .map(|s| {
                let trace = traces.get(&(s.sequence_id, s.attempt));
                let mut step = json!({
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
                });
                let children = failed_children
                    .get(&s.sequence_id)
                    .filter(|_| s.status == Status::Failed);
                if let Some(children) = children {
                    step["failed_children"] = children
                        .iter()
                        .map(|(child, error)| json!({"app_id": child.app_id, "error": error}))
                        .collect();
                }
                step
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
    if !failed_children.is_empty() {
        out.push_str("\nFAILED CHILDREN\n");
        for (seq, children) in &failed_children {
            let action = steps
                .iter()
                .find(|s| s.sequence_id == *seq)
                .map_or("", |s| s.action.as_str());
            out.push_str(&format!("seq {seq}  {action}\n"));
            for (child, error) in children {
                let error = error.as_ref().map_or_else(String::new, |e| e.join(": "));
                out.push_str(&format!("  {}  {error}\n", child.app_id));
            }
        }
    }
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

/// A failed child application and its last error chain.
type FailedChild<'a> = (&'a App, Option<Vec<String>>);

/// The children that failed, with their last error, under each failed step of `app` that
/// spawned them (by sequence id). A child that failed in one attempt and completed in a
/// later one is not listed: it is not failed any more.
fn failed_children<'a>(
    db: &'a Database,
    app: &App,
    steps: &[StepInfo],
) -> Result<BTreeMap<u64, Vec<FailedChild<'a>>>, TrackerError> {
    let mut failed: BTreeMap<u64, Vec<FailedChild<'a>>> = BTreeMap::new();
    for child in db.children(app) {
        let Some(seq) = child.spawning_parent.as_ref().and_then(|p| p.sequence_id) else {
            continue;
        };
        let step_failed = steps
            .iter()
            .any(|s| s.sequence_id == seq && s.status == Status::Failed);
        if !step_failed || db.summary(child)?.status != Status::Failed {
            continue;
        }
        let error = db.steps(child)?.into_iter().rev().find_map(|s| s.error);
        failed.entry(seq).or_default().push((child, error));
    }
    Ok(failed)
}
