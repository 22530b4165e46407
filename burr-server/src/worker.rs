//! [`Worker`]: claims runs and runs their applications.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use burr_core::error::Error as CoreError;
use burr_core::hooks::LifecycleHook;
use burr_core::ids::{CancelToken, Executor};
use burr_core::persistence::{PersistenceError, Persister, ProcessIdentity};
use burr_core::RunOptions;

use futures::{FutureExt, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio::task::{AbortHandle, JoinSet};

use crate::error::QueueError;
use crate::events::EventKind;
use crate::kind::{Registry, RunInfo};
use crate::progress::{Record, RunProgress};
use crate::queue::RunQueue;
use crate::run::{now_us, Claim, Finish, Run, RunCode, WorkerInfo, DEFAULT_QUEUE};
use crate::wake::MAX_POLL;

/// The first fallback poll after the queue went quiet; it doubles up to [`MAX_POLL`].
const FIRST_POLL: Duration = Duration::from_millis(10);

/// How long a free slot waits for others before it is claimed alone, under load (an
/// idle worker claims at once). Each claim is a transaction that every other worker
/// hears of: on PostgreSQL, claiming every 2 ms got ~2 runs a claim under W5's load
/// and twice the worker CPU per run of claiming every 10 ms.
const BATCH_WAIT: Duration = Duration::from_millis(10);

/// How long the events of finished runs are kept by default: a week.
pub const DEFAULT_EVENT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// How often the scheduler deletes expired events.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// How a worker runs.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// The worker's id (default: `<host>:<pid>:<random>`).
    pub id: Option<String>,
    /// The queues it serves (default: `default`).
    pub queues: Vec<String>,
    /// How many runs it runs at once (default 16).
    pub concurrency: usize,
    /// The lease's time to live: another worker takes a run over this long after its
    /// worker's last heartbeat (default 30 s; heartbeats every third of it).
    pub lease_ttl: Duration,
    /// How long a draining worker lets running steps finish before cancelling them
    /// (default 30 s).
    pub grace: Duration,
    /// Fire due schedules (default true). Several schedulers may run: each due time
    /// fires once.
    pub scheduler: bool,
    /// With the scheduler: delete the events of runs that finished longer ago than this
    /// (default 7 days; `None` keeps them all). Runs themselves are kept.
    pub event_retention: Option<Duration>,
    /// The executor of the runs' child applications (default: [`Executor::global`]).
    pub executor: Option<Executor>,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            id: None,
            queues: vec![DEFAULT_QUEUE.to_owned()],
            concurrency: 16,
            lease_ttl: Duration::from_secs(30),
            grace: Duration::from_secs(30),
            scheduler: true,
            event_retention: Some(DEFAULT_EVENT_RETENTION),
            executor: None,
        }
    }
}

/// What a worker did, returned when it stops.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkerReport {
    /// Runs claimed.
    pub claimed: u64,
    /// Runs it finished as succeeded.
    pub succeeded: u64,
    /// Runs it finished as failed.
    pub failed: u64,
    /// Runs it finished as cancelled.
    pub cancelled: u64,
    /// Runs it gave back (draining, or their application was busy elsewhere).
    pub released: u64,
    /// Runs it stopped because another worker took them over.
    pub fenced: u64,
}

/// A worker: claims runs, runs their applications with the persister, tracker and a
/// shared executor, renews their leases, and drains on shutdown.
///
/// A run's application is built by its kind's factory, then given the run id as app id,
/// the persister (it resumes from its last checkpoint: finished steps and finished child
/// applications are never redone), the tracker, the executor, the run's priority and
/// flow, and a cancel token. The worker steps it to the end of its graph and finishes
/// the run with its kind's summary, or with the error chain.
///
/// Fencing: a heartbeat that finds a held run taken over (its attempt is no longer this
/// worker's) stops the application at once; the queue refuses the stale attempt's finish
/// ([`QueueError::Fenced`]), and the persister refuses its checkpoints once another runner
/// holds the application's lease.
///
/// Draining ([`Worker::run`]'s shutdown future): stop claiming; let running applications
/// reach the end of their current step within the grace period (then cancel the step);
/// give their runs back to the queue; return.
pub struct Worker {
    queue: Arc<dyn RunQueue>,
    persister: Arc<dyn Persister>,
    registry: Arc<Registry>,
    tracker: Option<Arc<dyn LifecycleHook>>,
    options: WorkerOptions,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("registry", &self.registry)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// A run in progress.
struct Held {
    attempt: u32,
    cancel: CancelToken,
    /// Another worker took it over.
    fenced: Arc<AtomicBool>,
    /// A user asked to cancel it.
    cancel_requested: Arc<AtomicBool>,
}

type HeldRuns = Arc<Mutex<HashMap<String, Held>>>;

/// How one run's attempt ended.
enum Ended {
    Finished(Finish),
    /// Given back, to be claimed again after this long.
    Released(Duration),
    Fenced,
}

struct Shared {
    queue: Arc<dyn RunQueue>,
    persister: Arc<dyn Persister>,
    registry: Arc<Registry>,
    tracker: Option<Arc<dyn LifecycleHook>>,
    executor: Executor,
    worker_id: String,
    lease_ttl: Duration,
    draining: watch::Receiver<bool>,
    held: HeldRuns,
    events: mpsc::UnboundedSender<Record>,
}

impl Worker {
    /// A worker running `registry`'s kinds from `queue`, checkpointing with `persister`.
    pub fn new(
        queue: Arc<dyn RunQueue>,
        persister: Arc<dyn Persister>,
        registry: Arc<Registry>,
    ) -> Self {
        Worker {
            queue,
            persister,
            registry,
            tracker: None,
            options: WorkerOptions::default(),
        }
    }

