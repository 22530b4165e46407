//! Golden tests of every `burr-tracker` command, human and JSON output, on a database
//! made by a real application (see `common`), and its error cases.

mod common;

use std::path::{Path, PathBuf};

use common::burr_tracker;
use std::sync::OnceLock;

use serde_json::Value;
use tempfile::TempDir;

/// The fixture database, built once for all tests of this file.
fn database() -> &'static Path {
    static DB: OnceLock<(TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = DB.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temp dir");
        let runtime = tokio::runtime::Runtime::new().expect("a runtime");
        let path = runtime.block_on(common::build_database(dir.path()));
        (dir, path)
    });
    path
}

/// A copy of the fixture, for the commands that write.
fn copy_of_database() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("copy.db");
    // The fixture's writers are closed: its WAL has been checkpointed into the file.
    std::fs::copy(database(), &path).expect("copies");
    (dir, path)
}

fn stdout_of(db: &Path, args: &[&str]) -> String {
    let output = burr_tracker(db, args);
    assert!(
        output.status.success(),
        "burr-tracker {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// The one-line error of a failing command, with the temp dir replaced by `<DIR>`.
fn error_of(db: &Path, args: &[&str]) -> String {
    let output = burr_tracker(db, args);
    assert_eq!(
        output.status.code(),
        Some(1),
        "burr-tracker {args:?} should fail with 1"
    );
    assert!(output.stdout.is_empty(), "nothing on stdout");
    let stderr = String::from_utf8(output.stderr).expect("UTF-8");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let dir = db.parent().expect("a dir").display().to_string();
    stderr.replace(&dir, "<DIR>")
}

/// Compare with `tests/golden/<name>`; `UPDATE_GOLDEN=1` rewrites the file instead.
fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).expect("writes the golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 creates it)", path.display()));
    assert_eq!(actual, expected, "output differs from {}", path.display());
}

fn check(name: &str, args: &[&str]) {
    let text = stdout_of(database(), args);
    if args.contains(&"--json") {
        serde_json::from_str::<Value>(&text).expect("--json prints JSON");
    } else if ["apps", "show", "tree"].contains(&args[0]) {
        assert!(
            text.lines().all(|l| l.chars().count() <= 100),
            "tables fit 100 columns:\n{text}"
        );
    }
    golden(name, &text);
}

#[test]
fn apps() {
    check("apps.txt", &["apps"]);
    check("apps.json", &["apps", "--json"]);
    check(
        "apps_children_page.txt",
        &[
            "apps", "--parent", "order-1", "--limit", "3", "--offset", "2",
        ],
    );
    check(
        "apps_completed_json_page.json",
        &["apps", "--status", "completed", "--limit", "2", "--json"],
    );
    check("apps_none.txt", &["apps", "--partition-key", "bob"]);
    check("apps_top_level.txt", &["apps", "--top-level"]);
}

#[test]
fn show() {
    check("show.txt", &["show", "order-1"]);
    check("show.json", &["show", "order-1", "--json"]);
    check("show_fork.txt", &["show", "order-1-fork"]);
    check("show_child.txt", &["show", "order-1/2/3"]);
}

#[test]
fn state() {
    check("state_latest.txt", &["state", "order-1"]);
    check(
        "state_keys.txt",
        &[
            "state", "order-1", "--seq", "1", "--key", "checked", "--key", "customer",
        ],
    );
    check(
        "state_retried_step.json",
        &["state", "order-1", "--seq", "1", "--json"],
    );
    check("state_fork.txt", &["state", "order-1-fork"]);
}

#[test]
fn diff() {
    check("diff.txt", &["diff", "order-1", "0", "3"]);
    check("diff.json", &["diff", "order-1", "0", "3", "--json"]);
    check("diff_same.txt", &["diff", "order-1", "2", "2"]);
}

#[test]
fn tree() {
    check("tree.txt", &["tree", "order-1"]);
    check("tree_all.txt", &["tree", "order-1", "--all"]);
    check("tree.json", &["tree", "order-1", "--json"]);
}

#[test]
fn graph() {
    check("graph.mermaid", &["graph", "order-1"]);
    check("graph.dot", &["graph", "order-1", "--format", "dot"]);
    check("graph.json", &["graph", "order-1", "--json"]);
}

