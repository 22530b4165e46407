//! Several machines on one PostgreSQL database: worker processes of the `runs-app` binary
//! (stand-ins for machines) share one throwaway server while random SIGKILLs hit them.
//!
//! `BURR_PG_KILL_RUNS` sets how many fan-out runs the kill test submits (default 2,000,
//! the figure).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use burr_postgres::testing::TestServer;
use burr_server::{
    EventKind, PgRunQueue, Registry, Run, RunFilter, RunQueue, RunStatus, Runs, Submission,
};
use burr_tests::processes::{sigterm, worker_with_ttl};
use burr_tests::runs_kinds::Fan;
use futures::StreamExt;
use serde_json::json;

const APP: &str = env!("CARGO_BIN_EXE_runs-app");

/// Children per run.
const CHILDREN: usize = 10;
/// Worker processes.
const WORKERS: usize = 4;
/// SIGKILLs.
const KILLS: usize = 20;
/// The priorities runs are submitted with, in turn.
const PRIORITIES: [i32; 4] = [100, 0, -50, -100];

fn runs_wanted() -> usize {
    std::env::var("BURR_PG_KILL_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

/// A worker process on `url`. Its lease is long enough that a live worker under load
/// keeps it; a killed worker's runs are taken back at once by `reap` (same machine).
fn worker(url: &str, log: &Path) -> Child {
    worker_with_ttl(APP, url, log, "10s", &[])
}

/// A small deterministic generator (no crate needed for a few numbers).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

/// How many runs are finished (any status).
async fn finished(queue: &PgRunQueue) -> u64 {
    let backlog = queue.backlog().await.unwrap();
    backlog
        .rows
        .iter()
        .filter(|r| r.status.is_finished())
        .map(|r| r.count)
        .sum()
}

/// One execution of a logged action: the process and the run's attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Execution {
    pid: u32,
    attempt: u32,
}

/// What the log says ran: per (run, child app id) the child's executions, and per run
/// its `finish` executions, each in the order they were logged.
#[derive(Default)]
struct Executions {
    children: HashMap<(String, String), Vec<Execution>>,
    finishes: HashMap<String, Vec<Execution>>,
}

fn executions(log: &Path) -> Executions {
    let mut out = Executions::default();
    for line in std::fs::read_to_string(log).unwrap_or_default().lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        match parts.as_slice() {
            ["child", run, child, pid, attempt] => out
                .children
                .entry(((*run).to_owned(), (*child).to_owned()))
                .or_default()
                .push(Execution {
                    pid: pid.parse().unwrap(),
                    attempt: attempt.parse().unwrap(),
                }),
            ["finish", run, pid, attempt] => out
                .finishes
                .entry((*run).to_owned())
                .or_default()
                .push(Execution {
                    pid: pid.parse().unwrap(),
                    attempt: attempt.parse().unwrap(),
                }),
            _ => panic!("a line the fan kind does not write: {line:?}"),
        }
    }
    out
}

