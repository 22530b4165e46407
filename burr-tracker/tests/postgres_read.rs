//! Reading a PostgreSQL burr database (feature `postgres`): the CLI's test application
//! (a retried step, spans, a fan-out to 12 children, a fork) recorded into a SQLite file
//! and into a real PostgreSQL database (`TestServer`), with the same fixed times, reads
//! back the same through every reading verb of the `burr-tracker` CLI — the answer from
//! the file is the expected one.

mod common;

use std::path::Path;
use std::process::Output;
use std::sync::{Arc, OnceLock};

use burr_postgres::testing::TestServer;
use burr_postgres::PostgresPersister;
use burr_tracker::inspect::{Database, PgSource};
use burr_tracker::{Tracker, TrackerError};

/// A file and a PostgreSQL database (its directory, its path, the URL).
type Pair = (tempfile::TempDir, std::path::PathBuf, String);

/// The file and the URL, each holding the same applications (shared by the tests that
/// only read).
fn databases() -> &'static Pair {
    static DATABASES: OnceLock<Pair> = OnceLock::new();
    DATABASES.get_or_init(build_pair)
}

/// A new file and a new PostgreSQL database holding the same applications.
fn build_pair() -> Pair {
    {
        let dir = tempfile::tempdir().unwrap();
        let url = TestServer::shared().fresh_database();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let path = runtime.block_on(async {
            let path = common::build_database(dir.path()).await;
            let persister = Arc::new(PostgresPersister::connect(&url).await.unwrap());
            common::record(Tracker::open(&url).unwrap(), persister).await;
            path
        });
        fix_times_pg(&url);
        (dir, path, url)
    }
}

/// [`common::fix_times`], in PostgreSQL's SQL.
fn fix_times_pg(url: &str) {
    let t0 = common::T0;
    let child =
        "(SELECT (strpos(a.app_id, '/') > 0)::int FROM burr_tracker_apps a WHERE a.id = app)";
    let sql = format!(
        "
        CREATE TEMP TABLE ranks AS
            SELECT partition_key, app_id, row_number() OVER (ORDER BY app_id) AS rank
            FROM (SELECT partition_key, app_id FROM burr_apps
                  UNION SELECT partition_key, app_id FROM burr_tracker_apps) u;
        UPDATE burr_apps SET created_at_us = {t0} + 1000000 * (SELECT rank FROM ranks r
            WHERE r.partition_key = burr_apps.partition_key AND r.app_id = burr_apps.app_id);
        UPDATE burr_tracker_apps SET created_at_us = {t0} + 1000000 * (SELECT rank FROM ranks r
            WHERE r.partition_key = burr_tracker_apps.partition_key AND r.app_id = burr_tracker_apps.app_id);
        UPDATE burr_tracker_steps SET
            started_at_us = {t0} + 100000000 + 1000000 * sequence_id + 100000 * (attempt - 1)
                + 500 * {child},
            ended_at_us = CASE WHEN ended_at_us IS NULL THEN NULL ELSE
                {t0} + 100000000 + 1000000 * sequence_id + 100000 * (attempt - 1) + 1234
                + 500 * {child} END;
        UPDATE burr_checkpoints SET created_at_us =
            {t0} + 100000000 + 1000000 * sequence_id + 100000 * (attempt - 1) + 1234
            + 500 * (SELECT (strpos(a.app_id, '/') > 0)::int FROM burr_apps a WHERE a.id = app);
        UPDATE burr_tracker_events SET at_us = (SELECT started_at_us FROM burr_tracker_steps s
            WHERE s.app = burr_tracker_events.app AND s.sequence_id = burr_tracker_events.sequence_id
            AND s.attempt = burr_tracker_events.attempt)
            + 10 * (SELECT count(*) FROM burr_tracker_events e WHERE e.app = burr_tracker_events.app
                    AND e.sequence_id = burr_tracker_events.sequence_id AND e.id <= burr_tracker_events.id);
        DELETE FROM burr_tracker_events WHERE name = 'burr.waited_us';
        UPDATE burr_tracker_snapshots SET at_us = (SELECT created_at_us FROM burr_tracker_apps a WHERE a.id = app);
        UPDATE burr_tracker_apps SET updated_at_us = greatest(created_at_us,
            coalesce((SELECT max(ended_at_us) FROM burr_tracker_steps s WHERE s.app = burr_tracker_apps.id), 0));
        DROP TABLE ranks;
        "
    );
    burr_postgres::testing::run_sql(url, &sql).expect("times are fixed");
}

fn run(db: &Path, args: &[&str]) -> Output {
    common::burr_tracker(db, args)
}