    /// Record every step of every run with `tracker` (e.g. [`burr_tracker::Tracker::hook`]).
    pub fn with_tracker(mut self, tracker: Arc<dyn LifecycleHook>) -> Self {
        self.tracker = Some(tracker);
        self
    }

    /// Time every checkpoint save of its runs into `metrics` (served at `/metrics` by
    /// the HTTP server sharing them).
    pub fn with_metrics(mut self, metrics: &Arc<crate::metrics::Metrics>) -> Self {
        self.persister = metrics.timed(self.persister);
        self
    }

    /// How the worker runs.
    pub fn with_options(mut self, options: WorkerOptions) -> Self {
        self.options = options;
        self
    }

    /// Claim and run runs until `shutdown` completes, then drain (see [`Worker`]).
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<WorkerReport, QueueError> {
        let options = self.options;
        let concurrency = options.concurrency.max(1);
        let me = ProcessIdentity::current();
        let worker_id = options.id.clone().unwrap_or_else(|| default_worker_id(&me));
        let info = WorkerInfo {
            id: worker_id.clone(),
            host: me.host.clone(),
            pid: me.pid,
            machine: me.machine.clone(),
            pid_started: me.started,
            queues: options.queues.clone(),
            concurrency: u32::try_from(concurrency).unwrap_or(u32::MAX),
            heartbeat_at_us: now_us(),
        };
        let ttl_us = i64::try_from(options.lease_ttl.as_micros()).unwrap_or(i64::MAX);
        let held: HeldRuns = Arc::default();
        let (drain_tx, draining) = watch::channel(false);
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            queue: Arc::clone(&self.queue),
            persister: self.persister,
            registry: Arc::clone(&self.registry),
            tracker: self.tracker,
            executor: options.executor.clone().unwrap_or_else(Executor::global),
            worker_id: worker_id.clone(),
            lease_ttl: options.lease_ttl,
            draining,
            held: Arc::clone(&held),
            events: events_tx,
        });
        let queue = self.queue;
        // Register the worker (for `explain`) before the first claim.
        if let Err(error) = queue.heartbeat(&info, &[], ttl_us).await {
            tracing::warn!(%error, "worker heartbeat failed");
        }
        let background = [
            tokio::spawn(heartbeats(
                Arc::clone(&queue),
                info,
                Arc::clone(&held),
                ttl_us,
                options.lease_ttl,
            )),
            tokio::spawn(record_events(Arc::clone(&queue), events_rx)),
            tokio::spawn(cancel_on_request(Arc::clone(&queue), Arc::clone(&held))),
            tokio::spawn(reap_gone_workers(Arc::clone(&queue), me)),
        ];
        let scheduler = options
            .scheduler
            .then(|| tokio::spawn(schedules(Arc::clone(&queue), options.event_retention)));