/// Every stored event, oldest first.
async fn all_events(queue: &PgRunQueue) -> Vec<burr_server::RunEvent> {
    let mut out = Vec::new();
    loop {
        let after = out.last().map_or(0, |e: &burr_server::RunEvent| e.id);
        let page = queue.events(after, None, 10_000).await.unwrap();
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

fn median(mut values: Vec<i64>) -> i64 {
    values.sort_unstable();
    values[values.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_outs_across_four_worker_processes_survive_twenty_sigkills() {
    let total = runs_wanted();
    let url = TestServer::shared().fresh_database();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let queue = PgRunQueue::connect(&url).await.unwrap();
    // A run may be hit by every kill: allow as many attempts as kills, so that "every run
    // succeeds" tests resumption, not luck.
    let fan = Fan {
        log: None,
        max_attempts: Some(KILLS as u32 + 1),
    };
    let runs = Runs::new(
        Arc::new(queue.clone()),
        Arc::new(Registry::new().register(fan)),
    );
    let submission = |i: usize| {
        Submission::new("fan", json!({"children": CHILDREN, "child_ms": 2}))
            .idempotency_key(format!("meeting-{i}"))
            .priority(PRIORITIES[i % PRIORITIES.len()])
            .flow(format!("flow-{}", i % 50))
    };
    let started = Instant::now();
    let submitted: Vec<Run> = futures::stream::iter(0..total)
        .map(|i| {
            let runs = runs.clone();
            async move { runs.submit(submission(i)).await.unwrap().run }
        })
        .buffered(8)
        .collect()
        .await;
    // The same keys again give the same runs.
    for i in [0, total / 2, total - 1] {
        let again = runs.submit(submission(i)).await.unwrap();
        assert_eq!(again.run.id, submitted[i].id);
    }
    eprintln!("submitted {total} runs in {:?}", started.elapsed());

    let mut workers: Vec<Child> = (0..WORKERS).map(|_| worker(&url, &log)).collect();
    let mut killed: HashSet<u32> = HashSet::new();
    let mut random = Lcg(16);
    // Spread the kills over the first part of the work: one every 50-250 ms (about 3 s
    // in all, while the work takes several times that).
    for _ in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(50 + random.next(200))).await;
        let victim = usize::try_from(random.next(WORKERS as u64)).unwrap();
        killed.insert(workers[victim].id());
        workers[victim].kill().unwrap();
        workers[victim].wait().unwrap();
        workers[victim] = worker(&url, &log);
    }
    let kills_done = finished(&queue).await;
    eprintln!(
        "{KILLS} kills done after {:?}, {kills_done} runs finished",
        started.elapsed()
    );
    let limit = Duration::from_secs(170);
    while finished(&queue).await < total as u64 {
        assert!(
            started.elapsed() < limit,
            "not finished after {limit:?}: {:?}",
            queue.backlog().await.unwrap()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("all {total} runs finished after {:?}", started.elapsed());
    for w in &workers {
        sigterm(w);
    }
    for mut w in workers {
        assert!(w.wait().unwrap().success(), "a drained worker exits 0");
    }
    assert!(
        kills_done < total as u64 / 2,
        "the kills hit the work while it ran ({kills_done} of {total} runs had finished)"
    );

    // Every run succeeded, once, and holds no lease.
    let all = queue
        .list(&RunFilter {
            limit: Some(total as u32 + 10),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), total);
    let not_succeeded: Vec<_> = all
        .iter()
        .filter(|r| r.status != RunStatus::Succeeded)
        .map(|r| (&r.id, r.status, r.attempt, &r.error))
        .collect();
    assert!(
        not_succeeded.is_empty(),
        "every run succeeded: {not_succeeded:?}"
    );
    assert!(all
        .iter()
        .all(|r| r.lease_holder.is_none() && r.lease_expires_at_us.is_none()));
    let events = all_events(&queue).await;
    let mut finishes: HashMap<&str, usize> = HashMap::new();
    for event in &events {
        if matches!(event.kind, EventKind::Finished { .. }) {
            *finishes.entry(event.run_id.as_str()).or_default() += 1;
        }
    }
    for run in &all {
        assert_eq!(finishes.get(run.id.as_str()), Some(&1), "run {}", run.id);
    }

    // No run was starved by priority: the lowest finished too (above), and the order of
    // first claims follows priority.
    let by_priority = |p: i32| {
        median(
            all.iter()
                .filter(|r| r.priority == p)
                .map(|r| r.started_at_us.unwrap())
                .collect(),
        )
    };
    let medians: Vec<i64> = PRIORITIES.iter().map(|&p| by_priority(p)).collect();
    assert!(
        medians.windows(2).all(|w| w[0] <= w[1]),
        "higher priorities start first: medians {medians:?} for {PRIORITIES:?}"
    );

    // Side effects: every child ran; a child (or a run's `finish`) ran again only after
    // the process that ran it was killed (its checkpoint had not committed); a finished
    // one never ran again.
    let ran = executions(&log);
    assert_eq!(ran.children.len(), total * CHILDREN, "every child ran");
    assert_eq!(ran.finishes.len(), total, "every run's `finish` ran");
    let mut repeated = 0;
    for (what, runs) in ran
        .children
        .iter()
        .map(|((run, child), e)| (format!("child {child} of {run}"), e))
        .chain(
            ran.finishes
                .iter()
                .map(|(run, e)| (format!("finish of {run}"), e)),
        )
    {
        let (last, before) = runs.split_last().unwrap();
        for earlier in before {
            assert!(
                killed.contains(&earlier.pid) && earlier.pid != last.pid,
                "{what} ran again after {earlier:?}, whose process was not killed: {runs:?}"
            );
            assert!(earlier.attempt < last.attempt, "{what}: {runs:?}");
        }
        repeated += before.len();
    }
    eprintln!("{repeated} executions were repeated after the {KILLS} kills");

    // A run whose worker died part-way through its fan-out was finished by another: some
    // of its children ran in a killed process, its `finish` in another one, and the
    // children the killed one had finished were not run again.
    let mut children_of: HashMap<&str, Vec<&Vec<Execution>>> = HashMap::new();
    for ((run, _), e) in &ran.children {
        children_of.entry(run.as_str()).or_default().push(e);
    }
    let taken_over_mid_fan_out = all
        .iter()
        .filter(|run| {
            let children = &children_of[run.id.as_str()];
            let finisher = ran.finishes[&run.id].last().unwrap();
            let first = |e: &&Vec<Execution>| e[0].clone();
            let dead_children = children
                .iter()
                .map(first)
                .filter(|e| killed.contains(&e.pid) && e.pid != finisher.pid)
                .count();
            let done_by_finisher = children
                .iter()
                .filter(|e| e.last().unwrap().pid == finisher.pid && e.len() == 1)
                .count();
            dead_children > 0 && done_by_finisher > 0
        })
        .count();
    assert!(
        taken_over_mid_fan_out > 0,
        "some run's worker died mid-fan-out and another finished it"
    );
    let taken_over = all.iter().filter(|r| r.attempt > 1).count();
    eprintln!("{taken_over} runs were taken over, {taken_over_mid_fan_out} of them mid-fan-out");
}
