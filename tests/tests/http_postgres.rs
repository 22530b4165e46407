//! The HTTP API over a PostgreSQL database (real server, real HTTP on loopback): the same
//! run submitted to a server on a SQLite file and to one on PostgreSQL, and the same
//! application run by hand into each, read back the same through the listing, a run's
//! page, its steps, state, diff, graph and children, and its event stream — the answer
//! from the file is the expected one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use burr_core::actions::action_sync;
use burr_core::persistence::Persister;
use burr_core::{default, ApplicationBuilder, Inputs, State};
use burr_postgres::testing::TestServer;
use burr_server::http::{Server, ServerOptions};
use burr_server::{PgRunQueue, Registry, RunQueue, RunStatus, Runs, SqliteRunQueue, Worker};
use burr_tests::runs_kinds::Steps;
use burr_tracker::Tracker;
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::sync::oneshot;

/// A server and a worker on one database, stopped when dropped.
struct Running {
    base: String,
    runs: Runs,
    client: reqwest::Client,
    _stop: oneshot::Sender<()>,
    _worker: oneshot::Sender<()>,
}

impl Running {
    async fn get(&self, path: &str) -> Value {
        get_json(&self.client, &self.base, path).await
    }

    /// The event types of a run's stream, up to `finished`.
    async fn events(&self, id: &str) -> Vec<String> {
        let response = self
            .client
            .get(format!("{}/v1/runs/{id}/events", self.base))
            .send()
            .await
            .unwrap();
        let mut body = response.bytes_stream();
        let (mut buffer, mut out) = (String::new(), Vec::new());
        while let Some(chunk) = tokio::time::timeout(Duration::from_secs(20), body.next())
            .await
            .expect("events keep coming")
        {
            buffer.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                if let Some(event) = block.lines().find_map(|l| l.strip_prefix("event: ")) {
                    out.push(event.to_owned());
                    if event == "finished" {
                        return out;
                    }
                }
            }
        }
        out
    }
}

/// GET `base` + `path`, which must succeed: its JSON.
async fn get_json(client: &reqwest::Client, base: &str, path: &str) -> Value {
    let response = client.get(format!("{base}{path}")).send().await.unwrap();
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

/// A plain application (no run queue), run three steps by hand.
async fn run_plain_app(persister: Arc<dyn Persister>, tracker: &Tracker) {
    let count = action_sync("count", |s: State, _, _| s.increment("n", 1))
        .reads(["n"])
        .writes(["n"]);
    let mut app = ApplicationBuilder::new()
        .with_actions([count])
        .with_transitions([("count", "count", default())])
        .with_state(State::new().update("n", 0))
        .with_entrypoint("count")
        .with_app_id("plain-app")
        .with_state_persister(persister)
        .with_tracker(tracker.hook())
        .build()
        .await
        .unwrap();
    for _ in 0..3 {
        app.step(Inputs::new()).await.unwrap();
    }
    drop(app);
    tracker.flush().unwrap();
}

async fn start(location: &str, queue: Arc<dyn RunQueue>, persister: Arc<dyn Persister>) -> Running {
    let registry = Arc::new(Registry::new().register(Steps::default()));
    let runs = Runs::new(Arc::clone(&queue), Arc::clone(&registry));
    let tracker = Tracker::open(location).unwrap();
    run_plain_app(Arc::clone(&persister), &tracker).await;
    let worker = Worker::new(queue, persister, registry).with_tracker(tracker.hook());
    let (worker_stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = worker
            .run(async {
                let _ = stopped.await;
            })
            .await;
        drop(tracker);
    });
    let bound = Server::with_runs(location, runs.clone())
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
    tokio::spawn(bound.serve(async {
        let _ = stopped.await;
    }));
    Running {
        base,
        runs,
        client: reqwest::Client::new(),
        _stop: stop,
        _worker: worker_stop,
    }
}

