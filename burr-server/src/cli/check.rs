//! `check`: whether this binary's code can resume every unfinished run and application
//! in the database (a deploy gate): [`crate::check::check`], printed; exit 1 naming
//! those that cannot.

use burr_core::persistence::Persister;

use super::CliError;
use crate::check::{Checked, Source};
use crate::kind::Registry;
use crate::queue::RunQueue;

/// Check, print each verdict (or JSON), and fail naming those that cannot resume.
pub(super) async fn check(
    persister: &dyn Persister,
    queue: &dyn RunQueue,
    registry: &Registry,
    json: bool,
) -> Result<(), CliError> {
    let checked = crate::check::check(persister, queue, registry).await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&checked).unwrap_or_default()
        );
    } else {
        for c in &checked {
            let mark = if c.can_resume { "ok     " } else { "BLOCKED" };
            println!("{mark} {} ({}): {}", c.id, what(c), c.reason);
        }
        if checked.is_empty() {
            println!("no unfinished runs or applications");
        }
    }
    let blocked: Vec<String> = checked
        .iter()
        .filter(|c| !c.can_resume)
        .map(|c| format!("{} ({})", c.id, c.reason))
        .collect();
    if blocked.is_empty() {
        Ok(())
    } else {
        Err(CliError::CannotResume { runs: blocked })
    }
}

/// `run of kind K, queued`, `application` or `application, code for P…`.
fn what(checked: &Checked) -> String {
    match &checked.source {
        Source::Run { kind, status } => format!("run of kind {kind}, {status}"),
        Source::App {
            prefix: Some(prefix),
        } => format!("application, code for {prefix}…"),
        Source::App { prefix: None } => "application".to_owned(),
    }
}
