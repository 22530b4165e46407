//! The CLI verbs that read application records and the work cache, on a `postgres://`
//! URL: `check` (a deploy gate: exit 1 naming each unfinished run the current code
//! cannot resume) and `cache` (summary, list, prune), against a real PostgreSQL
//! database (`TestServer`).

use std::process::{Command, Output};
use std::sync::Arc;

use burr_core::actions::action_sync;
use burr_core::cache::{Bytes, CacheKey, CacheStore, InputHash};
use burr_core::state::StateError;
use burr_core::{default, ApplicationBuilder, Inputs, State};
use burr_postgres::testing::TestServer;
use burr_postgres::{PgCache, PostgresPersister};

const APP: &str = env!("CARGO_BIN_EXE_runs-app");

fn cli(url: &str, args: &[&str]) -> Output {
    Command::new(APP)
        .args(["--db", url])
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_on_postgres_passes_unstarted_runs_and_blocks_changed_code() {
    let url = TestServer::shared().fresh_database();
    for id in ["fresh", "changed"] {
        let out = cli(
            &url,
            &[
                "submit",
                "steps",
                "--inputs",
                r#"{"steps": 2}"#,
                "--run-id",
                id,
            ],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    // Queued, never started: the current code starts them.
    let out = cli(&url, &["check", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let checked: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(checked.len(), 2);
    assert!(
        checked.iter().all(|c| c["can_resume"] == true),
        "{checked:?}"
    );

    // `changed` was checkpointed by other code (a graph of one action `other`).
    let persister = Arc::new(PostgresPersister::connect(&url).await.unwrap());
    let mut app = ApplicationBuilder::new()
        .with_actions([action_sync("other", |s: State, _, _| {
            Ok::<_, StateError>(s.update("n", 1))
        })
        .writes(["n"])])
        .with_transitions([("other", "other", default())])
        .with_entrypoint("other")
        .with_app_id("changed")
        .with_version("old")
        .with_state_persister(persister.clone())
        .initialize_from(persister.clone())
        .build()
        .await
        .unwrap();
    app.step(Inputs::new()).await.unwrap();
    drop(app);

    let out = cli(&url, &["check"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("ok      fresh"), "{stdout}");
    assert!(stdout.contains("BLOCKED changed"), "{stdout}");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("cannot be resumed") && stderr.contains("changed ("),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_verbs_on_postgres_summarize_list_and_prune() {
    let url = TestServer::shared().fresh_database();
    let out = cli(&url, &["cache"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("total: 0 entries, 0 bytes"));

    let store = PgCache::from_persister(&PostgresPersister::connect(&url).await.unwrap());
    let key = |version: &str, i: u32| {
        CacheKey::new("summarize", version, InputHash::of_str(&i.to_string()))
    };
    store
        .put_many(
            (0..3)
                .map(|i| (key("1", i), Bytes::from(vec![1u8; 10])))
                .chain((0..2).map(|i| (key("2", i), Bytes::from(vec![2u8; 20]))))
                .collect(),
        )
        .await
        .unwrap();

    let out = cli(&url, &["cache", "summary"]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("summarize@1: 3 entries, 30 bytes"),
        "{stdout}"
    );
    assert!(
        stdout.contains("summarize@2: 2 entries, 40 bytes"),
        "{stdout}"
    );
    assert!(stdout.contains("total: 5 entries, 70 bytes"), "{stdout}");
    let out = cli(&url, &["--json", "cache", "list", "--limit", "4"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.len(), 4);
    let out = cli(
        &url,
        &[
            "cache",
            "prune",
            "--namespace",
            "summarize",
            "--except-version",
            "2",
        ],
    );
    assert!(
        text(&out.stdout).contains("deleted 3 entries"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(store.size(None).await.unwrap().entries, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_on_postgres_tracks_its_steps_in_the_same_database() {
    let url = TestServer::shared().fresh_database();
    let worker = Command::new(APP)
        .args(["--db", &url, "worker"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = cli(
        &url,
        &[
            "submit",
            "steps",
            "--inputs",
            r#"{"steps": 3}"#,
            "--run-id",
            "tracked",
            "--wait",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .unwrap();
    let stopped = worker.wait_with_output().unwrap();
    let stderr = text(&stopped.stderr);
    assert!(stopped.status.success(), "{stderr}");
    assert!(!stderr.contains("not tracked"), "{stderr}");
    // The worker drained: its tracker flushed what it recorded.
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let steps: Vec<(String, Option<String>)> = client
        .query(
            "SELECT s.action, s.status FROM burr_tracker_steps s \
             JOIN burr_tracker_apps a ON a.id = s.app \
             WHERE a.app_id = 'tracked' ORDER BY s.sequence_id, s.attempt",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert!(!steps.is_empty(), "the run's steps are tracked");
    assert!(
        steps
            .iter()
            .all(|(_, status)| status.as_deref() == Some("completed")),
        "{steps:?}"
    );
}
