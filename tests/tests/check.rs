//! The `check` verb and its library call on both backends. A database holds, under
//! version 1 of the counter's code: an unfinished run, a run cancelled part-way, an
//! unfinished application started by hand, and a finished one. The code of version 1
//! can resume everything unfinished (exit 0); the code of version 2, which renamed an
//! action, can resume neither the run nor the hand-started application (an error naming
//! both and the rename: exit 1); an unfinished application whose app id no prefix of
//! the program claims blocks too.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burr_core::{Inputs, RunOptions};
use burr_postgres::testing::TestServer;
use burr_server::check::{self, Source};
use burr_server::cli::{self, Cli, CliError, Command};
use burr_server::{Registry, Runs, Submission};
use burr_tests::runs_kinds::Counter;

/// The code of version 1 or (renamed) 2: the counter kind, and the counter applications
/// started by hand under `counter-`.
fn registry(renamed: bool) -> Registry {
    Registry::new()
        .register(Counter { renamed })
        .register_apps("counter-", move |_| Ok(Counter { renamed }.application()))
}

/// `check` under version 1 or (renamed) 2 of the counter's code.
fn check(db: &str, renamed: bool) -> Result<(), CliError> {
    let cli = Cli {
        db: PathBuf::from(db),
        json: false,
        command: Command::Check,
    };
    cli::run(cli, registry(renamed))
}

/// The library call: each unfinished run or application's id, with whether it can
/// resume, sorted by id.
fn verdicts(runtime: &tokio::runtime::Runtime, db: &str, renamed: bool) -> Vec<(String, bool)> {
    runtime.block_on(async {
        let backend = burr_server::open(Path::new(db)).await.unwrap();
        let checked = check::check(&*backend.persister(), &*backend.queue(), &registry(renamed))
            .await
            .unwrap();
        let mut verdicts: Vec<(String, bool)> = checked
            .iter()
            .map(|c| {
                match (&c.source, c.id.starts_with("run-")) {
                    (Source::Run { .. }, true) | (Source::App { .. }, false) => {}
                    _ => panic!("{} reported as {:?}", c.id, c.source),
                }
                (c.id.clone(), c.can_resume)
            })
            .collect();
        verdicts.sort();
        verdicts
    })
}

/// The counter application `app_id` under version 1, stepped `steps` times (`None`: to
/// its end), as a runner that died would have left it.
async fn counter_app(backend: &burr_server::Backend, app_id: &str, steps: Option<usize>) {
    let persister = backend.persister();
    let mut app = Counter::default()
        .application()
        .with_app_id(app_id)
        .with_state_persister(persister.clone())
        .initialize_from(persister)
        .build()
        .await
        .unwrap();
    match steps {
        Some(steps) => {
            for _ in 0..steps {
                app.step(Inputs::new()).await.unwrap();
            }
        }
        None => {
            app.run(RunOptions::new().halt_after(["done"]))
                .await
                .unwrap();
        }
    }
}

/// Two runs of the counter with two steps checkpointed under version 1 (the second then
/// cancelled), and two applications started by hand: one unfinished, one finished.
fn fill(runtime: &tokio::runtime::Runtime, db: &str) {
    runtime.block_on(async {
        let backend = burr_server::open(Path::new(db)).await.unwrap();
        let runs = Runs::new(backend.queue(), Arc::new(registry(false)));
        for run_id in ["run-1", "run-2"] {
            let submitted = runs
                .submit(Submission::new("counter", serde_json::json!({})).run_id(run_id))
                .await
                .unwrap();
            counter_app(&backend, &submitted.run.id, Some(2)).await;
        }
        backend.queue().cancel("run-2").await.unwrap();
        counter_app(&backend, "counter-by-hand", Some(2)).await;
        counter_app(&backend, "counter-finished", None).await;
    });
}

fn check_judges_runs_and_applications_started_by_hand(db: &str) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    fill(&runtime, db);
    let unfinished = |can_resume| {
        vec![
            ("counter-by-hand".to_owned(), can_resume),
            ("run-1".to_owned(), can_resume),
        ]
    };
    assert_eq!(verdicts(&runtime, db, false), unfinished(true));
    assert_eq!(verdicts(&runtime, db, true), unfinished(false));
    check(db, false).expect("the same code resumes every unfinished run and application");
    match check(db, true) {
        Err(CliError::CannotResume { runs }) => {
            assert_eq!(runs.len(), 2, "{runs:?}");
            for (line, id) in runs.iter().zip(["run-1 ", "counter-by-hand "]) {
                assert!(line.starts_with(id), "{runs:?}");
                assert!(
                    line.contains("action `count` was renamed to `tally`"),
                    "{runs:?}"
                );
            }
        }
        other => panic!("expected CannotResume, got {other:?}"),
    }

    // An unfinished application no prefix of the program claims: it cannot tell.
    runtime.block_on(async {
        let backend = burr_server::open(Path::new(db)).await.unwrap();
        counter_app(&backend, "stray", Some(1)).await;
    });
    match check(db, false) {
        Err(CliError::CannotResume { runs }) => {
            assert_eq!(runs.len(), 1, "{runs:?}");
            assert!(runs[0].starts_with("stray "), "{runs:?}");
            assert!(runs[0].contains("no code in this program"), "{runs:?}");
        }
        other => panic!("expected CannotResume, got {other:?}"),
    }
}

#[test]
fn check_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("burr.db");
    check_judges_runs_and_applications_started_by_hand(db.to_str().unwrap());
}

#[test]
fn check_on_postgres() {
    let url = TestServer::shared().fresh_database();
    check_judges_runs_and_applications_started_by_hand(&url);
}