#[test]
fn errors_are_one_line_and_exit_1() {
    let db = database();
    golden(
        "error_unknown_app.txt",
        &error_of(db, &["show", "order-404"]),
    );
    golden(
        "error_unknown_partition.txt",
        &error_of(db, &["show", "order-1", "--partition-key", "bob"]),
    );
    golden(
        "error_bad_seq.txt",
        &error_of(db, &["state", "order-1", "--seq", "99"]),
    );
    golden(
        "error_bad_diff_seq.txt",
        &error_of(db, &["diff", "order-1", "0", "7"]),
    );
    golden(
        "error_unknown_key.txt",
        &error_of(db, &["state", "order-1", "--key", "nope"]),
    );
    let dir = tempfile::tempdir().expect("a temp dir");
    let missing = dir.path().join("missing.db");
    golden("error_missing_file.txt", &error_of(&missing, &["apps"]));
    assert!(!missing.exists(), "a missing database is not created");
    let text = dir.path().join("notes.db");
    std::fs::write(
        &text,
        "not a database at all, just some text that is long enough ".repeat(20),
    )
    .expect("writes");
    golden("error_not_sqlite.txt", &error_of(&text, &["apps"]));
    let foreign = dir.path().join("other.db");
    rusqlite::Connection::open(&foreign)
        .and_then(|c| c.execute_batch("CREATE TABLE invoices (id INTEGER PRIMARY KEY)"))
        .expect("a foreign database");
    golden(
        "error_foreign_sqlite.txt",
        &error_of(&foreign, &["show", "x"]),
    );
}

