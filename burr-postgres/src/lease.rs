//! Leases: one runner per app id at a time, across processes and machines.
//!
//! A lease is a row of `burr_leases`: its holder (a string unique to each lease taken),
//! its `attempt` (how many runners have taken it, incremented at each takeover), the
//! holder's host, process id and process start time, and when it expires. A save of an
//! application whose lease this persister holds checks, in the statement that inserts
//! the checkpoint, that the row still names this holder and attempt: a runner whose
//! lease was taken over is refused ([`PersistenceError::LeaseLost`]) however late it
//! wakes up. Another runner may take a lease over once it has expired or, on the same
//! machine, as soon as its holder's process is gone (as with SQLite).

use burr_core::persistence::{LeaseStatus, PersistenceError, ProcessIdentity};

use crate::layout::{AppKey, Conn, Failure};

/// A lease as stored.
struct LeaseRow {
    holder: String,
    attempt: i64,
    machine: String,
    pid: i64,
    pid_started: Option<i64>,
    expires_at_us: i64,
}

const LEASE_COLUMNS: &str = "holder, attempt, machine, pid, pid_started, expires_at_us";

fn lease_row(row: &tokio_postgres::Row) -> Result<LeaseRow, tokio_postgres::Error> {
    Ok(LeaseRow {
        holder: row.try_get(0)?,
        attempt: row.try_get(1)?,
        machine: row.try_get(2)?,
        pid: row.try_get(3)?,
        pid_started: row.try_get(4)?,
        expires_at_us: row.try_get(5)?,
    })
}

async fn read_lease(
    conn: &Conn,
    key: &AppKey,
    lock: bool,
) -> Result<Option<LeaseRow>, tokio_postgres::Error> {
    let sql = if lock {
        format!("SELECT {LEASE_COLUMNS} FROM burr_leases WHERE partition_key = $1 AND app_id = $2 FOR UPDATE")
    } else {
        format!("SELECT {LEASE_COLUMNS} FROM burr_leases WHERE partition_key = $1 AND app_id = $2")
    };
    let statement = conn.prepare_cached(&sql).await?;
    conn.query_opt(&statement, &[&key.0, &key.1])
        .await?
        .map(|row| lease_row(&row))
        .transpose()
}

/// Who holds the lease on `key`, when it is held by someone other than `holder` who is
/// still running (not expired at `now_us`, and not known to be gone).
pub(crate) async fn live_holder(
    conn: &Conn,
    me: &ProcessIdentity,
    key: &AppKey,
    holder: Option<&str>,
    now_us: i64,
) -> Result<Option<String>, tokio_postgres::Error> {
    Ok(read_lease(conn, key, false).await?.and_then(|row| {
        let free = Some(row.holder.as_str()) == holder
            || row.expires_at_us <= now_us
            || me.outlived(&row.machine, row.pid, row.pid_started);
        (!free).then_some(row.holder)
    }))
}

