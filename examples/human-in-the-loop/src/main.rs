//! Human in the loop: draft a reply, halt before the human's review, resume with the
//! human's input; revise until approved, then publish.
//!
//! The actions implement the [`Action`] trait by hand (two-step `run` + `update`), to show
//! how that reads next to the `#[action]` attribute the other examples use.
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
use burr_core::{
    async_trait, inputs, transitions, when, Action, ActionError, ActionResult, ApplicationBuilder,
    ApplicationContext, Inputs, State,
};
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
struct Draft {
    reads: Vec<String>,
    writes: Vec<String>,
}

#[async_trait]
impl Action for Draft {
    fn name(&self) -> &str {
        "draft"
    }
    fn reads(&self) -> &[String] {
        &self.reads
    }
    fn writes(&self) -> &[String] {
        &self.writes
    }
    async fn run(
        &self,
        state: State,
        _inputs: &Inputs,
        _ctx: &ApplicationContext,
    ) -> Result<ActionResult, ActionError> {
        let request: String = state.get("request")?;
        let feedback: Vec<String> = state.get_or("feedback", Vec::new())?;
        let mut draft = format!("Dear customer, about \"{request}\": we are on it.");
        for note in &feedback {
            draft.push_str(&format!(" ({note})"));
        }
        Ok(inputs(json!({ "draft": draft })))
    }
    fn update(&self, result: &ActionResult, state: State) -> Result<State, ActionError> {
        let version: i64 = state.get_or("version", 0)?;
        Ok(state
            .update("draft", result["draft"].clone())
            .update("version", version + 1))
    }
}

/// Records the human's verdict: approval, or feedback for another draft.
struct Review {
    writes: Vec<String>,
    inputs: Vec<String>,
}

#[async_trait]
impl Action for Review {
    fn name(&self) -> &str {
        "human_review"
    }
    fn writes(&self) -> &[String] {
        &self.writes
    }
    fn inputs(&self) -> &[String] {
        &self.inputs
    }
    async fn run(
        &self,
        _state: State,
        inputs: &Inputs,
        _ctx: &ApplicationContext,
    ) -> Result<ActionResult, ActionError> {
        let feedback = inputs["feedback"]
            .as_str()
            .unwrap_or_default()
            .trim()
            .to_owned();
        Ok(burr_core::inputs(
            json!({ "approved": feedback.is_empty(), "feedback": feedback }),
        ))
    }
    fn update(&self, result: &ActionResult, state: State) -> Result<State, ActionError> {
        let state = state.update("approved", result["approved"].clone());
        if result["approved"] == json!(true) {
            // Nothing to add, but the key exists afterwards either way.
            return Ok(state.extend("feedback", Vec::<serde_json::Value>::new())?);
        }
        Ok(state.append("feedback", result["feedback"].clone())?)
    }
}

/// Publishes the approved draft.
struct Publish {
    reads: Vec<String>,
    writes: Vec<String>,
}

#[async_trait]
impl Action for Publish {
    fn name(&self) -> &str {
        "publish"
    }
    fn reads(&self) -> &[String] {
        &self.reads
    }
    fn writes(&self) -> &[String] {
        &self.writes
    }
    async fn run(
        &self,
        state: State,
        _inputs: &Inputs,
        _ctx: &ApplicationContext,
    ) -> Result<ActionResult, ActionError> {
        let draft: String = state.get("draft")?;
        Ok(inputs(json!({ "published": draft })))
    }
    fn update(&self, result: &ActionResult, state: State) -> Result<State, ActionError> {
        Ok(state.update("published", result["published"].clone()))
    }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("human-in-the-loop: {}", burr_core::report(&*error));
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
        .with_actions([Draft {
            reads: names(&["request", "feedback"]),
            writes: names(&["draft", "version"]),
        }])
        .with_actions([Review {
            writes: names(&["approved", "feedback"]),
            inputs: names(&["feedback"]),
        }])
        .with_actions([Publish {
            reads: names(&["draft"]),
            writes: names(&["published"]),
        }])
        .with_transitions(transitions![
            ("draft", "human_review"),
            ("human_review", "publish", when([("approved", json!(true))])),
            ("human_review", "draft"),
        ])
        .with_identifiers(app_id.clone(), None)
        .with_state_persister(persister.clone())
        .initialize_from(
            persister,
            true,
            State::new().update("request", args.request),
            "draft",
        )
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
                human_input = inputs(json!({ "feedback": feedback }));
            }
            Some(_) => {}
        }
        app.run(&["human_review"], &["publish"], human_input)
            .await?;
    }
}
