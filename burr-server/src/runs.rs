//! [`Runs`]: what a program does with runs — submit (checked against the kinds), wait
//! for a result, cancel, inspect — over any [`RunQueue`].

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::error::QueueError;
use crate::kind::Registry;
use crate::queue::RunQueue;
use crate::run::{NewRun, Run, RunFilter, Submitted};
use crate::schedule::{Schedule, ScheduleSpec};
use crate::wake::MAX_POLL;

/// A run to submit: a kind and its inputs, and how to queue it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Submission {
    /// The kind's name.
    pub kind: String,
    /// Its inputs (checked against the kind's input type).
    pub inputs: Value,
    /// Higher runs first (default 0).
    pub priority: i32,
    /// Submitting the same kind with the same key again returns the existing run.
    pub idempotency_key: Option<String>,
    /// Not claimed before this time (microseconds since the Unix epoch).
    pub not_before_us: Option<i64>,
    /// The flow it belongs to (e.g. a meeting id): runs of an earlier flow go first.
    pub flow: Option<String>,
    /// The run id (default: a new UUID).
    pub run_id: Option<String>,
}

impl Submission {
    /// A run of `kind` with `inputs`, at priority 0.
    pub fn new(kind: impl Into<String>, inputs: Value) -> Self {
        Submission {
            kind: kind.into(),
            inputs,
            ..Default::default()
        }
    }

    /// With a priority (higher first).
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// With an idempotency key.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Not before a time (microseconds since the Unix epoch).
    pub fn not_before_us(mut self, at_us: i64) -> Self {
        self.not_before_us = Some(at_us);
        self
    }

    /// In a flow.
    pub fn flow(mut self, flow: impl Into<String>) -> Self {
        self.flow = Some(flow.into());
        self
    }

    /// With a run id.
    pub fn run_id(mut self, run_id: impl Into<String>) -> Self {
        self.run_id = Some(run_id.into());
        self
    }
}

/// Runs over a queue, checked against a registry of kinds. Cloning shares both.
#[derive(Clone)]
pub struct Runs {
    queue: Arc<dyn RunQueue>,
    registry: Arc<Registry>,
}

impl std::fmt::Debug for Runs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runs")
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

impl Runs {
    /// Runs of `registry`'s kinds on `queue`.
    pub fn new(queue: Arc<dyn RunQueue>, registry: Arc<Registry>) -> Self {
        Runs { queue, registry }
    }

    /// The queue.
    pub fn queue(&self) -> &Arc<dyn RunQueue> {
        &self.queue
    }

    /// The kinds.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Check a submission against its kind, and the run it makes.
    pub fn prepare(&self, submission: &Submission) -> Result<NewRun, QueueError> {
        let (info, kind) = self.registry.get(&submission.kind)?;
        let checked = kind.check(&submission.inputs)?;
        Ok(NewRun {
            id: submission.run_id.clone(),
            kind: info.name.clone(),
            kind_version: info.version,
            queue: info.queue.clone(),
            inputs: submission.inputs.clone(),
            priority: checked.priority.unwrap_or(submission.priority),
            flow: submission.flow.clone(),
            not_before_us: submission.not_before_us,
            idempotency_key: submission.idempotency_key.clone(),
            concurrency: checked.concurrency,
            max_attempts: kind.max_attempts(),
            fork: None,
        })
    }

    /// Submit a run: checked, then stored durably before this returns. An unknown kind
    /// or inputs that do not match give an error naming the kind or the field, and
    /// nothing is stored.
    pub async fn submit(&self, submission: Submission) -> Result<Submitted, QueueError> {
        let run = self.prepare(&submission)?;
        self.queue.submit(run).await
    }

    /// Rerun `run_id` from its step `sequence_id`: a new run of the same kind, inputs,
    /// priority and flow whose application starts from the state after that step (a
    /// fork, recorded as its fork parent) instead of the kind's initial state.
    pub async fn rerun(&self, run_id: &str, sequence_id: u64) -> Result<Submitted, QueueError> {
        let source = self.queue.get(run_id).await?;
        let submission = Submission {
            kind: source.kind.clone(),
            inputs: source.inputs.clone(),
            priority: source.priority,
            flow: Some(source.flow.clone()),
            ..Submission::default()
        };
        let mut run = self.prepare(&submission)?;
        run.fork = Some(crate::run::ForkSource {
            run_id: source.id,
            sequence_id,
        });
        self.queue.submit(run).await
    }

    /// Wait until a run is finished (succeeded, failed or cancelled) and return it. It
    /// wakes on the queue's changes (at once in this process, and from other processes
    /// where the backend can tell), looking again at most every half second otherwise.
    pub async fn wait(&self, run_id: &str) -> Result<Run, QueueError> {
        wait(&*self.queue, run_id).await
    }

    /// Add (or replace) a schedule submitting `submission` by `spec`; its first due time
    /// is the first after now.
    pub async fn schedule(
        &self,
        name: &str,
        spec: ScheduleSpec,
        submission: Submission,
    ) -> Result<Schedule, QueueError> {
        if name.is_empty() || name.chars().any(char::is_control) {
            return Err(QueueError::Invalid {
                what: "schedule name",
                value: name.to_owned(),
                problem: "it is empty or holds a control character".to_owned(),
            });
        }
        let run = self.prepare(&submission)?;
        let next_due_us = spec.next_after(name, crate::run::now_us())?;
        let schedule = Schedule {
            name: name.to_owned(),
            spec,
            run,
            next_due_us,
            last_fired_us: None,
        };
        self.queue.put_schedule(&schedule).await?;
        Ok(schedule)
    }
}

/// Every run of `queue` that `filter` selects, newest first, read a page of 500 at a time
/// (`filter`'s own `before_seq` and `limit` are ignored).
pub async fn list_all(queue: &dyn RunQueue, filter: &RunFilter) -> Result<Vec<Run>, QueueError> {
    let mut runs = Vec::new();
    let mut page_filter = RunFilter {
        before_seq: None,
        limit: Some(500),
        ..filter.clone()
    };
    loop {
        let page = queue.list(&page_filter).await?;
        let Some(last) = page.last() else { break };
        page_filter.before_seq = Some(last.seq);
        runs.extend(page);
    }
    Ok(runs)
}

/// Wait until the run `run_id` of `queue` is finished.
pub async fn wait(queue: &dyn RunQueue, run_id: &str) -> Result<Run, QueueError> {
    let mut changes = queue.changes();
    let mut pause = Duration::from_millis(5);
    loop {
        changes.borrow_and_update();
        let run = queue.get(run_id).await?;
        if run.status.is_finished() {
            return Ok(run);
        }
        let _ = tokio::time::timeout(pause, changes.changed()).await;
        pause = (pause * 2).min(MAX_POLL);
    }
}
