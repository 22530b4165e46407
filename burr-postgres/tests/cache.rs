//! The work cache (`burr_core::cache`) on a real PostgreSQL database ([`PgCache`]): the
//! tests of `burr-core/tests/cache.rs` (which run on SQLite files), with entries shared
//! across persisters and processes, concurrent identical requests computed once, errors
//! never stored, batches computing only their misses, listing, sizing and pruning.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use burr_core::cache::{Bytes, Cache, CacheError, CacheKey, CachePrune, CacheStore, InputHash};
use burr_postgres::testing::TestServer;
use burr_postgres::{PgCache, PostgresPersister};

fn key(namespace: &str, version: &str, text: &str) -> CacheKey {
    CacheKey::new(namespace, version, InputHash::of_str(text))
}

async fn pg_cache(url: &str) -> Cache {
    let persister = PostgresPersister::connect(url)
        .await
        .expect("the database opens");
    Cache::new(PgCache::from_persister(&persister))
}

fn fresh() -> String {
    TestServer::shared().fresh_database()
}

#[tokio::test]
async fn a_second_persister_on_the_same_database_sees_what_the_first_stored() {
    let url = fresh();
    let first = pg_cache(&url).await;
    let second = pg_cache(&url).await;
    let k = key("upper", "1", "hello");
    let value = first
        .get_or_compute(&k, || async {
            Ok::<_, std::io::Error>(Bytes::from("HELLO"))
        })
        .await
        .unwrap();
    assert_eq!(&value[..], b"HELLO");
    // The second persister (its own pool, as another process has) reads it.
    let seen = second
        .get_or_compute(&k, || async {
            Err::<Bytes, _>(std::io::Error::other("must not be computed again"))
        })
        .await
        .unwrap();
    assert_eq!(&seen[..], b"HELLO");
    assert_eq!(second.stats().hits, 1);
    assert_eq!(second.stats().compute_calls, 0);
    // Another version is another entry.
    assert_eq!(second.get(&key("upper", "2", "hello")).await.unwrap(), None);
}

