//! A run: an application started through the run queue, and what the queue keeps of it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The queue a kind runs on when it names none.
pub const DEFAULT_QUEUE: &str = "default";

/// Where a run stands.
#[cfg_attr(feature = "http", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Waiting for a worker (or for its not-before time).
    Queued,
    /// A worker holds its lease and runs it.
    Running,
    /// Its application reached the end of its graph.
    Succeeded,
    /// Its application failed, or it was abandoned after too many attempts.
    Failed,
    /// Cancelled before it finished.
    Cancelled,
}

impl RunStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [RunStatus; 5] = [
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Cancelled,
    ];

    /// The status as stored and printed: `queued`, `running`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    /// The status named `text`, if any.
    pub fn parse(text: &str) -> Option<RunStatus> {
        RunStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether the run is over (succeeded, failed or cancelled).
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled
        )
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A run as the queue keeps it. Times are microseconds since the Unix epoch.
#[cfg_attr(feature = "http", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// The run id, which is also its application's app id.
    pub id: String,
    /// Its submission order in the queue's database (smaller: earlier).
    pub seq: i64,
    /// Its kind.
    pub kind: String,
    /// The version of its kind it was submitted for.
    pub kind_version: u32,
    /// The queue it runs on.
    pub queue: String,
    /// The inputs its kind's factory builds the application from.
    #[cfg_attr(feature = "http", schema(value_type = Value))]
    pub inputs: Value,
    /// Higher runs first.
    pub priority: i32,
    /// The flow it belongs to (a job chain; by default the run itself).
    pub flow: String,
    /// When its flow started: the submission of the flow's first run. Among equal
    /// priorities, earlier flows run first.
    pub flow_started_at_us: i64,
    /// It is not claimed before this time.
    pub not_before_us: i64,
    /// Submitting its kind again with this key returns this run.
    pub idempotency_key: Option<String>,
    /// At most `concurrency_limit` runs with this key run at once.
    pub concurrency_key: Option<String>,
    /// See `concurrency_key`.
    pub concurrency_limit: Option<u32>,
    /// Where it stands.
    pub status: RunStatus,
    /// How many times a worker claimed it (0 while never claimed).
    pub attempt: u32,
    /// A run claimed this many times without finishing is failed, not claimed again.
    pub max_attempts: u32,
    /// The worker holding its lease, while running.
    pub lease_holder: Option<String>,
    /// When the lease expires unless renewed.
    pub lease_expires_at_us: Option<i64>,
    /// The last heartbeat of its worker.
    pub heartbeat_at_us: Option<i64>,
    /// A cancel was asked while it ran; its worker stops it.
    pub cancel_requested: bool,
    /// When it was submitted.
    pub submitted_at_us: i64,
    /// When a worker first claimed it.
    pub started_at_us: Option<i64>,
    /// When it finished.
    pub finished_at_us: Option<i64>,
    /// When its row last changed.
    pub updated_at_us: i64,
    /// Why it failed: the error, then its causes.
    pub error: Option<Vec<String>>,
    /// What it produced (its kind's summary of the final state), when it succeeded.
    #[cfg_attr(feature = "http", schema(value_type = Option<Value>))]
    pub result: Option<Value>,
    /// The run it was forked from (a rerun from a step), when it was.
    pub fork: Option<ForkSource>,
    /// The code that finished it: the application version
    /// (`ApplicationBuilder::with_version`) and the graph's fingerprint its last attempt
    /// built the application under. `None` until then (and when no attempt could build
    /// it); while it runs, its application's record holds the code of the attempt
    /// running it.
    #[serde(default)]
    pub code: Option<RunCode>,
}

/// The code an attempt of a run built its application under.
#[cfg_attr(feature = "http", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCode {
    /// The application's version, when its kind gives one.
    pub version: Option<String>,
    /// The graph's fingerprint (see `burr_core::graph::GraphDescription::fingerprint`).
    pub fingerprint: String,
}

