//! The write path inside a transaction: what saving a checkpoint, recording an
//! application, taking a lease, deleting and pruning write, and what the persister
//! remembers of what it wrote ([`Shared`]) so that a save diffs against the state it
//! knows. How saves are batched and committed is in [`commit`](crate::commit).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use burr_core::persistence::{micros, AppRecord, Checkpoint, Clock, PersistenceError, StepStatus};
use burr_core::state::{State, StateDelta};

use crate::database::Target;
use crate::layout::{
    self, app_key, parent_json, prior_step_column, sequence_column, AppKey, Conn, Failure,
};
use crate::lease::{self, HeldLease, LeaseState};
use crate::read;
use burr_core::persistence::ProcessIdentity;

// --------------------------------------------------------------------------------------
// The latest stored state of each application this persister saved or loaded, so that
// a save writes only what changed without reading the stored state back (as the SQLite
// persister does: a value is unchanged only if it is the very same shared value).
// --------------------------------------------------------------------------------------

/// Applications remembered; beyond, the least recently used half is forgotten.
const MAX_ENTRIES: usize = 1024;

/// Application row ids remembered before the map is emptied.
const MAX_APP_ROWS: usize = 100_000;

/// The latest stored checkpoint of an application, as this persister saved or loaded it.
#[derive(Clone, Debug)]
pub(crate) struct Known {
    pub(crate) sequence_id: i64,
    pub(crate) attempt: u32,
    pub(crate) status: StepStatus,
    /// The state stored at it (for a failed step, the state before the step).
    pub(crate) state: State,
    /// How many checkpoints of the application, up to this one, have inline values since
    /// its latest base.
    pub(crate) inline: u32,
}

impl Known {
    /// What is known of a new application: nothing stored, its first checkpoint next.
    pub(crate) fn new_app() -> Known {
        Known {
            sequence_id: -1,
            attempt: 0,
            status: StepStatus::Completed,
            state: State::new(),
            inline: 0,
        }
    }

    /// Whether a checkpoint at (`sequence_id`, `attempt`) comes right after this one.
    pub(crate) fn followed_by(&self, sequence_id: i64, attempt: u32) -> bool {
        sequence_id == self.sequence_id.saturating_add(1)
            || (sequence_id == self.sequence_id
                && self.status != StepStatus::Completed
                && attempt > self.attempt)
    }
}

/// [`Known`] checkpoints by application, least recently used forgotten first.
#[derive(Default)]
pub(crate) struct KnownStates {
    map: HashMap<AppKey, (Known, u64)>,
    clock: u64,
}

impl KnownStates {
    pub(crate) fn get(&mut self, key: &AppKey) -> Option<Known> {
        self.clock += 1;
        let clock = self.clock;
        self.map.get_mut(key).map(|(known, used)| {
            *used = clock;
            known.clone()
        })
    }

    pub(crate) fn insert(&mut self, key: AppKey, known: Known) {
        self.clock += 1;
        self.map.insert(key, (known, self.clock));
        if self.map.len() > MAX_ENTRIES {
            let mut uses: Vec<u64> = self.map.values().map(|(_, used)| *used).collect();
            let (_, median, _) = uses.select_nth_unstable(MAX_ENTRIES / 2);
            let cut = *median;
            self.map.retain(|_, (_, used)| *used > cut);
        }
    }

    pub(crate) fn remove(&mut self, key: &AppKey) {
        self.map.remove(key);
    }
}

/// What every connection of a persister shares: the database, who this process is, and
/// what the persister remembers (application row ids, known states, leases held).
pub(crate) struct Shared {
    pub(crate) target: Target,
    pub(crate) me: ProcessIdentity,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) known: Mutex<KnownStates>,
    pub(crate) apps: Mutex<HashMap<AppKey, i64>>,
    pub(crate) leases: Mutex<HashMap<AppKey, HeldLease>>,
    pub(crate) graphs: Mutex<Graphs>,
}