        let claim = Claim {
            worker: worker_id,
            queues: options.queues.clone(),
            kinds: self.registry.versions(),
            limit: 0,
            lease_ttl_us: ttl_us,
        };
        let mut report = WorkerReport::default();
        let mut tasks: JoinSet<Ended> = JoinSet::new();
        // Each run's task, by run id (finished ones swept now and then): a run claimed
        // again while its older task still runs stops that task first.
        let mut running: HashMap<String, AbortHandle> = HashMap::new();
        let mut changes = queue.changes();
        // Under load, slots are claimed a batch at a time (one transaction for several
        // runs); a lone free slot waits at most `BATCH_WAIT` for others.
        let batch = (concurrency / 8).max(1);
        let mut pause = FIRST_POLL;
        // Whether the queue may hold runs to claim: after a change, or a claim that got
        // all it asked for; otherwise only the fallback poll looks (other processes'
        // submissions that sent no wake-up, not-before times, expired leases).
        let mut maybe_work = true;
        let mut last_claim = tokio::time::Instant::now();
        tokio::pin!(shutdown);
        loop {
            let free = concurrency.saturating_sub(tasks.len());
            let due = free >= batch || tasks.is_empty() || last_claim.elapsed() >= BATCH_WAIT;
            if free > 0 && maybe_work && due {
                changes.borrow_and_update();
                last_claim = tokio::time::Instant::now();
                match queue
                    .claim(&Claim {
                        limit: free,
                        ..claim.clone()
                    })
                    .await
                {
                    Ok(runs) => {
                        maybe_work = runs.len() == free;
                        if !runs.is_empty() {
                            pause = FIRST_POLL;
                        }
                        if running.len() > 2 * concurrency {
                            running.retain(|_, task| !task.is_finished());
                        }
                        for run in runs {
                            report.claimed += 1;
                            // A run this worker still runs, claimed again: its older
                            // attempt is stale (its lease expired, or the database lost
                            // the claim in a crash before it reached the disk). It is
                            // dropped where it is, writing nothing more (cancelled, it
                            // would record its step as cancelled, under the numbers the
                            // newer attempt is about to use), before the newer starts.
                            let older = running.remove(&run.id).filter(|t| !t.is_finished());
                            if let Some(older) = &older {
                                older.abort();
                            }
                            let id = run.id.clone();
                            let task = tasks.spawn(run_one(Arc::clone(&shared), run, older));
                            running.insert(id, task);
                        }
                    }
                    Err(error) => {
                        maybe_work = false;
                        tracing::warn!(%error, "claim failed");
                    }
                }
                continue;
            }
            let waiting_for_batch = free > 0 && maybe_work;
            tokio::select! {
                () = &mut shutdown => break,
                Some(ended) = tasks.join_next(), if !tasks.is_empty() => {
                    count(&mut report, ended);
                }
                changed = changes.changed(), if free > 0 && !maybe_work => {
                    maybe_work = true;
                    if changed.is_err() {
                        tokio::time::sleep(pause).await;
                    }
                }
                () = tokio::time::sleep(BATCH_WAIT), if waiting_for_batch => {}
                () = tokio::time::sleep(pause), if free > 0 && !maybe_work => {
                    maybe_work = true;
                    pause = (pause * 2).min(MAX_POLL);
                }
            }
        }

        // Drain: no more claims; running steps end within the grace period.
        let _ = drain_tx.send(true);
        let graceful = tokio::time::timeout(options.grace, async {
            while let Some(ended) = tasks.join_next().await {
                count(&mut report, ended);
            }
        })
        .await;
        if graceful.is_err() {
            for held in held.lock().unwrap_or_else(|p| p.into_inner()).values() {
                held.cancel.cancel();
            }
            while let Some(ended) = tasks.join_next().await {
                count(&mut report, ended);
            }
        }
        if let Some(scheduler) = scheduler {
            scheduler.abort();
        }
        // The recorder stops when the last run's sender is gone: let it flush.
        drop(shared);
        let [heartbeat, recorder, canceller, reaper] = background;
        heartbeat.abort();
        canceller.abort();
        reaper.abort();
        let _ = tokio::time::timeout(Duration::from_secs(5), recorder).await;
        Ok(report)
    }
}

fn count(report: &mut WorkerReport, ended: Result<Ended, tokio::task::JoinError>) {
    match ended {
        Ok(Ended::Finished(Finish::Succeeded(_))) => report.succeeded += 1,
        Ok(Ended::Finished(Finish::Failed(_))) => report.failed += 1,
        Ok(Ended::Finished(Finish::Cancelled)) => report.cancelled += 1,
        Ok(Ended::Released(_)) => report.released += 1,
        Ok(Ended::Fenced) => report.fenced += 1,
        // Aborted: a newer attempt of its run replaced it.
        Err(error) if error.is_cancelled() => report.fenced += 1,
        Err(error) => tracing::error!(%error, "a run's task panicked"),
    }
}