/// Where a rerun starts: the state of another run's application after one of its steps.
#[cfg_attr(feature = "http", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForkSource {
    /// The run (application) forked from.
    pub run_id: String,
    /// The sequence id whose state the new run starts from.
    pub sequence_id: u64,
}

/// A run to enqueue, as the [`RunQueue`](crate::queue::RunQueue) takes it. Users submit
/// through [`Runs::submit`](crate::Runs::submit), which checks the kind and the inputs
/// and fills this in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewRun {
    /// The run id (a new UUID when `None`).
    pub id: Option<String>,
    /// Its kind.
    pub kind: String,
    /// Its kind's version.
    pub kind_version: u32,
    /// The queue it runs on.
    pub queue: String,
    /// Its inputs (already checked against the kind).
    pub inputs: Value,
    /// Higher runs first.
    pub priority: i32,
    /// The flow it belongs to (the run itself when `None`).
    pub flow: Option<String>,
    /// Not claimed before this time (now when `None`).
    pub not_before_us: Option<i64>,
    /// Submitting the same kind with the same key again returns the existing run.
    pub idempotency_key: Option<String>,
    /// At most `limit` runs with `key` run at once.
    pub concurrency: Option<ConcurrencyLimit>,
    /// Claims before the run is given up.
    pub max_attempts: u32,
    /// Start from another run's state after one of its steps (a rerun), not from the
    /// kind's initial state.
    pub fork: Option<ForkSource>,
}

/// At most `limit` runs with the same `key` run at once (e.g. per organisation), so that
/// one tenant cannot starve the others.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConcurrencyLimit {
    /// What the runs share (e.g. `org:acme`).
    pub key: String,
    /// How many of them may run at once (at least 1).
    pub limit: u32,
}

/// What [`RunQueue::submit`](crate::queue::RunQueue::submit) returns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Submitted {
    /// The run.
    pub run: Run,
    /// `false` when the idempotency key named an existing run, which is returned.
    pub created: bool,
}

/// Which runs [`RunQueue::list`](crate::queue::RunQueue::list) returns, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// Only runs with this status.
    pub status: Option<RunStatus>,
    /// Only runs of this kind.
    pub kind: Option<String>,
    /// Only runs of this flow.
    pub flow: Option<String>,
    /// Only runs submitted before the run with this `seq` (a cursor: the last `seq` of the
    /// previous page).
    pub before_seq: Option<i64>,
    /// At most this many (default 100).
    pub limit: Option<u32>,
}

/// How a worker finished a run.
#[derive(Clone, Debug, PartialEq)]
pub enum Finish {
    /// The application reached the end of its graph; its kind's summary.
    Succeeded(Value),
    /// The application failed: the error and its causes.
    Failed(Vec<String>),
    /// It stopped because it was cancelled.
    Cancelled,
}

/// The queue's backlog: counts of runs by kind, priority and status.
#[cfg_attr(feature = "http", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Backlog {
    /// One row per (kind, priority, status) with runs.
    pub rows: Vec<BacklogRow>,
    /// How long the oldest ready queued run has waited, in microseconds (0: none waits).
    pub oldest_waiting_us: i64,
}

/// Runs of one kind, priority and status.
#[cfg_attr(feature = "http", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BacklogRow {
    /// The kind.
    pub kind: String,
    /// The queue.
    pub queue: String,
    /// The priority.
    pub priority: i32,
    /// The status.
    pub status: RunStatus,
    /// How many.
    pub count: u64,
}

/// Why a run waits ([`RunQueue::explain`](crate::queue::RunQueue::explain)).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// The run.
    pub run: Run,
    /// For a queued run: how many ready runs of its queue a worker claims before it.
    pub position: Option<u64>,
    /// The first of those (at most 10), in claim order.
    pub ahead: Vec<Run>,
    /// Runs of its queue running now.
    pub running_in_queue: u64,
    /// The concurrency of the live workers serving its queue (0: no worker serves it).
    pub worker_slots: u64,
    /// Runs with its concurrency key running now (when it has one).
    pub running_with_key: Option<u64>,
    /// Plain sentences, for people.
    pub reasons: Vec<String>,
}

