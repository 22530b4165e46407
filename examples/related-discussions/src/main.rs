//! `related-discussions`: relate each discussion of the retrospectives whose
//! voting ended to similar past discussions; checkpointed to SQLite, so a rerun resumes
//! and never embeds a text twice.
//!
//! ```text
//! bash scripts/fetch-models.sh && source .fe-assets/env.sh
//! cargo run --release -p example-related-discussions -- run --db ./burr.db
//! cargo run --release -p example-related-discussions -- serve --db ./burr.db
//! cargo run --release -p example-related-discussions -- check --db ./burr.db
//! ```
//!
//! `run` (also without the word) relates the meetings now, in this process; `serve`
//! registers the kinds of [`example_related_discussions::service`] with the run queue and
//! serves the HTTP API and web UI (burr-server's `serve`) until SIGTERM or Ctrl-C;
//! `check` says whether this build can resume every unfinished run and meeting
//! application in a database (exit 1 naming those it cannot: a deploy gate).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use example_related_discussions::batcher::BatchConfig;
use example_related_discussions::data::Dataset;
use example_related_discussions::discussion::Settings;
use example_related_discussions::generate::generate;
use example_related_discussions::model::Model;
use example_related_discussions::run::{self, Options, Progress, Report};
use example_related_discussions::service::Service;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Relate every discussion of retrospectives whose voting ended to similar past
/// discussions (embed, find similar, rerank, publish), one child application per
/// discussion, resumable from a SQLite file. Without --data: the labelled dataset (320
/// discussions of 32 meetings), with theme hit rates at the end.
#[derive(Parser, Debug)]
#[command(name = "related-discussions", args_conflicts_with_subcommands = true)]
struct Cli {
    /// `run` (the default), `serve` or `check`.
    #[command(subcommand)]
    command: Option<Command>,
    /// Without a subcommand: `run`'s options.
    #[command(flatten)]
    run: RunArgs,
}

/// What to do.
#[derive(Subcommand, Debug)]
enum Command {
    /// Relate the meetings now, in this process (the default).
    Run(RunArgs),
    /// Serve the kinds `meeting`, `ad-hoc` and `backfill` on the run queue, with the
    /// HTTP API and the web UI, until SIGTERM or Ctrl-C.
    Serve(ServiceArgs),
    /// Whether this build can resume every unfinished run and meeting application in the
    /// database: each with its verdict; exit 1 naming those it cannot (a deploy gate).
    Check(CheckArgs),
}

/// What `check` reads.
#[derive(Args, Debug)]
struct CheckArgs {
    /// The database: a SQLite file or a `postgres://` URL.
    #[arg(long, env = "BURR_DB", default_value = "./burr.db")]
    db: PathBuf,
    /// JSON instead of text.
    #[arg(long)]
    json: bool,
    /// The dataset the service was started with (as `serve --data`).
    #[arg(long)]
    data: Option<PathBuf>,
}

/// How the service runs.
#[derive(Args, Debug)]
struct ServiceArgs {
    /// The database of the run queue, checkpoints, tracker records and stored
    /// embeddings: a SQLite file (created if missing) or a `postgres://` URL.
    #[arg(long, default_value = "./burr.db")]
    db: PathBuf,
    /// Meetings and past discussions as JSON, shaped like data/retros.json (default: the
    /// built-in labelled dataset). A `meeting` run names one of its meetings, or brings
    /// its own.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Related past discussions kept per discussion (at least 1).
    #[arg(long, default_value_t = 3, value_parser = at_least_one, allow_hyphen_values = true)]
    top_k: usize,
    /// Candidates found by the first stage and reranked (at least 1).
    #[arg(long, default_value_t = 32, value_parser = at_least_one, allow_hyphen_values = true)]
    candidates: usize,
    /// The lowest rerank score (a cosine, from -1 to 1) kept.
    #[arg(long, default_value_t = 0.2, value_parser = cosine, allow_hyphen_values = true)]
    min_score: f32,
    /// ONNX Runtime threads per model call (at least 1).
    #[arg(long, default_value_t = 1, value_parser = at_least_one, allow_hyphen_values = true)]
    model_threads: usize,
    /// Pause after each embedding of a discussion, in milliseconds (to watch a run).
    #[arg(long, default_value_t = 0, value_parser = millis, allow_hyphen_values = true)]
    pause_ms: u64,
    /// The worker and the HTTP server (burr-server's `serve` options).
    #[command(flatten)]
    serve: burr_server::cli::ServeArgs,
}

