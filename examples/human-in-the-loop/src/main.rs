//! Human in the loop: draft a reply, halt before the human's review, resume with the
//! human's input; revise until approved, then publish.
//!
//! Every step is checkpointed and tracked in `--db` (default `./burr.db`): quit at the
//! prompt (Ctrl-D) and run again with the same `--app-id` to pick up at the review.
//!
//! ```text
//! cargo run -p example-human-in-the-loop -- --app-id reply-1 "my order arrived broken"
//! cargo run -p burr-tracker -- show reply-1
//! ```
//! Type feedback at the prompt, or an empty line to approve.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;

use burr_core::persistence::SqlitePersister;
use burr_core::prelude::*;
use burr_core::transitions;
use clap::Parser;
use serde_json::json;

/// Draft a reply, halt for a human's review, revise until approved, publish.
#[derive(Parser, Debug)]
struct Args {
    /// The customer's request.
    #[arg(default_value = "my order #1234 arrived broken")]
    request: String,
    /// Where checkpoints and tracking go.
    #[arg(long, default_value = "burr.db")]
    db: PathBuf,
    /// The application's id: give the id of an earlier run to resume it.
    #[arg(long)]
    app_id: Option<String>,
}

/// Writes a draft reply to the request, taking earlier feedback into account.
#[action(reads = [request, feedback, version], writes = [draft, version])]
fn draft(state: State) -> Result<State, ActionError> {
    let request: String = state.get("request")?;
    let feedback: Vec<String> = state.get_or("feedback", Vec::new())?;
    let version: i64 = state.get_or("version", 0)?;
    let mut draft = format!("Dear customer, about \"{request}\": we are on it.");
    for note in &feedback {
        draft.push_str(&format!(" ({note})"));
    }
    Ok(state.update("draft", draft).update("version", version + 1))
}

/// Records the human's verdict (input `feedback`): approval when empty, otherwise feedback
/// for another draft.
#[action(reads = [feedback], writes = [approved, feedback])]
fn human_review(state: State, feedback: String) -> Result<State, ActionError> {
    let feedback = feedback.trim();
    if feedback.is_empty() {
        // Nothing to add, but the key exists afterwards either way.
        return Ok(state
            .update("approved", true)
            .extend("feedback", Vec::<serde_json::Value>::new())?);
    }
    Ok(state
        .update("approved", false)
        .append("feedback", feedback)?)
}

/// Publishes the approved draft.
#[action(reads = [draft], writes = [published])]
fn publish(state: State) -> Result<State, ActionError> {
    let draft: String = state.get("draft")?;
    Ok(state.update("published", draft))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("human-in-the-loop: {}", burr_core::error::report(&*error));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    let app_id = args
        .app_id
        .unwrap_or_else(|| format!("reply-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]));
    let persister = Arc::new(SqlitePersister::open(&args.db)?);
    let tracker = burr_tracker::Tracker::open(&args.db)?;
    let mut app = ApplicationBuilder::new()
        .with_actions([Draft, HumanReview, Publish])
        .with_transitions(transitions![
            (Draft, HumanReview),
            (HumanReview, Publish, when([("approved", json!(true))])),
            (HumanReview, Draft),
        ])
        .with_app_id(app_id.clone())
        .with_state_persister(persister.clone())
        .with_state(State::new().update("request", args.request))
        .with_entrypoint(Draft)
        .initialize_from(persister)
        .with_tracker(tracker.hook())
        .build()
        .await?;
    println!("app {app_id} (in {})", args.db.display());

    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        let mut human_input = Inputs::new();
        match app.next_action()? {
            None => {
                println!("published: {}", app.state().get::<String>("published")?);
                tracker.flush()?;
                return Ok(());
            }
            Some("human_review") => {
                let state = app.state();
                println!(
                    "draft v{}: {}",
                    state.get::<i64>("version")?,
                    state.get::<String>("draft")?
                );
                print!("feedback (empty line approves): ");
                std::io::stdout().flush()?;
                let Some(feedback) = lines.next().transpose()? else {
                    println!("\nwaiting for review: run again with --app-id {app_id} to continue");
                    tracker.flush()?;
                    return Ok(());
                };
                human_input = inputs! { "feedback": feedback };
            }
            Some(_) => {}
        }
        let options = RunOptions::new()
            .halt_before([HumanReview])
            .halt_after([Publish])
            .inputs(human_input);
        app.run(options).await?;
    }
}
