//! `related-discussions check --db PATH [--json]`, the deploy gate, with the real model
//! loaded: over a database holding a queued `meeting` run and a meeting application of
//! the one-shot mode stopped after its first step, this build can resume both (exit 0);
//! a meeting application saved by a build whose first action had another name cannot
//! be resumed (exit 1, naming it and the rename). On a SQLite file and on PostgreSQL.

use std::process::{Command, Output};
use std::sync::Arc;

use burr_core::actions::{Action, ActionExt};
use burr_core::persistence::Persister;
use burr_core::prelude::*;
use burr_postgres::testing::TestServer;
use burr_server::{NewRun, DEFAULT_QUEUE};
use example_related_discussions::app::{
    self, EmbedDiscussions, IndexPast, Publish, Relate, VotingEnded,
};
use example_related_discussions::data::Dataset;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_related-discussions");

fn check(db: &str) -> (Output, Value) {
    let output = Command::new(BIN)
        .args(["check", "--json", "--db", db])
        .output()
        .expect("runs");
    let json = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output, json)
}

/// A meeting application whose first step is checkpointed: of this build's graph, or
/// (`renamed`) of a build that called its first action `voting_closed`.
async fn first_step_of(persister: Arc<dyn Persister>, app_id: &str, renamed: bool) {
    let meeting = Dataset::labelled().meetings.remove(0);
    let builder = if renamed {
        let first = VotingEnded.named("voting_closed");
        ApplicationBuilder::new()
            .with_actions([
                Arc::new(first) as Arc<dyn Action>,
                Arc::new(EmbedDiscussions),
                Arc::new(IndexPast),
                Arc::new(Relate),
                Arc::new(Publish),
            ])
            .with_transitions([
                ("voting_closed", EmbedDiscussions.name()),
                (EmbedDiscussions.name(), IndexPast.name()),
                (IndexPast.name(), Relate.name()),
                (Relate.name(), Publish.name()),
            ])
            .with_entrypoint("voting_closed")
    } else {
        app::graph(ApplicationBuilder::new(), Arc::new(VotingEnded))
    };
    let mut app = builder
        .with_app_id(app_id)
        .with_partition_key(&meeting.team)
        .with_state(State::new())
        .with_state_persister(persister.clone())
        .initialize_from(persister)
        .build()
        .await
        .expect("builds");
    let meeting = serde_json::to_value(&meeting).expect("a meeting is JSON");
    app.step(inputs! { "meeting": meeting })
        .await
        .expect("the first step runs");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_on_sqlite() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("burr.db");
    check_passes_what_this_build_resumes_and_names_what_it_cannot(db.to_str().expect("a path"))
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn check_on_postgres() {
    let url = TestServer::shared().fresh_database();
    check_passes_what_this_build_resumes_and_names_what_it_cannot(&url).await;
}

async fn check_passes_what_this_build_resumes_and_names_what_it_cannot(db: &str) {
    let backend = burr_server::open(db).await.expect("opens");
    let persister = backend.persister();
    first_step_of(persister.clone(), "meeting-a-1", false).await;
    // A `meeting` run, queued (no worker runs here).
    let meeting = Dataset::labelled().meetings.remove(1).id;
    backend
        .queue()
        .submit(NewRun {
            id: Some("run-1".to_owned()),
            kind: "meeting".to_owned(),
            kind_version: 1,
            queue: DEFAULT_QUEUE.to_owned(),
            inputs: serde_json::json!({ "meeting": meeting }),
            priority: 0,
            flow: None,
            not_before_us: None,
            idempotency_key: Some(meeting),
            concurrency: None,
            max_attempts: 3,
            fork: None,
        })
        .await
        .expect("submits");

    let (output, json) = check(db);
    assert_eq!(output.status.code(), Some(0), "{json:#}");
    let ids: Vec<&str> = json
        .as_array()
        .expect("a list")
        .iter()
        .map(|c| c["id"].as_str().expect("an id"))
        .collect();
    assert!(
        ids.contains(&"meeting-a-1") && ids.contains(&"run-1"),
        "{json:#}"
    );

    // An older build named its first action `voting_closed`.
    first_step_of(persister, "meeting-b-1", true).await;
    let (output, json) = check(db);
    assert_eq!(output.status.code(), Some(1), "{json:#}");
    let blocked: Vec<&Value> = json
        .as_array()
        .expect("a list")
        .iter()
        .filter(|c| c["can_resume"] == false)
        .collect();
    assert_eq!(blocked.len(), 1, "{json:#}");
    assert_eq!(blocked[0]["id"], "meeting-b-1", "{json:#}");
    assert!(
        blocked[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("voting_closed")),
        "{json:#}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("meeting-b-1"), "{stderr}");
}