/// The child half of `a_second_process_sees_entries_the_first_wrote`: run by the test
/// binary itself when `BURR_CACHE_CHILD_DB` is set.
#[tokio::test]
async fn child_process_reads_and_writes() {
    let Ok(path) = std::env::var("BURR_CACHE_CHILD_DB") else {
        return;
    };
    let cache = pg_cache(&path).await;
    let found = cache.get(&key("upper", "1", "from parent")).await.unwrap();
    assert_eq!(found.as_deref(), Some(&b"FROM PARENT"[..]));
    cache
        .put(&key("upper", "1", "from child"), Bytes::from("FROM CHILD"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_second_process_sees_entries_the_first_wrote() {
    let path = fresh();
    let cache = pg_cache(&path).await;
    cache
        .put(
            &key("upper", "1", "from parent"),
            Bytes::from("FROM PARENT"),
        )
        .await
        .unwrap();
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_process_reads_and_writes", "--nocapture"])
        .env("BURR_CACHE_CHILD_DB", &path)
        .output()
        .expect("the test binary runs again as a child process");
    assert!(
        status.status.success(),
        "the child process failed: {}",
        String::from_utf8_lossy(&status.stdout)
    );
    // What the child stored, this process reads (with its persister opened before).
    let found = cache.get(&key("upper", "1", "from child")).await.unwrap();
    assert_eq!(found.as_deref(), Some(&b"FROM CHILD"[..]));
    assert_eq!(cache.store().size(None).await.unwrap().entries, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_identical_calls_compute_once() {
    let cache = pg_cache(&fresh()).await;
    let runs = Arc::new(AtomicUsize::new(0));
    let k = key("slow", "1", "same input");
    let calls = (0..100).map(|_| {
        let cache = cache.clone();
        let runs = Arc::clone(&runs);
        let k = k.clone();
        tokio::spawn(async move {
            cache
                .get_or_compute(&k, || async {
                    runs.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Ok::<_, std::io::Error>(Bytes::from("computed once"))
                })
                .await
        })
    });
    let values = futures::future::join_all(calls).await;
    for value in values {
        assert_eq!(&value.unwrap().unwrap()[..], b"computed once");
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let stats = cache.stats();
    assert_eq!(stats.computed, 1);
    assert_eq!(stats.coalesced, 99);
    assert_eq!(cache.store().size(None).await.unwrap().entries, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_error_goes_to_every_waiter_and_nothing_is_stored() {
    let cache = pg_cache(&fresh()).await;
    let runs = Arc::new(AtomicUsize::new(0));
    let k = key("flaky", "1", "input");
    let calls = (0..20).map(|_| {
        let cache = cache.clone();
        let runs = Arc::clone(&runs);
        let k = k.clone();
        tokio::spawn(async move {
            cache
                .get_or_compute(&k, || async {
                    runs.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Err::<Bytes, _>(std::io::Error::other("model unavailable"))
                })
                .await
        })
    });
    for outcome in futures::future::join_all(calls).await {
        match outcome.unwrap() {
            Err(CacheError::Compute { key, source }) => {
                assert!(key.starts_with("flaky@1:"), "{key}");
                assert_eq!(source.to_string(), "model unavailable");
            }
            other => panic!("expected the computation's error, got {other:?}"),
        }
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(cache.get(&k).await.unwrap(), None);
    assert_eq!(cache.store().size(None).await.unwrap().entries, 0);
    // The next call computes again, and this time stores.
    let value = cache
        .get_or_compute(&k, || async { Ok::<_, std::io::Error>(Bytes::from("ok")) })
        .await
        .unwrap();
    assert_eq!(&value[..], b"ok");
    assert_eq!(cache.get(&k).await.unwrap().as_deref(), Some(&b"ok"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_computes_its_misses_in_one_call_and_waits_for_keys_in_flight() {
    let cache = pg_cache(&fresh()).await;
    let texts: Vec<String> = (0..10).map(|i| format!("text {i}")).collect();
    let keys: Vec<CacheKey> = texts.iter().map(|t| key("toy-embed", "1", t)).collect();
    // Three already stored.
    let stored: Vec<f32> = vec![9.0, 9.0];
    for k in &keys[..3] {
        cache
            .put(k, burr_core::cache::encode_f32s(&stored))
            .await
            .unwrap();
    }
    let asked = Arc::new(std::sync::Mutex::new(Vec::<Vec<usize>>::new()));
    let embed = |asked: Arc<std::sync::Mutex<Vec<Vec<usize>>>>, texts: Vec<String>| {
        move |missing: Vec<usize>| {
            asked.lock().unwrap().push(missing.clone());
            let texts = texts.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok::<_, std::io::Error>(
                    missing
                        .iter()
                        .map(|&i| vec![texts[i].len() as f32, i as f32])
                        .collect::<Vec<_>>(),
                )
            }
        }
    };
    // Two batches at once over overlapping keys (the second with a duplicate): every
    // missing key is computed once, by one of them.
    let second_keys: Vec<CacheKey> = keys[5..].iter().chain(&keys[5..6]).cloned().collect();
    let second_texts: Vec<String> = texts[5..].iter().chain(&texts[5..6]).cloned().collect();
    let (a, b) = tokio::join!(
        cache.get_or_compute_f32s_many(&keys, embed(Arc::clone(&asked), texts.clone())),
        cache.get_or_compute_f32s_many(&second_keys, embed(Arc::clone(&asked), second_texts)),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.len(), 10);
    assert_eq!(a[0], stored);
    assert_eq!(a[4], vec![6.0, 4.0]);
    assert_eq!(b.len(), 6);
    assert_eq!(b[0], a[5]);
    assert_eq!(b[5], a[5]);
    let calls = asked.lock().unwrap().clone();
    let computed: usize = calls.iter().map(Vec::len).sum();
    assert_eq!(computed, 7, "each of the 7 missing keys once: {calls:?}");
    assert!(calls.len() <= 2, "one call per batch at most: {calls:?}");
    assert_eq!(
        cache.store().size(Some("toy-embed")).await.unwrap().entries,
        10
    );
}

#[tokio::test]
async fn entries_are_listed_sized_and_pruned() {
    let url = fresh();
    let persister = PostgresPersister::connect(&url).await.unwrap();
    let store = PgCache::from_persister(&persister);
    for (version, n) in [("1", 3), ("2", 2)] {
        let entries = (0..n)
            .map(|i| {
                (
                    key("summarize", version, &format!("{i}")),
                    Bytes::from(vec![7u8; 100]),
                )
            })
            .collect();
        store.put_many(entries).await.unwrap();
    }
    store
        .put(&key("embed", "m1", "t"), Bytes::from(vec![0u8; 1536]))
        .await
        .unwrap();
    let size = store.size(None).await.unwrap();
    assert_eq!((size.entries, size.bytes), (6, 500 + 1536));
    let groups = store.summary(None).await.unwrap();
    let names: Vec<_> = groups
        .iter()
        .map(|g| (g.namespace.as_str(), g.version.as_str(), g.entries, g.bytes))
        .collect();
    assert_eq!(
        names,
        [
            ("embed", "m1", 1, 1536),
            ("summarize", "1", 3, 300),
            ("summarize", "2", 2, 200)
        ]
    );
    let listed = store.list(Some("summarize"), 4).await.unwrap();
    assert_eq!(listed.len(), 4);
    assert!(listed
        .iter()
        .all(|e| e.namespace == "summarize" && e.bytes == 100));
    assert!(listed[0].key().is_some());

    // Another persister sees the same sizes.
    let other = PgCache::from_persister(&PostgresPersister::connect(&url).await.unwrap());
    assert_eq!(other.size(Some("summarize")).await.unwrap().entries, 5);
    let many = other
        .get_many(&[
            key("summarize", "1", "2"),
            key("summarize", "3", "2"),
            key("embed", "m1", "t"),
        ])
        .await
        .unwrap();
    assert_eq!(many[0].as_deref(), Some(&[7u8; 100][..]));
    assert_eq!(many[1], None);
    assert_eq!(many[2].as_ref().map(|v| v.len()), Some(1536));

    // Old versions of one namespace go; the current one and other namespaces stay.
    let pruned = store
        .prune(&CachePrune::new().namespace("summarize").except_version("2"))
        .await
        .unwrap();
    assert_eq!(pruned, 3);
    assert_eq!(store.size(Some("summarize")).await.unwrap().entries, 2);
    // Nothing is older than an hour ago; everything is older than an hour from now.
    let hour = Duration::from_secs(3600);
    let old = CachePrune::new().created_before(SystemTime::now() - hour);
    assert_eq!(store.prune(&old).await.unwrap(), 0);
    let all = CachePrune::new().created_before(SystemTime::now() + hour);
    assert_eq!(store.prune(&all).await.unwrap(), 3);
    assert_eq!(store.size(None).await.unwrap().entries, 0);
}

#[tokio::test]
async fn json_values_round_trip_and_decode_errors_name_the_entry() {
    let cache = pg_cache(&fresh()).await;
    let k = key("plan", "1", "q");
    let computed: Vec<String> = cache
        .get_or_compute_json(&k, || async {
            Ok::<_, std::io::Error>(vec!["a".to_owned(), "b".to_owned()])
        })
        .await
        .unwrap();
    let again: Vec<String> = cache
        .get_or_compute_json(&k, || async {
            Err::<Vec<String>, _>(std::io::Error::other("not called"))
        })
        .await
        .unwrap();
    assert_eq!(computed, again);
    let wrong = cache
        .get_or_compute_json::<u64, _, _, std::io::Error>(&k, || async { Ok(1) })
        .await;
    match wrong {
        Err(CacheError::Decode { key, .. }) => assert!(key.starts_with("plan@1:")),
        other => panic!("expected a decode error, got {other:?}"),
    }
}
