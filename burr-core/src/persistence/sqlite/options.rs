//! [`SqliteOptions`] and [`Durability`]: how a [`SqlitePersister`](super::SqlitePersister)
//! opens its file and commits.

use std::time::Duration;

/// What a returned [`save`](crate::persistence::Persister::save) survives.
///
/// Both settings commit every checkpoint before `save` returns, so before the next step
/// starts, and both keep the database consistent whatever happens (SQLite's WAL is
/// atomic: a checkpoint is stored whole or not at all).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Durability {
    /// `synchronous = NORMAL`: a commit is written to the WAL file but not flushed to the
    /// disk. A saved checkpoint survives the process crashing or being killed (the
    /// operating system has the bytes); an operating system crash or a power loss may
    /// lose the checkpoints committed since the WAL was last synced (at the latest, the
    /// last WAL checkpoint), but never leaves a partial one. The default.
    #[default]
    Normal,
    /// `synchronous = FULL`: every commit is flushed to the disk (`fsync`) before `save`
    /// returns. A saved checkpoint also survives an operating system crash or a power
    /// loss, if the disk honours flushes. Each commit costs a flush (from ~0.1 ms to
    /// several ms); checkpoints of concurrently running applications share one.
    Full,
}

impl Durability {
    /// The `synchronous` pragma value.
    pub(super) fn pragma(self) -> &'static str {
        match self {
            Durability::Normal => "NORMAL",
            Durability::Full => "FULL",
        }
    }
}

/// How to open a [`SqlitePersister`](super::SqlitePersister).
///
/// ```
/// use std::time::Duration;
/// use burr_core::persistence::{Durability, SqliteOptions};
///
/// let options = SqliteOptions::new()
///     .durability(Durability::Full)
///     .busy_timeout(Duration::from_secs(10));
/// # let _ = options;
/// ```
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    pub(super) durability: Durability,
    pub(super) busy_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            durability: Durability::Normal,
            busy_timeout: Duration::from_secs(5),
        }
    }
}

impl SqliteOptions {
    /// The defaults: [`Durability::Normal`], a busy timeout of 5 s.
    pub fn new() -> Self {
        Self::default()
    }

    /// What a saved checkpoint survives.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// How long a write waits for another process's transaction on the same file before
    /// failing with a SQLite "database is locked" error.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }
}
