//! [`Application`]: a graph of actions run step by step over immutable state, and the
//! [`ApplicationBuilder`] that makes one.

mod builder;
mod check;
mod execute;
mod halt;
mod options;
mod stream;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::Stream;
use tracing::Instrument;

use crate::actions::{ActionResult, Inputs, RetryPolicy, StepFailure};
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::hooks::{ExecuteCall, ExecuteCallEnd, LifecycleHook, StepEnd};
use crate::ids::{ApplicationContext, CancelToken, Identifiers, ParentPointer};
use crate::persistence::{Checkpoint, Lease, PersistenceError, Persister, StepStatus};
use crate::state::{State, StateDelta};

pub use builder::ApplicationBuilder;
pub(crate) use builder::{warn_unreachable, ChildParts};
pub use check::{check_resume, CurrentCode, ResumeCheck, Verdict, MIGRATED_TO_KEY};
pub(crate) use halt::HaltSet;
pub use options::RunOptions;
pub use stream::{ActionStream, StreamEvent};

/// One executed step: the action, its result, and the state after it.
#[derive(Clone, Debug)]
pub struct Step {
    /// The action that ran.
    pub action: String,
    /// Its sequence id.
    pub sequence_id: u64,
    /// Its result.
    pub result: ActionResult,
    /// The state after the step.
    pub state: State,
}

/// A step that completed, as the step loop keeps it: the [`Step`] without its action's
/// name and state, which only the callers that return a `Step` make.
pub(crate) struct Ran {
    index: usize,
    sequence_id: u64,
    result: ActionResult,
}

/// What [`Application::run`] returns: Burr's `(action, result, state)`.
#[derive(Clone, Debug)]
pub struct RunOutcome {
    /// The last action run, or — when halted by `halt_before` — the action halted before.
    /// `None` when nothing ran.
    pub action: Option<String>,
    /// The last action's result (`None` when halted before an action, or nothing ran).
    pub result: Option<ActionResult>,
    /// The state at the end.
    pub state: State,
}

/// An application: a graph, its state, and where it is.
///
/// Built by [`ApplicationBuilder`]. Drive it with [`step`](Application::step),
/// [`run`](Application::run), [`iterate`](Application::iterate) or
/// [`stream_result`](Application::stream_result).
pub struct Application {
    graph: Arc<Graph>,
    /// The code it runs: version, fingerprint, graph description.
    code: Arc<crate::persistence::CodeVersion>,
    /// Where memoized actions keep their outcomes.
    step_cache: Option<crate::cache::Cache>,
    /// The hashes of the values memoized actions read (see [`execute::ValueHashes`]).
    value_hashes: execute::ValueHashes,
    names: Arc<[Arc<str>]>,
    entrypoint: usize,
    state: State,
    ctx: ApplicationContext,
    /// The hooks, the tracker last (also in `ctx`, for actions).
    hooks: Arc<[Arc<dyn LifecycleHook>]>,
    /// The sequence id of the last step taken (`None` before the first).
    sequence_id: Option<u64>,
    /// The last action that completed.
    prior: Option<usize>,
    /// The next action when it is not chosen by the transitions: the action of a failed
    /// step (to retry), or the entrypoint a resume starts at.
    forced: Option<usize>,
    /// The attempt of the last step, when it failed (its retry keeps the sequence id).
    failed_attempt: Option<u32>,
    /// The next action, once chosen for the current state.
    next_cache: Option<Option<usize>>,
    fork_parent: Option<ParentPointer>,
    saver: Option<Arc<dyn Persister>>,
    /// Whether the next checkpoint must carry the whole state: the saver holds no earlier
    /// checkpoint of this application to build on (a new application, or a fork).
    snapshot_next: bool,
    /// Whether a step's `pre_run_step` fired and its end has not been recorded yet.
    in_flight: bool,
    lease: Option<Lease>,
    /// Each action's retry policy and timeout, by index (`None`: no action has either).
    settings: Option<Arc<[StepSettings]>>,
    /// The failure an error transition routed to the next action (its handler), until the
    /// handler completes.
    failure: Option<StepFailure>,
    /// Whether the context holds a failure for the running handler (`ctx.failure()`).
    failure_handed: bool,
    /// When the last failed attempt ended, for the backoff before its retry.
    failed_at: Option<SystemTime>,
    /// What the step loop does after the failed attempt that just ended.
    after_failure: AfterFailure,
    /// The backoff chosen after the attempt that just failed (for `post_run_step`).
    retry_in: Option<Duration>,
    /// Whether the last step's failure was routed to an error transition's handler.
    routed: bool,
}

