//! WAL checkpoints off the commit path: a thread of the persister folds the WAL back
//! into the database file once it holds [`WAL_AUTOCHECKPOINT`] frames, instead of the
//! commit that crossed the threshold doing it (SQLite's automatic checkpoint), which
//! made that one commit cost a copy of the WAL and two flushes.
//!
//! The writer's connection has a WAL hook: after each commit it learns how many frames
//! the WAL holds. At the threshold it wakes the checkpoint thread, which runs a
//! `PASSIVE` checkpoint on a connection of its own, while writers go on, then again for
//! the frames committed meanwhile, and the writer copies the last few itself after a
//! commit (see [`CATCH_UP`]) so that the WAL starts over rather than grows. Should the
//! thread fall behind (a WAL [`INLINE_FACTOR`] times the threshold), the commit
//! checkpoints inline as SQLite would, so the WAL stays bounded. Durability is
//! unchanged: a commit is durable in the WAL, whoever copies it to the database later.

use std::ffi::c_int;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use rusqlite::hooks::Wal;
use rusqlite::{Connection, OpenFlags};

/// WAL frames (pages) after which the WAL is checkpointed into the database (SQLite's
/// default, 1,000), by the persister's checkpoint thread (this module), off the commit
/// path. The WAL grows to ~1 MiB (with 1 KiB pages) between checkpoints: what the first
/// process to open the file after a crash reads back, a frame at a time, to recover it
/// (one `pread` and ~1,100 instructions per frame: ~1 ms at most, ~0.5 ms on average,
/// the largest part of a resume's time to loaded). Each checkpoint costs two flushes,
/// on the checkpoint thread.
pub(super) const WAL_AUTOCHECKPOINT: i64 = 1_000;

/// A WAL this many times [`WAL_AUTOCHECKPOINT`] is checkpointed by the commit itself.
const INLINE_FACTOR: c_int = 8;

/// Frames committed while the thread checkpointed that the writer copies itself, after a
/// commit, so that the WAL is wholly copied and starts over. SQLite restarts a WAL (writes
/// it again from its first frame) only once every frame in it is in the database; under
/// steady writes a checkpoint running beside them never gets there, and a WAL that only
/// grows makes each commit's flush also write the file's new size (30% more time per durable
/// commit on this machine), and a recovery read more frames.
const CATCH_UP: c_int = 64;

/// The most checkpoints the thread runs in a row, each copying the frames committed
/// during the one before, to bring what is left under [`CATCH_UP`]. Past them, the
/// writer copies what is left, however much.
const MAX_PASSES: usize = 8;

/// The checkpoint thread's signal: whether a checkpoint is due, and whether to stop.
#[derive(Default)]
pub(super) struct Checkpointer {
    /// A checkpoint is due (set by the hook, cleared by the thread): the hook only
    /// notifies on its change, so commits past the threshold cost an atomic load.
    due: AtomicBool,
    /// The WAL's frames when the latest checkpoint was asked for.
    asked_at: AtomicI32,
    /// The frames of the WAL the thread's latest checkpoint left copied (0: none since
    /// the writer last caught up).
    copied: AtomicI32,
    /// The WAL's frames after the latest commit.
    frames: AtomicI32,
    /// The writer is to copy the frames the thread's checkpoint left (see [`CATCH_UP`]).
    catch_up: AtomicBool,
    state: Mutex<bool>,
    wake: Condvar,
}

