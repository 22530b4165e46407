//! What tracking costs per step: W1 (`increment` while `count < 10000`, then `done`:
//! 10,001 steps) with and without a [`Tracker`], with and without a SQLite persister in
//! the same file. `cargo run --release -p burr-tracker --example overhead`.

use std::sync::Arc;
use std::time::Instant;

use burr_core::actions::action_sync;
use burr_core::persistence::SqlitePersister;
use burr_core::RunOptions;
use burr_core::{default, expr, ApplicationBuilder, State};
use burr_tracker::Tracker;

const N: u64 = 10_000;

/// Microseconds per step of one W1 run, and of the run plus the tracker's flush.
async fn w1(dir: &std::path::Path, run: usize, track: bool, persist: bool) -> (f64, f64) {
    let path = dir.join(format!("w1-{run}.db"));
    let increment = action_sync("increment", |s: State, _, _| s.increment("count", 1))
        .reads(["count"])
        .writes(["count"]);
    let done = action_sync("done", |s: State, _, _| s).reads(["count"]);
    let mut builder = ApplicationBuilder::new()
        .with_actions([increment, done])
        .with_transitions([
            ("increment", "increment", expr(&format!("count < {N}"))),
            ("increment", "done", default()),
        ])
        .with_state(State::new().update("count", 0))
        .with_entrypoint("increment");
    let tracker = track.then(|| Tracker::open(&path).expect("tracker"));
    if let Some(tracker) = &tracker {
        builder = builder.with_tracker(tracker.hook());
    }
    if persist {
        builder = builder
            .with_state_persister(Arc::new(SqlitePersister::open(&path).expect("persister")));
    }
    let mut app = builder.build().await.expect("builds");
    let start = Instant::now();
    app.run(RunOptions::new().halt_after(["done"]))
        .await
        .expect("runs");
    let ran = start.elapsed();
    if let Some(tracker) = &tracker {
        tracker.flush().expect("flushes");
    }
    let flushed = start.elapsed();
    let steps = (N + 1) as f64;
    (
        ran.as_secs_f64() * 1e6 / steps,
        flushed.as_secs_f64() * 1e6 / steps,
    )
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut run = 0;
    for persist in [false, true] {
        let (mut plain, mut tracked, mut tracked_flushed) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..5 {
            run += 1;
            plain.push(w1(dir.path(), run, false, persist).await.0);
            run += 1;
            let (ran, flushed) = w1(dir.path(), run, true, persist).await;
            tracked.push(ran);
            tracked_flushed.push(flushed);
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (p, t, f) = (
            median(&mut plain),
            median(&mut tracked),
            median(&mut tracked_flushed),
        );
        println!(
            "w1{}: {p:.2} us/step untracked, {t:.2} us/step tracked (+{:.2}), {f:.2} us/step including the final flush (+{:.2})",
            if persist { " + sqlite persister" } else { "" },
            t - p,
            f - p
        );
    }
}
