//! The `check` verb: a database with an unfinished run checkpointed under version 1 of
//! its kind; the code of version 1 can resume it (exit 0), the code of version 2, which
//! renamed an action, cannot (an error naming the run and the rename: exit 1).

use std::sync::Arc;

use burr_core::actions::action_sync;
use burr_core::state::StateError;
use burr_core::{default, expr, ApplicationBuilder, Inputs, State};
use burr_server::cli::{self, Cli, CliError, Command};
use burr_server::{BoxError, Kind, Registry, RunInfo, Runs, SqliteRunQueue, Submission};

/// The counter kind; `renamed` renames its `count` action to `tally` (version 2).
struct Counter {
    renamed: bool,
}

impl Kind for Counter {
    type Inputs = serde_json::Value;
    fn name(&self) -> &str {
        "counter"
    }
    fn build(
        &self,
        _inputs: serde_json::Value,
        _run: &RunInfo,
    ) -> Result<ApplicationBuilder, BoxError> {
        Ok(counter(self.renamed))
    }
}

/// The counter application, of version 1 or (renamed) 2.
fn counter(renamed: bool) -> ApplicationBuilder {
    let name = if renamed { "tally" } else { "count" };
    let step = action_sync(name, |s: State, _, _| s.increment("n", 1))
        .reads(["n"])
        .writes(["n"]);
    let done = action_sync("done", |s: State, _, _| Ok::<_, StateError>(s)).reads(["n"]);
    ApplicationBuilder::new()
        .with_actions([step, done])
        .with_transitions([(name, name, expr("n < 10")), (name, "done", default())])
        .with_state(State::new().update("n", 0))
        .with_entrypoint(name)
        .with_version(if renamed { "2" } else { "1" })
}

fn check(db: &std::path::Path, renamed: bool) -> Result<(), CliError> {
    let cli = Cli {
        db: db.to_owned(),
        json: false,
        command: Command::Check,
    };
    cli::run(cli, Registry::new().register(Counter { renamed }))
}

#[test]
fn check_passes_under_the_same_code_and_names_a_run_the_new_code_cannot_resume() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("burr.db");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let queue = SqliteRunQueue::open(&db).unwrap();
        let registry = Arc::new(Registry::new().register(Counter { renamed: false }));
        let runs = Runs::new(Arc::new(queue.clone()), registry);
        let submitted = runs
            .submit(Submission::new("counter", serde_json::json!({})).run_id("run-1"))
            .await
            .unwrap();
        // Two steps checkpointed under version 1, as a worker would have (the run stays
        // unfinished: the worker "died").
        let persister = queue.persister();
        let builder = counter(false);
        let mut app = builder
            .with_app_id(&submitted.run.id)
            .with_state_persister(persister.clone())
            .initialize_from(persister)
            .build()
            .await
            .unwrap();
        app.step(Inputs::new()).await.unwrap();
        app.step(Inputs::new()).await.unwrap();
    });
    drop(runtime);

    check(&db, false).expect("the same code resumes every unfinished run");
    match check(&db, true) {
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
fn the_cache_verb_lists_sizes_and_prunes_entries() {
    use burr_core::cache::{Bytes, CacheKey, CacheStore, InputHash, SqliteCache};
    use burr_server::cli::CacheCommand;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("burr.db");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let queue = SqliteRunQueue::open(&db).unwrap();
        let store = SqliteCache::from_persister(&queue.persister());
        let entries = ["1", "1", "2"]
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let key = CacheKey::new("summarize", *v, InputHash::of_str(&i.to_string()));
                (key, Bytes::from(vec![0u8; 10]))
            })
            .collect();
        store.put_many(entries).await.unwrap();
    });
    let cache = |action| {
        cli::run(
            Cli {
                db: db.clone(),
                json: true,
                command: Command::Cache { action },
            },
            Registry::new(),
        )
    };
    cache(None).unwrap();
    cache(Some(CacheCommand::List {
        namespace: Some("summarize".into()),
        limit: 10,
    }))
    .unwrap();
    cache(Some(CacheCommand::Prune {
        namespace: Some("summarize".into()),
        version: None,
        except_version: Some("2".into()),
        older_than: None,
    }))
    .unwrap();
    let left = runtime.block_on(async {
        let queue = SqliteRunQueue::open(&db).unwrap();
        let store = SqliteCache::from_persister(&queue.persister());
        store.summary(None).await.unwrap()
    });
    assert_eq!(left.len(), 1);
    assert_eq!((left[0].version.as_str(), left[0].entries), ("2", 1));
}
