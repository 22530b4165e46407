//! Leases: one runner per app id at a time, across processes.
//!
//! A lease is a row of `burr_leases` naming its holder: a unique holder string, the
//! holder's host, process id and process start time. Another runner may take it over
//! when it has expired (its holder stopped renewing it) or, on the same machine, as soon
//! as the holder's process is gone: `/proc/<pid>` is missing, or belongs to a newer
//! process (its start time differs). Where `/proc` cannot tell (another machine, another
//! PID namespace, no `/proc`), only expiry frees a lease.

use rusqlite::{Connection, OptionalExtension};

use super::layout::{app_key, AppKey};
use super::SqlitePersister;
use crate::persistence::{PersistenceError, ProcessIdentity};

/// A lease as stored.
struct LeaseRow {
    holder: String,
    machine: String,
    pid: i64,
    pid_started: Option<i64>,
    expires_at_us: i64,
}

fn lease_row(conn: &Connection, key: &AppKey) -> rusqlite::Result<Option<LeaseRow>> {
    conn.prepare_cached(
        "SELECT holder, machine, pid, pid_started, expires_at_us FROM burr_leases \
         WHERE partition_key = ?1 AND app_id = ?2",
    )?
    .query_row((&key.0, &key.1), |row| {
        Ok(LeaseRow {
            holder: row.get(0)?,
            machine: row.get(1)?,
            pid: row.get(2)?,
            pid_started: row.get(3)?,
            expires_at_us: row.get(4)?,
        })
    })
    .optional()
}

/// Who holds the lease on `key`, when it is held by someone other than `holder` who is
/// still running (not expired at `now_us`, and not known to be gone).
pub(super) fn live_holder(
    conn: &Connection,
    me: &ProcessIdentity,
    key: &AppKey,
    holder: Option<&str>,
    now_us: i64,
) -> rusqlite::Result<Option<String>> {
    Ok(lease_row(conn, key)?.and_then(|row| {
        let free = Some(row.holder.as_str()) == holder
            || row.expires_at_us <= now_us
            || me.outlived(&row.machine, row.pid, row.pid_started);
        (!free).then_some(row.holder)
    }))
}

/// Where a stored lease stands at `now_us`, for `me` judging it.
fn standing(
    conn: &Connection,
    me: &ProcessIdentity,
    key: &AppKey,
    now_us: i64,
) -> rusqlite::Result<LeaseStatus> {
    Ok(match lease_row(conn, key)? {
        None => LeaseStatus::Free,
        Some(row) if row.expires_at_us <= now_us => LeaseStatus::Abandoned {
            holder: row.holder,
            expired: true,
        },
        Some(row) if me.outlived(&row.machine, row.pid, row.pid_started) => {
            LeaseStatus::Abandoned {
                holder: row.holder,
                expired: false,
            }
        }
        Some(row) => LeaseStatus::Held { holder: row.holder },
    })
}

/// Where an application's lease stands: what tells a finished application from one whose
/// runner died part-way. An application gives its lease back when it finishes (or is
/// dropped, or [releases](crate::Application::release_lease) it); a runner that is killed
/// or crashes cannot, and leaves its lease behind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseStatus {
    /// No lease is stored: no runner took one, or its runner gave it back.
    Free,
    /// A live runner holds it: its holder (`pid 4242 on host (lease …)`).
    Held {
        /// Who holds it.
        holder: String,
    },
    /// A runner took it and is gone without giving it back: its process on this machine
    /// is gone, or the lease expired (its holder stopped renewing it).
    Abandoned {
        /// Who held it.
        holder: String,
        /// Whether it expired (rather than its holder's process being known to be gone).
        expired: bool,
    },
}

/// Take the lease on `key` for `holder` until `now_us + ttl_us`, unless someone else who
/// is still running holds it: then `Err(their holder)`.
pub(super) fn take(
    conn: &Connection,
    me: &ProcessIdentity,
    key: &AppKey,
    holder: &str,
    now_us: i64,
    ttl_us: i64,
) -> rusqlite::Result<Result<(), String>> {
    if let Some(other) = live_holder(conn, me, key, Some(holder), now_us)? {
        return Ok(Err(other));
    }
    conn.prepare_cached(
        "INSERT OR REPLACE INTO burr_leases \
         (partition_key, app_id, holder, host, machine, pid, pid_started, acquired_at_us, expires_at_us) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute((
        &key.0,
        &key.1,
        holder,
        &me.host,
        &me.machine,
        i64::from(me.pid),
        me.started,
        now_us,
        now_us.saturating_add(ttl_us),
    ))?;
    Ok(Ok(()))
}

