//! The run verbs of a user's binary, with one call: [`main`].
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     let registry = burr_server::Registry::new(); // .register(MyKind)...
//!     burr_server::cli::main(registry)
//! }
//! ```
//!
//! `serve` runs a worker, the scheduler and the HTTP API with the web UI (`--addr`,
//! default 127.0.0.1:7777); `worker` runs a worker (with the scheduler); both until
//! SIGTERM or Ctrl-C, then drain; `submit`, `runs`, `show`, `cancel`, `watch`, `backlog`, `explain`, `schedules`,
//! `kinds`, `check` (can this code resume every unfinished run? exit 1 if not) and
//! `cache` (the work cache's entries: summary, list, prune) work on the database
//! (`--db PATH` or `--db postgres://…` with the `postgres` feature; `BURR_DB`, default
//! `./burr.db`; `serve` and `cache` need a SQLite file for now), with
//! tables for people and `--json` for scripts. Errors are one line on stderr and a
//! non-zero exit. The `burr-tracker` CLI inspects the same file's checkpoints and steps.

mod cache;
mod check;
pub mod generic;
mod print;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

pub use self::cache::CacheCommand;

use crate::error::QueueError;
use crate::kind::Registry;
use crate::queue::{Backend, RunQueue};
use crate::run::{now_us, RunFilter, RunStatus};
use crate::runs::{Runs, Submission};
use crate::schedule::ScheduleSpec;
use crate::worker::{Worker, WorkerOptions};

/// The run verbs.
#[derive(Debug, Parser)]
#[command(about = "Durable runs: submit, run, watch and inspect them")]
pub struct Cli {
    /// The burr database (checkpoints, run queue, tracker): a SQLite file, or a
    /// PostgreSQL URL (`postgres://user:password@host:port/dbname`, with burr-server's
    /// `postgres` feature).
    #[arg(long, global = true, env = "BURR_DB", default_value = "burr.db")]
    pub db: PathBuf,
    /// Print JSON (one document, or one line per event for `watch`).
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// A verb.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a worker, the scheduler and the HTTP API with the web UI until SIGTERM or
    /// Ctrl-C (then drain).
    Serve(ServeArgs),
    /// Run a worker until SIGTERM or Ctrl-C (then drain).
    Worker(WorkerArgs),
    /// Submit a run.
    Submit(SubmitArgs),
    /// List runs, newest first.
    Runs(ListArgs),
    /// One run.
    Show {
        /// The run id.
        run_id: String,
    },
    /// Cancel a run (a queued one at once; a running one through its worker).
    Cancel {
        /// The run id.
        run_id: String,
    },
    /// Follow run events (of one run, until it finishes; or of all runs).
    Watch {
        /// The run id (all runs when not given).
        run_id: Option<String>,
    },
    /// Runs by kind, priority and status, and the oldest wait.
    Backlog,
    /// Why a run waits.
    Explain {
        /// The run id.
        run_id: String,
    },
    /// Periodic runs.
    Schedules {
        /// list (default), add or remove.
        #[command(subcommand)]
        action: Option<ScheduleCommand>,
    },
    /// The kinds this program runs, with their input schemas.
    Kinds,
    /// The work cache's entries (memoized steps, embeddings): summary (default), list,
    /// prune.
    Cache {
        /// summary (default), list or prune.
        #[command(subcommand)]
        action: Option<CacheCommand>,
    },
    /// Whether this program's code can resume every unfinished run and application (a
    /// deploy gate): each with its verdict; exit 1 naming those that cannot.
    Check,
    /// Create or migrate the database's tables (checkpoints, run queue, tracker) to this
    /// build's schema, and exit: a deploy step before new workers start. Processes that
    /// migrate at once take turns (PostgreSQL: an advisory lock; SQLite: the write lock);
    /// a database migrated by a newer build is refused, unchanged.
    Migrate,
}

/// How a worker runs.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The queues to serve, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "default")]
    pub queues: Vec<String>,
    /// Runs at once (at least 1).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub concurrency: u32,
    /// Lease time to live (e.g. 30s, 500ms): a dead worker's runs are taken over after it.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub lease_ttl: Duration,
    /// How long a draining worker lets running steps finish (e.g. 30s).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub grace: Duration,
    /// Do not fire schedules.
    #[arg(long)]
    pub no_scheduler: bool,
    /// How long the events of finished runs are kept (e.g. 7d, 12h); the scheduler
    /// deletes older ones.
    #[arg(long, default_value = "7d", value_parser = parse_duration)]
    pub keep_events: Duration,
    /// Do not record steps with the tracker.
    #[arg(long)]
    pub no_tracker: bool,
    /// The worker id (default: host:pid:random).
    #[arg(long)]
    pub id: Option<String>,
}

