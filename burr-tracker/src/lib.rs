//! # burr-tracker
//!
//! See what burr-core applications did: which step failed and why, the state at any
//! point, which children a fan-out spawned — locally, in the same SQLite file as the
//! checkpoints, with no vendor login.
//!
//! - [`Tracker`]: the tracking client, a lifecycle hook given to
//!   [`ApplicationBuilder::with_tracker`](burr_core::ApplicationBuilder::with_tracker).
//!   Per application it records the graph, the identifiers, the fork parent and the
//!   spawning parent; per step the start and end times, inputs, result, error with its
//!   causes, and the state change; and the spans and attributes actions open and log
//!   through their context (`ctx.span("name")`, `ctx.log_attribute(k, v)`), and stream
//!   events. Child applications share their parent's tracker.
//! - [`inspect::Database`]: reads a database (checkpoints and tracking) without writing.
//! - [`export::export_burr_ui`]: writes Burr's local tracking layout, for Burr's UI.
//! - The `burr-tracker` command line tool: `apps`, `show`, `state`, `diff`, `tree`,
//!   `graph`, `prune`, `delete`, `export` (run `burr-tracker --help`).
//!
//! ```no_run
//! use std::sync::Arc;
//! use burr_core::persistence::SqlitePersister;
//! use burr_core::{ApplicationBuilder, Inputs, State};
//! use burr_core::actions::action_sync;
//! use burr_tracker::Tracker;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let tracker = Tracker::open("burr.db")?;
//! let count = action_sync("count", |s: State, _, _| s.increment("n", 1))
//!     .reads(["n"])
//!     .writes(["n"]);
//! let mut app = ApplicationBuilder::new()
//!     .with_actions([count])
//!     .with_state(State::new().update("n", 0))
//!     .with_entrypoint("count")
//!     .with_state_persister(Arc::new(SqlitePersister::open("burr.db")?))
//!     .with_tracker(tracker.hook())
//!     .build()
//!     .await?;
//! app.step(Inputs::new()).await?;
//! tracker.flush()?; // or drop it: what is queued is written
//! // $ burr-tracker --db burr.db show <app id>
//! # Ok(()) }
//! ```

mod client;
mod error;
pub mod export;
mod graph;
pub mod inspect;
mod store;
pub mod time;

pub use client::{Tracker, RETRY_IN_MS, WAITED_US};
pub use error::TrackerError;
pub use graph::{ActionRecord, GraphRecord, TransitionRecord};
pub use store::writer::{COMMIT_INTERVAL, MAX_BATCH};

/// Whether `database` names a PostgreSQL database (a `postgres://` or `postgresql://`
/// URL) rather than a file. [`Tracker::open`] records into such a database with the
/// `postgres` feature.
pub fn is_postgres_url(database: &str) -> bool {
    database.starts_with("postgres://") || database.starts_with("postgresql://")
}