#[test]
fn bad_arguments_exit_2() {
    let output = burr_tracker(database(), &["state", "order-1", "--seq", "minus-one"]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn reading_commands_never_write() {
    let (_dir, db) = copy_of_database();
    let before = std::fs::read(&db).expect("reads");
    for args in [
        vec!["apps"],
        vec!["show", "order-1"],
        vec!["state", "order-1", "--seq", "0"],
        vec!["diff", "order-1", "0", "3"],
        vec!["tree", "order-1", "--json"],
        vec!["graph", "order-1"],
    ] {
        stdout_of(&db, &args);
    }
    assert_eq!(
        std::fs::read(&db).expect("reads"),
        before,
        "the database is unchanged"
    );
    let wal = db.with_extension("db-wal");
    assert!(
        !wal.exists() || std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0) == 0,
        "nothing was written to a WAL"
    );
}

#[test]
fn prune_keeps_the_last_steps_readable() {
    let (_dir, db) = copy_of_database();
    let full = stdout_of(&db, &["state", "order-1", "--seq", "3", "--json"]);
    let show_before = stdout_of(&db, &["show", "order-1", "--json"]);

    // A dry run says what a prune removes, and removes nothing.
    let dry = stdout_of(
        &db,
        &[
            "prune",
            "order-1",
            "--keep-last",
            "2",
            "--dry-run",
            "--json",
        ],
    );
    let dry: Value = serde_json::from_str(&dry).expect("JSON");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(stdout_of(&db, &["show", "order-1", "--json"]), show_before);
    let text = stdout_of(&db, &["prune", "order-1", "--keep-last", "2", "--dry-run"]);
    assert!(
        text.starts_with("would prune app order-1: would remove "),
        "{text}"
    );

    // Every checkpoint only when asked for: the next run would start over.
    let refused = error_of(&db, &["prune", "order-1", "--keep-last", "0"]);
    assert!(
        refused.contains("makes its next run start over") && refused.contains("--all"),
        "{refused}"
    );
    assert_eq!(stdout_of(&db, &["show", "order-1", "--json"]), show_before);

    let report = stdout_of(&db, &["prune", "order-1", "--keep-last", "2", "--json"]);
    let report: Value = serde_json::from_str(&report).expect("JSON");
    assert_eq!(report["app_id"], "order-1");
    assert!(report["checkpoints_removed"].as_u64().expect("a count") >= 1);
    // The dry run counted what the prune removed.
    assert_eq!(
        (&dry["checkpoints_removed"], &dry["tracked_steps_removed"]),
        (
            &report["checkpoints_removed"],
            &report["tracked_steps_removed"]
        )
    );
    // Sequence ids 0 and 1 (its failed and its retried attempt) are gone from the tracker.
    assert_eq!(report["tracked_steps_removed"], 3);
    assert_eq!(
        stdout_of(&db, &["state", "order-1", "--seq", "3", "--json"]),
        full
    );
    let after = stdout_of(&db, &["state", "order-1", "--seq", "2", "--key", "lengths"]);
    assert!(
        after.contains("lengths = [5,6,6,4,10,3,5,8,4,5,5,9]"),
        "{after}"
    );
    let gone = error_of(&db, &["state", "order-1", "--seq", "0"]);
    assert!(
        gone.contains("has no step with sequence id 0 (its steps: 2-3)"),
        "{gone}"
    );
    let show = stdout_of(&db, &["show", "order-1", "--json"]);
    let show: Value = serde_json::from_str(&show).expect("JSON");
    let seqs: Vec<u64> = show["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["sequence_id"].as_u64().expect("a sequence id"))
        .collect();
    assert_eq!(seqs, [2, 3]);
}

#[test]
fn delete_removes_one_application() {
    let (_dir, db) = copy_of_database();
    let out = stdout_of(&db, &["delete", "order-1/2/0"]);
    assert_eq!(out, "deleted app order-1/2/0\n");
    let error = error_of(&db, &["show", "order-1/2/0"]);
    assert!(
        error.starts_with("error: no application `order-1/2/0`"),
        "{error}"
    );
    let apps: Value =
        serde_json::from_str(&stdout_of(&db, &["apps", "--json", "--parent", "order-1"]))
            .expect("JSON");
    assert_eq!(apps["total"], 11);
    // The parent is untouched.
    assert!(stdout_of(&db, &["show", "order-1"]).contains("total"));
}

/// The app ids in the database, sorted.
fn app_ids(db: &Path) -> Vec<String> {
    let apps: Value =
        serde_json::from_str(&stdout_of(db, &["apps", "--json", "--limit", "100"])).expect("JSON");
    let mut ids: Vec<String> = apps["apps"]
        .as_array()
        .expect("apps")
        .iter()
        .map(|a| a["app_id"].as_str().expect("an id").to_owned())
        .collect();
    ids.sort();
    ids
}

#[test]
fn delete_removes_the_descendants_too() {
    let (_dir, db) = copy_of_database();
    let out = stdout_of(&db, &["delete", "order-1"]);
    assert_eq!(out, "deleted app order-1 and its 12 descendants\n");
    // The fork is an application of its own.
    assert_eq!(app_ids(&db), ["order-1-fork"]);
    let (_dir, db) = copy_of_database();
    let report: Value =
        serde_json::from_str(&stdout_of(&db, &["delete", "order-1", "--json"])).expect("JSON");
    assert_eq!(report["descendants"], 12);
    assert_eq!(report["checkpoints"], true);
    assert_eq!(report["tracked"], true);
}

/// Make SQLite refuse to delete the rows of `table` that `condition` selects.
fn refuse_deleting(db: &Path, table: &str, condition: &str) {
    rusqlite::Connection::open(db)
        .and_then(|c| {
            c.execute_batch(&format!(
                "CREATE TRIGGER burr_test_refuse BEFORE DELETE ON {table} WHEN {condition} \
                 BEGIN SELECT RAISE(ABORT, 'refused by a test trigger'); END;"
            ))
        })
        .expect("a trigger");
}

fn allow_deleting(db: &Path) {
    rusqlite::Connection::open(db)
        .and_then(|c| c.execute_batch("DROP TRIGGER burr_test_refuse"))
        .expect("drops the trigger");
}

#[test]
fn a_failed_delete_leaves_a_tree_that_a_second_delete_finishes() {
    let (_dir, db) = copy_of_database();
    let before = app_ids(&db);
    let tracked_before = stdout_of(&db, &["apps", "--json", "--limit", "100"]);
    // The tracking data of all goes in one transaction: a failure deletes none of it.
    refuse_deleting(&db, "burr_tracker_apps", "old.app_id = 'order-1/2/5'");
    let error = error_of(&db, &["delete", "order-1"]);
    assert!(error.contains("refused by a test trigger"), "{error}");
    assert_eq!(
        stdout_of(&db, &["apps", "--json", "--limit", "100"]),
        tracked_before
    );
    allow_deleting(&db);

    // The checkpoints go children first: a failure part-way leaves the application and
    // the children not deleted yet, under it.
    refuse_deleting(
        &db,
        "burr_checkpoints",
        "old.app = (SELECT id FROM burr_apps WHERE app_id = 'order-1/2/5')",
    );
    let error = error_of(&db, &["delete", "order-1"]);
    assert!(
        error.starts_with("error: deleting application `order-1` stopped part-way (")
            && error.contains(" of 13 applications deleted), run it again to finish: ")
            && error.contains("refused by a test trigger"),
        "{error}"
    );
    let left = app_ids(&db);
    assert!(
        left.contains(&"order-1".to_owned()) && left.contains(&"order-1/2/5".to_owned()),
        "{left:?}"
    );
    assert!(left.len() < before.len(), "{left:?}");
    let tree = stdout_of(&db, &["tree", "order-1", "--json"]);
    let tree: Value = serde_json::from_str(&tree).expect("JSON");
    assert_eq!(
        tree["children"].as_array().expect("children").len(),
        left.len() - 2,
        "every child left is still under order-1 (the fork aside)"
    );
    allow_deleting(&db);
    let out = stdout_of(&db, &["delete", "order-1"]);
    assert!(out.starts_with("deleted app order-1 and its "), "{out}");
    assert_eq!(app_ids(&db), ["order-1-fork"]);
}

#[test]
fn export_writes_burrs_layout() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let out = dir.path().join("ui");
    let report = stdout_of(
        database(),
        &[
            "export",
            "--burr-ui",
            out.to_str().expect("UTF-8"),
            "--project",
            "shop",
            "order-1",
            "--json",
        ],
    );
    let report: Value = serde_json::from_str(&report).expect("JSON");
    // The app and its 12 children (the fork is not among what order-1 spawned).
    assert_eq!(report["apps"].as_array().expect("apps").len(), 13);
    let app_dir = out.join("shop").join("order-1");
    for file in ["graph.json", "metadata.json", "log.jsonl", "children.jsonl"] {
        assert!(app_dir.join(file).is_file(), "{file} is written");
    }
    let graph: Value =
        serde_json::from_str(&std::fs::read_to_string(app_dir.join("graph.json")).expect("reads"))
            .expect("JSON");
    assert_eq!(graph["type"], "application");
    assert_eq!(graph["entrypoint"], "load");
    assert_eq!(graph["transitions"][0]["from_"], "load");
    let log = std::fs::read_to_string(app_dir.join("log.jsonl")).expect("reads");
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let types: Vec<&str> = lines
        .iter()
        .map(|l| l["type"].as_str().expect("a type"))
        .collect();
    assert_eq!(
        types[..8],
        [
            "begin_entry",
            "begin_span",
            "attribute",
            "begin_span",
            "attribute",
            "end_span",
            "end_span",
            "end_entry"
        ]
    );
    // Burr's span ids: `<sequence id>:<path>`.
    assert_eq!(lines[3]["span_id"], "0:0.0");
    assert_eq!(lines[3]["parent_span_id"], "0:0");
    assert_eq!(lines[4]["span_id"], "0:0.0");
    let end = lines
        .iter()
        .rfind(|l| l["type"] == "end_entry")
        .expect("an end entry");
    assert_eq!(end["state"]["total"], 70);
    assert_eq!(end["state"]["__SEQUENCE_ID"], 3);
    let retried: Vec<&Value> = lines
        .iter()
        .filter(|l| l["key"] == "burr_rs.failed_attempt")
        .collect();
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0]["value"]["error"][1], "inventory check failed");
    let children = std::fs::read_to_string(app_dir.join("children.jsonl")).expect("reads");
    let children: Vec<Value> = children
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(children.len(), 12);
    assert!(children
        .iter()
        .all(|c| c["event_type"] == "spawn_start" && c["sequence_id"] == 2));
    assert_eq!(children[0]["child"]["app_id"], "order-1~2F2~2F0");
    let child_meta =
        std::fs::read_to_string(out.join("shop/order-1~2F2~2F0/metadata.json")).expect("reads");
    let child_meta: Value = serde_json::from_str(&child_meta).expect("JSON");
    assert_eq!(child_meta["spawning_parent_pointer"]["app_id"], "order-1");
    assert_eq!(child_meta["spawning_parent_pointer"]["sequence_id"], 2);
}

