//! Run events: what happened to a run, in order. The queue stores them (so another
//! process can follow), and broadcasts them to subscribers in its own process.

use serde::{Deserialize, Serialize};

use crate::run::RunStatus;

/// What happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// Submitted.
    Queued {
        /// Its kind.
        kind: String,
        /// Its priority.
        priority: i32,
    },
    /// A worker claimed it.
    Claimed {
        /// The worker.
        worker: String,
        /// The attempt this claim starts.
        attempt: u32,
    },
    /// A step of the run's application (or of one of its child applications) finished.
    StepFinished {
        /// The application (the run id, or a child's app id).
        app_id: String,
        /// The step's sequence id.
        sequence_id: u64,
        /// The action.
        action: String,
        /// `completed` or `failed`.
        status: String,
        /// How long the step took, in microseconds (0 when not recorded).
        #[serde(default)]
        duration_us: u64,
    },
    /// Child applications of the run: how many finished of how many started.
    ChildProgress {
        /// Finished.
        done: u64,
        /// Started so far.
        total: u64,
    },
    /// An attempt ended without finishing the run (its worker stopped, or lost its lease).
    AttemptFailed {
        /// The attempt.
        attempt: u32,
        /// Why.
        error: String,
    },
    /// A worker gave the run back (it drains); another claims it again.
    Released {
        /// The attempt that stopped.
        attempt: u32,
    },
    /// An action of the run (or of a child application) announced a result as soon as
    /// it had it, through the [`Announcer`](crate::Announcer) its kind was given: e.g.
    /// one discussion's related list while the meeting's other discussions still run.
    Announced {
        /// The application that announced it (the run id, or a child's app id).
        app_id: String,
        /// What it is (the kind's own name for it, e.g. `related`).
        name: String,
        /// The announcement, as JSON.
        data: serde_json::Value,
    },
    /// Cancel was asked while it ran.
    CancelRequested,
    /// It finished.
    Finished {
        /// How.
        status: RunStatus,
    },
}

impl EventKind {
    /// The event's type name: `queued`, `claimed`, `step_finished`...
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Queued { .. } => "queued",
            EventKind::Claimed { .. } => "claimed",
            EventKind::StepFinished { .. } => "step_finished",
            EventKind::ChildProgress { .. } => "child_progress",
            EventKind::AttemptFailed { .. } => "attempt_failed",
            EventKind::Released { .. } => "released",
            EventKind::Announced { .. } => "announced",
            EventKind::CancelRequested => "cancel_requested",
            EventKind::Finished { .. } => "finished",
        }
    }
}

/// One event of one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunEvent {
    /// Its place in the database's event order (resume a stream after it).
    pub id: i64,
    /// The run.
    pub run_id: String,
    /// When, in microseconds since the Unix epoch.
    pub at_us: i64,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}