/// The graph fingerprints whose descriptions this persister stored (or found stored) in
/// `burr_graphs`.
#[derive(Default)]
pub(crate) struct Graphs {
    /// Stored durably: their descriptions are not sent again.
    pub(crate) durable: HashSet<String>,
    /// Stored by a commit that did not wait for the disk (a new application's record):
    /// durable once a durable commit that started after it returns (the write-ahead log
    /// is flushed in order); until then their descriptions are sent with new records.
    pub(crate) unflushed: HashSet<String>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub(crate) fn known(&self) -> MutexGuard<'_, KnownStates> {
        lock(&self.known)
    }

    pub(crate) fn apps(&self) -> MutexGuard<'_, HashMap<AppKey, i64>> {
        lock(&self.apps)
    }

    pub(crate) fn leases(&self) -> MutexGuard<'_, HashMap<AppKey, HeldLease>> {
        lock(&self.leases)
    }

    pub(crate) fn graphs(&self) -> MutexGuard<'_, Graphs> {
        lock(&self.graphs)
    }

    /// The graphs stored without waiting for the disk so far: a durable commit about to
    /// start makes them durable (see [`graphs_flushed`](Self::graphs_flushed)).
    pub(crate) fn graphs_to_flush(&self) -> Vec<String> {
        let graphs = self.graphs();
        if graphs.unflushed.is_empty() {
            return Vec::new();
        }
        graphs.unflushed.iter().cloned().collect()
    }

    /// A commit that started after `graphs` were stored has returned: durable when it
    /// wrote (and so flushed the log), otherwise they stay to be flushed.
    pub(crate) fn graphs_flushed(&self, graphs: Vec<String>, durable: bool) {
        if graphs.is_empty() || !durable {
            return;
        }
        let mut known = self.graphs();
        for fingerprint in graphs {
            known.unflushed.remove(&fingerprint);
            known.durable.insert(fingerprint);
        }
    }

    /// Remember what a committed transaction changed (leaving `pending` empty).
    pub(crate) fn keep(&self, pending: &mut Pending) {
        if !pending.apps.is_empty() {
            let mut apps = self.apps();
            if apps.len() + pending.apps.len() > MAX_APP_ROWS {
                apps.clear();
            }
            for (key, id) in pending.apps.drain() {
                match id {
                    Some(id) => apps.insert(key, id),
                    None => apps.remove(&key),
                };
            }
        }
        if !pending.leases.is_empty() {
            let mut leases = self.leases();
            for (key, held) in pending.leases.drain() {
                match held {
                    Some(held) => leases.insert(key, held),
                    None => leases.remove(&key),
                };
            }
        }
        if !pending.known.is_empty() {
            let mut known = self.known();
            for (key, entry) in pending.known.drain() {
                match entry {
                    Some(entry) => known.insert(key, entry),
                    None => known.remove(&key),
                }
            }
        }
    }

    /// Forget a lease given back by `holder` (and stop keeping its application's state
    /// alive), if this persister holds it.
    pub(crate) fn forget_lease(&self, key: &AppKey, holder: &str) {
        let mut leases = self.leases();
        if leases.get(key).is_some_and(|h| h.holder == holder) {
            leases.remove(key);
            drop(leases);
            self.known().remove(key);
        }
    }
}

/// Changes to the persister's memory, kept when the transaction commits.
#[derive(Default)]
pub(crate) struct Pending {
    pub(crate) apps: HashMap<AppKey, Option<i64>>,
    pub(crate) known: HashMap<AppKey, Option<Known>>,
    pub(crate) leases: HashMap<AppKey, Option<HeldLease>>,
}

impl Pending {
    /// Forget every change (the transaction rolled back).
    pub(crate) fn clear(&mut self) {
        self.apps.clear();
        self.known.clear();
        self.leases.clear();
    }
}

// --------------------------------------------------------------------------------------
// A save that needs no read: the application's row id is known, the checkpoint follows
// the one this persister knows, its values are small and no compaction is due. It is one
// statement, which also checks the lease (the fence), plus the lease's renewal when due:
// such saves of several applications are sent together, without waiting for each
// other's answers.
// --------------------------------------------------------------------------------------

/// The statement of a [`FastSave`] of an application whose lease this persister does not
/// hold: the checkpoint's row, unless one with its (sequence id, attempt) is stored.
/// Returns a row when it inserted one.
pub(crate) const FAST_INSERT: &str = "INSERT INTO burr_checkpoints \
     (app, sequence_id, attempt, position, status, prior_step, created_at_us, changed_keys, error, inline_values) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING RETURNING 1";

/// The statement of a [`FastSave`] under a lease: inserts only while the lease row names
/// this holder and attempt (the fence), in the same statement.
pub(crate) const FAST_INSERT_FENCED: &str = "INSERT INTO burr_checkpoints \
     (app, sequence_id, attempt, position, status, prior_step, created_at_us, changed_keys, error, inline_values) \
     SELECT $1::bigint, $2::bigint, $3::bigint, $4::text, $5::text, $6::text, $7::bigint, $8::text, $9::text, $10::text \
     WHERE EXISTS (SELECT 1 FROM burr_leases \
                   WHERE partition_key = $11 AND app_id = $12 AND holder = $13 AND attempt = $14) \
     ON CONFLICT DO NOTHING RETURNING 1";

/// The statement of several [`FastSave`]s of applications whose leases this persister
/// does not hold (a map step's children run under their root's): their checkpoints' rows
/// in one statement. Without `ON CONFLICT` (a speculative insertion costs PostgreSQL
/// twice a plain one's time): a row whose (sequence id, attempt) is stored fails the
/// statement, and the batch runs again with a statement for each save, which tells.
pub(crate) const FAST_INSERT_ROWS: &str = "INSERT INTO burr_checkpoints \
     (app, sequence_id, attempt, position, status, prior_step, created_at_us, changed_keys, error, inline_values) \
     SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], \
         $6::text[], $7::bigint[], $8::text[], $9::text[], $10::text[])";

