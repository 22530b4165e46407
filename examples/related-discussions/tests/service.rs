//! The example as a service: the real binary (`serve`), the real model, real HTTP on
//! loopback, one worker; what the tracker and the run queue wrote is read from the
//! SQLite file.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use example_related_discussions::data::{meeting_header, Dataset};
use example_related_discussions::run::document_of;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_related-discussions");

/// The service on `db` over the first sample, and its address.
struct Service {
    child: Child,
    base: String,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(db: impl AsRef<std::ffi::OsStr>, extra: &[&str]) -> Service {
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/data/sample.json");
    let mut child = Command::new(BIN)
        .arg("serve")
        .arg("--db")
        .arg(db)
        .args(["--data", sample, "--addr", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut addr = None;
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.strip_prefix("serving http://") {
                addr = Some(rest.trim_end_matches('/').to_owned());
            }
            if line.starts_with("worker ready") {
                let _ = tx.send(addr.take());
            }
            eprintln!("[serve] {line}");
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the service did not become ready")
        .expect("the service printed no address");
    Service {
        child,
        base: format!("http://{addr}"),
    }
}

async fn submit(http: &reqwest::Client, base: &str, body: Value) -> (u16, Value) {
    let response = http
        .post(format!("{base}/v1/runs"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// The run `id` once it finished (it must succeed).
async fn finished(http: &reqwest::Client, base: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        let view: Value = http
            .get(format!("{base}/v1/runs/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let run = &view["run"];
        match run["status"].as_str() {
            Some("succeeded") => return run.clone(),
            Some("failed" | "cancelled") => panic!("run {id} did not succeed: {run}"),
            _ => {}
        }
        assert!(Instant::now() < deadline, "run {id} did not finish: {run}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// When the first step of `action` of a child application of `run_id` started.
fn first_child_step(db: &Path, run_id: &str, action: &str) -> (i64, i64, i64) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(
        "SELECT min(s.started_at_us), max(s.started_at_us), count(*) \
         FROM burr_tracker_steps s JOIN burr_tracker_apps a ON a.id = s.app \
         WHERE a.spawning_parent LIKE '%' || ?1 || '%' AND s.action = ?2",
        rusqlite::params![run_id, action],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .unwrap()
}

/// How many `embed_rows` steps of the backfill `run_id`'s children started in `(lo, hi)`.
fn backfill_starts_between(db: &Path, run_id: &str, lo: i64, hi: i64) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(
        "SELECT count(*) FROM burr_tracker_steps s JOIN burr_tracker_apps a ON a.id = s.app \
         WHERE a.spawning_parent LIKE '%' || ?1 || '%' AND s.action = 'embed_rows' \
         AND s.started_at_us > ?2 AND s.started_at_us < ?3",
        rusqlite::params![run_id, lo, hi],
        |r| r.get(0),
    )
    .unwrap()
}

/// The run events of `run_id` of type `kind`: (at_us, data).
fn events(db: &Path, run_id: &str, kind: &str) -> Vec<(i64, Value)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT at_us, data FROM burr_run_events WHERE run_id = ?1 AND kind = ?2 ORDER BY id",
        )
        .unwrap();
    stmt.query_map(rusqlite::params![run_id, kind], |r| {
        Ok((r.get(0)?, r.get::<_, String>(1)?))
    })
    .unwrap()
    .map(|r| {
        let (at, data) = r.unwrap();
        (at, serde_json::from_str(&data).unwrap())
    })
    .collect()
}

fn at(run: &Value, field: &str) -> i64 {
    run[field]
        .as_i64()
        .unwrap_or_else(|| panic!("{field} of {run}"))
}

/// A backfill running, then two meetings and an urgent one: the urgent one finishes
/// first, the earlier meeting's discussions start before the later one's, the backfill
/// (submitted first) starts no child while meeting children wait; a repeated voting-ended event starts nothing
/// new; each discussion's related list is announced before its meeting finishes.
#[test]
fn urgent_meetings_first_backfill_last_events_once() {
    common::require_model_files();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("burr.db");
    let service = serve(&db, &["--concurrency", "4", "--pause-ms", "150"]);
    let base = service.base.clone();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let http = reqwest::Client::new();
        let (status, backfill) = submit(
            &http,
            &base,
            json!({"kind": "backfill", "inputs": {"chunk": 1}}),
        )
        .await;
        assert_eq!(status, 201, "{backfill}");
        assert_eq!(backfill["priority"], -1_000_000, "the kind sets it");
        let backfill = backfill["id"].as_str().unwrap().to_owned();
        // The backfill is under way when the meetings come.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut ids = Vec::new();
        for (meeting, priority) in [("m1", 0), ("m2", 0), ("m3", 5)] {
            let (status, run) = submit(
                &http,
                &base,
                json!({"kind": "meeting", "inputs": {"meeting": meeting},
                       "idempotency_key": meeting, "priority": priority}),
            )
            .await;
            assert_eq!(status, 201, "{run}");
            ids.push(run["id"].as_str().unwrap().to_owned());
        }
        // An unknown meeting is refused at submission, naming the field.
        let (status, refused) = submit(
            &http,
            &base,
            json!({"kind": "meeting", "inputs": {"meeting": "m9"}, "idempotency_key": "m9"}),
        )
        .await;
        assert_eq!(status, 422, "{refused}");
        assert_eq!(refused["field"], "inputs.meeting", "{refused}");
        // The same voting-ended event again: the same run, nothing new.
        let (status, again) = submit(
            &http,
            &base,
            json!({"kind": "meeting", "inputs": {"meeting": "m1"},
                   "idempotency_key": "m1", "priority": 0}),
        )
        .await;
        assert_eq!(status, 200, "{again}");
        assert_eq!(again["id"].as_str().unwrap(), ids[0]);

        let mut runs = Vec::new();
        for id in &ids {
            runs.push(finished(&http, &base, id).await);
        }
        let backfill_run = finished(&http, &base, &backfill).await;
        let (m1, m2, m3) = (&runs[0], &runs[1], &runs[2]);
        eprintln!(
            "finished: m1 {} m2 {} m3 {} backfill {}",
            at(m1, "finished_at_us"),
            at(m2, "finished_at_us"),
            at(m3, "finished_at_us"),
            at(&backfill_run, "finished_at_us")
        );
        assert!(
            at(m3, "finished_at_us") < at(m1, "finished_at_us")
                && at(m3, "finished_at_us") < at(m2, "finished_at_us"),
            "the urgent meeting finishes first"
        );
        assert!(
            at(&backfill_run, "finished_at_us") > at(m3, "finished_at_us"),
            "the backfill yields to the urgent meeting"
        );

        // Tracker timestamps from the database.
        let (m1_first, _, m1_children) = first_child_step(&db, &ids[0], "embed");
        let (m2_first, _, m2_children) = first_child_step(&db, &ids[1], "embed");
        let (m3_first, _, _) = first_child_step(&db, &ids[2], "embed");
        let (backfill_first, _, backfill_children) = first_child_step(&db, &backfill, "embed_rows");
        assert_eq!((m1_children, m2_children), (8, 7));
        assert!(m1_first < m2_first, "m1's discussions start before m2's");
        assert!(
            backfill_first < m1_first.min(m2_first).min(m3_first),
            "the backfill was running when the meetings came"
        );
        // 40 past discussions and the 21 of the meetings, a child each.
        assert_eq!(backfill_children, 61);
        // From the first meeting child's start to the last one's, meeting children wait
        // for a slot: the backfill starts none of its own (it yields at its next child
        // boundary; at most the children admitted just before may start late).
        let lo = m1_first.min(m2_first).min(m3_first);
        let hi = [&ids[0], &ids[1], &ids[2]]
            .iter()
            .map(|id| first_child_step(&db, id, "embed").1)
            .max()
            .unwrap();
        let during = backfill_starts_between(&db, &backfill, lo, hi);
        eprintln!("backfill children started while meeting children waited: {during}");
        assert!(
            during <= 2,
            "the backfill yields: {during} of its children started"
        );

        // Announced as each child finished, before the meeting did.
        let announced = events(&db, &ids[0], "announced");
        assert_eq!(announced.len(), 8, "one per discussion of m1");
        let first = announced.iter().map(|(at, _)| *at).min().unwrap();
        assert!(first < at(m1, "finished_at_us"));
        assert_eq!(announced[0].1["name"], "related");
        assert!(announced[0].1["data"]["related"].is_array());
        // Exactly one run per meeting, though m1's event came twice.
        let conn = rusqlite::Connection::open(&db).unwrap();
        let meetings: i64 = conn
            .query_row(
                "SELECT count(*) FROM burr_runs WHERE kind = 'meeting'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(meetings, 3);
    });
}

/// An ad-hoc query for a text a meeting is embedding: the text is embedded once, by
/// one of them; the other waits for it or finds it stored. Then `force` re-embeds.
#[test]
fn ad_hoc_query_shares_the_meetings_embedding() {
    common::require_model_files();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("burr.db");
    let service = serve(&db, &["--concurrency", "4"]);
    let data = Dataset::sample();
    let m2 = data.meetings.iter().find(|m| m.id == "m2").unwrap();
    let d = &m2.discussions[0];
    let text = document_of(
        &meeting_header(&m2.team, &m2.title, &m2.date),
        &d.title,
        &d.notes,
    );
    let base = service.base.clone();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let http = reqwest::Client::new();
        let (_, meeting) = submit(
            &http,
            &base,
            json!({"kind": "meeting", "inputs": {"meeting": "m2"}, "idempotency_key": "m2"}),
        )
        .await;
        let (_, query) = submit(
            &http,
            &base,
            json!({"kind": "ad-hoc", "inputs": {"text": text}}),
        )
        .await;
        assert_eq!(query["priority"], 1_000_000, "ad-hoc queries go first");
        let meeting = finished(&http, &base, meeting["id"].as_str().unwrap()).await;
        let query = finished(&http, &base, query["id"].as_str().unwrap()).await;
        let by_meeting = meeting["result"]["embedded"].as_u64().unwrap();
        let by_query = query["result"]["embedded"].as_u64().unwrap();
        eprintln!("embedded by the meeting {by_meeting}, by the query {by_query}");
        assert_eq!(
            by_meeting + by_query,
            7,
            "m2's 7 documents, the query's among them, each embedded once"
        );

        // `force`: the same meeting again re-embeds its 7 documents though they are stored.
        let (status, forced) = submit(
            &http,
            &base,
            json!({"kind": "meeting", "inputs": {"meeting": "m2", "force": true},
                   "idempotency_key": "m2-force"}),
        )
        .await;
        assert_eq!(status, 201, "{forced}");
        let forced = finished(&http, &base, forced["id"].as_str().unwrap()).await;
        assert_eq!(forced["result"]["embedded"], 7, "{forced}");
        assert_eq!(forced["result"]["reused"], 0, "{forced}");
    });
}

/// A meeting of the event itself, not of the dataset: `{"meeting": {id, team, title,
/// date, discussions}}`.
fn new_meeting(id: &str, discussions: &[(&str, &str, &str)]) -> Value {
    let discussions: Vec<Value> = discussions
        .iter()
        .map(|(id, title, notes)| json!({"id": id, "title": title, "notes": notes, "votes": 1}))
        .collect();
    json!({"id": id, "team": "growth", "title": format!("Retro {id}"), "date": "2026-12-04",
           "discussions": discussions})
}

/// The ids of the past discussions related to discussion `d` of a finished meeting run.
fn related_ids(run: &Value, d: &str) -> Vec<String> {
    run["result"]["related"][d]
        .as_array()
        .unwrap_or_else(|| panic!("no related list for {d}: {run}"))
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

/// A "voting ended" event can bring the meeting itself: it is related to the past, and
/// once it finished its discussions are the past of later meetings — also after the
/// service restarts. The same event again is the same run; another meeting under the
/// same id, or one without discussions, is refused naming the field.
#[test]
fn a_meeting_the_event_brings_is_related_then_joins_the_past_across_a_restart() {
    common::require_model_files();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("burr.db");
    event_meetings(db.to_str().unwrap());
}

/// The same, the service on a PostgreSQL database (its store, queue and tracker there).
#[test]
fn on_postgres_a_meeting_the_event_brings_joins_the_past_across_a_restart() {
    common::require_model_files();
    event_meetings(&burr_postgres::testing::TestServer::shared().fresh_database());
}

/// How many entries the database's work cache (the store's vectors) holds.
fn stored(runtime: &tokio::runtime::Runtime, db: &str) -> u64 {
    runtime.block_on(async {
        let backend = burr_server::open(db).await.unwrap();
        backend.cache().store().size(None).await.unwrap().entries
    })
}

fn event_meetings(db: &str) {
    let llamas = (
        "llamas",
        "The office llamas need a grooming budget",
        "Nobody owns the llama grooming schedule and the costs land on the wrong team's budget every quarter.",
    );
    let flaky = (
        "flaky",
        "Flaky CI tests",
        "The integration suite failed on many merges and passed when re-run; people retry without reading logs.",
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let http = reqwest::Client::new();
    let first = new_meeting("new-1", &[llamas, flaky]);
    let event = |meeting: &Value, key: &str| json!({"kind": "meeting", "inputs": {"meeting": meeting}, "idempotency_key": key});
    {
        let service = serve(db, &[]);
        let base = service.base.clone();
        runtime.block_on(async {
            let (status, run) = submit(&http, &base, event(&first, "new-1")).await;
            assert_eq!(status, 201, "{run}");
            let run = finished(&http, &base, run["id"].as_str().unwrap()).await;
            // Its past is the dataset: the flaky-tests card finds the sample's.
            assert!(
                related_ids(&run, "flaky").iter().any(|id| id == "m1/d1"),
                "{run}"
            );
            assert!(
                related_ids(&run, "llamas")
                    .iter()
                    .all(|id| !id.starts_with("new-1/")),
                "a meeting is not its own past: {run}"
            );
            // The same event again: the same run, nothing new.
            let (status, again) = submit(&http, &base, event(&first, "new-1")).await;
            assert_eq!(status, 200, "{again}");
            assert_eq!(again["id"], run["id"]);
            // A later meeting finds the finished one's discussion.
            let second = new_meeting("new-2", &[("grooming", llamas.1, llamas.2)]);
            let (_, run) = submit(&http, &base, event(&second, "new-2")).await;
            let run = finished(&http, &base, run["id"].as_str().unwrap()).await;
            assert_eq!(
                related_ids(&run, "grooming").first().map(String::as_str),
                Some("new-1/llamas"),
                "{run}"
            );
            // Refused, naming the field.
            let other = new_meeting("new-1", &[("x", "Something else", "Entirely.")]);
            let (status, problem) = submit(&http, &base, event(&other, "other")).await;
            assert_eq!(status, 422, "{problem}");
            assert!(problem.to_string().contains("meeting.id"), "{problem}");
            let empty = new_meeting("new-9", &[]);
            let (status, problem) = submit(&http, &base, event(&empty, "empty")).await;
            assert_eq!(status, 422, "{problem}");
            assert!(
                problem.to_string().contains("meeting.discussions"),
                "{problem}"
            );
        });
    }
    // Restarted: the meetings that finished are the past again, from the store.
    let before = stored(&runtime, db);
    let service = serve(db, &[]);
    let base = service.base.clone();
    runtime.block_on(async {
        let third = new_meeting("new-3", &[("again", llamas.1, llamas.2)]);
        let (_, run) = submit(&http, &base, event(&third, "new-3")).await;
        let run = finished(&http, &base, run["id"].as_str().unwrap()).await;
        let related = related_ids(&run, "again");
        assert!(
            related.iter().any(|id| id == "new-1/llamas")
                && related.iter().any(|id| id == "new-2/grooming"),
            "{run}"
        );
        // Only its own document (under its own meeting's header) is new: the past
        // came back from the store.
        assert_eq!(run["result"]["embedded"], 1, "{run}");
    });
    assert_eq!(stored(&runtime, db), before + 1);
}
