//! Export to Burr's local tracking layout, so that Burr's own UI (`burr` from PyPI's
//! `apache-burr[tracking]`, with `BURR_PATH` at the export) shows Rust runs.
//!
//! For each application, `DIR/<project>/<app id>/` holds:
//! - `graph.json`: the graph (`type` `application`: `entrypoint`, `actions` with `name`,
//!   `reads`, `writes`, `code`, `inputs`, `optional_inputs`; `transitions` with `from_`,
//!   `to`, `condition`);
//! - `metadata.json`: `partition_key`, `parent_pointer` (the fork parent) and
//!   `spawning_parent_pointer`;
//! - `log.jsonl`: per step, a `begin_entry` (start time, action, inputs), the step's
//!   `begin_span`/`end_span`, `attribute` and `begin_stream`/`first_item_stream`/
//!   `end_stream` lines, and an `end_entry` (end time, result, exception, the full state);
//! - `children.jsonl`: a `child_application_data` line per spawned child (`spawn_start`)
//!   and per fork (`fork`).
//!
//! Differences from what Burr writes: a step retried after a failure appears once (Burr's
//! server keys steps by sequence id), as its last attempt, and each earlier attempt is an
//! attribute `burr_rs.failed_attempt` of the step (its attempt number, error and times);
//! app ids are escaped to be directory names ([`burr_ui_id`]); `code` is empty (Rust
//! sources are not recorded); times are UTC.

mod ids;

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::inspect::{App, Database, StepInfo};
use crate::store::read::EventRow;
use crate::time::rfc3339;
use crate::{GraphRecord, TrackerError};

pub use ids::{burr_ui_id, valid_project};

/// The project an export goes to when none is named.
pub const DEFAULT_PROJECT: &str = "burr-rs";

/// One application written by [`export_burr_ui`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExportedApp {
    /// Its app id.
    pub app_id: String,
    /// Its partition key.
    pub partition_key: Option<String>,
    /// Its directory (and app id) in the export.
    pub directory: String,
    /// The steps written.
    pub steps: usize,
}

/// What [`export_burr_ui`] wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExportReport {
    /// `DIR/<project>`.
    pub directory: PathBuf,
    /// The project.
    pub project: String,
    /// The applications written.
    pub apps: Vec<ExportedApp>,
}

/// Write `apps` and everything they spawned, recursively (every application when `apps`
/// is empty), under `dir/project` in Burr's local tracking layout.
pub fn export_burr_ui(
    db: &Database,
    dir: &Path,
    project: &str,
    apps: &[&App],
) -> Result<ExportReport, TrackerError> {
    if !valid_project(project) {
        return Err(TrackerError::InvalidProject {
            project: project.to_owned(),
        });
    }
    let selected = select(db, apps);
    let names = directory_names(&selected);
    let root = dir.join(project);
    create_dir(&root)?;
    let mut report = ExportReport {
        directory: root.clone(),
        project: project.to_owned(),
        apps: Vec::new(),
    };
    for app in &selected {
        let name = names[&key(app)].clone();
        let app_dir = root.join(&name);
        create_dir(&app_dir)?;
        let steps = db.steps(app)?;
        let graph = match db.graph(app) {
            Ok(graph) => graph,
            Err(TrackerError::NotTracked { .. }) => graph_from_steps(&steps),
            Err(error) => return Err(error),
        };
        write_json(&app_dir.join("graph.json"), &graph_json(&graph, &steps))?;
        let pointer = |p: &burr_core::ids::ParentPointer| {
            let id = names
                .get(&(p.partition_key.clone(), p.app_id.clone()))
                .cloned()
                .unwrap_or_else(|| burr_ui_id(&p.app_id));
            pointer_json(&id, p.partition_key.as_deref(), p.sequence_id)
        };
        let metadata = json!({
            "type": "application_metadata",
            "partition_key": app.partition_key,
            "parent_pointer": app.fork_parent.as_ref().map(pointer),
            "spawning_parent_pointer": app.spawning_parent.as_ref().map(pointer),
        });
        write_json(&app_dir.join("metadata.json"), &metadata)?;
        let lines = log_lines(db, app, &steps)?;
        let written = lines.iter().filter(|l| l["type"] == "begin_entry").count();
        write_lines(&app_dir.join("log.jsonl"), &lines)?;
        let mut children = Vec::new();
        for (kind, links) in [("spawn_start", db.children(app)), ("fork", db.forks(app))] {
            for child in links {
                let Some(child_name) = names.get(&key(child)) else {
                    continue;
                };
                let link = match kind {
                    "fork" => child.fork_parent.as_ref(),
                    _ => child.spawning_parent.as_ref(),
                };
                children.push(json!({
                    "type": "child_application_data",
                    "child": pointer_json(child_name, child.partition_key.as_deref(), None),
                    "event_time": rfc3339(child.created_at_us),
                    "event_type": kind,
                    "sequence_id": link.and_then(|p| p.sequence_id),
                }));
            }
        }
        write_lines(&app_dir.join("children.jsonl"), &children)?;
        report.apps.push(ExportedApp {
            app_id: app.app_id.clone(),
            partition_key: app.partition_key.clone(),
            directory: name,
            steps: written,
        });
    }
    Ok(report)
}

