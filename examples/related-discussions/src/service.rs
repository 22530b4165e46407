//! The example as a service (`related-discussions serve`): its kinds of run on
//! the framework's run queue, served with the HTTP API and the web UI by burr-server.
//!
//! - `meeting` ("voting ended"): inputs `{"meeting": ID, "force": false}`, submitted
//!   with the meeting id as idempotency key (a repeated event starts nothing new) and
//!   the meeting's urgency as priority. The meeting application of the one-shot mode
//!   ([`crate::app`]): a child per discussion, which inherits the run's priority and flow
//!   on the executor. Each discussion's related list is announced (a run event
//!   `announced`, name `related`, in the UI and the SSE stream) as soon as its child's
//!   last step is checkpointed.
//! - `ad-hoc`: inputs `{"text": …}`, "related discussions for this text, now": always at
//!   [`AD_HOC_PRIORITY`], over the past discussions indexed so far. It shares the
//!   process's store: a text a meeting is embedding is waited for, not embedded again.
//! - `backfill`: inputs `{"force": false, "chunk": 32}`: embeds every discussion of the
//!   dataset into the store and the index, a child per chunk, always at
//!   [`BACKFILL_PRIORITY`]: the executor admits meeting and ad-hoc children first, so a
//!   backfill yields to them at its next child boundary.
//!
//! `force: true` re-embeds even what is stored (see
//! [`EmbeddingStore::refresh_many_at`]).

use std::path::Path;
use std::sync::Arc;

use burr_core::actions::{Action, ActionExt};
use burr_core::cache::{Cache, SqliteCache};
use burr_core::graph::GraphBuilder;
use burr_core::hooks::{LifecycleHook, StepEnd};
use burr_core::map_states;
use burr_core::parallel::SubGraph;
use burr_core::persistence::{Persister, SqlitePersister, StepStatus};
use burr_core::prelude::*;
use burr_server::{
    Announcer, BoxError, InputProblem, Kind, QueueError, Registry, RunFilter, RunInfo, RunQueue,
    RunStatus,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::app::{self, Publish, VotingEnded};
use crate::batcher::BatchConfig;
use crate::data::{Dataset, Meeting};
use crate::discussion::{self, Candidate, Force, Related, Settings, Urgency};
use crate::index::{PastIndex, Timeline};
use crate::model::Model;
use crate::rerank::{Query, Reembed, Reranker, Reranking};
use crate::store::EmbeddingStore;

/// The priority of every ad-hoc query: above any meeting's urgency.
pub const AD_HOC_PRIORITY: i32 = 1_000_000;

/// The priority of every backfill: below any meeting's urgency.
pub const BACKFILL_PRIORITY: i32 = -1_000_000;

/// Why the service cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The dataset is invalid.
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    /// The database cannot be opened.
    #[error("cannot open the database {path}")]
    Open {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: burr_core::persistence::PersistenceError,
    },
    /// A sub-graph is invalid (a bug).
    #[error("a sub-graph of the service is invalid")]
    Graph(#[source] burr_core::graph::GraphError),
}

/// Why [`Service::restore`] could not restore the past.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The run queue could not be read.
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// A meeting run's last checkpoint could not be read.
    #[error("cannot read the last checkpoint of meeting run `{run_id}`")]
    Load {
        /// The run.
        run_id: String,
        /// Why.
        #[source]
        source: burr_core::persistence::PersistenceError,
    },
}

/// What the kinds share: the dataset's timeline and index, the store, the reranker and
/// the settings, one of each for the process.
#[derive(Clone)]
pub struct Service {
    /// The meetings the service knows (a `meeting` run names one).
    pub data: Arc<Dataset>,
    /// The embedding store (and its batcher).
    pub store: Arc<EmbeddingStore>,
    /// The past discussions, searchable.
    pub index: Arc<PastIndex>,
    /// The second stage.
    pub reranker: Arc<Reranking>,
    /// How candidates are found and kept.
    pub settings: Arc<Settings>,
}

impl Service {
    /// The service of `data` on the SQLite file `db` (its store in the file's cache
    /// table), embedding with `model` through a batcher set by `batch`.
    pub fn open(
        db: &Path,
        data: Dataset,
        model: Arc<Model>,
        settings: Settings,
        batch: BatchConfig,
    ) -> Result<Service, ServiceError> {
        let sqlite = SqlitePersister::open(db).map_err(|source| ServiceError::Open {
            path: db.display().to_string(),
            source,
        })?;
        let cache = Cache::new(SqliteCache::from_persister(&sqlite));
        Service::new(cache, data, model, settings, batch)
    }