impl Checkpointer {
    /// Install the hook on the writer's connection (it replaces SQLite's automatic
    /// checkpoint).
    pub(super) fn install(self: &Arc<Self>, conn: &mut Connection) -> rusqlite::Result<()> {
        let me = Arc::clone(self);
        conn.wal_hook(Some(move |wal: &mut Wal, frames: c_int| {
            let threshold = c_int::try_from(WAL_AUTOCHECKPOINT).unwrap_or(c_int::MAX);
            let copied = me.copied.load(Ordering::Acquire);
            me.frames.store(frames, Ordering::Release);
            if frames >= threshold.saturating_mul(INLINE_FACTOR) {
                // The thread fell behind. A failed checkpoint is not the commit's
                // failure (the commit happened): the next commit tries again.
                let _ = wal.checkpoint();
            } else if copied > 0
                && (frames < copied
                    || (frames - copied <= CATCH_UP && !me.due.load(Ordering::Acquire)))
            {
                // The thread's checkpoint copied all but the frames committed while it
                // ran (or the WAL started over since): the writer copies those once
                // this commit is over (`catch_up`).
                me.copied.store(0, Ordering::Release);
                if frames >= copied {
                    me.catch_up.store(true, Ordering::Release);
                }
            } else {
                // Frames added since the last checkpoint was asked for (all of them
                // when the WAL started over): under steady writes the WAL is rarely
                // wholly copied, so it does not start over, and asking at every commit
                // past the threshold would checkpoint without pause.
                let last = me.asked_at.load(Ordering::Acquire);
                let added = if frames < last { frames } else { frames - last };
                if added >= threshold && !me.due.swap(true, Ordering::AcqRel) {
                    me.asked_at.store(frames, Ordering::Release);
                    let _guard = me.state.lock().unwrap_or_else(|p| p.into_inner());
                    me.wake.notify_one();
                }
            }
            Ok(())
        }))
    }

    /// After a commit on the writer's connection `conn`: copy the few frames the
    /// thread's checkpoint left, if it asked (see [`CATCH_UP`]), where no commit of this
    /// writer can come between, so that its next transaction starts the WAL over. A
    /// failed checkpoint is not the commit's failure (the commit happened).
    pub(super) fn catch_up(&self, conn: &Connection) {
        if self.catch_up.load(Ordering::Acquire) && self.catch_up.swap(false, Ordering::AcqRel) {
            let _ = conn.wal_checkpoint_v2(None::<&str>, Default::default());
        }
    }

    /// The thread's body: checkpoint when due, until [`stop`](Self::stop). Its
    /// connection is opened at the first checkpoint (a persister whose WAL stays small
    /// never opens it).
    pub(super) fn run(&self, path: &Path) {
        let mut conn: Option<Connection> = None;
        loop {
            {
                let mut stopped = self.state.lock().unwrap_or_else(|p| p.into_inner());
                while !*stopped && !self.due.load(Ordering::Acquire) {
                    stopped = self.wake.wait(stopped).unwrap_or_else(|p| p.into_inner());
                }
                if *stopped {
                    return;
                }
            }
            if conn.is_none() {
                conn = open(path)
                    .map_err(|error| {
                        tracing::warn!(path = %path.display(), %error, "cannot open a connection for WAL checkpoints");
                    })
                    .ok();
            }
            if let Some(conn) = &conn {
                for pass in 1..=MAX_PASSES {
                    match conn.wal_checkpoint_v2(None::<&str>, Default::default()) {
                        Ok((_, copied)) => {
                            self.copied.store(copied, Ordering::Release);
                            // Few frames committed since this checkpoint began: the
                            // writer copies them after its next commit (or the WAL
                            // started over). Else copy them now; after the last pass
                            // the writer copies whatever is left (commits outpace the
                            // thread: the WAL must not grow on).
                            let frames = self.frames.load(Ordering::Acquire);
                            if frames < copied || frames - copied <= CATCH_UP {
                                break;
                            }
                            if pass == MAX_PASSES {
                                self.catch_up.store(true, Ordering::Release);
                            }
                        }
                        Err(error) => {
                            tracing::debug!(path = %path.display(), %error, "WAL checkpoint did not run");
                            break;
                        }
                    }
                }
            }
            // Commits made during the checkpoint see `due` still set and do not wake
            // the thread: clear it only now, so the next commit past the threshold does.
            self.due.store(false, Ordering::Release);
        }
    }

    /// Stop the thread (the persister is gone).
    pub(super) fn stop(&self) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.wake.notify_one();
    }
}

/// The checkpoint thread's connection. SQLite opens a file lazily: until a statement
/// reads it, a checkpoint finds no WAL (and does nothing), so the journal mode is read.
fn open(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(PathBuf::from(path), flags)?;
    conn.query_row("PRAGMA journal_mode", [], |_| Ok(()))?;
    Ok(conn)
}
