//! Persistence: every state update checkpointed, so an application resumes after a crash.
//!
//! A [`Persister`] saves one [`Checkpoint`] per executed step (completed or failed) before
//! the next step starts, and loads the state at any sequence id. A checkpoint stores what
//! the step changed ([`StateDelta`](crate::state::StateDelta)), not the whole state.
//!
//! - [`InMemoryPersister`]: for tests and short-lived processes;
//! - [`SqlitePersister`] (feature `sqlite`, on by default): a SQLite file, shared safely by
//!   several processes.
//!
//! Give one to [`ApplicationBuilder::with_state_persister`](crate::ApplicationBuilder::with_state_persister)
//! to save, and to [`ApplicationBuilder::initialize_from`](crate::ApplicationBuilder::initialize_from)
//! to resume.

mod context;
mod error;
mod memory;
mod record;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::time::Duration;

use async_trait::async_trait;

pub use error::PersistenceError;
pub use memory::InMemoryPersister;
pub use record::{micros, AppRecord, Checkpoint, CheckpointInfo, LoadedCheckpoint, StepStatus};
#[cfg(feature = "sqlite")]
pub use sqlite::{Durability, SqliteOptions, SqlitePersister};

/// A proof that this process runs an application: while held, another runner of the same
/// app id gets [`PersistenceError::AppLocked`]. Released by [`Persister::release_lease`] or
/// when its holder dies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The application's partition key.
    pub partition_key: Option<String>,
    /// The application.
    pub app_id: String,
    /// Who holds it (unique per holder).
    pub holder: String,
}

/// Where checkpoints go and come from. Object safe: held as `Arc<dyn Persister>`.
#[async_trait]
pub trait Persister: Send + Sync + 'static {
    /// Record an application: its identifiers and parent pointers. Called once when an
    /// application is built with this persister; recording it again is not an error.
    async fn register_app(&self, app: &AppRecord) -> Result<(), PersistenceError>;

    /// Save one step's checkpoint. Returns once it is as durable as the persister promises.
    async fn save(&self, checkpoint: &Checkpoint) -> Result<(), PersistenceError>;

    /// The full state at `sequence_id` (the latest when `None`) of an application, or
    /// `None` when nothing is stored.
    async fn load(
        &self,
        partition_key: Option<&str>,
        app_id: &str,
        sequence_id: Option<u64>,
    ) -> Result<Option<LoadedCheckpoint>, PersistenceError>;

    /// The app ids stored under `partition_key`, newest first.
    async fn list_app_ids(
        &self,
        partition_key: Option<&str>,
    ) -> Result<Vec<String>, PersistenceError>;

    /// The app ids stored under `partition_key` that start with `prefix`, in any order, or
    /// `None` when this persister cannot tell (the default): then the caller asks about
    /// each application it needs with [`load`](Persister::load).
    ///
    /// A map step asks once for its children (their ids share the prefix
    /// `<parent app id>/<parent sequence id>/`): the children not listed are built
    /// without a load, those listed resume from their checkpoints.
    async fn list_app_ids_with_prefix(
        &self,
        partition_key: Option<&str>,
        prefix: &str,
    ) -> Result<Option<Vec<String>>, PersistenceError> {
        let _ = (partition_key, prefix);
        Ok(None)
    }

    /// An application's checkpoints in save order, without their state.
    async fn list_checkpoints(
        &self,
        partition_key: Option<&str>,
        app_id: &str,
    ) -> Result<Vec<CheckpointInfo>, PersistenceError>;

    /// The application record saved by [`Persister::register_app`].
    async fn app(
        &self,
        partition_key: Option<&str>,
        app_id: &str,
    ) -> Result<Option<AppRecord>, PersistenceError>;

    /// Delete an application and all its checkpoints. Returns whether it existed.
    async fn delete_app(
        &self,
        partition_key: Option<&str>,
        app_id: &str,
    ) -> Result<bool, PersistenceError>;

    /// Keep only the last `keep_last` checkpoints of an application (the state at each
    /// kept checkpoint stays loadable). Returns how many were removed.
    async fn prune(
        &self,
        partition_key: Option<&str>,
        app_id: &str,
        keep_last: usize,
    ) -> Result<usize, PersistenceError>;

    /// Take the lease on an application, so that no other runner (in this process or
    /// another) runs it at the same time. A lease expires `ttl` after it was last renewed
    /// (every save renews it) or as soon as its holder's process is gone.
    async fn acquire_lease(
        &self,
        partition_key: Option<&str>,
        app_id: &str,
        ttl: Duration,
    ) -> Result<Lease, PersistenceError>;

    /// Give a lease back. Synchronous, so that an application can release its lease when
    /// it is dropped.
    fn release_lease(&self, lease: &Lease) -> Result<(), PersistenceError>;
}
