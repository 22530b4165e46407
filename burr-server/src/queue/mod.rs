//! The run queue's storage contract, [`RunQueue`], and its SQLite implementation.
//!
//! The queue lives in the checkpoint database: enqueuing, checkpoints and the tracker
//! share one store and one backup. A backend (SQLite here, PostgreSQL later) implements
//! [`RunQueue`]; workers, schedulers, the CLI and the HTTP API use only the trait.

mod open;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
pub(crate) mod sqlite;

use async_trait::async_trait;
use burr_core::persistence::ProcessIdentity;
use tokio::sync::{broadcast, watch};

pub use open::{is_postgres_url, open, Backend};
#[cfg(feature = "postgres")]
pub use postgres::PgRunQueue;
pub use sqlite::SqliteRunQueue;

use crate::error::QueueError;
use crate::events::{EventKind, RunEvent};
use crate::run::{
    Backlog, Claim, Explanation, Finish, HeartbeatReport, NewRun, Run, RunCode, RunFilter,
    Submitted, WorkerInfo,
};
use crate::schedule::Schedule;

/// Where runs wait, and what workers claim. Object safe: held as `Arc<dyn RunQueue>`.
///
/// Every write is durable when it returns. Writes that change a run record an event
/// ([`RunEvent`]) in the same transaction.
#[async_trait]
pub trait RunQueue: Send + Sync + 'static {
    /// Enqueue a run. With an idempotency key already used by a run of the same kind,
    /// nothing is written and that run is returned (`created: false`).
    async fn submit(&self, run: NewRun) -> Result<Submitted, QueueError>;

    /// One run; [`QueueError::UnknownRun`] for an unknown id.
    async fn get(&self, run_id: &str) -> Result<Run, QueueError>;

    /// Runs, newest first. A row that cannot be read is left out (and logged); `get`
    /// names what is wrong with it.
    async fn list(&self, filter: &RunFilter) -> Result<Vec<Run>, QueueError>;

    /// Claim up to `claim.limit` runs, in order: runs whose worker's lease expired first
    /// (their attempt is taken over), then queued runs by priority (higher first), flow
    /// start, then submission; only those due (not-before passed), of the worker's
    /// queues and kind versions, within their concurrency limits. Each claimed run is
    /// `running` with its attempt incremented and a lease of `claim.lease_ttl_us`.
    async fn claim(&self, claim: &Claim) -> Result<Vec<Run>, QueueError>;

    /// Renew the leases of the runs `worker` holds (`held`: run id and attempt), and
    /// record the worker (`info`). Reports the held runs it lost and those asked to
    /// cancel.
    async fn heartbeat(
        &self,
        info: &WorkerInfo,
        held: &[(String, u32)],
        lease_ttl_us: i64,
    ) -> Result<HeartbeatReport, QueueError>;

    /// Finish a run as attempt `attempt` of `worker`, which ran it under `code` (when
    /// it built the application; the run keeps it, see [`Run::code`](crate::Run::code)).
    /// [`QueueError::Fenced`] when that attempt is no longer the run's (another worker
    /// took it over): nothing changes.
    async fn finish(
        &self,
        run_id: &str,
        attempt: u32,
        worker: &str,
        finish: Finish,
        code: Option<&RunCode>,
    ) -> Result<Run, QueueError>;

    /// Give a running run back to the queue (a draining worker, or one that cannot run it
    /// now), claimable again from `not_before_us`. Fenced like `finish`.
    async fn release(
        &self,
        run_id: &str,
        attempt: u32,
        worker: &str,
        not_before_us: i64,
    ) -> Result<(), QueueError>;

    /// Cancel a run: a queued one at once; a running one is marked, and its worker stops
    /// it (its status becomes `cancelled` when the worker has). A finished run:
    /// [`QueueError::AlreadyFinished`].
    async fn cancel(&self, run_id: &str) -> Result<Run, QueueError>;

    /// Counts by kind, priority and status, and the oldest ready run's wait.
    async fn backlog(&self) -> Result<Backlog, QueueError>;

    /// Why a run waits: its position, what is ahead, the concurrency in use.
    async fn explain(&self, run_id: &str) -> Result<Explanation, QueueError>;

    /// Add or replace a schedule.
    async fn put_schedule(&self, schedule: &Schedule) -> Result<(), QueueError>;

    /// The schedules, by name.
    async fn schedules(&self) -> Result<Vec<Schedule>, QueueError>;

    /// Remove a schedule; [`QueueError::UnknownSchedule`] when there is none.
    async fn remove_schedule(&self, name: &str) -> Result<(), QueueError>;

    /// Fire the schedules due at `now_us`: each submits its run once per due time, also
    /// with several schedulers calling at once. Returns the runs submitted.
    async fn fire_due(&self, now_us: i64) -> Result<Vec<Run>, QueueError>;

    /// Record events that do not change a run's row (steps, child progress).
    async fn record(&self, events: Vec<(String, EventKind)>) -> Result<(), QueueError>;

    /// Stored events after `after_id` (of one run, or of all), oldest first, at most
    /// `limit`.
    async fn events(
        &self,
        after_id: i64,
        run_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RunEvent>, QueueError>;

    /// The id of the newest stored event (0 when there is none): where a follower of
    /// every run's events starts "from now on". The default pages through the events.
    async fn last_event_id(&self) -> Result<i64, QueueError> {
        let mut last = 0;
        loop {
            let page = self.events(last, None, 10_000).await?;
            match page.last() {
                Some(event) => last = event.id,
                None => return Ok(last),
            }
        }
    }

    /// The events this handle records, as they are recorded (in this process).
    fn subscribe(&self) -> broadcast::Receiver<RunEvent>;

    /// Changes to the queue, here or (as far as the backend can tell) in other processes:
    /// wait on it instead of polling in a loop.
    fn changes(&self) -> watch::Receiver<u64>;

    /// Delete the events of finished runs recorded before `before_us`; returns how many.
    /// Events of runs still queued or running are kept whatever their age. The default
    /// deletes nothing.
    async fn prune_events(&self, before_us: i64) -> Result<u64, QueueError> {
        let _ = before_us;
        Ok(0)
    }

    /// Take back the runs held by workers of `me`'s machine whose process is gone (see
    /// [`ProcessIdentity::outlived`]): their leases expire now, so they are claimed again
    /// (with the next attempt) without waiting for the lease's time to live. Returns the
    /// gone workers' ids, whose records are removed. The default does nothing (runs then
    /// wait for their leases to expire).
    async fn reap(&self, me: &ProcessIdentity) -> Result<Vec<String>, QueueError> {
        let _ = me;
        Ok(Vec::new())
    }

    /// Cancel requests, here or (as far as the backend can tell) in other processes: a
    /// worker that sees one asks at once which of its runs to stop (see
    /// [`heartbeat`](Self::heartbeat)) rather than at its next heartbeat. The default
    /// never changes: cancels then reach running runs at the next heartbeat.
    fn cancels(&self) -> watch::Receiver<u64> {
        watch::channel(0).1
    }
}