/// How `run` runs.
#[derive(Args, Debug)]
struct RunArgs {
    /// The SQLite file of checkpoints, tracker records and stored embeddings (created if
    /// missing). Rerunning with the same file resumes and embeds nothing twice.
    #[arg(long, default_value = "./burr.db")]
    db: PathBuf,
    /// Meetings and past discussions as JSON, shaped like data/retros.json (default: the
    /// built-in labelled dataset).
    #[arg(long, conflicts_with = "generate")]
    data: Option<PathBuf>,
    /// Instead of a dataset, N generated discussions (deterministic from --seed), for
    /// benchmarks.
    #[arg(long, value_name = "N", value_parser = at_least_one, allow_hyphen_values = true)]
    generate: Option<usize>,
    /// The seed of --generate.
    #[arg(long, default_value_t = 1, requires = "generate")]
    seed: u64,
    /// Only this meeting (repeat for several; default: every meeting). The others still
    /// count as the past of later meetings.
    #[arg(long = "meeting", value_name = "ID")]
    meetings: Vec<String>,
    /// Related past discussions kept per discussion (at least 1).
    #[arg(long, default_value_t = 3, value_parser = at_least_one, allow_hyphen_values = true)]
    top_k: usize,
    /// Candidates found by the first stage and reranked (at least 1). Reranking is cheap
    /// (each candidate's text is embedded once, ever), so the default is generous.
    #[arg(long, default_value_t = 32, value_parser = at_least_one, allow_hyphen_values = true)]
    candidates: usize,
    /// The lowest rerank score (a cosine, from -1 to 1) kept.
    #[arg(long, default_value_t = 0.2, value_parser = cosine, allow_hyphen_values = true)]
    min_score: f32,
    /// Print one JSON line (the report, with top1, top3, embedded and reused at the top)
    /// instead of text.
    #[arg(long)]
    json: bool,
    /// At most this many child steps at once on the shared executor (at least 1). Many
    /// children waiting on the batcher at once make full model batches.
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = at_least_one, allow_hyphen_values = true)]
    executor_concurrency: usize,
    /// At most this many queued texts taken at once by the batcher, sorted by length (at
    /// least 1).
    #[arg(long, value_name = "N", default_value_t = 1024, value_parser = at_least_one, allow_hyphen_values = true)]
    max_batch: usize,
    /// Texts per model call within what the batcher took (at least 1).
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = at_least_one, allow_hyphen_values = true)]
    model_batch: usize,
    /// How long the batcher waits for more texts after the first of a batch, in ms.
    #[arg(long, value_name = "MS", default_value_t = 20, value_parser = millis, allow_hyphen_values = true)]
    max_wait_ms: u64,
    /// Run this meeting's discussions before the others' (repeatable).
    #[arg(long, value_name = "MEETING")]
    urgent: Vec<String>,
    /// ONNX Runtime threads per model call (at least 1).
    #[arg(long, default_value_t = 1, value_parser = at_least_one, allow_hyphen_values = true)]
    model_threads: usize,
    /// Pause after each embedding of a discussion, in milliseconds: to watch a run, or to
    /// interrupt one part-way and see it resume.
    #[arg(long, default_value_t = 0, value_parser = millis, allow_hyphen_values = true)]
    pause_ms: u64,
    /// Do not record the run with a tracker.
    #[arg(long)]
    no_track: bool,
    /// A line per related discussion on stderr.
    #[arg(long, short)]
    verbose: bool,
    /// No progress on stderr.
    #[arg(long, short)]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Run(cli.run));
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let result = match command {
        Command::Run(args) => main_inner(args),
        Command::Serve(args) => serve(args),
        Command::Check(args) => check(args),
    };
    match result {
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

/// `serve`: load the model and the dataset, open the store, and hand the kinds to
/// burr-server's `serve`.
fn serve(args: ServiceArgs) -> Result<(), Box<dyn std::error::Error>> {
    let data = match &args.data {
        Some(path) => Dataset::from_file(path)?,
        None => Dataset::labelled(),
    };
    let model = Arc::new(Model::from_env(args.model_threads)?);
    let settings = Settings {
        candidates: args.candidates,
        top_k: args.top_k,
        min_score: args.min_score,
        pause: Duration::from_millis(args.pause_ms),
    };
    let cli = burr_server::cli::Cli {
        db: args.db,
        json: false,
        command: burr_server::cli::Command::Serve(args.serve),
    };
    // The store goes in the database the runs are in (its work cache).
    burr_server::cli::run_with(cli, |db| {
        let service = Service::new(db.cache(), data, model, settings, BatchConfig::default())?;
        // The meetings events brought, finished before a restart, are the past again.
        let (queue, persister) = (db.queue(), db.persister());
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(service.restore(&*queue, &*persister))
        })?;
        Ok(service.registry())
    })?;
    Ok(())
}

