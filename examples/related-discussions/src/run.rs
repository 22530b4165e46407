//! Running every meeting of a dataset at once on one shared executor, and what a run
//! reports.
//!
//! The meetings' applications are built in the order given, so the executor admits the
//! children of an earlier meeting before those of a later one (each meeting finishes as
//! soon as it can, instead of all finishing late), and an urgent meeting's children before
//! anyone's.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use burr_core::hooks::{LifecycleHook, StepEnd};
use burr_core::parallel::Executor;
use burr_core::persistence::{Persister, StepStatus};
use burr_core::State;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::app::{self, DiscussionInfo, MeetingInfo, Runtime};
use crate::data::{DataError, Dataset};
use crate::discussion::{self, Related, Settings};
use crate::model::{Embedder, Model};
use crate::past::{PastIndex, PAST_OWNER};

/// The priority of a meeting named by `--urgent`; the others have 0.
pub const URGENT_PRIORITY: i32 = 10;

/// What to report while a run goes on.
#[derive(Clone, Debug, PartialEq)]
pub enum Progress {
    /// A discussion's child application finished (its last checkpoint is saved).
    Related {
        /// The meeting.
        meeting: String,
        /// The discussion.
        discussion: String,
        /// Its title.
        title: String,
        /// Its best related past discussion, if any.
        best: Option<Related>,
    },
    /// A meeting published its summary.
    Published {
        /// The meeting's app id.
        app_id: String,
    },
    /// A step failed (it is checkpointed as failed, and retried on the next run).
    Failed {
        /// The application.
        app_id: String,
        /// The action.
        action: String,
        /// What went wrong.
        error: String,
    },
}

/// Receives [`Progress`] as it happens.
pub type ProgressSink = Arc<dyn Fn(&Progress) + Send + Sync>;

/// How to run.
#[derive(Clone)]
pub struct Options {
    /// How candidates are found and kept.
    pub settings: Settings,
    /// At most this many child steps at once (on the shared executor).
    pub executor_concurrency: usize,
    /// Meetings to run before the others.
    pub urgent: Vec<String>,
    /// Where progress goes.
    pub progress: Option<ProgressSink>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            settings: Settings::default(),
            executor_concurrency: std::thread::available_parallelism().map_or(1, |n| n.get()),
            urgent: Vec::new(),
            progress: None,
        }
    }
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The dataset or the options name something wrong.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The past discussions could not be embedded or loaded.
    #[error("embedding the past discussions failed")]
    Past(#[source] burr_core::Error),
    /// The discussion sub-graph is invalid (a bug).
    #[error("the discussion sub-graph is invalid")]
    Graph(#[source] burr_core::graph::GraphError),
    /// A meeting's application failed.
    #[error("meeting `{meeting}` (app `{app_id}`) failed")]
    Meeting {
        /// The meeting.
        meeting: String,
        /// Its app id.
        app_id: String,
        /// Why.
        #[source]
        source: burr_core::Error,
    },
    /// A meeting's task panicked (a bug).
    #[error("meeting `{meeting}` panicked: {message}")]
    Panicked {
        /// The meeting.
        meeting: String,
        /// The panic.
        message: String,
    },
}

/// What a run did.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Each meeting, in the order given.
    pub meetings: Vec<MeetingReport>,
    /// What this process embedded.
    pub embeddings: Embeddings,
    /// Time spent loading or embedding the past discussions.
    pub past_ms: u64,
    /// Time from the start of the meetings to the end of the last one.
    pub meetings_ms: u64,
}

/// One meeting's outcome.
#[derive(Clone, Debug, Serialize)]
pub struct MeetingReport {
    /// The meeting.
    pub id: String,
    /// Its team (the partition key).
    pub team: String,
    /// Its application id.
    pub app_id: String,
    /// Its priority.
    pub priority: i32,
    /// 1 for the first meeting to finish, 2 for the next...
    pub finished: usize,
    /// When it finished, from the start of the meetings.
    pub finished_after_ms: u64,
    /// Embeddings this process computed for it.
    pub embeddings: usize,
    /// Its discussions, most voted first.
    pub discussions: Vec<DiscussionReport>,
    /// The published summary.
    pub summary: String,
}

/// One discussion's related past discussions.
#[derive(Clone, Debug, Serialize)]
pub struct DiscussionReport {
    /// The discussion.
    pub id: String,
    /// Its title.
    pub title: String,
    /// Its votes.
    pub votes: u32,
    /// Related past discussions, best first.
    pub related: Vec<Related>,
}

/// Embeddings computed by this process.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Embeddings {
    /// All of them.
    pub total: usize,
    /// For the past discussions (2 per discussion, when not loaded from the database).
    pub past: usize,
    /// For the meetings' discussions (2 per discussion: document, then body).
    pub discussions: usize,
    /// By discussion, `<meeting id>/<discussion id>`: discussions not listed were not
    /// embedded by this process.
    pub by_discussion: BTreeMap<String, usize>,
}

impl Report {
    /// The meeting `id`.
    pub fn meeting(&self, id: &str) -> Option<&MeetingReport> {
        self.meetings.iter().find(|m| m.id == id)
    }
}

