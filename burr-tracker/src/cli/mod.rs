//! The commands, one module each, and what they share: the arguments, opening the
//! database, finding an application, printing JSON.
//!
//! # JSON output (`--json`)
//!
//! Stable: fields may be added, never renamed or removed. Times are RFC 3339 UTC strings
//! with microseconds (`2025-01-31T09:05:00.123456Z`), durations integer microseconds,
//! partition keys and parents `null` when absent. A parent pointer is
//! `{"app_id", "partition_key", "sequence_id"}`.
//!
//! - `apps`: `{"total", "apps": [{"app_id", "partition_key", "status", "steps",
//!   "created_at", "last_update", "spawning_parent", "fork_parent", "tracked",
//!   "checkpointed"}]}` (`total` counts the matches before `--limit`/`--offset`).
//! - `show`: `{"app_id", "partition_key", "status", "steps": [{"sequence_id", "action",
//!   "status", "attempt", "started_at", "ended_at", "duration_us", "error" (list: the
//!   error then its causes), "inputs", "result", "attributes", "spans"}]}`; an attribute
//!   is `{"key", "value", "logged_at"}` (those logged outside any span are the step's),
//!   a span `{"name", "started_at", "ended_at", "duration_us", "attributes", "spans"}`
//!   (the spans opened within it).
//! - `state`: `{"app_id", "partition_key", "sequence_id", "action", "status", "state"}`.
//! - `diff`: `{"app_id", "partition_key", "from", "to", "added": {key: value},
//!   "removed": {key: value}, "changed": {key: {"from", "to"}}}`.
//! - `tree`: `{"app_id", "partition_key", "status", "steps", "spawned_at" (the parent's
//!   sequence id), "children": [...]}`, recursively; every child is listed.
//! - `graph`: `{"app_id", "partition_key", "entrypoint", "actions": [{"name", "reads",
//!   "writes", "inputs", "optional_inputs", "tags", "streaming"}], "transitions":
//!   [{"from", "to", "condition"}], "mermaid", "dot"}` (`entrypoint` is `null` when it
//!   was not recorded).
//! - `prune`: `{"app_id", "partition_key", "checkpoints_removed", "tracked_steps_removed"}`.
//! - `delete`: `{"app_id", "partition_key", "checkpoints", "tracked", "descendants"}`
//!   (how many applications it spawned, recursively, were deleted with it).
//! - `export`: `{"directory", "project", "apps": [{"app_id", "partition_key",
//!   "directory", "steps"}]}`.

mod apps;
mod delete;
mod diff;
mod export;
mod graph;
mod prune;
mod show;
mod spans;
mod state;
pub mod table;
mod tree;

use std::path::PathBuf;

use burr_core::ids::ParentPointer;
use burr_tracker::inspect::Database;
use burr_tracker::TrackerError;
use clap::{Parser, Subcommand};
use serde_json::{json, Value};

/// `--json` output, shown by `burr-tracker --help` (the same as this module's docs).
const JSON_HELP: &str = "\
JSON output (--json): stable; fields may be added, never renamed or removed. Times are
RFC 3339 UTC strings with microseconds, durations integer microseconds, partition keys
and parents null when absent. A parent pointer is {app_id, partition_key, sequence_id}.
  apps    {total, apps: [{app_id, partition_key, status, steps, created_at, last_update,
          spawning_parent, fork_parent, tracked, checkpointed}]}
  show    {app_id, partition_key, status, steps: [{sequence_id, action, status, attempt,
          started_at, ended_at, duration_us, error: [error, cause, ...], inputs, result,
          attributes: [{key, value, logged_at}], spans: [{name, started_at, ended_at,
          duration_us, attributes, spans}]}]}
  state   {app_id, partition_key, sequence_id, action, status, state}
  diff    {app_id, partition_key, from, to, added: {key: value}, removed: {key: value},
          changed: {key: {from, to}}}
  tree    {app_id, partition_key, status, steps, spawned_at, children: [...]} (every child)
  graph   {app_id, partition_key, entrypoint, actions: [{name, reads, writes, inputs,
          optional_inputs, tags, streaming}], transitions: [{from, to, condition}], mermaid,
          dot}
  prune   {app_id, partition_key, checkpoints_removed, tracked_steps_removed}
  delete  {app_id, partition_key, checkpoints, tracked, descendants}
  export  {directory, project, apps: [{app_id, partition_key, directory, steps}]}