    /// The service of `data` with its store in `cache` (the work cache of the database
    /// the runs are in: burr-server's `Backend::cache`, SQLite or PostgreSQL), embedding
    /// with `model` through a batcher set by `batch`.
    pub fn new(
        cache: Cache,
        data: Dataset,
        model: Arc<Model>,
        settings: Settings,
        batch: BatchConfig,
    ) -> Result<Service, ServiceError> {
        data.validate()?;
        let store = EmbeddingStore::new(cache, model, batch);
        let timeline = Timeline::new(&data);
        let reranker: Box<dyn Reranker> = Box::new(Reembed::new(store.clone()));
        discussion::embed_subgraph().map_err(ServiceError::Graph)?;
        discussion::relate_subgraph().map_err(ServiceError::Graph)?;
        backfill_subgraph().map_err(ServiceError::Graph)?;
        Ok(Service {
            data: Arc::new(data),
            store: Arc::new(store),
            index: Arc::new(PastIndex::new(timeline)),
            reranker: Arc::new(Reranking(reranker)),
            settings: Arc::new(settings),
        })
    }

    /// The registry of the three kinds, sharing this service, and of the meeting
    /// applications the one-shot mode starts by hand (app ids `meeting-…`): what
    /// `check` judges.
    pub fn registry(&self) -> Registry {
        Registry::new()
            .register(MeetingKind(self.clone()))
            .register(AdHocKind(self.clone()))
            .register(BackfillKind(self.clone()))
            .register_apps(app::APP_ID_PREFIX, |_| {
                Ok(app::graph(ApplicationBuilder::new(), Arc::new(VotingEnded)))
            })
    }

    /// Add to the past the meetings that "voting ended" events brought and that
    /// published: `meeting` runs with the meeting in their inputs that succeeded, or
    /// whose last checkpoint in `persister` is a completed `publish` (a process that
    /// stopped between the two). What a restarted service's later meetings search, as
    /// before the restart: a meeting that resumes searches the meetings its checkpointed
    /// [`Past`](crate::index::Past) names, in whatever order they come back. Returns how
    /// many joined. Their vectors come from the store when a search needs them: nothing
    /// is embedded again.
    pub async fn restore(
        &self,
        queue: &dyn RunQueue,
        persister: &dyn Persister,
    ) -> Result<usize, RestoreError> {
        let mut found = Vec::new();
        for status in [RunStatus::Succeeded, RunStatus::Running, RunStatus::Queued] {
            let filter = RunFilter {
                status: Some(status),
                kind: Some("meeting".to_owned()),
                ..RunFilter::default()
            };
            for run in burr_server::list_all(queue, &filter).await? {
                let Ok(MeetingEvent {
                    meeting: MeetingRef::Meeting(meeting),
                    ..
                }) = serde_json::from_value::<MeetingEvent>(run.inputs.clone())
                else {
                    continue;
                };
                let published = status == RunStatus::Succeeded
                    || persister
                        .load(None, &run.id, None)
                        .await
                        .map_err(|source| RestoreError::Load {
                            run_id: run.id.clone(),
                            source,
                        })?
                        .is_some_and(|c| {
                            c.position == Publish.name() && c.status == StepStatus::Completed
                        });
                if published {
                    let finished = run.finished_at_us.unwrap_or(i64::MAX);
                    found.push((finished, run.seq, meeting));
                }
            }
        }
        // In the order they finished: most likely the order they joined in before.
        found.sort_by_key(|(at, seq, _)| (*at, *seq));
        let joined = found
            .iter()
            .filter(|(_, _, meeting)| self.index.join(meeting))
            .count();
        Ok(joined)
    }

    /// A builder with the shared resources, `urgency` and `force`.
    fn builder(&self, urgency: i32, force: bool) -> ApplicationBuilder {
        ApplicationBuilder::new()
            .with_resource(Arc::clone(&self.store))
            .with_resource(Arc::clone(&self.index))
            .with_resource(Arc::clone(&self.reranker))
            .with_resource(Arc::clone(&self.settings))
            .with_resource(Arc::new(Urgency(urgency)))
            .with_resource(Arc::new(Force(force)))
    }
}

/// A `meeting` run's inputs: its voting ended.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MeetingEvent {
    /// The meeting whose voting ended: the id of a meeting of the service's dataset, or
    /// the meeting itself (id, team, title, date, discussions), as a voting tool would
    /// send it.
    pub meeting: MeetingRef,
    /// Re-embed its discussions even when they are stored.
    #[serde(default)]
    pub force: bool,
}