/// What `serve` runs.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The worker.
    #[command(flatten)]
    pub worker: WorkerArgs,
    /// The HTTP server.
    #[command(flatten)]
    pub http: HttpArgs,
}

/// How the HTTP API and web UI listen, and whom they let in.
#[derive(Debug, Args)]
pub struct HttpArgs {
    /// Where the HTTP API and web UI listen. Beyond 127.0.0.1 a token is required.
    #[arg(long, default_value = "127.0.0.1:7777")]
    pub addr: std::net::SocketAddr,
    /// A token that may read (`Authorization: Bearer TOKEN`).
    #[arg(long, env = "BURR_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// A token that may also submit, cancel and rerun.
    #[arg(long, env = "BURR_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
}

impl HttpArgs {
    /// The server options these arguments give.
    pub fn options(&self) -> crate::http::ServerOptions {
        crate::http::ServerOptions {
            addr: self.addr,
            read_token: self.token.clone(),
            admin_token: self.admin_token.clone(),
            ..Default::default()
        }
    }
}

/// A run to submit.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// The kind.
    pub kind: String,
    /// The inputs, a JSON object.
    #[arg(long, default_value = "{}")]
    pub inputs: String,
    /// Higher runs first.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub priority: i32,
    /// Submitting the same kind with this key again returns the existing run.
    #[arg(long)]
    pub key: Option<String>,
    /// Not before: `+30s` from now, or a time such as `2026-12-04T10:00:00Z`.
    #[arg(long, value_parser = parse_time)]
    pub not_before: Option<i64>,
    /// The flow (e.g. a meeting id): runs of earlier flows go first.
    #[arg(long)]
    pub flow: Option<String>,
    /// The run id (default: a new UUID).
    #[arg(long)]
    pub run_id: Option<String>,
    /// Wait for the run to finish; exit non-zero unless it succeeded.
    #[arg(long)]
    pub wait: bool,
}

/// Which runs to list.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this status (queued, running, succeeded, failed, cancelled).
    #[arg(long, value_parser = parse_status)]
    pub status: Option<RunStatus>,
    /// Only this kind.
    #[arg(long)]
    pub kind: Option<String>,
    /// Only this flow.
    #[arg(long)]
    pub flow: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
}

/// Schedule verbs.
#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// List the schedules.
    List,
    /// Add or replace a schedule.
    Add {
        /// Its name.
        name: String,
        /// The kind it submits.
        #[arg(long)]
        kind: String,
        /// The inputs, a JSON object.
        #[arg(long, default_value = "{}")]
        inputs: String,
        /// Priority of its runs.
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        priority: i32,
        /// Every interval (e.g. 30s, 5m).
        #[arg(long, value_parser = parse_duration, conflicts_with = "cron", required_unless_present = "cron")]
        every: Option<Duration>,
        /// A cron expression, in UTC (e.g. `0 */5 * * * *` or `*/5 * * * *`).
        #[arg(long)]
        cron: Option<String>,
    },
    /// Remove a schedule.
    Remove {
        /// Its name.
        name: String,
    },
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The queue refused or failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// Inputs that are not JSON.
    #[error("--inputs is not JSON: {0}")]
    InputsNotJson(serde_json::Error),
    /// `submit --wait` on a run that did not succeed.
    #[error("run `{run_id}` {status}{}", error.as_deref().map(|e| format!(": {e}")).unwrap_or_default())]
    RunDidNotSucceed {
        /// The run.
        run_id: String,
        /// How it ended.
        status: RunStatus,
        /// Its error.
        error: Option<String>,
    },
    /// The runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    /// The HTTP server could not start or failed.
    #[error(transparent)]
    Http(#[from] crate::http::ServeError),
    /// A cache verb failed.
    #[error("the cache failed: {0}")]
    Cache(Box<burr_core::cache::CacheError>),
    /// The program could not make its registry for the database.
    #[error("cannot set up this program's kinds: {0}")]
    Registry(crate::BoxError),
    /// `check` found runs or applications the current code cannot resume.
    #[error("{} unfinished run(s) or application(s) cannot be resumed by this code: {}", runs.len(), runs.join("; "))]
    CannotResume {
        /// Each run or application, with why.
        runs: Vec<String>,
    },
}

/// Parse the command line and run the verb: the whole `main` of a user's binary.
pub fn main(registry: Registry) -> ExitCode {
    let cli = Cli::parse();
    match run(cli, registry) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let chain = crate::worker::chain(&error);
            eprintln!("error: {}", chain.join(": "));
            ExitCode::FAILURE
        }
    }
}

/// Run one parsed command.
pub fn run(cli: Cli, registry: Registry) -> Result<(), CliError> {
    run_with(cli, |_| Ok(registry))
}