#[test]
fn the_export_names_the_recorded_entrypoint() {
    // The fork starts at `load` (its default entrypoint) but resumes at `check`: its first
    // step is not its entrypoint.
    let dir = tempfile::tempdir().expect("a temp dir");
    let out = dir.path().join("ui");
    stdout_of(
        database(),
        &[
            "export",
            "--burr-ui",
            out.to_str().expect("UTF-8"),
            "order-1-fork",
        ],
    );
    let graph =
        std::fs::read_to_string(out.join("burr-rs/order-1-fork/graph.json")).expect("reads");
    let graph: Value = serde_json::from_str(&graph).expect("JSON");
    assert_eq!(graph["entrypoint"], "load");
    let log = std::fs::read_to_string(out.join("burr-rs/order-1-fork/log.jsonl")).expect("reads");
    let first: Value = serde_json::from_str(log.lines().next().expect("a line")).expect("JSON");
    assert_eq!(first["action"], "check");
    let graph: Value =
        serde_json::from_str(&stdout_of(database(), &["graph", "order-1-fork", "--json"]))
            .expect("JSON");
    assert_eq!(graph["entrypoint"], "load");
}

#[test]
fn export_refuses_a_bad_project_name() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let error = error_of(
        database(),
        &[
            "export",
            "--burr-ui",
            dir.path().to_str().expect("UTF-8"),
            "--project",
            "my shop",
        ],
    );
    assert_eq!(
        error,
        "error: invalid project name `my shop`: use letters, digits, `_`, `-` and `:`\n"
    );
}

