//! Running every meeting of a dataset at once on one shared executor, and what a run
//! reports: what was related, what was embedded and what was found stored, and — on a
//! labelled dataset — the theme hit rates.
//!
//! The meetings' applications are built in the order given (oldest first), so the
//! executor admits the children of an earlier meeting before those of a later one (each
//! meeting finishes as soon as it can, instead of all finishing late), and an urgent
//! meeting's children before anyone's. Every embedding of every child goes through one
//! shared store and batcher.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use burr_core::hooks::{LifecycleHook, StepEnd};
use burr_core::parallel::Executor;
use burr_core::persistence::{Persister, SqlitePersister, StepStatus};
use burr_core::State;
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::app::{self, DiscussionInfo, MeetingInfo, Runtime};
use crate::batcher::BatchConfig;
use crate::data::{body_text, document_text, DataError, Dataset};
use crate::discussion::{self, Related, Settings};
use crate::index::{Past, PastIndex, Timeline};
use crate::model::Model;
use crate::rerank::{Reembed, Reranker, Reranking};
use crate::store::{hex, EmbeddingStore, StoreError};

/// The priority of a meeting named by `--urgent`; the others have 0.
pub const URGENT_PRIORITY: i32 = 10;

/// What to report while a run goes on.
#[derive(Clone, Debug, PartialEq)]
pub enum Progress {
    /// The run starts: how many meetings and discussions it covers.
    Started {
        /// Meetings.
        meetings: usize,
        /// Their discussions.
        discussions: usize,
        /// Of those, already related in the database (nothing to do).
        done: usize,
    },
    /// A discussion's `embed` child finished.
    Embedded {
        /// The meeting.
        meeting: String,
        /// The discussion.
        discussion: String,
    },
    /// A discussion's `relate` child finished (its last checkpoint is saved).
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
    /// Only these meetings (all when empty); the others still count as past.
    pub meetings: Vec<String>,
    /// At most this many child steps at once (on the shared executor).
    pub executor_concurrency: usize,
    /// How embedding requests are batched.
    pub batch: BatchConfig,
    /// Meetings to run before the others.
    pub urgent: Vec<String>,
    /// Record every step with a tracker in the same database.
    pub track: bool,
    /// Where progress goes.
    pub progress: Option<ProgressSink>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            settings: Settings::default(),
            meetings: Vec::new(),
            executor_concurrency: 1024,
            batch: BatchConfig::default(),
            urgent: Vec::new(),
            track: true,
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
    /// The checkpoint database cannot be opened.
    #[error("cannot open the checkpoint database {path}")]
    Open {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: burr_core::persistence::PersistenceError,
    },
    /// The tracker cannot be opened.
    #[error("cannot open the tracker in {path}")]
    Tracker {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: burr_tracker::TrackerError,
    },
    /// The embedding store cannot be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A sub-graph is invalid (a bug).
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
    /// Each meeting run, in the order given.
    pub meetings: Vec<MeetingReport>,
    /// Texts the model embedded in this run (each at most once).
    pub embedded: usize,
    /// Texts the discussions' `embed` children asked for and found stored or under way.
    pub reused: usize,
    /// Discussions reranked in this run (the others were related by an earlier run).
    pub reranked: usize,
    /// Model calls (batches) in this run.
    pub batches: usize,
    /// Time spent in the model in this run.
    pub model_ms: u64,
    /// Vectors of this model in the database after the run.
    pub stored: usize,
    /// Theme hit rates, when the dataset is labelled.
    pub quality: Option<Quality>,
    /// Time from the start of the meetings to the end of the last one.
    pub meetings_ms: u64,
}

/// How often the related past discussions share the discussion's theme.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Quality {
    /// Discussions evaluated: labelled, with at least one past discussion of their theme.
    pub evaluated: usize,
    /// Of those, how many have a related discussion of their theme first.
    pub top1_hits: usize,
    /// Of those, how many have one among the first three.
    pub top3_hits: usize,
    /// `top1_hits / evaluated`.
    pub top1: f64,
    /// `top3_hits / evaluated`.
    pub top3: f64,
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
    /// Texts its `embed` children had embedded (when they ran).
    pub embedded: usize,
    /// Texts its `embed` children found stored or under way.
    pub reused: usize,
    /// Past discussions it was related against.
    pub past: usize,
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