type Key = (Option<String>, String);

fn key(app: &App) -> Key {
    (app.partition_key.clone(), app.app_id.clone())
}

/// The applications to export: `apps` and their descendants, or every application.
fn select<'a>(db: &'a Database, apps: &[&'a App]) -> Vec<&'a App> {
    if apps.is_empty() {
        return db.apps().iter().collect();
    }
    let mut seen: Vec<Key> = Vec::new();
    let mut out = Vec::new();
    let mut pending: Vec<&App> = apps.to_vec();
    while let Some(app) = pending.pop() {
        if seen.contains(&key(app)) {
            continue;
        }
        seen.push(key(app));
        out.push(app);
        pending.extend(db.children(app));
    }
    out
}

/// The directory name of each application: its escaped app id, with its escaped
/// partition key added when two applications share an app id.
fn directory_names(apps: &[&App]) -> HashMap<Key, String> {
    let mut count: HashMap<&str, usize> = HashMap::new();
    for app in apps {
        *count.entry(&app.app_id).or_default() += 1;
    }
    apps.iter()
        .map(|app| {
            let mut name = burr_ui_id(&app.app_id);
            if count[app.app_id.as_str()] > 1 {
                if let Some(pk) = &app.partition_key {
                    name.push_str("~~");
                    name.push_str(&burr_ui_id(pk));
                }
            }
            (key(app), name)
        })
        .collect()
}

fn pointer_json(app_id: &str, partition_key: Option<&str>, sequence_id: Option<u64>) -> Value {
    json!({
        "type": "pointer_data",
        "app_id": app_id,
        "sequence_id": sequence_id,
        "partition_key": partition_key,
    })
}

/// A graph for an application no tracker recorded: the actions its checkpoints name.
fn graph_from_steps(steps: &[StepInfo]) -> GraphRecord {
    let mut graph = GraphRecord::default();
    for step in steps {
        if !graph.actions.iter().any(|a| a.name == step.action) {
            graph.actions.push(crate::graph::ActionRecord {
                name: step.action.clone(),
                reads: Vec::new(),
                writes: Vec::new(),
                inputs: Vec::new(),
                optional_inputs: Vec::new(),
                tags: Vec::new(),
                streaming: false,
            });
        }
    }
    graph
}

fn graph_json(graph: &GraphRecord, steps: &[StepInfo]) -> Value {
    // The recorded entrypoint; without one (an older recording, an application only the
    // checkpoints know), the first step's action, or the first action.
    let entrypoint = graph
        .entrypoint
        .clone()
        .or_else(|| steps.first().map(|s| s.action.clone()))
        .or_else(|| graph.actions.first().map(|a| a.name.clone()))
        .unwrap_or_default();
    json!({
        "type": "application",
        "entrypoint": entrypoint,
        "actions": graph.actions.iter().map(|a| json!({
            "type": "action",
            "name": a.name,
            "reads": a.reads,
            "writes": a.writes,
            "code": "",
            "inputs": a.inputs,
            "optional_inputs": a.optional_inputs,
        })).collect::<Vec<_>>(),
        "transitions": graph.transitions.iter().map(|t| json!({
            "type": "transition",
            "from_": t.from,
            "to": t.to,
            "condition": t.condition,
        })).collect::<Vec<_>>(),
    })
}

/// An error and its causes as one text: the error, then a `caused by:` line per cause.
fn exception_text(chain: &[String]) -> String {
    let mut text = chain.first().cloned().unwrap_or_default();
    for cause in chain.iter().skip(1) {
        text.push_str("\ncaused by: ");
        text.push_str(cause);
    }
    text
}

/// The `log.jsonl` lines of `app`.
fn log_lines(db: &Database, app: &App, steps: &[StepInfo]) -> Result<Vec<Value>, TrackerError> {
    // Per sequence id, its attempts (the last one is exported as the step).
    let mut by_seq: BTreeMap<u64, Vec<&StepInfo>> = BTreeMap::new();
    for step in steps {
        by_seq.entry(step.sequence_id).or_default().push(step);
    }
    let ended: Vec<u64> = by_seq
        .iter()
        .filter(|(_, attempts)| attempts.last().is_some_and(|s| s.ended_at_us.is_some()))
        .map(|(&seq, _)| seq)
        .collect();
    let states: HashMap<u64, Map<String, Value>> =
        ended.iter().copied().zip(db.states(app, &ended)?).collect();
    let mut events: HashMap<(u64, u32), Vec<EventRow>> = HashMap::new();
    for event in db.events(app)? {
        events
            .entry((event.sequence_id, event.attempt))
            .or_default()
            .push(event);
    }
    let mut lines = Vec::new();
    let mut prior_step: Option<String> = None;
    for (seq, attempts) in &by_seq {
        let seq = *seq;
        let Some(step) = attempts.last() else {
            continue;
        };
        let start = step
            .started_at_us
            .or(step.ended_at_us)
            .unwrap_or(app.created_at_us);
        lines.push(json!({
            "type": "begin_entry",
            "start_time": rfc3339(start),
            "action": step.action,
            "inputs": step.inputs.clone().unwrap_or_default(),
            "sequence_id": seq,
        }));
        for earlier in &attempts[..attempts.len() - 1] {
            let at = earlier
                .ended_at_us
                .or(earlier.started_at_us)
                .unwrap_or(start);
            lines.push(json!({
                "type": "attribute",
                "key": "burr_rs.failed_attempt",
                "action_sequence_id": seq,
                "span_id": null,
                "value": {
                    "attempt": earlier.attempt,
                    "status": earlier.status,
                    "error": earlier.error,
                    "start_time": earlier.started_at_us.map(rfc3339),
                    "end_time": earlier.ended_at_us.map(rfc3339),
                },
                "tags": {},
                "time_logged": rfc3339(at),
            }));
        }
        let step_events = events.remove(&(seq, step.attempt)).unwrap_or_default();
        lines.extend(event_lines(seq, &step_events));
        let Some(end) = step.ended_at_us else {
            continue;
        };
        if step.status == crate::inspect::Status::Completed {
            prior_step = Some(step.action.clone());
        }
        let mut state = states.get(&seq).cloned().unwrap_or_default();
        state.insert("__SEQUENCE_ID".to_owned(), json!(seq));
        if let Some(prior) = &prior_step {
            state.insert("__PRIOR_STEP".to_owned(), json!(prior));
        }
        lines.push(json!({
            "type": "end_entry",
            "end_time": rfc3339(end),
            "action": step.action,
            "result": step.result,
            "exception": step.error.as_deref().map(exception_text),
            "state": state,
            "sequence_id": seq,
        }));
    }
    Ok(lines)
}

/// The span, attribute and stream lines of one step, with Burr's span ids
/// (`<sequence id>:<index>.<index>...`, the indexes counting spans under the same parent).
fn event_lines(seq: u64, events: &[EventRow]) -> Vec<Value> {
    let mut uids: HashMap<i64, String> = HashMap::new();
    let mut children: HashMap<Option<i64>, usize> = HashMap::new();
    let mut lines = Vec::new();
    for event in events {
        let at = rfc3339(event.at_us);
        match event.kind.as_str() {
            "span_start" => {
                let Some(span) = event.span_id else { continue };
                let index = children.entry(event.parent_span_id).or_default();
                let parent_uid = event.parent_span_id.and_then(|p| uids.get(&p)).cloned();
                let uid = match &parent_uid {
                    Some(parent) => format!("{parent}.{index}"),
                    None => format!("{seq}:{index}"),
                };
                *index += 1;
                uids.insert(span, uid.clone());
                lines.push(json!({
                    "type": "begin_span",
                    "start_time": at,
                    "action_sequence_id": seq,
                    "span_id": uid,
                    "span_name": event.name.clone().unwrap_or_default(),
                    "parent_span_id": parent_uid,
                    "span_dependencies": [],
                }));
            }
            "span_end" => {
                let Some(uid) = event.span_id.and_then(|s| uids.get(&s)) else { continue };
                lines.push(json!({
                    "type": "end_span",
                    "end_time": at,
                    "action_sequence_id": seq,
                    "span_id": uid,
                }));
            }
            "attribute" => lines.push(json!({
                "type": "attribute",
                "key": event.name.clone().unwrap_or_default(),
                "action_sequence_id": seq,
                "span_id": event.span_id.and_then(|s| uids.get(&s)),
                "value": event.value.clone().unwrap_or(Value::Null),
                "tags": {},
                "time_logged": at,
            })),
            "stream_start" => lines.push(json!({
                "type": "begin_stream",
                "action_sequence_id": seq,
                "span_id": null,
                "stream_init_time": at,
            })),
            "stream_first_item" => lines.push(json!({
                "type": "first_item_stream",
                "action_sequence_id": seq,
                "span_id": null,
                "first_item_time": at,
            })),
            "stream_end" => lines.push(json!({
                "type": "end_stream",
                "action_sequence_id": seq,
                "span_id": null,
                "end_time": at,
                "items_streamed": event.value.as_ref().and_then(|v| v.get("items")).cloned().unwrap_or(json!(0)),
            })),
            _ => {}
        }
    }
    lines
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> TrackerError + '_ {
    move |source| TrackerError::Io {
        path: path.to_owned(),
        source,
    }
}

fn create_dir(path: &Path) -> Result<(), TrackerError> {
    fs::create_dir_all(path).map_err(io_error(path))
}

fn write_json(path: &Path, value: &Value) -> Result<(), TrackerError> {
    let text = serde_json::to_string(value).unwrap_or_default();
    fs::write(path, text).map_err(io_error(path))
}

fn write_lines(path: &Path, lines: &[Value]) -> Result<(), TrackerError> {
    let file = fs::File::create(path).map_err(io_error(path))?;
    let mut out = std::io::BufWriter::new(file);
    for line in lines {
        serde_json::to_writer(&mut out, line).map_err(|e| TrackerError::Io {
            path: path.to_owned(),
            source: e.into(),
        })?;
        out.write_all(b"\n").map_err(io_error(path))?;
    }
    out.flush().map_err(io_error(path))
}
