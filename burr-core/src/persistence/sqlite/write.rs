//! The write path inside a transaction: what saving a checkpoint, recording an
//! application, taking or giving back a lease, deleting and pruning write, and what the
//! writer remembers of what it wrote ([`KnownStates`]) so that a save diffs against the
//! state it knows. How the transaction is committed is in [`commit`](super::commit).

use super::AppMap;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use super::layout::{
    app_key, is_constraint_violation, prior_step_column, sequence_column, AppKey, Failure,
};
use super::lease::{self, HeldLease, LeaseState};
use super::{layout, read};
use crate::ids::ParentPointer;
use crate::persistence::ProcessIdentity;
use crate::persistence::{
    micros, AppRecord, Checkpoint, CodeVersion, Lease, PersistenceError, StepStatus,
};
use crate::state::{State, StateDelta};

// --------------------------------------------------------------------------------------
// The latest stored state of each application this persister saved or loaded, so that
// a save writes only what changed without reading the stored state back.
//
// The state kept is the one the application holds (cloning a [`State`] is O(1) and
// shares every value), so diffing the next checkpoint's state against it visits only
// what changed, and finds everything that did: a value is unchanged only if it is the
// very same shared value. A checkpoint that does not follow the one known (or whose
// application is not known: a new one, or one evicted) is compared with the stored
// state instead.
// --------------------------------------------------------------------------------------

/// Applications remembered; beyond, the least recently used half is forgotten. Their
/// states are shared with the running applications, but a finished application's state
/// stays alive while it is remembered (and until its lease is released).
const MAX_ENTRIES: usize = 1024;

/// The latest stored checkpoint of an application, as this persister saved or loaded it.
#[derive(Clone, Debug)]
pub(super) struct Known {
    /// Its sequence id.
    pub(super) sequence_id: i64,
    /// Its attempt.
    pub(super) attempt: u32,
    /// Its status.
    pub(super) status: StepStatus,
    /// The state stored at it (for a failed step, the state before the step).
    pub(super) state: State,
    /// How many checkpoints of the application, up to this one, have
    /// [inline](super::layout) values since its latest base.
    pub(super) inline: u32,
    /// The keys those checkpoints set or deleted, when this writer saved all of them
    /// (`None`: not known here, read back from the rows when compacting).
    pub(super) changed: Option<Arc<BTreeSet<Arc<str>>>>,
}

impl Known {
    /// Whether a checkpoint at (`sequence_id`, `attempt`) comes right after this one: the
    /// next step, or a retry of this failed one.
    pub(super) fn followed_by(&self, sequence_id: i64, attempt: u32) -> bool {
        sequence_id == self.sequence_id.saturating_add(1)
            || (sequence_id == self.sequence_id
                && self.status != StepStatus::Completed
                && attempt > self.attempt)
    }
}

/// [`Known`] checkpoints by application, least recently used forgotten first.
#[derive(Default)]
pub(super) struct KnownStates {
    map: AppMap<(Known, u64)>,
    clock: u64,
}

impl KnownStates {
    pub(super) fn get(&mut self, key: &AppKey) -> Option<Known> {
        self.clock += 1;
        let clock = self.clock;
        self.map.get_mut(key).map(|(known, used)| {
            *used = clock;
            known.clone()
        })
    }

    pub(super) fn insert(&mut self, key: AppKey, known: Known) {
        self.clock += 1;
        self.map.insert(key, (known, self.clock));
        if self.map.len() > MAX_ENTRIES {
            let mut uses: Vec<u64> = self.map.values().map(|(_, used)| *used).collect();
            let (_, median, _) = uses.select_nth_unstable(MAX_ENTRIES / 2);
            let cut = *median;
            self.map.retain(|_, (_, used)| *used > cut);
        }
    }

    pub(super) fn remove(&mut self, key: &AppKey) {
        self.map.remove(key);
    }
}

// --------------------------------------------------------------------------------------
// What each write operation does inside the writer's transaction: save a checkpoint,
// record an application, take or give back a lease, delete, prune.
//
// Every operation either does all its writes or, when it is refused
// ([`Failure::Refused`]), none that matter, so that the other operations of the same
// transaction can still commit. What the writer remembers (application row ids, known
// checkpoints, leases) is changed in [`Pending`] and kept only once the transaction
// commits.
// --------------------------------------------------------------------------------------

