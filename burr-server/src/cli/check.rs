//! `check`: whether this binary's code can resume every unfinished run in the database
//! (a deploy gate). The judgement is burr-core's
//! [`check_resume`](burr_core::application::check_resume); this file finds the runs and
//! the code each would be resumed with (its kind's factory, on its stored inputs).

use burr_core::application::{check_resume, ResumeCheck};
use burr_core::persistence::Persister;
use serde::Serialize;

use super::CliError;
use crate::kind::{Registry, RunInfo};
use crate::queue::RunQueue;
use crate::run::{Run, RunFilter, RunStatus};

/// One unfinished run, checked.
#[derive(Debug, Serialize)]
struct Checked {
    run_id: String,
    kind: String,
    status: RunStatus,
    #[serde(flatten)]
    check: Option<ResumeCheck>,
    can_resume: bool,
    reason: String,
}

/// Every run that is queued or running.
async fn unfinished(queue: &dyn RunQueue) -> Result<Vec<Run>, CliError> {
    let mut runs = Vec::new();
    for status in [RunStatus::Queued, RunStatus::Running] {
        let mut before_seq = None;
        loop {
            let page = queue
                .list(&RunFilter {
                    status: Some(status),
                    kind: None,
                    flow: None,
                    before_seq,
                    limit: Some(500),
                })
                .await?;
            let Some(last) = page.last() else { break };
            before_seq = Some(last.seq);
            runs.extend(page);
        }
    }
    Ok(runs)
}

/// Check every unfinished run; an error naming those that cannot resume when any cannot.
pub(super) async fn check(
    persister: &dyn Persister,
    queue: &dyn RunQueue,
    registry: &Registry,
    json: bool,
) -> Result<(), CliError> {
    let records = persister.as_app_records().ok_or(CliError::NoAppRecords)?;
    let mut checked = Vec::new();
    for run in unfinished(queue).await? {
        let record = records
            .app(None, &run.id)
            .await
            .map_err(|e| CliError::Check(Box::new(e)))?;
        let Some(record) = record else {
            // Never started: it will start under the current code.
            checked.push(Checked {
                reason: "not started".to_owned(),
                can_resume: true,
                check: None,
                run_id: run.id,
                kind: run.kind,
                status: run.status,
            });
            continue;
        };
        let current = current_code(registry, &run);
        let check = check_resume(persister, &record, current.as_ref().map_err(Clone::clone))
            .await
            .map_err(|e| CliError::Check(Box::new(e)))?;
        checked.push(Checked {
            reason: check.verdict.explain(),
            can_resume: check.can_resume,
            check: Some(check),
            run_id: run.id,
            kind: run.kind,
            status: run.status,
        });
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&checked).unwrap_or_default()
        );
    } else {
        for c in &checked {
            let mark = if c.can_resume { "ok     " } else { "BLOCKED" };
            println!(
                "{mark} {} ({}, {}): {}",
                c.run_id, c.kind, c.status, c.reason
            );
        }
        if checked.is_empty() {
            println!("no unfinished runs");
        }
    }
    let blocked: Vec<String> = checked
        .iter()
        .filter(|c| !c.can_resume)
        .map(|c| format!("{} ({})", c.run_id, c.reason))
        .collect();
    if blocked.is_empty() {
        Ok(())
    } else {
        Err(CliError::CannotResume { runs: blocked })
    }
}

/// The code `run` would be resumed with: its kind's factory on its stored inputs.
fn current_code(
    registry: &Registry,
    run: &Run,
) -> Result<burr_core::application::CurrentCode, String> {
    let (_, kind) = registry.get(&run.kind).map_err(|e| e.to_string())?;
    let info = RunInfo::of(run);
    let builder = kind
        .build(&run.inputs, &info)
        .map_err(|e| format!("kind `{}` cannot build it: {e}", run.kind))?;
    builder
        .current_code()
        .map_err(|e| format!("kind `{}` builds an invalid graph: {e}", run.kind))
}
