//! The `migrate` verb on both backends: a new database gets every table (checkpoints, run
//! queue, tracker) at this build's schema; migrating again changes nothing; a database a
//! newer build migrated is refused, naming the version, and left as it was.

use std::path::PathBuf;

use burr_postgres::testing::TestServer;
use burr_server::cli::{self, Cli, CliError, Command};
use burr_server::Registry;

fn migrate(db: &str) -> Result<(), CliError> {
    let cli = Cli {
        db: PathBuf::from(db),
        json: true,
        command: Command::Migrate,
    };
    cli::run(cli, Registry::new())
}

const TABLES: [&str; 4] = [
    "burr_apps",
    "burr_checkpoints",
    "burr_runs",
    "burr_tracker_apps",
];

#[test]
fn migrate_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("burr.db");
    let db = path.to_str().unwrap();
    migrate(db).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let tables = |conn: &rusqlite::Connection| -> Vec<String> {
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let made = tables(&conn);
    for table in TABLES {
        assert!(made.iter().any(|t| t == table), "{table} missing: {made:?}");
    }
    migrate(db).unwrap();
    assert_eq!(tables(&conn), made, "migrating again changes nothing");
    conn.execute(
        "UPDATE burr_runs_meta SET value = '99' WHERE key = 'schema_version'",
        [],
    )
    .unwrap();
    let error = migrate(db).unwrap_err();
    assert!(error.to_string().contains("99"), "{error}");
    let version: String = conn
        .query_row(
            "SELECT value FROM burr_runs_meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(version, "99", "a newer database is left as it was");
}

#[test]
fn migrate_on_postgres() {
    let url = TestServer::shared().fresh_database();
    migrate(&url).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        for table in TABLES {
            let found: bool = client
                .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
                .await
                .unwrap()
                .get(0);
            assert!(found, "{table} missing");
        }
        client
            .execute(
                "UPDATE burr_meta SET value = '99' WHERE key = 'schema_version'",
                &[],
            )
            .await
            .unwrap();
    });
    let error = migrate(&url).unwrap_err();
    assert!(error.to_string().contains("99"), "{error}");
}