/// `check`: burr-server's `check` with the service's kinds and the one-shot mode's
/// meeting applications. It builds their graphs only; the model is loaded because the
/// kinds share its store.
fn check(args: CheckArgs) -> Result<(), Box<dyn std::error::Error>> {
    let data = match &args.data {
        Some(path) => Dataset::from_file(path)?,
        None => Dataset::labelled(),
    };
    let model = Arc::new(Model::from_env(1)?);
    let cli = burr_server::cli::Cli {
        db: args.db,
        json: args.json,
        command: burr_server::cli::Command::Check,
    };
    burr_server::cli::run_with(cli, |db| {
        let service = Service::new(
            db.cache(),
            data,
            model,
            Settings::default(),
            BatchConfig::default(),
        )?;
        Ok(service.registry())
    })?;
    Ok(())
}

fn main_inner(cli: RunArgs) -> Result<(), Box<dyn std::error::Error>> {
    let data = match (&cli.data, cli.generate) {
        (Some(path), _) => Dataset::from_file(path)?,
        (None, Some(n)) => generate(n, cli.seed),
        (None, None) => Dataset::labelled(),
    };
    // Unknown meetings are refused before anything is loaded or written.
    data.clone().select(&cli.meetings)?;
    for id in &cli.urgent {
        data.clone().select(std::slice::from_ref(id))?;
    }
    let started = Instant::now();
    let model = Arc::new(Model::from_env(cli.model_threads)?);
    let load_time = started.elapsed();
    let progress = if cli.quiet {
        None
    } else {
        Some(Bars::new(cli.verbose).sink())
    };
    let options = Options {
        settings: Settings {
            candidates: cli.candidates,
            top_k: cli.top_k,
            min_score: cli.min_score,
            pause: Duration::from_millis(cli.pause_ms),
        },
        meetings: cli.meetings.clone(),
        executor_concurrency: cli.executor_concurrency,
        batch: BatchConfig {
            max_batch: cli.max_batch,
            model_batch: cli.model_batch,
            max_wait: Duration::from_millis(cli.max_wait_ms),
        },
        urgent: cli.urgent.clone(),
        track: !cli.no_track,
        progress,
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let report = runtime.block_on(run::run(&data, model, &cli.db, &options))?;
    if cli.json {
        let mut value = serde_json::to_value(&report)?;
        if let Some(object) = value.as_object_mut() {
            let q = report.quality.as_ref();
            object.insert("top1".into(), q.map(|q| q.top1).into());
            object.insert("top3".into(), q.map(|q| q.top3).into());
            object.insert("db".into(), cli.db.display().to_string().into());
        }
        println!("{}", serde_json::to_string(&value)?);
    } else {
        print_summary(&report, &cli, load_time, started.elapsed());
    }
    Ok(())
}

/// Progress: a bar per map action (`embed`, `relate`) with counts and ETA on a terminal;
/// a plain line every tenth of the way otherwise.
struct Bars {
    verbose: bool,
    terminal: bool,
    multi: MultiProgress,
    bars: Mutex<Option<(ProgressBar, ProgressBar)>>,
    plain: Mutex<(usize, usize, usize, Instant)>,
}

impl Bars {
    fn new(verbose: bool) -> Arc<Bars> {
        let terminal = std::io::stderr().is_terminal() && std::io::stdout().is_terminal();
        let target = if terminal {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Arc::new(Bars {
            verbose,
            terminal,
            multi: MultiProgress::with_draw_target(target),
            bars: Mutex::new(None),
            plain: Mutex::new((0, 0, 0, Instant::now())),
        })
    }

    fn sink(self: Arc<Self>) -> run::ProgressSink {
        Arc::new(move |p: &Progress| self.on(p))
    }

    fn line(&self, text: String) {
        if self.terminal {
            let _ = self.multi.println(text);
        } else {
            eprintln!("{text}");
        }
    }

    fn on(&self, progress: &Progress) {
        match progress {
            Progress::Started {
                meetings,
                discussions,
                done,
            } => {
                let todo = (discussions - done) as u64;
                let style = ProgressStyle::with_template(
                    "{prefix:>7} [{bar:40}] {pos}/{len} {per_sec} eta {eta}",
                )
                .expect("a valid template")
                .progress_chars("=> ");
                let bar = |name: &str| {
                    let b = self.multi.add(ProgressBar::new(todo));
                    b.set_style(style.clone());
                    b.set_prefix(name.to_owned());
                    b
                };
                *self.bars.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((bar("embed"), bar("relate")));
                let mut plain = self.plain.lock().unwrap_or_else(|p| p.into_inner());
                *plain = (todo as usize, 0, 0, Instant::now());
                self.line(format!(
                    "{meetings} meetings, {discussions} discussions ({done} already related in the database)"
                ));
            }
            Progress::Embedded { .. } => self.advance(0),
            Progress::Related {
                meeting,
                discussion,
                title,
                best,
            } => {
                if self.verbose {
                    self.line(match best {
                        Some(r) => format!(
                            "related {meeting}/{discussion} \"{title}\" -> {:.2} \"{}\" ({})",
                            r.score, r.title, r.id
                        ),
                        None => {
                            format!("related {meeting}/{discussion} \"{title}\" -> nothing similar")
                        }
                    });
                }
                self.advance(1);
            }
            Progress::Published { app_id } => {
                if self.verbose {
                    self.line(format!("published {app_id}"));
                }
            }
            Progress::Failed {
                app_id,
                action,
                error,
            } => self.line(format!("failed {app_id} at {action}: {error}")),
        }
    }

    fn advance(&self, which: usize) {
        if let Some((embed, relate)) = &*self.bars.lock().unwrap_or_else(|p| p.into_inner()) {
            [embed, relate][which].inc(1);
        }
        if self.terminal {
            return;
        }
        let mut plain = self.plain.lock().unwrap_or_else(|p| p.into_inner());
        let plain = &mut *plain;
        let (total, start) = (plain.0, plain.3);
        let count = if which == 0 {
            &mut plain.1
        } else {
            &mut plain.2
        };
        *count += 1;
        let n = *count;
        let tenth = total.div_ceil(10).max(1);
        if n % tenth == 0 || n == total {
            let elapsed = start.elapsed().as_secs_f64();
            let eta = elapsed / n as f64 * total.saturating_sub(n) as f64;
            eprintln!(
                "{:>7}: {n}/{total} ({:.0}%), {:.1} s, eta {eta:.1} s",
                ["embed", "relate"][which],
                n as f64 * 100.0 / total.max(1) as f64,
                elapsed
            );
        }
    }
}

fn print_summary(report: &Report, cli: &RunArgs, load_time: Duration, total: Duration) {
    let discussions: usize = report.meetings.iter().map(|m| m.discussions.len()).sum();
    let secs = report.meetings_ms as f64 / 1000.0;
    println!(
        "{} meeting{} ({discussions} discussions) done in {secs:.2} s (model load {:.2} s, {:.2} s in all)",
        report.meetings.len(),
        if report.meetings.len() == 1 { "" } else { "s" },
        load_time.as_secs_f64(),
        total.as_secs_f64()
    );
    let rate = |n: usize| {
        if secs > 0.0 {
            format!("{:.0}/s", n as f64 / secs)
        } else {
            "-".to_owned()
        }
    };
    println!(
        "  embedded {} texts in {} model batches ({}, {:.1} s in the model), reused {} from the store; reranked {} discussions ({}), {} already related before this run",
        report.embedded,
        report.batches,
        rate(report.embedded),
        report.model_ms as f64 / 1000.0,
        report.reused,
        report.reranked,
        rate(report.reranked),
        discussions - report.reranked.min(discussions)
    );
    match &report.quality {
        Some(q) => println!(
            "  theme hit rate over {} labelled discussions: top-1 {:.1}% ({}), top-3 {:.1}% ({})",
            q.evaluated,
            q.top1 * 100.0,
            q.top1_hits,
            q.top3 * 100.0,
            q.top3_hits
        ),
        None => println!("  theme hit rate: the dataset is not labelled"),
    }
    let db = cli.db.display();
    println!(
        "Database: {db} (checkpoints, tracker records, {} stored vectors)",
        report.stored
    );
    let Some(first) = report.meetings.first() else {
        return;
    };
    println!("Inspect it:");
    println!("  cargo run -q -p burr-tracker -- --db {db} apps --top-level");
    println!(
        "  cargo run -q -p burr-tracker -- --db {db} show {}",
        first.app_id
    );
    println!(
        "  cargo run -q -p burr-tracker -- --db {db} tree {}",
        first.app_id
    );
    println!(
        "  cargo run -q -p burr-tracker -- --db {db} graph {}",
        first.app_id
    );
    println!("  cargo run -q -p burr-server --bin burr -- ui --db {db}   # the web UI");
    println!(
        "Each meeting's summary is its state's `summary`: cargo run -q -p burr-tracker -- --db {db} state {}",
        first.app_id
    );
}

/// A whole number of at least 1.
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("not a whole number: {e}")),
    }
}

/// Milliseconds: a whole number, at most an hour.
fn millis(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(ms) if ms <= 3_600_000 => Ok(ms),
        Ok(_) => Err("at most 3600000 (an hour)".to_owned()),
        Err(e) => Err(format!("not a whole number of milliseconds: {e}")),
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