/// Run one parsed command with the registry `registry` makes from the opened database:
/// for kinds that keep something in it (a work cache, [`Backend::cache`]), so they
/// share the database the command names, SQLite file or PostgreSQL alike.
pub fn run_with(
    cli: Cli,
    registry: impl FnOnce(&Backend) -> Result<Registry, crate::BoxError>,
) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    runtime.block_on(execute(cli, registry))
}

async fn execute(
    cli: Cli,
    registry: impl FnOnce(&Backend) -> Result<Registry, crate::BoxError>,
) -> Result<(), CliError> {
    // Before anything slow: a SIGTERM that comes while the database opens drains the
    // worker rather than killing the process.
    let signal = shutdown_signal();
    let db = crate::queue::open(&cli.db).await?;
    let registry = Arc::new(registry(&db).map_err(CliError::Registry)?);
    if let Command::Kinds = cli.command {
        return print::kinds(&registry.kinds(), cli.json);
    }
    let queue: Arc<dyn RunQueue> = db.queue();
    let runs = Runs::new(Arc::clone(&queue), Arc::clone(&registry));
    let json = cli.json;
    match cli.command {
        Command::Serve(args) => {
            work(
                &db,
                &cli.db,
                &registry,
                args.worker,
                Some((args.http, runs)),
                signal,
            )
            .await
        }
        Command::Worker(args) => work(&db, &cli.db, &registry, args, None, signal).await,
        Command::Cache { action } => match &db {
            Backend::Sqlite(sqlite) => {
                let store = burr_core::cache::SqliteCache::from_persister(&sqlite.persister());
                cache::cache(&store, action, json).await
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(pg) => {
                let store = burr_postgres::PgCache::from_persister(&pg.persister());
                cache::cache(&store, action, json).await
            }
        },
        Command::Check => check::check(&*db.persister(), &*queue, &registry, json).await,
        Command::Migrate => {
            // Opening the database migrated the checkpoints and the run queue; the
            // tracker's tables are made by opening a tracker on it.
            let tracker = match &db {
                Backend::Sqlite(sqlite) => burr_tracker::Tracker::open(sqlite.path()),
                #[cfg(feature = "postgres")]
                Backend::Postgres(_) => {
                    burr_tracker::Tracker::connect(cli.db.to_str().unwrap_or_default())
                }
            }
            .map_err(QueueError::from)?;
            drop(tracker);
            let (checkpoints, queue) = db.schema_versions();
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "database": db.name(),
                        "checkpoints_schema": checkpoints,
                        "run_queue_schema": queue,
                    })
                );
            } else {
                println!(
                    "{} is at this build's schema: checkpoints v{checkpoints}, run queue v{queue}, tracker tables ready",
                    db.name()
                );
            }
            Ok(())
        }
        Command::Submit(args) => {
            let inputs = serde_json::from_str(&args.inputs).map_err(CliError::InputsNotJson)?;
            let mut submission = Submission::new(args.kind, inputs).priority(args.priority);
            submission.idempotency_key = args.key;
            submission.not_before_us = args.not_before;
            submission.flow = args.flow;
            submission.run_id = args.run_id;
            let submitted = runs.submit(submission).await?;
            if !args.wait {
                return print::submitted(&submitted, json);
            }
            if !json {
                eprintln!("run {} queued; waiting", submitted.run.id);
            }
            let run = runs.wait(&submitted.run.id).await?;
            print::run(&run, json)?;
            match run.status {
                RunStatus::Succeeded => Ok(()),
                status => Err(CliError::RunDidNotSucceed {
                    run_id: run.id,
                    status,
                    error: run.error.map(|e| e.join(": ")),
                }),
            }
        }
        Command::Runs(args) => {
            let filter = RunFilter {
                status: args.status,
                kind: args.kind,
                flow: args.flow,
                before_seq: None,
                limit: Some(args.limit),
            };
            print::runs(&queue.list(&filter).await?, json)
        }
        Command::Show { run_id } => print::run(&queue.get(&run_id).await?, json),
        Command::Cancel { run_id } => print::run(&queue.cancel(&run_id).await?, json),
        Command::Watch { run_id } => watch::watch(&*queue, run_id.as_deref(), json).await,
        Command::Backlog => print::backlog(&queue.backlog().await?, json),
        Command::Explain { run_id } => print::explanation(&queue.explain(&run_id).await?, json),
        Command::Schedules { action } => match action.unwrap_or(ScheduleCommand::List) {
            ScheduleCommand::List => print::schedules(&queue.schedules().await?, json),
            ScheduleCommand::Add {
                name,
                kind,
                inputs,
                priority,
                every,
                cron,
            } => {
                let inputs = serde_json::from_str(&inputs).map_err(CliError::InputsNotJson)?;
                let spec = match (every, cron) {
                    (_, Some(cron)) => ScheduleSpec::Cron(cron),
                    (Some(every), None) => ScheduleSpec::EverySeconds(every.as_secs()),
                    (None, None) => unreachable!("clap requires --every or --cron"),
                };
                let schedule = runs
                    .schedule(
                        &name,
                        spec,
                        Submission::new(kind, inputs).priority(priority),
                    )
                    .await?;
                print::schedules(&[schedule], json)
            }
            ScheduleCommand::Remove { name } => {
                queue.remove_schedule(&name).await?;
                if !json {
                    println!("schedule {name} removed");
                }
                Ok(())
            }
        },
        Command::Kinds => unreachable!("handled above"),
    }
}