/// Run one claimed run's attempt to its end, and finish, release or drop it; first,
/// wait for the run's `older` task of this worker (aborted) to be gone.
async fn run_one(shared: Arc<Shared>, run: Run, older: Option<AbortHandle>) -> Ended {
    if let Some(older) = older {
        while !older.is_finished() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let held = Held {
        attempt: run.attempt,
        cancel: CancelToken::new(),
        fenced: Arc::default(),
        cancel_requested: Arc::new(AtomicBool::new(run.cancel_requested)),
    };
    let (cancel, fenced, cancel_requested) = (
        held.cancel.clone(),
        Arc::clone(&held.fenced),
        Arc::clone(&held.cancel_requested),
    );
    shared
        .held
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(run.id.clone(), held);
    // A kind whose code panics fails its run (rather than leaving it held, its lease
    // renewed by a worker that no longer runs it).
    let mut code = None;
    let ended = AssertUnwindSafe(attempt(
        &shared,
        &run,
        cancel,
        &fenced,
        &cancel_requested,
        &mut code,
    ))
    .catch_unwind()
    .await
    .unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned());
        Ended::Finished(Finish::Failed(vec![format!(
            "run `{}` panicked: {message}",
            run.id
        )]))
    });
    {
        // Unless a newer attempt of the run (claimed again by this worker) holds it now.
        let mut held = shared.held.lock().unwrap_or_else(|p| p.into_inner());
        if held
            .get(&run.id)
            .is_some_and(|h| Arc::ptr_eq(&h.fenced, &fenced))
        {
            held.remove(&run.id);
        }
    }
    // Fenced meanwhile (taken over, or claimed again by this worker): it writes nothing.
    let ended = if fenced.load(Ordering::Relaxed) {
        Ended::Fenced
    } else {
        ended
    };
    let queue = &shared.queue;
    let (id, attempt, worker) = (&run.id, run.attempt, &shared.worker_id);
    let written = match &ended {
        Ended::Finished(finish) => queue
            .finish(id, attempt, worker, finish.clone(), code.as_ref())
            .await
            .map(drop),
        Ended::Released(after) => {
            let again = now_us().saturating_add(i64::try_from(after.as_micros()).unwrap_or(0));
            queue.release(id, attempt, worker, again).await
        }
        Ended::Fenced => Ok(()),
    };
    match written {
        Ok(()) => ended,
        Err(QueueError::Fenced { .. }) => Ended::Fenced,
        Err(error) => {
            // The run stays as it is; its lease expires and another attempt resumes it.
            tracing::error!(run_id = %id, %error, "could not record the end of the run");
            Ended::Fenced
        }
    }
}

