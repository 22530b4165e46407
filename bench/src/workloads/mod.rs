//! The workloads, one module each.

mod http;
mod versions;
mod w1;
mod w2;
mod w2_postgres;
mod w3;
mod w4;
mod w5;

use std::sync::Arc;

use burr_core::persistence::{Durability, Persister, SqlitePersister};
use serde_json::{json, Value};

/// Parsed command line.
pub struct Options {
    /// The workload's name.
    pub workload: String,
    /// Its size, when given.
    pub n: Option<u64>,
    /// W2: fsync every commit.
    pub durable: bool,
    /// W3: with a SQLite persister.
    pub persist: bool,
    /// W1/W2: record every step with the tracker.
    pub track: bool,
    /// W2/W2b: rounds of (floor, workload), interleaved; the medians are reported.
    pub rounds: Option<usize>,
    /// W5/W6: the database (a file path; a new file in a temporary directory by default);
    /// W2/W2b: a `postgres://` URL runs them on PostgreSQL.
    pub db: Option<String>,
    /// W1: untouched keys in state besides the counter.
    pub keys: u64,
    /// W4: time start -> loaded inside this process, not across a spawn.
    pub in_process: bool,
    /// W5: worker processes (default 1).
    pub workers: usize,
}

impl Options {
    /// Parse `<workload> [--n N]`.
    pub fn parse(args: &[String]) -> Result<Options, String> {
        let mut workload = None;
        let mut n = None;
        let mut rounds = None;
        let mut db = None;
        let mut keys = 0;
        let mut in_process = false;
        let mut workers = 1;
        let (mut durable, mut persist, mut track) = (false, false, false);
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--n" => {
                    let value = it.next().ok_or("--n needs a number")?;
                    n = Some(
                        value
                            .parse()
                            .map_err(|_| format!("--n: `{value}` is not a number"))?,
                    );
                }
                "--rounds" => {
                    let value = it.next().ok_or("--rounds needs a number")?;
                    rounds = Some(
                        value
                            .parse()
                            .ok()
                            .filter(|&r: &usize| r > 0)
                            .ok_or_else(|| {
                                format!("--rounds: `{value}` is not a positive number")
                            })?,
                    );
                }
                "--keys" => {
                    let value = it.next().ok_or("--keys needs a number")?;
                    keys = value
                        .parse()
                        .map_err(|_| format!("--keys: `{value}` is not a number"))?;
                }
                "--in-process" => in_process = true,
                "--workers" => {
                    let value = it.next().ok_or("--workers needs a number")?;
                    workers = value
                        .parse()
                        .ok()
                        .filter(|&w: &usize| w > 0)
                        .ok_or_else(|| format!("--workers: `{value}` is not a positive number"))?;
                }
                "--db" => db = Some(it.next().ok_or("--db needs a path")?.clone()),
                "--durable" => durable = true,
                "--persist" => persist = true,
                "--track" => track = true,
                "-h" | "--help" => return Err("help".into()),
                name if workload.is_none() && !name.starts_with('-') => {
                    workload = Some(name.to_owned())
                }
                other => return Err(format!("unexpected argument `{other}`")),
            }
        }
        Ok(Options {
            workload: workload.ok_or("no workload given")?,
            n,
            durable,
            persist,
            track,
            rounds,
            db,
            keys,
            in_process,
            workers,
        })
    }
}