/// Graph fingerprints, with foldhash's hasher (see [`AppMap`]).
pub(super) type GraphSet = std::collections::HashSet<String, foldhash::fast::RandomState>;

/// Changes to the writer's memory, kept when the transaction commits.
#[derive(Default)]
pub(super) struct Pending {
    pub(super) apps: AppMap<Option<i64>>,
    pub(super) known: AppMap<Option<Known>>,
    pub(super) leases: AppMap<Option<HeldLease>>,
    /// Graph fingerprints found or stored in `burr_graphs`.
    pub(super) graphs: Vec<String>,
}

impl Pending {
    /// Forget every change (the transaction rolled back), keeping the maps' capacity.
    pub(super) fn clear(&mut self) {
        self.apps.clear();
        self.known.clear();
        self.leases.clear();
        self.graphs.clear();
    }
}

/// A checkpoint's row as [`Txn::save`] decided it.
struct Row<'c> {
    /// The application's row id.
    app: i64,
    /// The checkpoint's sequence id, as stored.
    seq: i64,
    checkpoint: &'c Checkpoint,
    /// The checkpoint before it, as this writer knows it (if it does).
    known: Option<Known>,
    /// What the checkpoint changed.
    delta: StateDelta,
    /// Checkpoints with inline values since the latest base, before this one.
    since_base: u32,
    /// Its values, inline (`None`: in value rows, written already).
    values: Option<String>,
    /// Whether this checkpoint was compacted into a base (written already).
    compact: bool,
}

/// One write transaction of the writer.
pub(super) struct Txn<'a> {
    pub(super) conn: &'a Connection,
    pub(super) path: &'a Path,
    pub(super) me: &'a ProcessIdentity,
    pub(super) known: &'a Mutex<KnownStates>,
    pub(super) apps: &'a AppMap<i64>,
    pub(super) leases: &'a AppMap<HeldLease>,
    /// Graph fingerprints known to be in `burr_graphs` (committed).
    pub(super) graphs: &'a Mutex<GraphSet>,
    /// The transaction's clock, in microseconds since the Unix epoch.
    pub(super) now_us: i64,
    pub(super) pending: &'a mut Pending,
}