/// Where a stored lease stands at `now_us`, for `me` judging it.
pub(crate) async fn standing(
    conn: &Conn,
    me: &ProcessIdentity,
    key: &AppKey,
    now_us: i64,
) -> Result<LeaseStatus, tokio_postgres::Error> {
    Ok(match read_lease(conn, key, false).await? {
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

/// The statement that takes a lease nobody has taken yet (a new application's first
/// runner): one insert, which changes nothing when the row exists (`$1` partition key,
/// `$2` app id, `$3` holder, `$4` host, `$5` machine, `$6` pid, `$7` pid start, `$8`
/// now, `$9` expiry). Alone in autocommit mode, it commits without waiting for the disk
/// (its `set_config('synchronous_commit', 'off', true)` condition, which holds, turns
/// the setting off for its own transaction only; the lease is durable with the
/// application's first checkpoint).
pub(crate) const TAKE_NEW_UNSYNCED: &str = "INSERT INTO burr_leases (partition_key, app_id, \
     holder, attempt, host, machine, pid, pid_started, acquired_at_us, expires_at_us) \
     SELECT $1, $2, $3, 1, $4, $5, $6::bigint, $7::bigint, $8::bigint, $9::bigint \
     WHERE set_config('synchronous_commit', 'off', true) = 'off' \
     ON CONFLICT (partition_key, app_id) DO NOTHING";

/// Take the lease on `key` for `holder` until `now_us + ttl_us` (in a transaction: the
/// row stays locked until it ends), unless someone else who is still running holds it:
/// then `Err(their holder)`. Returns the lease's attempt.
pub(crate) async fn take(
    conn: &Conn,
    me: &ProcessIdentity,
    key: &AppKey,
    holder: &str,
    now_us: i64,
    ttl_us: i64,
) -> Result<Result<i64, String>, Failure> {
    let expires = now_us.saturating_add(ttl_us);
    let pid = i64::from(me.pid);
    // Twice at most: a row inserted by another runner between our read and our insert
    // is read (and locked) the second time.
    for _ in 0..2 {
        match read_lease(conn, key, true).await? {
            None => {
                let insert = conn
                    .prepare_cached(
                        "INSERT INTO burr_leases (partition_key, app_id, holder, attempt, host, \
                         machine, pid, pid_started, acquired_at_us, expires_at_us) \
                         VALUES ($1, $2, $3, 1, $4, $5, $6, $7, $8, $9) \
                         ON CONFLICT (partition_key, app_id) DO NOTHING",
                    )
                    .await?;
                let inserted = conn
                    .execute(
                        &insert,
                        &[
                            &key.0,
                            &key.1,
                            &holder,
                            &me.host,
                            &me.machine,
                            &pid,
                            &me.started,
                            &now_us,
                            &expires,
                        ],
                    )
                    .await?;
                if inserted == 1 {
                    return Ok(Ok(1));
                }
            }
            Some(row) => {
                let free = row.holder == holder
                    || row.expires_at_us <= now_us
                    || me.outlived(&row.machine, row.pid, row.pid_started);
                if !free {
                    return Ok(Err(row.holder));
                }
                let attempt = if row.holder == holder {
                    row.attempt
                } else {
                    row.attempt.saturating_add(1)
                };
                let update = conn
                    .prepare_cached(
                        "UPDATE burr_leases SET holder = $3, attempt = $4, host = $5, \
                         machine = $6, pid = $7, pid_started = $8, acquired_at_us = $9, \
                         expires_at_us = $10 WHERE partition_key = $1 AND app_id = $2",
                    )
                    .await?;
                conn.execute(
                    &update,
                    &[
                        &key.0,
                        &key.1,
                        &holder,
                        &attempt,
                        &me.host,
                        &me.machine,
                        &pid,
                        &me.started,
                        &now_us,
                        &expires,
                    ],
                )
                .await?;
                return Ok(Ok(attempt));
            }
        }
    }
    Err(Failure::Refused(PersistenceError::AppLocked {
        app_id: key.1.clone(),
        holder: "another runner (the lease changed hands while it was taken)".to_owned(),
    }))
}

/// The statement that extends a holder's lease (`$1` partition key, `$2` app id, `$3`
/// holder, `$4` attempt, `$5` the new expiry); it changes no row when the lease is not
/// theirs any more.
pub(crate) const RENEW: &str = "UPDATE burr_leases SET expires_at_us = $5 \
     WHERE partition_key = $1 AND app_id = $2 AND holder = $3 AND attempt = $4";

/// Whether the lease (`$1` partition key, `$2` app id) is still `$3`'s at attempt `$4`.
pub(crate) const HELD: &str = "SELECT EXISTS (SELECT 1 FROM burr_leases \
     WHERE partition_key = $1 AND app_id = $2 AND holder = $3 AND attempt = $4)";

/// Give `holder`'s lease on `key` back (nothing happens if someone else holds it).
pub(crate) const RELEASE: &str =
    "DELETE FROM burr_leases WHERE partition_key = $1 AND app_id = $2 AND holder = $3";

/// Remove the lease on `key`, whoever holds it.
pub(crate) async fn remove(conn: &Conn, key: &AppKey) -> Result<(), tokio_postgres::Error> {
    let statement = conn
        .prepare_cached("DELETE FROM burr_leases WHERE partition_key = $1 AND app_id = $2")
        .await?;
    conn.execute(&statement, &[&key.0, &key.1]).await?;
    Ok(())
}

/// A lease this persister took, as it tracks it.
#[derive(Clone, Debug)]
pub(crate) struct HeldLease {
    /// The holder string stored in the row.
    pub(crate) holder: String,
    /// The lease's attempt when this persister took it.
    pub(crate) attempt: i64,
    /// Its time to live.
    pub(crate) ttl_us: i64,
    /// When this persister last wrote its expiry.
    pub(crate) renewed_at_us: i64,
    /// Whether it is held or found taken.
    pub(crate) state: LeaseState,
}

/// Where a [`HeldLease`] stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LeaseState {
    /// Held: renewed by saves and in the background.
    Active,
    /// Found taken by another runner (or removed): the next save takes it again only if
    /// it is free, and then checks the stored history.
    Lost,
}

impl HeldLease {
    /// A save renews the lease when it was last renewed this long ago (at most 1 s).
    pub(crate) fn renew_after_us(&self) -> i64 {
        (self.ttl_us / 10).min(1_000_000)
    }

    /// Active leases are renewed in the background this often.
    pub(crate) fn background_after_us(&self) -> i64 {
        (self.ttl_us / 3).max(1_000)
    }
}
