//! The application end to end, in process: the real model, a real SQLite file.

mod common;

use std::sync::Arc;

use burr_core::parallel::child_app_id;
use burr_core::persistence::{AppRecords, History, SqlitePersister, StepStatus};
use example_related_discussions::run::{run, Options, Report};

async fn run_on(db: &std::path::Path, ids: &[&str], options: &Options) -> Report {
    // A new persister each time: what a restarted process would open.
    let persister = Arc::new(SqlitePersister::open(db).unwrap());
    run(&common::sample(ids), common::model(), persister, options)
        .await
        .unwrap()
}

fn first_related(report: &Report, meeting: &str, discussion: &str) -> String {
    let m = report.meeting(meeting).unwrap();
    let d = m.discussions.iter().find(|d| d.id == discussion).unwrap();
    d.related.first().map(|r| r.id.clone()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_discussion_gets_related_past_discussions_and_obvious_pairs_rank_first() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("burr.db");
    let report = run_on(&db, &["m1", "m3"], &Options::default()).await;

    for meeting in &report.meetings {
        assert_eq!(
            meeting.discussions.len(),
            if meeting.id == "m1" { 8 } else { 6 }
        );
        for d in &meeting.discussions {
            assert!(
                !d.related.is_empty(),
                "{}/{} found nothing",
                meeting.id,
                d.id
            );
            assert!(d.related.len() <= 3);
            assert!(
                d.related.windows(2).all(|w| w[0].score >= w[1].score),
                "{}/{} is not sorted by score",
                meeting.id,
                d.id
            );
        }
        assert!(meeting.summary.contains(&meeting.discussions[0].title));
    }
    // "Flaky CI tests" finds "CI pipeline keeps failing randomly", and so on.
    for (meeting, discussion, past) in [
        ("m1", "d1", "p01"),
        ("m1", "d2", "p03"),
        ("m1", "d3", "p05"),
        ("m3", "d1", "p19"),
        ("m3", "d6", "p24"),
    ] {
        assert_eq!(
            first_related(&report, meeting, discussion),
            past,
            "{meeting}/{discussion}"
        );
    }
    // Most voted first; the 14 discussions and the 40 past ones embedded twice each.
    let votes: Vec<u32> = report.meetings[0]
        .discussions
        .iter()
        .map(|d| d.votes)
        .collect();
    assert!(votes.windows(2).all(|w| w[0] >= w[1]), "{votes:?}");
    assert_eq!(report.embeddings.past, 80);
    assert_eq!(report.embeddings.discussions, 28);
    assert_eq!(report.embeddings.by_discussion.len(), 14);
    assert!(report.embeddings.by_discussion.values().all(|&n| n == 2));

    // Each discussion ran as its own child application, keyed by the discussion id,
    // checkpointed step by step in the meeting's partition.
    let store = SqlitePersister::open(&db).unwrap();
    let child = child_app_id("meeting-m1", 1, "d1");
    let record = store
        .app(Some("platform"), &child)
        .await
        .unwrap()
        .expect("child stored");
    assert_eq!(record.spawning_parent.unwrap().app_id, "meeting-m1");
    let steps: Vec<(String, StepStatus)> = store
        .list_checkpoints(Some("platform"), &child)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.position, c.status))
        .collect();
    assert_eq!(
        steps,
        ["embed", "find_similar", "rerank"].map(|p| (p.to_owned(), StepStatus::Completed))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_embeds_nothing_and_a_new_meeting_only_its_own_discussions() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("burr.db");
    let first = run_on(&db, &["m2"], &Options::default()).await;
    assert_eq!(first.embeddings.total, 80 + 14);

    let again = run_on(&db, &["m2"], &Options::default()).await;
    assert_eq!(again.embeddings.total, 0, "{:?}", again.embeddings);
    assert_eq!(again.meetings[0].embeddings, 0);
    assert_eq!(
        serde_json::to_value(&again.meetings[0].discussions).unwrap(),
        serde_json::to_value(&first.meetings[0].discussions).unwrap(),
        "the resumed run publishes what the first one found"
    );

    // Another meeting on the same database: the past discussions and m2 are loaded, only
    // m3's discussions are embedded.
    let more = run_on(&db, &["m2", "m3"], &Options::default()).await;
    assert_eq!(more.embeddings.past, 0);
    assert_eq!(more.meeting("m2").unwrap().embeddings, 0);
    assert_eq!(more.meeting("m3").unwrap().embeddings, 12);
    assert!(more
        .embeddings
        .by_discussion
        .keys()
        .all(|k| k.starts_with("m3/")));
}

/// The order meetings finish in, with one child step at a time and a pause after each
/// embedding (so a meeting's children take far longer than the others take to queue).
async fn finish_order(urgent: &[&str]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        executor_concurrency: 1,
        urgent: urgent.iter().map(|s| (*s).to_owned()).collect(),
        settings: example_related_discussions::discussion::Settings {
            pause: std::time::Duration::from_millis(30),
            ..Default::default()
        },
        ..Options::default()
    };
    let report = run_on(&dir.path().join("burr.db"), &["m1", "m3"], &options).await;
    let mut meetings: Vec<_> = report.meetings.iter().collect();
    meetings.sort_by_key(|m| m.finished);
    meetings.iter().map(|m| m.id.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meetings_finish_in_start_order_unless_one_is_urgent() {
    // The executor admits the earlier meeting's children first: m1 finishes before m3
    // starts, instead of both finishing late.
    assert_eq!(finish_order(&[]).await, ["m1", "m3"]);
    // An urgent meeting's children go first.
    assert_eq!(finish_order(&["m3"]).await, ["m3", "m1"]);
}
