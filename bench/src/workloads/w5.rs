//! W5 (queue throughput), W6 (dispatch latency) and the claim cost with a deep queue:
//! the run queue of burr-server on a SQLite file.
//!
//! The worker of W5 and of W6 across processes is this binary again, started as
//! `burr-bench queue-worker --db PATH --concurrency N`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use burr_core::actions::action_sync;
use burr_core::{ApplicationBuilder, ApplicationContext, State};
use burr_server::{
    now_us, Backend, BoxError, Claim, Kind, Registry, RunInfo, RunQueue, RunStatus, Runs,
    SqliteRunQueue, Submission, Worker, WorkerOptions,
};
use serde_json::{json, Value};

/// One step that notes when it started.
pub struct Once;

/// No inputs.
#[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct NoInputs {}

impl Kind for Once {
    type Inputs = NoInputs;

    fn name(&self) -> &str {
        "once"
    }

    fn build(&self, _: NoInputs, _: &RunInfo) -> Result<ApplicationBuilder, BoxError> {
        let once = action_sync("once", |state: State, _, _: &ApplicationContext| {
            (json!({"started_us": now_us()}), state)
        });
        Ok(ApplicationBuilder::new()
            .with_actions([once])
            .with_transitions(Vec::<(&str, &str)>::new())
            .with_entrypoint("once"))
    }
}

fn registry() -> Arc<Registry> {
    Arc::new(Registry::new().register(Once))
}

/// The worker process: run `once` runs from `db` until stdin closes.
pub async fn worker_process(
    db: &Path,
    concurrency: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let db = burr_server::open(db).await?;
    let worker = Worker::new(db.queue(), db.persister(), registry()).with_options(WorkerOptions {
        concurrency,
        scheduler: false,
        ..Default::default()
    });
    println!("ready");
    worker.run(stdin_closed()).await?;
    Ok(())
}

/// Completes when this process's stdin closes (its parent is done with it).
pub async fn stdin_closed() {
    let _ = tokio::task::spawn_blocking(|| {
        let mut sink = String::new();
        let _ = std::io::stdin().read_line(&mut sink);
    })
    .await;
}

/// Start the worker process and wait until it is ready.
fn spawn_worker(db: &Path, concurrency: usize) -> Result<Child, Box<dyn std::error::Error>> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["queue-worker", "--db"])
        .arg(db)
        .args(["--n", &concurrency.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().ok_or("no stdout")?),
        &mut line,
    )?;
    if line.trim() != "ready" {
        return Err(format!("worker said `{line}`").into());
    }
    Ok(child)
}

fn stop(mut child: Child) -> Result<(), Box<dyn std::error::Error>> {
    drop(child.stdin.take());
    child.wait()?;
    Ok(())
}

fn db_path(dir: &Path, given: Option<&str>, name: &str) -> PathBuf {
    given.map_or_else(|| dir.join(name), PathBuf::from)
}

/// Whether any run of the database waits or runs: two lookups in the queue's partial
/// indexes, cheap enough to ask every few milliseconds without slowing the workers.
const BUSY: &str = "SELECT EXISTS (SELECT 1 FROM burr_runs WHERE status = 'queued') \
                      OR EXISTS (SELECT 1 FROM burr_runs WHERE status = 'running')";
const SUCCEEDED: &str = "SELECT count(*) FROM burr_runs WHERE status = 'succeeded'";

/// A connection around the queue, to see when it is drained.
enum Reader {
    Sqlite(rusqlite::Connection),
    Postgres(tokio_postgres::Client),
}

impl Reader {
    async fn open(db: &Backend, path: &Path) -> Result<Reader, Box<dyn std::error::Error>> {
        Ok(match db {
            Backend::Postgres(_) => {
                let url = path.to_str().ok_or("not a URL")?;
                let (client, connection) =
                    tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
                tokio::spawn(connection);
                Reader::Postgres(client)
            }
            _ => Reader::Sqlite(rusqlite::Connection::open(path)?),
        })
    }

