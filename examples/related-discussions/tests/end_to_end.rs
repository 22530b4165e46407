//! The application end to end, in process: the real model, a real SQLite file, the first
//! sample (`data/sample.json`).

mod common;

use burr_core::parallel::child_app_id;
use burr_core::persistence::{AppRecords, History, SqlitePersister, StepStatus};
use example_related_discussions::run::{run, Options, Report};

async fn run_on(db: &std::path::Path, options: &Options) -> Report {
    run(&common::sample(), common::model(), db, options)
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
    let report = run_on(&db, &common::only(&["m1", "m3"])).await;

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
    // m1's past is the 40 past discussions; m3's adds m1's and m2's (8 + 7).
    assert_eq!(report.meeting("m1").unwrap().past, 40);
    assert_eq!(report.meeting("m3").unwrap().past, 55);
    // "Flaky CI tests" finds "CI pipeline keeps failing randomly", and so on.
    for (meeting, discussion, past) in [
        ("m1", "d1", "p01"),
        ("m1", "d2", "p03"),
        ("m1", "d3", "p05"),
    ] {
        assert_eq!(
            first_related(&report, meeting, discussion),
            past,
            "{meeting}/{discussion}"
        );
    }
    // Most voted first.
    let votes: Vec<u32> = report.meetings[0]
        .discussions
        .iter()
        .map(|d| d.votes)
        .collect();
    assert!(votes.windows(2).all(|w| w[0] >= w[1]), "{votes:?}");
    // Nothing embedded twice: what was embedded is what is stored.
    assert_eq!(report.embedded, common::stored_vectors(&db));
    assert_eq!(report.reranked, 14);

    // Each discussion ran as two child applications (embed; find_similar → rerank), keyed
    // by the discussion id, checkpointed step by step in the meeting's partition.
    let store = SqlitePersister::open(&db).unwrap();
    let app_id = &report.meeting("m1").unwrap().app_id;
    assert!(app_id.starts_with("meeting-m1-"), "{app_id}");
    for (seq, positions) in [(1, &["embed"][..]), (3, &["find_similar", "rerank"][..])] {
        let child = child_app_id(app_id, seq, "d1");
        let record = store
            .app(Some("platform"), &child)
            .await
            .unwrap()
            .expect("child stored");
        assert_eq!(&record.spawning_parent.unwrap().app_id, app_id);
        let steps: Vec<(String, StepStatus)> = store
            .list_checkpoints(Some("platform"), &child)
            .await
            .unwrap()
            .into_iter()
            .map(|c| (c.position, c.status))
            .collect();
        let expected: Vec<(String, StepStatus)> = positions
            .iter()
            .map(|p| ((*p).to_owned(), StepStatus::Completed))
            .collect();
        assert_eq!(steps, expected);
    }

    // The tracker, attached by default, recorded every step of the meeting and of its
    // 16 children (8 embed, 8 relate), with start and end times.
    let tracked = burr_tracker::inspect::Database::open(&db).unwrap();
    let meeting = tracked.find(app_id, Some("platform")).unwrap();
    let steps: Vec<String> = tracked
        .steps(meeting)
        .unwrap()
        .into_iter()
        .inspect(|s| assert!(s.duration_us().is_some(), "{} has no times", s.action))
        .map(|s| s.action)
        .collect();
    assert_eq!(
        steps,
        [
            "voting_ended",
            "embed_discussions",
            "index_past",
            "relate",
            "publish"
        ]
    );
    let children = tracked.children(meeting);
    assert_eq!(children.len(), 16);
    for child in children {
        let steps = tracked.steps(child).unwrap();
        assert!(!steps.is_empty() && steps.iter().all(|s| s.duration_us().is_some()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_embeds_nothing_and_a_new_meeting_only_its_own_discussions() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("burr.db");
    let first = run_on(&db, &common::only(&["m2"])).await;
    // The 40 past documents for the index; m2's 7 documents and 7 bodies; the bodies of
    // the candidates it met.
    assert!(first.embedded > 40 + 14, "{}", first.embedded);
    assert_eq!(first.embedded, common::stored_vectors(&db));

    let again = run_on(&db, &common::only(&["m2"])).await;
    assert_eq!((again.embedded, again.reranked), (0, 0));
    assert_eq!(
        serde_json::to_value(&again.meetings[0].discussions).unwrap(),
        serde_json::to_value(&first.meetings[0].discussions).unwrap(),
        "the resumed run publishes what the first one found"
    );

    // Another meeting on the same database: m2 is resumed; m3 embeds only what is new
    // to the store (its own texts, m1's documents it has as past, bodies of new
    // candidates), never a stored text.
    let stored = common::stored_vectors(&db);
    let more = run_on(&db, &common::only(&["m2", "m3"])).await;
    assert_eq!(more.reranked, 6);
    assert_eq!(stored + more.embedded, common::stored_vectors(&db));
    assert_eq!(more.meeting("m2").unwrap().reused, first.meetings[0].reused);
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
        ..common::only(&["m1", "m3"])
    };
    let report = run_on(&dir.path().join("burr.db"), &options).await;
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