/// The prepared statements of fast saves.
pub(crate) struct FastStatements {
    pub(crate) insert: tokio_postgres::Statement,
    pub(crate) rows: tokio_postgres::Statement,
    pub(crate) fenced: tokio_postgres::Statement,
    pub(crate) renew: tokio_postgres::Statement,
}

impl FastStatements {
    /// Prepare them on `conn` (from its statement cache after the first time).
    pub(crate) async fn prepare(conn: &Conn) -> Result<Self, tokio_postgres::Error> {
        Ok(FastStatements {
            insert: conn.prepare_cached(FAST_INSERT).await?,
            rows: conn.prepare_cached(FAST_INSERT_ROWS).await?,
            fenced: conn.prepare_cached(FAST_INSERT_FENCED).await?,
            renew: conn.prepare_cached(lease::RENEW).await?,
        })
    }
}

/// A save planned as one statement (and a lease renewal when due).
pub(crate) struct FastSave {
    pub(crate) key: AppKey,
    pub(crate) app: i64,
    pub(crate) seq: i64,
    pub(crate) attempt: i64,
    pub(crate) prior_step: Option<String>,
    pub(crate) created_at_us: i64,
    pub(crate) changed_keys: String,
    pub(crate) values: String,
    /// The lease held: holder, attempt, and the new expiry when a renewal is due.
    pub(crate) lease: Option<(String, i64, Option<i64>)>,
    /// What is known after it.
    pub(crate) known: Known,
}

/// What a [`FastSave`] found.
pub(crate) enum FastOutcome {
    /// Saved.
    Saved,
    /// A checkpoint with its (sequence id, attempt) is stored.
    Conflict,
    /// The lease is not this holder's any more: the save is done the careful way.
    LeaseChanged,
}

impl FastSave {
    /// The plan of `checkpoint` as one statement, when it needs no read.
    pub(crate) fn plan(shared: &Shared, checkpoint: &Checkpoint, now_us: i64) -> Option<FastSave> {
        let key = app_key(checkpoint.partition_key.as_deref(), &checkpoint.app_id);
        let seq = i64::try_from(checkpoint.sequence_id).ok()?;
        let app = *shared.apps().get(&key)?;
        let lease = match shared.leases().get(&key) {
            None => None,
            Some(held) if held.state == LeaseState::Lost => return None,
            Some(held) => {
                let due = now_us - held.renewed_at_us >= held.renew_after_us();
                Some((
                    held.holder.clone(),
                    held.attempt,
                    due.then(|| now_us.saturating_add(held.ttl_us)),
                ))
            }
        };
        let known = shared
            .known()
            .get(&key)
            .filter(|k| k.followed_by(seq, checkpoint.attempt))?;
        if known.inline >= layout::COMPACT_AFTER {
            return None;
        }
        let delta = StateDelta::between(&known.state, &checkpoint.state);
        let values = layout::encode(&delta)?;
        Some(FastSave {
            app,
            seq,
            attempt: i64::from(checkpoint.attempt),
            prior_step: prior_step_column(checkpoint.prior_step.as_deref(), &checkpoint.position)
                .map(str::to_owned),
            created_at_us: micros(checkpoint.created_at),
            changed_keys: changed_keys(&checkpoint.delta, Some(&delta)),
            values,
            lease,
            known: Known {
                sequence_id: seq,
                attempt: checkpoint.attempt,
                status: checkpoint.status,
                state: checkpoint.state.clone(),
                inline: known.inline + 1,
            },
            key,
        })
    }

    /// Whether it needs a statement of its own to renew the lease (so, not alone: in a
    /// transaction with the insert).
    pub(crate) fn renews(&self) -> bool {
        self.lease
            .as_ref()
            .is_some_and(|(_, _, renew)| renew.is_some())
    }

    /// Send its statements on `conn` (the lease's renewal first, when due): whether the
    /// checkpoint's row was inserted. All its requests are sent at the first poll.
    pub(crate) async fn run(
        &self,
        conn: &Conn,
        statements: &FastStatements,
        checkpoint: &Checkpoint,
    ) -> Result<bool, tokio_postgres::Error> {
        let status = checkpoint.status.as_str();
        let row: [&(dyn tokio_postgres::types::ToSql + Sync); 10] = [
            &self.app,
            &self.seq,
            &self.attempt,
            &checkpoint.position,
            &status,
            &self.prior_step,
            &self.created_at_us,
            &self.changed_keys,
            &checkpoint.error,
            &self.values,
        ];
        let Some((holder, attempt, renew_to)) = &self.lease else {
            return Ok(conn.query_opt(&statements.insert, &row).await?.is_some());
        };
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = row.to_vec();
        let fence: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
            [&self.key.0, &self.key.1, holder, attempt];
        params.extend(fence);
        let insert = conn.query_opt(&statements.fenced, &params);
        match renew_to {
            Some(renew_to) => {
                let renewal: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
                    [&self.key.0, &self.key.1, holder, attempt, renew_to];
                let renew = conn.execute(&statements.renew, &renewal);
                let (renewed, inserted) = futures::future::join(renew, insert).await;
                renewed?;
                Ok(inserted?.is_some())
            }
            None => Ok(insert.await?.is_some()),
        }
    }