#[tokio::test]
async fn a_long_app_id_is_printed_whole_and_pastes_back_into_show() {
    use burr_core::actions::action_sync;
    use burr_core::persistence::SqlitePersister;
    use burr_core::{ApplicationBuilder, Inputs, State};
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("long.db");
    let id = format!(
        "meeting-{}",
        "retrospective-of-the-platform-team-".repeat(4)
    );
    let tracker = burr_tracker::Tracker::open(&db).expect("opens");
    let persister = std::sync::Arc::new(SqlitePersister::open(&db).expect("opens"));
    let noop = action_sync("noop", |s: State, _: &Inputs, _| s);
    let mut app = ApplicationBuilder::new()
        .with_actions([noop])
        .with_entrypoint("noop")
        .with_app_id(&id)
        .with_state_persister(persister)
        .with_tracker(tracker.hook())
        .build()
        .await
        .expect("builds");
    app.step(Inputs::new()).await.expect("steps");
    drop(app);
    tracker.flush().expect("writes");
    let listed = stdout_of(&db, &["apps"]);
    assert!(listed.contains(&id), "{listed}");
    let shown = stdout_of(&db, &["show", &id]);
    assert!(shown.contains(&id), "{shown}");
}

#[test]
fn one_damaged_application_does_not_hide_the_others() {
    let (_dir, db) = copy_of_database();
    let conn = rusqlite::Connection::open(&db).expect("opens");
    let changed = conn
        .execute(
            "UPDATE burr_checkpoints SET status = 'exploded' \
             WHERE app = (SELECT id FROM burr_apps WHERE app_id = 'order-1-fork')",
            [],
        )
        .expect("corrupts");
    assert!(changed > 0);
    drop(conn);
    let listed = stdout_of(&db, &["apps", "--top-level"]);
    assert!(listed.contains("order-1 "), "{listed}");
    assert!(
        listed.contains("damaged: app order-1-fork cannot be read: "),
        "{listed}"
    );
    let json: Value =
        serde_json::from_str(&stdout_of(&db, &["apps", "--top-level", "--json"])).expect("JSON");
    assert_eq!(json["damaged"][0]["app_id"], "order-1-fork");
    assert_eq!(json["apps"][0]["app_id"], "order-1");
    let strict = error_of(&db, &["apps", "--strict"]);
    assert!(strict.contains("order-1-fork"), "{strict}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_lists_the_failed_children_under_the_step_that_spawned_them() {
    use burr_core::actions::action_sync;
    use burr_core::parallel::{child_app_id, FailurePolicy, MapAction, SubGraph};
    use burr_core::persistence::SqlitePersister;
    use burr_core::{ActionError, ApplicationBuilder, Inputs, State};
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("fan.db");
    let tracker = burr_tracker::Tracker::open(&db).expect("opens");
    let persister = std::sync::Arc::new(SqlitePersister::open(&db).expect("opens"));
    let check = action_sync("check", |s: State, _: &Inputs, _| {
        let word: String = s.get("word")?;
        if word == "banana" {
            return Err(ActionError::msg("banana is out of stock"));
        }
        Ok(s.update("ok", true))
    })
    .reads(["word"])
    .writes(["ok"]);
    let fan = MapAction::states("fan", SubGraph::action(check), |_: &State, _: &Inputs| {
        Ok(["apple", "banana", "cherry"]
            .into_iter()
            .map(|w| State::new().update("word", w))
            .collect())
    })
    .policy(FailurePolicy::WaitAll);
    let mut app = ApplicationBuilder::new()
        .with_actions([fan])
        .with_entrypoint("fan")
        .with_app_id("order-9")
        .with_state_persister(persister)
        .with_tracker(tracker.hook())
        .build()
        .await
        .expect("builds");
    app.step(Inputs::new()).await.expect_err("a child fails");
    drop(app);
    tracker.flush().expect("writes");
    let failed = child_app_id("order-9", 0, "1");
    let shown = stdout_of(&db, &["show", "order-9"]);
    let section = shown
        .split("FAILED CHILDREN\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no failed children listed:\n{shown}"));
    assert!(section.starts_with("seq 0  fan\n"), "{shown}");
    let line = section.lines().nth(1).expect("a child line");
    assert!(line.contains(&failed), "{shown}");
    assert!(line.contains("banana is out of stock"), "{shown}");
    for ok in ["0", "2"] {
        assert!(!shown.contains(&child_app_id("order-9", 0, ok)), "{shown}");
    }
    let json: Value =
        serde_json::from_str(&stdout_of(&db, &["--json", "show", "order-9"])).expect("JSON");
    let children = &json["steps"][0]["failed_children"];
    assert_eq!(children.as_array().map(Vec::len), Some(1), "{json}");
    assert_eq!(children[0]["app_id"], failed.as_str());
}