    async fn busy(&self) -> Result<bool, Box<dyn std::error::Error>> {
        Ok(match self {
            Reader::Sqlite(c) => c.query_row(BUSY, [], |r| r.get(0))?,
            Reader::Postgres(c) => c.query_one(BUSY, &[]).await?.get(0),
        })
    }

    async fn succeeded(&self) -> Result<i64, Box<dyn std::error::Error>> {
        Ok(match self {
            Reader::Sqlite(c) => c.query_row(SUCCEEDED, [], |r| r.get(0))?,
            Reader::Postgres(c) => c.query_one(SUCCEEDED, &[]).await?.get(0),
        })
    }
}

/// W5: `n` one-step runs submitted, then drained by `workers` worker processes with
/// concurrency 64 each: runs per second from the first submission to the last finish.
pub async fn throughput(
    dir: &Path,
    db: Option<&str>,
    n: u64,
    workers: usize,
) -> Result<Value, Box<dyn std::error::Error>> {
    let path = db_path(dir, db, "w5.db");
    let backend = burr_server::open(&path).await?;
    let runs = Runs::new(backend.queue(), registry());
    // Submitted by 32 concurrent callers (as requests to a server would come), whose
    // submissions share commits.
    let started = Instant::now();
    let submitters: Vec<_> = (0..32u64)
        .map(|i| {
            let runs = runs.clone();
            tokio::spawn(async move {
                let mut k = i;
                while k < n {
                    runs.submit(Submission::new("once", json!({}))).await?;
                    k += 32;
                }
                Ok::<(), burr_server::QueueError>(())
            })
        })
        .collect();
    for submitter in submitters {
        submitter.await??;
    }
    let submitted = started.elapsed();
    let workers = (0..workers)
        .map(|_| spawn_worker(&path, 64))
        .collect::<Result<Vec<_>, _>>()?;
    let drain_started = Instant::now();
    let reader = Reader::open(&backend, &path).await?;
    while reader.busy().await? {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let succeeded = reader.succeeded().await?;
    if u64::try_from(succeeded)? != n {
        return Err(format!("{succeeded} of {n} runs succeeded").into());
    }
    let total = started.elapsed();
    let drained = drain_started.elapsed();
    // CPU time is the figure a busy machine does not blur (wall clock does): of the
    // workers, and of this process (the submitters).
    let worker_cpu: Option<f64> = workers
        .iter()
        .map(|w| cpu_seconds(&format!("/proc/{}/stat", w.id())))
        .sum();
    let submit_cpu = cpu_seconds("/proc/self/stat");
    let worker_count = workers.len();
    for worker in workers {
        stop(worker)?;
    }
    Ok(json!({
        "workload": "w5",
        "backend": if matches!(backend, Backend::Sqlite(_)) { "sqlite" } else { "postgres" },
        "n": n,
        "workers": worker_count,
        "concurrency": 64,
        "runs_per_s": n as f64 / total.as_secs_f64(),
        "submit_per_s": n as f64 / submitted.as_secs_f64(),
        "drain_per_s": n as f64 / drained.as_secs_f64(),
        "seconds": total.as_secs_f64(),
        "worker_cpu_us_per_run": worker_cpu.map(|s| s * 1e6 / n as f64),
        "submit_cpu_us_per_run": submit_cpu.map(|s| s * 1e6 / n as f64),
    }))
}

/// The CPU time (user + system) a process has used, from its `/proc/<pid>/stat`, in
/// seconds (at the kernel's clock tick, 10 ms).
fn cpu_seconds(stat: &str) -> Option<f64> {
    let text = std::fs::read_to_string(stat).ok()?;
    let mut fields = text[text.rfind(')')? + 1..].split_whitespace();
    // Fields 14 and 15 (utime, stime); the state (field 3) is the first after `)`.
    let utime: f64 = fields.nth(11)?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// W6: with an idle worker, submit → first step started, `n` times one after another;
/// in this process and with the worker in another.
pub async fn dispatch(
    dir: &Path,
    db: Option<&str>,
    n: u64,
) -> Result<Value, Box<dyn std::error::Error>> {
    let path = db_path(dir, db, "w6.db");
    let backend = burr_server::open(&path).await?;
    let runs = Runs::new(backend.queue(), registry());

    // In process.
    let worker =
        Worker::new(backend.queue(), backend.persister(), registry()).with_options(WorkerOptions {
            scheduler: false,
            ..Default::default()
        });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run(async {
        let _ = stop_rx.await;
    }));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let in_process = latencies(&runs, n).await?;
    let _ = stop_tx.send(());
    running.await??;

    // Across processes.
    let child = spawn_worker(&path, 16)?;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let cross = latencies(&runs, n).await?;
    stop(child)?;

    let (p50_in, p99_in) = (percentile(&in_process, 0.50), percentile(&in_process, 0.99));
    let (p50_x, p99_x) = (percentile(&cross, 0.50), percentile(&cross, 0.99));
    Ok(json!({
        "workload": "w6",
        "backend": if matches!(backend, Backend::Sqlite(_)) { "sqlite" } else { "postgres" },
        "n": n,
        "p50_us_in_process": p50_in,
        "p99_us_in_process": p99_in,
        "p50_us_cross_process": p50_x,
        "p99_us_cross_process": p99_x,
    }))
}

/// Submit a run, wait for it, `n` times: microseconds from submit to its step's start.
async fn latencies(runs: &Runs, n: u64) -> Result<Vec<f64>, Box<dyn std::error::Error>> {
    let mut out = Vec::new();
    for _ in 0..n {
        // An idle worker: nothing in flight between samples.
        tokio::time::sleep(Duration::from_millis(2)).await;
        let at = now_us();
        let submitted = runs.submit(Submission::new("once", json!({}))).await?;
        let run = runs.wait(&submitted.run.id).await?;
        if run.status != RunStatus::Succeeded {
            return Err(format!("run {} {}", run.id, run.status).into());
        }
        let started = run
            .result
            .as_ref()
            .and_then(|r| r["result"]["started_us"].as_i64())
            .ok_or("no start time")?;
        out.push((started - at) as f64);
    }
    Ok(out)
}

fn percentile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[rank]
}

