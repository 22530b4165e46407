//! W4: the counter (W2 with N = 1,000) in its own process, SIGKILLed at a random step; a
//! fresh process resumes. Steps lost, and time from spawn to the state loaded.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use burr_core::actions::action_sync;
use burr_core::persistence::{History, Persister, SqlitePersister, StepStatus};
use burr_core::{default, expr, ApplicationBuilder, Inputs, State};
use serde_json::{json, Value};

fn counter_binary() -> Result<std::path::PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let path = exe.with_file_name("example-counter");
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "{} not found: build it first with `cargo build --release -p example-counter`",
            path.display()
        ))
    }
}

/// Run W4 `rounds` times on fresh files in `dir`.
pub async fn resume(dir: &Path, rounds: u32) -> Result<Value, Box<dyn std::error::Error>> {
    let counter = counter_binary()?;
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)?
        .subsec_nanos() as u64;
    let mut lost = 0usize;
    let mut load_ms = Vec::new();
    for round in 0..rounds {
        let db = dir.join(format!("w4-{round}.db"));
        let args = |cmd: &mut Command| {
            cmd.args([
                "--db",
                db.to_str().unwrap_or_default(),
                "--app-id",
                "w4",
                "--steps",
                "1000",
            ]);
        };
        // Kill the first run at a random moment while it counts.
        let mut first = Command::new(&counter);
        args(&mut first);
        let mut child = first.stdout(Stdio::piped()).stderr(Stdio::null()).spawn()?;
        let kill_after = 5 + (seed.wrapping_mul(round as u64 + 1) % 40);
        std::thread::sleep(Duration::from_millis(kill_after));
        child.kill()?;
        let reported: Vec<u64> = BufReader::new(child.stdout.take().ok_or("no stdout")?)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| l.split_whitespace().next().and_then(|s| s.parse().ok()))
            .collect();
        child.wait()?;

        // Resume, timing spawn -> "loaded" on stderr.
        let mut second = Command::new(&counter);
        args(&mut second);
        let spawned = Instant::now();
        let mut child = second
            .arg("--json")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let mut stderr = BufReader::new(child.stderr.take().ok_or("no stderr")?);
        let mut line = String::new();
        while stderr.read_line(&mut line)? > 0 && !line.starts_with("loaded") {
            line.clear();
        }
        load_ms.push(spawned.elapsed().as_secs_f64() * 1e3);
        child.wait()?;

        let persister = SqlitePersister::open(&db)?;
        let rows = persister.list_checkpoints(None, "w4").await?;
        let completed: std::collections::HashSet<u64> = rows
            .iter()
            .filter(|r| r.status == StepStatus::Completed)
            .map(|r| r.sequence_id)
            .collect();
        lost += reported
            .iter()
            .filter(|seq| !completed.contains(seq))
            .count();
    }
    load_ms.sort_by(f64::total_cmp);
    Ok(json!({
        "workload": "w4",
        "rounds": rounds,
        "steps_lost": lost,
        "spawn_to_loaded_ms_median": load_ms[load_ms.len() / 2],
        "spawn_to_loaded_ms_max": load_ms.last(),
    }))
}

/// The counter of W4 (example-counter's graph), on `persister`, app id `w4`, resuming
/// what is stored.
fn counter_builder(n: u64, persister: Arc<dyn Persister>) -> burr_core::ApplicationBuilder {
    let increment = action_sync("increment", |s: State, _, _| s.increment("count", 1))
        .reads(["count"])
        .writes(["count"]);
    let done = action_sync("done", |s: State, _, _| s).reads(["count"]);
    ApplicationBuilder::new()
        .with_actions([increment, done])
        .with_transitions([
            ("increment", "increment", expr(&format!("count < {n}"))),
            ("increment", "done", default()),
        ])
        .with_state(State::new().update("count", 0))
        .with_entrypoint("increment")
        .with_app_id("w4")
        .with_state_persister(Arc::clone(&persister))
        .initialize_from(persister)
}

/// `burr-bench w4-victim --db PATH --n N`: count to N on `db`, printing each completed
/// step's sequence id (W4's process to kill).
pub fn victim(db: &Path, n: u64) -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let persister: Arc<dyn Persister> = Arc::new(SqlitePersister::open(db)?);
        let mut app = counter_builder(n, persister).build().await?;
        let mut out = std::io::stdout().lock();
        while let Some(step) = app.step(Inputs::new()).await? {
            writeln!(out, "{}", step.sequence_id)?;
            out.flush()?;
        }
        Ok(())
    })
}

