//! New applications' records, batched: the records of applications that start at once
//! (the children of a map step) are written by one statement, in one round trip.
//!
//! A record of an application this persister does not know is queued; when fewer than
//! [`IN_FLIGHT`] statements are running, a recorder task takes everything queued and
//! inserts it with one `INSERT … SELECT FROM unnest(…)` (the graph descriptions this
//! persister has not stored yet with it, once per fingerprint). Like the single record
//! it replaces, the statement runs alone in autocommit mode and commits without waiting
//! for the disk (its `set_config` condition): a new application's record is made durable
//! by its first checkpoint's durable commit (the write-ahead log is flushed in order).
//! A graph description is sent until a durable commit (a checkpoint's) has followed the
//! statement that stored it (see [`Graphs`](crate::write::Graphs)).
//!
//! Each caller is told whether its row was inserted; a record whose row exists (another
//! runner recorded it) is answered `false` and recorded the careful way by the caller.
//! A statement the database fails fails no record by itself: each record of the batch is
//! then written alone, so that a record the database refuses fails that application only.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use burr_core::persistence::{AppRecord, PersistenceError};
use tokio::sync::{oneshot, Semaphore};

use crate::commit::SharedError;
use crate::layout::{app_key, parent_json, AppKey, Conn};
use crate::write::{Known, Shared};

/// The most records inserted by one statement.
const MAX_BATCH: usize = 512;

/// The most statements in flight at once.
const IN_FLIGHT: usize = 2;

/// The statement of a batch: every record's row unless one with its key exists, and the
/// graph descriptions not stored yet. Returns the key and row id of each row inserted.
/// Rows are filtered by a read, not `ON CONFLICT` (a speculative insertion costs
/// PostgreSQL twice a plain one's time): a row another runner inserts meanwhile fails
/// the statement, and the batch is then recorded record by record with [`INSERT_ONE`].
const INSERT_BATCH: &str = "WITH g AS (INSERT INTO burr_graphs (fingerprint, description) \
         SELECT * FROM unnest($8::text[], $9::text[]) \
         ON CONFLICT (fingerprint) DO NOTHING) \
     INSERT INTO burr_apps (partition_key, app_id, created_at_us, fork_parent, \
         spawning_parent, code_version, fingerprint) \
     SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], \
         $6::text[], $7::text[]) AS r (partition_key, app_id) \
     WHERE set_config('synchronous_commit', 'off', true) = 'off' \
       AND NOT EXISTS (SELECT 1 FROM burr_apps AS a \
                       WHERE a.partition_key = r.partition_key AND a.app_id = r.app_id) \
     RETURNING partition_key, app_id, id";

/// [`INSERT_BATCH`] for one record, safe against a runner inserting it meanwhile.
const INSERT_ONE: &str = "WITH g AS (INSERT INTO burr_graphs (fingerprint, description) \
         SELECT * FROM unnest($8::text[], $9::text[]) \
         ON CONFLICT (fingerprint) DO NOTHING) \
     INSERT INTO burr_apps (partition_key, app_id, created_at_us, fork_parent, \
         spawning_parent, code_version, fingerprint) \
     SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], \
         $6::text[], $7::text[]) \
     WHERE set_config('synchronous_commit', 'off', true) = 'off' \
     ON CONFLICT (partition_key, app_id) DO NOTHING RETURNING partition_key, app_id, id";

/// A queued record and where its answer goes: whether its row was inserted.
struct Entry {
    record: AppRecord,
    reply: oneshot::Sender<Result<bool, PersistenceError>>,
}

/// The queue of new applications' records and the tasks that write them.
pub(crate) struct Recorder {
    queue: Mutex<Vec<Entry>>,
    in_flight: Arc<Semaphore>,
}