/// Run the workload the options name.
pub fn run(
    started: std::time::Instant,
    options: &Options,
) -> Result<(), Box<dyn std::error::Error>> {
    // W4 in process: the process to kill, and the one that resumes (timed from `started`).
    let n = |default| options.n.unwrap_or(default);
    match options.workload.as_str() {
        "w4-victim" => {
            let db = options.db.as_deref().ok_or("w4-victim needs --db")?;
            return w4::victim(std::path::Path::new(db), n(1_000));
        }
        "w4-resume" => {
            let db = options.db.as_deref().ok_or("w4-resume needs --db")?;
            report(w4::resume_here(
                started,
                std::path::Path::new(db),
                n(1_000),
            )?);
            return Ok(());
        }
        _ => {}
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let all = options.workload == "all";
    let dir = tempfile::tempdir()?;
    let tracker = if options.track {
        Some(burr_tracker::Tracker::open(
            dir.path().join("w1-tracked.db"),
        )?)
    } else {
        None
    };
    let mut ran = false;
    if all || options.workload == "w1" {
        report(runtime.block_on(w1::step_overhead(
            options.n.unwrap_or(10_000),
            false,
            options.keys,
            tracker.as_ref(),
        ))?);
        ran = true;
    }
    if all || options.workload == "w1-big" {
        report(runtime.block_on(w1::step_overhead(
            options.n.unwrap_or(10_000),
            true,
            options.keys,
            tracker.as_ref(),
        ))?);
        ran = true;
    }
    if all || options.workload == "w1-retry" {
        // Rounds of plain W1 then W1 with retries and timeouts, interleaved; medians.
        let n = options.n.unwrap_or(10_000);
        let (mut plain, mut guarded) = (Vec::new(), Vec::new());
        for _ in 0..options.rounds.unwrap_or(7) {
            let line = runtime.block_on(w1::step_overhead(n, false, options.keys, None))?;
            plain.push(line["us_per_step"].as_f64().unwrap_or(f64::NAN));
            let line = runtime.block_on(w1::with_retry(n))?;
            guarded.push(line["us_per_step"].as_f64().unwrap_or(f64::NAN));
        }
        let (plain, guarded) = (median(&plain), median(&guarded));
        report(json!({
            "workload": "w1-retry",
            "n": n,
            "rounds": options.rounds.unwrap_or(7),
            "us_per_step": guarded,
            "w1_us_per_step": plain,
            "ratio_to_w1": guarded / plain,
        }));
        ran = true;
    }
    if all || options.workload == "update" {
        report(w1::one_update(options.n.unwrap_or(10_000)));
        ran = true;
    }
    let durability = if options.durable {
        Durability::Full
    } else {
        Durability::Normal
    };
    if all || options.workload == "floor" {
        report(w2::floor(
            dir.path(),
            options.n.unwrap_or(2_000),
            durability,
        )?);
        ran = true;
    }
    for (name, big) in [("w2", false), ("w2b", true)] {
        let postgres = options
            .db
            .as_deref()
            .filter(|db| db.starts_with("postgres://") || db.starts_with("postgresql://"));
        if let (Some(url), true) = (postgres, all || options.workload == name) {
            report(runtime.block_on(w2_on_postgres(
                url,
                options.n.unwrap_or(2_000),
                big,
                options.rounds.unwrap_or(5),
            ))?);
            ran = true;
        } else if all || options.workload == name {
            // Rounds of the floor then the workload, in this process, so that the ratio
            // is fair on a machine whose speed drifts; the medians are reported.
            let n = options.n.unwrap_or(2_000);
            let mut floors = Vec::new();
            let mut lines = Vec::new();
            for _ in 0..options.rounds.unwrap_or(5) {
                let floor = w2::floor(dir.path(), n, durability)?;
                floors.push(floor["us_per_commit"].as_f64().unwrap_or(f64::NAN));
                lines.push(runtime.block_on(w2::checkpointed(
                    dir.path(),
                    n,
                    big,
                    durability,
                    options.track,
                ))?);
            }
            let per_step: Vec<f64> = lines
                .iter()
                .map(|l| l["us_per_step"].as_f64().unwrap_or(f64::NAN))
                .collect();
            let ratios: Vec<f64> = per_step.iter().zip(&floors).map(|(w, f)| w / f).collect();
            let mut line = lines.swap_remove(0);
            line["rounds"] = json!(floors.len());
            line["us_per_step"] = json!(median(&per_step));
            line["floor_us_per_commit"] = json!(median(&floors));
            line["ratio_to_floor"] = json!(median(&per_step) / median(&floors));
            line["round_ratios"] = json!(ratios);
            report(line);
            ran = true;
        }
    }
    if all || options.workload == "concurrent" {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let n = options.n.unwrap_or(200);
        match options
            .db
            .as_deref()
            .filter(|db| db.starts_with("postgres"))
        {
            Some(url) => report(rt.block_on(w2_postgres::concurrent(url, 100, n))?),
            None => report(rt.block_on(w2::concurrent(dir.path(), 100, n))?),
        }
        ran = true;
    }
    if all || options.workload == "w3-retry" {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        report(rt.block_on(w3::fan_out_with_failures(options.n.unwrap_or(1000) as usize))?);
        ran = true;
    }
    if all || options.workload == "w3" {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let n = options.n.unwrap_or(1_000) as usize;
        let url = options
            .db
            .as_deref()
            .filter(|db| db.starts_with("postgres"));
        let persister: Option<Arc<dyn Persister>> = match (options.persist, url) {
            (false, _) => None,
            (true, Some(url)) => Some(Arc::new(
                rt.block_on(burr_postgres::PostgresPersister::connect(url))?,
            )),
            (true, None) => Some(Arc::new(SqlitePersister::open(dir.path().join("w3.db"))?)),
        };
        let mut line = rt.block_on(w3::fan_out(n, persister))?;
        if options.persist && url.is_none() {
            line["db_bytes"] = json!(w2::settled_bytes(&dir.path().join("w3.db")));
        }
        if let (true, Some(_)) = (options.persist, url) {
            line["backend"] = json!("postgres");
        }
        let peak = peak_rss_kb();
        line["peak_rss_kb"] = json!(peak);
        line["peak_rss_mb"] = json!(peak.map(|kb| kb as f64 / 1024.0));
        report(line);
        ran = true;
    }
    if options.workload == "w4" && options.in_process {
        report(w4::resume_in_process(dir.path(), n(5) as u32)?);
        ran = true;
    } else if all || options.workload == "w4" {
        report(runtime.block_on(w4::resume(dir.path(), options.n.unwrap_or(5) as u32))?);
        ran = true;
    }
    if options.workload == "http-server" {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let db = options.db.as_deref().ok_or("http-server needs --db")?;
        rt.block_on(http::server_process(std::path::Path::new(db)))?;
        return Ok(());
    }
    for name in ["http-submit", "http-sse", "http-runs-page"] {
        if options.workload != name && !(all && name != "http-runs-page") {
            continue;
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        report(rt.block_on(async {
            match name {
                "http-submit" => http::submit(dir.path(), options.n.unwrap_or(10)).await,
                "http-sse" => http::sse(dir.path(), options.n.unwrap_or(1000) as usize).await,
                _ => http::runs_page(dir.path(), options.n.unwrap_or(100_000) as usize).await,
            }
        })?);
        ran = true;
    }
    if options.workload == "queue-worker" {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let db = options.db.as_deref().ok_or("queue-worker needs --db")?;
        rt.block_on(w5::worker_process(
            std::path::Path::new(db),
            options.n.unwrap_or(64) as usize,
        ))?;
        return Ok(());
    }
    if all || options.workload == "w5" {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        report(rt.block_on(w5::throughput(
            dir.path(),
            options.db.as_deref(),
            options.n.unwrap_or(10_000),
            options.workers,
        ))?);
        ran = true;
    }
    if all || options.workload == "w6" {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        report(rt.block_on(w5::dispatch(
            dir.path(),
            options.db.as_deref(),
            options.n.unwrap_or(200),
        ))?);
        ran = true;
    }
    if options.workload == "claim-cost" {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let small = rt.block_on(w5::claim_cost(dir.path(), 1_000))?;
        let big = rt.block_on(w5::claim_cost(dir.path(), options.n.unwrap_or(1_000_000)))?;
        let ratio = big["claim_us_median"].as_f64().unwrap_or(f64::NAN)
            / small["claim_us_median"].as_f64().unwrap_or(f64::NAN);
        report(json!({"workload": "claim-cost", "small": small, "big": big, "ratio": ratio}));
        ran = true;
    }
    if all || options.workload == "fingerprint" {
        report(versions::fingerprint(
            options.n.unwrap_or(1_000) as usize,
            options.rounds.unwrap_or(101),
        ));
        ran = true;
    }
    if all || options.workload == "step-cache" {
        report(runtime.block_on(versions::cache_hit(dir.path(), options.n.unwrap_or(500)))?);
        ran = true;
    }
    if !ran {
        return Err(format!("unknown workload `{}`", options.workload).into());
    }
    Ok(())
}

/// W2 / W2b on the PostgreSQL database at `url`: rounds of the workload, each step
/// interleaved with a commit of the floor on the same server. The medians of the rounds'
/// figures; `ratio_to_floor` is the median of the rounds' ratios (each measured under the
/// same disk conditions).
async fn w2_on_postgres(
    url: &str,
    n: u64,
    big: bool,
    rounds: usize,
) -> Result<Value, Box<dyn std::error::Error>> {
    let client = w2_postgres::connect(url).await?;
    let (synchronous_commit, fsync) = w2_postgres::durability(&client).await?;
    let persister = Arc::new(burr_postgres::PostgresPersister::connect(url).await?);
    let mut lines = Vec::new();
    for round in 0..rounds {
        lines.push(w2_postgres::round(&persister, &client, n, big, round).await?);
    }
    let figure = |name: &str| -> Vec<f64> {
        lines
            .iter()
            .map(|l| l[name].as_f64().unwrap_or(f64::NAN))
            .collect()
    };
    let (per_step, floors) = (figure("us_per_step"), figure("floor_us_per_commit"));
    let ratios: Vec<f64> = per_step.iter().zip(&floors).map(|(w, f)| w / f).collect();
    let mut line = lines.swap_remove(0);
    line["database"] = json!(persister.database());
    line["durability"] = json!(format!(
        "synchronous_commit={synchronous_commit}, fsync={fsync}"
    ));
    line["rounds"] = json!(rounds);
    line["interleaved"] = json!("step by step");
    line["us_per_step"] = json!(median(&per_step));
    line["floor_us_per_commit"] = json!(median(&floors));
    line["ratio_to_floor"] = json!(median(&ratios));
    line["round_ratios"] = json!(ratios);
    Ok(line)
}

/// The median of `values` (the mean of the middle two for an even count).
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn report(mut line: Value) {
    if let Some(obj) = line.as_object_mut() {
        obj.entry("machine_cores")
            .or_insert(json!(std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)));
    }
    println!("{line}");
}

/// The process's peak resident memory, from /proc (Linux), in KiB.
fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