/// Every reading verb prints the same from PostgreSQL as from the file.
#[test]
fn every_reading_verb_prints_the_same_from_postgresql_as_from_a_file() {
    let (_dir, path, url) = databases();
    let cases: &[&[&str]] = &[
        &["apps"],
        &["apps", "--json"],
        &[
            "apps", "--parent", "order-1", "--limit", "3", "--offset", "2",
        ],
        &["apps", "--status", "completed", "--limit", "2", "--json"],
        &["apps", "--top-level"],
        &["show", "order-1"],
        &["show", "order-1", "--json"],
        &["show", "order-1-fork"],
        &["show", "order-1/2/3"],
        &["state", "order-1"],
        &["state", "order-1", "--seq", "1", "--json"],
        &[
            "state", "order-1", "--seq", "1", "--key", "checked", "--key", "customer",
        ],
        &["state", "order-1-fork"],
        &["diff", "order-1", "0", "3", "--json"],
        &["tree", "order-1"],
        &["tree", "order-1", "--all", "--json"],
        &["graph", "order-1"],
        &["graph", "order-1", "--json"],
    ];
    for args in cases {
        let file = run(path, args);
        let pg = run(Path::new(url), args);
        let (file_out, pg_out) = (
            String::from_utf8_lossy(&file.stdout),
            String::from_utf8_lossy(&pg.stdout),
        );
        assert!(
            file.status.success() && !file_out.trim().is_empty(),
            "{args:?} on the file: {}",
            String::from_utf8_lossy(&file.stderr)
        );
        assert!(
            pg.status.success(),
            "{args:?} on PostgreSQL: {}",
            String::from_utf8_lossy(&pg.stderr)
        );
        assert_eq!(pg_out, file_out, "{args:?}");
    }
}

/// `export` writes the same files from PostgreSQL as from the file.
#[test]
fn export_writes_the_same_layout_from_postgresql() {
    let (_dir, path, url) = databases();
    let out = tempfile::tempdir().unwrap();
    let (a, b) = (out.path().join("file"), out.path().join("pg"));
    for (db, dir) in [(path.as_path(), &a), (Path::new(url), &b)] {
        let done = run(
            db,
            &["export", "--burr-ui", dir.to_str().unwrap(), "order-1"],
        );
        assert!(
            done.status.success(),
            "{}",
            String::from_utf8_lossy(&done.stderr)
        );
    }
    let files = |root: &Path| {
        let mut found = Vec::new();
        let mut pending = vec![root.to_owned()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let entry = entry.unwrap().path();
                if entry.is_dir() {
                    pending.push(entry);
                } else {
                    let name = entry.strip_prefix(root).unwrap().to_owned();
                    found.push((name, std::fs::read(&entry).unwrap()));
                }
            }
        }
        found.sort();
        found
    };
    let (in_file, in_pg) = (files(&a), files(&b));
    assert!(!in_file.is_empty());
    assert_eq!(in_pg, in_file);
}

/// Through the library: the same applications, each with the same summary, steps and
/// state at every step; a shared source opens the database again without connecting.
#[test]
fn the_library_reads_the_same_applications_with_a_shared_source() {
    let (_dir, path, url) = databases();
    let file = Database::open(path).unwrap();
    let source = PgSource::connect(url).unwrap();
    let pg = Database::open_postgres(&source, None).unwrap();
    assert!(!pg.path().to_string_lossy().contains("secret"));
    let ids = |db: &Database| -> Vec<(String, Option<String>, bool, bool)> {
        db.apps()
            .iter()
            .map(|a| {
                (
                    a.app_id.clone(),
                    a.partition_key.clone(),
                    a.checkpointed,
                    a.tracked(),
                )
            })
            .collect()
    };
    assert_eq!(ids(&pg), ids(&file));
    assert_eq!(
        file.apps().len(),
        14,
        "the app, its 12 children and the fork"
    );
    for app in file.apps() {
        let other = pg.find(&app.app_id, app.partition_key.as_deref()).unwrap();
        let (a, b) = (file.summary(app).unwrap(), pg.summary(other).unwrap());
        assert_eq!(
            (b.status, b.steps, b.updated_at_us),
            (a.status, a.steps, a.updated_at_us)
        );
        let steps = file.steps(app).unwrap();
        assert_eq!(
            serde_json::to_value(pg.steps(other).unwrap()).unwrap(),
            serde_json::to_value(&steps).unwrap()
        );
        for step in &steps {
            assert_eq!(
                pg.state(other, Some(step.sequence_id)).unwrap(),
                file.state(app, Some(step.sequence_id)).unwrap()
            );
        }
        assert_eq!(pg.runner(other).unwrap(), file.runner(app).unwrap());
    }
    // Scoped to one application and its children.
    let scoped = Database::open_postgres(&source, Some("order-1")).unwrap();
    let file_scoped = Database::open_app(path, "order-1").unwrap();
    assert_eq!(ids(&scoped), ids(&file_scoped));
    assert_eq!(scoped.apps().len(), 13);
}

