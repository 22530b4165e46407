//! The HTTP API over real HTTP on loopback, with a real worker on a real SQLite file:
//! submit, list with cursors, inspect, events with `Last-Event-ID`, cancel, rerun,
//! problem details naming what was wrong, tokens, a read-only server over a database
//! with no run queue, metrics and shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use burr_server::http::{ServeError, Server, ServerOptions};
use burr_server::metrics::Metrics;
use burr_server::{Registry, RunStatus, Runs, SqliteRunQueue, Worker, WorkerOptions};
use burr_tests::runs_kinds::Steps;
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::oneshot;

/// A server (and a worker) on a temporary database, stopped when dropped.
struct Running {
    _dir: tempfile::TempDir,
    db: PathBuf,
    base: String,
    runs: Runs,
    client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<Result<(), ServeError>>>,
    _worker: Option<oneshot::Sender<()>>,
}

impl Running {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Stop the server and wait until it returns.
    async fn shut_down(&mut self) -> Result<(), ServeError> {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(5), self.served.take().unwrap())
            .await
            .expect("the server drains within 5 s")
            .unwrap()
    }
}

async fn start(options: ServerOptions, worker: bool) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("burr.db");
    let queue = SqliteRunQueue::open(&db).unwrap();
    let registry = Arc::new(Registry::new().register(Steps::default()));
    let runs = Runs::new(Arc::new(queue.clone()), Arc::clone(&registry));
    let metrics = Metrics::new();
    let worker = worker.then(|| {
        let tracker = burr_tracker::Tracker::open(&db).unwrap();
        let worker = Worker::new(Arc::new(queue.clone()), queue.persister(), registry)
            .with_tracker(tracker.hook())
            .with_metrics(&metrics)
            .with_options(WorkerOptions {
                lease_ttl: Duration::from_secs(5),
                ..WorkerOptions::default()
            });
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = worker
                .run(async {
                    let _ = stopped.await;
                })
                .await;
            drop(tracker);
        });
        stop
    });
    let bound = Server::with_runs(&db, runs.clone())
        .unwrap()
        .with_metrics(metrics)
        .with_options(ServerOptions {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..options
        })
        .bind()
        .await
        .unwrap();
    let base = format!("http://{}", bound.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(bound.serve(async {
        let _ = stopped.await;
    }));
    Running {
        _dir: dir,
        db,
        base,
        runs,
        client: reqwest::Client::new(),
        stop: Some(stop),
        served: Some(served),
        _worker: worker,
    }
}

