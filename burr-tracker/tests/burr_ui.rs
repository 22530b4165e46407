//! The export seen by Burr's own tracking server: `burr --no-open` from PyPI's
//! `apache-burr[tracking]` (installed by `scripts/burr-ui-venv.sh`, whose python
//! `BURR_UI_PYTHON` names) serves an export of the fixture database, and its HTTP API
//! lists the apps, their steps with state, and the children.
//!
//! Without `BURR_UI_PYTHON` the test fails, unless `BURR_SKIP_UI_TEST=1` says to skip it.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long the server may take to answer.
const STARTUP: Duration = Duration::from_secs(60);

fn burr_python() -> Option<PathBuf> {
    match std::env::var_os("BURR_UI_PYTHON") {
        Some(python) => Some(PathBuf::from(python)),
        None if std::env::var("BURR_SKIP_UI_TEST").as_deref() == Ok("1") => {
            eprintln!("skipped: BURR_SKIP_UI_TEST=1 (Burr's UI server is not checked)");
            None
        }
        None => panic!(
            "BURR_UI_PYTHON is not set: run `export BURR_UI_PYTHON=$(scripts/burr-ui-venv.sh)` \
             (it installs apache-burr[tracking,cli] into .venv-burr-ui/), or set BURR_SKIP_UI_TEST=1 to skip"
        ),
    }
}

/// Burr's server, killed (with its uvicorn child) when dropped.
struct Server {
    child: Child,
    log: PathBuf,
}

impl Server {
    fn start(python: &Path, burr_path: &Path, port: u16, log: PathBuf) -> Server {
        let burr = python.parent().expect("the venv's bin").join("burr");
        assert!(
            burr.is_file(),
            "{} is missing: run scripts/burr-ui-venv.sh",
            burr.display()
        );
        let out = std::fs::File::create(&log).expect("a log file");
        let child = Command::new(&burr)
            .args([
                "--no-open",
                "--no-copy-demo_data",
                "--host",
                "127.0.0.1",
                "--port",
            ])
            .arg(port.to_string())
            .env("BURR_PATH", burr_path)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("a log file"))
            .stderr(out)
            .process_group(0)
            .spawn()
            .expect("burr starts");
        Server { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // `burr` runs uvicorn as a child: end the whole process group.
        let group = format!("-{}", self.child.id());
        for signal in ["-TERM", "-KILL"] {
            let _ = Command::new("kill").args([signal, "--", &group]).status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `GET path` over HTTP/1.1: the status and the body.
fn get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

fn get_json(server: &Server, port: u16, path: &str) -> Value {
    let (status, body) =
        get(port, path).unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", server.log()));
    assert_eq!(status, 200, "GET {path}: {body}\n{}", server.log());
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn burrs_server_shows_the_export() {
    let Some(python) = burr_python() else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = common::build_database(dir.path()).await;
    let ui = dir.path().join("ui");
    let export = Command::new(env!("CARGO_BIN_EXE_burr-tracker"))
        .arg("--db")
        .arg(&db)
        .args(["export", "--project", "shop", "--burr-ui"])
        .arg(&ui)
        .output()
        .expect("burr-tracker runs");
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );

    let port = free_port();
    let server = Server::start(&python, &ui, port, dir.path().join("server.log"));
    let started = Instant::now();
    loop {
        if let Ok((200, _)) = get(port, "/api/v0/projects") {
            break;
        }
        assert!(
            started.elapsed() < STARTUP,
            "Burr's server did not answer within {STARTUP:?}:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    let projects = get_json(&server, port, "/api/v0/projects");
    let shop = projects
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "shop"))
        .unwrap_or_else(|| panic!("no project `shop`: {projects}"));
    // The app, its 12 children and the fork.
    assert_eq!(shop["num_apps"], 14, "{shop}");

    let page = get_json(&server, port, "/api/v0/shop/alice/apps");
    assert_eq!(page["total"], 14, "{page}");
    let apps = page["applications"].as_array().expect("applications");
    let find = |id: &str| {
        apps.iter()
            .find(|a| a["app_id"] == id)
            .unwrap_or_else(|| panic!("no app {id} in {page}"))
    };
    assert_eq!(find("order-1")["num_steps"], 4);
    assert_eq!(find("order-1")["partition_key"], "alice");
    let child = find("order-1~2F2~2F5");
    assert_eq!(child["spawning_parent_pointer"]["app_id"], "order-1");
    assert_eq!(child["spawning_parent_pointer"]["sequence_id"], 2);
    assert_eq!(find("order-1-fork")["parent_pointer"]["app_id"], "order-1");

    let logs = get_json(&server, port, "/api/v0/shop/order-1/alice/apps");
    let steps = logs["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 4, "{logs}");
    let first = &steps[0];
    assert_eq!(first["step_start_log"]["action"], "load");
    assert_eq!(
        first["step_start_log"]["inputs"]["customer"],
        "alice@example.com"
    );
    let spans: Vec<&Value> = first["spans"].as_array().expect("spans").iter().collect();
    assert_eq!(spans.len(), 2, "{first}");
    assert_eq!(spans[0]["begin_entry"]["span_name"], "fetch");
    assert_eq!(
        spans[1]["begin_entry"]["parent_span_id"],
        spans[0]["begin_entry"]["span_id"]
    );
    let attributes: Vec<&str> = first["attributes"]
        .as_array()
        .expect("attributes")
        .iter()
        .map(|a| a["key"].as_str().expect("a key"))
        .collect();
    assert_eq!(attributes, ["source", "words"]);
    let retried = &steps[1];
    assert_eq!(retried["step_end_log"]["action"], "check");
    assert_eq!(
        retried["step_end_log"]["exception"],
        Value::Null,
        "the last attempt succeeded"
    );
    assert!(retried["attributes"]
        .as_array()
        .expect("attributes")
        .iter()
        .any(|a| a["key"] == "burr_rs.failed_attempt"
            && a["value"]["error"][2] == "connection reset by peer"));
    let last = &steps[3]["step_end_log"];
    assert_eq!(last["state"]["total"], 70, "{last}");
    assert_eq!(last["state"]["lengths"][4], 10);
    assert_eq!(last["state"]["__SEQUENCE_ID"], 3);

    let children = logs["children"].as_array().expect("children");
    let spawned = children
        .iter()
        .filter(|c| c["event_type"] == "spawn_start")
        .count();
    let forks: Vec<&Value> = children
        .iter()
        .filter(|c| c["event_type"] == "fork")
        .collect();
    assert_eq!(spawned, 12, "{logs}");
    assert_eq!(forks.len(), 1);
    assert_eq!(forks[0]["child"]["app_id"], "order-1-fork");
    assert_eq!(forks[0]["sequence_id"], 0);

    let child_logs = get_json(&server, port, "/api/v0/shop/order-1~2F2~2F5/alice/apps");
    assert_eq!(child_logs["spawning_parent_pointer"]["app_id"], "order-1");
    let child_steps = child_logs["steps"].as_array().expect("steps");
    assert_eq!(child_steps.len(), 1);
    assert_eq!(child_steps[0]["step_end_log"]["state"]["text"], "fig");
    assert_eq!(child_steps[0]["step_end_log"]["state"]["length"], 3);
    drop(server);
}