/// Median microseconds of claiming one run with `queued` runs waiting.
pub async fn claim_cost(dir: &Path, queued: u64) -> Result<Value, Box<dyn std::error::Error>> {
    let path = dir.join(format!("claim-{queued}.db"));
    let queue = SqliteRunQueue::open(&path)?;
    {
        // Fill the queue in one transaction (the submissions are not what is measured).
        let mut conn = rusqlite::Connection::open(&path)?;
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare(
                "INSERT INTO burr_runs (id, kind, kind_version, queue, inputs, priority, flow, \
                     flow_started_at_us, not_before_us, status, attempt, max_attempts, \
                     submitted_at_us, updated_at_us) \
                 VALUES (?1, 'once', 1, 'default', '{}', ?2, ?1, ?3, ?3, 'queued', 0, 5, ?3, ?3)",
            )?;
            let now = now_us();
            for i in 0..queued {
                let priority = i64::try_from(i % 3)?;
                insert.execute(rusqlite::params![
                    format!("run-{i}"),
                    priority,
                    now + i64::try_from(i)?
                ])?;
            }
        }
        tx.commit()?;
    }
    let claim = Claim {
        worker: "bench".into(),
        queues: vec!["default".into()],
        kinds: vec![("once".into(), 1)],
        limit: 1,
        lease_ttl_us: 60_000_000,
    };
    let mut samples = Vec::new();
    for _ in 0..200 {
        let started = Instant::now();
        let claimed = queue.claim(&claim).await?;
        samples.push(started.elapsed().as_secs_f64() * 1e6);
        if claimed.len() != 1 {
            return Err("nothing claimed".into());
        }
    }
    let _ = std::fs::remove_file(&path);
    Ok(json!({"queued": queued, "claim_us_median": percentile(&samples, 0.5)}))
}
