//! The HTTP API on loopback: submit throughput (wrk), 1,000 SSE clients on one run's
//! stream (server memory and delivery latency), and the runs page of a database holding
//! 100,000 runs.
//!
//! The server of the SSE benchmark is this binary again, started as
//! `burr-bench http-server --db PATH`, so that its memory is its own.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use burr_core::actions::action_fn;
use burr_core::{expr, ApplicationBuilder, ApplicationContext, State};
use burr_server::http::{Server, ServerOptions};
use burr_server::{
    now_us, BoxError, Kind, Registry, RunInfo, Runs, SqliteRunQueue, Worker, WorkerOptions,
};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::w5::Once;

/// `steps` steps, each sleeping `sleep_ms`: a run whose events come at a steady pace.
pub struct Ticks;

/// The inputs of [`Ticks`].
#[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct TicksInputs {
    steps: u32,
    sleep_ms: u64,
}

impl Kind for Ticks {
    type Inputs = TicksInputs;

    fn name(&self) -> &str {
        "ticks"
    }

    fn build(&self, inputs: TicksInputs, _: &RunInfo) -> Result<ApplicationBuilder, BoxError> {
        let sleep = Duration::from_millis(inputs.sleep_ms);
        let tick = action_fn(
            "tick",
            move |state: State, _, _: ApplicationContext| async move {
                tokio::time::sleep(sleep).await;
                state.increment("n", 1)
            },
        )
        .reads(["n"])
        .writes(["n"]);
        Ok(ApplicationBuilder::new()
            .with_actions([tick])
            .with_transitions([("tick", "tick", expr(&format!("n < {}", inputs.steps)))])
            .with_state(State::new().update("n", 0))
            .with_entrypoint("tick"))
    }
}

fn registry() -> Arc<Registry> {
    Arc::new(Registry::new().register(Once).register(Ticks))
}

/// A server (API only, no worker) over a new database in `dir`; its address.
async fn serve(db: &Path, runs: Option<Runs>) -> Result<String, Box<dyn std::error::Error>> {
    let server = match runs {
        Some(runs) => Server::with_runs(db, runs)?,
        None => Server::read_only(db)?,
    };
    let bound = server
        .with_options(ServerOptions {
            addr: ([127, 0, 0, 1], 0).into(),
            ..ServerOptions::default()
        })
        .bind()
        .await?;
    let addr = bound.local_addr()?.to_string();
    tokio::spawn(bound.serve(std::future::pending()));
    Ok(addr)
}

/// Submit throughput: wrk POSTs `once` runs for `seconds` with 64 connections; every
/// 201 is a run durably stored. Needs `wrk` (Debian's package).
pub async fn submit(dir: &Path, seconds: u64) -> Result<Value, Box<dyn std::error::Error>> {
    let db = dir.join("http-submit.db");
    let queue = SqliteRunQueue::open(&db)?;
    let runs = Runs::new(Arc::new(queue.clone()), registry());
    let addr = serve(&db, Some(runs)).await?;
    let script = dir.join("submit.lua");
    std::fs::write(
        &script,
        "wrk.method = \"POST\"\nwrk.body = '{\"kind\": \"once\", \"inputs\": {}}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\n",
    )?;
    let url = format!("http://{addr}/v1/runs");
    let seconds_arg = format!("{seconds}s");
    let output = tokio::task::spawn_blocking(move || {
        Command::new("wrk")
            .args(["-t2", "-c64", "-d", &seconds_arg, "--latency", "-s"])
            .arg(&script)
            .arg(&url)
            .output()
    })
    .await?
    .map_err(|e| format!("cannot run wrk (apt-get install wrk): {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let field = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|v| v.trim().to_owned()))
    };
    let per_s: f64 = field("Requests/sec:")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("wrk printed no rate:\n{text}"))?;
    let stored =
        rusqlite::Connection::open(&db)?
            .query_row("SELECT count(*) FROM burr_runs", [], |r| r.get::<_, i64>(0))?;
    Ok(json!({
        "workload": "http-submit",
        "seconds": seconds,
        "connections": 64,
        "requests_per_s": per_s,
        "runs_stored": stored,
        "non_2xx": field("Non-2xx or 3xx responses:").unwrap_or_else(|| "0".into()),
        "latency_p50": field("50%"),
        "latency_p99": field("99%"),
    }))
}

