//! `watch`: follow run events as they are recorded, with a progress bar for a run's
//! child applications.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::CliError;
use crate::events::{EventKind, RunEvent};
use crate::queue::RunQueue;
use crate::wake::MAX_POLL;

/// One event as a line.
fn line(event: &RunEvent) -> String {
    let what = match &event.kind {
        EventKind::Queued { kind, priority } => format!("queued ({kind}, priority {priority})"),
        EventKind::Claimed { worker, attempt } => {
            format!("claimed by {worker} (attempt {attempt})")
        }
        EventKind::StepFinished {
            sequence_id,
            action,
            status,
            ..
        } => format!("step {sequence_id} {action}: {status}"),
        EventKind::ChildProgress { done, total } => format!("children: {done} of {total} finished"),
        EventKind::AttemptFailed { attempt, error } => format!("attempt {attempt} failed: {error}"),
        EventKind::Released { attempt } => format!("released (attempt {attempt})"),
        EventKind::Announced { app_id, name, data } => format!("{name} from {app_id}: {data}"),
        EventKind::CancelRequested => "cancel requested".to_owned(),
        EventKind::Finished { status } => format!("finished: {status}"),
    };
    format!(
        "{} {} {what}",
        super::print::time(Some(event.at_us)),
        event.run_id
    )
}

/// Follow the events of `run_id` (from its first, until it finishes) or of every run
/// (from now on, until interrupted).
pub(super) async fn watch(
    queue: &dyn RunQueue,
    run_id: Option<&str>,
    json: bool,
) -> Result<(), CliError> {
    let mut after = match run_id {
        Some(id) => {
            // An unknown run is an error, not an endless wait.
            let run = queue.get(id).await?;
            let _ = run;
            0
        }
        None => queue.last_event_id().await?,
    };
    let bar = (!json && run_id.is_some()).then(|| {
        let bar = ProgressBar::hidden();
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} children {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    });
    let mut changes = queue.changes();
    let mut pause = Duration::from_millis(5);
    loop {
        changes.borrow_and_update();
        let events = queue.events(after, run_id, 1000).await?;
        let mut finished = false;
        for event in &events {
            after = event.id;
            if json {
                println!("{}", serde_json::to_string(event).unwrap_or_default());
            } else if let (Some(bar), EventKind::ChildProgress { done, total }) =
                (&bar, &event.kind)
            {
                if bar.is_hidden() {
                    bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                }
                bar.set_length(*total);
                bar.set_position(*done);
            } else {
                match &bar {
                    Some(bar) if !bar.is_hidden() => bar.println(line(event)),
                    _ => println!("{}", line(event)),
                }
            }
            finished |= run_id.is_some() && matches!(event.kind, EventKind::Finished { .. });
        }
        if finished {
            if let Some(bar) = bar {
                bar.finish();
            }
            return Ok(());
        }
        if events.is_empty() {
            let _ = tokio::time::timeout(pause, changes.changed()).await;
            pause = (pause * 2).min(MAX_POLL);
        } else {
            pause = Duration::from_millis(5);
        }
    }
}
