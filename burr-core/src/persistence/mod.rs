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
//!
//! # Writing a store
//!
//! A new store implements [`Persister`]: three methods ([`save`](Persister::save),
//! [`load`](Persister::load), [`list_app_ids`](Persister::list_app_ids)). What else it can
//! do it says through the capability methods of [`Persister`] (`as_leases`, `as_prune`,
//! ...), each returning the store as one of the optional traits below, `None` by
//! default:
//!
//! | trait | what it adds | without it |
//! |---|---|---|
//! | [`Leases`] | one runner per app id | applications run without a lease (two runners of one app id are not detected) |
//! | [`AppRecords`] | identifiers and parent pointers of each application | a fork or a child application records no parent |
//! | [`ChildListing`] | the children of a map step, in one listing | each child is loaded (one `load` per child) |
//! | [`History`] | an application's checkpoints, without their state | — (inspection tools need it) |
//! | [`Prune`] | dropping old checkpoints | — |
//! | [`Delete`] | deleting an application (and its descendants) | — |
//!
//! The conformance suite (`burr_core::testing`, feature `testing`) checks a store: it runs
//! the checks of every capability the store has.

mod attempt;
mod clock;
pub mod columns;
mod context;
mod error;
pub mod inline;
mod memory;
mod process;
mod record;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::time::Duration;

use async_trait::async_trait;

pub use attempt::load_attempt;
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::PersistenceError;
pub use memory::InMemoryPersister;
pub use process::ProcessIdentity;
pub use record::{
    micros, AppRecord, Checkpoint, CheckpointInfo, CodeVersion, LoadedCheckpoint, StepStatus,
};
#[cfg(feature = "sqlite")]
pub use sqlite::{Durability, LeaseStatus, SqliteOptions, SqlitePersister};

/// A proof that this process runs an application: while held, another runner of the same
/// app id gets [`PersistenceError::AppLocked`]. Released by [`Leases::release_lease`] or
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
///
/// A store implements the three required methods; the capability methods (`as_*`) tell
/// the framework which optional traits it also implements (see the [module](self)).
#[async_trait]
pub trait Persister: Send + Sync + 'static {
    /// Save one step's checkpoint. Returns once it is as durable as the persister promises.
    ///
    /// A checkpoint with the (partition key, app id, sequence id, attempt) of a stored one
    /// is refused with [`PersistenceError::Conflict`]. An application saved for the first
    /// time is created.
    async fn save(&self, checkpoint: &Checkpoint) -> Result<(), PersistenceError>;

    /// The full state at `sequence_id` (the latest when `None`; at a sequence id with
    /// several attempts, the latest attempt) of an application, or `None` when nothing
    /// is stored there.
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

    /// This store's [`Leases`], if it has them.
    fn as_leases(&self) -> Option<&dyn Leases> {
        None
    }

    /// This store's [`AppRecords`], if it has them.
    fn as_app_records(&self) -> Option<&dyn AppRecords> {
        None
    }

    /// This store's [`ChildListing`], if it has one.
    fn as_child_listing(&self) -> Option<&dyn ChildListing> {
        None
    }

    /// This store's [`History`], if it has one.
    fn as_history(&self) -> Option<&dyn History> {
        None
    }

    /// This store's [`Prune`], if it has one.
    fn as_prune(&self) -> Option<&dyn Prune> {
        None
    }

    /// This store's [`Delete`], if it has one.
    fn as_delete(&self) -> Option<&dyn Delete> {
        None
    }
}

/// One runner per app id: an application built with a persister that has leases takes
/// one (a child application runs under its root's). Without leases, applications run
/// without one.
#[async_trait]
pub trait Leases: Send + Sync {
    /// Take the lease on an application, so that no other runner (in this process or
    /// another) runs it at the same time: [`PersistenceError::AppLocked`] while another
    /// holds it. A lease expires `ttl` after it was last renewed (a store may renew it
    /// with every save, or while its holder lives).
    async fn acquire_lease(
        &self,
        partition_key: Option<&str>,
        app_id: &str,
        ttl: Duration,
    ) -> Result<Lease, PersistenceError>;

    /// [`acquire_lease`](Self::acquire_lease), and in the same write, once the lease is
    /// taken, the application's `record` (as [`AppRecords::register_app`]): an
    /// application that loads nothing (a new one) is ready after one write. Returns
    /// whether the record was written; the default takes the lease only (`false`), and
    /// the caller registers the record itself.
    async fn acquire_lease_registering(
        &self,
        partition_key: Option<&str>,
        app_id: &str,
        ttl: Duration,
        record: &AppRecord,
    ) -> Result<(Lease, bool), PersistenceError> {
        let _ = record;
        Ok((self.acquire_lease(partition_key, app_id, ttl).await?, false))
    }

    /// Give a lease back (nothing happens if another holds it now). Synchronous, so that
    /// an application can release its lease when it is dropped.
    fn release_lease(&self, lease: &Lease) -> Result<(), PersistenceError>;

