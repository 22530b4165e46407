//! `graph`: an application's graph.

use burr_tracker::inspect::Database;
use burr_tracker::TrackerError;
use serde_json::json;

use super::{to_json, AppArg};

/// The text format of `graph`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default)]
pub enum Format {
    /// A Mermaid flowchart.
    #[default]
    Mermaid,
    /// Graphviz DOT.
    Dot,
}

/// `graph` arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    app: AppArg,
    /// The format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub fn run(db: &Database, args: Args, json: bool) -> Result<String, TrackerError> {
    let app = db.find(&args.app.app, args.app.partition_key.as_deref())?;
    let graph = db.graph(app)?;
    if json {
        return Ok(to_json(&json!({
            "app_id": app.app_id,
            "partition_key": app.partition_key,
            "entrypoint": graph.entrypoint,
            "actions": graph.actions,
            "transitions": graph.transitions,
            "mermaid": graph.to_mermaid(),
            "dot": graph.to_dot(),
        })));
    }
    Ok(match args.format {
        Format::Mermaid => graph.to_mermaid(),
        Format::Dot => graph.to_dot(),
    })
}