/// An action's retry policy and timeout in this application.
#[derive(Clone, Debug, Default)]
pub(crate) struct StepSettings {
    pub(crate) retry: Option<RetryPolicy>,
    pub(crate) timeout: Option<Duration>,
}

/// What the step loop does after a failed attempt.
enum AfterFailure {
    /// Return the error.
    Fail,
    /// Run the action again after this wait.
    Retry(Duration),
    /// The error transition's handler runs next; the error is still returned by `step`.
    Routed,
}

impl Application {
    /// A builder.
    pub fn builder() -> ApplicationBuilder {
        ApplicationBuilder::new()
    }

    /// The current state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The sequence id of the last step taken, `None` before the first.
    pub fn sequence_id(&self) -> Option<u64> {
        self.sequence_id
    }

    /// A token that cancels this application from another task or thread: it stops at the
    /// next step boundary, or inside a running action that checks
    /// [`ApplicationContext::is_cancelled`]; the step is checkpointed as `cancelled`, and so
    /// is each unfinished child application. Finished steps and children stay finished;
    /// building the application again resumes it only with
    /// [`resume_cancelled`](ApplicationBuilder::resume_cancelled).
    pub fn cancel_handle(&self) -> CancelToken {
        self.ctx.cancel.clone()
    }

    /// The application's id.
    pub fn app_id(&self) -> &str {
        &self.ctx.ids.app_id
    }

    /// The partition key.
    pub fn partition_key(&self) -> Option<&str> {
        self.ctx.ids.partition_key()
    }

    /// The identifiers.
    pub fn identifiers(&self) -> &Identifiers {
        &self.ctx.ids
    }

    /// The graph.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The code it runs: the application version given to
    /// [`ApplicationBuilder::with_version`], the graph's fingerprint and description (as
    /// stored in its application record).
    pub fn code(&self) -> &crate::persistence::CodeVersion {
        &self.code
    }

    /// The application this one was forked from.
    pub fn fork_parent(&self) -> Option<&ParentPointer> {
        self.fork_parent.as_ref()
    }

    /// The application that spawned this one.
    pub fn spawning_parent(&self) -> Option<&ParentPointer> {
        self.ctx.spawning_parent.as_ref()
    }

    /// The last action that completed.
    pub fn prior_action(&self) -> Option<&str> {
        self.prior.map(|i| &*self.names[i])
    }

    /// The context actions of this application get (the step fields are those of the last
    /// step).
    pub fn context(&self) -> &ApplicationContext {
        &self.ctx
    }

    /// The name of the action the next step will run; `None` when the application is
    /// finished. Errors when a condition cannot be evaluated.
    pub fn next_action(&mut self) -> Result<Option<&str>> {
        let next = self.next_index()?;
        Ok(next.map(|i| &*self.names[i]))
    }

    /// Whether a next action exists (a condition error counts as none).
    pub fn has_next_action(&mut self) -> bool {
        matches!(self.next_index(), Ok(Some(_)))
    }

    /// Give up this application's lease now rather than when it is dropped, e.g. to hand
    /// the app id to another runner. A later checkpoint takes the lease again if it is free.
    ///
    /// An application gives its lease back by itself when it finishes (no next action is
    /// left after a step) and when it is dropped.
    pub fn release_lease(&mut self) {
        let leases = self.saver.as_deref().and_then(|saver| saver.as_leases());
        if let (Some(lease), Some(leases)) = (self.lease.take(), leases) {
            if let Err(error) = leases.release_lease(&lease) {
                tracing::warn!(app_id = %lease.app_id, %error, "could not release the lease");
            }
        }
    }

    /// The lease, taken out to be given back, once no next action is left: the application is finished,
    /// whether or not its runner keeps it. A lease left behind then means a runner that
    /// stopped part-way (killed, crashed), which is how an inspector tells `interrupted`
    /// from `completed` (`SqlitePersister::lease_status`).
    fn finished_lease(&mut self) -> Option<Lease> {
        if self.lease.is_some() && matches!(self.next_index(), Ok(None)) {
            self.lease.take()
        } else {
            None
        }
    }