impl Recorder {
    pub(crate) fn new() -> Recorder {
        Recorder {
            queue: Mutex::new(Vec::new()),
            in_flight: Arc::new(Semaphore::new(IN_FLIGHT)),
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Record `record` (of an application this persister does not know) with whatever
    /// else is queued: `true` once its row is inserted (and remembered), `false` when a
    /// row with its key exists.
    pub(crate) async fn submit(
        self: &Arc<Self>,
        shared: &Arc<Shared>,
        pool: &deadpool_postgres::Pool,
        record: &AppRecord,
    ) -> Result<bool, PersistenceError> {
        let (reply, answer) = oneshot::channel();
        self.queue().push(Entry {
            record: record.clone(),
            reply,
        });
        self.start(shared, pool);
        answer.await.unwrap_or_else(|_| Err(shared.target.closed()))
    }

    /// Start a recorder task if fewer than [`IN_FLIGHT`] run (one that runs takes what
    /// was just queued otherwise).
    fn start(self: &Arc<Self>, shared: &Arc<Shared>, pool: &deadpool_postgres::Pool) {
        let Ok(permit) = Arc::clone(&self.in_flight).try_acquire_owned() else {
            return;
        };
        let (recorder, shared, pool) = (Arc::clone(self), Arc::clone(shared), pool.clone());
        // A task of its own: a caller whose future is dropped does not stop the others'.
        tokio::spawn(async move {
            let mut permit = permit;
            loop {
                loop {
                    let batch: Vec<Entry> = {
                        let mut queue = recorder.queue();
                        let n = queue.len().min(MAX_BATCH);
                        queue.drain(..n).collect()
                    };
                    if batch.is_empty() {
                        break;
                    }
                    recorder.write(&shared, &pool, batch).await;
                }
                drop(permit);
                // A record queued after the queue was found empty, while the permit was
                // still held, is taken here (or by the task holding it now).
                if recorder.queue().is_empty() {
                    return;
                }
                match Arc::clone(&recorder.in_flight).try_acquire_owned() {
                    Ok(again) => permit = again,
                    Err(_) => return,
                }
            }
        });
    }

    /// Write `batch` and answer each record.
    async fn write(&self, shared: &Shared, pool: &deadpool_postgres::Pool, batch: Vec<Entry>) {
        let conn = match pool.get().await {
            Ok(conn) => conn,
            Err(error) => {
                let error = Arc::new(error);
                for entry in batch {
                    let error = SharedError(Arc::clone(&error));
                    let _ = entry
                        .reply
                        .send(Err(shared.target.error("record an application", error)));
                }
                return;
            }
        };
        // The first record of each key goes in the statement; a repeat of a key is
        // answered `false` after it (its row exists then).
        let mut seen: HashSet<AppKey> = HashSet::with_capacity(batch.len());
        let (mut firsts, mut repeats): (Vec<(AppKey, Entry)>, Vec<Entry>) =
            (Vec::with_capacity(batch.len()), Vec::new());
        for entry in batch {
            let key = app_key(entry.record.partition_key.as_deref(), &entry.record.app_id);
            if seen.insert(key.clone()) {
                firsts.push((key, entry));
            } else {
                repeats.push(entry);
            }
        }
        // In key order, so that two processes inserting overlapping batches wait for each
        // other's rows in the same order (no deadlock).
        firsts.sort_by(|a, b| a.0.cmp(&b.0));
        let rows: Vec<(AppKey, &AppRecord)> = firsts
            .iter()
            .map(|(key, entry)| (key.clone(), &entry.record))
            .collect();
        match self.insert(shared, &conn, &rows).await {
            Ok(inserted) => {
                for (key, entry) in firsts {
                    let _ = entry.reply.send(Ok(inserted.contains(&key)));
                }
            }
            Err(error) => {
                tracing::debug!(database = %shared.target.name, %error, "a batch of application records failed: recording each alone");
                // On another connection if this one is gone.
                let conn = if conn.is_closed() {
                    match pool.get().await {
                        Ok(fresh) => fresh,
                        Err(error) => {
                            let error = Arc::new(error);
                            for (_, entry) in firsts {
                                let error = SharedError(Arc::clone(&error));
                                let _ = entry
                                    .reply
                                    .send(Err(shared.target.error("record an application", error)));
                            }
                            return;
                        }
                    }
                } else {
                    conn
                };
                for (key, entry) in firsts {
                    let alone = self.insert(shared, &conn, &[(key, &entry.record)]).await;
                    let answer = match alone {
                        Ok(inserted) => Ok(!inserted.is_empty()),
                        Err(error) => Err(shared.target.error("record an application", error)),
                    };
                    let _ = entry.reply.send(answer);
                }
            }
        }
        for entry in repeats {
            let _ = entry.reply.send(Ok(false));
        }
    }

    /// Insert the rows of `records` (distinct keys) in one statement; the keys inserted,
    /// remembered with their row ids (and their graphs as stored).
    async fn insert(
        &self,
        shared: &Shared,
        conn: &Conn,
        records: &[(AppKey, &AppRecord)],
    ) -> Result<HashSet<AppKey>, tokio_postgres::Error> {
        let n = records.len();
        let mut partition_keys = Vec::with_capacity(n);
        let mut app_ids = Vec::with_capacity(n);
        let mut created = Vec::with_capacity(n);
        let mut fork_parents = Vec::with_capacity(n);
        let mut spawning_parents = Vec::with_capacity(n);
        let mut versions = Vec::with_capacity(n);
        let mut fingerprints = Vec::with_capacity(n);
        let mut graph_fingerprints: Vec<&str> = Vec::new();
        let mut descriptions: Vec<String> = Vec::new();
        {
            let stored = &shared.graphs().durable;
            for (key, record) in records {
                let code = record.code.as_ref();
                partition_keys.push(key.0.as_str());
                app_ids.push(key.1.as_str());
                created.push(record.created_at_us);
                fork_parents.push(record.fork_parent.as_ref().map(parent_json));
                spawning_parents.push(record.spawning_parent.as_ref().map(parent_json));
                versions.push(code.and_then(|c| c.version.as_deref()));
                fingerprints.push(code.map(|c| c.fingerprint.as_str()));
                if let Some((fingerprint, graph)) =
                    code.and_then(|c| Some((c.fingerprint.as_str(), c.graph.as_ref()?)))
                {
                    if !stored.contains(fingerprint) && !graph_fingerprints.contains(&fingerprint) {
                        graph_fingerprints.push(fingerprint);
                        // Serialising plain structs of strings does not fail.
                        descriptions.push(serde_json::to_string(graph).unwrap_or_default());
                    }
                }
            }
        }
        let statement = conn
            .prepare_cached(if records.len() == 1 {
                INSERT_ONE
            } else {
                INSERT_BATCH
            })
            .await?;
        let rows = conn
            .query(
                &statement,
                &[
                    &partition_keys,
                    &app_ids,
                    &created,
                    &fork_parents,
                    &spawning_parents,
                    &versions,
                    &fingerprints,
                    &graph_fingerprints,
                    &descriptions,
                ],
            )
            .await?;
        let mut ids: HashMap<AppKey, i64> = HashMap::with_capacity(rows.len());
        for row in rows {
            ids.insert((row.try_get(0)?, row.try_get(1)?), row.try_get(2)?);
        }
        shared
            .graphs()
            .unflushed
            .extend(graph_fingerprints.iter().map(|f| (*f).to_owned()));
        let inserted: HashSet<AppKey> = ids.keys().cloned().collect();
        let mut pending = crate::write::Pending::default();
        for (key, id) in ids {
            pending.known.insert(key.clone(), Some(Known::new_app()));
            pending.apps.insert(key, Some(id));
        }
        shared.keep(&mut pending);
        Ok(inserted)
    }
}
