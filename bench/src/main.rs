//! `burr-bench`: the peer workloads of `shared/peer-figures.md`, run against burr-rs.
//!
//! Each workload prints one JSON object per line. Run a release build:
//! `cargo run --release -p burr-bench -- w1`.

mod workloads;

use std::process::ExitCode;

const USAGE: &str =
    "usage: burr-bench <workload> [--n N] [--rounds R] [--durable] [--persist] [--track] [--db PATH|URL]
                  [--keys K] [--in-process] [--workers W]

workloads:
  w1        step overhead: increment while count < N (default 10000), then done
            (--track: w1 and w2 record every step with the tracker; --keys K: K more
            keys in state that no step touches)
  w1-big    w1 with a 1,000,000-character value in state that no step touches
  w1-retry  w1 with a retry policy and a timeout on every action; R rounds (default 7)
            interleaved with plain w1, medians and their ratio reported
  update    one update on a state of N keys (default 10000), ns per update
  floor     raw rusqlite INSERT+COMMIT per row, WAL (--durable: synchronous=FULL)
  w2        checkpointed counter, N = 2000, SQLite (--durable: fsync each commit);
            R rounds (default 5) of the floor then w2, medians reported;
            --db postgres://...: on PostgreSQL, each step interleaved with a raw INSERT
            committed on the same server (synchronous_commit on); median of round ratios
  w2b       w2 with a 1,000,000-character value no step touches
  concurrent  100 apps of N steps (default 200) checkpointing at once, vs one after another
            (--db postgres://...: at once on PostgreSQL, with checkpoints per transaction)
  w3        fan-out: N children (default 1000) each returning a string's length
            (--persist: parent and children checkpoint to SQLite, children resumable;
            with --db postgres://...: to PostgreSQL)
  w3-retry  w3 where 5% of the children fail their first run and retry (N default 1000)
  w4        counter killed at a random step and resumed, N rounds (default 5);
            needs `cargo build --release -p example-counter`
            (--in-process: this binary counts and is killed, and a fresh process of it
            times itself from the top of main to the state loaded, `ms_to_loaded`)
  w5        queue throughput: N one-step runs (default 10000) submitted, then drained by
            one worker process with concurrency 64 (--db PATH: the database;
            --db postgres://...: on PostgreSQL; --workers W: W worker processes)
  w6        dispatch latency: submit -> first step started with an idle worker, N times
            (default 200), in process and across processes (--db PATH or postgres://...:
            woken by NOTIFY)
  fingerprint  the fingerprint of an N-action graph (default 1000), median of --rounds
  step-cache  a memoized step reading a 1 MB value served from the step cache, against
            a plain W2 step (N steps, default 500): `ratio_to_w2`
  claim-cost  claiming one run with 1,000 and with N (default 1,000,000) runs queued
  http-submit  POST /v1/runs for N seconds (default 10) with wrk, 64 connections:
            `requests_per_s` (every 201 a run stored); needs wrk
  http-sse  N SSE clients (default 1000) on one run's stream: the server's memory and
            delivery latency (`delivery_p99_ms`, `server_peak_mib`)
  http-runs-page  GET /v1/runs on a database of N runs (default 100,000), run by a
            worker: `first_page_ms` (not part of `all`)
  state-size  heap bytes of a State of 1, 4, 16 and 64 keys (a counting allocator, in
            the burr-state-size binary built beside this one; not part of `all`)
  all       every workload above (not claim-cost, state-size, http-runs-page)";

fn main() -> ExitCode {
    // W4 in process times its resume from here.
    let started = std::time::Instant::now();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("state-size") {
        return state_size();
    }
    match workloads::Options::parse(&args) {
        Ok(options) => match workloads::run(started, &options) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("burr-bench: {error}");
                ExitCode::FAILURE
            }
        },
        Err(message) => {
            eprintln!("burr-bench: {message}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// Run `burr-state-size`, the binary beside this one: it counts allocations with a global
/// allocator of its own, which would slow the timed workloads here.
fn state_size() -> ExitCode {
    let path = std::env::current_exe()
        .map(|exe| exe.with_file_name(format!("burr-state-size{}", std::env::consts::EXE_SUFFIX)));
    match path.and_then(|path| std::process::Command::new(path).status()) {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("burr-bench: cannot run burr-state-size (build it with `cargo build -p burr-bench`): {error}");
            ExitCode::FAILURE
        }
    }
}
