//! `state`: the state, or some keys, at a sequence id.

use burr_tracker::inspect::Database;
use burr_tracker::TrackerError;
use serde_json::{json, Map, Value};

use super::{to_json, AppArg};

/// `state` arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    app: AppArg,
    /// The sequence id (default: the latest step).
    #[arg(long)]
    seq: Option<u64>,
    /// Only these keys (repeat for several).
    #[arg(long = "key", value_name = "KEY")]
    keys: Vec<String>,
}

pub fn run(db: &Database, args: Args, json: bool) -> Result<String, TrackerError> {
    let app = db.find(&args.app.app, args.app.partition_key.as_deref())?;
    let (seq, full) = db.state(app, args.seq)?;
    let state: Map<String, Value> = if args.keys.is_empty() {
        full
    } else {
        let mut picked = Map::new();
        for key in &args.keys {
            let value = full.get(key).ok_or_else(|| TrackerError::UnknownKey {
                app_id: app.app_id.clone(),
                key: key.clone(),
                sequence_id: seq,
            })?;
            picked.insert(key.clone(), value.clone());
        }
        picked
    };
    let step = db
        .steps(app)?
        .into_iter()
        .rev()
        .find(|s| s.sequence_id == seq);
    if json {
        return Ok(to_json(&json!({
            "app_id": app.app_id,
            "partition_key": app.partition_key,
            "sequence_id": seq,
            "action": step.as_ref().map(|s| &s.action),
            "status": step.as_ref().map(|s| s.status),
            "state": state,
        })));
    }
    let mut out = format!("app {} at sequence id {seq}", app.app_id);
    if let Some(step) = &step {
        out.push_str(&format!(" (after `{}`, {})", step.action, step.status));
    }
    out.push('\n');
    if state.is_empty() {
        out.push_str("(empty state)\n");
    }
    for (key, value) in &state {
        out.push_str(&format!("{key} = {value}\n"));
    }
    Ok(out)
}
