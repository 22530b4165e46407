//! Worker processes of the `runs-app` binary for the tests that kill and stop them. The
//! binary's path is the test's `env!("CARGO_BIN_EXE_runs-app")` (known only to
//! integration tests).

use std::collections::HashSet;
use std::ffi::OsStr;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A worker process of the `runs-app` binary at `app` on `db` (a SQLite file or a
/// PostgreSQL URL), with a lease of `lease_ttl` (`1s`, `60s`...), logging the steps it
/// runs to `log`.
pub fn worker_with_ttl(
    app: &str,
    db: impl AsRef<OsStr>,
    log: impl AsRef<OsStr>,
    lease_ttl: &str,
    extra: &[&str],
) -> Child {
    Command::new(app)
        .args(["--db"])
        .arg(db)
        .args([
            "worker",
            "--concurrency",
            "16",
            "--lease-ttl",
            lease_ttl,
            "--grace",
            "10s",
            "--no-tracker",
        ])
        .args(extra)
        .env("RUNS_LOG", log)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map(watch_ready)
        .expect("start a worker process")
}

/// The pids of the workers that said they are ready (their SIGTERM handler is in place:
/// a SIGTERM before it would kill the process, not drain it).
fn ready() -> &'static Mutex<HashSet<u32>> {
    static READY: OnceLock<Mutex<HashSet<u32>>> = OnceLock::new();
    READY.get_or_init(Default::default)
}

/// Read the worker's standard error (so it never blocks on a full pipe) and note when it
/// says it is ready.
fn watch_ready(mut child: Child) -> Child {
    let (pid, stderr) = (child.id(), child.stderr.take());
    if let Some(stderr) = stderr {
        std::thread::spawn(move || {
            for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
                let Ok(line) = line else { return };
                if line.starts_with("worker ready") {
                    ready()
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(pid);
                }
            }
        });
    }
    child
}

/// Send SIGTERM to a worker once it is ready (panics if it never gets ready).
pub fn sigterm(child: &Child) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains(&child.id())
    {
        assert!(
            Instant::now() < deadline,
            "worker {} never got ready",
            child.id()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

/// Wait until the run `run_id` of `queue` is `status`, looking every 20 ms; how long it
/// took (panics after `limit`).
pub async fn until_status(
    queue: &dyn burr_server::RunQueue,
    run_id: &str,
    status: burr_server::RunStatus,
    limit: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        let run = queue.get(run_id).await.expect("read the run");
        if run.status == status {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "run {run_id} is {:?}, not {status:?}, after {limit:?}",
            run.status
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