/// The application's attempt: build (resuming; `code` is then what it runs), step to
/// the end or to a stop.
async fn attempt(
    shared: &Shared,
    run: &Run,
    cancel: CancelToken,
    fenced: &AtomicBool,
    cancel_requested: &AtomicBool,
    code: &mut Option<RunCode>,
) -> Ended {
    let failed =
        |error: &(dyn std::error::Error + 'static)| Ended::Finished(Finish::Failed(chain(error)));
    if cancel_requested.load(Ordering::Relaxed) {
        return Ended::Finished(Finish::Cancelled);
    }
    let kind = match shared.registry.get(&run.kind) {
        Ok((_, kind)) => Arc::clone(kind),
        Err(error) => return failed(&error),
    };
    let mut info = RunInfo::of(run);
    info.announcer = crate::Announcer::new(&run.id, shared.events.clone());
    let announcer = Arc::new(info.announcer.clone());
    let builder = match kind.build(&run.inputs, &info) {
        Ok(builder) => builder,
        Err(error) => return failed(&*error),
    };
    let progress = Arc::new(RunProgress::new(&run.id, shared.events.clone()));
    let mut builder = builder
        .with_app_id(run.id.clone())
        .with_state_persister(Arc::clone(&shared.persister))
        .with_executor(shared.executor.clone())
        .with_priority(run.priority)
        .with_flow(u64::try_from(run.flow_started_at_us).unwrap_or(0))
        .with_cancel_token(cancel)
        .with_lease_ttl(shared.lease_ttl)
        .with_resource(announcer)
        .with_hook(Arc::clone(&progress) as Arc<dyn LifecycleHook>);
    if let Some(tracker) = &shared.tracker {
        builder = builder.with_tracker(Arc::clone(tracker));
    }
    // A first attempt has nothing stored to resume (the run was never claimed before):
    // it skips the load. A rerun starts from its source's state until it has
    // checkpoints of its own.
    let resume = run.attempt > 1;
    let own_checkpoints = match &run.fork {
        Some(_) if resume => match shared.persister.load(None, &run.id, None).await {
            Ok(found) => found.is_some(),
            Err(error) => return failed(&error),
        },
        _ => resume,
    };
    if let (Some(fork), false) = (&run.fork, own_checkpoints) {
        match shared
            .persister
            .load(None, &fork.run_id, Some(fork.sequence_id))
            .await
        {
            Ok(Some(_)) => {}
            Ok(None) => {
                return failed(&QueueError::Invalid {
                    what: "rerun source",
                    value: format!("{}@{}", fork.run_id, fork.sequence_id),
                    problem: "the run has no checkpoint at that sequence id".to_owned(),
                })
            }
            Err(error) => return failed(&error),
        }
        builder = builder
            .initialize_from(Arc::clone(&shared.persister))
            .fork_from_app_id(fork.run_id.clone())
            .fork_from_sequence_id(fork.sequence_id);
    } else if resume {
        builder = builder
            .initialize_from(Arc::clone(&shared.persister))
            .resume_cancelled(true);
    }
    let mut app = match builder.build().await {
        Ok(app) => app,
        Err(CoreError::Persistence {
            source: PersistenceError::AppLocked { .. },
            ..
        }) => {
            // Another runner still holds the application (a worker whose lease on the
            // run expired, but which still lives): give the run back, to be claimed again
            // once that runner has had time to stop.
            return Ended::Released(shared.lease_ttl / 4);
        }
        Err(error) => return failed(&error),
    };
    *code = Some(RunCode {
        version: app.code().version.clone(),
        fingerprint: app.code().fingerprint.clone(),
    });
    let mut draining = shared.draining.clone();
    let mut last = None;
    let outcome = {
        let steps = app.iterate(RunOptions::new());
        futures::pin_mut!(steps);
        loop {
            if *draining.borrow_and_update() {
                break None;
            }
            match steps.next().await {
                Some(Ok(step)) => last = Some(step),
                Some(Err(error)) => break Some(Err(error)),
                None => break Some(Ok(())),
            }
        }
    };
    progress.flush().await;
    if fenced.load(Ordering::Relaxed) {
        return Ended::Fenced;
    }
    match outcome {
        None => Ended::Released(Duration::ZERO),
        Some(Ok(())) => Ended::Finished(Finish::Succeeded(
            kind.summarize(last.as_ref(), app.state()),
        )),
        Some(Err(_)) if cancel_requested.load(Ordering::Relaxed) => {
            Ended::Finished(Finish::Cancelled)
        }
        Some(Err(_)) if *draining.borrow() => Ended::Released(Duration::ZERO),
        Some(Err(error)) if lease_lost(&error) => Ended::Fenced,
        Some(Err(error)) => failed(&error),
    }
}

/// Whether `error` says the application's lease went to another runner.
fn lease_lost(error: &CoreError) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(PersistenceError::LeaseLost { .. } | PersistenceError::AppLocked { .. }) =
            e.downcast_ref::<PersistenceError>()
        {
            return true;
        }
        source = e.source();
    }
    false
}

/// An error and its causes, as text.
pub(crate) fn chain(error: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut out = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        out.push(cause.to_string());
        source = cause.source();
    }
    out
}

