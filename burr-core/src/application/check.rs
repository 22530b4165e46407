//! Whether the current code can resume stored applications: the resume guard's
//! judgement ([`Verdict`]) as a library call ([`check_resume`]), for a deploy gate.

use std::sync::Arc;

use serde::Serialize;

use crate::graph::{Graph, GraphChange};
use crate::persistence::{AppRecord, CodeVersion, PersistenceError, Persister, StepStatus};
use crate::state::State;

/// The state key where a migration records the code it migrated the state to, in the
/// same checkpoint: so a migration whose application record was not yet updated (the
/// process died in between) is recognised and not applied twice.
pub const MIGRATED_TO_KEY: &str = "__burr_migrated_to";

/// The fingerprint a migration recorded in `state`, if any.
fn migrated_to(state: &State) -> Option<String> {
    state
        .get_value(MIGRATED_TO_KEY)?
        .get("fingerprint")?
        .as_str()
        .map(str::to_owned)
}

/// The code a binary runs for an application: what
/// [`ApplicationBuilder::current_code`](super::ApplicationBuilder::current_code) gives.
#[derive(Clone, Debug)]
pub struct CurrentCode {
    /// Version, fingerprint and graph description.
    pub code: CodeVersion,
    /// The versions a migration is registered for.
    pub migrations: Vec<String>,
    /// The graph (to tell whether a stored application is finished).
    pub graph: Arc<Graph>,
}

/// Whether an application checkpointed under stored code can be resumed by the current
/// code, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Verdict {
    /// Same fingerprint (or the state was migrated to it already).
    SameCode,
    /// The graph changed, but not in what the application can still run.
    Compatible,
    /// The graph changed; a migration is registered for the stored version.
    Migration {
        /// The stored version it migrates from.
        from_version: String,
    },
    /// Saved without a fingerprint (by an older build): resumed unchecked.
    NoCodeRecorded,
    /// The graph changed in what the application can still run, and no migration is
    /// registered: a resume is refused.
    Changed {
        /// What changed (empty when the stored record kept only a fingerprint).
        changes: Vec<GraphChange>,
    },
    /// The binary has no code for this application (an unknown kind).
    NoCurrentCode {
        /// Why.
        reason: String,
    },
}

impl Verdict {
    /// Whether a resume under the current code goes ahead.
    pub fn can_resume(&self) -> bool {
        !matches!(
            self,
            Verdict::Changed { .. } | Verdict::NoCurrentCode { .. }
        )
    }

    /// One line for people.
    pub fn explain(&self) -> String {
        match self {
            Verdict::SameCode => "same code".to_owned(),
            Verdict::Compatible => {
                "the graph changed, but not from where the application stopped".to_owned()
            }
            Verdict::Migration { from_version } => {
                format!("a migration from version {from_version:?} is registered")
            }
            Verdict::NoCodeRecorded => "no code recorded (saved by an older build)".to_owned(),
            Verdict::Changed { changes } if changes.is_empty() => {
                "the graph changed (the stored record keeps no description)".to_owned()
            }
            Verdict::Changed { changes } => changes
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
            Verdict::NoCurrentCode { reason } => reason.clone(),
        }
    }
}

/// The resume guard's judgement: `stored` code (of the application record), the loaded
/// `state` at `position`, against `current` code with migrations for `migrations`.
pub(super) fn judge(
    stored: Option<&CodeVersion>,
    state: &State,
    position: &str,
    current: &CodeVersion,
    migrations: &[&str],
) -> Verdict {
    let Some(stored) = stored else {
        return Verdict::NoCodeRecorded;
    };
    if stored.fingerprint == current.fingerprint
        || migrated_to(state).as_deref() == Some(current.fingerprint.as_str())
    {
        return Verdict::SameCode;
    }
    if let (Some(before), Some(now)) = (&stored.graph, &current.graph) {
        if before.compatible_at(now, position) {
            return Verdict::Compatible;
        }
    }
    if let Some(from) = &stored.version {
        if migrations.contains(&from.as_str()) {
            return Verdict::Migration {
                from_version: from.clone(),
            };
        }
    }
    let changes = match (&stored.graph, &current.graph) {
        (Some(before), Some(now)) => before.changes_to(now, Some(position)),
        _ => Vec::new(),
    };
    Verdict::Changed { changes }
}

/// One application, checked.
#[derive(Clone, Debug, Serialize)]
pub struct ResumeCheck {
    /// Its partition key.
    pub partition_key: Option<String>,
    /// Its id.
    pub app_id: String,
    /// Its latest sequence id (`None`: nothing saved yet).
    pub sequence_id: Option<u64>,
    /// The action it stopped at.
    pub position: Option<String>,
    /// How its latest step ended.
    pub status: Option<StepStatus>,
    /// The application version it was saved under.
    pub stored_version: Option<String>,
    /// The current application version.
    pub current_version: Option<String>,
    /// Whether it is finished (nothing left to run), as far as can be told: its latest
    /// step completed and no transition out of it holds (with the current graph when the
    /// code is the same; else, under the stored graph, its action has no transitions).
    pub finished: bool,
    /// Whether the current code can resume it.
    pub can_resume: bool,
    /// Why (or why not).
    pub verdict: Verdict,
}

/// Whether the `current` code (`None`: the binary has none for it, with the reason)
/// can resume the application of `record` stored in `persister`. Reads only.
pub async fn check_resume(
    persister: &dyn Persister,
    record: &AppRecord,
    current: Result<&CurrentCode, String>,
) -> Result<ResumeCheck, PersistenceError> {
    let pk = record.partition_key.as_deref();
    // The record with its graph description (a listing may leave it out).
    let stored = match persister.as_app_records() {
        Some(records) if record.code.as_ref().is_some_and(|c| c.graph.is_none()) => records
            .app(pk, &record.app_id)
            .await?
            .and_then(|r| r.code)
            .or_else(|| record.code.clone()),
        _ => record.code.clone(),
    };
    let latest = persister.load(pk, &record.app_id, None).await?;
    let (state, position) = match &latest {
        Some(row) => (row.state.clone(), row.position.clone()),
        None => (State::new(), String::new()),
    };
    let verdict = match &current {
        Err(reason) => Verdict::NoCurrentCode {
            reason: reason.clone(),
        },
        Ok(_) if latest.is_none() => Verdict::SameCode,
        Ok(current) => {
            let migrations: Vec<&str> = current.migrations.iter().map(String::as_str).collect();
            judge(
                stored.as_ref(),
                &state,
                &position,
                &current.code,
                &migrations,
            )
        }
    };
    let current = current.ok();
    let finished = match (&latest, current) {
        (Some(row), _) if row.status != StepStatus::Completed => false,
        (None, _) => false,
        (Some(row), Some(current)) if verdict == Verdict::SameCode => current
            .graph
            .index_of(&row.position)
            .is_some_and(|at| matches!(current.graph.next_after(at, &row.state), Ok(None))),
        (Some(row), _) => stored
            .as_ref()
            .and_then(|s| s.graph.as_ref())
            .is_some_and(|g| !g.transitions.iter().any(|t| t.from == row.position)),
    };
    Ok(ResumeCheck {
        partition_key: record.partition_key.clone(),
        app_id: record.app_id.clone(),
        sequence_id: latest.as_ref().map(|r| r.sequence_id),
        position: latest.as_ref().map(|r| r.position.clone()),
        status: latest.as_ref().map(|r| r.status),
        stored_version: stored.and_then(|s| s.version),
        current_version: current.and_then(|c| c.code.version.clone()),
        finished,
        can_resume: verdict.can_resume(),
        verdict,
    })
}
