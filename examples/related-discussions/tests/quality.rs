//! The labelled dataset with the real model: the theme hit rates, and the embedding store
//! counted through the database across runs (each a new store, as a restarted process
//! would open).

mod common;

use example_related_discussions::data::{Dataset, PastDiscussion};
use example_related_discussions::run::{run, Options, Report};

async fn run_on(db: &std::path::Path, data: &Dataset, options: &Options) -> Report {
    run(data, common::model(), db, options).await.unwrap()
}

fn related(report: &Report) -> Vec<(String, Vec<String>)> {
    report
        .meetings
        .iter()
        .flat_map(|m| {
            m.discussions.iter().map(move |d| {
                (
                    format!("{}/{}", m.id, d.id),
                    d.related.iter().map(|r| r.id.clone()).collect(),
                )
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_labelled_set_scores_and_nothing_is_embedded_twice() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("burr.db");
    let data = Dataset::labelled();
    let discussions: usize = data.meetings.iter().map(|m| m.discussions.len()).sum();

    let first = run_on(&db, &data, &Options::default()).await;
    let q = first.quality.clone().expect("the dataset is labelled");
    eprintln!("quality: {q:?}");
    assert!(q.evaluated >= 280, "{q:?}");
    assert!(q.top3 >= 0.70, "top-3 theme hit rate {:.3} < 0.70", q.top3);
    assert!(q.top1 <= q.top3);
    // Each discussion's document and body, each embedded once.
    assert_eq!(first.embedded, 2 * discussions);
    assert_eq!(common::stored_vectors(&db), 2 * discussions);
    assert_eq!(first.reranked, discussions);
    // The children's requests were coalesced: far fewer model calls than texts.
    assert!(
        first.batches * 8 <= first.embedded,
        "{} model calls for {} texts",
        first.batches,
        first.embedded
    );

    // A rerun resumes every meeting: nothing embedded, nothing reranked, the same output.
    let again = run_on(&db, &data, &Options::default()).await;
    assert_eq!((again.embedded, again.reused, again.reranked), (0, 0, 0));
    assert_eq!(related(&again), related(&first));
    assert_eq!(again.quality, first.quality);

    // Another --top-k is not silently ignored: every meeting relates again, from the
    // stored vectors (every document found, nothing embedded).
    let options = Options {
        settings: example_related_discussions::discussion::Settings {
            top_k: 1,
            ..Default::default()
        },
        ..Options::default()
    };
    let top1 = run_on(&db, &data, &options).await;
    assert_eq!(top1.embedded, 0);
    assert_eq!(top1.reused, discussions);
    assert_eq!(top1.reranked, discussions);
    assert!(top1
        .meetings
        .iter()
        .flat_map(|m| &m.discussions)
        .all(|d| d.related.len() <= 1));
    assert_ne!(top1.meetings[5].app_id, first.meetings[5].app_id);

    // One more past discussion: only its texts are embedded (its document for the index,
    // its body if a rerank meets it), though every meeting relates again.
    let mut more = data.clone();
    more.past.push(PastDiscussion {
        id: "extra".into(),
        team: "payments".into(),
        meeting: "Sprint 30 retrospective".into(),
        date: "2025-12-22".into(),
        title: "Releases pile up before the holidays".into(),
        notes: "Everyone rushed their changes out before the break and two of them broke checkout."
            .into(),
        theme: Some("deploy".into()),
    });
    let added = run_on(&db, &more, &Options::default()).await;
    assert!(
        (1..=2).contains(&added.embedded),
        "embedded {}",
        added.embedded
    );
    assert_eq!(added.reranked, discussions);
}