    /// Whether this save runs under a lease (so, as a statement of its own that checks
    /// it).
    pub(crate) fn fenced(&self) -> bool {
        self.lease.is_some()
    }

    /// Send the rows of `saves` (each without a lease: see [`fenced`](Self::fenced)) as
    /// one statement on `conn`: for each, whether its row was inserted (all are, or the
    /// statement fails).
    pub(crate) async fn run_rows(
        conn: &Conn,
        statements: &FastStatements,
        saves: &[(&FastSave, &Checkpoint)],
    ) -> Result<Vec<bool>, tokio_postgres::Error> {
        let n = saves.len();
        let mut apps = Vec::with_capacity(n);
        let mut seqs = Vec::with_capacity(n);
        let mut attempts = Vec::with_capacity(n);
        let mut positions = Vec::with_capacity(n);
        let mut statuses = Vec::with_capacity(n);
        let mut prior_steps = Vec::with_capacity(n);
        let mut created = Vec::with_capacity(n);
        let mut changed_keys = Vec::with_capacity(n);
        let mut errors = Vec::with_capacity(n);
        let mut values = Vec::with_capacity(n);
        for (save, checkpoint) in saves {
            apps.push(save.app);
            seqs.push(save.seq);
            attempts.push(save.attempt);
            positions.push(checkpoint.position.as_str());
            statuses.push(checkpoint.status.as_str());
            prior_steps.push(save.prior_step.as_deref());
            created.push(save.created_at_us);
            changed_keys.push(save.changed_keys.as_str());
            errors.push(checkpoint.error.as_deref());
            values.push(save.values.as_str());
        }
        let inserted = conn
            .execute(
                &statements.rows,
                &[
                    &apps,
                    &seqs,
                    &attempts,
                    &positions,
                    &statuses,
                    &prior_steps,
                    &created,
                    &changed_keys,
                    &errors,
                    &values,
                ],
            )
            .await?;
        Ok(vec![inserted == n as u64; n])
    }

    /// Why a fast save inserted nothing: its checkpoint is stored already, or (under a
    /// lease) the lease is not this holder's any more.
    pub(crate) async fn refused(&self, conn: &Conn) -> Result<FastOutcome, tokio_postgres::Error> {
        let Some((holder, attempt, _)) = &self.lease else {
            return Ok(FastOutcome::Conflict);
        };
        let held = conn.prepare_cached(lease::HELD).await?;
        let ours: bool = conn
            .query_one(&held, &[&self.key.0, &self.key.1, holder, attempt])
            .await?
            .try_get(0)?;
        Ok(if ours {
            FastOutcome::Conflict
        } else {
            FastOutcome::LeaseChanged
        })
    }

    /// What a saved fast save changes in the persister's memory.
    pub(crate) fn saved(self, renewed: bool, now_us: i64, shared: &Shared, pending: &mut Pending) {
        if renewed && self.lease.as_ref().is_some_and(|l| l.2.is_some()) {
            if let Some(mut held) = shared.leases().get(&self.key).cloned() {
                held.renewed_at_us = now_us;
                pending.leases.insert(self.key.clone(), Some(held));
            }
        }
        pending.known.insert(self.key, Some(self.known));
    }
}

// --------------------------------------------------------------------------------------
// The careful way: each operation's statements one after another in a transaction,
// reading what it needs. Every operation either does all its writes or, when it is
// refused ([`Failure::Refused`]), none, so the other operations of the transaction can
// still commit.
// --------------------------------------------------------------------------------------

/// One write transaction.
pub(crate) struct Txn<'a> {
    pub(crate) conn: &'a Conn,
    pub(crate) shared: &'a Shared,
    /// The transaction's clock, in microseconds since the Unix epoch.
    pub(crate) now_us: i64,
    pub(crate) pending: &'a mut Pending,
}

