//! What a persister stores: [`Checkpoint`]s and [`AppRecord`]s.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::graph::GraphDescription;
use crate::ids::ParentPointer;
use crate::state::{State, StateDelta};

/// How a step ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    /// The action ran and its writes were applied.
    Completed,
    /// The action (or its write check) failed; the state is the state before the step.
    Failed,
    /// The step was cancelled before it finished (a sibling failed, or the stream was
    /// dropped).
    Cancelled,
}

impl StepStatus {
    /// `completed`, `failed` or `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Completed => "completed",
            StepStatus::Failed => "failed",
            StepStatus::Cancelled => "cancelled",
        }
    }

    /// The status named by `text`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "completed" => Some(StepStatus::Completed),
            "failed" => Some(StepStatus::Failed),
            "cancelled" => Some(StepStatus::Cancelled),
            _ => None,
        }
    }
}

impl std::fmt::Display for StepStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One step's checkpoint, as given to [`Persister::save`](super::Persister::save).
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// The application's partition key.
    pub partition_key: Option<String>,
    /// The application.
    pub app_id: String,
    /// The step's sequence id (a retry keeps the id of the step it retries).
    pub sequence_id: u64,
    /// The action the step ran.
    pub position: String,
    /// How it ended.
    pub status: StepStatus,
    /// 1 for the first attempt at this sequence id, 2 for the first retry...
    pub attempt: u32,
    /// The last action that completed, as of this checkpoint (for a completed step, the
    /// step's own action).
    pub prior_step: Option<String>,
    /// When the step ended.
    pub created_at: SystemTime,
    /// What the step changed (empty for a failed step).
    pub delta: StateDelta,
    /// The whole state after the step, shared with the application (cloning is O(1)): a
    /// persister that keeps states in memory stores this, one that writes to disk stores
    /// `delta`.
    pub state: State,
    /// The error's message, for a failed step.
    pub error: Option<String>,
}

/// A checkpoint read back, with the full state.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadedCheckpoint {
    /// The application's partition key.
    pub partition_key: Option<String>,
    /// The application.
    pub app_id: String,
    /// The sequence id.
    pub sequence_id: u64,
    /// The action of that step.
    pub position: String,
    /// How it ended.
    pub status: StepStatus,
    /// Its attempt.
    pub attempt: u32,
    /// The last completed action as of this checkpoint.
    pub prior_step: Option<String>,
    /// When it was saved.
    pub created_at: SystemTime,
    /// The full state after the step (before it, for a failed step).
    pub state: State,
}

/// A checkpoint's metadata, without the state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointInfo {
    /// The sequence id.
    pub sequence_id: u64,
    /// The action.
    pub position: String,
    /// How it ended.
    pub status: StepStatus,
    /// The attempt.
    pub attempt: u32,
    /// The last completed action as of this checkpoint.
    pub prior_step: Option<String>,
    /// When it was saved, in microseconds since the Unix epoch.
    pub created_at_us: i64,
    /// The keys the step set or deleted.
    pub changed_keys: Vec<String>,
    /// The error's message, for a failed step.
    pub error: Option<String>,
}

/// An application as recorded by [`AppRecords::register_app`](super::AppRecords::register_app).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRecord {
    /// Its partition key.
    pub partition_key: Option<String>,
    /// Its id.
    pub app_id: String,
    /// When it was first recorded, in microseconds since the Unix epoch.
    pub created_at_us: i64,
    /// The application it was forked from.
    pub fork_parent: Option<ParentPointer>,
    /// The application that spawned it.
    pub spawning_parent: Option<ParentPointer>,
    /// The code it was last built with: its graph's fingerprint and description, and the
    /// application's version (`None`: recorded by a store or a build that kept none).
    /// Registering the record again replaces it.
    #[serde(default)]
    pub code: Option<CodeVersion>,
}

/// The code an application runs: the user's application version, the graph's
/// fingerprint, and the graph's description (to explain what changed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeVersion {
    /// The application's version, as given to
    /// [`ApplicationBuilder::with_version`](crate::ApplicationBuilder::with_version).
    pub version: Option<String>,
    /// [`GraphDescription::fingerprint`] of `graph`.
    pub fingerprint: String,
    /// The graph (`None` when only the fingerprint was kept).
    pub graph: Option<GraphDescription>,
}

/// Microseconds since the Unix epoch.
pub fn micros(at: SystemTime) -> i64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or_default()
}
