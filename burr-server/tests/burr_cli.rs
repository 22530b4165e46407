//! The generic `burr` binary as a process: `burr ui --db PATH --addr 127.0.0.1:PORT`
//! serves the read-only API and the UI for any burr database; beyond loopback it refuses
//! to start without a token.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::Arc;

use burr_core::actions::action_sync;
use burr_core::persistence::SqlitePersister;
use burr_core::{ApplicationBuilder, Inputs, State};

fn get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, text.split_once("\r\n\r\n").unwrap().1.to_owned())
}

#[tokio::test]
async fn burr_ui_serves_any_database_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("plain.db");
    let count = action_sync("count", |s: State, _, _| s.increment("n", 1))
        .reads(["n"])
        .writes(["n"]);
    let mut app = ApplicationBuilder::new()
        .with_actions([count])
        .with_transitions(Vec::<(&str, &str)>::new())
        .with_state(State::new().update("n", 0))
        .with_entrypoint("count")
        .with_app_id("by-hand")
        .with_state_persister(Arc::new(SqlitePersister::open(&db).unwrap()))
        .build()
        .await
        .unwrap();
    app.step(Inputs::new()).await.unwrap();
    drop(app);

    let mut child = Command::new(env!("CARGO_BIN_EXE_burr"))
        .args(["ui", "--db"])
        .arg(&db)
        .args(["--addr", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .rsplit("http://")
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    let (status, body) = get(&addr, "/healthz");
    assert_eq!(status, 200, "{line}");
    assert_eq!(body, "ok");
    let (status, body) = get(&addr, "/v1/runs");
    assert_eq!(status, 200);
    assert!(body.contains("\"id\":\"by-hand\""), "{body}");
    let (status, body) = get(&addr, "/");
    assert_eq!(status, 200);
    assert!(body.contains("<html"), "the UI page");
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    assert!(child.wait().unwrap().success(), "SIGTERM: a clean exit");

    let refused = Command::new(env!("CARGO_BIN_EXE_burr"))
        .args(["ui", "--db"])
        .arg(&db)
        .args(["--addr", "0.0.0.0:0"])
        .env_remove("BURR_TOKEN")
        .env_remove("BURR_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("without a token"), "{said}");
}
