//! [`check`]: whether this program's code can resume everything a database holds
//! unfinished — its queued and running runs, and the applications started by hand — as a
//! library call, for a deploy gate (the run verb `check` prints it). The judgement per
//! application is burr-core's [`check_resume`]; this file finds what to judge and the
//! code each would be resumed with: a run's kind's factory on its stored inputs, or the
//! code [`Registry::register_apps`] names for an application's id.

use std::collections::HashSet;

use burr_core::application::{check_resume, CurrentCode, ResumeCheck};
use burr_core::persistence::{AppRecord, PersistenceError, Persister};
use serde::Serialize;

use crate::error::QueueError;
use crate::kind::{Registry, RunInfo};
use crate::queue::RunQueue;
use crate::run::{Run, RunFilter, RunStatus};

/// What was checked: a run of the queue, or an application started by hand.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum Source {
    /// A queued or running run.
    Run {
        /// Its kind.
        kind: String,
        /// `queued` or `running`.
        status: RunStatus,
    },
    /// An unfinished application started without the run queue (not a child: children
    /// resume with their parent).
    App {
        /// The prefix of [`Registry::register_apps`] that claimed it (`None`: none did).
        prefix: Option<String>,
    },
}

/// One unfinished run or application, judged.
#[derive(Clone, Debug, Serialize)]
pub struct Checked {
    /// The run id, or the application's app id.
    pub id: String,
    /// What it is.
    #[serde(flatten)]
    pub source: Source,
    /// Whether this program's code can resume it.
    pub can_resume: bool,
    /// Why (or why not), in one line.
    pub reason: String,
    /// What its checkpoints say, and the verdict in full (`None`: a run not started
    /// yet).
    pub check: Option<ResumeCheck>,
}

/// Judge every queued or running run of `queue` and every unfinished application
/// started by hand in `persister`: whether the code of `registry` can resume it, and
/// why. Reads only.
///
/// An application is unfinished when its last step did not complete, or a transition
/// out of it may still hold (see [`ResumeCheck::finished`]); children are judged with
/// their parent's run or application, not on their own.
pub async fn check(
    persister: &dyn Persister,
    queue: &dyn RunQueue,
    registry: &Registry,
) -> Result<Vec<Checked>, QueueError> {
    let records = persister
        .as_app_records()
        .ok_or(PersistenceError::Unsupported {
            capability: "application records",
        })?;
    let mut checked = Vec::new();
    let mut runs = HashSet::new();
    for run in unfinished(queue).await? {
        runs.insert(run.id.clone());
        let source = Source::Run {
            kind: run.kind.clone(),
            status: run.status,
        };
        let Some(record) = records.app(None, &run.id).await? else {
            // Never started: it will start under the current code.
            checked.push(Checked {
                id: run.id,
                source,
                check: None,
                can_resume: true,
                reason: "not started".to_owned(),
            });
            continue;
        };
        let current = run_code(registry, &run);
        let check =
            check_resume(persister, &record, current.as_ref().map_err(Clone::clone)).await?;
        checked.push(Checked::of(run.id, source, check));
    }
    for record in records.list_apps().await? {
        if record.spawning_parent.is_some() || runs.contains(&record.app_id) {
            continue;
        }
        let claimed = registry.app_code(&record.app_id);
        let current = match claimed {
            Some((prefix, code)) => app_code(prefix, code, &record),
            None => Err("no code in this program for it (no prefix of \
                         `Registry::register_apps` matches its app id)"
                .to_owned()),
        };
        let check =
            check_resume(persister, &record, current.as_ref().map_err(Clone::clone)).await?;
        // A finished application needs no code; nor does a finished run's application.
        if check.finished || is_run(queue, &record).await? {
            continue;
        }
        let source = Source::App {
            prefix: claimed.map(|(prefix, _)| prefix.to_owned()),
        };
        checked.push(Checked::of(record.app_id, source, check));
    }
    Ok(checked)
}

impl Checked {
    fn of(id: String, source: Source, check: ResumeCheck) -> Checked {
        Checked {
            id,
            source,
            can_resume: check.can_resume,
            reason: check.verdict.explain(),
            check: Some(check),
        }
    }
}

/// Every run that is queued or running.
async fn unfinished(queue: &dyn RunQueue) -> Result<Vec<Run>, QueueError> {
    let mut runs = Vec::new();
    for status in [RunStatus::Queued, RunStatus::Running] {
        let filter = RunFilter {
            status: Some(status),
            ..RunFilter::default()
        };
        runs.extend(crate::runs::list_all(queue, &filter).await?);
    }
    Ok(runs)
}

/// Whether the application of `record` is a run's (its app id is the run's id).
async fn is_run(queue: &dyn RunQueue, record: &AppRecord) -> Result<bool, QueueError> {
    if record.partition_key.is_some() {
        return Ok(false);
    }
    match queue.get(&record.app_id).await {
        Ok(_) => Ok(true),
        Err(QueueError::UnknownRun { .. }) => Ok(false),
        Err(error) => Err(error),
    }
}

/// The code `run` would be resumed with: its kind's factory on its stored inputs.
fn run_code(registry: &Registry, run: &Run) -> Result<CurrentCode, String> {
    let (_, kind) = registry.get(&run.kind).map_err(|e| e.to_string())?;
    let info = RunInfo::of(run);
    let builder = kind
        .build(&run.inputs, &info)
        .map_err(|e| format!("kind `{}` cannot build it: {e}", run.kind))?;
    builder
        .current_code()
        .map_err(|e| format!("kind `{}` builds an invalid graph: {e}", run.kind))
}

/// The code an application started by hand would be resumed with: what the code
/// registered for `prefix` builds for its record.
fn app_code(
    prefix: &str,
    code: &crate::kind::AppCode,
    record: &AppRecord,
) -> Result<CurrentCode, String> {
    let builder =
        code(record).map_err(|e| format!("the code for `{prefix}…` cannot build it: {e}"))?;
    builder
        .current_code()
        .map_err(|e| format!("the code for `{prefix}…` builds an invalid graph: {e}"))
}
