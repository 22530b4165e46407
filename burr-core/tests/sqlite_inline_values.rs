//! `SqlitePersister`'s small values kept in their checkpoint's row, compacted into
//! `burr_values` now and then: long histories that mix both, restarts between two
//! compactions, prunes, corrupt rows, and databases of schema version 1.

use std::path::Path;

use burr_core::persistence::{
    Checkpoint, History, PersistenceError, Persister, Prune, SqlitePersister, StepStatus,
};
use burr_core::State;
use serde_json::json;

mod common;
use common::{assert_corrupt, failed, state_at, step, temp};

/// The checkpoint of attempt `attempt` at a step that turned `before` into `after`.
fn checkpoint(app_id: &str, seq: u64, attempt: u32, before: &State, after: &State) -> Checkpoint {
    Checkpoint {
        attempt,
        ..step(app_id, seq, before, after)
    }
}

/// A deterministic stream of numbers (an LCG): the same history on every run.
struct Numbers(u64);

impl Numbers {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

/// Each checkpoint of an app, in order: whether it is a base (its values are in
/// `burr_values`, its `inline_values` NULL).
fn bases(path: &Path, app_id: &str) -> Vec<bool> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut statement = conn
        .prepare(
            "SELECT inline_values IS NULL FROM burr_checkpoints \
             WHERE app = (SELECT id FROM burr_apps WHERE app_id = ?1) \
             ORDER BY sequence_id, attempt",
        )
        .unwrap();
    let rows = statement
        .query_map([app_id], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    rows
}

/// The longest run of checkpoints with inline values: how far a load reads back.
fn longest_inline_run(path: &Path, app_id: &str) -> usize {
    bases(path, app_id)
        .split(|&base| base)
        .map(<[bool]>::len)
        .max()
        .unwrap_or(0)
}

/// How many checkpoints with inline values may follow a base.
const RUN: usize = SqlitePersister::COMPACT_AFTER as usize;

fn value_rows(path: &Path) -> i64 {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row("SELECT count(*) FROM burr_values", [], |r| r.get(0))
        .unwrap()
}

/// Save a history of `steps` steps mixing small values, values too large to keep in the
/// row, deletions, failed attempts and retries, and steps that change nothing; reopen the
/// persister (a restarted process) every `reopen_every` steps. Returns the state stored
/// at each sequence id, and the keys each checkpoint saved changed, in order.
async fn mixed_history(
    path: &Path,
    app_id: &str,
    steps: u64,
    reopen_every: u64,
) -> (Vec<State>, Vec<Vec<String>>) {
    mixed_history_seeded(path, app_id, steps, reopen_every, steps ^ reopen_every).await
}

/// [`mixed_history`] from the random stream `seed`.
async fn mixed_history_seeded(
    path: &Path,
    app_id: &str,
    steps: u64,
    reopen_every: u64,
    seed: u64,
) -> (Vec<State>, Vec<Vec<String>>) {
    let mut numbers = Numbers(seed);
    let mut persister = SqlitePersister::open(path).unwrap();
    let mut state = State::new().update("untouched", "x".repeat(500));
    let mut states = Vec::new();
    let mut changed = Vec::new();
    for seq in 0..steps {
        if seq > 0 && seq % reopen_every == 0 {
            persister = SqlitePersister::open(path).unwrap();
        }
        let key = format!("k{}", numbers.next(6));
        // A value too large for a row now and then, far enough apart for runs of
        // checkpoints with inline values to reach the compaction.
        let choice = if seq % 200 == 199 {
            5
        } else {
            numbers.next(10)
        };
        let next = match choice {
            0..=4 => state.update(&key, numbers.next(1000)),
            5 if seq % 200 == 199 => {
                state.update(&key, "y".repeat(SqlitePersister::INLINE_MAX_BYTES + 1))
            }
            5 => state.update(&key, json!({"small": seq})),
            6 => state.without([key.as_str()]),
            7 => state.clone(),
            8 => state
                .update(&key, json!(null))
                .update("list", json!([seq, "s"])),
            _ => {
                // A failed attempt (or two), then the retry that completes.
                let attempts = 1 + numbers.next(2) as u32;
                for attempt in 1..=attempts {
                    persister
                        .save(&failed(app_id, seq, attempt, &state))
                        .await
                        .unwrap();
                    changed.push(Vec::new());
                }
                let next = state.update(&key, format!("retried {seq}"));
                let retry = checkpoint(app_id, seq, attempts + 1, &state, &next);
                persister.save(&retry).await.unwrap();
                changed.push(retry.delta.keys().map(str::to_owned).collect());
                states.push(next.clone());
                state = next;
                continue;
            }
        };
        let saved = checkpoint(app_id, seq, 1, &state, &next);
        persister.save(&saved).await.unwrap();
        changed.push(saved.delta.keys().map(str::to_owned).collect());
        states.push(next.clone());
        state = next;
    }
    (states, changed)
}

/// Every checkpoint of `app_id` lists the keys its step changed (none for a failed
/// attempt), whether its values are inline, compacted or in `burr_values`.
async fn assert_changed_keys(persister: &SqlitePersister, app_id: &str, changed: &[Vec<String>]) {
    let rows = persister.list_checkpoints(None, app_id).await.unwrap();
    let listed: Vec<Vec<String>> = rows.into_iter().map(|row| row.changed_keys).collect();
    assert_eq!(listed, changed);
}

async fn assert_every_state_loads(persister: &SqlitePersister, app_id: &str, states: &[State]) {
    for (seq, expected) in states.iter().enumerate() {
        let loaded = persister
            .load(None, app_id, Some(seq as u64))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no checkpoint at {seq}"));
        assert_eq!(&loaded.state, expected, "state at sequence id {seq}");
        assert_eq!(loaded.status, StepStatus::Completed, "at {seq}");
    }
    let latest = persister.load(None, app_id, None).await.unwrap().unwrap();
    assert_eq!(Some(&latest.state), states.last());
}

#[tokio::test]
async fn a_long_mixed_history_loads_exactly_at_every_sequence_id() {
    let (_dir, path) = temp();
    let (states, changed) = mixed_history(&path, "app", 3 * RUN as u64, 1000).await;
    // The compaction turns the last of a run into a base: RUN - 1 remain inline.
    let run = longest_inline_run(&path, "app");
    assert!(
        (RUN - 1..=RUN).contains(&run),
        "runs of checkpoints with inline values are compacted after {RUN}: {run}"
    );
    assert!(value_rows(&path) > 0);
    let reopened = SqlitePersister::open(&path).unwrap();
    assert_every_state_loads(&reopened, "app", &states).await;
    assert_changed_keys(&reopened, "app", &changed).await;
}

#[tokio::test]
async fn restarts_in_the_middle_of_a_batch_continue_it() {
    let (_dir, path) = temp();
    // A new persister every 37 steps: it knows nothing of the batch under way.
    let (states, changed) = mixed_history(&path, "app", 2 * RUN as u64 + 50, 37).await;
    assert!(longest_inline_run(&path, "app") <= RUN);
    let reopened = SqlitePersister::open(&path).unwrap();
    assert_every_state_loads(&reopened, "app", &states).await;
    assert_changed_keys(&reopened, "app", &changed).await;
}

/// A writer that saved every checkpoint since the base compacts from the state it knows;
/// a restarted one reads the rows back. Both compact at the same checkpoints, and every
/// state loads back from either file.
#[tokio::test]
async fn a_compaction_from_the_known_state_keeps_what_one_from_the_rows_keeps() {
    let (_dir, known) = temp();
    let (_other, read_back) = temp();
    let steps = 3 * RUN as u64 + 60;
    let (states, _) = mixed_history_seeded(&known, "app", steps, u64::MAX, 11).await;
    let (same, _) = mixed_history_seeded(&read_back, "app", steps, 1, 11).await;
    assert_eq!(states, same, "the same history");
    let compacted = bases(&known, "app").iter().filter(|&&base| base).count();
    assert!(compacted >= 4, "{compacted} bases");
    assert_eq!(bases(&known, "app"), bases(&read_back, "app"));
    assert!(value_rows(&known) >= 8, "compactions wrote the values");
    for path in [&known, &read_back] {
        let reopened = SqlitePersister::open(path).unwrap();
        assert_every_state_loads(&reopened, "app", &states).await;
    }
}

#[tokio::test]
async fn small_steps_write_no_value_rows_until_compacted() {
    let (_dir, path) = temp();
    let persister = SqlitePersister::open(&path).unwrap();
    let expected_at = |seq: u64| {
        (0..=seq.min(RUN as u64 - 1))
            .fold(State::new(), |s, i| {
                s.update("count", i).update(format!("k{}", i % 3), i)
            })
            .update("count", seq)
    };
    let mut state = State::new();
    for seq in 0..RUN as u64 {
        let next = state
            .update("count", seq)
            .update(format!("k{}", seq % 3), seq);
        persister
            .save(&checkpoint("app", seq, 1, &state, &next))
            .await
            .unwrap();
        state = next;
    }
    assert_eq!(value_rows(&path), 0);
    assert_eq!(longest_inline_run(&path, "app"), RUN);
    let last = RUN as u64;
    let next = state.update("count", last);
    persister
        .save(&checkpoint("app", last, 1, &state, &next))
        .await
        .unwrap();
    assert_eq!(
        value_rows(&path),
        4,
        "each key changed since the start, once, at the last checkpoint compacted"
    );
    let mut expected = vec![false; RUN + 1];
    expected[RUN - 1] = true;
    assert_eq!(bases(&path, "app"), expected);
    // A value too large for the row compacts first, then is written as a row.
    let large = next.update("text", "z".repeat(SqlitePersister::INLINE_MAX_BYTES + 1));
    persister
        .save(&checkpoint("app", last + 1, 1, &next, &large))
        .await
        .unwrap();
    assert_eq!(&bases(&path, "app")[RUN - 1..], [true, true, true]);
    assert_eq!(value_rows(&path), 6);
    assert_eq!(state_at(&persister, "app", None).await, large);
    for seq in [10, last - 1, last] {
        assert_eq!(
            state_at(&persister, "app", Some(seq)).await,
            expected_at(seq),
            "at {seq}"
        );
    }
}

#[tokio::test]
async fn a_prune_in_the_middle_of_a_batch_keeps_every_kept_state() {
    let (_dir, path) = temp();
    let (states, _) = mixed_history(&path, "app", RUN as u64 + 90, 1000).await;
    let persister = SqlitePersister::open(&path).unwrap();
    let before = persister.list_checkpoints(None, "app").await.unwrap().len();
    let removed = persister.prune(None, "app", 40).await.unwrap();
    assert_eq!(removed, before - 40);
    assert!(
        bases(&path, "app")[0],
        "the oldest kept checkpoint is a base"
    );
    let kept = persister.list_checkpoints(None, "app").await.unwrap();
    let first = kept[0].sequence_id as usize;
    for (seq, expected) in states.iter().enumerate().skip(first) {
        assert_eq!(
            &state_at(&persister, "app", Some(seq as u64)).await,
            expected,
            "at {seq}"
        );
    }
    // And the history goes on from the pruned one.
    let last = states.last().unwrap();
    let next = last.update("after", "prune");
    persister
        .save(&checkpoint("app", states.len() as u64, 1, last, &next))
        .await
        .unwrap();
    assert_eq!(state_at(&persister, "app", None).await, next);
}

#[tokio::test]
async fn corrupt_inline_values_name_the_app_and_sequence_id() {
    let (_dir, path) = temp();
    let persister = SqlitePersister::open(&path).unwrap();
    let mut state = State::new();
    for seq in 0..3u64 {
        let next = state.update("a", seq);
        persister
            .save(&checkpoint("app", seq, 1, &state, &next))
            .await
            .unwrap();
        state = next;
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "UPDATE burr_checkpoints SET inline_values = '[[\"a\", 1, 2]]' WHERE sequence_id = 1",
        [],
    )
    .unwrap();
    drop(conn);
    let fresh = SqlitePersister::open(&path).unwrap();
    for seq in [Some(1), Some(2), None] {
        let error = fresh.load(None, "app", seq).await.unwrap_err();
        assert_corrupt(&error, "app", 1, &path, "a");
    }
    // The checkpoint before it still loads.
    assert_eq!(
        state_at(&fresh, "app", Some(0)).await,
        State::new().update("a", 0)
    );
}

/// The schema of burr-rs databases of version 1, as that version wrote it.
const VERSION_1: &str = "
PRAGMA application_id = 1112887890;
PRAGMA user_version = 1;
PRAGMA journal_mode = WAL;
CREATE TABLE burr_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE burr_apps (
    id INTEGER PRIMARY KEY AUTOINCREMENT, partition_key TEXT NOT NULL, app_id TEXT NOT NULL,
    created_at_us INTEGER NOT NULL, fork_parent TEXT, spawning_parent TEXT,
    UNIQUE (partition_key, app_id));
CREATE TABLE burr_checkpoints (
    app INTEGER NOT NULL, sequence_id INTEGER NOT NULL, attempt INTEGER NOT NULL,
    position TEXT NOT NULL, status TEXT NOT NULL, prior_step TEXT,
    created_at_us INTEGER NOT NULL, changed_keys TEXT NOT NULL, error TEXT,
    PRIMARY KEY (app, sequence_id, attempt)) WITHOUT ROWID;
CREATE TABLE burr_values (
    app INTEGER NOT NULL, key TEXT NOT NULL, sequence_id INTEGER NOT NULL, value TEXT,
    PRIMARY KEY (app, key, sequence_id)) WITHOUT ROWID;
CREATE TABLE burr_leases (
    partition_key TEXT NOT NULL, app_id TEXT NOT NULL, holder TEXT NOT NULL,
    host TEXT NOT NULL, machine TEXT NOT NULL, pid INTEGER NOT NULL, pid_started INTEGER,
    acquired_at_us INTEGER NOT NULL, expires_at_us INTEGER NOT NULL,
    PRIMARY KEY (partition_key, app_id)) WITHOUT ROWID;
INSERT INTO burr_meta VALUES ('schema_version', '1'), ('created_by', 'burr-rs 0.1.0');
INSERT INTO burr_apps VALUES (1, '', 'old', 1700000000000000, NULL, NULL);
INSERT INTO burr_checkpoints VALUES
    (1, 0, 1, 'start', 'completed', 'start', 1700000000000000, '[\"count\",\"name\"]', NULL),
    (1, 1, 1, 'increment', 'completed', 'increment', 1700000001000000, '[\"count\"]', NULL);
INSERT INTO burr_values VALUES (1, 'count', 0, '0'), (1, 'name', 0, '\"old\"'), (1, 'count', 1, '1');
";

#[tokio::test]
async fn a_version_1_database_is_migrated_and_its_history_kept() {
    let (_dir, path) = temp();
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(VERSION_1)
        .unwrap();
    let refused = SqlitePersister::open_read_only(&path).unwrap_err();
    assert!(
        matches!(&refused, PersistenceError::NotABurrDatabase { reason, .. } if reason.contains("version 1")),
        "{refused}"
    );
    let persister = SqlitePersister::open(&path).unwrap();
    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SqlitePersister::SCHEMA_VERSION);
    let old = State::new().update("count", 1).update("name", "old");
    let loaded = persister.load(None, "old", None).await.unwrap().unwrap();
    assert_eq!((loaded.sequence_id, &loaded.state), (1, &old));
    assert_eq!(
        state_at(&persister, "old", Some(0)).await,
        State::new().update("count", 0).update("name", "old")
    );
    // Its history goes on, the new steps in the new form.
    let next = old.update("count", 2);
    persister
        .save(&checkpoint("old", 2, 1, &old, &next))
        .await
        .unwrap();
    assert_eq!(bases(&path, "old"), [true, true, false]);
    let reader = SqlitePersister::open_read_only(&path).unwrap();
    assert_eq!(state_at(&reader, "old", None).await, next);
    assert_eq!(state_at(&reader, "old", Some(1)).await, old);
}