    /// [`release_lease`](Self::release_lease) from async code, without blocking the
    /// caller's thread while the store writes (an application finishing gives its lease
    /// back this way). Default: `release_lease`.
    async fn release_lease_async(&self, lease: &Lease) -> Result<(), PersistenceError> {
        self.release_lease(lease)
    }
}

/// Application records: identifiers and parent pointers, kept apart from checkpoints.
#[async_trait]
pub trait AppRecords: Send + Sync {
    /// Record an application: its identifiers and parent pointers. Called once when an
    /// application is built with this persister; recording it again is not an error,
    /// and fills in parent pointers the record lacked.
    async fn register_app(&self, app: &AppRecord) -> Result<(), PersistenceError>;

    /// The application record saved by [`register_app`](Self::register_app) (or made by
    /// its first save), `None` for an unknown application.
    async fn app(
        &self,
        partition_key: Option<&str>,
        app_id: &str,
    ) -> Result<Option<AppRecord>, PersistenceError>;

    /// Every application recorded, of every partition key, newest first; each record
    /// without its graph description (read one with [`app`](Self::app)). What a deploy
    /// gate walks (`check`). Default: [`PersistenceError::Unsupported`].
    async fn list_apps(&self) -> Result<Vec<AppRecord>, PersistenceError> {
        Err(PersistenceError::Unsupported {
            capability: "listing applications",
        })
    }
}

/// Listing app ids by prefix: how a map step finds which of its children are stored.
#[async_trait]
pub trait ChildListing: Send + Sync {
    /// The app ids stored under `partition_key` that start with `prefix`, in any order.
    ///
    /// A map step asks once for its children (their ids share the prefix
    /// `<parent app id>/<parent sequence id>/`): the children not listed are built
    /// without a load, those listed resume from their checkpoints.
    async fn list_app_ids_with_prefix(
        &self,
        partition_key: Option<&str>,
        prefix: &str,
    ) -> Result<Vec<String>, PersistenceError>;
}

/// An application's checkpoints, without their state.
#[async_trait]
pub trait History: Send + Sync {
    /// An application's checkpoints in (sequence id, attempt) order, every attempt
    /// included; empty for an unknown application.
    async fn list_checkpoints(
        &self,
        partition_key: Option<&str>,
        app_id: &str,
    ) -> Result<Vec<CheckpointInfo>, PersistenceError>;
}

/// Dropping old checkpoints.
#[async_trait]
pub trait Prune: Send + Sync {
    /// Keep only the last `keep_last` checkpoints of an application (the state at each
    /// kept checkpoint stays loadable). Returns how many were removed;
    /// [`PersistenceError::UnknownApp`] when nothing is stored for it.
    async fn prune(
        &self,
        partition_key: Option<&str>,
        app_id: &str,
        keep_last: usize,
    ) -> Result<usize, PersistenceError>;
}

/// Deleting applications.
#[async_trait]
pub trait Delete: Send + Sync {
    /// Delete an application and all its checkpoints. Returns whether it existed. A
    /// store with leases refuses ([`PersistenceError::AppLocked`]) while another runner
    /// holds the application's lease.
    async fn delete_app(
        &self,
        partition_key: Option<&str>,
        app_id: &str,
    ) -> Result<bool, PersistenceError>;
}

/// Delete an application and its descendants: the child applications its map steps
/// spawned, whose ids start with `<app id>/` (children before parents, the application
/// last, so that what a failure leaves is still a tree under it). Returns how many
/// applications existed and were deleted.
///
/// Fails with [`PersistenceError::Unsupported`] when `persister` cannot delete. With
/// leases, the application's lease is taken first, so a running application (whose
/// children run under its lease) is refused with [`PersistenceError::AppLocked`] before
/// anything is deleted.
pub async fn delete_with_descendants(
    persister: &dyn Persister,
    partition_key: Option<&str>,
    app_id: &str,
) -> Result<usize, PersistenceError> {
    let delete = persister.as_delete().ok_or(PersistenceError::Unsupported {
        capability: "Delete",
    })?;
    let lease = match persister.as_leases() {
        Some(leases) => Some((
            leases,
            leases
                .acquire_lease(partition_key, app_id, Duration::from_secs(60))
                .await?,
        )),
        None => None,
    };
    let prefix = format!("{app_id}/");
    let mut doomed: Vec<String> = persister
        .list_app_ids(partition_key)
        .await?
        .into_iter()
        .filter(|id| id.starts_with(&prefix))
        .collect();
    // Deeper ids first: a child's id extends its parent's.
    doomed.sort_by_key(|id| std::cmp::Reverse(id.len()));
    doomed.push(app_id.to_owned());
    let mut deleted = 0;
    let mut outcome = Ok(());
    for id in &doomed {
        match delete.delete_app(partition_key, id).await {
            Ok(existed) => deleted += usize::from(existed),
            Err(error) => {
                outcome = Err(error);
                break;
            }
        }
    }
    if let Some((leases, lease)) = lease {
        leases.release_lease(&lease)?;
    }
    outcome.map(|()| deleted)
}
