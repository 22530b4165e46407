//! Human in the loop: draft a reply, halt before the human's review, resume with the
//! human's input; revise until approved, then publish.
//!
//! The actions implement the [`Action`] trait by hand (two-step `run` + `update`), to show
//! how that reads next to the `#[action]` attribute the other examples use.
//!
//! ```text
//! cargo run -p example-human-in-the-loop
//! ```
//! Type feedback at the prompt, or an empty line to approve.

use std::io::{BufRead, Write};

use burr_core::{
    async_trait, inputs, transitions, when, Action, ActionError, ActionResult, ApplicationBuilder,
    ApplicationContext, Inputs, State,
};
use serde_json::json;

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
    let request = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "my order #1234 arrived broken".to_owned());
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
        .with_state(State::new().update("request", request))
        .with_entrypoint("draft")
        .build()
        .await?;

    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut human_input = Inputs::new();
    loop {
        let outcome = app
            .run(&["human_review"], &["publish"], human_input)
            .await?;
        if outcome.action.as_deref() == Some("publish") {
            println!("published: {}", outcome.state.get::<String>("published")?);
            return Ok(());
        }
        println!(
            "draft v{}: {}",
            outcome.state.get::<i64>("version")?,
            outcome.state.get::<String>("draft")?
        );
        print!("feedback (empty line approves): ");
        std::io::stdout().flush()?;
        let feedback = lines.next().transpose()?.unwrap_or_default();
        human_input = inputs(json!({ "feedback": feedback }));
    }
}