/// The server process of [`sse`]: the API and a worker on `db`, until stdin closes.
pub async fn server_process(db: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let queue = SqliteRunQueue::open(db)?;
    let registry = registry();
    let runs = Runs::new(Arc::new(queue.clone()), Arc::clone(&registry));
    let addr = serve(db, Some(runs)).await?;
    let worker = Worker::new(Arc::new(queue.clone()), queue.persister(), registry).with_options(
        WorkerOptions {
            scheduler: false,
            ..Default::default()
        },
    );
    println!("listening {addr}");
    worker.run(super::w5::stdin_closed()).await?;
    Ok(())
}

/// Resident and peak memory of process `pid`, in MiB.
fn memory_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
            / 1024.0
    };
    (kb("VmRSS:"), kb("VmHWM:"))
}

/// One request over a new connection; (status, body).
async fn request(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr).await?;
    let body = body.unwrap_or("");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// `clients` SSE clients on one run's stream: the server's memory with them all
/// connected, and how long each `step_finished` event took from its creation to each
/// client (p50, p99).
pub async fn sse(dir: &Path, clients: usize) -> Result<Value, Box<dyn std::error::Error>> {
    let db = dir.join("http-sse.db");
    let mut server = Command::new(std::env::current_exe()?)
        .args(["http-server", "--db"])
        .arg(&db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.take().ok_or("no stdout")?),
        &mut line,
    )?;
    let addr = line
        .trim()
        .strip_prefix("listening ")
        .ok_or_else(|| format!("the server said `{line}`"))?
        .to_owned();
    let (_, idle_mib) = memory_mib(server.id());
    // A run that starts once every client is connected, then steps every 20 ms.
    let steps = 50;
    let start_at = now_us() + 4_000_000;
    let (status, body) = request(
        &addr,
        "POST",
        "/v1/runs",
        Some(
            &json!({"kind": "ticks", "run_id": "sse-run", "not_before_us": start_at,
            "inputs": {"steps": steps, "sleep_ms": 20}})
            .to_string(),
        ),
    )
    .await?;
    if status != 201 {
        return Err(format!("submit: {status} {body}").into());
    }
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let addr = addr.clone();
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            let Ok(mut stream) = TcpStream::connect(&addr).await else {
                return latencies;
            };
            let head = format!("GET /v1/runs/sse-run/events HTTP/1.1\r\nHost: {addr}\r\n\r\n");
            if stream.write_all(head.as_bytes()).await.is_err() {
                return latencies;
            }
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let Some(data) = line.strip_prefix("data: ") else {
                    continue;
                };
                let Ok(event) = serde_json::from_str::<Value>(data) else {
                    continue;
                };
                match event["type"].as_str() {
                    Some("step_finished") => {
                        let at = event["at_us"].as_i64().unwrap_or(0);
                        latencies.push((now_us() - at) as f64 / 1000.0);
                    }
                    Some("finished") => break,
                    _ => {}
                }
            }
            latencies
        });
    }
    // Sample the server's memory while the run streams.
    let pid = server.id();
    let sampler = tokio::spawn(async move {
        let mut peak: f64 = 0.0;
        let until = Instant::now() + Duration::from_secs(30);
        while Instant::now() < until {
            let (rss, _) = memory_mib(pid);
            if rss.is_nan() {
                break;
            }
            peak = peak.max(rss);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        peak
    });
    let mut all = Vec::new();
    let mut complete = 0;
    while let Some(done) = tasks.join_next().await {
        let latencies = done?;
        if latencies.len() == steps as usize {
            complete += 1;
        }
        all.extend(latencies);
    }
    let (_, hwm) = memory_mib(pid);
    sampler.abort();
    drop(server.stdin.take());
    let _ = server.wait();
    all.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        all.get(((all.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    Ok(json!({
        "workload": "http-sse",
        "clients": clients,
        "clients_with_every_event": complete,
        "events_received": all.len(),
        "server_idle_mib": idle_mib,
        "server_peak_mib": hwm,
        "delivery_p50_ms": pct(0.5),
        "delivery_p99_ms": pct(0.99),
        "delivery_max_ms": pct(1.0),
    }))
}

/// The runs page of a database holding `n` runs (each run by a worker, so each is also
/// an application with checkpoints): the first page, a later page, and a status filter,
/// timed at the server (requests over loopback, one at a time), medians of 20.
pub async fn runs_page(dir: &Path, n: usize) -> Result<Value, Box<dyn std::error::Error>> {
    let db = dir.join("http-page.db");
    let queue = SqliteRunQueue::open(&db)?;
    let registry = registry();
    let runs = Runs::new(Arc::new(queue.clone()), Arc::clone(&registry));
    let filled = Instant::now();
    let mut pending = tokio::task::JoinSet::new();
    for _ in 0..n {
        let runs = runs.clone();
        pending.spawn(async move {
            runs.submit(burr_server::Submission::new("once", json!({})))
                .await
        });
        if pending.len() >= 256 {
            pending.join_next().await.transpose()?.transpose()?;
        }
    }
    while let Some(done) = pending.join_next().await {
        done??;
    }
    let worker = Worker::new(Arc::new(queue.clone()), queue.persister(), registry).with_options(
        WorkerOptions {
            concurrency: 64,
            scheduler: false,
            ..Default::default()
        },
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let working = tokio::spawn(worker.run(async {
        let _ = stopped.await;
    }));
    loop {
        let backlog = burr_server::RunQueue::backlog(&queue).await?;
        let open: u64 = backlog
            .rows
            .iter()
            .filter(|r| !r.status.is_finished())
            .map(|r| r.count)
            .sum();
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = stop.send(());
    working.await??;
    let fill_s = filled.elapsed().as_secs_f64();
    let addr = serve(&db, None).await?;
    let time = |path: String| {
        let addr = addr.clone();
        async move {
            let mut ms = Vec::new();
            let mut cursor = None;
            for _ in 0..20 {
                let start = Instant::now();
                let (status, body) = request(&addr, "GET", &path, None).await?;
                ms.push(start.elapsed().as_secs_f64() * 1000.0);
                if status != 200 {
                    return Err(format!("{path}: {status} {body}").into());
                }
                cursor = serde_json::from_str::<Value>(&body)?["next_cursor"]
                    .as_str()
                    .map(str::to_owned);
            }
            ms.sort_by(f64::total_cmp);
            Ok::<_, Box<dyn std::error::Error>>((ms[ms.len() / 2], ms[ms.len() - 1], cursor))
        }
    };
    let (first_ms, first_max_ms, cursor) = time("/v1/runs?limit=50".to_owned()).await?;
    let cursor = cursor.ok_or("no second page")?;
    let encoded: String = cursor
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let (next_ms, _, _) = time(format!("/v1/runs?limit=50&cursor={encoded}")).await?;
    let (filtered_ms, _, _) = time("/v1/runs?limit=50&status=failed".to_owned()).await?;
    Ok(json!({
        "workload": "http-runs-page",
        "runs": n,
        "fill_s": fill_s,
        "first_page_ms": first_ms,
        "first_page_max_ms": first_max_ms,
        "next_page_ms": next_ms,
        "status_filter_no_match_ms": filtered_ms,
    }))
}
