//! The `cache` verb over a database's work cache. (`check`, on both backends, is tested
//! in the workspace's `tests/tests/check.rs`.)

use burr_server::cli::{self, Cli, Command};
use burr_server::{Registry, SqliteRunQueue};

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