/// The meeting of a [`MeetingEvent`].
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum MeetingRef {
    /// A meeting of the service's dataset, by id.
    Id(String),
    /// A new meeting, with its discussions. Its past is every discussion the service
    /// knows when it starts; once it finishes, its discussions are the past of later
    /// meetings (and stay so after a restart).
    Meeting(Meeting),
}

impl MeetingRef {
    /// The meeting's id.
    pub fn id(&self) -> &str {
        match self {
            MeetingRef::Id(id) => id,
            MeetingRef::Meeting(meeting) => &meeting.id,
        }
    }
}

/// The `meeting` kind.
pub struct MeetingKind(pub Service);

impl MeetingKind {
    /// The meeting `inputs` name, or what is wrong with it (the field, and why).
    fn meeting(&self, inputs: &MeetingEvent) -> Result<Meeting, InputProblem> {
        let problem = |field: &str, message: String| InputProblem {
            field: field.to_owned(),
            message,
        };
        match &inputs.meeting {
            MeetingRef::Id(id) => self
                .0
                .data
                .meetings
                .iter()
                .find(|m| m.id == *id)
                .cloned()
                .ok_or_else(|| {
                    problem(
                        "meeting",
                        format!(
                            "no meeting `{id}` in the service's dataset (known: {}); send the meeting itself to relate a new one",
                            self.0.data.meeting_ids().join(", ")
                        ),
                    )
                }),
            MeetingRef::Meeting(meeting) => {
                let alone = Dataset {
                    meetings: vec![meeting.clone()],
                    past: Vec::new(),
                    themes: Default::default(),
                };
                alone
                    .validate()
                    .map_err(|e| problem("meeting", e.to_string()))?;
                if meeting.discussions.is_empty() {
                    return Err(problem(
                        "meeting.discussions",
                        "a meeting needs at least one discussion".to_owned(),
                    ));
                }
                if self.0.index.timeline().holds(meeting) == Some(false) {
                    return Err(problem(
                        "meeting.id",
                        format!(
                            "another meeting with id `{}` is known already, with other discussions",
                            meeting.id
                        ),
                    ));
                }
                Ok(meeting.clone())
            }
        }
    }
}

impl Kind for MeetingKind {
    type Inputs = MeetingEvent;

    fn name(&self) -> &str {
        "meeting"
    }

    fn validate(&self, inputs: &MeetingEvent) -> Result<(), InputProblem> {
        self.meeting(inputs).map(|_| ())
    }

    fn build(&self, inputs: MeetingEvent, run: &RunInfo) -> Result<ApplicationBuilder, BoxError> {
        let meeting = self.meeting(&inputs)?;
        let voting_ended = Arc::new(VotingEnded.bind("meeting", serde_json::to_value(&meeting)?));
        Ok(
            app::graph(self.0.builder(run.priority, inputs.force), voting_ended)
                .with_state(State::new())
                .with_hook(Arc::new(AnnounceRelated(run.announcer.clone())))
                .with_hook(Arc::new(JoinPast {
                    index: Arc::clone(&self.0.index),
                    meeting,
                })),
        )
    }

    fn summarize(&self, _last: Option<&burr_core::application::Step>, state: &State) -> Value {
        json!({
            "meeting": state.get::<Value>("meeting").unwrap_or(Value::Null),
            "embedded": state.get::<Value>("embedded").unwrap_or(Value::Null),
            "reused": state.get::<Value>("reused").unwrap_or(Value::Null),
            "related": state.get::<Value>("related").unwrap_or(Value::Null),
        })
    }
}

/// Adds a finished meeting's discussions to the past of later meetings, once its
/// `publish` step is checkpointed (a meeting of the dataset is there already).
struct JoinPast {
    index: Arc<PastIndex>,
    meeting: Meeting,
}

impl LifecycleHook for JoinPast {
    fn post_run_step(&self, event: &StepEnd<'_>) {
        if event.status == StepStatus::Completed && event.action == Publish.name() {
            self.index.join(&self.meeting);
        }
    }
}

/// Announces each discussion's related list once its `rerank` step is checkpointed.
struct AnnounceRelated(Announcer);