/// Extend `holder`'s lease on `key` to `expires_at_us`. Returns false when `holder` does
/// not hold it (any more).
pub(super) fn renew(
    conn: &Connection,
    key: &AppKey,
    holder: &str,
    expires_at_us: i64,
) -> rusqlite::Result<bool> {
    let changed = conn
        .prepare_cached(
            "UPDATE burr_leases SET expires_at_us = ?4 \
             WHERE partition_key = ?1 AND app_id = ?2 AND holder = ?3",
        )?
        .execute((&key.0, &key.1, holder, expires_at_us))?;
    Ok(changed == 1)
}

/// Give `holder`'s lease on `key` back (nothing happens if someone else holds it).
pub(super) fn release(conn: &Connection, key: &AppKey, holder: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "DELETE FROM burr_leases WHERE partition_key = ?1 AND app_id = ?2 AND holder = ?3",
    )?
    .execute((&key.0, &key.1, holder))?;
    Ok(())
}

/// Remove the lease on `key`, whoever holds it.
pub(super) fn remove(conn: &Connection, key: &AppKey) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM burr_leases WHERE partition_key = ?1 AND app_id = ?2")?
        .execute((&key.0, &key.1))?;
    Ok(())
}

/// A lease this persister took, as the writer tracks it.
#[derive(Clone, Debug)]
pub(super) struct HeldLease {
    /// The holder string stored in the row.
    pub(super) holder: String,
    /// Its time to live.
    pub(super) ttl_us: i64,
    /// When this persister last wrote its expiry.
    pub(super) renewed_at_us: i64,
    /// Whether it is held or found taken (a lease given back is forgotten).
    pub(super) state: LeaseState,
}

/// Where a [`HeldLease`] stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum LeaseState {
    /// Held: renewed by saves and in the background.
    Active,
    /// Found taken by another runner (or removed): the next save takes it again only if
    /// it is free, and then checks the stored history.
    Lost,
}

impl HeldLease {
    /// A save renews the lease when it was last renewed this long ago (at most 1 s, so
    /// that a lease is never older than its ttl by more than that while saves go on).
    pub(super) fn renew_after_us(&self) -> i64 {
        (self.ttl_us / 10).min(1_000_000)
    }

    /// Active leases are renewed in the background this often, so that a lease
    /// lives as long as its holder, even while it saves nothing (a map step waiting for
    /// its children, a human in the loop).
    pub(super) fn background_after_us(&self) -> i64 {
        (self.ttl_us / 3).max(1_000)
    }
}

impl SqlitePersister {
    /// Who runs the application now: the holder of its lease (`pid 4242 on host (lease
    /// …)`) while a live runner holds it; `None` when none does: no lease is stored (its
    /// runner finished, dropped it or gave it back), or the lease has expired, or its
    /// holder ran on this machine and its process is gone. Judged as
    /// [`acquire_lease`](crate::persistence::Leases::acquire_lease) judges it, so a
    /// runner that crashed mid-step is seen as gone at once on its own machine, and
    /// after the lease's time to live elsewhere.
    ///
    /// Child applications run under their root's lease (they take none): ask about the
    /// root.
    pub fn live_lease_holder(
        &self,
        partition_key: Option<&str>,
        app_id: &str,
    ) -> Result<Option<String>, PersistenceError> {
        Ok(match self.lease_status(partition_key, app_id)? {
            LeaseStatus::Held { holder } => Some(holder),
            LeaseStatus::Free | LeaseStatus::Abandoned { .. } => None,
        })
    }

    /// Where the application's lease stands: [`Free`](LeaseStatus::Free) when none is
    /// stored (no runner took it, or its runner gave it back: it finished, or was dropped
    /// or released), [`Held`](LeaseStatus::Held) while a live runner holds it,
    /// [`Abandoned`](LeaseStatus::Abandoned) when its runner is gone without giving it back
    /// (killed or crashed; judged as
    /// [`live_lease_holder`](SqlitePersister::live_lease_holder) judges it).
    ///
    /// Child applications run under their root's lease (they take none): ask about the
    /// root.
    pub fn lease_status(
        &self,
        partition_key: Option<&str>,
        app_id: &str,
    ) -> Result<LeaseStatus, PersistenceError> {
        let key = app_key(partition_key, app_id);
        let me = &self.inner.me;
        self.read(|conn| Ok(standing(conn, me, &key, self.inner.clock.now_micros())?))
    }
}