impl Explanation {
    /// The explanation of `run` from the figures a backend gathered (`position` and
    /// `ahead` for a queued run), with its reasons in plain sentences, at `now`.
    pub(crate) fn new(
        run: Run,
        position: Option<u64>,
        ahead: Vec<Run>,
        running_in_queue: u64,
        worker_slots: u64,
        running_with_key: Option<u64>,
        now: i64,
    ) -> Self {
        let mut reasons = Vec::new();
        match run.status {
            RunStatus::Queued => {
                if run.not_before_us > now {
                    reasons.push(format!(
                        "it is scheduled: no worker claims it for another {:.1} s",
                        (run.not_before_us - now) as f64 / 1e6
                    ));
                }
                if let Some(n) = position.filter(|&n| n > 0) {
                    reasons.push(format!(
                        "{n} ready run(s) of queue `{}` come before it (higher priority, earlier flow, or earlier submission)",
                        run.queue
                    ));
                }
                if worker_slots == 0 {
                    reasons.push(format!("no live worker serves queue `{}`", run.queue));
                } else if running_in_queue >= worker_slots {
                    reasons.push(format!(
                        "the workers of queue `{}` are busy: {running_in_queue} running, {worker_slots} slots",
                        run.queue
                    ));
                }
                if let (Some(running), Some(limit), Some(key)) = (
                    running_with_key,
                    run.concurrency_limit,
                    &run.concurrency_key,
                ) {
                    if running >= u64::from(limit) {
                        reasons.push(format!(
                            "concurrency key `{key}` is at its limit: {running} of {limit} running"
                        ));
                    }
                }
                if reasons.is_empty() {
                    reasons.push("it is next: a worker claims it at its next look".to_owned());
                }
            }
            RunStatus::Running => reasons.push(format!(
                "it is running (attempt {}, worker `{}`)",
                run.attempt,
                run.lease_holder.as_deref().unwrap_or("?")
            )),
            status => reasons.push(format!("it is {status}: it waits for nothing")),
        }
        Explanation {
            run,
            position,
            ahead,
            running_in_queue,
            worker_slots,
            running_with_key,
            reasons,
        }
    }
}

/// A worker's view of one held run, as [`RunQueue::heartbeat`](crate::queue::RunQueue::heartbeat) reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeartbeatReport {
    /// Runs this worker held whose lease another worker has taken (or which are gone):
    /// stop them, they are fenced.
    pub lost: Vec<String>,
    /// Runs this worker holds that were asked to cancel.
    pub cancel: Vec<String>,
}

/// What a worker asks of [`RunQueue::claim`](crate::queue::RunQueue::claim).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The worker (unique per worker process).
    pub worker: String,
    /// The queues it serves.
    pub queues: Vec<String>,
    /// The (kind, version) pairs it can run.
    pub kinds: Vec<(String, u32)>,
    /// At most this many runs.
    pub limit: usize,
    /// The lease's time to live, in microseconds.
    pub lease_ttl_us: i64,
}

/// A worker's record: who serves which queues (for [`explain`](crate::queue::RunQueue::explain)).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// The worker id.
    pub id: String,
    /// Its host.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// Its machine as [`ProcessIdentity::machine`](burr_core::persistence::ProcessIdentity)
    /// tells it (`""`: unknown): with `pid` and `pid_started`, how a worker on the same
    /// machine tells that this one's process is gone and takes its runs back at once.
    #[serde(default)]
    pub machine: String,
    /// Its process's start time (see `machine`).
    #[serde(default)]
    pub pid_started: Option<i64>,
    /// The queues it serves.
    pub queues: Vec<String>,
    /// How many runs it runs at once.
    pub concurrency: u32,
    /// Its last heartbeat.
    pub heartbeat_at_us: i64,
}

/// Microseconds since the Unix epoch, now.
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}