/// Renew the held runs' leases every third of the lease's life; stop the runs lost to
/// another worker and those asked to cancel (from another process: at once when the
/// queue rings a cancel, otherwise at the next beat).
async fn heartbeats(
    queue: Arc<dyn RunQueue>,
    info: WorkerInfo,
    held: HeldRuns,
    ttl_us: i64,
    ttl: Duration,
) {
    let every = (ttl / 3).max(Duration::from_millis(10));
    // A cancel asked for in another process is looked at at once, not at the next beat.
    let mut cancels = Some(queue.cancels());
    let mut next = tokio::time::Instant::now() + every;
    loop {
        let asked = match cancels.as_mut() {
            Some(cancels) => tokio::select! {
                () = tokio::time::sleep_until(next) => false,
                changed = cancels.changed() => changed.is_ok(),
            },
            None => {
                tokio::time::sleep_until(next).await;
                false
            }
        };
        if asked {
            if held.lock().unwrap_or_else(|p| p.into_inner()).is_empty() {
                continue;
            }
        } else if tokio::time::Instant::now() < next {
            // The backend gives no cancel wake-ups.
            cancels = None;
            continue;
        } else {
            next = tokio::time::Instant::now() + every;
        }
        let snapshot: Vec<(String, u32)> = held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(id, h)| (id.clone(), h.attempt))
            .collect();
        match queue.heartbeat(&info, &snapshot, ttl_us).await {
            Ok(report) => {
                let held = held.lock().unwrap_or_else(|p| p.into_inner());
                for id in &report.lost {
                    if let Some(h) = held.get(id) {
                        tracing::warn!(run_id = %id, "the run was taken over by another worker: stopping it");
                        h.fenced.store(true, Ordering::Relaxed);
                        h.cancel.cancel();
                    }
                }
                for id in &report.cancel {
                    if let Some(h) = held.get(id) {
                        h.cancel_requested.store(true, Ordering::Relaxed);
                        h.cancel.cancel();
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "heartbeat failed"),
        }
    }
}

/// How often a worker looks for gone workers of its machine.
const REAP_EVERY: Duration = Duration::from_secs(1);

/// Take back, at start and then every [`REAP_EVERY`], the runs of the workers of this
/// machine whose process is gone (killed, crashed): they are claimed again at once
/// rather than when their leases expire.
async fn reap_gone_workers(queue: Arc<dyn RunQueue>, me: ProcessIdentity) {
    loop {
        match queue.reap(&me).await {
            Ok(gone) if !gone.is_empty() => {
                tracing::info!(workers = ?gone, "took back the runs of gone workers");
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "looking for gone workers failed"),
        }
        tokio::time::sleep(REAP_EVERY).await;
    }
}

/// Cancel held runs as soon as a cancel is asked in this process.
async fn cancel_on_request(queue: Arc<dyn RunQueue>, held: HeldRuns) {
    let mut events = queue.subscribe();
    loop {
        match events.recv().await {
            Ok(event) if matches!(event.kind, EventKind::CancelRequested) => {
                if let Some(h) = held
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&event.run_id)
                {
                    h.cancel_requested.store(true, Ordering::Relaxed);
                    h.cancel.cancel();
                }
            }
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Record the runs' step and progress events, in batches.
async fn record_events(queue: Arc<dyn RunQueue>, mut records: mpsc::UnboundedReceiver<Record>) {
    let mut batch = Vec::new();
    let mut flushed = Vec::new();
    while let Some(first) = records.recv().await {
        let mut next = Some(first);
        while let Some(record) = next {
            match record {
                Record::Event(run_id, kind) => batch.push((run_id, kind)),
                Record::Flush(done) => flushed.push(done),
            }
            next = if batch.len() < 1024 {
                records.try_recv().ok()
            } else {
                None
            };
        }
        if let Err(error) = queue.record(std::mem::take(&mut batch)).await {
            tracing::warn!(%error, "could not record run events");
        }
        for done in flushed.drain(..) {
            let _ = done.send(());
        }
    }
}

/// Fire due schedules: sleep until the earliest due time, at most a second (to see
/// schedules added meanwhile). Delete expired events (see
/// [`WorkerOptions::event_retention`]) at start and every [`PRUNE_EVERY`].
async fn schedules(queue: Arc<dyn RunQueue>, event_retention: Option<Duration>) {
    let mut pruned_at: Option<tokio::time::Instant> = None;
    loop {
        if let Some(keep) = event_retention {
            if pruned_at.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
                pruned_at = Some(tokio::time::Instant::now());
                let keep_us = i64::try_from(keep.as_micros()).unwrap_or(i64::MAX);
                match queue.prune_events(now_us().saturating_sub(keep_us)).await {
                    Ok(0) => {}
                    Ok(deleted) => {
                        tracing::debug!(deleted, "deleted the events of runs finished long ago")
                    }
                    Err(error) => tracing::warn!(%error, "deleting old run events failed"),
                }
            }
        }
        if let Err(error) = queue.fire_due(now_us()).await {
            tracing::warn!(%error, "firing schedules failed");
        }
        let next = match queue.schedules().await {
            Ok(list) => list.iter().map(|s| s.next_due_us).min(),
            Err(_) => None,
        };
        let wait = next.map_or(Duration::from_secs(1), |due| {
            Duration::from_micros(u64::try_from(due.saturating_sub(now_us())).unwrap_or(0))
                .min(Duration::from_secs(1))
        });
        tokio::time::sleep(wait).await;
    }
}

/// `<host>:<pid>:<random>`.
fn default_worker_id(me: &ProcessIdentity) -> String {
    format!(
        "{}:{}:{}",
        me.host,
        me.pid,
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}