async fn wait_for(running: &Running, id: &str) -> burr_server::Run {
    tokio::time::timeout(Duration::from_secs(20), running.runs.wait(id))
        .await
        .expect("the run finishes")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_submitted_over_http_is_listed_and_inspected() {
    let running = start(ServerOptions::default(), true).await;
    let body =
        json!({"kind": "steps", "inputs": {"steps": 3}, "priority": 4, "idempotency_key": "k1"});
    let response = running
        .client
        .post(running.url("/v1/runs"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let run: Value = response.json().await.unwrap();
    let id = run["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/v1/runs/{id}"));
    assert_eq!(run["priority"], 4);
    // The same idempotency key: 200 with the same run.
    let (status, again) = running.post("/v1/runs", body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["id"], id.as_str());

    assert_eq!(wait_for(&running, &id).await.status, RunStatus::Succeeded);
    let (status, page) = running.get("/v1/runs").await;
    assert_eq!(status, StatusCode::OK);
    let listed = &page["runs"][0];
    assert_eq!(listed["id"], id.as_str());
    assert_eq!(listed["status"], "succeeded");
    assert_eq!(listed["kind"], "steps");
    assert_eq!(listed["source"], "run");

    let (status, one) = running.get(&location).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["run"]["status"], "succeeded");
    assert_eq!(one["app"]["status"], "completed");
    assert_eq!(one["app"]["steps"], 4);

    // The tracker writes in batches: its step times arrive a moment after the run ends.
    let mut steps = Value::Null;
    for _ in 0..100 {
        steps = running.get(&format!("/v1/runs/{id}/steps")).await.1;
        if steps[3]["duration_us"].is_i64() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let actions: Vec<&str> = steps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["work", "work", "work", "done"]);
    assert!(steps[0]["duration_us"].as_i64().unwrap() >= 0, "{steps}");

    let (_, state) = running
        .get(&format!("/v1/runs/{id}/state?sequence_id=1"))
        .await;
    assert_eq!(state["state"]["count"], 2);
    let (_, diff) = running.get(&format!("/v1/runs/{id}/diff?to=2")).await;
    assert_eq!(diff["from"], 1);
    assert_eq!(diff["changed"]["count"], json!({"from": 2, "to": 3}));
    let (_, graph) = running.get(&format!("/v1/runs/{id}/graph")).await;
    assert_eq!(graph["current"], "done");
    assert_eq!(graph["entrypoint"], "work");
    assert_eq!(graph["transitions"].as_array().unwrap().len(), 2);
    let (_, tree) = running.get(&format!("/v1/runs/{id}/children")).await;
    assert_eq!(tree["app_id"], id.as_str());
    assert_eq!(tree["children"], json!([]));

    // Metrics counted the run, its steps and their checkpoints.
    let metrics = running
        .client
        .get(running.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("burr_runs_started_total 1\n"), "{metrics}");
    assert!(
        metrics.contains("burr_runs_finished_total{status=\"succeeded\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("burr_step_duration_seconds_count 4\n"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("burr_checkpoint_seconds_count 0\n"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_problem_details_naming_what_was_wrong() {
    let running = start(
        ServerOptions {
            body_limit: 2048,
            ..ServerOptions::default()
        },
        false,
    )
    .await;
    let problem = |status: StatusCode, body: &Value, field: Option<&str>| {
        assert_eq!(body["status"], status.as_u16(), "{body}");
        assert!(body["type"]
            .as_str()
            .unwrap()
            .starts_with("urn:burr:problem:"));
        assert!(!body["detail"].as_str().unwrap().is_empty());
        assert_eq!(body["field"].as_str(), field, "{body}");
    };
    let (status, body) = running.post("/v1/runs", json!({"kind": "nope"})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    problem(status, &body, Some("kind"));
    assert!(
        body["detail"].as_str().unwrap().contains("steps"),
        "names the known kinds"
    );
    let (status, body) = running
        .post(
            "/v1/runs",
            json!({"kind": "steps", "inputs": {"steps": "three"}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    problem(status, &body, Some("inputs.steps"));
    let (status, body) = running
        .post("/v1/runs", json!({"kind": "steps", "priorty": 3}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["detail"].as_str().unwrap().contains("priorty"),
        "{body}"
    );
    let (status, body) = running
        .post("/v1/runs", json!({"kind": "steps", "priority": "high"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    problem(status, &body, Some("priority"));

    let raw = |body: &'static str, content_type: Option<&'static str>| {
        let mut request = running.client.post(running.url("/v1/runs")).body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        request.send()
    };
    let response = raw("{not json", Some("application/json")).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let response = raw("{}", None).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let big = json!({"kind": "steps", "inputs": {"steps": 1, "pad": "x".repeat(4096)}});
    let (status, body) = running.post("/v1/runs", big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    problem(status, &body, None);

    let (status, body) = running.get("/v1/runs/no-such-run").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["id"], "no-such-run");
    for (query, field) in [
        ("cursor=garbage", "cursor"),
        ("limit=0", "limit"),
        ("limit=ten", "limit"),
        ("status=done", "status"),
        ("colour=red", "colour"),
    ] {
        let (status, body) = running.get(&format!("/v1/runs?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        problem(status, &body, Some(field));
    }
    let (status, body) = running.post("/v1/runs/no-such-run/cancel", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _) = running.get("/v1/nothing-here").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let response = running
        .client
        .delete(running.url("/v1/runs"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    // Nothing was stored by any of them.
    assert_eq!(running.get("/v1/runs").await.1["runs"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_follow_the_cursor_without_gaps_or_repeats_and_filters_apply() {
    let running = start(ServerOptions::default(), false).await;
    for i in 0..23 {
        let flow = if i % 2 == 0 { "even" } else { "odd" };
        let (status, _) = running
            .post(
                "/v1/runs",
                json!({"kind": "steps", "inputs": {"steps": 1}, "flow": flow, "run_id": format!("run-{i:02}")}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/runs?limit=10&cursor={}", urlencode(c)),
            None => "/v1/runs?limit=10".to_owned(),
        };
        let (status, page) = running.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        pages += 1;
        for entry in page["runs"].as_array().unwrap() {
            seen.push(entry["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut expected: Vec<String> = (0..23).map(|i| format!("run-{i:02}")).collect();
    expected.reverse();
    assert_eq!(seen, expected, "newest first, each once");
    let (_, odd) = running
        .get("/v1/runs?flow=odd&status=queued&kind=steps")
        .await;
    assert_eq!(odd["runs"].as_array().unwrap().len(), 11);
    let (_, none) = running.get("/v1/runs?status=running").await;
    assert_eq!(none["runs"], json!([]));
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_guard_the_api_and_beyond_loopback_one_is_required() {
    let refused = Server::read_only(start(ServerOptions::default(), false).await.db.clone())
        .unwrap()
        .with_options(ServerOptions {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            ..ServerOptions::default()
        })
        .bind()
        .await;
    assert!(
        matches!(refused, Err(ServeError::TokenRequired { .. })),
        "{refused:?}"
    );

    let running = start(
        ServerOptions {
            read_token: Some("reader-secret".into()),
            admin_token: Some("admin-secret".into()),
            ..ServerOptions::default()
        },
        false,
    )
    .await;
    let submit = json!({"kind": "steps", "inputs": {"steps": 1}});
    for token in [None, Some("wrong"), Some("reader-secre")] {
        let mut request = running.client.get(running.url("/v1/runs"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["detail"], "a valid token is required",
            "nothing else revealed"
        );
        let response = running
            .client
            .post(running.url("/v1/runs"))
            .json(&submit)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let read = |path: &str| {
        running
            .client
            .get(running.url(path))
            .bearer_auth("reader-secret")
            .send()
    };
    assert_eq!(read("/v1/runs").await.unwrap().status(), StatusCode::OK);
    let response = running
        .client
        .post(running.url("/v1/runs"))
        .bearer_auth("reader-secret")
        .json(&submit)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = running
        .client
        .post(running.url("/v1/runs"))
        .bearer_auth("admin-secret")
        .json(&submit)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    // A query token, for EventSource; health and the OpenAPI document are open.
    let response = running
        .client
        .get(running.url("/v1/runs?access_token=reader-secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(running.get("/healthz").await.0, StatusCode::OK);
    assert_eq!(running.get("/metrics").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(read("/metrics").await.unwrap().status(), StatusCode::OK);
    let (status, doc) = running.get("/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/v1/runs/{id}/rerun"]["post"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_server_shows_plain_applications_and_refuses_to_act() {
    use burr_core::actions::action_sync;
    use burr_core::persistence::SqlitePersister;
    use burr_core::{default, ApplicationBuilder, Inputs, State};

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("plain.db");
    let tracker = burr_tracker::Tracker::open(&db).unwrap();
    let count = action_sync("count", |s: State, _, _| s.increment("n", 1))
        .reads(["n"])
        .writes(["n"]);
    let mut app = ApplicationBuilder::new()
        .with_actions([count])
        .with_transitions([("count", "count", default())])
        .with_state(State::new().update("n", 0))
        .with_entrypoint("count")
        .with_app_id("plain-app")
        .with_state_persister(Arc::new(SqlitePersister::open(&db).unwrap()))
        .with_tracker(tracker.hook())
        .build()
        .await
        .unwrap();
    for _ in 0..3 {
        app.step(Inputs::new()).await.unwrap();
    }
    drop(app);
    tracker.flush().unwrap();

    let bound = Server::read_only(&db)
        .unwrap()
        .with_options(ServerOptions {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..ServerOptions::default()
        })
        .bind()
        .await
        .unwrap();
    let base = format!("http://{}", bound.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(bound.serve(async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let get = |path: &str| {
        let url = format!("{base}{path}");
        let client = client.clone();
        async move {
            client
                .get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let page = get("/v1/runs").await;
    assert_eq!(page["runs"][0]["id"], "plain-app", "{page}");
    assert_eq!(page["runs"][0]["source"], "app");
    assert_eq!(page["runs"][0]["status"], "completed");
    assert_eq!(
        get("/v1/runs/plain-app/steps")
            .await
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(get("/v1/runs/plain-app/state").await["state"]["n"], 3);
    assert_eq!(get("/v1/kinds").await, json!([]));
    let response = client
        .post(format!("{base}/v1/runs"))
        .json(&json!({"kind": "steps"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let _ = stop.send(());
    served.await.unwrap().unwrap();
    // The server wrote nothing: no run-queue tables appeared.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name LIKE 'burr_run%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 0);
}

/// Read SSE events (id, event type) from `response` until `until` says stop.
async fn read_events(
    response: reqwest::Response,
    mut until: impl FnMut(&str, &Value) -> bool,
) -> Vec<(i64, String)> {
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    let mut out = Vec::new();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(20), body.next())
        .await
        .expect("events keep coming")
    {
        buffer.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let (mut id, mut event, mut data) = (None, String::new(), Value::Null);
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    id = v.parse().ok();
                } else if let Some(v) = line.strip_prefix("event: ") {
                    event = v.to_owned();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(v).unwrap_or(Value::Null);
                }
            }
            if let Some(id) = id {
                out.push((id, event.clone()));
                if until(&event, &data) {
                    return out;
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_live_and_resume_after_the_last_event_id() {
    let running = start(ServerOptions::default(), true).await;
    let (_, run) = running
        .post(
            "/v1/runs",
            json!({"kind": "steps", "inputs": {"steps": 4, "sleep_ms": 30}}),
        )
        .await;
    let id = run["id"].as_str().unwrap().to_owned();
    let response = running
        .client
        .get(running.url(&format!("/v1/runs/{id}/events")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let events = read_events(response, |event, _| event == "finished").await;
    let kinds: Vec<&str> = events.iter().map(|(_, e)| e.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"queued"));
    assert_eq!(
        kinds.iter().filter(|k| **k == "step_finished").count(),
        5,
        "{kinds:?}"
    );
    assert_eq!(kinds.last(), Some(&"finished"));
    assert!(events.windows(2).all(|w| w[0].0 < w[1].0), "in order");
    // Resume after the third: the rest, from the fourth on.
    let response = running
        .client
        .get(running.url(&format!("/v1/runs/{id}/events")))
        .header("Last-Event-ID", events[2].0.to_string())
        .send()
        .await
        .unwrap();
    let resumed = read_events(response, |event, _| event == "finished").await;
    assert_eq!(resumed, events[3..].to_vec());
    let response = running
        .client
        .get(running.url(&format!("/v1/runs/{id}/events")))
        .header("Last-Event-ID", "yesterday")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let (status, _) = running.get("/v1/runs/nobody/events").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_running_run_and_rerun_forks_from_a_step() {
    let running = start(ServerOptions::default(), true).await;
    let (_, long) = running
        .post(
            "/v1/runs",
            json!({"kind": "steps", "inputs": {"steps": 200, "sleep_ms": 50}}),
        )
        .await;
    let long_id = long["id"].as_str().unwrap().to_owned();
    let queue = running.runs.queue();
    tokio::time::timeout(Duration::from_secs(10), async {
        while queue.get(&long_id).await.unwrap().status != RunStatus::Running {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    let (status, _) = running
        .post(&format!("/v1/runs/{long_id}/cancel"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        wait_for(&running, &long_id).await.status,
        RunStatus::Cancelled
    );
    let (status, body) = running
        .post(&format!("/v1/runs/{long_id}/cancel"), json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    let (_, short) = running
        .post("/v1/runs", json!({"kind": "steps", "inputs": {"steps": 4}}))
        .await;
    let short_id = short["id"].as_str().unwrap().to_owned();
    wait_for(&running, &short_id).await;
    let (status, body) = running
        .post(
            &format!("/v1/runs/{short_id}/rerun"),
            json!({"sequence_id": 99}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["field"], "sequence_id");
    let (status, rerun) = running
        .post(
            &format!("/v1/runs/{short_id}/rerun"),
            json!({"sequence_id": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rerun}");
    let rerun_id = rerun["id"].as_str().unwrap().to_owned();
    assert_eq!(rerun["fork"], json!({"run_id": short_id, "sequence_id": 1}));
    assert_eq!(
        wait_for(&running, &rerun_id).await.status,
        RunStatus::Succeeded
    );
    let (_, steps) = running.get(&format!("/v1/runs/{rerun_id}/steps")).await;
    let seqs: Vec<u64> = steps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["sequence_id"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        [2, 3, 4],
        "it went on from after step 1, redoing nothing before"
    );
    let (_, one) = running.get(&format!("/v1/runs/{rerun_id}")).await;
    assert_eq!(one["app"]["fork_parent"], format!("{short_id}@1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutting_down_ends_event_streams_and_returns() {
    let mut running = start(ServerOptions::default(), false).await;
    let response = running
        .client
        .get(running.url("/v1/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.bytes_stream();
    running.shut_down().await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(_)) = body.next().await {}
    })
    .await;
    assert!(ended.is_ok(), "the stream ended with the server");
}