impl Report {
    /// The meeting `id`.
    pub fn meeting(&self, id: &str) -> Option<&MeetingReport> {
        self.meetings.iter().find(|m| m.id == id)
    }
}

/// The fingerprint of a meeting's results: everything they depend on (the settings, the
/// reranker, the model version, the meeting's discussions and every row of its past).
pub fn fingerprint(
    timeline: &Timeline,
    meeting: &crate::data::Meeting,
    settings: &Settings,
    reranker: &dyn Reranker,
    model_version: &str,
) -> String {
    let mut h = Sha256::new();
    for part in [
        settings.fingerprint(),
        reranker.name(),
        model_version.to_owned(),
        meeting.header(),
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    for d in &meeting.discussions {
        for part in [&d.id, &d.title, &d.notes] {
            h.update(part.as_bytes());
            h.update([0]);
        }
    }
    let past = timeline.past_of(&meeting.id);
    // A meeting of the timeline: its past is there.
    for e in timeline.past_entries(&past).unwrap_or_default() {
        h.update(e.id.as_bytes());
        h.update([0]);
        h.update(e.document().as_bytes());
        h.update(body_text(&e.title, &e.notes).as_bytes());
        h.update([0]);
    }
    hex(&h.finalize()[..4])
}

/// Run the meetings of `data` (those in `options.meetings`, or all) to the end,
/// checkpointed to and resumed from the SQLite file `db`, with `model`.
pub async fn run(
    data: &Dataset,
    model: Arc<Model>,
    db: &Path,
    options: &Options,
) -> Result<Report, RunError> {
    let selected = data.clone().select(&options.meetings)?;
    for id in &options.urgent {
        selected.clone().select(std::slice::from_ref(id))?;
    }
    let path = db.display().to_string();
    let sqlite = SqlitePersister::open(db).map_err(|source| RunError::Open {
        path: path.clone(),
        source,
    })?;
    let tracker = if options.track {
        Some(
            burr_tracker::Tracker::open(db).map_err(|source| RunError::Tracker {
                path: path.clone(),
                source,
            })?,
        )
    } else {
        None
    };
    let store = EmbeddingStore::open(&sqlite, Arc::clone(&model), options.batch);
    let persister: Arc<dyn Persister> = Arc::new(sqlite);
    let timeline = Timeline::new(data);
    let reranker: Box<dyn Reranker> = Box::new(Reembed::new(store.clone()));

    // The map actions build them on first use; a bug in them is reported here.
    discussion::embed_subgraph().map_err(RunError::Graph)?;
    discussion::relate_subgraph().map_err(RunError::Graph)?;

    let reranked = Arc::new(AtomicUsize::new(0));
    let mut runtime = Runtime {
        persister,
        executor: Executor::new(options.executor_concurrency),
        hooks: Vec::new(),
        tracker: tracker.as_ref().map(burr_tracker::Tracker::hook),
        store: Arc::new(store.clone()),
        index: Arc::new(PastIndex::new(timeline.clone())),
        reranker: Arc::new(Reranking(reranker)),
        settings: Arc::new(options.settings.clone()),
    };
    runtime.hooks.push(Arc::new(ProgressHook {
        sink: options.progress.clone(),
        reranked: Arc::clone(&reranked),
    }));

    let start = Instant::now();
    let batches_before = store.batcher().stats().batches.load(Ordering::Relaxed);
    let model_us_before = store.batcher().stats().model_us.load(Ordering::Relaxed);
    let finished = Arc::new(AtomicUsize::new(0));
    let mut running = Vec::with_capacity(selected.meetings.len());
    let mut done = 0;
    // Built one after the other, so their start order is the order given.
    for meeting in &selected.meetings {
        let fp = fingerprint(
            &timeline,
            meeting,
            &options.settings,
            runtime.reranker.0.as_ref(),
            model.version(),
        );
        let app_id = app::app_id(&meeting.id, &fp);
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
        let mut application = app::build(meeting, &app_id, &runtime, priority)
            .await
            .map_err(failed)?;
        if application.state().get::<String>("summary").is_ok() {
            done += meeting.discussions.len();
        }
        let (meeting, finished) = (meeting.clone(), Arc::clone(&finished));
        running.push((
            app_id,
            tokio::spawn(async move {
                let state = app::run(&mut application, &meeting).await;
                let order = finished.fetch_add(1, Ordering::SeqCst) + 1;
                (state, order, start.elapsed(), priority)
            }),
        ));
    }
    if let Some(sink) = &options.progress {
        sink(&Progress::Started {
            meetings: selected.meetings.len(),
            discussions: selected.meetings.iter().map(|m| m.discussions.len()).sum(),
            done,
        });
    }
    let mut outcomes = Vec::with_capacity(running.len());
    for (app_id, handle) in running {
        outcomes.push((app_id, handle.await));
    }
    let meetings_ms = millis(start.elapsed());
    if let Some(tracker) = &tracker {
        // Everything recorded is in the database before the run reports.
        tracker.flush().map_err(|source| RunError::Tracker {
            path: path.clone(),
            source,
        })?;
    }

    let mut meetings = Vec::with_capacity(outcomes.len());
    for (meeting, (app_id, outcome)) in selected.meetings.iter().zip(outcomes) {
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
        meetings.push(
            meeting_report(&state, app_id.clone(), priority, order, after)
                .map_err(|e| failed(e.into()))?,
        );
    }
    let quality = quality(&timeline, &meetings);
    Ok(Report {
        meetings,
        embedded: store.embedded(),
        reused: store.reused(),
        reranked: reranked.load(Ordering::Relaxed),
        batches: store.batcher().stats().batches.load(Ordering::Relaxed) - batches_before,
        model_ms: (store.batcher().stats().model_us.load(Ordering::Relaxed) - model_us_before)
            as u64
            / 1000,
        stored: store.stored().await?,
        quality,
        meetings_ms,
    })
}

/// The theme hit rates of what was published, over the labelled discussions whose past
/// holds at least one discussion of their theme; `None` when there are none.
pub fn quality(timeline: &Timeline, meetings: &[MeetingReport]) -> Option<Quality> {
    let theme_of: BTreeMap<&str, &str> = timeline
        .entries
        .iter()
        .filter_map(|e| Some((e.id.as_str(), e.theme.as_deref()?)))
        .collect();
    let (mut evaluated, mut top1_hits, mut top3_hits) = (0, 0, 0);
    for m in meetings {
        let past = timeline
            .past_entries(&timeline.past_of(&m.id))
            .unwrap_or_default();
        for d in &m.discussions {
            let Some(&theme) = theme_of.get(format!("{}/{}", m.id, d.id).as_str()) else {
                continue;
            };
            if !past.iter().any(|e| e.theme.as_deref() == Some(theme)) {
                continue;
            }
            evaluated += 1;
            let hit = |r: &Related| theme_of.get(r.id.as_str()) == Some(&theme);
            if d.related.first().is_some_and(hit) {
                top1_hits += 1;
            }
            if d.related.iter().take(3).any(hit) {
                top3_hits += 1;
            }
        }
    }
    (evaluated > 0).then(|| Quality {
        evaluated,
        top1_hits,
        top3_hits,
        top1: top1_hits as f64 / evaluated as f64,
        top3: top3_hits as f64 / evaluated as f64,
    })
}

fn meeting_report(
    state: &State,
    app_id: String,
    priority: i32,
    finished: usize,
    after: Duration,
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
        embedded: state.get("embedded")?,
        reused: state.get("reused")?,
        // The one-shot mode's meetings are the dataset's: their past is a prefix.
        past: state.get::<Past>("past")?.rows,
        discussions,
        summary: state.get("summary")?,
    })
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Turns finished steps into [`Progress`], and counts reranks. Hooks run after the
/// step's checkpoint is saved, so what it reports survives a crash.
struct ProgressHook {
    sink: Option<ProgressSink>,
    reranked: Arc<AtomicUsize>,
}

impl LifecycleHook for ProgressHook {
    fn post_run_step(&self, event: &StepEnd<'_>) {
        let get = |key| event.state.get::<String>(key).unwrap_or_default();
        let progress = match (event.status, event.action) {
            (StepStatus::Completed, action) if action == discussion::Embed.name() => {
                Progress::Embedded {
                    meeting: get("meeting_id"),
                    discussion: get("discussion_id"),
                }
            }
            (StepStatus::Completed, action) if action == discussion::Rerank.name() => {
                self.reranked.fetch_add(1, Ordering::Relaxed);
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
        if let Some(sink) = &self.sink {
            sink(&progress);
        }
    }
}

/// The text a discussion's document is embedded from (re-exported for tests counting
/// through the store).
pub fn document_of(header: &str, title: &str, notes: &str) -> String {
    document_text(header, title, notes)
}