impl LifecycleHook for AnnounceRelated {
    fn post_run_step(&self, event: &StepEnd<'_>) {
        if event.status != StepStatus::Completed || event.action != discussion::Rerank.name() {
            return;
        }
        let get = |key| event.state.get::<Value>(key).unwrap_or(Value::Null);
        self.0.announce(
            event.ids.app_id.as_ref(),
            "related",
            json!({
                "meeting": get("meeting_id"),
                "discussion": get("discussion_id"),
                "title": get("title"),
                "related": get("related"),
            }),
        );
    }
}

/// An `ad-hoc` run's inputs.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdHocQuery {
    /// The text to relate (embedded exactly as given).
    pub text: String,
}

/// The `ad-hoc` kind.
pub struct AdHocKind(pub Service);

impl Kind for AdHocKind {
    type Inputs = AdHocQuery;

    fn name(&self) -> &str {
        "ad-hoc"
    }

    fn priority(&self, _inputs: &AdHocQuery) -> Option<i32> {
        Some(AD_HOC_PRIORITY)
    }

    fn build(&self, inputs: AdHocQuery, _run: &RunInfo) -> Result<ApplicationBuilder, BoxError> {
        Ok(self
            .0
            .builder(AD_HOC_PRIORITY, false)
            .with_actions([QueryText.bind("text", inputs.text)])
            .with_transitions(Vec::<(&str, &str)>::new())
            .with_state(State::new())
            .with_entrypoint(QueryText))
    }

    fn summarize(&self, _last: Option<&burr_core::application::Step>, state: &State) -> Value {
        json!({
            "related": state.get::<Value>("related").unwrap_or(Value::Null),
            "searched": state.get::<Value>("searched").unwrap_or(Value::Null),
            "embedded": state.get::<Value>("embedded").unwrap_or(Value::Null),
        })
    }
}

/// Relate `text` to the past discussions indexed so far: embed it (or find it stored,
/// or wait for the meeting embedding it), find candidates, rerank.
#[action(writes = [related, searched, embedded])]
pub async fn query_text(
    state: State,
    text: String,
    store: Res<EmbeddingStore>,
    index: Res<PastIndex>,
    reranker: Res<Reranking>,
    settings: Res<Settings>,
    urgency: Res<Urgency>,
) -> Result<State, ActionError> {
    let found = store
        .get_many_at(std::slice::from_ref(&text), true, urgency.0)
        .await?;
    let rows = index.filled();
    let query = Arc::clone(&found.vectors[0]);
    let k = settings.candidates;
    let scan = Arc::clone(index.arc());
    let all = 0..rows;
    let best =
        tokio::task::spawn_blocking(move || scan.search(&query, std::slice::from_ref(&all), k))
            .await
            .map_err(|e| ActionError::msg(format!("the search panicked: {e}")))?;
    let timeline = index.timeline();
    let entries = &timeline.entries;
    let candidates: Vec<(Candidate, &crate::index::Entry)> = best
        .into_iter()
        .map(|(row, retrieval)| {
            (
                Candidate {
                    id: entries[row].id.clone(),
                    row,
                    retrieval,
                },
                &entries[row],
            )
        })
        .collect();
    let q = Query {
        header: "",
        title: &text,
        notes: "",
        priority: urgency.0,
    };
    let refs: Vec<_> = candidates.iter().map(|(_, e)| *e).collect();
    let scores = reranker.0.score(&q, &refs).await?;
    let mut related: Vec<Related> = candidates
        .iter()
        .zip(scores)
        .map(|((c, d), score)| Related {
            id: d.id.clone(),
            title: d.title.clone(),
            team: d.team.clone(),
            meeting: d.meeting.clone(),
            date: d.date.clone(),
            score,
            retrieval: c.retrieval,
        })
        .filter(|r| r.score >= settings.min_score)
        .collect();
    related.sort_by(|a, b| b.score.total_cmp(&a.score));
    related.truncate(settings.top_k);
    Ok(state
        .update_serialized("related", &related)?
        .update("searched", rows)
        .update("embedded", found.embedded))
}

/// A `backfill` run's inputs.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Backfill {
    /// Re-embed even what is stored (e.g. after a model upgrade).
    #[serde(default)]
    pub force: bool,
    /// Discussions per child (default 32, at least 1).
    #[serde(default)]
    pub chunk: Option<usize>,
}

/// The `backfill` kind.
pub struct BackfillKind(pub Service);

impl Kind for BackfillKind {
    type Inputs = Backfill;

    fn name(&self) -> &str {
        "backfill"
    }

    fn validate(&self, inputs: &Backfill) -> Result<(), InputProblem> {
        match inputs.chunk {
            Some(0) => Err(InputProblem {
                field: "chunk".to_owned(),
                message: "must be at least 1".to_owned(),
            }),
            _ => Ok(()),
        }
    }

