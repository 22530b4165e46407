//! W4: the counter (W2 with N = 1,000) in its own process, SIGKILLed at a random step; a
//! fresh process resumes. Steps lost, and time from spawn to the state loaded.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use burr_core::persistence::{History, SqlitePersister, StepStatus};
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