/// What a server answers about its database, without times and run ids: the listing,
/// the run's page, steps, state, diff, graph, children and event stream, and the plain
/// application's.
async fn answers(running: &Running) -> Vec<(String, Value)> {
    let submitted = running
        .client
        .post(format!("{}/v1/runs", running.base))
        .json(&json!({"kind": "steps", "inputs": {"steps": 3, "sleep_ms": 20}}))
        .send()
        .await
        .unwrap();
    let id = submitted.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let events = running.events(&id).await;
    let run = tokio::time::timeout(Duration::from_secs(20), running.runs.wait(&id))
        .await
        .expect("the run finishes")
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    // The tracker writes in batches: wait for the last step's end.
    let mut steps = Value::Null;
    for _ in 0..100 {
        steps = running.get(&format!("/v1/runs/{id}/steps")).await;
        if steps[3]["duration_us"].is_i64() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pick = |value: &Value, keys: &[&str]| -> Value {
        let pick_one = |v: &Value| {
            Value::Object(
                keys.iter()
                    .map(|k| ((*k).to_owned(), v[*k].clone()))
                    .collect(),
            )
        };
        match value {
            Value::Array(items) => Value::Array(items.iter().map(pick_one).collect()),
            other => pick_one(other),
        }
    };
    let page = running.get("/v1/runs").await;
    let listed: Vec<Value> = page["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let mut picked = pick(e, &["source", "status", "kind", "attempt", "priority"]);
            // The run's id is its own on each database; the plain app's is the same.
            if e["source"] == "app" {
                picked["id"] = e["id"].clone();
            }
            picked
        })
        .collect();
    let one = running.get(&format!("/v1/runs/{id}")).await;
    let step_keys = [
        "sequence_id",
        "action",
        "status",
        "attempt",
        "inputs",
        "result",
        "error",
    ];
    vec![
        ("listing".into(), Value::Array(listed)),
        (
            "run".into(),
            pick(
                &one["run"],
                &["status", "kind", "attempt", "inputs", "summary"],
            ),
        ),
        (
            "app".into(),
            pick(&one["app"], &["status", "steps", "tracked"]),
        ),
        ("steps".into(), pick(&steps, &step_keys)),
        (
            "state".into(),
            running
                .get(&format!("/v1/runs/{id}/state?sequence_id=1"))
                .await["state"]
                .clone(),
        ),
        (
            "diff".into(),
            running.get(&format!("/v1/runs/{id}/diff?to=2")).await["changed"].clone(),
        ),
        (
            "graph".into(),
            running.get(&format!("/v1/runs/{id}/graph")).await,
        ),
        (
            "children".into(),
            running.get(&format!("/v1/runs/{id}/children")).await["children"].clone(),
        ),
        ("events".into(), json!(events)),
        (
            "plain steps".into(),
            pick(&running.get("/v1/runs/plain-app/steps").await, &step_keys),
        ),
        (
            "plain state".into(),
            running.get("/v1/runs/plain-app/state").await["state"].clone(),
        ),
        ("backlog".into(), running.get("/v1/backlog").await),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_the_same_on_postgresql_as_on_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("burr.db");
    let file = {
        let queue = SqliteRunQueue::open(&path).unwrap();
        let persister = queue.persister();
        start(path.to_str().unwrap(), Arc::new(queue), persister).await
    };
    let url = TestServer::shared().fresh_database();
    let pg = {
        let queue = PgRunQueue::connect(&url).await.unwrap();
        let persister = queue.persister();
        start(&url, Arc::new(queue), persister).await
    };
    let expected = answers(&file).await;
    let found = answers(&pg).await;
    assert_eq!(expected.len(), found.len());
    for ((what, want), (_, got)) in expected.iter().zip(&found) {
        assert!(!want.is_null(), "{what} on the file");
        assert_eq!(got, want, "{what}");
    }
    // The listing holds the run and the plain application, the app completed.
    let listing = &expected[0].1;
    assert_eq!(listing.as_array().unwrap().len(), 2, "{listing}");
    assert_eq!(listing[1]["status"], "completed", "{listing}");
}

/// `serve --db postgres://…` as a real process (the user's binary): the HTTP API lists,
/// runs and inspects a run there, its tracker recording into the same database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_postgresql_runs_and_shows_a_run() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};

    let url = TestServer::shared().fresh_database();
    let mut child = Command::new(env!("CARGO_BIN_EXE_runs-app"))
        .args(["--db", &url, "serve", "--addr", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (found, address) = std::sync::mpsc::channel();
    let (is_ready, ready) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            if let Some(base) = line.strip_prefix("serving ") {
                let _ = found.send(base.trim_end_matches('/').to_owned());
            } else if line.starts_with("worker ready") {
                let _ = is_ready.send(());
            }
        }
    });
    let base = address
        .recv_timeout(Duration::from_secs(30))
        .expect("serve says where it listens");
    let client = reqwest::Client::new();
    let run: Value = client
        .post(format!("{base}/v1/runs"))
        .json(&json!({"kind": "steps", "inputs": {"steps": 2}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = run["id"].as_str().unwrap().to_owned();
    let get = |path: String| {
        let client = client.clone();
        async move {
            client
                .get(path)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let mut steps = Value::Null;
    for _ in 0..200 {
        let one = get(format!("{base}/v1/runs/{id}")).await;
        steps = get(format!("{base}/v1/runs/{id}/steps")).await;
        if one["run"]["status"] == "succeeded" && steps[2]["duration_us"].is_i64() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let actions: Vec<&str> = steps
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["action"].as_str())
        .collect();
    assert_eq!(actions, ["work", "work", "done"], "{steps}");
    let page = get(format!("{base}/v1/runs")).await;
    assert_eq!(page["runs"][0]["id"], id.as_str(), "{page}");
    assert_eq!(page["runs"][0]["status"], "succeeded", "{page}");
    assert_eq!(
        get(format!("{base}/v1/runs/{id}/state")).await["state"]["count"],
        2
    );
    // Its SIGTERM handler is in place once it says it is ready: then it drains.
    ready
        .recv_timeout(Duration::from_secs(30))
        .expect("the worker says it is ready");
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "serve drains and exits: {status}");
}

/// A read-only server (`burr ui`) over a PostgreSQL database that has no run queue shows
/// its applications and creates nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_server_on_postgresql_shows_plain_applications_and_writes_nothing() {
    let url = TestServer::shared().fresh_database();
    let persister = Arc::new(
        burr_postgres::PostgresPersister::connect(&url)
            .await
            .unwrap(),
    );
    let tracker = Tracker::open(&url).unwrap();
    run_plain_app(persister, &tracker).await;
    drop(tracker);
    let bound = Server::read_only(&url)
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
    let page = get_json(&client, &base, "/v1/runs").await;
    assert_eq!(page["runs"][0]["id"], "plain-app", "{page}");
    assert_eq!(page["runs"][0]["status"], "completed", "{page}");
    let steps = get_json(&client, &base, "/v1/runs/plain-app/steps").await;
    assert_eq!(steps.as_array().unwrap().len(), 3, "{steps}");
    let state = get_json(&client, &base, "/v1/runs/plain-app/state").await;
    assert_eq!(state["state"]["n"], 3);
    let backlog = get_json(&client, &base, "/v1/backlog").await;
    assert_eq!(
        backlog,
        serde_json::to_value(burr_server::Backlog::default()).unwrap()
    );
    let _ = stop.send(());
    served.await.unwrap().unwrap();
    // No run-queue table appeared.
    let tables: i64 = pg_client(&url)
        .await
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'burr_run%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 0);
}

/// A server that does not run the queue itself (`burr ui`) streams the events of a run
/// that a worker of another handle (another machine's, in effect) runs: it notices the
/// database's changes by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_streams_the_events_of_a_run_that_another_worker_runs() {
    let url = TestServer::shared().fresh_database();
    let queue = Arc::new(PgRunQueue::connect(&url).await.unwrap());
    let bound = Server::read_only(&url)
        .unwrap()
        .with_options(ServerOptions {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..ServerOptions::default()
        })
        .bind()
        .await
        .unwrap();
    let base = format!("http://{}", bound.local_addr().unwrap());
    let (_stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(bound.serve(async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let response = client
        .get(format!("{base}/v1/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["content-type"], "text/event-stream");

    let registry = Arc::new(Registry::new().register(Steps::default()));
    let runs = Runs::new(
        Arc::clone(&queue) as Arc<dyn RunQueue>,
        Arc::clone(&registry),
    );
    let worker = Worker::new(queue.clone(), queue.persister(), registry);
    let (_worker_stop, worker_stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = worker
            .run(async {
                let _ = worker_stopped.await;
            })
            .await;
    });
    let submitted = runs
        .submit(burr_server::Submission::new("steps", json!({"steps": 2})))
        .await
        .unwrap();
    let id = submitted.run.id.clone();

    let mut body = response.bytes_stream();
    let (mut buffer, mut kinds) = (String::new(), Vec::new());
    // Keep-alive comments come meanwhile: the whole stream has one deadline.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    'read: while let Some(chunk) = tokio::time::timeout_at(deadline, body.next())
        .await
        .expect("the stream follows the other worker's run")
    {
        buffer.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let event = block.lines().find_map(|l| l.strip_prefix("event: "));
            let data = block.lines().find_map(|l| l.strip_prefix("data: "));
            if let (Some(event), Some(data)) = (event, data) {
                if data.contains(&id) {
                    kinds.push(event.to_owned());
                    if event == "finished" {
                        break 'read;
                    }
                }
            }
        }
    }
    assert_eq!(
        kinds.first().map(String::as_str),
        Some("queued"),
        "{kinds:?}"
    );
    assert_eq!(
        kinds.last().map(String::as_str),
        Some("finished"),
        "{kinds:?}"
    );
}

/// A plain connection to the database at `url`.
async fn pg_client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// A read-only server's bind on `url`, which must fail: its error.
async fn read_only_refused(url: &str) -> burr_server::http::ServeError {
    Server::read_only(url)
        .unwrap()
        .with_options(ServerOptions {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..ServerOptions::default()
        })
        .bind()
        .await
        .expect_err("a read-only server over older tables does not start")
}

/// The schema version `table` (`burr_runs_meta`, `burr_meta`) records.
async fn schema_version(db: &tokio_postgres::Client, table: &str) -> String {
    db.query_one(
        &format!("SELECT value FROM {table} WHERE key = 'schema_version'"),
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

/// A read-only server (`burr ui`) over a database whose run queue an older build made
/// refuses to start with a typed error naming the tables and their version, and never
/// migrates them: the database is left as the older build wrote it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_server_never_migrates_an_older_run_queue() {
    let url = TestServer::shared().fresh_database();
    drop(PgRunQueue::connect(&url).await.unwrap());
    let db = pg_client(&url).await;
    // What run-queue schema version 1 was (schema.rs, V2 undone).
    db.batch_execute(
        "ALTER TABLE burr_runs DROP COLUMN code_version, DROP COLUMN fingerprint;
         DROP INDEX burr_workers_machine;
         ALTER TABLE burr_workers DROP COLUMN machine, DROP COLUMN pid_started;
         UPDATE burr_runs_meta SET value = '1' WHERE key = 'schema_version';",
    )
    .await
    .unwrap();
    let error = read_only_refused(&url).await;
    match &error {
        burr_server::http::ServeError::Queue(burr_server::QueueError::SchemaOutdated {
            tables,
            found,
            known,
            ..
        }) => assert_eq!((*tables, *found, *known), ("run-queue", 1, 2)),
        other => panic!("{other:?}"),
    }
    let message = error.to_string();
    assert!(message.contains("migrate"), "{message}");
    assert_eq!(schema_version(&db, "burr_runs_meta").await, "1");
    let columns: i64 = db
        .query_one(
            "SELECT count(*) FROM information_schema.columns \
             WHERE table_name = 'burr_runs' AND column_name = 'code_version'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(columns, 0, "the older run queue was migrated");
}

/// The same for the checkpoints' tables: a read-only server over a database whose
/// checkpoint schema is older than this build's refuses to start and leaves it so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_server_never_migrates_older_checkpoints() {
    let url = TestServer::shared().fresh_database();
    drop(PgRunQueue::connect(&url).await.unwrap());
    let db = pg_client(&url).await;
    let older = burr_postgres::PostgresPersister::SCHEMA_VERSION - 1;
    db.execute(
        "UPDATE burr_meta SET value = $1 WHERE key = 'schema_version'",
        &[&older.to_string()],
    )
    .await
    .unwrap();
    let error = read_only_refused(&url).await;
    match &error {
        burr_server::http::ServeError::Queue(burr_server::QueueError::SchemaOutdated {
            tables,
            found,
            ..
        }) => assert_eq!((*tables, *found), ("checkpoint", older)),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        schema_version(&db, "burr_meta").await,
        older.to_string(),
        "the checkpoints were migrated"
    );
}
