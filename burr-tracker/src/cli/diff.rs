//! `diff`: what changed between two sequence ids.

use burr_tracker::inspect::{diff, Database};
use burr_tracker::TrackerError;
use serde_json::json;

use super::{to_json, AppArg};

/// `diff` arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    app: AppArg,
    /// The first sequence id.
    seq_a: u64,
    /// The second sequence id.
    seq_b: u64,
}

pub fn run(db: &Database, args: Args, json: bool) -> Result<String, TrackerError> {
    let app = db.find(&args.app.app, args.app.partition_key.as_deref())?;
    let (_, a) = db.state(app, Some(args.seq_a))?;
    let (_, b) = db.state(app, Some(args.seq_b))?;
    let d = diff(&a, &b);
    if json {
        return Ok(to_json(&json!({
            "app_id": app.app_id,
            "partition_key": app.partition_key,
            "from": args.seq_a,
            "to": args.seq_b,
            "added": d.added,
            "removed": d.removed,
            "changed": d.changed,
        })));
    }
    let mut out = format!(
        "app {}: sequence id {} -> {}\n",
        app.app_id, args.seq_a, args.seq_b
    );
    if d.is_empty() {
        out.push_str("no differences\n");
    }
    for (key, value) in &d.added {
        out.push_str(&format!("+ {key} = {value}\n"));
    }
    for (key, value) in &d.removed {
        out.push_str(&format!("- {key} = {value}\n"));
    }
    for (key, change) in &d.changed {
        out.push_str(&format!("~ {key}: {} -> {}\n", change.from, change.to));
    }
    Ok(out)
}