/// Run every meeting of `data` to the end, resuming each from `persister`: the past
/// discussions' embeddings first (stored once), then the meetings concurrently.
pub async fn run(
    data: &Dataset,
    model: Arc<Model>,
    persister: Arc<dyn Persister>,
    options: &Options,
) -> Result<Report, RunError> {
    for id in &options.urgent {
        data.clone().select(std::slice::from_ref(id))?;
    }
    let embedder = Embedder::new(model);
    let start = Instant::now();
    let past = PastIndex::load_or_embed(&data.past, &embedder, Arc::clone(&persister))
        .await
        .map_err(RunError::Past)?;
    let past_ms = millis(start.elapsed());

    // The map action builds it on first use; a bug in it is reported here, not there.
    discussion::subgraph().map_err(RunError::Graph)?;
    let mut runtime = Runtime {
        persister,
        executor: Executor::new(options.executor_concurrency),
        hooks: Vec::new(),
        embedder: Arc::new(embedder.clone()),
        past: Arc::new(past),
        settings: Arc::new(options.settings.clone()),
    };
    if let Some(sink) = &options.progress {
        runtime.hooks.push(Arc::new(ProgressHook {
            sink: Arc::clone(sink),
        }));
    }

    let start = Instant::now();
    let finished = Arc::new(AtomicUsize::new(0));
    let mut running = Vec::with_capacity(data.meetings.len());
    // Built one after the other, so their start order is the order given.
    for meeting in &data.meetings {
        let app_id = app::app_id(&meeting.id);
        let failed = |source| RunError::Meeting {
            meeting: meeting.id.clone(),
            app_id: app_id.clone(),
            source,
        };
        let priority = if options.urgent.contains(&meeting.id) {
            URGENT_PRIORITY
        } else {
            0
        };
        let mut application = app::build(meeting, &runtime, priority)
            .await
            .map_err(failed)?;
        let (meeting, finished) = (meeting.clone(), Arc::clone(&finished));
        running.push(tokio::spawn(async move {
            let state = app::run(&mut application, &meeting).await;
            let order = finished.fetch_add(1, Ordering::SeqCst) + 1;
            (state, order, start.elapsed(), priority)
        }));
    }
    let mut outcomes = Vec::with_capacity(running.len());
    for handle in running {
        outcomes.push(handle.await);
    }
    let meetings_ms = millis(start.elapsed());

    let by_owner = embedder.by_owner();
    let mut meetings = Vec::with_capacity(outcomes.len());
    for (meeting, outcome) in data.meetings.iter().zip(outcomes) {
        let app_id = app::app_id(&meeting.id);
        let failed = |source| RunError::Meeting {
            meeting: meeting.id.clone(),
            app_id: app_id.clone(),
            source,
        };
        let (state, order, after, priority) = outcome.map_err(|join| RunError::Panicked {
            meeting: meeting.id.clone(),
            message: join.to_string(),
        })?;
        let state = state.map_err(failed)?;
        let prefix = format!("{}/", meeting.id);
        let embeddings = by_owner
            .iter()
            .filter(|(owner, _)| owner.starts_with(&prefix))
            .map(|(_, n)| n)
            .sum();
        meetings.push(
            meeting_report(&state, app_id.clone(), priority, order, after, embeddings)
                .map_err(|e| failed(e.into()))?,
        );
    }
    let past_count = by_owner.get(PAST_OWNER).copied().unwrap_or(0);
    let by_discussion: BTreeMap<String, usize> = by_owner
        .into_iter()
        .filter(|(owner, _)| owner != PAST_OWNER)
        .collect();
    Ok(Report {
        meetings,
        embeddings: Embeddings {
            total: embedder.total(),
            past: past_count,
            discussions: by_discussion.values().sum(),
            by_discussion,
        },
        past_ms,
        meetings_ms,
    })
}

fn meeting_report(
    state: &State,
    app_id: String,
    priority: i32,
    finished: usize,
    after: Duration,
    embeddings: usize,
) -> Result<MeetingReport, burr_core::state::StateError> {
    let meeting: MeetingInfo = state.get("meeting")?;
    let discussions: Vec<DiscussionInfo> = state.get("discussions")?;
    let mut related: Map<String, Value> = state.get("related")?;
    let discussions = discussions
        .into_iter()
        .map(|d| {
            let found = related
                .remove(&d.id)
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default();
            DiscussionReport {
                id: d.id,
                title: d.title,
                votes: d.votes,
                related: found,
            }
        })
        .collect();
    Ok(MeetingReport {
        id: meeting.id,
        team: meeting.team,
        app_id,
        priority,
        finished,
        finished_after_ms: millis(after),
        embeddings,
        discussions,
        summary: state.get("summary")?,
    })
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Turns finished steps into [`Progress`]. Hooks run after the step's checkpoint is
/// saved, so what it reports survives a crash.
struct ProgressHook {
    sink: ProgressSink,
}

impl LifecycleHook for ProgressHook {
    fn post_run_step(&self, event: &StepEnd<'_>) {
        let progress = match (event.status, event.action) {
            (StepStatus::Completed, action) if action == discussion::Rerank.name() => {
                let get = |key| event.state.get::<String>(key).unwrap_or_default();
                let best = event
                    .state
                    .get::<Vec<Related>>("related")
                    .ok()
                    .and_then(|r| r.into_iter().next());
                Progress::Related {
                    meeting: get("meeting_id"),
                    discussion: get("discussion_id"),
                    title: get("title"),
                    best,
                }
            }
            (StepStatus::Completed, action) if action == app::Publish.name() => {
                Progress::Published {
                    app_id: event.ids.app_id.to_string(),
                }
            }
            (StepStatus::Failed, action) => Progress::Failed {
                app_id: event.ids.app_id.to_string(),
                action: action.to_owned(),
                error: event.error.map(ToString::to_string).unwrap_or_default(),
            },
            _ => return,
        };
        (self.sink)(&progress);
    }
}