/// Makes a directory and its database refuse writes (`chattr +i`, which binds root too;
/// else `chmod`), and undoes it when dropped so the temp dir can be removed.
struct ReadOnlyDir(PathBuf, PathBuf, bool);

impl ReadOnlyDir {
    fn new(dir: &Path, db: &Path) -> ReadOnlyDir {
        use std::os::unix::fs::PermissionsExt;
        let immutable = std::process::Command::new("chattr")
            .arg("+i")
            .args([db, dir])
            .status()
            .is_ok_and(|s| s.success());
        if !immutable {
            std::fs::set_permissions(db, std::fs::Permissions::from_mode(0o444)).expect("chmod");
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).expect("chmod");
        }
        let guard = ReadOnlyDir(dir.to_owned(), db.to_owned(), immutable);
        assert!(
            std::fs::File::create(dir.join("probe")).is_err(),
            "could not make {} refuse writes (chattr +i and chmod both failed to)",
            dir.display()
        );
        guard
    }
}

impl Drop for ReadOnlyDir {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        if self.2 {
            let _ = std::process::Command::new("chattr")
                .arg("-i")
                .args([&self.1, &self.0])
                .status();
        } else {
            let _ = std::fs::set_permissions(&self.0, std::fs::Permissions::from_mode(0o755));
            let _ = std::fs::set_permissions(&self.1, std::fs::Permissions::from_mode(0o644));
        }
    }
}

#[test]
fn reading_commands_work_on_a_database_in_a_read_only_directory() {
    let (dir, db) = copy_of_database();
    let commands: [&[&str]; 4] = [
        &["apps"],
        &["show", common::APP, "--partition-key", common::PARTITION],
        &["state", common::APP, "--partition-key", common::PARTITION],
        &["tree", common::APP, "--partition-key", common::PARTITION],
    ];
    // What they print from the writable fixture. (Reading the copy before would leave the
    // `-shm` file that lets SQLite share the file read-only: not the case tested here.)
    let writable: Vec<String> = commands
        .iter()
        .map(|args| stdout_of(database(), args))
        .collect();
    let _read_only = ReadOnlyDir::new(dir.path(), &db);
    for (args, expected) in commands.iter().zip(&writable) {
        let output = burr_tracker(&db, args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "burr-tracker {args:?}: {stderr}");
        assert_eq!(
            &String::from_utf8_lossy(&output.stdout),
            expected,
            "{args:?}"
        );
        assert!(
            stderr.contains("read-only directory") && stderr.contains("may miss the latest"),
            "{args:?} does not say it may be stale: {stderr}"
        );
    }
}
