//! The web UI in a real browser: a server with a worker on a temporary SQLite file, on
//! loopback, with read and admin tokens; `tests/browser/ui.test.mjs` drives Debian's
//! Chromium through it with playwright-core (the runs list moving live, the run page,
//! cancel from the button, rerun, tokens, problems; an application run by hand; the
//! read-only server `burr ui` serves) and writes a screenshot of each page under
//! `target/ui-screenshots/`.
//!
//! Needs Node.js (20+), Chromium at /usr/bin/chromium (or `BURR_CHROMIUM`) and
//! `tests/browser/node_modules` (`npm ci` there); `scripts/test.sh` installs all three.
//! Missing any of them fails the test, saying how to install it.
//!
//! For work on the UI: `BURR_UI_HOLD=600` keeps the server up that many seconds instead
//! of running the browser (the address is printed), and `BURR_UI_DIR=burr-server/ui`
//! serves the UI's files from disk.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use burr_core::actions::action_sync;
use burr_core::parallel::Executor;
use burr_core::{default, expr, ApplicationBuilder, ApplicationContext, RunOptions, State};
use burr_server::http::{Server, ServerOptions};
use burr_server::{Registry, Runs, SqliteRunQueue, Worker, WorkerOptions};
use burr_tests::runs_kinds::{Batch, Steps};
use tokio::sync::watch;

const READ_TOKEN: &str = "read-token-for-the-browser-test";
const ADMIN_TOKEN: &str = "admin-token-for-the-browser-test";

/// The longest the browser script may take.
const BROWSER_LIMIT: Duration = Duration::from_secs(120);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace")
        .to_owned()
}

/// Node.js, Chromium and playwright-core, or a panic saying how to install what is missing.
fn tools(browser_dir: &Path) -> (String, PathBuf) {
    let node = std::env::var("BURR_NODE").unwrap_or_else(|_| "node".to_owned());
    let version = std::process::Command::new(&node).arg("--version").output();
    match version {
        Ok(out) if out.status.success() => {}
        _ => panic!(
            "Node.js (`{node}`) is missing: the web UI's browser test needs it. \
             Install it with `apt-get install -y nodejs npm` (or run `bash scripts/test.sh`, \
             which installs what the tests need), or set BURR_NODE to a node binary."
        ),
    }
    let chromium = std::env::var_os("BURR_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        chromium.exists(),
        "Chromium is missing at {}: the web UI's browser test needs it. Install it with \
         `apt-get install -y chromium` (or run `bash scripts/test.sh`), or set BURR_CHROMIUM \
         to a Chromium binary.",
        chromium.display()
    );
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is missing in {}: run `npm ci` there (`bash scripts/test.sh` does). \
         Never `playwright install`: the test uses the system's Chromium.",
        browser_dir.display()
    );
    (node, chromium)
}