/// `burr-bench w4-resume --db PATH --n N`: resume the counter on `db`, timed from
/// `started` (the top of `main`) to the application loaded: a multi-threaded runtime
/// started (as `#[tokio::main]`), the SQLite file opened, the lease taken, the last
/// checkpoint loaded. Then it counts to the end.
pub fn resume_here(
    started: Instant,
    db: &Path,
    n: u64,
) -> Result<Value, Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let runtime_ms = started.elapsed().as_secs_f64() * 1e3;
    runtime.block_on(async {
        let persister: Arc<dyn Persister> = Arc::new(SqlitePersister::open(db)?);
        let open_ms = started.elapsed().as_secs_f64() * 1e3;
        let mut app = counter_builder(n, persister).build().await?;
        let loaded_ms = started.elapsed().as_secs_f64() * 1e3;
        let loaded_at = app.sequence_id();
        while app.step(Inputs::new()).await?.is_some() {}
        let count = app.state().get::<u64>("count")?;
        if count != n {
            return Err(format!("the resumed counter ended at {count}, not {n}").into());
        }
        Ok(json!({
            "workload": "w4-resume",
            "loaded_at_sequence_id": loaded_at,
            "runtime_ms": runtime_ms,
            "open_ms": open_ms - runtime_ms,
            "build_ms": loaded_ms - open_ms,
            "ms_to_loaded": loaded_ms,
        }))
    })
}

/// W4 in process: `rounds` times on fresh files in `dir`, this binary counts to 1,000
/// (`w4-victim`), is SIGKILLed after a random number of steps, and a fresh process of it
/// (`w4-resume`) times itself from the top of `main` to the state loaded. Steps lost, and
/// the medians.
pub fn resume_in_process(dir: &Path, rounds: u32) -> Result<Value, Box<dyn std::error::Error>> {
    let exe = std::env::current_exe()?;
    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)?
        .subsec_nanos() as u64;
    let n = 1_000u64;
    let mut lost = 0usize;
    let mut lines = Vec::new();
    for round in 0..rounds {
        let db = dir.join(format!("w4-in-process-{round}.db"));
        let db_arg = db.to_str().ok_or("the database path is not UTF-8")?;
        let mut child = Command::new(&exe)
            .args(["w4-victim", "--db", db_arg, "--n", &n.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let kill_at = 1 + seed.wrapping_mul(2 * u64::from(round) + 1) % (n - 10);
        let mut reported = Vec::new();
        let mut stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut line = String::new();
        while stdout.read_line(&mut line)? > 0 {
            if let Ok(seq) = line.trim().parse::<u64>() {
                reported.push(seq);
                if seq == kill_at {
                    child.kill()?;
                }
            }
            line.clear();
        }
        child.wait()?;

        let output = Command::new(&exe)
            .args(["w4-resume", "--db", db_arg, "--n", &n.to_string()])
            .stderr(Stdio::inherit())
            .output()?;
        if !output.status.success() {
            return Err("the resuming process failed".into());
        }
        let resumed: Value = serde_json::from_slice(&output.stdout)?;

        let rt = tokio::runtime::Builder::new_current_thread().build()?;
        let persister = SqlitePersister::open(&db)?;
        let rows = rt.block_on(persister.list_checkpoints(None, "w4"))?;
        let completed: std::collections::HashSet<u64> = rows
            .iter()
            .filter(|r| r.status == StepStatus::Completed)
            .map(|r| r.sequence_id)
            .collect();
        lost += reported
            .iter()
            .filter(|seq| !completed.contains(seq))
            .count();
        lines.push(resumed);
    }
    let field = |name: &str| -> Vec<f64> {
        lines
            .iter()
            .map(|l| l[name].as_f64().unwrap_or(f64::NAN))
            .collect()
    };
    Ok(json!({
        "workload": "w4-in-process",
        "rounds": rounds,
        "steps_lost": lost,
        "ms_to_loaded": super::median(&field("ms_to_loaded")),
        "ms_to_loaded_max": field("ms_to_loaded").into_iter().fold(f64::NAN, f64::max),
        "runtime_ms": super::median(&field("runtime_ms")),
        "open_ms": super::median(&field("open_ms")),
        "build_ms": super::median(&field("build_ms")),
    }))
}