async fn work(
    db: &Backend,
    location: &std::path::Path,
    registry: &Arc<Registry>,
    args: WorkerArgs,
    http: Option<(HttpArgs, Runs)>,
    signal: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), CliError> {
    let metrics = crate::metrics::Metrics::new();
    let mut worker = Worker::new(db.queue(), db.persister(), Arc::clone(registry))
        .with_metrics(&metrics)
        .with_options(WorkerOptions {
            id: args.id,
            queues: args.queues,
            concurrency: args.concurrency as usize,
            lease_ttl: args.lease_ttl,
            grace: args.grace,
            scheduler: http.is_some() || !args.no_scheduler,
            event_retention: Some(args.keep_events),
            executor: None,
        });
    // The tracker records every step in the same database: the SQLite file, or the
    // PostgreSQL database (its `burr_tracker_*` tables there).
    #[cfg(not(feature = "postgres"))]
    let _ = location;
    let tracker = match db {
        _ if args.no_tracker => None,
        Backend::Sqlite(sqlite) => {
            Some(burr_tracker::Tracker::open(sqlite.path()).map_err(QueueError::from)?)
        }
        #[cfg(feature = "postgres")]
        Backend::Postgres(_) => Some(
            burr_tracker::Tracker::connect(location.to_str().unwrap_or_default())
                .map_err(QueueError::from)?,
        ),
    };
    if let Some(tracker) = &tracker {
        worker = worker.with_tracker(tracker.hook());
    }
    // One signal stops both the worker and the HTTP server.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        signal.await;
        let _ = stop.send(true);
    });
    let until_stopped = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|s| *s).await;
    };
    let server = match http {
        Some((args, runs)) => {
            // A file, or a PostgreSQL URL: the catalog reads either.
            let bound = crate::http::Server::with_runs(location, runs)?
                .with_metrics(Arc::clone(&metrics))
                .with_options(args.options())
                .bind()
                .await?;
            eprintln!("serving http://{}/", bound.local_addr()?);
            Some(tokio::spawn(bound.serve(until_stopped(stopped.clone()))))
        }
        None => None,
    };
    eprintln!("worker ready on {}", db.name());
    let report = worker.run(until_stopped(stopped)).await?;
    if let Some(tracker) = &tracker {
        let _ = tracker.flush();
    }
    if let Some(server) = server {
        if let Ok(served) = server.await {
            served?;
        }
    }
    eprintln!(
        "worker stopped: {} claimed, {} succeeded, {} failed, {} cancelled, {} released, {} fenced",
        report.claimed,
        report.succeeded,
        report.failed,
        report.cancelled,
        report.released,
        report.fenced
    );
    Ok(())
}

/// SIGTERM or Ctrl-C. The SIGTERM handler is installed when this is called (not when
/// the future is first polled): a signal that comes in between is kept for it.
pub(crate) fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        match term {
            Some(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}

/// `500ms`, `30s`, `5m`, `2h`, `7d`, or a number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (e.g. 500ms, 30s, 5m, 2h)"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86_400.0,
        _ => return Err(format!("`{text}`: unknown unit `{unit}` (ms, s, m, h, d)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("`{text}`: {e}"))
}

/// `+30s` (from now) or an RFC 3339 time, as microseconds since the Unix epoch.
fn parse_time(text: &str) -> Result<i64, String> {
    if let Some(after) = text.strip_prefix('+') {
        let after = parse_duration(after)?;
        return Ok(now_us().saturating_add(i64::try_from(after.as_micros()).unwrap_or(i64::MAX)));
    }
    let at: jiff::Timestamp = text
        .parse()
        .map_err(|e| format!("`{text}` is not +DURATION or an RFC 3339 time: {e}"))?;
    Ok(at.as_microsecond())
}

fn parse_status(text: &str) -> Result<RunStatus, String> {
    RunStatus::parse(text).ok_or_else(|| {
        format!("unknown status `{text}` (queued, running, succeeded, failed, cancelled)")
    })
}