/// `hand-made-app`: three steps of a counter, run without the queue, checkpointed and
/// tracked into the queue's database (the list shows it as an `app`).
async fn hand_made_app(queue: &SqliteRunQueue, tracker: &burr_tracker::Tracker) {
    let count = action_sync("count", |state: State, _, _: &ApplicationContext| {
        let n: i64 = state.get("n").unwrap_or(0);
        state.update("n", n + 1)
    })
    .reads(["n"])
    .writes(["n"]);
    let done = action_sync("done", |state: State, _, _: &ApplicationContext| {
        state.update("done", true)
    })
    .writes(["done"]);
    let mut app = ApplicationBuilder::new()
        .with_actions([count, done])
        .with_transitions([
            ("count", "done", expr("n >= 3")),
            ("count", "count", default()),
        ])
        .with_state(State::new().update("n", 0))
        .with_entrypoint("count")
        .with_app_id("hand-made-app")
        .with_state_persister(queue.persister())
        .with_tracker(tracker.hook())
        .build()
        .await
        .unwrap();
    app.run(RunOptions::new().halt_after(["done"]))
        .await
        .unwrap();
    tracker.flush().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_ui_shows_runs_live_and_acts_on_them_in_a_real_browser() {
    let root = workspace();
    let browser_dir = root.join("tests/browser");
    let hold: Option<u64> = std::env::var("BURR_UI_HOLD")
        .ok()
        .and_then(|v| v.parse().ok());
    let tools = if hold.is_none() {
        Some(tools(&browser_dir))
    } else {
        None
    };

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("burr.db");
    let queue = SqliteRunQueue::open(&db).unwrap();
    let registry = Arc::new(Registry::new().register(Steps::default()).register(Batch));
    let runs = Runs::new(Arc::new(queue.clone()), Arc::clone(&registry));
    let tracker = burr_tracker::Tracker::open(&db).unwrap();
    let worker = Worker::new(
        Arc::new(queue.clone()),
        queue.persister(),
        Arc::clone(&registry),
    )
    .with_tracker(tracker.hook())
    .with_options(WorkerOptions {
        concurrency: 4,
        grace: Duration::from_secs(2),
        // Two children at a time: a batch's progress moves in steps the page can see.
        executor: Some(Executor::new(2)),
        ..WorkerOptions::default()
    });
    let (stop, stopped) = watch::channel(false);
    let until_stopped = |mut stopped: watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|s| *s).await;
    };
    let worker = tokio::spawn(worker.run(until_stopped(stopped.clone())));
    let bound = Server::with_runs(&db, runs)
        .unwrap()
        .with_options(ServerOptions {
            addr: ([127, 0, 0, 1], 0).into(),
            read_token: Some(READ_TOKEN.to_owned()),
            admin_token: Some(ADMIN_TOKEN.to_owned()),
            ..ServerOptions::default()
        })
        .bind()
        .await
        .unwrap();
    let base = format!("http://{}", bound.local_addr().unwrap());
    let server = tokio::spawn(bound.serve(until_stopped(stopped.clone())));
    // What `burr ui` serves: the same database, read-only, no token.
    let read_only = Server::read_only(&db)
        .unwrap()
        .with_options(ServerOptions {
            addr: ([127, 0, 0, 1], 0).into(),
            ..ServerOptions::default()
        })
        .bind()
        .await
        .unwrap();
    let read_only_base = format!("http://{}", read_only.local_addr().unwrap());
    let read_only = tokio::spawn(read_only.serve(until_stopped(stopped)));
    // An application run by hand (no run queue), tracked into the same file.
    hand_made_app(&queue, &tracker).await;

    let outcome = match (hold, tools) {
        (Some(seconds), _) => {
            eprintln!(
                "serving {base}/ for {seconds} s (read token {READ_TOKEN}, admin token {ADMIN_TOKEN})"
            );
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            None
        }
        (None, Some((node, chromium))) => {
            let shots = std::env::var_os("BURR_UI_SCREENSHOTS")
                .map(PathBuf::from)
                .unwrap_or_else(|| root.join("target/ui-screenshots"));
            std::fs::create_dir_all(&shots).unwrap();
            let started = Instant::now();
            let mut child = tokio::process::Command::new(node)
                .arg(browser_dir.join("ui.test.mjs"))
                .arg(&base)
                .arg(&read_only_base)
                .env("BURR_UI_ADMIN_TOKEN", ADMIN_TOKEN)
                .env("BURR_UI_READ_TOKEN", READ_TOKEN)
                .env("BURR_UI_SCREENSHOTS", &shots)
                .env("BURR_CHROMIUM", &chromium)
                .current_dir(&browser_dir)
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .expect("cannot start node");
            let status = tokio::time::timeout(BROWSER_LIMIT, child.wait()).await;
            Some((status, started.elapsed(), shots))
        }
        (None, None) => unreachable!(),
    };

    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
    let _ = tokio::time::timeout(Duration::from_secs(10), read_only).await;
    let _ = tokio::time::timeout(Duration::from_secs(10), worker).await;
    let _ = tracker.flush();

    if let Some((status, took, shots)) = outcome {
        let status = status
            .unwrap_or_else(|_| panic!("the browser test took more than {BROWSER_LIMIT:?}"))
            .expect("cannot wait for node");
        assert!(
            status.success(),
            "the browser test failed ({status}) after {took:?}: see its output above; \
             screenshots are in {}",
            shots.display()
        );
        for page in ["list.png", "run.png", "cancelled.png"] {
            assert!(
                shots.join(page).is_file(),
                "no screenshot {page} in {}",
                shots.display()
            );
        }
        eprintln!(
            "browser test passed in {took:?}; screenshots in {}",
            shots.display()
        );
    }
}