    /// Give `lease` back without blocking the thread while the store writes. Boxed: the
    /// step's future stays as small as it was without it (this runs once per application).
    fn give_lease_back(
        &self,
        lease: Lease,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            let leases = self.saver.as_deref().and_then(|saver| saver.as_leases());
            if let Some(leases) = leases {
                if let Err(error) = leases.release_lease_async(&lease).await {
                    tracing::warn!(app_id = %lease.app_id, %error, "could not release the lease");
                }
            }
        })
    }

    /// Whether the last step completed one of `halt_after` (or the graph is finished after
    /// at least one step): a child loaded in that position has nothing left to run.
    pub(crate) fn halted_after(&mut self, halt_after: &[String]) -> bool {
        if self.forced.is_some() || self.sequence_id.is_none() {
            return false;
        }
        let Some(prior) = self.prior else {
            return false;
        };
        halt_after.iter().any(|name| **name == *self.names[prior])
            || matches!(self.next_index(), Ok(None))
    }

    /// Record that the step in flight (or the next one) was cancelled: a `cancelled`
    /// checkpoint at its sequence id, with the state before it, so that a resume re-runs it.
    pub(crate) async fn record_cancelled(&mut self) {
        let Ok(Some(index)) = self.next_index() else {
            return;
        };
        let was_running = self.in_flight;
        // Attempts count runs of the action's code: a step cancelled before it ran is
        // recorded as attempt 0 (or, after a failed attempt, left at that attempt's record),
        // so that its first real run is attempt 1.
        let (sequence_id, attempt, record) =
            match (was_running, self.failed_attempt, self.sequence_id) {
                (true, _, _) => {
                    let (seq, attempt) = self.numbering();
                    (seq, attempt, true)
                }
                (false, Some(attempt), Some(seq)) => (seq, attempt, false),
                (false, _, seq) => (seq.map_or(0, |s| s + 1), 0, true),
            };
        (self.ctx.sequence_id, self.ctx.attempt) = (sequence_id, attempt);
        let error = Error::Cancelled {
            action: self.names[index].to_string(),
        };
        if record && self.saver.is_some() {
            let checkpoint = self.unfinished_checkpoint(index, StepStatus::Cancelled, &error);
            match self.save(checkpoint).await {
                Ok(_) => {}
                // The step's own checkpoint was committed before the cancel dropped its
                // future: the step completed, and the application goes on from there.
                Err(Error::Persistence {
                    source: PersistenceError::Conflict { .. },
                    ..
                }) if was_running && self.adopt_committed(index).await => return,
                Err(save_error) => {
                    tracing::warn!(app_id = %self.ctx.ids.app_id, error = %save_error, "could not record a cancelled step");
                }
            }
        }
        self.mark_unfinished(index);
        if was_running {
            let now = SystemTime::now();
            self.step_ended(
                index,
                &Inputs::new(),
                StepStatus::Cancelled,
                None,
                Some(&error),
                &StateDelta::default(),
                now,
            );
        }
    }

    /// Take as done the step at `index` whose completed checkpoint (at the current
    /// sequence id and attempt) is already stored. False when what is stored is not that.
    async fn adopt_committed(&mut self, index: usize) -> bool {
        let Some(saver) = self.saver.clone() else {
            return false;
        };
        let (sequence_id, attempt) = (self.ctx.sequence_id, self.ctx.attempt);
        let loaded = saver
            .load(
                self.ctx.ids.partition_key(),
                &self.ctx.ids.app_id,
                Some(sequence_id),
            )
            .await;
        let Ok(Some(loaded)) = loaded else {
            return false;
        };
        if loaded.status != StepStatus::Completed
            || loaded.attempt != attempt
            || loaded.position != *self.names[index]
        {
            return false;
        }
        self.state = loaded.state;
        self.sequence_id = Some(sequence_id);
        self.prior = Some(index);
        self.forced = None;
        self.failed_attempt = None;
        self.next_cache = None;
        self.in_flight = false;
        let now = SystemTime::now();
        self.step_ended(
            index,
            &Inputs::new(),
            StepStatus::Completed,
            None,
            None,
            &StateDelta::default(),
            now,
        );
        true
    }

    /// The sequence id and attempt of the next step: a retry of a failed step keeps its
    /// sequence id; otherwise the next one.
    fn numbering(&self) -> (u64, u32) {
        match (self.failed_attempt, self.sequence_id) {
            (Some(attempt), Some(seq)) => (seq, attempt + 1),
            (_, seq) => (seq.map_or(0, |s| s + 1), 1),
        }
    }

    /// After a step that did not complete (failed, cancelled, dropped): the state stays, and
    /// the next call retries the action under the same sequence id.
    fn mark_unfinished(&mut self, index: usize) {
        self.sequence_id = Some(self.ctx.sequence_id);
        self.forced = Some(index);
        self.failed_attempt = Some(self.ctx.attempt);
        self.next_cache = None;
        self.in_flight = false;
    }

    /// The checkpoint of the current step, which did not complete: the state before it.
    fn unfinished_checkpoint(&self, index: usize, status: StepStatus, error: &Error) -> Checkpoint {
        let prior = self.prior.map(|i| &*self.names[i]);
        self.make_checkpoint(
            &self.names[index],
            status,
            prior,
            &self.state,
            StateDelta::default(),
            Some(error_chain(error)),
        )
    }

    /// Fire `post_run_step` for the current step.
    #[allow(clippy::too_many_arguments)]
    fn step_ended(
        &self,
        index: usize,
        inputs: &Inputs,
        status: StepStatus,
        result: Option<&ActionResult>,
        error: Option<&Error>,
        delta: &StateDelta,
        started_at: SystemTime,
    ) {
        if self.hooks.is_empty() {
            return;
        }
        let ended_at = SystemTime::now();
        for hook in self.hooks() {
            hook.post_run_step(&StepEnd {
                ids: &self.ctx.ids,
                sequence_id: self.ctx.sequence_id,
                attempt: self.ctx.attempt,
                action: &self.names[index],
                inputs,
                status,
                result,
                error,
                state: &self.state,
                delta,
                started_at,
                ended_at,
                retry_in: self.retry_in,
            });
        }
    }

    fn next_index(&mut self) -> Result<Option<usize>> {
        if let Some(next) = self.next_cache {
            return Ok(next);
        }
        let next = match (self.forced, self.prior) {
            (Some(forced), _) => Some(forced),
            (None, None) => Some(self.entrypoint),
            (None, Some(prior)) => self
                .graph
                .next_after(prior, &self.state)
                .map_err(|source| Error::Condition {
                    after: self.names[prior].to_string(),
                    source,
                })?,
        };
        self.next_cache = Some(next);
        Ok(next)
    }

    fn hooks(&self) -> &[Arc<dyn LifecycleHook>] {
        &self.hooks
    }

    fn call_start(&self, method: &'static str, inputs: &Inputs) {
        for hook in self.hooks() {
            hook.pre_run_execute_call(&ExecuteCall {
                ids: &self.ctx.ids,
                method,
                inputs,
            });
        }
    }

    fn call_end(&self, method: &'static str, error: Option<&Error>) {
        for hook in self.hooks() {
            hook.post_run_execute_call(&ExecuteCallEnd {
                ids: &self.ctx.ids,
                method,
                error,
            });
        }
    }

    /// Run the next action. `Ok(None)` when the application is finished.
    ///
    /// `inputs` go to the action, which takes the ones it declares. A missing required
    /// input or an input starting with `__` is an error, and then nothing runs and no
    /// sequence id is used. When the action fails, the step is recorded as failed and the
    /// state is unchanged: with a [`RetryPolicy`] the action runs again (after its
    /// backoff, under the same sequence id, with the attempt counted) until it succeeds or
    /// its attempts are spent. Then the error is returned; the next call retries the
    /// action again, or — with an error transition ([`on_error`](crate::condition::on_error))
    /// out of it — runs the handler.
    pub async fn step(&mut self, inputs: Inputs) -> Result<Option<Step>> {
        self.call_start("step", &inputs);
        let outcome = self.step_inner(&inputs).await;
        self.call_end("step", outcome.as_ref().err());
        Ok(outcome?.map(|ran| self.step_of(ran)))
    }

    /// The [`Step`] of a completed step (the current state is the state after it).
    fn step_of(&self, ran: Ran) -> Step {
        Step {
            action: String::from(&*self.names[ran.index]),
            sequence_id: ran.sequence_id,
            result: ran.result,
            state: self.state.clone(),
        }
    }

    async fn step_inner(&mut self, inputs: &Inputs) -> Result<Option<Ran>> {
        self.routed = false;
        loop {
            match self.attempt(inputs).await {
                Ok(step) => return Ok(step),
                Err(error) => {
                    match std::mem::replace(&mut self.after_failure, AfterFailure::Fail) {
                        AfterFailure::Fail => return Err(error),
                        AfterFailure::Routed => {
                            self.routed = true;
                            return Err(error);
                        }
                        AfterFailure::Retry(wait) => self.back_off(wait).await?,
                    }
                }
            }
        }
    }

    /// Wait `wait` before a retry; a cancel during the wait ends it.
    async fn back_off(&mut self, wait: Duration) -> Result<()> {
        if wait.is_zero() {
            return Ok(());
        }
        let cancel = self.ctx.cancel.clone();
        tokio::select! {
            () = tokio::time::sleep(wait) => Ok(()),
            () = cancel.cancelled() => self.cancelled_at_boundary().await,
        }
    }

    /// The application's token was cancelled between steps: record the step that would
    /// have run as cancelled, and fail with [`Error::Cancelled`].
    async fn cancelled_at_boundary(&mut self) -> Result<()> {
        let action = match self.next_index() {
            Ok(Some(index)) => self.names[index].to_string(),
            _ => String::new(),
        };
        self.record_cancelled().await;
        Err(Error::Cancelled { action })
    }

    /// One run of the next action (or, with nothing left to run, `Ok(None)`).
    async fn attempt(&mut self, inputs: &Inputs) -> Result<Option<Ran>> {
        let Some(index) = self.next_index()? else {
            // Loaded finished: nothing left to run.
            if let Some(lease) = self.lease.take() {
                self.give_lease_back(lease).await;
            }
            return Ok(None);
        };
        if self.ctx.cancel.is_cancelled() {
            self.cancelled_at_boundary().await?;
        }
        // A retry that follows a failure of an earlier call (or process) waits out what is
        // left of its backoff.
        if let (Some(failed), Some(at), Some(policy)) = (
            self.failed_attempt,
            self.failed_at.take(),
            self.retry_policy(index),
        ) {
            let wait = policy.delay_before(failed + 1, self.backoff_seed());
            let elapsed = at.elapsed().unwrap_or_default();
            self.back_off(wait.saturating_sub(elapsed)).await?;
        }
        let action = Arc::clone(self.graph.action(index));
        let inputs = execute::resolve_inputs(&*action, inputs)?;
        let had_failure = self.failure.is_some() || self.failure_handed;
        if had_failure {
            self.ctx.set_failure(self.failure.clone());
            self.failure_handed = self.failure.is_some();
        }
        // Child applications take an executor slot for the step's work; the wait is not
        // the step's running time.
        let (waited, holds_slot) = match (&self.ctx.executor, &self.ctx.spawning_parent) {
            (Some(executor), Some(_)) => {
                let queued = std::time::Instant::now();
                let permit = executor.acquire(self.ctx.work.clone()).await;
                *self
                    .ctx
                    .shared
                    .slot
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(permit);
                (queued.elapsed(), true)
            }
            _ => (Duration::ZERO, false),
        };
        let started_at = self.begin_step(index, &inputs, waited);
        let sequence_id = self.ctx.sequence_id;
        let span = tracing::info_span!(
            "step",
            app_id = %self.ctx.ids.app_id,
            partition_key = self.ctx.ids.partition_key(),
            sequence_id,
            action = action.name(),
        );
        let timeout = self.settings.as_ref().and_then(|s| s[index].timeout);
        self.ctx.run = self.ctx.run.wrapping_add(1);
        // A cancel does not drop a running action: it signals it (`ctx.is_cancelled()`), and
        // the application stops at the next step boundary. A timeout drops it.
        // Quick synchronous code runs here, in the step's span, without a future (nothing
        // could cut it short: a timeout is only checked between polls).
        let memo = self
            .step_cache
            .as_ref()
            .filter(|_| action.declaration().memoize)
            .cloned();
        let inline = match timeout {
            None if memo.is_none() => {
                let _entered = span.enter();
                let delta = self.saver.is_some() || !self.hooks.is_empty();
                let keys = self.graph.keys(index);
                execute::execute_inline(&*action, keys, &mut self.state, &inputs, &self.ctx, delta)
            }
            _ => Err(execute::read_view(self.graph.keys(index), &self.state)),
        };
        let executed = match inline {
            Ok(executed) => executed,
            Err(view) => {
                let (state, ctx, hashes) = (&self.state, &self.ctx, &self.value_hashes);
                let run = async {
                    match &memo {
                        Some(cache) => {
                            execute::execute_memoized(
                                cache, hashes, &*action, state, view, &inputs, ctx,
                            )
                            .await
                        }
                        None => execute::execute(&*action, state, view, &inputs, ctx).await,
                    }
                }
                .instrument(span);
                match timeout {
                    None => run.await,
                    Some(limit) => tokio::time::timeout(limit, run).await.unwrap_or_else(|_| {
                        // A blocking action (on its own thread) sees that its run is over.
                        self.ctx
                            .shared
                            .timed_out
                            .store(self.ctx.run, Ordering::Relaxed);
                        Err(Error::StepTimeout {
                            action: action.name().to_owned(),
                            after_ms: u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
                        })
                    }),
                }
            }
        };
        if holds_slot {
            drop(
                self.ctx
                    .shared
                    .slot
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take(),
            );
        }
        // Cancelled while running: whatever the action returned, the step is cancelled.
        let executed = match executed {
            Err(error) if self.ctx.cancel.is_cancelled() => {
                drop(error);
                Err(Error::Cancelled {
                    action: action.name().to_owned(),
                })
            }
            other => other,
        };
        let finished = match executed {
            // Nothing to save: nothing to wait for.
            Ok(done) if self.saver.is_none() => {
                Ok(Some(self.completed(index, &inputs, started_at, done)))
            }
            executed => self.finish_step(index, &inputs, started_at, executed).await,
        };
        if finished.is_ok() && had_failure {
            self.failure = None;
            self.ctx.set_failure(None);
            self.failure_handed = false;
        }
        finished
    }

    /// The retry policy of action `index`, if it has one.
    pub(crate) fn retry_policy(&self, index: usize) -> Option<&RetryPolicy> {
        self.settings.as_ref().and_then(|s| s[index].retry.as_ref())
    }

    /// The seed of this step's backoff jitter: the same for the same step in any process.
    fn backoff_seed(&self) -> u64 {
        let mut seed: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in self.ctx.ids.app_id.bytes() {
            seed = (seed ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        seed ^ self.ctx.sequence_id.rotate_left(32) ^ self.sequence_id.unwrap_or(0)
    }

    /// After attempt `self.ctx.attempt` of action `index` failed with `error`: retry it,
    /// route to an error transition's handler, or fail.
    fn decide_after_failure(&mut self, index: usize, error: &Error) -> AfterFailure {
        if matches!(error, Error::Persistence { .. } | Error::Cancelled { .. }) {
            return AfterFailure::Fail;
        }
        let kind = error.kind();
        if let Some(policy) = self.retry_policy(index) {
            let own: &(dyn std::error::Error + 'static) = match error {
                Error::Action { source, .. } => &**source,
                other => other,
            };
            if policy.retries(self.ctx.attempt, kind, own, error.verdict()) {
                return AfterFailure::Retry(
                    policy.delay_before(self.ctx.attempt + 1, self.backoff_seed()),
                );
            }
        }
        match self.graph.error_target(index, kind) {
            Some(handler) => {
                let mut chain = vec![error.to_string()];
                let mut source = std::error::Error::source(error);
                while let Some(cause) = source {
                    chain.push(cause.to_string());
                    source = cause.source();
                }
                let failure = StepFailure {
                    action: self.names[index].to_string(),
                    sequence_id: self.ctx.sequence_id,
                    attempt: self.ctx.attempt,
                    kind,
                    chain,
                };
                self.route_to_handler(index, handler, failure);
                AfterFailure::Routed
            }
            None => AfterFailure::Fail,
        }
    }

    /// Make `handler` the next action, with `failure` (of action `failed`) for it to read.
    pub(crate) fn route_to_handler(&mut self, failed: usize, handler: usize, failure: StepFailure) {
        self.prior = Some(failed);
        self.forced = Some(handler);
        self.failed_attempt = None;
        self.failed_at = None;
        self.failure = Some(failure);
        self.next_cache = None;
    }

    /// Checkpoint and commit (or record the failure of) a step whose action has run.
    async fn finish_step(
        &mut self,
        index: usize,
        inputs: &Inputs,
        started_at: SystemTime,
        executed: Result<(ActionResult, State, StateDelta)>,
    ) -> Result<Option<Ran>> {
        let name = Arc::clone(&self.names[index]);
        let saved = match executed {
            // Without a persister there is nothing to save (and no checkpoint to build).
            Ok(done) if self.saver.is_none() => Ok(done),
            // What is saved must load: a value deeper than JSON decoding allows fails the
            // step before anything is stored.
            Ok((_, _, delta)) if let Some(error) = too_deep(&name, &delta) => Err(error),
            Ok((result, state, delta)) => {
                let checkpoint = self.make_checkpoint(
                    &name,
                    StepStatus::Completed,
                    Some(&name),
                    &state,
                    delta,
                    None,
                );
                self.save(checkpoint)
                    .await
                    .map(|delta| (result, state, delta))
            }
            Err(error) => Err(error),
        };
        match saved {
            Ok(done) => {
                let ran = self.completed(index, inputs, started_at, done);
                if let Some(lease) = self.finished_lease() {
                    self.give_lease_back(lease).await;
                }
                Ok(Some(ran))
            }
            Err(error) => {
                let status = match error {
                    Error::Cancelled { .. } => StepStatus::Cancelled,
                    _ => StepStatus::Failed,
                };
                // A step whose own checkpoint failed is not saved again as failed.
                if self.saver.is_some() && !matches!(error, Error::Persistence { .. }) {
                    let checkpoint = self.unfinished_checkpoint(index, status, &error);
                    if let Err(save_error) = self.save(checkpoint).await {
                        tracing::error!(app_id = %self.ctx.ids.app_id, sequence_id = self.ctx.sequence_id, error = %save_error, "could not checkpoint a failed step");
                    }
                }
                self.mark_unfinished(index);
                self.failed_at = Some(SystemTime::now());
                self.after_failure = self.decide_after_failure(index, &error);
                self.retry_in = match self.after_failure {
                    AfterFailure::Retry(wait) => Some(wait),
                    _ => None,
                };
                self.step_ended(
                    index,
                    inputs,
                    status,
                    None,
                    Some(&error),
                    &StateDelta::default(),
                    started_at,
                );
                self.retry_in = None;
                Err(error)
            }
        }
    }

    /// Take the outcome of a step whose action ran (and was saved): its state is the
    /// application's now.
    fn completed(
        &mut self,
        index: usize,
        inputs: &Inputs,
        started_at: SystemTime,
        (result, state, delta): (ActionResult, State, StateDelta),
    ) -> Ran {
        self.state = state;
        self.sequence_id = Some(self.ctx.sequence_id);
        self.prior = Some(index);
        self.forced = None;
        self.failed_attempt = None;
        self.next_cache = None;
        self.in_flight = false;
        self.step_ended(
            index,
            inputs,
            StepStatus::Completed,
            Some(&result),
            None,
            &delta,
            started_at,
        );
        Ran {
            index,
            sequence_id: self.ctx.sequence_id,
            result,
        }
    }

    /// The checkpoint of the current step. The first checkpoint an application saves
    /// carries its whole state (the persister holds nothing to build on).
    fn make_checkpoint(
        &self,
        position: &str,
        status: StepStatus,
        prior_step: Option<&str>,
        state: &State,
        delta: StateDelta,
        error: Option<String>,
    ) -> Checkpoint {
        Checkpoint {
            partition_key: self.ctx.ids.partition_key().map(str::to_owned),
            app_id: self.ctx.ids.app_id.to_string(),
            sequence_id: self.ctx.sequence_id,
            position: position.to_owned(),
            status,
            attempt: self.ctx.attempt,
            prior_step: prior_step.map(str::to_owned),
            created_at: SystemTime::now(),
            delta: if self.snapshot_next {
                StateDelta::snapshot(state)
            } else {
                delta
            },
            state: state.clone(),
            error,
        }
    }

    /// Save a checkpoint (the application has a persister: callers check). Gives its
    /// delta back.
    async fn save(&mut self, checkpoint: Checkpoint) -> Result<StateDelta> {
        let Some(saver) = &self.saver else {
            return Ok(checkpoint.delta);
        };
        saver
            .save(&checkpoint)
            .await
            .map_err(|source| Error::Persistence {
                app_id: checkpoint.app_id.clone(),
                source,
            })?;
        self.snapshot_next = false;
        Ok(checkpoint.delta)
    }

    /// Run steps until a halt condition or the end of the graph, Burr's `run`.
    ///
    /// [`RunOptions`] name the actions to halt before or after (`@tag:<tag>` names every
    /// action with that tag) and the inputs. At least one step runs before any halt check.
    /// A failed step ends the run with its error, unless its retry policy runs it again or
    /// an error transition takes it to a handler.
    /// Returns the last action and result, or — when halted before an action — that
    /// action's name and no result.
    pub async fn run(&mut self, options: RunOptions) -> Result<RunOutcome> {
        self.call_start("run", &options.inputs);
        let outcome = self
            .run_inner(&options.halt_before, &options.halt_after, &options.inputs)
            .await;
        self.call_end("run", outcome.as_ref().err());
        outcome
    }

    /// [`run`](Self::run) until `halts`, resolved already (a child application's run: its
    /// sub-graph's halt list is resolved once for all the children).
    pub(crate) async fn run_until(
        &mut self,
        halts: &HaltSet,
        inputs: Inputs,
    ) -> Result<RunOutcome> {
        self.call_start("run", &inputs);
        let outcome = self.run_halting(halts, &inputs).await;
        self.call_end("run", outcome.as_ref().err());
        outcome
    }

    async fn run_inner(
        &mut self,
        halt_before: &[String],
        halt_after: &[String],
        inputs: &Inputs,
    ) -> Result<RunOutcome> {
        let halts = HaltSet::new(&self.graph, halt_before, halt_after)?;
        self.run_halting(&halts, inputs).await
    }

    async fn run_halting(&mut self, halts: &HaltSet, inputs: &Inputs) -> Result<RunOutcome> {
        let mut last: Option<Ran> = None;
        loop {
            let step = match self.step_inner(inputs).await {
                Ok(Some(step)) => step,
                Ok(None) => break,
                // An error transition took the failure: its handler runs next.
                Err(_) if self.routed => continue,
                Err(error) => return Err(error),
            };
            if let Some(Ran { result, .. }) = last.replace(step) {
                // An empty result owns no memory: no need to walk it to drop it.
                if result.is_empty() {
                    std::mem::forget(result);
                }
            }
            if self.halt_reached(halts)? {
                break;
            }
        }
        let state = self.state.clone();
        if let Some(next) = self.next_index()? {
            if halts.before(next) {
                return Ok(RunOutcome {
                    action: Some(self.names[next].to_string()),
                    result: None,
                    state,
                });
            }
        }
        Ok(match last {
            Some(ran) => RunOutcome {
                action: Some(String::from(&*self.names[ran.index])),
                result: Some(ran.result),
                state,
            },
            None => RunOutcome {
                action: None,
                result: None,
                state,
            },
        })
    }

    /// Steps as a stream, until a halt condition or the end of the graph (Burr's
    /// `iterate`). Each item is a step; an error ends the stream, unless an error
    /// transition takes it (then the stream goes on with the handler).
    pub fn iterate(&mut self, options: RunOptions) -> impl Stream<Item = Result<Step>> + '_ {
        let RunOptions {
            halt_before,
            halt_after,
            inputs,
        } = options;
        self.call_start("iterate", &inputs);
        let halts = HaltSet::new(&self.graph, &halt_before, &halt_after);
        futures::stream::unfold(Some((self, halts, inputs)), |running| async move {
            let (app, halts, inputs) = running?;
            let halts = match halts {
                Ok(halts) => halts,
                Err(error) => {
                    app.call_end("iterate", Some(&error));
                    return Some((Err(error), None));
                }
            };
            match app.step_inner(&inputs).await {
                Ok(Some(ran)) => {
                    let step = app.step_of(ran);
                    // A condition error surfaces on the next poll, from `step_inner`.
                    if app.halt_reached(&halts).unwrap_or(false) {
                        app.call_end("iterate", None);
                        return Some((Ok(step), None));
                    }
                    Some((Ok(step), Some((app, Ok(halts), inputs))))
                }
                Ok(None) => {
                    app.call_end("iterate", None);
                    None
                }
                // An error transition took the failure: yield it, then its handler runs.
                Err(error) if app.routed => Some((Err(error), Some((app, Ok(halts), inputs)))),
                Err(error) => {
                    app.call_end("iterate", Some(&error));
                    Some((Err(error), None))
                }
            }
        })
    }

    /// After a step: whether `run`/`iterate` stop here (the graph is finished, the next
    /// action is in `halt_before`, or the one just run is in `halt_after`).
    fn halt_reached(&mut self, halts: &HaltSet) -> Result<bool> {
        let ran = self.prior.unwrap_or(self.entrypoint);
        Ok(match self.next_index()? {
            None => true,
            Some(next) => halts.before(next) || halts.after(ran),
        })
    }
}

