//! The embedding store with the real model on a real SQLite file: concurrent callers
//! share one computation per text, and a new store on the same file (a restarted
//! process) embeds nothing.

mod common;

use burr_core::persistence::SqlitePersister;
use example_related_discussions::batcher::BatchConfig;
use example_related_discussions::store::EmbeddingStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_share_one_computation_and_a_restart_embeds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("burr.db");
    let texts: Vec<String> = (0..20)
        .map(|i| format!("Discussion {i}: the deploy pipeline failed again"))
        .collect();

    let persister = SqlitePersister::open(&db).unwrap();
    let store = EmbeddingStore::open(&persister, common::model(), BatchConfig::default());
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (store, texts) = (store.clone(), texts.clone());
        tasks.push(tokio::spawn(
            async move { store.get_many(&texts, true).await },
        ));
    }
    let mut lookups = Vec::new();
    for task in tasks {
        lookups.push(task.await.unwrap().unwrap());
    }
    assert_eq!(store.embedded(), 20, "each text once, for all 8 callers");
    assert_eq!(lookups.iter().map(|l| l.embedded).sum::<usize>(), 20);
    assert_eq!(store.reused(), 8 * 20 - 20);
    for lookup in &lookups {
        assert_eq!(lookup.vectors, lookups[0].vectors);
    }
    assert_eq!(store.stored().await.unwrap(), 20);
    assert_eq!(common::stored_vectors(&db), 20);
    drop((store, persister));

    // A restarted process: the vectors come from the database, bit for bit.
    let persister = SqlitePersister::open(&db).unwrap();
    let store = EmbeddingStore::open(&persister, common::model(), BatchConfig::default());
    let again = store.get_many(&texts, true).await.unwrap();
    assert_eq!((again.embedded, again.reused), (0, 20));
    assert_eq!(again.vectors, lookups[0].vectors);
    // One new text: only it is embedded.
    let mut more = texts.clone();
    more.push("A text nobody embedded yet".to_owned());
    let more = store.get_many(&more, true).await.unwrap();
    assert_eq!((more.embedded, more.reused), (1, 20));
    assert_eq!(store.embedded(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_batcher_runs_urgent_texts_first_and_short_texts_together() {
    use example_related_discussions::batcher::Batcher;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    let sizes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&sizes);
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let batcher = Batcher::start(
        common::model(),
        BatchConfig {
            max_batch: 1024,
            model_batch: 64,
            max_wait: Duration::from_millis(300),
        },
        Box::new(move |texts, _| {
            counted.fetch_add(1, Ordering::SeqCst);
            seen.lock().unwrap().push(texts.to_vec());
        }),
    );
    // 100 ordinary texts of mixed lengths, then one urgent one, all in one window.
    let low: Vec<_> = (0..100)
        .map(|i| {
            let text = format!(
                "ordinary discussion {i} {}",
                "and more words ".repeat(i % 7)
            );
            batcher.submit(text)
        })
        .collect();
    let urgent = batcher.submit_at("the urgent one".to_owned(), 10);
    assert_eq!(urgent.await.unwrap().unwrap().len(), 384);
    // The urgent text ran in the first model batch; the last batch is still to come.
    assert!(low.iter().any(tokio::sync::oneshot::Receiver::is_empty));
    for r in low {
        r.await.unwrap().unwrap();
    }
    let batches = sizes.lock().unwrap().clone();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "101 texts, model batches of 64"
    );
    assert_eq!(batches[0][0], "the urgent one");
    // Within a priority, shortest first.
    let lens: Vec<usize> = batches.iter().flatten().skip(1).map(String::len).collect();
    assert!(lens.windows(2).all(|w| w[0] <= w[1]), "{lens:?}");
}