impl Txn<'_> {
    fn app(&self, key: &AppKey) -> Option<i64> {
        match self.pending.apps.get(key) {
            Some(id) => *id,
            None => self.apps.get(key).copied(),
        }
    }

    fn lease(&self, key: &AppKey) -> Option<HeldLease> {
        self.lease_ref(key).cloned()
    }

    fn lease_ref(&self, key: &AppKey) -> Option<&HeldLease> {
        match self.pending.leases.get(key) {
            Some(lease) => lease.as_ref(),
            None => self.leases.get(key),
        }
    }

    fn known(&self, key: &AppKey) -> Option<Known> {
        match self.pending.known.get(key) {
            Some(known) => known.clone(),
            None => self
                .known
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(key),
        }
    }

    /// The row id of the application, creating its row if needed.
    fn app_row(&mut self, key: &AppKey, created_at_us: i64) -> rusqlite::Result<i64> {
        if let Some(id) = self.app(key) {
            return Ok(id);
        }
        match read::app_row(self.conn, Some(&key.0), &key.1)? {
            Some(id) => {
                self.pending.apps.insert(key.clone(), Some(id));
                Ok(id)
            }
            None => self
                .insert_app(key, created_at_us, None, None, None)?
                .ok_or(rusqlite::Error::QueryReturnedNoRows),
        }
    }

    /// Create an application's row, unless it has one (`None`). It has no checkpoint
    /// yet: its first one is diffed against the empty state, without reading anything
    /// back.
    fn insert_app(
        &mut self,
        key: &AppKey,
        created_at_us: i64,
        fork_parent: Option<&str>,
        spawning_parent: Option<&str>,
        code: Option<&CodeVersion>,
    ) -> rusqlite::Result<Option<i64>> {
        let inserted = self
            .conn
            .prepare_cached(
                "INSERT INTO burr_apps (partition_key, app_id, created_at_us, fork_parent, \
                     spawning_parent, code_version, fingerprint) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                 ON CONFLICT (partition_key, app_id) DO NOTHING",
            )?
            .execute((
                &key.0,
                &key.1,
                created_at_us,
                fork_parent,
                spawning_parent,
                code.and_then(|code| code.version.as_deref()),
                code.map(|code| code.fingerprint.as_str()),
            ))?;
        if inserted == 0 {
            return Ok(None);
        }
        let id = self.conn.last_insert_rowid();
        self.pending.apps.insert(key.clone(), Some(id));
        self.pending.known.insert(
            key.clone(),
            Some(Known {
                sequence_id: -1,
                attempt: 0,
                status: StepStatus::Completed,
                state: State::new(),
                inline: 0,
                changed: Some(Arc::default()),
            }),
        );
        Ok(Some(id))
    }

    /// Save one checkpoint: its row, with the values it set or deleted
    /// [inline](super::layout) if they are small, else one value row per key.
    pub(super) fn save(&mut self, checkpoint: &Checkpoint) -> Result<(), Failure> {
        let key = app_key(checkpoint.partition_key.as_deref(), &checkpoint.app_id);
        let seq = sequence_column(&checkpoint.app_id, checkpoint.sequence_id)?;
        let retaken = self.lease_for_save(&key, &checkpoint.app_id)?;
        let app = self.app_row(&key, micros(checkpoint.created_at))?;
        let known = if retaken { None } else { self.known(&key) };
        let known = known.filter(|k| k.followed_by(seq, checkpoint.attempt));
        let (delta, since_base) = match &known {
            Some(known) => (
                StateDelta::between(&known.state, &checkpoint.state),
                known.inline,
            ),
            None => self.stored_delta(app, checkpoint, seq)?,
        };
        let values = layout::encode(&delta);
        let compact = values.is_none() || since_base >= layout::COMPACT_AFTER;
        if compact {
            match &known {
                // This writer saved every checkpoint since the base: the values to write
                // are the known state's, not read back from the rows.
                Some(Known {
                    sequence_id,
                    attempt,
                    state,
                    changed: Some(changed),
                    ..
                }) => layout::compact_known(
                    self.conn,
                    self.path,
                    &checkpoint.app_id,
                    app,
                    (*sequence_id, *attempt),
                    changed.iter().map(|key| (&**key, state.get_value(key))),
                )?,
                _ => layout::compact(self.conn, self.path, &checkpoint.app_id, app, seq)?,
            }
        }
        self.insert_checkpoint(
            key,
            Row {
                app,
                seq,
                checkpoint,
                known,
                delta,
                since_base,
                values,
                compact,
            },
        )
    }

    /// Save a checkpoint whose one write is its own row, with no transaction around it
    /// (a single statement commits atomically by itself): one that follows the state
    /// this writer knows, of an application whose row it knows, under a lease (if any)
    /// renewed recently, with values small enough to be inline and no compaction due.
    /// `None`, having written nothing, for any other: [`save`](Self::save) it in a
    /// transaction.
    pub(super) fn save_alone(&mut self, checkpoint: &Checkpoint) -> Option<Result<(), Failure>> {
        if self.renewals_due() {
            return None;
        }
        let key = app_key(checkpoint.partition_key.as_deref(), &checkpoint.app_id);
        let seq = sequence_column(&checkpoint.app_id, checkpoint.sequence_id).ok()?;
        if !self.lease_fresh(&key) {
            return None;
        }
        let app = self.app(&key)?;
        let known = self
            .known(&key)
            .filter(|k| k.followed_by(seq, checkpoint.attempt))?;
        if known.inline >= layout::COMPACT_AFTER {
            return None;
        }
        let delta = StateDelta::between(&known.state, &checkpoint.state);
        let values = Some(layout::encode(&delta)?);
        let since_base = known.inline;
        Some(self.insert_checkpoint(
            key,
            Row {
                app,
                seq,
                checkpoint,
                known: Some(known),
                delta,
                since_base,
                values,
                compact: false,
            },
        ))
    }

    /// Insert a checkpoint's row (with its values inline, if `values`), and remember its
    /// state as the application's known one.
    fn insert_checkpoint(&mut self, key: AppKey, row: Row<'_>) -> Result<(), Failure> {
        let Row {
            app,
            seq,
            checkpoint,
            known,
            delta,
            since_base,
            values,
            compact,
        } = row;
        let inserted = self
            .conn
            .prepare_cached(
                "INSERT INTO burr_checkpoints \
                 (app, sequence_id, attempt, position, status, prior_step, created_at_us, changed_keys, error, inline_values) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute((
                app,
                seq,
                checkpoint.attempt,
                &checkpoint.position,
                checkpoint.status.as_str(),
                prior_step_column(checkpoint.prior_step.as_deref(), &checkpoint.position),
                micros(checkpoint.created_at),
                changed_keys(&checkpoint.delta, values.is_some().then_some(&delta)),
                &checkpoint.error,
                &values,
            ));
        match inserted {
            Err(error) if is_constraint_violation(&error) => {
                return Err(Failure::Refused(PersistenceError::Conflict {
                    app_id: checkpoint.app_id.clone(),
                    sequence_id: checkpoint.sequence_id,
                    attempt: checkpoint.attempt,
                }))
            }
            other => other?,
        };
        let keys = || {
            (delta.updated.iter().map(|(key, _)| key))
                .chain(&delta.deleted)
                .map(Arc::clone)
        };
        let (inline, changed) = match values {
            Some(_) if compact => (1, Some(Arc::new(keys().collect()))),
            Some(_) => {
                let changed = known.and_then(|k| k.changed).map(|mut changed| {
                    if delta.keys().any(|k| !changed.contains(k)) {
                        Arc::make_mut(&mut changed).extend(keys());
                    }
                    changed
                });
                (since_base + 1, changed)
            }
            None => {
                self.write_values(app, seq, &delta)?;
                (0, Some(Arc::default()))
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
                changed,
            }),
        );
        Ok(())
    }

    /// One value row per key set (its JSON) or deleted (NULL) at `seq`. A row already
    /// at `seq` (folded there by a prune, or written by a failed attempt) is replaced.
    fn write_values(&self, app: i64, seq: i64, delta: &StateDelta) -> rusqlite::Result<()> {
        if delta.is_empty() {
            return Ok(());
        }
        let mut statement = self.conn.prepare_cached(
            "INSERT INTO burr_values (app, key, sequence_id, value) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (app, key, sequence_id) DO UPDATE SET value = excluded.value",
        )?;
        for (key, value) in &delta.updated {
            statement.execute((app, &**key, seq, value.to_string()))?;
        }
        for key in &delta.deleted {
            statement.execute((app, &**key, seq, None::<String>))?;
        }
        Ok(())
    }

    /// What a checkpoint changed relative to the stored state, for a checkpoint that does
    /// not follow one this persister knows: compare with the state stored at its sequence
    /// id (no completed step is there, so that is the state before it). With the number
    /// of stored checkpoints with inline values since the latest base.
    fn stored_delta(
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
                 WHERE app = ?1 AND sequence_id = ?2 AND attempt = ?3)",
            )?
            .query_row((app, seq, checkpoint.attempt), |row| row.get::<_, bool>(0))?;
        if exists {
            return Err(conflict());
        }
        if let Some(latest) = read::checkpoint(self.conn, app, None)? {
            if latest.sequence_id > seq {
                return Err(Failure::Refused(PersistenceError::OutOfOrder {
                    path: self.path.to_owned(),
                    app_id: checkpoint.app_id.clone(),
                    sequence_id: checkpoint.sequence_id,
                    latest: u64::try_from(latest.sequence_id).unwrap_or_default(),
                }));
            }
            let completed = self
                .conn
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM burr_checkpoints \
                     WHERE app = ?1 AND sequence_id = ?2 AND status = 'completed')",
                )?
                .query_row((app, seq), |row| row.get::<_, bool>(0))?;
            if latest.sequence_id == seq && completed {
                return Err(conflict());
            }
        }
        // The stored state at `seq`: the state before the step, plus what earlier failed
        // attempts at `seq` stored (or a prune moved there), which this one replaces.
        let (stored, since_base) =
            read::state_at(self.conn, self.path, &checkpoint.app_id, app, seq)?;
        Ok((value_diff(&stored, &checkpoint.state), since_base))
    }

    /// Renew (or take back) the lease this persister holds on the app, if any. Returns
    /// whether it was taken back, in which case the stored history is checked.
    fn lease_for_save(&mut self, key: &AppKey, app_id: &str) -> Result<bool, Failure> {
        if self.lease_fresh(key) {
            return Ok(false);
        }
        let Some(mut held) = self.lease(key) else {
            return Ok(false);
        };
        let now = self.now_us;
        if held.state == LeaseState::Active
            && lease::renew(
                self.conn,
                key,
                &held.holder,
                now.saturating_add(held.ttl_us),
            )?
        {
            held.renewed_at_us = now;
            self.pending.leases.insert(key.clone(), Some(held));
            return Ok(false);
        }
        match lease::take(self.conn, self.me, key, &held.holder, now, held.ttl_us)? {
            Ok(()) => {
                held.state = LeaseState::Active;
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

    /// Whether a save of `key` needs nothing of its lease: it holds none, or one renewed
    /// recently.
    fn lease_fresh(&self, key: &AppKey) -> bool {
        self.lease_ref(key).is_none_or(|held| {
            held.state == LeaseState::Active
                && self.now_us - held.renewed_at_us < held.renew_after_us()
        })
    }

    /// Record an application. Recording it again fills in parent pointers it lacked and
    /// changes nothing else.
    pub(super) fn register(&mut self, record: &AppRecord) -> Result<(), Failure> {
        let key = app_key(record.partition_key.as_deref(), &record.app_id);
        let fork_parent = record.fork_parent.as_ref().map(parent_json);
        let spawning_parent = record.spawning_parent.as_ref().map(parent_json);
        let id = match self.app(&key) {
            Some(id) => id,
            None => {
                // Not known to this writer: most often a new application (a child of a
                // map step), so the insert comes first, with its code (version and
                // fingerprint) in the row; a row already there is left alone.
                let code = record.code.as_ref();
                let inserted = self.insert_app(
                    &key,
                    record.created_at_us,
                    fork_parent.as_deref(),
                    spawning_parent.as_deref(),
                    code,
                )?;
                if inserted.is_some() {
                    if let Some(code) = code {
                        self.record_graph(code)?;
                    }
                    return Ok(());
                }
                read::app_row(self.conn, Some(&key.0), &key.1)?
                    .ok_or(rusqlite::Error::QueryReturnedNoRows)?
            }
        };
        self.pending.apps.insert(key, Some(id));
        self.record_code(id, record)?;
        if fork_parent.is_some() || spawning_parent.is_some() {
            self.conn
                .prepare_cached(
                    "UPDATE burr_apps SET \
                         fork_parent = coalesce(fork_parent, ?2), \
                         spawning_parent = coalesce(spawning_parent, ?3) \
                     WHERE id = ?1 \
                       AND ((fork_parent IS NULL AND ?2 IS NOT NULL) \
                         OR (spawning_parent IS NULL AND ?3 IS NOT NULL))",
                )?
                .execute((id, fork_parent, spawning_parent))?;
        }
        Ok(())
    }

    /// Record the code an application was built with (if the record has it): its
    /// version and fingerprint in its row, the graph's description once per fingerprint
    /// in `burr_graphs`.
    fn record_code(&mut self, id: i64, record: &AppRecord) -> rusqlite::Result<()> {
        let Some(code) = &record.code else {
            return Ok(());
        };
        self.conn
            .prepare_cached(
                "UPDATE burr_apps SET code_version = ?2, fingerprint = ?3 \
                 WHERE id = ?1 AND (code_version IS NOT ?2 OR fingerprint IS NOT ?3)",
            )?
            .execute((id, &code.version, &code.fingerprint))?;
        self.record_graph(code)
    }

    /// Store the graph's description of `code` in `burr_graphs` (once per fingerprint).
    /// A fingerprint this writer has seen stored (rows there are never deleted) is not
    /// looked up again: the children of a map step share one.
    fn record_graph(&mut self, code: &CodeVersion) -> rusqlite::Result<()> {
        let Some(graph) = &code.graph else {
            return Ok(());
        };
        if self.pending.graphs.contains(&code.fingerprint)
            || self
                .graphs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(&code.fingerprint)
        {
            return Ok(());
        }
        let known = self
            .conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM burr_graphs WHERE fingerprint = ?1)")?
            .query_row([&code.fingerprint], |row| row.get::<_, bool>(0))?;
        if !known {
            // Serialising plain structs of strings does not fail.
            let description = serde_json::to_string(graph).unwrap_or_default();
            self.conn
                .prepare_cached(
                    "INSERT INTO burr_graphs (fingerprint, description) VALUES (?1, ?2) \
                     ON CONFLICT (fingerprint) DO NOTHING",
                )?
                .execute((&code.fingerprint, description))?;
        }
        self.pending.graphs.push(code.fingerprint.clone());
        Ok(())
    }

    /// Take the lease on `key` for `holder`.
    pub(super) fn acquire(
        &mut self,
        key: &AppKey,
        holder: &str,
        ttl_us: i64,
    ) -> Result<(), Failure> {
        match lease::take(self.conn, self.me, key, holder, self.now_us, ttl_us)? {
            Ok(()) => {
                self.pending.leases.insert(
                    key.clone(),
                    Some(HeldLease {
                        holder: holder.to_owned(),
                        ttl_us,
                        renewed_at_us: self.now_us,
                        state: LeaseState::Active,
                    }),
                );
                Ok(())
            }
            Err(other) => Err(Failure::Refused(PersistenceError::AppLocked {
                app_id: key.1.clone(),
                holder: other,
            })),
        }
    }

    /// Give a lease back.
    pub(super) fn release(&mut self, given: &Lease) -> Result<(), Failure> {
        let key = app_key(given.partition_key.as_deref(), &given.app_id);
        lease::release(self.conn, &key, &given.holder)?;
        if self
            .lease_ref(&key)
            .is_some_and(|h| h.holder == given.holder)
        {
            // Forgotten, not kept as given back: the leases this writer remembers are
            // scanned at every commit, and a process runs applications without end.
            self.pending.leases.insert(key.clone(), None);
            // The application is done (or handed over): stop keeping its state alive.
            self.pending.known.insert(key, None);
        }
        Ok(())
    }

    /// Renew, in the background, the active leases due for it. A lease found taken is
    /// marked lost (the next save of its application reports it).
    pub(super) fn renew_due(&mut self) -> rusqlite::Result<()> {
        let due: Vec<(AppKey, HeldLease)> = self
            .leases
            .iter()
            .filter(|(_, h)| self.renewal_due(h))
            .map(|(k, h)| (k.clone(), h.clone()))
            .collect();
        let now = self.now_us;
        for (key, mut held) in due {
            if lease::renew(
                self.conn,
                &key,
                &held.holder,
                now.saturating_add(held.ttl_us),
            )? {
                held.renewed_at_us = now;
            } else {
                held.state = LeaseState::Lost;
            }
            self.pending.leases.insert(key, Some(held));
        }
        Ok(())
    }

    /// Whether a lease this writer holds is due for its background renewal.
    fn renewal_due(&self, held: &HeldLease) -> bool {
        held.state == LeaseState::Active
            && self.now_us - held.renewed_at_us >= held.background_after_us()
    }

    /// Whether any lease this writer holds is due for its background renewal.
    fn renewals_due(&self) -> bool {
        self.leases.values().any(|held| self.renewal_due(held))
    }

    /// Delete an application, its checkpoints and values. Refused while another runner
    /// holds its lease.
    pub(super) fn delete(&mut self, key: &AppKey) -> Result<bool, Failure> {
        let ours = self
            .lease(key)
            .filter(|h| h.state == LeaseState::Active)
            .map(|h| h.holder);
        if let Some(holder) =
            lease::live_holder(self.conn, self.me, key, ours.as_deref(), self.now_us)?
        {
            return Err(Failure::Refused(PersistenceError::AppLocked {
                app_id: key.1.clone(),
                holder,
            }));
        }
        let app = read::app_row(self.conn, Some(&key.0), &key.1)?;
        if let Some(app) = app {
            for sql in [
                "DELETE FROM burr_values WHERE app = ?1",
                "DELETE FROM burr_checkpoints WHERE app = ?1",
                "DELETE FROM burr_apps WHERE id = ?1",
            ] {
                self.conn.prepare_cached(sql)?.execute([app])?;
            }
        }
        if ours.is_none() {
            lease::remove(self.conn, key)?;
            self.pending.leases.insert(key.clone(), None);
        }
        self.pending.apps.insert(key.clone(), None);
        self.pending.known.insert(key.clone(), None);
        Ok(app.is_some())
    }

    /// Keep the last `keep_last` checkpoints (by sequence id, then attempt). The values
    /// the oldest kept checkpoint needs are moved to its sequence id, so that the state
    /// at every kept checkpoint loads as before.
    pub(super) fn prune(&mut self, key: &AppKey, keep_last: usize) -> Result<usize, Failure> {
        let Some(app) = read::app_row(self.conn, Some(&key.0), &key.1)? else {
            return Err(Failure::Refused(PersistenceError::UnknownApp {
                partition_key: (!key.0.is_empty()).then(|| key.0.clone()),
                app_id: key.1.clone(),
            }));
        };
        let total: i64 = self
            .conn
            .prepare_cached("SELECT count(*) FROM burr_checkpoints WHERE app = ?1")?
            .query_row([app], |row| row.get(0))?;
        let total = usize::try_from(total).unwrap_or_default();
        let remove = total.saturating_sub(keep_last);
        if remove == 0 {
            return Ok(0);
        }
        if keep_last == 0 {
            for sql in [
                "DELETE FROM burr_values WHERE app = ?1",
                "DELETE FROM burr_checkpoints WHERE app = ?1",
            ] {
                self.conn.prepare_cached(sql)?.execute([app])?;
            }
            self.pending.known.insert(key.clone(), None);
            return Ok(remove);
        }
        let (oldest_seq, oldest_attempt): (i64, i64) = self
            .conn
            .prepare_cached(
                "SELECT sequence_id, attempt FROM burr_checkpoints WHERE app = ?1 \
                 ORDER BY sequence_id, attempt LIMIT 1 OFFSET ?2",
            )?
            .query_row((app, i64::try_from(remove).unwrap_or(i64::MAX)), |row| {
                Ok((row.get(0)?, row.get(1)?))
            })?;
        // The state at the oldest kept sequence id goes to `burr_values`, whence it is
        // moved to that sequence id below.
        layout::compact(self.conn, self.path, &key.1, app, oldest_seq)?;
        self.conn
            .prepare_cached(
                "DELETE FROM burr_checkpoints WHERE app = ?1 \
                 AND (sequence_id < ?2 OR (sequence_id = ?2 AND attempt < ?3))",
            )?
            .execute((app, oldest_seq, oldest_attempt))?;
        // Each key's value as of the oldest kept checkpoint, moved to it (unless a row is
        // there already); then everything older goes.
        self.conn
            .prepare_cached(
                "INSERT INTO burr_values (app, key, sequence_id, value) \
                 SELECT v.app, v.key, ?2, v.value FROM burr_values AS v \
                 WHERE v.app = ?1 AND v.sequence_id < ?2 AND v.value IS NOT NULL \
                 AND v.sequence_id = (SELECT max(w.sequence_id) FROM burr_values AS w \
                                      WHERE w.app = ?1 AND w.key = v.key AND w.sequence_id <= ?2)",
            )?
            .execute((app, oldest_seq))?;
        self.conn
            .prepare_cached("DELETE FROM burr_values WHERE app = ?1 AND sequence_id < ?2")?
            .execute((app, oldest_seq))?;
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

/// The keys a step set or deleted (`delta`), as stored: a JSON list, or `''` when they
/// are the keys of the values the checkpoint keeps inline (`inline`), as for most steps.
fn changed_keys(delta: &StateDelta, inline: Option<&StateDelta>) -> String {
    if inline.is_some_and(|inline| inline.keys().eq(delta.keys())) {
        return String::new();
    }
    let mut keys = Vec::with_capacity(delta.updated.len() + delta.deleted.len());
    keys.extend(delta.keys());
    // Serialising a list of strings does not fail.
    serde_json::to_string(&keys).unwrap_or_else(|_| "[]".to_owned())
}

/// A parent pointer as stored (JSON).
fn parent_json(parent: &ParentPointer) -> String {
    /// The column's layout: these keys, in this order (as a `json!` object of them
    /// printed, sorted by key), serialized straight from borrowed fields rather than
    /// through a `Value` map (a child of a map step writes one).
    #[derive(serde::Serialize)]
    struct Column<'a> {
        app_id: &'a str,
        partition_key: Option<&'a str>,
        sequence_id: Option<u64>,
    }
    // Serialising plain strings and numbers does not fail.
    serde_json::to_string(&Column {
        app_id: &parent.app_id,
        partition_key: parent.partition_key.as_deref(),
        sequence_id: parent.sequence_id,
    })
    .unwrap_or_default()
}
