//! `export --burr-ui`: Burr's local tracking layout.

use std::path::PathBuf;

use burr_tracker::export::{export_burr_ui, DEFAULT_PROJECT};
use burr_tracker::inspect::{App, Database};
use burr_tracker::TrackerError;

use super::to_json;

/// `export` arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The directory to write Burr's layout under (Burr's `BURR_PATH`).
    #[arg(long = "burr-ui", value_name = "DIR")]
    burr_ui: PathBuf,
    /// The Burr project to write the applications in.
    #[arg(long, default_value = DEFAULT_PROJECT)]
    project: String,
    /// The partition key of the applications named.
    #[arg(long)]
    partition_key: Option<String>,
    /// The applications to export, with their children (default: every application).
    apps: Vec<String>,
}

pub fn run(db: &Database, args: Args, json: bool) -> Result<String, TrackerError> {
    let apps: Vec<&App> = args
        .apps
        .iter()
        .map(|id| db.find(id, args.partition_key.as_deref()))
        .collect::<Result<_, _>>()?;
    let report = export_burr_ui(db, &args.burr_ui, &args.project, &apps)?;
    if json {
        return Ok(to_json(&serde_json::to_value(&report).unwrap_or_default()));
    }
    Ok(format!(
        "exported {} applications to {}\nview them with: BURR_PATH={} burr --no-open --no-copy-demo_data\n",
        report.apps.len(),
        report.directory.display(),
        args.burr_ui.display(),
    ))
}
