//! Schemathesis (PyPI) against the server's OpenAPI document on loopback: generated and
//! mutated requests to every operation but the event streams (which never end). No
//! response may be a 5xx, and every response must match the document (status codes,
//! content types, headers, bodies); requests that break the document must be refused.
//!
//! `scripts/test.sh` installs schemathesis (scripts/schemathesis-venv.sh) and sets
//! `BURR_SCHEMATHESIS` to its `st` command; without it this test fails, saying so.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use burr_server::http::{Server, ServerOptions};
use burr_server::{Registry, Runs, SqliteRunQueue, Submission, Worker};
use burr_tests::runs_kinds::Steps;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_response_off_the_document() {
    let st = std::env::var("BURR_SCHEMATHESIS").unwrap_or_else(|_| {
        panic!(
            "BURR_SCHEMATHESIS is not set: run `export BURR_SCHEMATHESIS=$(scripts/schemathesis-venv.sh)` \
             (it installs schemathesis from PyPI), or run scripts/test.sh"
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("burr.db");
    let queue = SqliteRunQueue::open(&db).unwrap();
    let registry = Arc::new(Registry::new().register(Steps::default()));
    let runs = Runs::new(Arc::new(queue.clone()), Arc::clone(&registry));
    let tracker = burr_tracker::Tracker::open(&db).unwrap();
    let worker = Worker::new(Arc::new(queue.clone()), queue.persister(), registry)
        .with_tracker(tracker.hook());
    let (stop_worker, worker_stopped) = tokio::sync::oneshot::channel::<()>();
    let working = tokio::spawn(worker.run(async {
        let _ = worker_stopped.await;
    }));
    // Runs with steps to inspect, one of them failed.
    for (id, inputs) in [
        ("done", json!({"steps": 3})),
        ("broken", json!({"steps": 3, "fail_at": 2})),
    ] {
        let submitted = runs
            .submit(Submission::new("steps", inputs).run_id(id))
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(20), runs.wait(&submitted.run.id))
            .await
            .unwrap()
            .unwrap();
    }
    let bound = Server::with_runs(&db, runs)
        .unwrap()
        .with_options(ServerOptions {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..ServerOptions::default()
        })
        .bind()
        .await
        .unwrap();
    let base = format!("http://{}", bound.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(bound.serve(async {
        let _ = stopped.await;
    }));

    let workdir = dir.path().to_owned();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(&st)
            .current_dir(&workdir)
            .args(["run", &format!("{base}/v1/openapi.json")])
            // Every check but "a schema-valid request is accepted": a submission of an
            // unknown kind, or with inputs its kind refuses, matches the document (which
            // cannot know the kinds' inputs) and is rightly refused with 422.
            .args([
                "--checks",
                "all",
                "--exclude-checks",
                "positive_data_acceptance",
            ])
            .args(["--exclude-path-regex", "events$"])
            .args([
                "--max-time",
                "45",
                "--request-timeout",
                "10",
                "--workers",
                "2",
            ])
            .args(["--seed", "20261204"])
            .env("NO_COLOR", "1")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {st}: {e}"))
    })
    .await
    .unwrap();
    let _ = stop.send(());
    let _ = stop_worker.send(());
    served.await.unwrap().unwrap();
    working.await.unwrap().unwrap();
    let printed = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{printed}"
    );
    assert!(
        printed.contains("Tested: 15"),
        "every operation was tested:\n{printed}"
    );
}
