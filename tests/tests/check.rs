//! The `check` verb on both backends: a database with an unfinished run checkpointed
//! under version 1 of its kind; the code of version 1 can resume it (exit 0), the code
//! of version 2, which renamed an action, cannot (an error naming the run and the
//! rename: exit 1).

use std::path::PathBuf;
use std::sync::Arc;

use burr_core::Inputs;
use burr_postgres::testing::TestServer;
use burr_server::cli::{self, Cli, CliError, Command};
use burr_server::{Registry, Runs, Submission};
use burr_tests::runs_kinds::Counter;

/// `check` under version 1 or (renamed) 2 of the counter's code.
fn check(db: &str, renamed: bool) -> Result<(), CliError> {
    let cli = Cli {
        db: PathBuf::from(db),
        json: false,
        command: Command::Check,
    };
    cli::run(cli, Registry::new().register(Counter { renamed }))
}

/// A run of the counter with two steps checkpointed under version 1, as a worker would
/// have left it (unfinished: the worker "died").
fn half_run(db: &str) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let backend = burr_server::open(std::path::Path::new(db)).await.unwrap();
        let registry = Arc::new(Registry::new().register(Counter::default()));
        let runs = Runs::new(backend.queue(), registry);
        let submitted = runs
            .submit(Submission::new("counter", serde_json::json!({})).run_id("run-1"))
            .await
            .unwrap();
        let persister = backend.persister();
        let mut app = Counter::default()
            .application()
            .with_app_id(&submitted.run.id)
            .with_state_persister(persister.clone())
            .initialize_from(persister)
            .build()
            .await
            .unwrap();
        app.step(Inputs::new()).await.unwrap();
        app.step(Inputs::new()).await.unwrap();
    });
}

fn check_passes_under_the_same_code_and_names_a_run_the_new_code_cannot_resume(db: &str) {
    half_run(db);
    check(db, false).expect("the same code resumes every unfinished run");
    match check(db, true) {
        Err(CliError::CannotResume { runs }) => {
            assert_eq!(runs.len(), 1, "{runs:?}");
            assert!(runs[0].starts_with("run-1 "), "{runs:?}");
            assert!(
                runs[0].contains("action `count` was renamed to `tally`"),
                "{runs:?}"
            );
        }
        other => panic!("expected CannotResume, got {other:?}"),
    }
}

#[test]
fn check_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("burr.db");
    check_passes_under_the_same_code_and_names_a_run_the_new_code_cannot_resume(
        db.to_str().unwrap(),
    );
}

#[test]
fn check_on_postgres() {
    let url = TestServer::shared().fresh_database();
    check_passes_under_the_same_code_and_names_a_run_the_new_code_cannot_resume(&url);
}
