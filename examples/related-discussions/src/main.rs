//! `example-related-discussions`: relate each discussion of the retrospectives whose
//! voting ended to similar past discussions; checkpointed to SQLite, so a rerun resumes
//! and never embeds a finished discussion again.
//!
//! ```text
//! bash scripts/fetch-models.sh && source .fe-assets/env.sh
//! cargo run --release -p example-related-discussions -- --db ./burr.db
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use example_related_discussions::data::Dataset;
use example_related_discussions::discussion::Settings;
use example_related_discussions::model::Model;
use example_related_discussions::run::{self, Options, Progress, Report};

/// Relate every discussion of retrospectives whose voting ended to similar past
/// discussions (embed, find similar, rerank, publish), one child application per
/// discussion, resumable from a SQLite file.
#[derive(Parser, Debug)]
#[command(name = "example-related-discussions")]
struct Cli {
    /// The SQLite file of checkpoints (created if missing). Rerunning with the same file
    /// resumes: finished discussions are not embedded again.
    #[arg(long, default_value = "./burr.db")]
    db: PathBuf,
    /// Meetings and past discussions as JSON, shaped like data/sample.json (default: the
    /// built-in sample).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Only this meeting (repeat for several; default: every meeting).
    #[arg(long = "meeting", value_name = "ID")]
    meetings: Vec<String>,
    /// Related past discussions kept per discussion (at least 1).
    #[arg(long, default_value_t = 3, value_parser = at_least_one)]
    top_k: usize,
    /// Candidates found by the first stage and reranked (at least 1).
    #[arg(long, default_value_t = 8, value_parser = at_least_one)]
    candidates: usize,
    /// The lowest rerank score (a cosine, from -1 to 1) kept.
    #[arg(long, default_value_t = 0.3, value_parser = cosine, allow_negative_numbers = true)]
    min_score: f32,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    json: bool,
    /// At most this many child steps at once on the shared executor (default: one per
    /// core; at least 1).
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    executor_concurrency: Option<usize>,
    /// Run this meeting's discussions before the others' (repeatable).
    #[arg(long, value_name = "MEETING")]
    urgent: Vec<String>,
    /// ONNX Runtime threads per embedding (at least 1).
    #[arg(long, default_value_t = 1, value_parser = at_least_one)]
    model_threads: usize,
    /// Pause after each embedding of a discussion, in milliseconds: to watch a run, or to
    /// interrupt one part-way and see it resume.
    #[arg(long, default_value_t = 0)]
    pause_ms: u64,
    /// No progress lines on stderr.
    #[arg(long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match main_inner(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let mut message = format!("error: {error}");
            let mut source = error.source();
            while let Some(cause) = source {
                message.push_str(&format!("\n  caused by: {cause}"));
                source = cause.source();
            }
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

fn main_inner(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    let data = match &cli.data {
        Some(path) => Dataset::from_file(path)?,
        None => Dataset::sample(),
    }
    .select(&cli.meetings)?;
    let loading = Instant::now();
    let model = Arc::new(Model::from_env(cli.model_threads)?);
    let load_time = loading.elapsed();
    let persister = Arc::new(burr_core::persistence::SqlitePersister::open(&cli.db)?);
    let quiet = cli.quiet;
    let options = Options {
        settings: Settings {
            candidates: cli.candidates,
            top_k: cli.top_k,
            min_score: cli.min_score,
            pause: Duration::from_millis(cli.pause_ms),
        },
        executor_concurrency: cli
            .executor_concurrency
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        urgent: cli.urgent.clone(),
        progress: (!quiet).then(|| Arc::new(print_progress) as run::ProgressSink),
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let report = runtime.block_on(run::run(&data, model, persister, &options))?;
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report, &cli, load_time);
    }
    Ok(())
}

fn print_progress(progress: &Progress) {
    match progress {
        Progress::Related {
            meeting,
            discussion,
            title,
            best,
        } => match best {
            Some(r) => eprintln!(
                "related {meeting}/{discussion} \"{title}\" -> {:.2} \"{}\" ({})",
                r.score, r.title, r.id
            ),
            None => eprintln!("related {meeting}/{discussion} \"{title}\" -> nothing similar"),
        },
        Progress::Published { app_id } => eprintln!("published {app_id}"),
        Progress::Failed {
            app_id,
            action,
            error,
        } => eprintln!("failed {app_id} at {action}: {error}"),
    }
}

fn print_report(report: &Report, cli: &Cli, load_time: Duration) {
    for meeting in &report.meetings {
        println!("{}", meeting.summary);
    }
    println!("Meetings (app id, partition key, priority: finished):");
    for m in &report.meetings {
        println!(
            "  {} ({}, priority {}): #{} after {:.2} s, {} embeddings",
            m.app_id,
            m.team,
            m.priority,
            m.finished,
            m.finished_after_ms as f64 / 1000.0,
            m.embeddings
        );
    }
    let e = &report.embeddings;
    let discussions: usize = report.meetings.iter().map(|m| m.discussions.len()).sum();
    let embedded = e.by_discussion.len();
    println!(
        "Embeddings computed by this process: {} ({} for past discussions, {} for discussions)",
        e.total, e.past, e.discussions
    );
    println!(
        "Discussions embedded by this process: {embedded} of {discussions}; the other {} were finished in {} and not embedded again",
        discussions - embedded,
        cli.db.display()
    );
    let secs = report.meetings_ms as f64 / 1000.0;
    if e.discussions > 0 && secs > 0.0 {
        println!(
            "Meetings took {secs:.2} s: {:.1} discussions/s, {:.0} embeddings/s (model load {:.2} s, past discussions {:.2} s)",
            embedded as f64 / secs,
            e.discussions as f64 / secs,
            load_time.as_secs_f64(),
            report.past_ms as f64 / 1000.0
        );
    }
}

/// A whole number of at least 1.
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("not a whole number: {e}")),
    }
}

/// A cosine score: a number from -1 to 1.
fn cosine(text: &str) -> Result<f32, String> {
    match text.parse::<f32>() {
        Ok(score) if (-1.0..=1.0).contains(&score) => Ok(score),
        Ok(score) => Err(format!(
            "{score} is not a cosine: give a number from -1 to 1"
        )),
        Err(e) => Err(format!("not a number: {e}")),
    }
}
