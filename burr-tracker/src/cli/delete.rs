//! `delete`: delete an application and its descendants.

use std::path::Path;

use burr_tracker::inspect::maintain;
use burr_tracker::TrackerError;

use super::{to_json, AppArg};

/// `delete` arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    app: AppArg,
}

pub fn run(db: &Path, args: Args, json: bool) -> Result<String, TrackerError> {
    let report = maintain::delete(db, &args.app.app, args.app.partition_key.as_deref())?;
    if json {
        return Ok(to_json(&serde_json::to_value(&report).unwrap_or_default()));
    }
    Ok(match report.descendants {
        0 => format!("deleted app {}\n", report.app_id),
        1 => format!("deleted app {} and its 1 descendant\n", report.app_id),
        n => format!("deleted app {} and its {n} descendants\n", report.app_id),
    })
}
