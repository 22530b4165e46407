//! `prune`: keep only an application's last N steps.

use std::path::Path;

use burr_tracker::inspect::maintain;
use burr_tracker::TrackerError;

use super::{to_json, AppArg};

/// `prune` arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    app: AppArg,
    /// How many of the last steps to keep.
    #[arg(long)]
    keep_last: usize,
    /// With `--keep-last 0`: remove every checkpoint (the application's next run starts
    /// over from the beginning).
    #[arg(long)]
    all: bool,
    /// Say what would be removed, and remove nothing.
    #[arg(long)]
    dry_run: bool,
}

pub fn run(db: &Path, args: Args, json: bool) -> Result<String, TrackerError> {
    let report = maintain::prune(
        db,
        &args.app.app,
        args.app.partition_key.as_deref(),
        args.keep_last,
        maintain::PruneOptions {
            all: args.all,
            dry_run: args.dry_run,
        },
    )?;
    if json {
        return Ok(to_json(&serde_json::to_value(&report).unwrap_or_default()));
    }
    let verb = if report.dry_run {
        "would prune app {}: would remove"
    } else {
        "pruned app {}: removed"
    };
    Ok(format!(
        "{} {} checkpoints and {} tracked step attempts\n",
        verb.replace("{}", &report.app_id),
        report.checkpoints_removed,
        report.tracked_steps_removed
    ))
}