pub(crate) use crate::error::report as error_chain;

/// The deepest a checkpointed value may be nested: JSON decoding stops at 128 levels.
pub(crate) const MAX_SAVED_DEPTH: usize = 127;

/// The error for the first value of `delta` nested deeper than [`MAX_SAVED_DEPTH`].
fn too_deep(action: &str, delta: &StateDelta) -> Option<Error> {
    delta.updated.iter().find_map(|(key, value)| {
        let depth = depth(value);
        (depth > MAX_SAVED_DEPTH).then(|| Error::ValueTooDeep {
            action: action.to_owned(),
            key: key.to_string(),
            depth,
            max: MAX_SAVED_DEPTH,
        })
    })
}

/// How deeply `value` nests arrays and objects (a scalar is 0), without recursion.
fn depth(value: &serde_json::Value) -> usize {
    use serde_json::Value;
    if !matches!(value, Value::Array(_) | Value::Object(_)) {
        return 0;
    }
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((value, at)) = stack.pop() {
        match value {
            Value::Array(items) => {
                deepest = deepest.max(at + 1);
                stack.extend(items.iter().map(|child| (child, at + 1)));
            }
            Value::Object(map) => {
                deepest = deepest.max(at + 1);
                stack.extend(map.values().map(|child| (child, at + 1)));
            }
            _ => {}
        }
    }
    deepest
}

impl Drop for Application {
    fn drop(&mut self) {
        self.release_lease();
    }
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("app_id", &self.ctx.ids.app_id)
            .field("partition_key", &self.ctx.ids.partition_key)
            .field("sequence_id", &self.sequence_id)
            .field("prior", &self.prior_action())
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
