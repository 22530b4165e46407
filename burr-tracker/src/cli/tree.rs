//! `tree`: the child applications an application spawned, recursively.

use std::collections::BTreeMap;

use burr_tracker::inspect::{App, Database, Status};
use burr_tracker::TrackerError;
use serde_json::{json, Value};

use super::{steps_text, to_json, AppArg};

/// More children than this from one parent step are collapsed to counts (without `--all`).
const COLLAPSE_OVER: usize = 10;

/// `tree` arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    app: AppArg,
    /// List every child, also of wide fan-outs.
    #[arg(long)]
    all: bool,
}

pub fn run(db: &Database, args: Args, json: bool) -> Result<String, TrackerError> {
    let app = db.find(&args.app.app, args.app.partition_key.as_deref())?;
    if json {
        return Ok(to_json(&node_json(db, app, 0)?));
    }
    let summary = db.summary(app)?;
    let mut out = format!(
        "{}  {}  {}\n",
        app.app_id,
        summary.status,
        steps_text(summary.steps)
    );
    lines(db, app, "", args.all, &mut out, 0)?;
    Ok(out)
}

/// Deeper than this, the tree stops (a cycle cannot happen, but a corrupt file could).
const MAX_DEPTH: usize = 64;

fn node_json(db: &Database, app: &App, depth: usize) -> Result<Value, TrackerError> {
    let summary = db.summary(app)?;
    let children = if depth < MAX_DEPTH {
        db.children(app)
            .into_iter()
            .map(|child| node_json(db, child, depth + 1))
            .collect::<Result<Vec<_>, _>>()?
    } else {
        Vec::new()
    };
    Ok(json!({
        "app_id": app.app_id,
        "partition_key": app.partition_key,
        "status": summary.status,
        "steps": summary.steps,
        "spawned_at": app.spawning_parent.as_ref().and_then(|p| p.sequence_id),
        "children": children,
    }))
}

/// One line of the tree: a child, or a collapsed fan-out.
enum Entry<'a> {
    Child(&'a App),
    Collapsed {
        sequence_id: Option<u64>,
        counts: BTreeMap<Status, usize>,
        total: usize,
    },
}

fn lines(
    db: &Database,
    app: &App,
    prefix: &str,
    all: bool,
    out: &mut String,
    depth: usize,
) -> Result<(), TrackerError> {
    if depth >= MAX_DEPTH {
        return Ok(());
    }
    let mut by_step: BTreeMap<Option<u64>, Vec<&App>> = BTreeMap::new();
    for child in db.children(app) {
        by_step
            .entry(child.spawning_parent.as_ref().and_then(|p| p.sequence_id))
            .or_default()
            .push(child);
    }
    let mut entries: Vec<Entry<'_>> = Vec::new();
    for (sequence_id, children) in by_step {
        if children.len() > COLLAPSE_OVER && !all {
            let mut counts = BTreeMap::new();
            for child in &children {
                *counts.entry(db.summary(child)?.status).or_default() += 1;
            }
            entries.push(Entry::Collapsed {
                sequence_id,
                counts,
                total: children.len(),
            });
        } else {
            entries.extend(children.into_iter().map(Entry::Child));
        }
    }
    let count = entries.len();
    for (i, entry) in entries.into_iter().enumerate() {
        let last = i + 1 == count;
        let (branch, indent) = if last {
            ("└── ", "    ")
        } else {
            ("├── ", "│   ")
        };
        match entry {
            Entry::Child(child) => {
                let summary = db.summary(child)?;
                let at = child
                    .spawning_parent
                    .as_ref()
                    .and_then(|p| p.sequence_id)
                    .map_or_else(String::new, |seq| format!("  (spawned at {seq})"));
                out.push_str(&format!(
                    "{prefix}{branch}{}  {}  {}{at}\n",
                    child.app_id,
                    summary.status,
                    steps_text(summary.steps)
                ));
                lines(db, child, &format!("{prefix}{indent}"), all, out, depth + 1)?;
            }
            Entry::Collapsed {
                sequence_id,
                counts,
                total,
            } => {
                let counts: Vec<String> = counts
                    .iter()
                    .map(|(status, n)| format!("{n} {status}"))
                    .collect();
                let at = sequence_id.map_or_else(String::new, |seq| format!(" spawned at {seq}"));
                out.push_str(&format!(
                    "{prefix}{branch}{total} children{at}: {} (--all lists them)\n",
                    counts.join(", ")
                ));
            }
        }
    }
    Ok(())
}
