//! A restarted service restores the meetings events brought that published, also those
//! whose process stopped between the `publish` checkpoint and the run's finish; a
//! meeting stopped before `publish` is not past yet. With the real model, on a real
//! SQLite file.

mod common;

use std::sync::Arc;

use burr_core::application::RunOptions;
use burr_server::{Claim, Kind, RunInfo, RunStatus, Runs, Submission};
use example_related_discussions::batcher::BatchConfig;
use example_related_discussions::data::{Dataset, Discussion, Meeting};
use example_related_discussions::discussion::Settings;
use example_related_discussions::service::{MeetingEvent, MeetingKind, MeetingRef, Service};
use serde_json::json;

fn meeting(id: &str, titles: &[&str]) -> Meeting {
    Meeting {
        id: id.to_owned(),
        team: "growth".to_owned(),
        title: format!("Retro {id}"),
        date: "2026-12-04".to_owned(),
        discussions: titles
            .iter()
            .enumerate()
            .map(|(i, title)| Discussion {
                id: format!("d{i}"),
                title: (*title).to_owned(),
                notes: format!("We talked about {title}."),
                votes: 1,
                theme: None,
            })
            .collect(),
    }
}

fn service(backend: &burr_server::Backend, data: &Dataset) -> Service {
    Service::new(
        backend.cache(),
        data.clone(),
        common::model(),
        Settings::default(),
        BatchConfig::default(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meeting_stopped_after_its_publish_checkpoint_joins_the_past_on_restart() {
    let dir = tempfile::tempdir().unwrap();
    let backend = burr_server::open(&dir.path().join("burr.db"))
        .await
        .unwrap();
    let mut data = common::sample();
    data.meetings.truncate(1);
    let before = service(&backend, &data);
    let registry = Arc::new(before.registry());
    let runs = Runs::new(backend.queue(), Arc::clone(&registry));
    let published = meeting("m-published", &["Flaky deploys", "Pager noise"]);
    let stopped = meeting("m-stopped", &["Unclear tickets"]);
    let mut ids = Vec::new();
    for m in [&published, &stopped] {
        let inputs = json!({ "meeting": m });
        let run = runs
            .submit(Submission::new("meeting", inputs))
            .await
            .unwrap();
        ids.push(run.run.id);
    }
    // A worker claims both (they are running), and stops: one after its `publish`
    // checkpoint, before the run's finish; the other before `publish`.
    let claimed = backend
        .queue()
        .claim(&Claim {
            worker: "stopped-worker".to_owned(),
            queues: vec!["default".to_owned()],
            kinds: registry.versions(),
            limit: 2,
            lease_ttl_us: 60_000_000,
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    for run in &claimed {
        assert_eq!(run.status, RunStatus::Running);
        let which = if run.id == ids[0] {
            &published
        } else {
            &stopped
        };
        let event = MeetingEvent {
            meeting: MeetingRef::Meeting(which.clone()),
            force: false,
        };
        let mut app = MeetingKind(before.clone())
            .build(event, &RunInfo::of(run))
            .unwrap()
            .with_app_id(run.id.clone())
            .with_state_persister(backend.persister())
            .build()
            .await
            .unwrap();
        let options = if run.id == ids[0] {
            RunOptions::new()
        } else {
            RunOptions::new().halt_before(["publish"])
        };
        app.run(options).await.unwrap();
    }
    assert_eq!(before.index.timeline().holds(&published), Some(true));

    // The restarted service: the published meeting is past again, the other is not.
    let after = service(&backend, &data);
    let joined = after
        .restore(&*backend.queue(), &*backend.persister())
        .await
        .unwrap();
    assert_eq!(joined, 1);
    let timeline = after.index.timeline();
    assert_eq!(timeline.holds(&published), Some(true));
    assert_eq!(timeline.holds(&stopped), None);
    // A later meeting's past holds it, by id.
    let past = timeline.past_of("m-later");
    assert_eq!(past.joined, vec!["m-published".to_owned()]);
    let ids: Vec<&str> = timeline
        .past_entries(&past)
        .unwrap()
        .iter()
        .map(|e| e.id.as_str())
        .collect();
    assert!(ids.contains(&"m-published/d0"), "{ids:?}");
}