impl Txn<'_> {
    fn database(&self) -> &str {
        &self.shared.target.name
    }

    fn app(&self, key: &AppKey) -> Option<i64> {
        match self.pending.apps.get(key) {
            Some(id) => *id,
            None => self.shared.apps().get(key).copied(),
        }
    }

    fn lease(&self, key: &AppKey) -> Option<HeldLease> {
        match self.pending.leases.get(key) {
            Some(lease) => lease.clone(),
            None => self.shared.leases().get(key).cloned(),
        }
    }

    fn known(&self, key: &AppKey) -> Option<Known> {
        match self.pending.known.get(key) {
            Some(known) => known.clone(),
            None => self.shared.known().get(key),
        }
    }

    /// The row id of the application, creating its row if needed.
    async fn app_row(&mut self, key: &AppKey, created_at_us: i64) -> Result<i64, Failure> {
        if let Some(id) = self.app(key) {
            return Ok(id);
        }
        match read::app_row(self.conn, Some(&key.0), &key.1).await? {
            Some(id) => {
                self.pending.apps.insert(key.clone(), Some(id));
                Ok(id)
            }
            None => self.insert_app(key, created_at_us, None, None).await,
        }
    }

    /// Create an application's row (or find the one another process just created).
    async fn insert_app(
        &mut self,
        key: &AppKey,
        created_at_us: i64,
        fork_parent: Option<String>,
        spawning_parent: Option<String>,
    ) -> Result<i64, Failure> {
        let insert = self
            .conn
            .prepare_cached(
                "INSERT INTO burr_apps (partition_key, app_id, created_at_us, fork_parent, spawning_parent) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (partition_key, app_id) DO NOTHING RETURNING id",
            )
            .await?;
        let row = self
            .conn
            .query_opt(
                &insert,
                &[
                    &key.0,
                    &key.1,
                    &created_at_us,
                    &fork_parent,
                    &spawning_parent,
                ],
            )
            .await?;
        let id = match row {
            Some(row) => {
                self.pending
                    .known
                    .insert(key.clone(), Some(Known::new_app()));
                row.try_get(0)?
            }
            // Created by another process meanwhile.
            None => read::app_row(self.conn, Some(&key.0), &key.1)
                .await?
                .ok_or_else(|| {
                    Failure::Refused(PersistenceError::UnknownApp {
                        partition_key: (!key.0.is_empty()).then(|| key.0.clone()),
                        app_id: key.1.clone(),
                    })
                })?,
        };
        self.pending.apps.insert(key.clone(), Some(id));
        Ok(id)
    }

    /// Save one checkpoint: its row, with the values it set or deleted inline if they are
    /// small, else one value row per key.
    pub(crate) async fn save(&mut self, checkpoint: &Checkpoint) -> Result<(), Failure> {
        let key = app_key(checkpoint.partition_key.as_deref(), &checkpoint.app_id);
        let seq = sequence_column(&checkpoint.app_id, checkpoint.sequence_id)?;
        let retaken = self.lease_for_save(&key, &checkpoint.app_id).await?;
        let app = self.app_row(&key, micros(checkpoint.created_at)).await?;
        let known = if retaken { None } else { self.known(&key) };
        let (delta, since_base) = match known.filter(|k| k.followed_by(seq, checkpoint.attempt)) {
            Some(known) => (
                StateDelta::between(&known.state, &checkpoint.state),
                known.inline,
            ),
            None => self.stored_delta(app, checkpoint, seq).await?,
        };
        let values = layout::encode(&delta);
        let compact = values.is_none() || since_base >= layout::COMPACT_AFTER;
        if compact {
            layout::compact(self.conn, self.database(), &checkpoint.app_id, app, seq).await?;
        }
        let insert = self
            .conn
            .prepare_cached(
                "INSERT INTO burr_checkpoints \
                 (app, sequence_id, attempt, position, status, prior_step, created_at_us, changed_keys, error, inline_values) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
            )
            .await?;
        let inserted = self
            .conn
            .execute(
                &insert,
                &[
                    &app,
                    &seq,
                    &i64::from(checkpoint.attempt),
                    &checkpoint.position,
                    &checkpoint.status.as_str(),
                    &prior_step_column(checkpoint.prior_step.as_deref(), &checkpoint.position),
                    &micros(checkpoint.created_at),
                    &changed_keys(&checkpoint.delta, values.is_some().then_some(&delta)),
                    &checkpoint.error,
                    &values,
                ],
            )
            .await?;
        if inserted == 0 {
            return Err(Failure::Refused(PersistenceError::Conflict {
                app_id: checkpoint.app_id.clone(),
                sequence_id: checkpoint.sequence_id,
                attempt: checkpoint.attempt,
            }));
        }
        let inline = match values {
            Some(_) if compact => 1,
            Some(_) => since_base + 1,
            None => {
                self.write_values(app, seq, &delta).await?;
                0
            }
        };
        self.pending.known.insert(
            key,
            Some(Known {
                sequence_id: seq,
                attempt: checkpoint.attempt,
                status: checkpoint.status,
                state: checkpoint.state.clone(),
                inline,
            }),
        );
        Ok(())
    }

    /// One value row per key set (its JSON) or deleted (NULL) at `seq`.
    async fn write_values(
        &self,
        app: i64,
        seq: i64,
        delta: &StateDelta,
    ) -> Result<(), tokio_postgres::Error> {
        if delta.is_empty() {
            return Ok(());
        }
        let upsert = self.conn.prepare_cached(layout::UPSERT_VALUE).await?;
        let upsert = &upsert;
        let conn = self.conn;
        let set = delta.updated.iter().map(|(key, value)| {
            let (key, value) = (&**key, Some(value.to_string()));
            async move { conn.execute(upsert, &[&app, &key, &seq, &value]).await }
        });
        futures::future::try_join_all(set).await?;
        let deleted = delta.deleted.iter().map(|key| {
            let key = &**key;
            async move {
                conn.execute(upsert, &[&app, &key, &seq, &None::<String>])
                    .await
            }
        });
        futures::future::try_join_all(deleted).await?;
        Ok(())
    }

    /// What a checkpoint changed relative to the stored state, for a checkpoint that does
    /// not follow one this persister knows, with the number of stored checkpoints with
    /// inline values since the latest base.
    async fn stored_delta(
        &self,
        app: i64,
        checkpoint: &Checkpoint,
        seq: i64,
    ) -> Result<(StateDelta, u32), Failure> {
        let conflict = || {
            Failure::Refused(PersistenceError::Conflict {
                app_id: checkpoint.app_id.clone(),
                sequence_id: checkpoint.sequence_id,
                attempt: checkpoint.attempt,
            })
        };
        let exists = self
            .conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM burr_checkpoints \
                 WHERE app = $1 AND sequence_id = $2 AND attempt = $3)",
            )
            .await?;
        let exists: bool = self
            .conn
            .query_one(&exists, &[&app, &seq, &i64::from(checkpoint.attempt)])
            .await?
            .try_get(0)?;
        if exists {
            return Err(conflict());
        }
        if let Some(latest) = read::checkpoint(self.conn, app, None).await? {
            if latest.sequence_id > seq {
                return Err(Failure::Refused(PersistenceError::OutOfOrder {
                    path: self.shared.target.path(),
                    app_id: checkpoint.app_id.clone(),
                    sequence_id: checkpoint.sequence_id,
                    latest: u64::try_from(latest.sequence_id).unwrap_or_default(),
                }));
            }
            let completed = self
                .conn
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM burr_checkpoints \
                     WHERE app = $1 AND sequence_id = $2 AND status = 'completed')",
                )
                .await?;
            let completed: bool = self
                .conn
                .query_one(&completed, &[&app, &seq])
                .await?
                .try_get(0)?;
            if latest.sequence_id == seq && completed {
                return Err(conflict());
            }
        }
        let (stored, since_base) =
            read::state_at(self.conn, self.database(), &checkpoint.app_id, app, seq).await?;
        Ok((value_diff(&stored, &checkpoint.state), since_base))
    }

    /// Check (and renew) the lease this persister holds on the app, if any, or take it
    /// back when it is free again. Returns whether it was taken back, in which case the
    /// stored history is read. The lease's row stays locked until the transaction ends,
    /// so no other runner takes it over before this save commits.
    async fn lease_for_save(&mut self, key: &AppKey, app_id: &str) -> Result<bool, Failure> {
        let now = self.now_us;
        let Some(mut held) = self.lease(key) else {
            return Ok(false);
        };
        if held.state == LeaseState::Active {
            let renew = self.conn.prepare_cached(lease::RENEW).await?;
            let renewed = self
                .conn
                .execute(
                    &renew,
                    &[
                        &key.0,
                        &key.1,
                        &held.holder,
                        &held.attempt,
                        &now.saturating_add(held.ttl_us),
                    ],
                )
                .await?;
            if renewed == 1 {
                held.renewed_at_us = now;
                self.pending.leases.insert(key.clone(), Some(held));
                return Ok(false);
            }
        }
        let me = &self.shared.me;
        match lease::take(self.conn, me, key, &held.holder, now, held.ttl_us).await? {
            Ok(attempt) => {
                held.state = LeaseState::Active;
                held.attempt = attempt;
                held.renewed_at_us = now;
                self.pending.leases.insert(key.clone(), Some(held));
                Ok(true)
            }
            Err(holder) => {
                held.state = LeaseState::Lost;
                self.pending.leases.insert(key.clone(), Some(held));
                Err(Failure::Refused(PersistenceError::LeaseLost {
                    app_id: app_id.to_owned(),
                    holder,
                }))
            }
        }
    }

    /// Record an application. Recording it again fills in parent pointers it lacked and
    /// changes nothing else.
    pub(crate) async fn register(&mut self, record: &AppRecord) -> Result<(), Failure> {
        let key = app_key(record.partition_key.as_deref(), &record.app_id);
        let fork_parent = record.fork_parent.as_ref().map(parent_json);
        let spawning_parent = record.spawning_parent.as_ref().map(parent_json);
        let existing = match self.app(&key) {
            Some(id) => Some(id),
            None => read::app_row(self.conn, Some(&key.0), &key.1).await?,
        };
        let Some(id) = existing else {
            let id = self
                .insert_app(&key, record.created_at_us, fork_parent, spawning_parent)
                .await?;
            return self.record_code(id, record).await;
        };
        self.pending.apps.insert(key, Some(id));
        self.record_code(id, record).await?;
        if fork_parent.is_some() || spawning_parent.is_some() {
            let update = self
                .conn
                .prepare_cached(
                    "UPDATE burr_apps SET \
                         fork_parent = coalesce(fork_parent, $2), \
                         spawning_parent = coalesce(spawning_parent, $3) \
                     WHERE id = $1 \
                       AND ((fork_parent IS NULL AND $2::text IS NOT NULL) \
                         OR (spawning_parent IS NULL AND $3::text IS NOT NULL))",
                )
                .await?;
            self.conn
                .execute(&update, &[&id, &fork_parent, &spawning_parent])
                .await?;
        }
        Ok(())
    }

    /// Record the code an application was built with (if the record has it): its
    /// version and fingerprint in its row, the graph's description once per fingerprint
    /// in `burr_graphs`.
    async fn record_code(&mut self, id: i64, record: &AppRecord) -> Result<(), Failure> {
        let Some(code) = &record.code else {
            return Ok(());
        };
        let update = self
            .conn
            .prepare_cached(
                "UPDATE burr_apps SET code_version = $2, fingerprint = $3 \
                 WHERE id = $1 AND (code_version IS DISTINCT FROM $2 OR fingerprint IS DISTINCT FROM $3)",
            )
            .await?;
        self.conn
            .execute(&update, &[&id, &code.version, &code.fingerprint])
            .await?;
        if let Some(graph) = &code.graph {
            // Serialising plain structs of strings does not fail.
            let description = serde_json::to_string(graph).unwrap_or_default();
            let insert = self
                .conn
                .prepare_cached(
                    "INSERT INTO burr_graphs (fingerprint, description) VALUES ($1, $2) \
                     ON CONFLICT (fingerprint) DO NOTHING",
                )
                .await?;
            self.conn
                .execute(&insert, &[&code.fingerprint, &description])
                .await?;
        }
        Ok(())
    }

    /// Take the lease on `key` for `holder` if nobody ever took it (no row), with one
    /// statement; `false` when its row exists (then [`acquire`](Self::acquire) decides).
    /// Alone in autocommit mode, the statement commits without waiting for the disk
    /// (its `set_config` condition: the lease is durable with the application's first
    /// checkpoint).
    pub(crate) async fn acquire_new(
        &mut self,
        key: &AppKey,
        holder: &str,
        ttl_us: i64,
    ) -> Result<bool, Failure> {
        let me = &self.shared.me;
        let insert = self.conn.prepare_cached(lease::TAKE_NEW_UNSYNCED).await?;
        let inserted = self
            .conn
            .execute(
                &insert,
                &[
                    &key.0,
                    &key.1,
                    &holder,
                    &me.host,
                    &me.machine,
                    &i64::from(me.pid),
                    &me.started,
                    &self.now_us,
                    &self.now_us.saturating_add(ttl_us),
                ],
            )
            .await?;
        if inserted == 0 {
            return Ok(false);
        }
        self.hold(key, holder, 1, ttl_us);
        Ok(true)
    }

    /// Remember the lease on `key` just taken for `holder` (its `attempt`), active.
    fn hold(&mut self, key: &AppKey, holder: &str, attempt: i64, ttl_us: i64) {
        self.pending.leases.insert(
            key.clone(),
            Some(HeldLease {
                holder: holder.to_owned(),
                attempt,
                ttl_us,
                renewed_at_us: self.now_us,
                state: LeaseState::Active,
            }),
        );
    }

    /// Take the lease on `key` for `holder`.
    pub(crate) async fn acquire(
        &mut self,
        key: &AppKey,
        holder: &str,
        ttl_us: i64,
    ) -> Result<(), Failure> {
        let me = &self.shared.me;
        match lease::take(self.conn, me, key, holder, self.now_us, ttl_us).await? {
            Ok(attempt) => {
                self.hold(key, holder, attempt, ttl_us);
                Ok(())
            }
            Err(other) => Err(Failure::Refused(PersistenceError::AppLocked {
                app_id: key.1.clone(),
                holder: other,
            })),
        }
    }

    /// Delete an application, its checkpoints and values. Refused while another runner
    /// holds its lease.
    pub(crate) async fn delete(&mut self, key: &AppKey) -> Result<bool, Failure> {
        let ours = self
            .lease(key)
            .filter(|h| h.state == LeaseState::Active)
            .map(|h| h.holder);
        let me = &self.shared.me;
        if let Some(holder) =
            lease::live_holder(self.conn, me, key, ours.as_deref(), self.now_us).await?
        {
            return Err(Failure::Refused(PersistenceError::AppLocked {
                app_id: key.1.clone(),
                holder,
            }));
        }
        let app = read::app_row(self.conn, Some(&key.0), &key.1).await?;
        if let Some(app) = app {
            for sql in [
                "DELETE FROM burr_values WHERE app = $1",
                "DELETE FROM burr_checkpoints WHERE app = $1",
                "DELETE FROM burr_apps WHERE id = $1",
            ] {
                let statement = self.conn.prepare_cached(sql).await?;
                self.conn.execute(&statement, &[&app]).await?;
            }
        }
        if ours.is_none() {
            lease::remove(self.conn, key).await?;
            self.pending.leases.insert(key.clone(), None);
        }
        self.pending.apps.insert(key.clone(), None);
        self.pending.known.insert(key.clone(), None);
        Ok(app.is_some())
    }

    /// Keep the last `keep_last` checkpoints (by sequence id, then attempt); the values
    /// the oldest kept one needs are moved to its sequence id.
    pub(crate) async fn prune(&mut self, key: &AppKey, keep_last: usize) -> Result<usize, Failure> {
        let Some(app) = read::app_row(self.conn, Some(&key.0), &key.1).await? else {
            return Err(Failure::Refused(PersistenceError::UnknownApp {
                partition_key: (!key.0.is_empty()).then(|| key.0.clone()),
                app_id: key.1.clone(),
            }));
        };
        let count = self
            .conn
            .prepare_cached("SELECT count(*) FROM burr_checkpoints WHERE app = $1")
            .await?;
        let total: i64 = self.conn.query_one(&count, &[&app]).await?.try_get(0)?;
        let total = usize::try_from(total).unwrap_or_default();
        let remove = total.saturating_sub(keep_last);
        if remove == 0 {
            return Ok(0);
        }
        if keep_last == 0 {
            for sql in [
                "DELETE FROM burr_values WHERE app = $1",
                "DELETE FROM burr_checkpoints WHERE app = $1",
            ] {
                let statement = self.conn.prepare_cached(sql).await?;
                self.conn.execute(&statement, &[&app]).await?;
            }
            self.pending.known.insert(key.clone(), None);
            return Ok(remove);
        }
        let oldest = self
            .conn
            .prepare_cached(
                "SELECT sequence_id, attempt FROM burr_checkpoints WHERE app = $1 \
                 ORDER BY sequence_id, attempt LIMIT 1 OFFSET $2",
            )
            .await?;
        let row = self
            .conn
            .query_one(&oldest, &[&app, &i64::try_from(remove).unwrap_or(i64::MAX)])
            .await?;
        let (oldest_seq, oldest_attempt): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        layout::compact(self.conn, self.database(), &key.1, app, oldest_seq).await?;
        for (sql, with_attempt) in [
            (
                "DELETE FROM burr_checkpoints WHERE app = $1 \
                 AND (sequence_id < $2 OR (sequence_id = $2 AND attempt < $3))",
                true,
            ),
            (
                "INSERT INTO burr_values (app, key, sequence_id, value) \
                 SELECT v.app, v.key, $2, v.value FROM burr_values AS v \
                 WHERE v.app = $1 AND v.sequence_id < $2 AND v.value IS NOT NULL \
                 AND v.sequence_id = (SELECT max(w.sequence_id) FROM burr_values AS w \
                                      WHERE w.app = $1 AND w.key = v.key AND w.sequence_id <= $2) \
                 ON CONFLICT DO NOTHING",
                false,
            ),
            (
                "DELETE FROM burr_values WHERE app = $1 AND sequence_id < $2",
                false,
            ),
        ] {
            let statement = self.conn.prepare_cached(sql).await?;
            if with_attempt {
                self.conn
                    .execute(&statement, &[&app, &oldest_seq, &oldest_attempt])
                    .await?;
            } else {
                self.conn.execute(&statement, &[&app, &oldest_seq]).await?;
            }
        }
        Ok(remove)
    }
}

/// The keys whose values differ between `stored` and `state` (by JSON equality).
fn value_diff(stored: &State, state: &State) -> StateDelta {
    let mut delta = StateDelta::snapshot(state);
    delta
        .updated
        .retain(|(key, value)| stored.get_value(key) != Some(&**value));
    delta.deleted = stored
        .keys()
        .filter(|key| !state.contains(key))
        .map(Arc::from)
        .collect();
    delta
}

/// The keys a step set or deleted, as stored: a JSON list, or `''` when they are the keys
/// of the values the checkpoint keeps inline.
fn changed_keys(delta: &StateDelta, inline: Option<&StateDelta>) -> String {
    if inline.is_some_and(|inline| inline.keys().eq(delta.keys())) {
        return String::new();
    }
    let mut keys = Vec::with_capacity(delta.updated.len() + delta.deleted.len());
    keys.extend(delta.keys());
    serde_json::to_string(&keys).unwrap_or_else(|_| "[]".to_owned())
}
