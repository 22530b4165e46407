//! `apps`: the applications, newest first.

use burr_tracker::inspect::{AppSummary, Database, Status};
use burr_tracker::time::{human, rfc3339};
use burr_tracker::TrackerError;
use serde_json::json;

use super::table::{Column, Table};
use super::{pointer_json, pointer_text, to_json};

/// `apps` arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only applications with this partition key.
    #[arg(long)]
    partition_key: Option<String>,
    /// Only applications spawned by this app id.
    #[arg(long)]
    parent: Option<String>,
    /// Only top-level applications: none a map action (or an action) spawned, so that a
    /// meeting is not pushed off the page by its children.
    #[arg(long, conflicts_with = "parent")]
    top_level: bool,
    /// Only applications with this status.
    #[arg(long, value_parser = ["running", "interrupted", "completed", "failed", "cancelled"])]
    status: Option<String>,
    /// List at most this many.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Skip this many first.
    #[arg(long, default_value_t = 0)]
    offset: usize,
    /// Fail (exit code 1) when an application cannot be read, instead of listing it as
    /// damaged.
    #[arg(long)]
    strict: bool,
}

pub fn run(db: &Database, args: Args, json: bool) -> Result<String, TrackerError> {
    let status = args.status.as_deref().and_then(Status::parse);
    let mut matching: Vec<AppSummary> = Vec::new();
    // Applications whose records cannot be read: listed as damaged, with why.
    let mut damaged: Vec<(String, Option<String>, String)> = Vec::new();
    for app in db.apps() {
        if args.partition_key.is_some() && app.partition_key != args.partition_key {
            continue;
        }
        if args.top_level && app.spawning_parent.is_some() {
            continue;
        }
        if let Some(parent) = &args.parent {
            if app
                .spawning_parent
                .as_ref()
                .is_none_or(|p| &p.app_id != parent)
            {
                continue;
            }
        }
        let summary = match db.summary(app) {
            Ok(summary) => summary,
            Err(error) if !args.strict => {
                damaged.push((
                    app.app_id.clone(),
                    app.partition_key.clone(),
                    super::one_line(&error),
                ));
                continue;
            }
            Err(error) => return Err(error),
        };
        if status.is_some_and(|s| s != summary.status) {
            continue;
        }
        matching.push(summary);
    }
    let total = matching.len();
    let page: Vec<&AppSummary> = matching.iter().skip(args.offset).take(args.limit).collect();
    if json {
        let apps: Vec<_> = page
            .iter()
            .map(|s| {
                json!({
                    "app_id": s.app.app_id,
                    "partition_key": s.app.partition_key,
                    "status": s.status,
                    "steps": s.steps,
                    "created_at": rfc3339(s.app.created_at_us),
                    "last_update": rfc3339(s.updated_at_us),
                    "spawning_parent": pointer_json(s.app.spawning_parent.as_ref()),
                    "fork_parent": pointer_json(s.app.fork_parent.as_ref()),
                    "tracked": s.app.tracked(),
                    "checkpointed": s.app.checkpointed,
                })
            })
            .collect();
        let damaged: Vec<_> = damaged
            .iter()
            .map(|(app_id, partition_key, why)| {
                json!({ "app_id": app_id, "partition_key": partition_key, "damage": why })
            })
            .collect();
        return Ok(to_json(
            &json!({ "total": total, "apps": apps, "damaged": damaged }),
        ));
    }
    let damage_report: String = damaged
        .iter()
        .map(|(app_id, _, why)| format!("damaged: app {app_id} cannot be read: {why}\n"))
        .collect();
    if total == 0 {
        return Ok(format!("no applications\n{damage_report}"));
    }
    let mut table = Table::new(vec![
        // Ids are never cut: a user pastes them back into `show`.
        Column::new("APP ID"),
        Column::new("PARTITION KEY"),
        Column::new("STATUS"),
        Column::new("STEPS").right(),
        Column::new("LAST UPDATE"),
        Column::new("SPAWNED BY"),
    ]);
    for s in &page {
        table.row(vec![
            s.app.app_id.clone(),
            s.app
                .partition_key
                .clone()
                .unwrap_or_else(|| "-".to_owned()),
            s.status.to_string(),
            s.steps.to_string(),
            human(s.updated_at_us),
            pointer_text(s.app.spawning_parent.as_ref()),
        ]);
    }
    let mut out = table.render();
    if page.len() < total {
        out.push_str(&format!(
            "({} of {total} applications; --limit and --offset page through them)\n",
            page.len()
        ));
    }
    out.push_str(&damage_report);
    Ok(out)
}
