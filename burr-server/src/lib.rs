//! Durable runs for burr-core applications: a run queue in the checkpoint database,
//! workers, schedules, and the run verbs of a user's binary.
//!
//! A *run* is an application started through the queue; its run id is its app id. A
//! [`Kind`] says how to build a run's application from its inputs; a [`Registry`] holds
//! the kinds a program knows. [`Runs`] submits runs (checked against their kind), waits
//! for results and cancels; a [`Worker`] claims runs in order (priority, then the flow's
//! start, then submission), runs them with the persister and tracker, renews their
//! leases, resumes the runs of workers that died, and drains on shutdown.
//!
//! The queue's storage is a trait, [`RunQueue`]: [`SqliteRunQueue`] keeps it in the same
//! SQLite file as the checkpoints and the tracker; `PgRunQueue` (feature `postgres`) in a
//! PostgreSQL database beside burr-postgres's checkpoints, shared by several machines.
//! [`open`] takes either by name (`burr.db`, `postgres://…`).
//!
//! ```no_run
//! use std::sync::Arc;
//! use burr_server::{Registry, Runs, SqliteRunQueue, Submission, Worker};
//! # async fn demo(registry: Registry) -> Result<(), burr_server::QueueError> {
//! let queue = SqliteRunQueue::open("burr.db")?;
//! let registry = Arc::new(registry);
//! let runs = Runs::new(Arc::new(queue.clone()), Arc::clone(&registry));
//! let submitted = runs.submit(Submission::new("count", serde_json::json!({"org": "acme"}))).await?;
//! let worker = Worker::new(Arc::new(queue.clone()), queue.persister(), registry);
//! tokio::spawn(worker.run(std::future::pending()));
//! let finished = runs.wait(&submitted.run.id).await?;
//! println!("{}: {:?}", finished.status, finished.result);
//! # Ok(()) }
//! ```

mod announce;
pub mod catalog;
pub mod check;
#[cfg(feature = "cli")]
pub mod cli;
mod error;
mod events;
#[cfg(feature = "http")]
pub mod http;
mod kind;
pub mod metrics;
mod progress;
pub mod queue;
mod run;
mod runs;
mod schedule;
mod wake;
mod worker;

pub use announce::Announcer;
pub use error::QueueError;
pub use events::{EventKind, RunEvent};
pub use kind::{AppCode, BoxError, InputProblem, Kind, KindInfo, Registry, RunInfo};
#[cfg(feature = "postgres")]
pub use queue::PgRunQueue;
pub use queue::{open, Backend, RunQueue, SqliteRunQueue};
pub use run::{
    now_us, Backlog, BacklogRow, Claim, ConcurrencyLimit, Explanation, Finish, ForkSource,
    HeartbeatReport, NewRun, Run, RunCode, RunFilter, RunStatus, Submitted, WorkerInfo,
    DEFAULT_QUEUE,
};
pub use runs::{list_all, wait, Runs, Submission};
pub use schedule::{Schedule, ScheduleSpec};
pub use worker::{Worker, WorkerOptions, WorkerReport};