#[test]
fn errors_name_the_database_without_its_password() {
    let (_dir, _path, url) = databases();
    let shown = run(Path::new(url), &["show", "no-such-app"]);
    assert_eq!(shown.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&shown.stderr);
    assert!(
        stderr.contains("no-such-app") && stderr.contains("postgres://"),
        "{stderr}"
    );
    // A refused connection.
    match Database::open("postgres://burr:secret@127.0.0.1:1/nothing") {
        Err(error @ TrackerError::Postgres { .. }) => {
            let message = error.to_string();
            assert!(
                message.contains("127.0.0.1:1/nothing") && !message.contains("secret"),
                "{message}"
            );
        }
        other => panic!("expected a PostgreSQL error, got {other:?}"),
    }
    // An empty database is not a burr database.
    let empty = TestServer::shared().fresh_database();
    assert!(matches!(
        Database::open(&empty),
        Err(TrackerError::Persistence(
            burr_core::persistence::PersistenceError::NotABurrDatabase { .. }
        ))
    ));
    let db = Database::open(url).unwrap();
    assert_eq!(db.apps().len(), 14);
}

/// Run `args` on both databases: both succeed and print the same; what they print.
fn same(file: &Path, url: &str, args: &[&str]) -> String {
    let (a, b) = (run(file, args), run(Path::new(url), args));
    assert!(
        a.status.success(),
        "{args:?} on the file: {}",
        String::from_utf8_lossy(&a.stderr)
    );
    assert!(
        b.status.success(),
        "{args:?} on PostgreSQL: {}",
        String::from_utf8_lossy(&b.stderr)
    );
    let (a, b) = (
        String::from_utf8_lossy(&a.stdout).into_owned(),
        String::from_utf8_lossy(&b.stdout).into_owned(),
    );
    assert_eq!(b, a, "{args:?}");
    a
}

/// `prune` removes the same steps from PostgreSQL as from the file, and what is kept
/// reads back the same.
#[test]
fn prune_on_postgresql_removes_what_it_removes_from_a_file() {
    let (_dir, path, url) = build_pair();
    let dry = same(
        &path,
        &url,
        &[
            "prune",
            "order-1",
            "--keep-last",
            "2",
            "--dry-run",
            "--json",
        ],
    );
    let report: serde_json::Value = serde_json::from_str(&dry).unwrap();
    assert!(
        report["checkpoints_removed"].as_u64().unwrap() > 0,
        "{report}"
    );
    assert!(
        report["tracked_steps_removed"].as_u64().unwrap() > 0,
        "{report}"
    );
    // A dry run changes nothing.
    same(&path, &url, &["show", "order-1", "--json"]);
    let done = same(
        &path,
        &url,
        &["prune", "order-1", "--keep-last", "2", "--json"],
    );
    let done: serde_json::Value = serde_json::from_str(&done).unwrap();
    assert_eq!(done["checkpoints_removed"], report["checkpoints_removed"]);
    let shown = same(&path, &url, &["show", "order-1", "--json"]);
    let steps = serde_json::from_str::<serde_json::Value>(&shown).unwrap()["steps"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(steps, 2, "{shown}");
    same(&path, &url, &["state", "order-1"]);
    same(&path, &url, &["apps", "--json"]);
    // The state before the kept steps is gone from both.
    for db in [path.as_path(), Path::new(&url)] {
        let gone = run(db, &["state", "order-1", "--seq", "0"]);
        assert_eq!(gone.status.code(), Some(1), "{db:?}");
    }
}

/// `delete` removes the same applications (with their children) from PostgreSQL as from
/// the file; it is refused, deleting nothing, while a runner holds the lease.
#[test]
fn delete_on_postgresql_removes_what_it_removes_from_a_file_and_not_while_running() {
    let (_dir, path, url) = build_pair();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (runner, lease) = runtime.block_on(async {
        use burr_core::persistence::Leases;
        let runner = PostgresPersister::connect(&url).await.unwrap();
        let lease = runner
            .acquire_lease(
                Some(common::PARTITION),
                common::APP,
                std::time::Duration::from_secs(60),
            )
            .await
            .unwrap();
        (runner, lease)
    });
    let refused = run(Path::new(&url), &["delete", "order-1"]);
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("running") && stderr.contains("nothing was deleted"),
        "{stderr}"
    );
    assert_eq!(Database::open(&url).unwrap().apps().len(), 14);
    runtime.block_on(async {
        use burr_core::persistence::Leases;
        runner.release_lease_async(&lease).await.unwrap();
    });
    drop(runner);
    same(&path, &url, &["delete", "order-1", "--json"]);
    let apps = same(&path, &url, &["apps", "--json"]);
    assert!(
        apps.contains("order-1-fork") && !apps.contains("order-1/"),
        "{apps}"
    );
    assert_eq!(Database::open(&url).unwrap().apps().len(), 1);
    // Nothing of it is left in the tracker's tables either.
    let left = run(Path::new(&url), &["show", "order-1"]);
    assert_eq!(left.status.code(), Some(1));
}