Statuses: running (its runner is alive: in a step, between steps, or before the first),
interrupted (its runner stopped part-way: crashed or killed, in a step or between steps),
completed (the last step completed and the runner let go: it finished, or was dropped),
failed, cancelled.
Errors: one line on stderr, exit code 1 (2 for bad arguments).";

/// Inspect burr-core applications: steps, state, children and graphs, from their database.
#[derive(Parser, Debug)]
#[command(name = "burr-tracker", version, max_term_width = 100, after_long_help = JSON_HELP)]
pub struct Cli {
    /// The burr database: a SQLite file, or a PostgreSQL URL (`postgres://…`, in a build
    /// with the `postgres` feature).
    #[arg(long, env = "BURR_DB", default_value = "./burr.db", global = true)]
    db: PathBuf,
    /// Output JSON (stable, for scripts) instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

/// Which application: its id, and its partition key when the id alone is ambiguous.
#[derive(clap::Args, Debug)]
pub struct AppArg {
    /// The app id.
    app: String,
    /// The application's partition key (needed only when the app id exists under several).
    #[arg(long)]
    partition_key: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List applications, newest first.
    Apps(apps::Args),
    /// Show an application's steps, with their spans and attributes, and the children
    /// that failed under a failed map step.
    Show(show::Args),
    /// Show the state (or some keys) at a sequence id, the latest by default.
    State(state::Args),
    /// Compare the states at two sequence ids.
    Diff(diff::Args),
    /// Show the child applications an application spawned, recursively.
    Tree(tree::Args),
    /// Show an application's graph (Mermaid or DOT).
    Graph(graph::Args),
    /// Keep only an application's last N steps (writes to the database).
    Prune(prune::Args),
    /// Delete an application and its descendants: checkpoints and tracking (writes to
    /// the database).
    Delete(delete::Args),
    /// Write Burr's local tracking layout, for Burr's UI (`BURR_PATH=DIR burr`).
    Export(export::Args),
}

/// Run the command; the text to print.
pub fn run(cli: Cli) -> Result<String, TrackerError> {
    let json = cli.json;
    let db = &cli.db;
    match cli.command {
        Command::Apps(args) => apps::run(&open(db)?, args, json),
        Command::Show(args) => show::run(&open(db)?, args, json),
        Command::State(args) => state::run(&open(db)?, args, json),
        Command::Diff(args) => diff::run(&open(db)?, args, json),
        Command::Tree(args) => tree::run(&open(db)?, args, json),
        Command::Graph(args) => graph::run(&open(db)?, args, json),
        Command::Prune(args) => prune::run(db, args, json),
        Command::Delete(args) => delete::run(db, args, json),
        Command::Export(args) => export::run(&open(db)?, args, json),
    }
}

/// Open the database for a reading command; say on stderr when what it shows may be stale.
fn open(path: &std::path::Path) -> Result<Database, TrackerError> {
    let db = Database::open(path)?;
    if db.may_be_stale() {
        eprintln!(
            "note: `{}` is in a read-only directory, so it is read as immutable (without its \
             WAL): what is shown may miss the latest writes",
            path.display()
        );
    }
    Ok(db)
}

/// An error and its causes on one line.
pub fn one_line(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text.replace('\n', " ")
}

/// Pretty JSON with a final newline.
fn to_json(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

/// A parent pointer as JSON.
fn pointer_json(pointer: Option<&ParentPointer>) -> Value {
    match pointer {
        None => Value::Null,
        Some(p) => json!({
            "app_id": p.app_id,
            "partition_key": p.partition_key,
            "sequence_id": p.sequence_id,
        }),
    }
}

/// A parent pointer for people: `app@3`.
fn pointer_text(pointer: Option<&ParentPointer>) -> String {
    match pointer {
        None => "-".to_owned(),
        Some(p) => match p.sequence_id {
            Some(seq) => format!("{}@{seq}", p.app_id),
            None => p.app_id.clone(),
        },
    }
}

/// `1 step`, `3 steps`.
fn steps_text(steps: u64) -> String {
    if steps == 1 {
        "1 step".to_owned()
    } else {
        format!("{steps} steps")
    }
}