    fn priority(&self, _inputs: &Backfill) -> Option<i32> {
        Some(BACKFILL_PRIORITY)
    }

    fn build(&self, inputs: Backfill, _run: &RunInfo) -> Result<ApplicationBuilder, BoxError> {
        let rows = self.0.index.timeline().entries.len();
        let chunk = inputs.chunk.unwrap_or(32).max(1);
        Ok(self
            .0
            .builder(BACKFILL_PRIORITY, inputs.force)
            .with_actions([
                Arc::new(PlanBackfill.bind("rows", rows).bind("chunk", chunk)) as Arc<dyn Action>,
                Arc::new(EmbedPast),
                Arc::new(IndexAll),
            ])
            .with_transitions([
                (PlanBackfill.name(), EmbedPast.name()),
                (EmbedPast.name(), IndexAll.name()),
            ])
            .with_state(State::new())
            .with_entrypoint(PlanBackfill))
    }

    fn summarize(&self, _last: Option<&burr_core::application::Step>, state: &State) -> Value {
        json!({
            "rows": state.get::<Value>("rows").unwrap_or(Value::Null),
            "embedded": state.get::<Value>("embedded").unwrap_or(Value::Null),
            "reused": state.get::<Value>("reused").unwrap_or(Value::Null),
        })
    }
}

/// The chunks of rows to embed: `[from, to)` each.
#[action(writes = [chunks, rows])]
pub fn plan_backfill(state: State, rows: usize, chunk: usize) -> Result<State, ActionError> {
    let chunks: Vec<(usize, usize)> = (0..rows)
        .step_by(chunk.max(1))
        .map(|from| (from, (from + chunk).min(rows)))
        .collect();
    Ok(state
        .update_serialized("chunks", &chunks)?
        .update("rows", rows))
}

/// One child per chunk, keyed by its first row.
#[map_states(
    subgraph = backfill_subgraph().expect("the backfill sub-graph is valid"),
    keyed,
    reduce = add_counts,
    reads = [chunks],
    writes = [embedded, reused]
)]
pub fn embed_past(state: State) -> Result<Vec<(String, State)>, ActionError> {
    let chunks: Vec<(usize, usize)> = state.get("chunks")?;
    Ok(chunks
        .into_iter()
        .map(|(from, to)| {
            (
                format!("rows-{from}"),
                State::new().update("from", from).update("to", to),
            )
        })
        .collect())
}

fn add_counts(state: State, children: Vec<State>) -> Result<State, ActionError> {
    let (mut embedded, mut reused) = (0usize, 0usize);
    for child in children {
        embedded += child.get::<usize>("embedded")?;
        reused += child.get::<usize>("reused")?;
    }
    Ok(state.update("embedded", embedded).update("reused", reused))
}

/// Embed the documents of rows `[from, to)` of the timeline (or find them stored).
#[action(reads = [from, to], writes = [embedded, reused])]
pub async fn embed_rows(
    state: State,
    store: Res<EmbeddingStore>,
    index: Res<PastIndex>,
    urgency: Res<Urgency>,
    force: Res<Force>,
) -> Result<State, ActionError> {
    let (from, to): (usize, usize) = (state.get("from")?, state.get("to")?);
    let timeline = index.timeline();
    let entries = &timeline.entries;
    let texts: Vec<String> = entries[from.min(entries.len())..to.min(entries.len())]
        .iter()
        .map(|e| e.document())
        .collect();
    let found = if force.0 {
        store.refresh_many_at(&texts, urgency.0).await?
    } else {
        store.get_many_at(&texts, true, urgency.0).await?
    };
    Ok(state
        .update("embedded", found.embedded)
        .update("reused", found.reused))
}

/// Every row in the index (from the store: nothing is embedded here).
#[action(reads = [rows], writes = [indexed])]
pub async fn index_all(
    state: State,
    store: Res<EmbeddingStore>,
    index: Res<PastIndex>,
    urgency: Res<Urgency>,
) -> Result<State, ActionError> {
    let rows: usize = state.get("rows")?;
    index.fill(rows, &store, urgency.0).await?;
    Ok(state.update("indexed", index.filled()))
}

/// The child of `embed_past`: `embed_rows` alone.
pub fn backfill_subgraph() -> Result<SubGraph, burr_core::graph::GraphError> {
    let graph = GraphBuilder::new().with_actions([EmbedRows]).build()?;
    SubGraph::graph(graph, EmbedRows, [EmbedRows])
}
